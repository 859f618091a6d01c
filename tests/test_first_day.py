"""What a first day with TruthNet tripped on: videos left in sub-folders without a word, mistakes
found only after the model loaded, reports written into folders a typo created, a runner hint
printed when nothing waits."""

import pytest

from helpers import cli

pytestmark = pytest.mark.allow_untrained


@pytest.fixture
def case(media, tmp_path):
    """Two videos in the folder itself, three in sub-folders."""
    root = tmp_path / "case1"
    for rel in ("a.mp4", "b.mp4", "sub/c.mp4", "sub/deeper/d.mp4", "other/e.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(media["short"].read_bytes() + rel.encode())
    return root


def test_videos_left_in_sub_folders_are_counted_every_time(case, none_model, tmp_path):
    from truthnet import api

    db = tmp_path / "r.sqlite"
    text = cli("scan", case, "-m", none_model, "--db", db)
    assert text.returncode == 0, text.stderr
    assert len(text.stdout.splitlines()) == 2  # the folder's own two
    assert "not scanned: 3 videos in sub-folders (add -r to scan them)" in text.stderr
    # the JSON summary's field (the same ScanSummary.to_dict the CLI prints)
    assert api.scan([case], model=none_model, db=db).summary.to_dict()["not_scanned_below"] == 3
    everything = api.scan([case], model=none_model, db=db, recursive=True).summary
    assert everything.total == 5 and everything.to_dict()["not_scanned_below"] == 0


async def test_the_tui_says_how_many_videos_are_below_the_folder(case, tmp_path):
    from truthnet.tui.app import make_app

    app = make_app(case, model=None, db=str(tmp_path / "r.sqlite"), start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.pause(0.3)
        label = str(app.query_one("#folder-label").render())
        assert "2 of 2 videos (+3 in sub-folders: a lists them)" in label
        await pilot.press("l", "a")
        await pilot.pause(0.3)
        assert "5 of 5 videos (all below)" in str(app.query_one("#folder-label").render())


@pytest.mark.parametrize("args", [("--threshold", "1.5"), ("--threshold", "-0.1"), ("--threshold", "high")])
def test_a_threshold_outside_0_1_is_refused_before_the_model_loads(case, args, tmp_path):
    r = cli("scan", case, "-m", tmp_path / "missing.keras", *args)  # a missing model: never reached
    assert r.returncode == 3 and "--threshold" in r.stderr and "model" not in r.stderr.split("--threshold")[-1]
    assert "tensorflow" not in r.stderr.lower()


def test_evaluate_on_a_folder_that_is_not_a_dataset_stops_before_the_model(case, tmp_path):
    r = cli("evaluate", tmp_path / "missing.keras", case)  # the model is never looked at
    assert r.returncode == 3 and "matches no dataset layout" in r.stderr and "missing.keras" not in r.stderr


def test_a_report_into_a_missing_folder_is_an_error_unless_asked(case, none_model, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "r.html"
    r = cli("scan", case, "-m", none_model, "--db", tmp_path / "r.sqlite", "--html", target)
    assert r.returncode == 3 and "does not exist" in r.stderr and "--mkdir" in r.stderr
    assert not (tmp_path / "no").exists()
    ok = cli("scan", case, "-m", none_model, "--db", tmp_path / "r.sqlite", "--html", target, "--mkdir")
    assert ok.returncode == 0 and target.is_file() and f"wrote the HTML report (2 files): {target}" in ok.stderr
    again = cli("results", "--db", tmp_path / "r.sqlite", "--csv", tmp_path / "r.csv")
    assert again.returncode == 0 and f"wrote the CSV report (2 files): {tmp_path / 'r.csv'}" in again.stderr


def test_the_runner_hint_appears_only_while_jobs_wait(case, none_model, tmp_path):
    db = tmp_path / "r.sqlite"
    added = cli("jobs", "add", "scan", case, "-m", none_model, "--db", db)
    assert added.returncode == 0 and "1 queued job(s) wait for cpu" in added.stderr
    assert "wait for cpu" in cli("jobs", "list", "--db", db).stderr
    assert cli("jobs", "cancel", "1", "--db", db).returncode == 0  # nothing waits any more
    listed = cli("jobs", "list", "--db", db, env={"COLUMNS": "250"})
    assert listed.returncode == 0 and "runner" not in listed.stderr and "cancelled" in listed.stdout


@pytest.fixture
def dataset(tmp_path):
    from truthnet.synth import make_dataset

    make_dataset(tmp_path / "data", n_real=3, n_fake=3, n_frames=10, seed=2)
    return tmp_path / "data"


def test_a_queued_training_takes_the_commands_options_defaults_and_checks(dataset, tmp_path, monkeypatch):
    import json as _json

    from truthnet.jobs import JobQueue
    from truthnet.model import read_metadata

    monkeypatch.setenv("TRUTHNET_OFFLINE", "1")
    db = tmp_path / "r.sqlite"
    # the default preset is `truthnet train`'s (paper): offline without ImageNet weights, refused now
    paper = cli("jobs", "add", "train", dataset, "--db", db)
    assert paper.returncode == 3 and "ImageNet weights" in paper.stderr and "--weights PATH" in paper.stderr
    direct = cli("train", dataset, "-o", tmp_path / "never")
    assert direct.returncode == 3 and direct.stderr.splitlines()[-1] == paper.stderr.splitlines()[-1]
    for bad, says in ((("--epochs", "x"), "invalid int value"), (("--preset", "huge"), "invalid choice"),
                      (("--backbone", "efficientnetb0", "--weights", "none"), "frozen")):
        r = cli("jobs", "add", "train", dataset, *bad, "--db", db)
        assert r.returncode == 3 and says in r.stderr, (bad, r.stderr)
    assert JobQueue(db).jobs() == []  # nothing queued by a refused command
    ok = cli("jobs", "add", "train", dataset, "--preset", "tiny", "--epochs", "1", "--image-size", "32",
             "--option", "detector.min_confidence=0.5", "--device", "cpu", "--db", db, "--json")
    assert ok.returncode == 0, ok.stderr
    job = _json.loads(ok.stdout)
    assert job["preset"] == "tiny" and job["options"]["args"]["epochs"] == 1
    tmp = tmp_path / "tmp"  # the processes' temporary folder
    tmp.mkdir()
    ran = cli("jobs", "run", "--device", "cpu", "--until-empty", "--skip-gpu-check", "--db", db, timeout=600,
              child=True, env={"TMPDIR": str(tmp)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    # TensorFlow writes the source of each function it traces there and deletes it at exit: a
    # job process that skips the interpreter's teardown still runs those clean-ups
    assert [p.name for p in tmp.iterdir() if p.name.startswith("__autograph_generated_file")] == []
    done = JobQueue(db).get(job["id"])
    assert done["state"] == "done", done["message"]
    meta = read_metadata(done["result"]["model"])[0]
    assert meta["pipeline"]["image_size"] == 32 and meta["pipeline"]["detector_options"]["min_confidence"] == 0.5
    assert meta["train_config"]["epochs"] == 1


def test_a_frozen_backbone_without_weights_is_refused_before_any_video(dataset, tmp_path):
    r = cli("train", dataset, "--backbone", "efficientnetb0", "--weights", "none", "-o", tmp_path / "out")
    assert r.returncode == 3 and "frozen" in r.stderr and "--weights" in r.stderr
    assert not (tmp_path / "out").exists()

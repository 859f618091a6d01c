"""Issue #16: triage an analyst can trust.  Evidence left untouched, paths that agree between
the CLI, the TUI and reports, reports that hold up, honest evaluation, windows without invented
frames, errors found first and said in one line, untrained models refused."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from truthnet.store import Store

from helpers import cli, show_folder, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.allow_untrained]




def listing(root: Path) -> dict:
    """Every entry under ``root`` (the root too) with its size and modification time."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else None, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A demo-like dataset and a model really trained on it (one short epoch)."""
    from truthnet import PipelineConfig
    from truthnet.synth import make_dataset
    from truthnet.training import TrainConfig, train

    d = tmp_path_factory.mktemp("demo")
    make_dataset(d / "data", n_real=6, n_fake=6, n_frames=10, seed=3)
    res = train(d / "data", d / "run", PipelineConfig.preset("tiny", image_size=32),
                TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, patience=None), cache_dir=d / "cache",
                progress=None)
    return d, res


# --- 1, 2, 3: a relative scan, the TUI on the absolute path, an export, the evidence untouched --


async def test_relative_scan_shows_in_tui_and_export_leaves_evidence_untouched(model, tmp_path, monkeypatch):
    from textual.widgets import Input

    from truthnet.synth import make_dataset
    from truthnet.tui.app import make_app
    from truthnet.tui.screens.dialogs import ExportDialog

    make_dataset(tmp_path / "nasty", n_real=2, n_fake=2, n_frames=10, seed=5)
    evidence = tmp_path / "nasty"
    before = listing(evidence)
    db = tmp_path / "r.sqlite"
    r = cli("scan", "nasty", "-r", "-m", model, "--db", db, cwd=tmp_path)  # a relative path, from its folder
    assert r.returncode == 0, r.stderr
    assert "nasty/fake/" in r.stdout and str(tmp_path) not in r.stdout  # shown relative to the scanned root
    assert {Path(x.path).is_absolute() for x in Store(db).results()} == {True}

    reports = tmp_path / "my-reports"
    monkeypatch.setenv("TRUTHNET_REPORTS_DIR", str(reports))
    app = make_app(str(evidence.resolve()), model=model, db=str(db), start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(140, 44)) as pilot:
        await show_folder(pilot, app, evidence / "fake")
        assert [row for _, row in app._rows if row is None] == []  # every file shows the CLI's verdict
        await pilot.press("x")
        await wait_for(pilot, lambda: len(app.screen_stack) > 1)  # a dialog (or an error) is up
        assert isinstance(app.screen, ExportDialog)
        default = app.screen.query_one("#export-path", Input).value
        assert default.startswith(str(reports)) and default.endswith(".html")
        await pilot.press("enter")
        await pilot.pause(0.5)
        assert not isinstance(app.screen, ExportDialog)
    assert [p.name for p in reports.iterdir()] == [Path(default).name]
    assert listing(evidence) == before  # names, sizes and times: nothing written into the evidence
    page = Path(default).read_text()
    assert "nasty/fake/" in page and "model SHA-256" in page
    assert hashlib.sha256(Path(model).read_bytes()).hexdigest() in page


def test_html_and_csv_hold_up(model, tmp_path):
    import csv

    from truthnet.synth import make_dataset

    make_dataset(tmp_path / "case", n_real=1, n_fake=1, n_frames=10, seed=6)
    (tmp_path / "case" / "real" / "broken.mp4").write_bytes(b"not a video")
    db, html, csvf = tmp_path / "r.sqlite", tmp_path / "out" / "r.html", tmp_path / "out" / "r.csv"
    args = ("scan", tmp_path / "case", "-r", "-m", model, "--db", db, "--html", html, "--csv", csvf, "--threshold", "0.3")
    refused = cli(*args)  # out/ does not exist: a typo must not create folders
    assert refused.returncode == 3 and "does not exist" in refused.stderr and not html.parent.exists()
    r = cli(*args, "--mkdir")
    assert r.returncode == 2, r.stderr
    assert f"wrote the HTML report (3 files): {html}" in r.stderr and f"wrote the CSV report (3 files): {csvf}" in r.stderr
    page = html.read_text()
    from truthnet import __version__

    for fact in (str(tmp_path / "case"), "0.3", hashlib.sha256(Path(model).read_bytes()).hexdigest(), __version__,
                 "case/real/ <span", "case/fake/ <span", "frame times (s)", "id='zoom'"):
        assert fact in page, fact
    assert "<script src" not in page and "<link" not in page  # still one self-contained file
    rows = list(csv.DictReader(csvf.open()))
    assert {x["file"] for x in rows} == {"case/real/clip0000.mp4", "case/real/broken.mp4", "case/fake/clip0000__sbi.mp4"}
    scored = [x for x in rows if x["status"] == "ok"]
    assert all(x["frame_times"].startswith("[0.0, 0.1") for x in scored)  # 10 frames at 10 fps
    # `results`: roots and the whole model path; `--scan N` alone prints the verdicts
    r = cli("results", "--db", db, env={"COLUMNS": "400"})  # wide enough for the whole paths
    assert str(tmp_path / "case") in r.stdout and model in r.stdout
    r = cli("results", "--db", db, "--scan", "1", env={"COLUMNS": "400"})
    assert r.returncode == 0 and "case/real/broken.mp4" in r.stdout and "not_a_video" in r.stdout
    assert r.stdout.index("case/real/broken.mp4") > r.stdout.index("clip0000")  # unscored last


# --- 6: fail fast, in one line --------------------------------------------------------------------


def test_mistakes_fail_before_any_work_in_one_line(model, tmp_path):
    from truthnet.synth import make_face_clip

    make_face_clip(tmp_path / "case" / "sub" / "a.mp4", n_frames=10, seed=1)
    db = tmp_path / "r.sqlite"
    cases = [
        (("scan", tmp_path / "nope", "-m", "/no/such/model.keras", "--db", db), "no such file or folder"),
        (("scan", tmp_path / "case", "-m", model, "--db", db), "1 in sub-folders"),
        (("scan", tmp_path / "case", "-r", "-m", model, "--db", db, "--html", "/proc/report.html"), "--html"),
        (("scan", tmp_path / "case", "-r", "-m", model, "--db", db, "--csv", tmp_path), "is a folder"),
        (("scan", tmp_path / "case", "-r", "-m", model, "--db", "/proc/r.sqlite"), "results database"),
        (("scan", tmp_path / "case", "-r", "-m", model, "--windows", "0"), "at least 1"),
        (("results", "--db", tmp_path / "typo.sqlite"), "no such results database"),
    ]
    for args, says in cases:
        r = cli(*args)
        assert r.returncode == 3, (args, r.stderr)
        assert says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not db.exists() and not (tmp_path / "typo.sqlite").exists()  # nothing recorded, nothing created
    r = cli("scan", tmp_path / "case", "-r", "-m", model, "--db", db, "-q")
    assert r.returncode == 0, r.stderr
    r = cli("results", "--db", db, "--csv", tmp_path)
    assert r.returncode == 3 and "is a folder" in r.stderr and "Traceback" not in r.stderr


# --- 7: an interrupt says what was finished and kept ----------------------------------------------


def test_interrupt_reports_what_was_kept(model, tmp_path):
    from truthnet.synth import make_face_clip

    from helpers import more_files_than_in_flight

    n = more_files_than_in_flight(8)  # (the scan's batches of 8)
    for i in range(n):
        make_face_clip(tmp_path / "v" / f"c{i:02d}.mp4", n_frames=10, seed=40 + i, width=160, height=120, face_size=70)
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "truthnet.cli", "scan", tmp_path / "v", "-m", model, "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seen = [proc.stdout.readline() for _ in range(2)]  # results come per file, not per batch of 8
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stored = len(Store(db).results())
    assert all(s.strip() for s in seen) and 2 <= stored < n
    assert f"{stored} of {n} files finished and stored in {db}" in err and "run the same command again" in err


# --- 5: windows never invent frames ---------------------------------------------------------------


def test_windows_on_a_short_clip_never_feed_black_frames(model, media):
    import truthnet
    from truthnet.engine import Engine
    from truthnet.record import Result

    clf = truthnet.load_classifier(model)
    fed = []
    real = clf.predict_sequences
    clf.predict_sequences = lambda seqs, **kw: fed.extend(seqs) or real(seqs, **kw)
    short, long_ = str(media["face_avi"]), str(media["face"])  # 12 and 30 frames; 10 per window
    rows = {r.path: r for r in Engine(clf, windows=3, isolation="thread").run(
        [Result(short, "ok"), Result(long_, "ok")])}
    assert [s.padded for s in fed] == [0, 0, 0, 0] and len(fed) == 4  # 1 window + 3 windows
    assert len(rows[short].window_scores) == 1 and "1 of 3 windows" in rows[short].reason
    assert len(rows[long_].window_scores) == 3 and rows[long_].reason == ""
    with pytest.raises(truthnet.ConfigError):
        Engine(clf, windows=0)


# --- 8: an untrained model gives no verdicts ------------------------------------------------------


def test_untrained_model_refuses_verdicts(model, media, monkeypatch):
    import truthnet

    monkeypatch.delenv("TRUTHNET_ALLOW_UNTRAINED")
    clf = truthnet.new_classifier(truthnet.PipelineConfig.preset("tiny", image_size=32))
    with pytest.raises(truthnet.ModelError, match="never trained"):
        clf.score_video(media["face"])
    with pytest.raises(truthnet.ModelError, match="never trained"):
        truthnet.load_classifier(model).score_video(media["face"])  # the flag travels in the file
    clf.allow_untrained = True  # an experiment that says so
    assert clf.score_video(media["face"]).ok


# --- 4: honest evaluation and calibration ---------------------------------------------------------


def test_evaluation_names_its_split_and_leaves_out_training_videos(trained, tmp_path):
    import csv
    import shutil

    from truthnet import api

    d, res = trained
    manifest = list(csv.DictReader((res.out_dir / "manifest.csv").open()))
    n = {s: sum(r["split"] == s for r in manifest) for s in ("train", "val", "test")}
    m = api.evaluate(res.model_path, d / "data")  # its own dataset: the held-out test split
    assert (m["split"], m["split_videos"]) == ("test", n["test"])
    assert m["selection"]["own_dataset"] and m["selection"]["training_overlap"]["found"] == 0
    copy = tmp_path / "someone-elses"
    shutil.copytree(d / "data", copy)  # the same videos under another name: found by content
    m = api.evaluate(res.model_path, copy)
    assert m["split"] == "all" and m["split_videos"] == n["test"]
    assert m["selection"]["training_overlap"] == {"checked": "fingerprints", "found": n["train"] + n["val"],
                                                  "excluded": True}
    m = api.evaluate(res.model_path, copy, include_training=True)
    assert m["split_videos"] == len(manifest)

    # a named pipe among someone's videos is not a training video and does not stop the check
    # (it is scored later, with its own status); nothing ever opens it for reading here
    import os

    from truthnet.datasets.holdout import select
    from truthnet.model import read_metadata

    os.mkfifo(copy / "fake" / "zz-pipe.mp4")
    sel = select(copy, read_metadata(res.model_path)[0])
    assert str(copy / "fake" / "zz-pipe.mp4") in {r.path for r in sel.rows}
    assert sel.info["training_overlap"]["found"] == n["train"] + n["val"]


def test_calibrate_writes_a_new_model_and_warns_on_few_videos(trained, tmp_path):
    from truthnet import api

    d, res = trained
    original = res.model_path.read_bytes()
    r = api.calibrate(res.model_path, d / "data", real_recall=1.0)
    assert res.model_path.read_bytes() == original  # the input model is untouched
    assert r["model"] == str(res.model_path.with_name("model.calibrated.keras")) and Path(r["model"]).exists()
    assert r["split"] == "val" and r["warnings"] and "fewer than 30" in r["warnings"][0]
    out = cli("calibrate", res.model_path, d / "data", "--real-recall", "1.0", "-o", tmp_path / "c.keras")
    assert out.returncode == 0, out.stderr
    assert "threshold" in out.stdout and "(unchanged)" in out.stdout and "warning: only" in out.stderr


async def test_tui_evaluation_names_the_test_split_and_its_size(trained, tmp_path):
    import csv

    from truthnet.tui.app import make_app
    from truthnet.tui.screens.results import ResultsScreen

    d, res = trained
    n_test = sum(r["split"] == "test" for r in csv.DictReader((res.out_dir / "manifest.csv").open()))
    db = tmp_path / "r.sqlite"
    app = make_app(d / "data", model=str(res.model_path), db=str(db))
    async with app.run_test(size=(140, 44)) as pilot:
        await show_folder(pilot, app, d / "data")
        await pilot.press("e")
        await pilot.pause(0.3)
        assert "Queue an evaluation" in str(app.screen.query_one("#dialog-title").render())
        await pilot.click("#ok")
        t0 = time.monotonic()
        from truthnet.jobs import JobQueue

        while not any(j["state"] in ("done", "failed") for j in JobQueue(db).jobs()):
            assert time.monotonic() - t0 < 240
            await pilot.pause(0.2)
        job = JobQueue(db).jobs()[-1]
        assert job["state"] == "done", job["message"]
        assert f"test split, {n_test} videos" in job["message"]
        app.query_one("#jobs").focus()
        await pilot.press("v")
        await pilot.pause(0.5)
        assert isinstance(app.screen, ResultsScreen)
        assert f"test split, {n_test} videos" in str(app.screen.query_one("#results-title").render())


# --- 9: keys ----------------------------------------------------------------------------------------


async def test_keys_focus_panels_and_typing_never_lands_in_search(tmp_path):
    from truthnet.tui.app import make_app

    root = tmp_path / "case"
    for d in ("a", "b"):
        (root / d).mkdir(parents=True)
        (root / d / "x.mp4").write_bytes(b"x")
    from truthnet.jobs import JobQueue

    store = Store(tmp_path / "r.sqlite")
    queue = JobQueue(store)
    model = tmp_path / "m.keras"
    model.write_bytes(b"k")  # jobs are queued with a model file; these never run
    for d, t in (("a", 100.0), ("b", 200.0)):  # two finished scan jobs; b/ finished last
        jid = queue.add("scan", str(root / d), model=str(model))
        store.con.execute("UPDATE jobs SET state = 'done', finished = ?, result = ? WHERE id = ?",
                          (t, json.dumps({"scan_id": 0}), jid))
    app = make_app(root, model="m.keras", db=str(tmp_path / "r.sqlite"), start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(120, 36)) as pilot:
        search = app.query_one("#search")
        await pilot.press("b", "tab")
        assert app.focused is app.query_one("#videos")  # Tab from the tree skips the search box
        await pilot.press("j")
        assert app.focused is app.query_one("#jobs")
        await pilot.press("l", "o", "o")
        assert app.focused is app.query_one("#videos") and search.value == ""
        await pilot.press("slash", "x", "y")
        assert search.value == "xy" and app.focused is search
        await pilot.press("escape")
        assert app.focused is app.query_one("#videos")
        await pilot.press("v")  # from the video table: the last finished job
        assert app.folder == root / "b"
        await pilot.press("j", "up", "up")  # the jobs table: the highlighted job
        await pilot.press("v")
        assert app.folder == root / "a"

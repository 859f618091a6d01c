"""The real Textual app driven through Pilot, on generated videos and a real results store."""

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from truthnet.jobs import JobQueue
from truthnet.testing.jobs import KIND as SELFTEST_KIND
from truthnet.store import Result, Store

from helpers import show_folder, wait_for, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.allow_untrained, pytest.mark.usefixtures("selftest_kind")]


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture
def videos(tmp_path):
    from truthnet.synth import make_dataset

    make_dataset(tmp_path / "videos", n_real=3, n_fake=3, n_frames=10, seed=2)
    return tmp_path / "videos"


def make(root, db, model, **kw):
    from truthnet.tui.app import make_app

    return make_app(root, model=model, db=str(db), **kw)


def table_rows(app, table_id="#videos"):
    from textual.widgets import DataTable

    t = app.query_one(table_id, DataTable)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


async def queue(pilot, app, kind, folder):
    await show_folder(pilot, app, folder)
    await pilot.press(kind[0])
    await wait_for(pilot, lambda: app.screen.query("#ok"))
    await pilot.click("#ok")


async def test_scan_from_tree_fills_verdicts_then_details_show_crops(videos, model, tmp_path):
    from truthnet.tui.screens.details import DetailsScreen

    db = tmp_path / "r.sqlite"
    app = make(videos, db, model)
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("b", "down", "down")  # the tree cursor onto real/: its videos show at once
        await pilot.pause(0.3)
        assert app.folder == videos / "real"
        assert all(r[3] == "not scanned" for r in table_rows(app)) and len(table_rows(app)) == 3
        await pilot.press("s")
        await pilot.pause(0.3)
        await pilot.click("#ok")
        await wait_for(pilot, lambda: any(j["state"] == "done" for j in JobQueue(db).jobs()))
        await pilot.pause(0.5)
        rows = table_rows(app)
        assert len(rows) == 3 and all(r[1] in ("real", "fake") and r[3] == "ok" for r in rows)
        await pilot.press("tab", "tab", "tab")  # focus the videos table
        app.query_one("#videos").focus()
        await pilot.press("d")
        await pilot.pause(0.5)
        assert isinstance(app.screen, DetailsScreen)
        assert len(app.screen.query(".crop")) == 10
        summary = str(app.screen.query_one("#details-summary").render())
        assert "score" in summary and "faces found in" in summary
        assert "⚠ untrained model" in summary  # the model's warning beside its verdict
        await pilot.press("escape", "b")
        app.folder = videos  # elsewhere; `v` goes back to what the finished scan job scanned
        app.refresh_videos()
        await pilot.press("v")
        await pilot.pause(0.3)
        assert app.folder == videos / "real" and app.query_one("#videos").has_focus
        assert [r[1] in ("real", "fake") for r in table_rows(app)] == [True] * 3
        await pilot.press("d")
        await pilot.pause(0.5)
        assert isinstance(app.screen, DetailsScreen)
        # e: an explain job with the verdict's model; its picture shows here when it is done
        assert "Press e to explain" in str(app.screen.query_one("#explain-hint").render())
        row = app.screen.row
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app.screen.query("#explain")) == 1)
        assert len(app.screen.query("#explain .crop")) == 10
        data, png = Store(db).explanation(row.sha256, row.model_key)
        assert [f["index"] for f in data["frames"]] == row.frame_indices
        assert data["frames_sha256"] == row.frames_sha256 and data["score"] == pytest.approx(row.score, abs=1e-6)
        await pilot.press("escape", "v")  # v on a finished explain job: that video's details
        await pilot.pause(0.5)
        assert isinstance(app.screen, DetailsScreen) and app.screen.path == row.path
        assert len(app.screen.query("#explain .crop")) == 10


async def test_evaluation_opens_confusion_matrix(videos, model, tmp_path):
    from truthnet.tui.screens.results import ResultsScreen

    db = tmp_path / "r.sqlite"
    app = make(videos, db, model)
    async with app.run_test(size=(140, 44)) as pilot:
        await queue(pilot, app, "evaluate", videos)
        await wait_for(pilot, lambda: any(j["state"] in ("done", "failed") for j in JobQueue(db).jobs()))
        job = JobQueue(db).jobs()[-1]
        assert job["state"] == "done", job["message"]
        await pilot.pause(0.3)
        app.query_one("#jobs").focus()
        await pilot.press("v")
        await pilot.pause(0.5)
        assert isinstance(app.screen, ResultsScreen)
        cm = app.screen.metrics["confusion_matrix"]
        assert sum(map(sum, cm)) == 6
        assert app.screen.query_one("#confusion") and app.screen.query_one("#table-one")


async def test_cancel_a_running_job_and_history_survives_reopen(tmp_path):
    """`c` on the job panel stops a running job in its runner process; reopened, the app shows it.
    The job runs until stopped (it sleeps a minute), so the press always meets a running job."""
    db = tmp_path / "r.sqlite"
    app = make(tmp_path, db, "model.keras")
    app.find_devices = lambda: None  # cpu is enough here: no TensorFlow probe
    async with app.run_test(size=(140, 44)) as pilot:
        jid = app.queue_job(SELFTEST_KIND, str(tmp_path), options={"sleep": 60, "steps": 120})
        q = JobQueue(db)
        await wait_for(pilot, lambda: q.get(jid)["state"] == "running" and q.get(jid)["stage"])
        # the panel knows it too: its row says running
        await wait_for(pilot, lambda: any(r[0] == str(jid) and r[4] == "running" for r in table_rows(app, "#jobs")))
        app.query_one("#jobs").focus()
        await pilot.press("c")
        await wait_for(pilot, lambda: q.get(jid)["state"] == "cancelled")
        assert "SIGKILL" not in q.get(jid)["message"]  # it stopped on SIGTERM, within the grace
    # reopen: the job history is still there
    app2 = make(tmp_path, db, "model.keras", start_jobs=False)
    async with app2.run_test(size=(140, 44)) as pilot:
        await pilot.pause(0.3)
        rows = table_rows(app2, "#jobs")
        assert rows and rows[-1][0] == str(jid) and rows[-1][4] == "cancelled"
    for runner in app.my_runners:
        assert runner.wait(120) == 0


async def test_missing_model_is_an_error_dialog(videos, tmp_path, monkeypatch):
    from truthnet.tui.screens.dialogs import ErrorDialog

    monkeypatch.setenv("TRUTHNET_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.delenv("TRUTHNET_MODEL", raising=False)
    app = make(videos, tmp_path / "r.sqlite", None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ErrorDialog)
        assert "truthnet demo" in str(app.screen.query_one("#error-message").render())


async def test_headless_jobs_show_live_and_quit_asks_about_jobs_started_here(tmp_path):
    """A job run by `truthnet jobs run` shows live; a job queued here makes quitting ask, and
    "stop" cancels it in its runner process (the app never runs jobs itself)."""
    import subprocess
    import sys

    from truthnet.tui.screens.dialogs import QuitDialog

    db = tmp_path / "r.sqlite"
    q = JobQueue(db)
    gate = tmp_path / "release"  # the job runs until the test has seen it running
    headless = q.add(SELFTEST_KIND, str(tmp_path), options={"sleep": 120, "steps": 400, "lines": 2, "gate": str(gate)})
    runner = subprocess.Popen([sys.executable, "-m", "truthnet.cli", "jobs", "run", "--device", "cpu",
                               "--until-empty", "--db", str(db)], stderr=subprocess.DEVNULL)
    # the app opens once the headless runner holds the job: a queued job with no runner yet would
    # rightly make the app start its own (a loaded machine starts Python slowly)
    try:
        wait_until(lambda: q.get(headless)["state"] == "running", what="the headless runner to take the job")
        app = make(tmp_path, db, "model.keras")
        app.find_devices = lambda: None  # cpu is enough here: no TensorFlow probe
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_for(pilot, lambda: any(r[0] == str(headless) and r[4] == "running"
                                              for r in table_rows(app, "#jobs")))
            app.show_job_log(headless)
            gate.touch()
            await wait_for(pilot, lambda: any(r[0] == str(headless) and r[4] == "done" for r in table_rows(app, "#jobs")))
            lines = list(app.query_one("#job-log").lines)
            assert "CUDA_VISIBLE_DEVICES=-1" in lines[0] and "selftest line 1" in lines and lines[-1].startswith("done")
            assert runner.wait(120) == 0
            assert not app.my_runners  # the headless runner did that job, not one of ours
            mine = app.queue_job(SELFTEST_KIND, str(tmp_path), options={"sleep": 60, "steps": 120})
            await wait_for(pilot, lambda: q.get(mine)["state"] == "running" and q.get(mine)["stage"])
            ours = app.my_runners[0]
            await pilot.press("q")
            await pilot.pause(0.3)
            assert isinstance(app.screen, QuitDialog) and f"job {mine}" in str(app.screen.query_one("#quit-message").render())
            await pilot.click("#stop")
    finally:  # a failure above must not leave the runner and its job behind
        gate.touch()
        if runner.poll() is None:
            runner.kill()
    assert ours.wait(120) == 0  # our runner stopped the job and, with nothing left, ended
    assert q.get(mine)["state"] == "cancelled"


async def test_quit_can_leave_jobs_running(tmp_path):
    db = tmp_path / "r.sqlite"
    app = make(tmp_path, db, "model.keras")
    app.find_devices = lambda: None
    async with app.run_test(size=(140, 44)) as pilot:
        # a job that runs until stopped: it cannot finish before the app quits, however loaded
        jid = app.queue_job(SELFTEST_KIND, str(tmp_path), options={"sleep": 60, "steps": 120})
        await pilot.pause(0.6)  # a poll of the store while the new runner starts up
        assert len(app.my_runners) == 1  # one runner for the device, not one per look at the queue
        await pilot.press("q")
        await pilot.pause(0.3)
        await pilot.click("#leave")
    runner = app.my_runners[0]
    assert runner.poll() is None  # the app is gone, its runner goes on
    q = JobQueue(db)
    wait_until(lambda: q.get(jid)["state"] == "running", what="the job to run in the surviving runner")
    q.cancel(jid)
    assert runner.wait(120) == 0
    assert q.get(jid)["state"] == "cancelled"


async def test_tree_counts_videos_below_and_table_lists_them(tmp_path):
    from truthnet.tui.widgets.video_tree import VideoTree

    root = tmp_path / "ffpp"
    for rel in ("manipulated/Deepfakes/c23/videos/000.mp4", "manipulated/Deepfakes/c23/videos/001.mp4",
                "original/youtube/c23/videos/002.mp4", "original/top.avi", "original/notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    app = make(root, tmp_path / "r.sqlite", "model.keras", start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(140, 44)) as pilot:
        tree = app.query_one("#tree", VideoTree)
        assert tree.count(root) == 4 and tree.count(root / "original") == 2
        await pilot.press("b", "down")  # manipulated/: no video of its own
        await pilot.pause(0.3)
        assert app.folder == root / "manipulated" and table_rows(app) == []
        await pilot.press("a")
        await pilot.pause(0.2)
        assert [r[0] for r in table_rows(app)] == ["Deepfakes/c23/videos/000.mp4", "Deepfakes/c23/videos/001.mp4"]
        assert "2 of 2 videos (all below)" in str(app.query_one("#folder-label").render())


async def test_job_dialog_offers_known_models(videos, tmp_path, monkeypatch):
    from textual.widgets import Input, Select

    from truthnet.settings import set_default_model
    from truthnet.tui.screens.dialogs import ErrorDialog, JobDialog

    monkeypatch.setenv("TRUTHNET_CONFIG", str(tmp_path / "settings.json"))
    monkeypatch.delenv("TRUTHNET_MODEL", raising=False)
    set_default_model(tmp_path / "default.keras")
    db = tmp_path / "r.sqlite"
    q = JobQueue(db)
    trained = tmp_path / "run" / "model.keras"
    trained.parent.mkdir()
    trained.write_bytes(b"k")
    jid = q.add("train", str(videos))
    q.store.con.execute("UPDATE jobs SET state = 'done', result = ? WHERE id = ?",
                        (json.dumps({"model": str(trained)}), jid))  # a finished training job
    app = make(videos, db, str(tmp_path / "current.keras"), start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("s")
        await pilot.pause(0.3)
        assert isinstance(app.screen, JobDialog)
        select = app.screen.query_one("#job-model", Select)
        offered = [(label.split(":")[0], v) for label, v in select._options if v is not Select.NULL]
        assert offered == [("current", str(tmp_path / "current.keras")), ("default", str(tmp_path / "default.keras")),
                           ("job 1 (train)", str(trained))]
        # a mistyped model path: an error now, nothing queued (not a job that fails later)
        app.screen.query_one("#job-model-path", Input).value = "typo/model.keras"
        await pilot.click("#ok")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ErrorDialog)
        assert "model file not found" in str(app.screen.query_one("#error-message").render())
        assert [j["kind"] for j in q.jobs()] == ["train"]
        await pilot.press("escape")
        await pilot.press("s")
        await pilot.pause(0.3)
        app.screen.query_one("#job-model", Select).value = str(trained)
        await pilot.click("#ok")
        await pilot.pause(0.2)
    assert q.jobs()[-1]["model"] == str(trained)


# --- snapshots at a fixed terminal size, from a store with fixed contents --------------------


@pytest.fixture
def fixed(tmp_path, monkeypatch):
    """A folder and store whose contents (times included) are the same on every run."""
    from truthnet.engine import thumbnail_strip
    from truthnet.synth import astronaut_face

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("TRUTHNET_CONFIG", str(tmp_path / "settings.json"))
    root = tmp_path / "case-42"
    (root / "incoming").mkdir(parents=True)
    names = ["interview.mp4", "press-call.mp4", "street.mp4", "broken.mp4"]
    for n in names:
        (root / "incoming" / n).write_bytes(b"x")
    # the app's model: a file with fixed bytes (the table shows only the verdicts of its SHA-256)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"fixed model bytes")
    store = Store(tmp_path / "r.sqlite")
    sid = store.start_scan("model.keras", "k", [str(root)], {},
                           {"model_sha256": hashlib.sha256(b"fixed model bytes").hexdigest()})
    face = astronaut_face(64)[:64, :64]
    crops = np.stack([np.roll(face, 3 * i, axis=1) for i in range(10)])
    rows = [
        Result(str(root / "incoming" / "interview.mp4"), "ok", score=0.9312, label="fake", threshold=0.5,
                  sha256=hashlib.sha256(b"x").hexdigest(),
                  faces_found=[1] * 10, duration=12.0, frames_sampled=10, thumbs=thumbnail_strip(crops),
                  window_scores=[0.91, 0.95, 0.93], timings={"decode": 0.1, "detect": 0.5, "classify": 0.05}),
        Result(str(root / "incoming" / "press-call.mp4"), "ok", score=0.0712, label="real", threshold=0.5,
                  faces_found=[1] * 9 + [0], duration=30.0, frames_sampled=10),
        Result(str(root / "incoming" / "broken.mp4"), "decode_error", reason="truncated or corrupt"),
    ]
    for r in rows:
        r.scanned_at = 1_790_000_000.0
        store.add_result(sid, r)
    return root, tmp_path / "r.sqlite"


def _fixed_app(fixed):
    root, db = fixed
    app = make(root, db, "model.keras", start_jobs=False)
    app.find_devices = lambda: None  # no TensorFlow import in snapshot runs
    return app, root


def test_snapshot_main_screen(fixed, snap_compare):
    app, root = _fixed_app(fixed)

    async def run_before(pilot):
        await pilot.press("b", "down")  # the tree cursor onto incoming/
        await pilot.pause(0.3)
        await pilot.press("l")  # back to the video table

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_snapshot_details_screen(fixed, snap_compare):
    app, root = _fixed_app(fixed)

    async def run_before(pilot):
        app.show_details(str(root / "incoming" / "interview.mp4"))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_snapshot_results_screen(fixed, snap_compare, tmp_path):
    from truthnet.evaluation import compute_metrics
    from truthnet.tui.screens.results import ResultsScreen

    app, _ = _fixed_app(fixed)
    m = compute_metrics([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [0.1, 0.6, 0.3, 0.2, 0.9, 0.8, 0.4, 0.7, 0.85, 0.95])
    m.update(split="test", split_videos=10,
             selection={"summary": "test split: 10 videos of /data/case (the model's own dataset); none of them "
                                   "was a training video"})
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(m))
    meta = {"history": {"loss": [0.7, 0.5, 0.3, 0.2], "val_loss": [0.7, 0.6, 0.4, 0.3],
                        "accuracy": [0.5, 0.7, 0.85, 0.9], "val_accuracy": [0.5, 0.6, 0.8, 0.85]}}

    async def run_before(pilot):
        app.push_screen(ResultsScreen(str(path), meta))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


# --- a first day: keys, footer, screenshot, the log and bar of the running job --------------------


@pytest.mark.parametrize("width", [120, 160])
async def test_the_footer_fits_and_question_mark_lists_every_key(tmp_path, width):
    import os

    from textual.widgets import Footer

    app = make(tmp_path, tmp_path / "r.sqlite", None, start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(width, 40)) as pilot:
        def shown():
            keys = list(app.query_one(Footer).query("FooterKey"))
            return {k.key_display for k in keys if k.region.width and k.region.right <= width}

        # quit and the key list are never cut off (waits for the footer's layout, not a fixed time)
        await wait_for(pilot, lambda: {"b", "s", "d", "x", "?", "q"} <= shown(), timeout=60)
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        from rich.console import Console

        console = Console(width=200, record=True, file=open(os.devnull, "w"))
        console.print(app.screen.query_one("HelpPanel").query_one("BindingsTable").render_bindings_table())
        listed = console.export_text()
        for what in ("Train a model", "Evaluate a model", "Cancel the selected or running job", "Sort by the next column",
                     "View a finished job's result", "List every video below the folder", "Refresh", "Quit"):
            assert what in listed, what  # every key is discoverable from `?`
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not app.screen.query("HelpPanel")
        await pilot.press("question_mark", "question_mark")
        await pilot.pause(0.2)
        assert not app.screen.query("HelpPanel")


async def test_a_screenshot_is_saved_in_the_reports_folder(tmp_path):
    import os

    app = make(tmp_path, tmp_path / "r.sqlite", None, start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.2)
        saved = app.deliver_screenshot()
    reports = Path(os.environ["TRUTHNET_REPORTS_DIR"])
    assert saved and Path(saved).parent == reports and Path(saved).read_text().startswith("<svg")


async def test_the_log_and_bar_follow_the_running_job_and_a_finished_bar_is_full(tmp_path):
    from textual.widgets import Log, ProgressBar

    db = tmp_path / "r.sqlite"
    app = make(tmp_path, db, None)
    app.find_devices = lambda: None
    async with app.run_test(size=(140, 44)) as pilot:
        first = app.queue_job(SELFTEST_KIND, str(tmp_path), options={"lines": 2, "steps": 3})
        q = JobQueue(db)
        await wait_for(pilot, lambda: q.get(first)["state"] == "done")
        await wait_for(pilot, lambda: app.query_one("#job-progress", ProgressBar).progress == 1.0)
        second = app.queue_job(SELFTEST_KIND, str(tmp_path), options={"lines": 3, "sleep": 60, "steps": 120})
        await wait_for(pilot, lambda: q.get(second)["state"] == "running" and q.get(second)["stage"])
        await wait_for(pilot, lambda: app.selected_job == second)

        def log() -> str:
            return "\n".join(str(line) for line in app.query_one("#job-log", Log).lines)

        # the second job's third line: the pane shows its log, not the first job's
        await wait_for(pilot, lambda: "selftest line 2" in log())
        q.cancel(second)
        await wait_for(pilot, lambda: q.get(second)["state"] == "cancelled")
    for runner in app.my_runners:
        assert runner.wait(120) == 0


async def test_w_watches_the_folder_and_its_verdicts_show_live(videos, model, tmp_path):
    """w queues a watcher for the shown folder: a video copied in afterwards gets its verdict in
    the table without a key press; w again stops the watcher."""
    import shutil

    db = tmp_path / "r.sqlite"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    app = make(inbox, db, model)
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("w")
        await wait_for(pilot, lambda: any(j["kind"] == "watch" and j["state"] == "running" for j in JobQueue(db).jobs()))
        await wait_for(pilot, lambda: any("watching" in ln for _, _, ln in JobQueue(db).log(JobQueue(db).jobs()[0]["id"])))
        shutil.copy(videos / "real" / "clip0000.mp4", inbox / "arrived.mp4")
        await wait_for(pilot, lambda: [r[3] for r in table_rows(app)] == ["ok"])
        from textual.widgets import ProgressBar

        # a watcher has no end: "watching" and a pulsing bar, never a share stuck at 0 %
        await wait_for(pilot, lambda: [r[5] for r in table_rows(app, "#jobs")] == ["watching"])
        assert app.query_one("#job-progress", ProgressBar).total is None
        await pilot.press("w")
        await wait_for(pilot, lambda: all(j["state"] not in ("queued", "running") for j in JobQueue(db).jobs()))
        assert [Path(r.path).name for r in Store(db).results()] == ["arrived.mp4"]

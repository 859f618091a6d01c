"""``truthnet scan --watch``: every complete new or changed video scored exactly once, on
realistic footage (H.264 with long GOPs and B-frames, VFR), with OS events and by polling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import child_env, cli_cmd, popen_sigterm_blocked, wait_until

pytestmark = pytest.mark.allow_untrained


class Watcher:
    """``api.watch`` in a thread of this process, its results collected as they come."""

    def __init__(self, folder, model, db, *, poll=None, settle=0.5):
        from truthnet import api

        self.results: list = []
        self.logs: list[str] = []
        self.cancel = threading.Event()
        self.outcome = None

        def on_event(ev):
            if ev.result is not None:
                self.results.append(ev.result)
            elif ev.stage == "log":
                self.logs.append(ev.message)

        def run():
            self.outcome = api.watch(folder, model=model, db=db, settle=settle, poll=poll, on_event=on_event,
                                     cancel=self.cancel)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.logs, what="the watcher to start")

    def names(self) -> list[str]:
        return sorted(Path(r.path).name for r in self.results)

    def stop(self):
        self.cancel.set()
        self.thread.join(120)
        assert not self.thread.is_alive()
        return self.outcome


def _write_slowly(src: Path, dst: Path, chunks: int = 4, pause: float = 0.9) -> None:
    """Copy ``src`` in chunks over several seconds, the file held open throughout (longer pauses
    than the watcher's settle time: only the open writer says it is not complete)."""
    data = src.read_bytes()
    step = len(data) // chunks + 1
    with open(dst, "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(pause)


@pytest.fixture(scope="module")
def footage(small_corpus):
    return [small_corpus["480p25-long"].path, small_corpus["vfr-480p"].path]


@pytest.mark.parametrize("poll", [None, 0.3], ids=["events", "polling"])
def test_each_complete_file_is_scored_once(tmp_path, none_model, footage, poll):
    from truthnet.filecheck import file_sha256

    if poll is None:
        pytest.importorskip("watchfiles")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    w = Watcher(inbox, none_model, tmp_path / "r.sqlite", poll=poll)
    assert ("OS events" in w.logs[0]) == (poll is None)
    try:
        # written in chunks over ~4 s by a writer that keeps it open
        _write_slowly(footage[0], inbox / "slow.mp4")
        # written under another name, renamed into place
        shutil.copy(footage[1], inbox / "vfr.mp4.part")
        os.rename(inbox / "vfr.mp4.part", inbox / "vfr.mp4")
        # deleted before it was complete
        with open(inbox / "gone.mp4", "wb") as fh:
            fh.write(footage[0].read_bytes()[:5000])
            fh.flush()
            os.unlink(inbox / "gone.mp4")
        wait_until(lambda: len(w.results) >= 2, what="two results")
        time.sleep(1.5)  # nothing more arrives: nothing more is reported
    finally:
        outcome = w.stop()
    assert w.names() == ["slow.mp4", "vfr.mp4"]
    by_name = {Path(r.path).name: r for r in w.results}
    assert by_name["slow.mp4"].sha256 == file_sha256(inbox / "slow.mp4")  # the whole file, never a part
    assert all(r.status == "ok" and r.score is not None for r in w.results)
    assert outcome.summary.interrupted and outcome.summary.counts["ok"] == 2


def test_five_hundred_files_at_once_each_get_one_result(tmp_path, none_model, media):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    w = Watcher(inbox, none_model, tmp_path / "r.sqlite", settle=0.3)
    try:
        stage = tmp_path / "stage"
        stage.mkdir()
        for i in range(500):  # three clips to score; the rest cost the watcher as much, the scorer less
            data = media["short"].read_bytes() if i % 200 == 0 else f"not a video {i}\n".encode() * 20
            (stage / f"c{i:03d}.mp4").write_bytes(data)
        os.rename(stage, inbox / "burst")  # 500 files appear at once
        wait_until(lambda: len(w.results) >= 500, timeout=300, what="500 results")
        time.sleep(1.0)
    finally:
        w.stop()
    assert w.names() == [f"c{i:03d}.mp4" for i in range(500)]  # each once, none dropped
    statuses = {Path(r.path).name: r.status for r in w.results}
    clips = {Path(r.path).name: (r.status, r.reason) for r in w.results if Path(r.path).name in
             ("c000.mp4", "c200.mp4", "c400.mp4")}
    assert sorted(n for n, s in statuses.items() if s == "ok") == ["c000.mp4", "c200.mp4", "c400.mp4"], clips
    assert set(statuses.values()) == {"ok", "not_a_video"}


def test_a_restarted_watcher_scores_what_arrived_meanwhile_and_nothing_twice(tmp_path, none_model, footage):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    db = tmp_path / "r.sqlite"
    shutil.copy(footage[0], inbox / "first.mp4")
    w = Watcher(inbox, none_model, db, poll=0.3)
    wait_until(lambda: w.results, what="the file present at start")
    w.stop()
    shutil.copy(footage[1], inbox / "while-down.mp4")  # arrives with no watcher running
    w = Watcher(inbox, none_model, db, poll=0.3)
    wait_until(lambda: w.results, what="the file that arrived meanwhile")
    time.sleep(1.5)
    w.stop()
    assert w.names() == ["while-down.mp4"]  # first.mp4 was reported already: not again
    from truthnet.store import Store

    assert sorted(Path(r.path).name for r in Store(db).results()) == ["first.mp4", "while-down.mp4"]


def test_sigterm_stops_the_cli_watcher_with_130_and_json_lines(tmp_path, none_model, footage):
    inbox = tmp_path / "in[" / "x]box [bold]draft"  # the path holds "[/x]": markup would crash the log line
    inbox.mkdir(parents=True)
    shutil.copy(footage[0], inbox / "a.mp4")
    # started as a parent blocking SIGTERM would (a CI worker once did: the watcher never saw it)
    proc = popen_sigterm_blocked(cli_cmd("scan", "--watch", inbox, "-m", none_model, "--db", tmp_path / "r.sqlite",
                                         "--json", "--settle", "0.5", "--poll", "0.3"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        first = json.loads(proc.stdout.readline())  # streamed as it is scored, before the watcher ends
        assert Path(first["path"]).name == "a.mp4" and first["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # a watcher that did not stop must not outlive the test
    assert proc.returncode == 130, err[-2000:]
    assert f"watching {inbox}" in err and "Traceback" not in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["summary"] and summary["interrupted"] and summary["files"] == 1


def test_watch_mistakes_are_one_line_before_any_work(tmp_path, none_model):
    from helpers import cli

    r = cli("scan", "--watch", tmp_path / "missing", "-m", none_model, "--db", tmp_path / "r.sqlite")
    assert r.returncode == 3 and "is not one" in r.stderr, r.stderr
    r = cli("scan", "--watch", tmp_path, tmp_path, "-m", none_model)
    assert r.returncode == 3 and "--watch takes one folder" in r.stderr
    r = cli("jobs", "add", "scan", tmp_path, "--watch", "-m", none_model, "--db", tmp_path / "q.sqlite")
    assert r.returncode == 3 and "not for a queued job" in r.stderr


def test_a_folder_moved_in_is_one_event_that_brings_its_files(tmp_path):
    """The OS reports a folder moved in whole as one event for the folder: its videos are tracked
    at once, not left for the next walk of the watched folder (30 s later by default); a link to a
    folder inside the tree is left to the walk (which follows it once), not listed again."""
    from truthnet.watch import Arrivals

    root = tmp_path / "inbox"
    (root / "batch" / "deeper").mkdir(parents=True)
    for name in ("batch/a.mp4", "batch/deeper/b.mov", "batch/notes.txt", "batch/skip.mp4"):
        (root / name).write_bytes(b"x" * 10)
    (root / "loop").symlink_to(root)
    now = [0.0]
    arrivals = Arrivals(str(root), settle=1.0, exclude=["skip.*"], clock=lambda: now[0])
    arrivals.changed([("added", root / "batch"), ("added", root / "batch" / "deeper"), ("added", root / "loop"),
                      ("modified", root / "batch")])
    assert sorted(Path(p).relative_to(root).as_posix() for p in arrivals.pending) == ["batch/a.mp4",
                                                                                        "batch/deeper/b.mov"]
    now[0] = 0.5
    assert arrivals.ready() == []  # not yet unchanged for the settle time
    (root / "batch" / "a.mp4").write_bytes(b"x" * 20)  # still growing (by a writer that closes it each time)
    now[0] = 1.2
    assert [Path(p).name for p in arrivals.ready()] == ["b.mov"]
    now[0] = 2.3
    assert [Path(p).name for p in arrivals.ready()] == ["a.mp4"]
    assert arrivals.ready() == [] and not arrivals.pending  # each handed out once

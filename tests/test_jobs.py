"""The job queue for real: runner and job processes, signals, two runners on one SQLite store.

Fault tests use the test-only ``_selftest`` job kind (it reports its process's environment and
sleeps, without TensorFlow), installed for them as a plugin (``selftest_kind`` in conftest); one
real scan job runs end to end through ``truthnet jobs``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from truthnet.jobs import JobQueue
from truthnet.procs import alive as _alive
from truthnet.testing.jobs import KIND as SELFTEST_KIND

from helpers import cli, popen_sigterm_blocked, wait_until

pytestmark = pytest.mark.usefixtures("selftest_kind")


def start_runner(db, *devices, until_empty=True, grace=None):
    cmd = [sys.executable, "-m", "truthnet.cli", "jobs", "run", "--db", str(db), "--skip-gpu-check"]
    for d in devices:
        cmd += ["--device", d]
    if until_empty:
        cmd.append("--until-empty")
    if grace is not None:
        cmd += ["--grace", str(grace)]
    # started as a parent blocking SIGTERM would: the runner must still stop on it
    return popen_sigterm_blocked(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return err


def selftest(q, device="cpu", **options):
    return q.add(SELFTEST_KIND, "/", device=device, options=options)


def started(q, jid):
    """The job runs, its process has reported its environment and its work has begun."""

    def check():
        j = q.get(jid)
        return j["state"] == "running" and j["env"] is not None and j["stage"] is not None

    return check


def test_environment_contract_checked_in_the_child(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    a = selftest(q, "cpu", sleep=1.0)
    b = selftest(q, "gpu:1", sleep=1.0)
    finish(start_runner(db, "cpu", "gpu:1"))
    ja, jb = q.get(a), q.get(b)
    for job, want in ((ja, "-1"), (jb, "1")):
        assert job["state"] == "done", job["message"]
        assert job["result"]["env"] == {"CUDA_VISIBLE_DEVICES": want}  # what the child's os.environ said
        assert job["env"] == {"CUDA_VISIBLE_DEVICES": want}  # recorded on the job
        assert job["pid"] == job["result"]["pid"] and job["result"]["tensorflow_loaded"] is False
        first = q.log(job["id"])[0][2]
        assert first.startswith(f"pid {job['pid']} ") and f"CUDA_VISIBLE_DEVICES={want}" in first
    # devices in parallel: the two one-second jobs overlapped
    assert ja["started"] < jb["finished"] and jb["started"] < ja["finished"]


def test_a_killed_job_fails_alone_and_the_next_one_runs(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    victim = selftest(q, sleep=60, steps=60)
    aborts = selftest(q, abort=True)
    after = selftest(q, lines=2)
    runner = start_runner(db, "cpu")
    wait_until(started(q, victim), what="the first job to start")
    os.kill(q.get(victim)["pid"], signal.SIGKILL)
    finish(runner)
    v, a, n = q.get(victim), q.get(aborts), q.get(after)
    assert v["state"] == "failed" and "SIGKILL" in v["message"], v["message"]
    assert a["state"] == "failed" and "SIGABRT" in a["message"], a["message"]
    assert n["state"] == "done" and n["result"]["env"] == {"CUDA_VISIBLE_DEVICES": "-1"}


def test_cancel_queued_and_running_jobs(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    stubborn = selftest(q, sleep=60, steps=60, ignore_sigterm=True)
    waiting = selftest(q, lines=1)
    polite = selftest(q, sleep=60, steps=600)
    runner = start_runner(db, "cpu", grace=2)
    wait_until(started(q, stubborn), what="the first job to start")
    r = cli("jobs", "cancel", waiting, "--db", db)
    assert r.returncode == 0 and "had not started" in r.stdout
    assert q.get(waiting)["state"] == "cancelled"
    assert q.cancel(stubborn) == "requested"
    wait_until(lambda: q.get(stubborn)["state"] == "cancelled", what="the stubborn job to be killed")
    assert "SIGKILL" in q.get(stubborn)["message"]  # it ignored SIGTERM: killed after the grace
    wait_until(started(q, polite), what="the third job to start")
    q.cancel(polite)
    wait_until(lambda: q.get(polite)["state"] == "cancelled", what="the polite job to stop")
    assert "SIGKILL" not in q.get(polite)["message"]  # SIGTERM was enough (else SIGKILL after the grace)
    finish(runner)
    w = q.get(waiting)
    assert w["started"] is None and w["pid"] is None and w["attempt"] == 0 and q.log(waiting) == []
    r = cli("jobs", "cancel", waiting, "--db", db)
    assert r.returncode == 3 and "already cancelled" in r.stderr


def test_cancelling_queued_jobs_cannot_race_their_claim(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    marks = tmp_path / "ran.txt"
    marks.touch()
    devices = ("cpu", "gpu:0", "gpu:1")
    ids = [selftest(q, devices[i % 3], mark=str(marks)) for i in range(9)]
    runner = start_runner(db, *devices)
    wait_until(lambda: q.jobs(("running", "done")), what="a first claim")
    for jid in reversed(ids):  # cancel while the runner claims: each job is one or the other
        try:
            q.cancel(jid)
        except Exception as exc:  # it finished meanwhile
            assert "already done" in str(exc)
    finish(runner)
    ran = [int(line.split()[0]) for line in marks.read_text().splitlines()]
    for j in map(q.get, ids):
        if j["message"] == "cancelled before it started":
            assert j["id"] not in ran and j["attempt"] == 0 and j["pid"] is None
        else:  # claimed once; done, or stopped while it ran (perhaps before it wrote its mark)
            assert j["attempt"] == 1 and j["state"] in ("done", "cancelled")
            assert ran.count(j["id"]) == 1 if j["state"] == "done" else ran.count(j["id"]) <= 1
    assert len(ran) < len(ids)  # some were cancelled before any runner took them


def test_two_runners_on_one_store_never_run_a_job_twice(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    marks = tmp_path / "ran.txt"
    devices = ("cpu", "gpu:0", "gpu:1")
    ids = [selftest(q, devices[i % 3], mark=str(marks), sleep=0.1) for i in range(12)]
    runners = [start_runner(db, *devices) for _ in range(2)]
    for r in runners:
        finish(r)
    ran = [int(line.split()[0]) for line in marks.read_text().splitlines()]
    assert sorted(ran) == ids  # every job exactly once
    jobs = [q.get(i) for i in ids]
    assert all(j["state"] == "done" and j["attempt"] == 1 for j in jobs)
    for d in devices:  # one job at a time per device, across both runners
        spans = sorted((j["started"], j["finished"]) for j in jobs if j["device"] == d)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_restarted_runner_recovers_and_retry_runs_it_again(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    lost = selftest(q, sleep=60, steps=60, sleep_attempts=[1])
    nxt = selftest(q)
    first = start_runner(db, "cpu", until_empty=False)
    wait_until(started(q, lost), what="the job to start")
    assert q.recover() == [] and q.get(lost)["state"] == "running"  # a live runner's job is left alone
    assert "tensorflow" not in Path(f"/proc/{first.pid}/maps").read_text()  # the runner never loads it
    pid = q.get(lost)["pid"]
    first.kill()
    first.communicate()
    wait_until(lambda: not _alive(pid, None), what="the orphaned job to stop itself")
    finish(start_runner(db, "cpu"))
    job = q.get(lost)
    assert job["state"] == "interrupted" and "retry" in job["message"]
    assert q.get(nxt)["state"] == "done"
    r = cli("jobs", "retry", lost, "--db", db)
    assert r.returncode == 0, r.stderr
    finish(start_runner(db, "cpu"))
    job = q.get(lost)
    assert job["state"] == "done" and job["attempt"] == 2
    log = [line for _, _, line in q.log(lost)]
    assert any(line.startswith("interrupted:") for line in log) and "--- queued again ---" in log


def test_a_long_log_stays_fast(tmp_path):
    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    jid = selftest(q, lines=20_000)
    finish(start_runner(db, "cpu"))
    log = q.log(jid)
    assert q.get(jid)["state"] == "done" and len(log) == 20_002  # the env line, 20,000 lines, the outcome
    assert log[1][2] == "selftest line 0" and log[-2][2] == "selftest line 19999"
    # the tail is read through the (job_id, id) index, never by scanning or sorting the whole log
    con, statements = q.store.con, []
    con.set_trace_callback(statements.append)
    try:
        tail = q.log(jid, tail=200)
    finally:
        con.set_trace_callback(None)
    assert tail == log[-200:]
    (select,) = [x for x in statements if x.lstrip().upper().startswith("SELECT")]
    plan = " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + select))
    assert "USING" in plan and "INDEX job_log_job" in plan and "TEMP B-TREE" not in plan, plan
    # appending inserts the new lines and nothing else (the old text column rewrote the whole log):
    # the same count of row changes at 20,000 lines as at none
    other = selftest(q)
    for _ in range(2):
        before = con.total_changes
        q.append_log(other, (f"line {k}" for k in range(1000)))
        assert con.total_changes - before == 1000
    q.append_log(other, (f"line 19-{k}" for k in range(1000)))
    r = cli("jobs", "log", other, "--tail", 2, "--db", db)
    assert r.stdout.splitlines() == ["line 19-998", "line 19-999"]


@pytest.mark.slow
@pytest.mark.allow_untrained
def test_a_real_scan_job_end_to_end(tmp_path, none_model):
    from truthnet.store import Store
    from truthnet.synth import make_face_clip

    folder = tmp_path / "videos"
    for i in range(2):
        make_face_clip(folder / "sub" / f"c{i}.mp4", n_frames=6, seed=i, width=96, height=72, face_size=40)
    db = tmp_path / "q.sqlite"
    r = cli("jobs", "add", "scan", folder, "--model", none_model, "--db", db)  # as `truthnet scan`: not below
    assert r.returncode == 3 and "has 2 in sub-folders" in r.stderr and "-r" in r.stderr
    r = cli("jobs", "add", "scan", folder, "-r", "--model", none_model, "--db", db)
    assert r.returncode == 0 and r.stdout.startswith("job 1 queued: scan"), r.stderr
    assert "1 queued job(s) wait for cpu, and no runner serves it" in r.stderr
    r = cli("jobs", "run", "--device", "cpu", "--until-empty", "--db", db, child=True)
    assert r.returncode == 0, r.stderr
    job = json.loads(cli("jobs", "list", "--json", "--db", db).stdout.splitlines()[0])
    assert job["state"] == "done", job["message"]
    assert (job["stage"], job["done"], job["total"], job["progress"]) == ("scan", 2, 2, 1.0)
    assert job["env"] == {"CUDA_VISIBLE_DEVICES": "-1"} and job["pid"]
    rows = Store(db).results(job["result"]["scan_id"])
    assert sorted(Path(x.path).name for x in rows) == ["c0.mp4", "c1.mp4"] and all(x.status == "ok" for x in rows)
    log = cli("jobs", "log", "1", "--db", db).stdout.splitlines()
    assert log[0].startswith(f"pid {job['pid']} ") and any(line.startswith("sub/c0.mp4: ") for line in log)
    assert log[-1].startswith("done: ")


def test_job_paths_are_absolute_normalised_and_checked_when_queued(tmp_path, monkeypatch, none_model):
    """The runner may start in another folder, hours later: what is queued is what the store
    will name (absolute, normalised, links kept as typed), and a missing model fails now."""
    from truthnet.errors import ConfigError, ModelError

    (tmp_path / "case" / "sub").mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "case")
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    q = JobQueue(tmp_path / "q.sqlite")
    job = q.get(q.add("scan", "current/sub/../sub", model=os.path.relpath(none_model)))
    assert job["target"] == str(tmp_path / "current" / "sub")
    assert job["model"] == os.path.normpath(os.path.abspath(none_model))
    with pytest.raises(ModelError, match="model file not found"):
        q.add("scan", "case", model="nope.keras")
    with pytest.raises(ModelError, match="truthnet demo"):
        q.add("evaluate", "case", model=None)
    with pytest.raises(ConfigError, match="dataset folder or a manifest CSV"):
        q.add("evaluate", "notes.txt", model=none_model)
    with pytest.raises(ConfigError, match="no such file or folder"):
        q.add("train", "gone")
    assert [j["id"] for j in q.jobs()] == [job["id"]]


def test_jobs_command_errors(tmp_path, monkeypatch, capsys):
    from truthnet.cli import main

    db = str(tmp_path / "q.sqlite")

    def run(*args):
        code = main(["jobs", *map(str, args), "--db", db])
        return code, capsys.readouterr().err

    assert run("add", "scan", tmp_path / "nope")[0] == 3
    code, err = run("add", "scan", tmp_path, "--device", "tpu")
    assert code == 3 and "cpu or gpu:N" in err
    code, err = run("add", "scan", tmp_path)
    assert code == 4 and "truthnet demo" in err
    code, err = run("add", "train", tmp_path, "--model", "m.keras")  # `truthnet train` has no --model
    assert code == 3 and "unrecognized arguments: --model m.keras" in err
    code, err = run("add", "train", tmp_path, "--preset", "huge")
    assert code == 3 and "paper" in err
    code, err = run("log", 7)
    assert code == 3 and "no job 7" in err
    code, err = run("retry", 7)
    assert code == 3 and "no job 7" in err
    assert JobQueue(db).jobs() == []


@pytest.mark.slow
@pytest.mark.fresh_device_cache
def test_gpu_discovery_runs_once_in_a_child_and_refuses_missing_gpus(tmp_path):
    r = cli("jobs", "run", "--device", "gpu:7", "--db", tmp_path / "q.sqlite", child=True)
    assert r.returncode == 3 and "gpu:7 not found" in r.stderr and "Traceback" not in r.stderr
    cache = json.loads((Path(os.environ["TRUTHNET_CACHE"]) / "devices.json").read_text())
    assert cache["devices"][0] == "cpu"
    # the cached answer: no TensorFlow this time (an import of it would fail here)
    notf = tmp_path / "no-tensorflow" / "tensorflow"
    notf.mkdir(parents=True)
    (notf / "__init__.py").write_text("raise ImportError('tensorflow was imported')\n")
    r = cli("jobs", "run", "--device", "gpu:7", "--db", tmp_path / "q.sqlite",
            env={"PYTHONPATH": str(notf.parent)}, child=True)
    assert r.returncode == 3 and "gpu:7 not found" in r.stderr and "tensorflow was imported" not in r.stderr, r.stderr


def test_progress_comes_from_structured_events_never_from_wording(capsys):
    from truthnet.events import Event
    from truthnet.jobs.work import event_progress

    events = []
    on_event = event_progress(lambda *ev: events.append(ev))
    # the training code's own events carry their structure; any wording is fine
    for ev in (Event("epoch", 3, 12, "Epoch three of twelve, loss 0.41"),
               Event("faces", 10, 40, "cropping faces (10 of 40)"), "epoch 7/9 looks like counts"):
        on_event(Event.of(ev))
    assert events == [("epoch", 3, 12, "Epoch three of twelve, loss 0.41"),
                      ("faces", 10, 40, "cropping faces (10 of 40)"),
                      (None, None, None, "epoch 7/9 looks like counts")]  # plain text: never parsed
    assert capsys.readouterr().out.splitlines()[0] == "Epoch three of twelve, loss 0.41"


def test_a_store_from_before_the_queue_is_upgraded(tmp_path):
    import sqlite3

    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript("""CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
        target TEXT NOT NULL, model TEXT, preset TEXT, device TEXT NOT NULL DEFAULT 'cpu',
        state TEXT NOT NULL DEFAULT 'queued', created REAL NOT NULL, started REAL, finished REAL,
        progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', result TEXT, log TEXT NOT NULL DEFAULT '');
        INSERT INTO jobs (kind, target, state, created, log) VALUES ('scan', '/v', 'running', 1.0, 'one\ntwo\n');""")
    con.commit()
    con.close()
    q = JobQueue(db)
    assert [line for _, _, line in q.log(1)] == ["one", "two"]
    assert q.recover() == [1] and q.get(1)["state"] == "interrupted"  # the old app's thread is gone
    assert q.get(selftest(q))["state"] == "queued"


def test_the_queue_cli_and_app_modules_do_not_import_tensorflow(python):
    code = ("import sys, truthnet.cli, truthnet.cli.jobs, truthnet.jobs.runner, truthnet.jobs.child, "
            "truthnet.jobs.work, truthnet.tui.app; print([m for m in ('tensorflow', 'keras') if m in sys.modules])")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_the_eta_names_the_stage_it_is_for():
    from truthnet.jobs.text import eta_text

    job = {"state": "running", "eta": 43.0, "updated": time.time(), "stage": "faces"}
    assert eta_text(job).endswith("s (faces)") and eta_text({**job, "eta": 600.0}).startswith("10 min")
    assert eta_text({**job, "state": "done"}) == ""


@pytest.mark.allow_untrained
def test_a_running_watcher_does_not_hold_its_device(tmp_path, selftest_kind, none_model):
    """A watch job runs until stopped: other jobs on its device run beside it, and cancelling it
    stops it."""
    db = tmp_path / "q.sqlite"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    q = JobQueue(db)
    watcher = q.add("watch", inbox, model=none_model, device="cpu")
    runner = start_runner(db, "cpu", until_empty=False)
    try:
        wait_until(lambda: q.get(watcher)["state"] == "running", what="the watcher to run")
        other = selftest(q, "cpu")
        wait_until(lambda: q.get(other)["state"] == "done", timeout=240, what="a job beside the watcher")
        assert q.get(watcher)["state"] == "running"
        q.cancel(watcher)
        wait_until(lambda: q.get(watcher)["state"] not in ("queued", "running"), timeout=120,
                   what="the watcher to stop")
        assert q.get(watcher)["state"] in ("cancelled", "interrupted")
    finally:
        runner.terminate()
        runner.communicate(timeout=60)
    assert runner.returncode == 130  # its handler saw SIGTERM (blocked at its start) and stopped it cleanly

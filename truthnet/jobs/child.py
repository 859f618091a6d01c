"""``python -m truthnet.jobs.child --db DB --job ID --events FD``: one job in its own process.

The runner starts it with ``CUDA_VISIBLE_DEVICES`` already set from the job's device, its
stdout and stderr on a pipe (the job's log) and a second pipe, ``FD``, for JSON events:

* ``{"type": "env", "pid", "host", "device", "env"}`` first, before anything heavy is imported;
* ``{"type": "progress", "stage", "done", "total", "message"}`` as work goes on;
* ``{"type": "result", "result", "message"}`` or ``{"type": "error", "message"}`` at the end,
  or ``{"type": "stopped", "signal"}`` when SIGTERM/SIGINT stopped it.

SIGTERM becomes KeyboardInterrupt, so a scan stops cleanly between files.  When the runner
dies, the child's stdin reaches end-of-file and the child stops itself: no orphaned job keeps a
GPU busy while its row says ``interrupted``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path

from ..signals import handle
from .devices import cuda_visible_devices

#: seconds a child whose runner died gets to stop before it kills its own process group
ORPHAN_GRACE = 10.0


class Events:
    """JSON lines on the event pipe (a runner that went away is the stdin watcher's business)."""

    def __init__(self, fd: int) -> None:
        self.fh = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.lock = threading.Lock()

    def send(self, type_: str, **fields) -> None:
        line = json.dumps({"type": type_, **fields}, default=str)
        with self.lock:
            try:
                self.fh.write(line + "\n")
                self.fh.flush()
            except (OSError, ValueError):
                pass


def _watch_runner() -> None:
    """Stop this job when its runner goes away (our stdin is a pipe the runner holds open)."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        try:  # the log pipe may have died with the runner
            print("the runner is gone: stopping this job", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(ORPHAN_GRACE)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="runner-watch").start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="truthnet.jobs.child")
    ap.add_argument("--db", required=True)
    ap.add_argument("--job", type=int, required=True)
    ap.add_argument("--events", type=int, required=True, help="file descriptor for JSON events")
    args = ap.parse_args(argv)
    events = Events(args.events)
    stopped: list[str] = []

    def on_signal(signum, frame):
        stopped.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    try:  # a SIGTERM pending since the start (a parent that blocked it) lands here too
        handle((signal.SIGTERM, signal.SIGINT), on_signal)
        return _work(args.db, args.job, events)
    except KeyboardInterrupt:
        events.send("stopped", signal=stopped[0] if stopped else "SIGINT")
        return 130


def _work(db: str, job_id: int, events: Events) -> int:
    """Run the job; its failure is an ``error`` event and exit code 1 (a stop propagates)."""
    from .queue import JobQueue

    queue = JobQueue(db)
    job = queue.get(job_id)
    want = cuda_visible_devices(job["device"])
    if os.environ.get("CUDA_VISIBLE_DEVICES") != want:  # started by hand: pin it now, before TensorFlow
        os.environ["CUDA_VISIBLE_DEVICES"] = want
    events.send("env", pid=os.getpid(), host=socket.gethostname(), device=job["device"],
                env={"CUDA_VISIBLE_DEVICES": os.environ["CUDA_VISIBLE_DEVICES"]},
                tensorflow_loaded="tensorflow" in sys.modules)
    _watch_runner()

    def report(stage, done, total, message: str) -> None:
        events.send("progress", stage=stage, done=done, total=total, message=message)

    from .work import run_work

    out_dir = Path(queue.path).resolve().parent / "runs" / f"job-{job['id']}-{job['kind']}"
    try:
        result = run_work(job, queue.store, report, out_dir)
    except Exception as exc:  # the job fails alone, with the reason on its row and the trace in its log
        from ..errors import TruthnetError

        if not isinstance(exc, TruthnetError):
            traceback.print_exc()
        events.send("error", message=str(exc) if isinstance(exc, TruthnetError) else f"{type(exc).__name__}: {exc}")
        return 1
    message = str(result.pop("message", "done"))
    events.send("result", result=result, message=message)
    return 0


def _run_exit_handlers(limit: float = 10.0) -> None:
    """The ``atexit`` clean-ups ``os._exit`` would skip (TensorFlow deletes the source files of
    the functions it traced from the temporary folder there), in a thread given ``limit``
    seconds: a handler that hangs must not keep a finished job alive."""
    import atexit
    import threading

    t = threading.Thread(target=atexit._run_exitfuncs, name="exit-handlers", daemon=True)
    t.start()
    t.join(limit)


if __name__ == "__main__":
    code = main()
    # the job is over and its outcome sent: a stop signal from now on must not raise into the
    # exit (a traceback, the interpreter's teardown, another exit code); it dies with the process
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    _run_exit_handlers()
    os._exit(code)  # skip interpreter teardown: TensorFlow's threads can hang it after the work is done

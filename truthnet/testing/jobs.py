"""A job kind for TruthNet's own fault tests, offered through the job-kind hook like any
plugin's (``truthnet_register_job_kinds``): the real queue knows it only where the test suite
installs it (``tests/plugins``: an entry point ``selftest``, loaded with
``TRUTHNET_LOAD_PLUGINS=selftest``).

``_selftest`` reports the environment its process saw, and does what a test asks through the
job's ``options``: append its id to a ``mark`` file, ``ignore_sigterm``, print ``lines`` lines,
sleep ``sleep`` seconds (only on the attempts listed in ``sleep_attempts``, if given) in
``steps`` (or until the file ``gate`` exists: a test releases the job once it has seen it
run), ``abort``.  It imports no TensorFlow, so fault tests run in seconds."""

from __future__ import annotations

import os
import signal
import sys
import time

from ..plugins import hookimpl

KIND = "_selftest"


def run(job: dict, store, report, out_dir) -> dict:
    o = job.get("options") or {}
    if o.get("mark"):
        with open(o["mark"], "a") as fh:
            fh.write(f"{job['id']} {os.getpid()}\n")
    if o.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for i in range(int(o.get("lines", 0))):
        print(f"selftest line {i}")
    sys.stdout.flush()
    sleep = float(o.get("sleep", 0))
    if "sleep_attempts" in o and job.get("attempt") not in o["sleep_attempts"]:
        sleep = 0.0
    steps = max(1, int(o.get("steps", 1)))
    for i in range(steps):
        report("sleep", i, steps, f"step {i}/{steps}")
        if o.get("gate") and os.path.exists(o["gate"]):
            break  # the test has seen what it waited for: finish now
        time.sleep(sleep / steps)
    if o.get("abort"):
        os.abort()
    report("sleep", steps, steps, "slept")
    return {"message": "selftest done", "pid": os.getpid(), "attempt": job.get("attempt"),
            "env": {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")},
            "tensorflow_loaded": "tensorflow" in sys.modules}


@hookimpl
def truthnet_register_job_kinds(register) -> None:
    register(KIND, run, "test-only: sleeps, prints, aborts or ignores SIGTERM as its options say")

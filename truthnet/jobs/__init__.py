"""The job queue: scans, training and evaluations queued in the results store and run by
runners, one process per job, pinned to its device (see ``docs/jobs.md``).

* :mod:`.queue`: the tables and every state change (claim, cancel, retry, leases, the log);
* :mod:`.runner`: takes queued jobs, one at a time per device, and watches their processes;
* :mod:`.child`: the process of one job; :mod:`.work`: what each kind of job does;
* :mod:`.devices`: ``cpu`` / ``gpu:N``, the environment that pins a job, GPU discovery.

Nothing here imports TensorFlow or Textual; only a job's own process loads TensorFlow.
"""

from __future__ import annotations

from ..device import device_name
from .devices import child_env, cuda_visible_devices, discover_devices
from .queue import JOB_KINDS, RETRYABLE, STATES, JobQueue

__all__ = [
    "JOB_KINDS", "RETRYABLE", "STATES", "JobQueue", "child_env", "cuda_visible_devices",
    "device_name", "discover_devices", "start_runner",
]


def start_runner(db, devices: list[str], *, owner: str = "tui", log_path=None):
    """Start ``truthnet jobs run --until-empty`` for ``devices`` as a separate, detached process
    (it outlives the caller if asked to); returns its ``subprocess.Popen``."""
    import subprocess
    import sys
    from pathlib import Path

    cmd = [sys.executable, "-m", "truthnet.cli", "jobs", "run", "--until-empty", "--skip-gpu-check",
           "--owner", owner, "--db", str(db)]
    for d in devices:
        cmd += ["--device", d]
    from ..procs import python_env

    env = python_env()
    log_path = Path(log_path) if log_path else Path(db).resolve().parent / "runs" / "runner.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        # its own session: Ctrl-C in the terminal and the app's exit do not reach it
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)

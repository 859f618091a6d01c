"""Job devices (``cpu``, ``gpu:N``), the environment a job's process gets, and GPU discovery.

A job is pinned to its device by the environment its process starts with, before TensorFlow
loads: ``CUDA_VISIBLE_DEVICES=-1`` hides every GPU from a ``cpu`` job, ``CUDA_VISIBLE_DEVICES=N``
leaves a ``gpu:N`` job only that GPU (which TensorFlow inside the job then calls GPU 0).

GPUs are discovered by asking TensorFlow in a separate process and caching the answer, so that
neither the runner nor the TUI ever imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..device import device_name
from ..errors import ConfigError

#: how long a discovery result is trusted (drivers and cards do not change often)
CACHE_SECONDS = 24 * 3600.0


def cuda_visible_devices(device: str) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value that pins a process to ``device``."""
    d = device_name(device)
    return "-1" if d == "cpu" else d.split(":")[1]


def child_env(device: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a job's process: ``base`` (default: ours) pinned to ``device``."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices(device)
    env["PYTHONUNBUFFERED"] = "1"  # the log shows lines as they are printed, not at exit
    # a cpu job hides the GPUs on purpose: TensorFlow's "failed call to cuInit" is noise there
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if device == "cpu" else "2")
    return env


# --- discovery -----------------------------------------------------------------------------

_PROBE = (
    "import json, os\n"
    "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')\n"
    "from truthnet._lazy import import_tensorflow\n"
    "tf = import_tensorflow()\n"
    "print(json.dumps([d.name for d in tf.config.list_physical_devices('GPU')]))\n"
)


def _cache_file() -> Path:
    from ..settings import default_cache_dir

    return default_cache_dir() / "devices.json"


def _cache_key() -> str:
    # a different interpreter (venv) or a narrowed CUDA_VISIBLE_DEVICES sees other GPUs
    return f"{socket.gethostname()}|{sys.executable}|{os.environ.get('CUDA_VISIBLE_DEVICES', '')}"


def discover_devices(*, refresh: bool = False, timeout: float = 300.0) -> list[str]:
    """``["cpu", "gpu:0", ...]``: the GPUs TensorFlow sees, asked in a child process, cached.

    A failed probe (TensorFlow missing or crashing) raises ConfigError with its output: a
    silent "cpu only" would queue GPU work that then runs nowhere."""
    path = _cache_file()
    key = _cache_key()
    if not refresh:
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key and time.time() - cached.get("time", 0) < CACHE_SECONDS:
                return list(cached["devices"])
        except (OSError, ValueError, KeyError, AttributeError):
            pass
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"listing GPUs took longer than {timeout:.0f} s (TensorFlow did not start)") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise ConfigError("could not list GPUs: TensorFlow failed to start: " + " / ".join(tail))
    names = json.loads(r.stdout.strip().splitlines()[-1])
    devices = ["cpu", *(f"gpu:{i}" for i in range(len(names)))]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "time": time.time(), "devices": devices, "names": names}))
    except OSError:
        pass  # a read-only cache folder costs a re-probe next time, nothing else
    return devices

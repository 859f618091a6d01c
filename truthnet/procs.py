"""Is the process that wrote a row still running?  Used for jobs (their runner) and scans (their
``truthnet scan``): a row whose process is gone is shown ``interrupted``, never ``running`` forever.

A pid alone is not an identity (pids are reused), so the process's start time is kept with it
(Linux: ``/proc/PID/stat``); and the question is only asked on the host that wrote the row.
"""

from __future__ import annotations

import os
import socket


def proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else fields[19].decode()  # a zombie is not alive
    except (OSError, IndexError):
        return None


def alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is running and (where it can be told) is the process that started at ``start``."""
    if os.path.exists("/proc/self/stat"):
        now = proc_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def identity() -> dict:
    """This process, as :func:`gone` needs it later: pid, start time, host."""
    pid = os.getpid()
    return {"pid": pid, "proc_start": proc_start(pid), "host": socket.gethostname()}


def gone(who: dict | None) -> bool:
    """True when the process :func:`identity` described has certainly ended (same host, not
    alive); False when it runs or cannot be told (another host, an old row without it)."""
    if not who or not who.get("pid") or who.get("host") != socket.gethostname():
        return False
    return not alive(int(who["pid"]), who.get("proc_start"))


def python_env(env: dict[str, str] | None = None, *, whole_sys_path: bool = False) -> dict[str, str]:
    """``env`` (default: this process's environment) for a ``python -m truthnet...`` child: its
    ``PYTHONPATH`` starts with the folder holding this very truthnet (whatever the caller's
    working folder or install), and with ``whole_sys_path`` holds every folder this process
    imports from (a decode function defined in the caller's own package)."""
    import sys
    from pathlib import Path

    env = dict(os.environ if env is None else env)
    first = [str(Path(__file__).resolve().parents[1])]
    if whole_sys_path:
        first += [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in (*first, env.get("PYTHONPATH")) if p))
    return env


def open_for_writing() -> set[tuple[int, int]]:
    """``(st_dev, st_ino)`` of every file some process can see open for writing (Linux: the
    ``/proc/PID/fd`` links and their ``fdinfo`` flags; processes we may not inspect are not
    seen).  Empty where ``/proc`` is absent."""
    out: set[tuple[int, int]] = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    flags = next((int(x.split()[1], 8) for x in fh if x.startswith("flags:")), 0)
                if flags & 3 == 0:  # O_RDONLY: a reader, not a writer
                    continue
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except (OSError, ValueError):
                continue
            out.add((st.st_dev, st.st_ino))
    return out

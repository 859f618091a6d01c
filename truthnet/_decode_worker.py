"""The scanner's decode worker: ``python -m truthnet._decode_worker FD MODULE:FUNCTION``.

A plain subprocess (not multiprocessing): it never re-imports the user's ``__main__``, so a
script that calls the scanner without an ``if __name__ == "__main__"`` guard still works.  It
reads ``(key, config, path, windows)`` tasks from the socket ``FD`` and answers
``(key, "ok", payload)`` or ``(key, "error", (status, reason))``.
"""

from __future__ import annotations

import importlib
import signal
import sys
from multiprocessing.connection import Connection


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    fd, spec = int(sys.argv[1]), sys.argv[2]
    module, _, name = spec.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    decode_fn = obj
    from truthnet.errors import VideoError

    conn = Connection(fd)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        key, config, path, windows = task
        try:
            info, per_window, seconds = decode_fn(config, path, windows)
            conn.send((key, "ok", (info, per_window, seconds)))
        except VideoError as exc:
            conn.send((key, "error", (exc.status, exc.reason)))
        except Exception as exc:  # an unexpected decoder failure is this file's problem only
            conn.send((key, "error", ("decode_error", f"{type(exc).__name__}: {exc}")))


if __name__ == "__main__":
    main()

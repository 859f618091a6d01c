"""The scanner's decode worker: ``python -m truthnet.decode.worker FD MODULE:FUNCTION``.

A plain subprocess (not multiprocessing): it never re-imports the user's ``__main__``, so a
script that calls the scanner without an ``if __name__ == "__main__"`` guard still works.  It
imports its decode function and says :data:`~truthnet.decode.isolation.READY` (or, when the import
fails, one ``SetupFailed``: the configuration's fault, not any file's), then reads
:class:`~truthnet.decode.isolation.DecodeTask` messages from the socket ``FD`` and answers each with
one message of :mod:`truthnet.decode.isolation` (``Decoded``, ``DecodeFailed``, ``SetupFailed``).
It never outlives the process that started it.
"""

from __future__ import annotations

import importlib
import signal
import sys
from multiprocessing.connection import Connection


def _load(spec: str):
    module, _, name = spec.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _die_with(parent: int) -> None:
    """Exit as soon as ``parent`` is gone, even in the middle of a decode (a scan killed with -9
    must not leave a decoder running on, possibly at gigabytes).  A thread that polls the parent
    pid rather than ``PR_SET_PDEATHSIG``, which fires when the *thread* that started this process
    ends, not the process."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    import os

    _die_with(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    fd, spec = int(sys.argv[1]), sys.argv[2]
    conn = Connection(fd)
    from truthnet.decode.isolation import READY, SetupFailed, decode_one

    try:
        fn = _load(spec)
    except Exception as exc:
        conn.send(SetupFailed(-1, f"the decode worker cannot import {spec}: {type(exc).__name__}: {exc}"))
        return
    # One OpenCV thread per worker: the engine runs as many workers as it wants busy cores, and
    # OpenCV's own pool on top of that only oversubscribes them (measured: 12.1 s -> 10.7 s for
    # 20 realistic reads on 2 cores)
    import cv2

    cv2.setNumThreads(1)
    # MTCNN detecting here keeps its NumPy pyramid: TensorFlow's faster kernels would cost each
    # worker ~0.6 GB and ~4 s of a core to import, the memory once per core, and a worker sees
    # only its share of a scan's pixels (mtcnn_pyramid.TENSORFLOW_KERNELS_AFTER)
    from truthnet.plugins import mtcnn_pyramid

    mtcnn_pyramid.TENSORFLOW_KERNELS_AFTER = float("inf")
    conn.send(READY)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(decode_one(fn, task))


if __name__ == "__main__":
    main()

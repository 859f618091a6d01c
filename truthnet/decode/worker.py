"""The scanner's decode worker: ``python -m truthnet.decode.worker FD MODULE:FUNCTION``.

A plain subprocess (not multiprocessing): it never re-imports the user's ``__main__``, so a
script that calls the scanner without an ``if __name__ == "__main__"`` guard still works.  It
imports its decode function and says :data:`~truthnet.decode.isolation.READY` (or, when the import
fails, one ``SetupFailed``: the configuration's fault, not any file's), then reads
:class:`~truthnet.decode.isolation.DecodeTask` messages from the socket ``FD`` and answers each with
one message of :mod:`truthnet.decode.isolation` (``Decoded``, ``DecodeFailed``, ``SetupFailed``).
It never outlives the process that started it.

``python -m truthnet.decode.worker --template FD MODULE:FUNCTION [--native]`` is the same
process as a template (Linux): it imports and warms up once (``--native``: MTCNN's compiled
kernels too), then forks a ready worker for each socket the scanner sends it over ``FD``,
reaps them and reports how each ended, so a pool of N workers pays the imports once, not N
times (:class:`truthnet.decode.isolation.IsolatedDecoder`).  It forks only while it is the
only thread of its process, and ends (its workers with it) when the scanner's socket closes.
"""

from __future__ import annotations

import importlib
import os
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
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _set_up(spec: str):
    """The decode function, imported, with this process set up to decode: ``(function, None)``,
    or ``(None, SetupFailed)`` when the import fails."""
    from truthnet.decode.isolation import SetupFailed

    try:
        fn = _load(spec)
    except Exception as exc:
        return None, SetupFailed(-1, f"the decode worker cannot import {spec}: {type(exc).__name__}: {exc}")
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
    return fn, None


def _serve(conn: Connection, fn) -> None:
    """Say READY, then answer tasks until ``None`` or the socket closes."""
    from truthnet.decode.isolation import READY, decode_one

    conn.send(READY)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(decode_one(fn, task))


def main() -> None:
    if sys.argv[1] == "--template":
        return template(int(sys.argv[2]), sys.argv[3], native="--native" in sys.argv[4:])
    _die_with(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    conn = Connection(int(sys.argv[1]))
    fn, failed = _set_up(sys.argv[2])
    if failed is not None:
        conn.send(failed)
        return
    _serve(conn, fn)
    # done: no interpreter teardown (unloading OpenVINO, Numba, OpenCV: ~0.1-0.3 s of a core),
    # which the scanner would wait for when it closes its pool
    os._exit(0)


# --- the template -----------------------------------------------------------------------------


def _warm(native: bool) -> None:
    """What every worker would otherwise import on its first file (each import here is one
    fewer in every worker); ``native``: MTCNN's compiled kernels too (~0.65 s of a core per
    process that loads them).  Nothing here may start a thread: the template forks."""
    from truthnet import pipeline, plugins, video  # noqa: F401
    from truthnet.plugins import face_detectors, mtcnn_openvino  # noqa: F401
    from truthnet.runtime.ovcache import import_openvino

    plugins.get_entry("face_detector", "mtcnn")  # the plugin manager and the installed plugins
    import_openvino()  # (its module only: an OpenVINO Core starts threads, so each worker makes its own)
    if native:
        from truthnet.plugins.mtcnn_ops import native_kernels

        native_kernels()


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0  # cannot tell: do not fork


def template(fd: int, spec: str, *, native: bool) -> None:
    """Serve the scanner's requests on ``fd``: ``("fork", key)`` then a socket (SCM_RIGHTS):
    fork a worker on it, answer ``("forked", key, pid)`` (or ``("refused", key)``, the socket
    closed unused); ``("kill", key)``: SIGKILL that worker if it still runs; ``("native",)``:
    load MTCNN's compiled kernels now (for the workers forked after); ``None``, a closed socket
    or anything unexpected: kill and reap what is left and exit.  Each worker's end is reported
    as ``("exited", key, returncode)`` (negative: the signal, as Popen's)."""
    from multiprocessing.connection import wait
    from multiprocessing.reduction import recv_handle

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    fn, failed = _set_up(spec)
    if failed is None:
        try:
            _warm(native)
        except Exception:  # (a worker then imports what it needs itself, as a plain one does)
            pass
    me = os.getpid()
    children: dict[int, int] = {}  # pid -> key
    try:
        while True:
            _reap(conn, children)
            if not wait([conn], timeout=0.05):
                continue
            msg = conn.recv()
            if msg is None:
                break
            if msg[0] == "native":
                try:
                    if failed is None:
                        _warm(True)
                except Exception:  # (each worker then loads them when they pay, as a plain one does)
                    pass
            elif msg[0] == "kill":
                for pid, key in children.items():
                    if key == msg[1]:
                        os.kill(pid, signal.SIGKILL)
            elif msg[0] == "fork":
                key, handle = msg[1], recv_handle(conn)
                pid = _fork(conn, key, handle, fn, failed, me)
                if pid is not None:
                    children[pid] = key
    except BaseException:  # noqa: BLE001 - the scanner gone, or the stream out of step: end, never hang
        pass
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in children:  # reaped: no zombie left, and their CPU time counted in this process's parent
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        os._exit(0)  # (no interpreter teardown: the scanner waits for this exit when it closes its pool)


def _fork(conn: Connection, key: int, handle: int, fn, failed, me: int) -> int | None:
    """A worker forked on ``handle``: its pid, or None where none was (the import failed: the
    socket gets what a plain worker would send; a thread runs here after all, or the fork
    itself failed: the scanner starts a plain worker instead, its socket closing before READY)."""
    pid = None
    if failed is None and _threads() == 1:
        try:
            pid = os.fork()
        except OSError:
            pid = None
        if pid == 0:
            _forked(conn, handle, fn, me)  # (never returns)
    if pid is None:
        child = Connection(handle)
        if failed is not None:
            child.send(failed)
        child.close()
        conn.send(("refused", key))
        return None
    os.close(handle)
    conn.send(("forked", key, pid))
    return pid


def _forked(conn: Connection, handle: int, fn, template: int) -> None:
    """The worker, in the child of a fork: never returns into the template's loop."""
    code = 1
    try:
        conn.close()
        _die_with(template)  # (the pid from before the fork: the template may be gone already)
        _serve(Connection(handle), fn)
        code = 0
    finally:
        os._exit(code)


def _reap(conn: Connection, children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        key = children.pop(pid, None)
        if key is not None:
            conn.send(("exited", key, -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)))


if __name__ == "__main__":
    main()

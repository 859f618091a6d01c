"""Heavy imports, done only by the code that needs them (``import truthnet`` stays instant)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading


_quiet_lock = threading.Lock()
_quiet_depth = 0  # imports silencing fd 2 now (threads: the scan loads the model while it decodes)
_quiet_undo = None  # restores fd 2 (and sys.stderr) when the last of them finishes


@contextlib.contextmanager
def _quiet_native_stderr():
    """TensorFlow's C++ logging prints "Could not find cuda drivers" and the like straight to
    file descriptor 2 while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says.  Send fd 2 to
    /dev/null for the import only (``TRUTHNET_DEBUG=1`` keeps it).

    The import may run in a thread while the program goes on (a scan reads the weights while
    it decodes): Python's own ``sys.stderr`` keeps writing to the real stderr meanwhile, and
    imports in several threads at once share one silencing, undone when the last ends."""
    global _quiet_depth, _quiet_undo
    if os.environ.get("TRUTHNET_DEBUG") or "tensorflow" in sys.modules:
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_undo = _silence_fd2()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_undo is not None:
                _quiet_undo()
                _quiet_undo = None


def _silence_fd2():
    """Point fd 2 at /dev/null and ``sys.stderr`` (when it writes to fd 2) at a copy of the real
    one; returns the function that undoes both, or None when fd 2 cannot be redirected."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    python_stderr = wrapper = sys.stderr
    try:
        writes_fd2 = python_stderr.fileno() == 2
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        writes_fd2 = False  # pytest's capture, the TUI's terminal: not fd 2, nothing to keep
    if writes_fd2:
        # never closed: whatever picked it up meanwhile (a logging handler) keeps a working stream
        wrapper = io.TextIOWrapper(io.FileIO(os.dup(saved), "w"), encoding=python_stderr.encoding,
                                   errors=python_stderr.errors, line_buffering=True, write_through=True)
        sys.stderr = wrapper

    def undo() -> None:
        if writes_fd2:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            if sys.stderr is wrapper:  # (not if someone put their own there meanwhile)
                sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)

    return undo


def import_tensorflow():
    """Import TensorFlow quietly and return the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _quiet_native_stderr():
        import tensorflow as tf

    return tf


def import_keras():
    """Import Keras 3 (on the TensorFlow backend unless ``KERAS_BACKEND`` says otherwise)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _quiet_native_stderr():
        import keras

    return keras

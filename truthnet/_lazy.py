"""Heavy imports, done only by the code that needs them (``import truthnet`` stays instant)."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _quiet_native_stderr():
    """TensorFlow's C++ logging prints "Could not find cuda drivers" and the like straight to
    file descriptor 2 while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says.  Send fd 2 to
    /dev/null for the import only (``TRUTHNET_DEBUG=1`` keeps it)."""
    if os.environ.get("TRUTHNET_DEBUG") or "tensorflow" in sys.modules:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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

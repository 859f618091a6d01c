"""Heavy imports, done only by the code that needs them (``import truthnet`` stays instant)."""

from __future__ import annotations

import os


def import_tensorflow():
    """Import TensorFlow quietly and return the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    return tf


def import_keras():
    """Import Keras 3 (on the TensorFlow backend unless ``KERAS_BACKEND`` says otherwise)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras

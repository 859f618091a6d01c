"""The 0.1 home of the classifier (``Detector``): see :mod:`truthnet.classifier`."""

from .classifier import (  # noqa: F401
    Classifier,
    Detector,
    Verdict,
    label_for,
    load_classifier,
    load_detector,
    new_classifier,
    new_detector,
)

"""An example TruthNet plugin.

It provides, registered through the same hooks TruthNet's built-ins use:

* sampler ``middle-third``: N frames evenly spaced over the middle of the video (option
  ``fraction``, default 1/3);
* face detector ``centre``: pretends the face is the centred square of each frame (a stand-in
  for your own detector: return ``truthnet.faces.Face`` boxes in pixels; option ``size``);
* backbone ``micro``: a two-block CNN that builds in milliseconds (option ``width``);
* backbone ``micro-gate``: the same with the plugin's own Keras layer
  (:class:`truthnet_plugin_example.layers.ChannelGate`), which saved models load in safe mode.

Use them by name::

    truthnet train DATA --preset tiny --sampler middle-third --detector centre \\
        --backbone micro-gate --option backbone.width=8

This module imports no TensorFlow: TruthNet loads it whenever it looks a name up (also in the
scan's decode workers), so only the factories that need Keras import it.
"""

from __future__ import annotations

import numpy as np

from truthnet.backbones import Backbone
from truthnet.errors import ConfigError
from truthnet.faces import Face
from truthnet.plugins import hookimpl
from truthnet.video import VideoInfo


class MiddleThirdSampler:
    """A :class:`truthnet.plugins.contracts.Sampler`."""

    def __init__(self, fraction: float = 1 / 3) -> None:
        if not 0.0 < float(fraction) <= 1.0:
            raise ConfigError(f"middle-third: fraction must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def sample(self, info: VideoInfo, num_frames: int) -> list[int]:
        n = info.frame_count
        lo = int(n * (1 - self.fraction) / 2)
        hi = max(lo, int(n - lo) - 1)
        return sorted(set(np.linspace(lo, hi, num_frames).astype(int).tolist()))


class CentreDetector:
    """A :class:`truthnet.plugins.contracts.FaceDetector`: the centred square covering ``size``
    of the shorter side."""

    finds_faces = True
    runs_in_decoder = True  # NumPy only: `truthnet scan` may detect in its decode workers

    def __init__(self, size: float = 0.6) -> None:
        self.size = float(size)

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        out = []
        for f in frames:
            h, w = f.shape[:2]
            s = min(h, w) * self.size
            out.append([Face(((w - s) / 2, (h - s) / 2, s, s), confidence=0.99)])
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / 255.0


def micro_backbone(width: int = 8) -> Backbone:
    def build(size, weights):
        import keras

        inp = keras.Input((size, size, 3))
        x = keras.layers.Conv2D(width, 3, strides=2, activation="relu")(inp)
        x = keras.layers.Conv2D(width * 2, 3, strides=2, activation="relu")(x)
        model = keras.Model(inp, x, name="micro")
        if weights:
            model.load_weights(weights)
        return model

    return Backbone(name="micro", input_size=64, feature_dim=width * 2, builder=build, preprocess=_unit)


def micro_gate_backbone(width: int = 8, reduction: int = 2) -> Backbone:
    # Importing the layer module registers ChannelGate with Keras.  TruthNet calls this factory
    # before it deserialises a saved model that uses "micro-gate", so the model loads.
    from .layers import ChannelGate

    def build(size, weights):
        import keras

        inp = keras.Input((size, size, 3))
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(inp)
        x = keras.layers.Conv2D(width * 2, 3, strides=2, padding="same", activation="relu")(x)
        x = ChannelGate(reduction, name="gate")(x)
        model = keras.Model(inp, x, name="micro_gate")
        if weights:
            model.load_weights(weights)
        return model

    return Backbone(name="micro-gate", input_size=32, feature_dim=width * 2, builder=build, preprocess=_unit)


@hookimpl
def truthnet_register_samplers(register):
    register("middle-third", MiddleThirdSampler, "N frames over the middle of the video (option: fraction)")


@hookimpl
def truthnet_register_face_detectors(register):
    register("centre", CentreDetector, "the centred square of the frame (example; option: size)")


@hookimpl
def truthnet_register_backbones(register):
    register("micro", micro_backbone, "two strided convolutions (example; option: width)")
    register("micro-gate", micro_gate_backbone, "two convolutions and a custom Keras layer (example)")

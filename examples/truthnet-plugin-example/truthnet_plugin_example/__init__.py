"""An example TruthNet plugin.

It provides one of each kind, registered through the same hooks TruthNet's built-ins use:

* sampler ``middle-third``: N frames evenly spaced over the middle third of the video;
* face detector ``centre``: pretends the face is the centred square of each frame (a stand-in
  for your own detector: return ``truthnet.faces.Face`` boxes in pixels);
* backbone ``micro``: a two-block CNN that builds in milliseconds.

Use them by name::

    cfg = truthnet.PipelineConfig(sampler="middle-third", detector="centre", backbone="micro",
                                  backbone_weights=None, image_size=64)
"""

from __future__ import annotations

import numpy as np

from truthnet.backbones import Backbone
from truthnet.faces import Face
from truthnet.plugins import hookimpl


class MiddleThirdSampler:
    def __init__(self, fraction: float = 1 / 3):
        self.fraction = fraction

    def sample(self, info, num_frames):
        n = info.frame_count
        lo = int(n * (1 - self.fraction) / 2)
        hi = max(lo, int(n - lo) - 1)
        return sorted(set(np.linspace(lo, hi, num_frames).astype(int).tolist()))


class CentreDetector:
    finds_faces = True

    def detect(self, frames):
        out = []
        for f in frames:
            h, w = f.shape[:2]
            s = min(h, w) * 0.6
            out.append([Face(((w - s) / 2, (h - s) / 2, s, s), confidence=0.99)])
        return out


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

    return Backbone(
        name="micro",
        input_size=64,
        feature_dim=width * 2,
        builder=build,
        preprocess=lambda x: x / 255.0,
        pooling="avg",
    )


@hookimpl
def truthnet_register_samplers(register):
    register("middle-third", MiddleThirdSampler, "N frames over the middle third of the video")


@hookimpl
def truthnet_register_face_detectors(register):
    register("centre", CentreDetector, "the centred square of the frame (example)")


@hookimpl
def truthnet_register_backbones(register):
    register("micro", micro_backbone, "two strided convolutions (example)")

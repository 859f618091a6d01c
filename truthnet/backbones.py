"""The backbone contract: what a frame CNN must tell the pipeline and the model builder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ModelError


#: weights files known by content (SHA-256), whatever they are called: backbone -> {sha256: what}.
#: A file listed here *is* that backbone's ImageNet weights: ``--weights PATH`` to it keeps the
#: model card's preset (``paper``), and ``weights="imagenet"`` finds it in ``$KERAS_HOME/models``
#: under any name when Keras's own file is not there and cannot be downloaded.
KNOWN_WEIGHTS: dict[str, dict[str, str]] = {
    "mobilenetv2": {
        # MobileNetV2 1.0/224 no top, the ImageNet checkpoint (see the project's shared/weights/README)
        "71e4c4ec4aa24c9c951b9265d6de42e1336dcf614c2214fa6a989208615e232c": "imagenet",
    },
}


def known_weights(backbone: str, path: str | os.PathLike) -> str | None:
    """``"imagenet"`` when ``path`` holds weights :data:`KNOWN_WEIGHTS` lists for ``backbone``."""
    known = KNOWN_WEIGHTS.get(backbone)
    if not known or not os.path.isfile(path):
        return None
    from .filecheck import file_sha256

    return known.get(file_sha256(path))


#: the file name Keras itself caches each known backbone's ImageNet weights under
KERAS_FILE_NAMES = {"mobilenetv2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"}


def keras_models_dir() -> str:
    """Keras's weights cache: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return os.path.join(os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras"), "models")


def imagenet_weights_cached(backbone: str) -> bool:
    """Keras's own file, or a known copy under any name, is in the cache (no download needed)."""
    name = KERAS_FILE_NAMES.get(backbone)
    return bool(name and os.path.isfile(os.path.join(keras_models_dir(), name))) or \
        cached_imagenet_weights(backbone) is not None


def cached_imagenet_weights(backbone: str) -> str | None:
    """A file in the Keras cache (``$KERAS_HOME/models``) holding ``backbone``'s known ImageNet
    weights, under any name; None when there is none."""
    if backbone not in KNOWN_WEIGHTS:
        return None
    folder = keras_models_dir()
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in names:
        path = os.path.join(folder, name)
        if name.endswith((".h5", ".weights.h5", ".keras")) and known_weights(backbone, path) == "imagenet":
            return path
    return None


@dataclass
class Backbone:
    """A frame CNN.

    * ``input_size``: the side it was designed for: ``build()`` without a size uses it, and
      choosing the backbone without an image size (``truthnet train --backbone NAME``) makes it
      the pipeline's ``image_size`` (which may differ: any size the network accepts);
    * ``feature_dim``: channels of its last feature map (= embedding size after pooling);
      checked against the built model;
    * ``pooling``: ``"avg"`` (GlobalAveragePooling2D, the paper) or ``"max"``;
    * ``preprocess``: its own input preprocessing, from float pixels in [0, 255];
    * ``builder(input_size, weights)``: a Keras model ``(H, W, 3) -> (h, w, feature_dim)``.
      ``weights`` is ``"imagenet"``, ``None`` (random init) or a path to a weights file.
    """

    name: str
    input_size: int
    feature_dim: int
    builder: Callable[[int, str | None], object]
    preprocess: Callable[[np.ndarray], np.ndarray]
    pooling: str = "avg"
    pretrained: tuple[str, ...] = ()  # weight names this backbone can load, e.g. ("imagenet",)

    def build(self, input_size: int | None = None, weights: str | None = None):
        size = int(input_size or self.input_size)
        if weights not in (None, *self.pretrained) and not os.path.exists(str(weights)):
            known = ", ".join(["None", *self.pretrained, "a path to a weights file"])
            raise ModelError(f"backbone {self.name!r}: unknown weights {weights!r}; expected {known}")
        try:
            model = self.builder(size, weights)
        except ModelError:
            raise
        except Exception as exc:
            msg = str(exc)
            if weights == "imagenet" and ("URL fetch failure" in msg or "download" in msg.lower()):
                found = cached_imagenet_weights(self.name)  # the same weights under another name
                if found:
                    return self.build(size, found)
                raise ModelError(
                    f"backbone {self.name!r}: ImageNet weights are not in the Keras cache and cannot be downloaded",
                    hint="give the weights file with --weights PATH (Python: backbone_weights=PATH), or put it into "
                         "$KERAS_HOME/models (default ~/.keras/models)",
                ) from exc
            raise ModelError(f"backbone {self.name!r} could not be built with weights={weights!r}: {msg}") from exc
        self._check_output(model, size)
        return model

    def _check_output(self, model, size: int) -> None:
        """The pipeline pools a ``(h, w, feature_dim)`` map; anything else would fail later,
        far from the plugin that caused it (or, for a wrong ``feature_dim``, silently mislead
        tools that size things from it)."""
        shape = tuple(getattr(model, "output_shape", ()) or ())
        if len(shape) != 4 or shape[-1] != self.feature_dim:
            raise ModelError(
                f"backbone {self.name!r} declares feature_dim={self.feature_dim}, but its model maps "
                f"({size}, {size}, 3) to {shape[1:]}; expected (h, w, {self.feature_dim})",
                hint="fix feature_dim or the builder: it must return a Keras model ending in a feature map",
            )

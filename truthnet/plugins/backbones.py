"""Built-in backbones: ``mobilenetv2`` (the paper's), ``efficientnetb0`` and ``tiny``."""

from __future__ import annotations

import numpy as np

from ..backbones import Backbone
from .hookspecs import hookimpl


def _keras_app(fn_name: str, **extra):
    def build(size: int, weights):
        from .._lazy import import_keras

        keras = import_keras()
        fn = getattr(keras.applications, fn_name)
        path = None
        if weights not in (None, "imagenet"):
            path, weights = weights, None
        model = fn(include_top=False, weights=weights, input_shape=(size, size, 3), **extra)
        if path is not None:
            model.load_weights(path)
        return model

    return build


def _mobilenet_preprocess(x: np.ndarray) -> np.ndarray:
    return x / 127.5 - 1.0  # keras.applications.mobilenet_v2.preprocess_input ("tf" mode)


def _identity(x: np.ndarray) -> np.ndarray:
    return x  # EfficientNet carries its own Rescaling/Normalization layers: it wants [0, 255]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / 255.0


def mobilenetv2(alpha: float = 1.0) -> Backbone:
    return Backbone(
        name="mobilenetv2",
        input_size=224,
        feature_dim=int(1280 * max(1.0, alpha)),
        builder=_keras_app("MobileNetV2", alpha=alpha),
        preprocess=_mobilenet_preprocess,
        pooling="avg",
        pretrained=("imagenet",),
    )


def efficientnetb0() -> Backbone:
    return Backbone(
        name="efficientnetb0",
        input_size=224,
        feature_dim=1280,
        builder=_keras_app("EfficientNetB0"),
        preprocess=_identity,
        pooling="avg",
        pretrained=("imagenet",),
    )


def tiny(filters: tuple[int, ...] = (16, 32, 48, 64)) -> Backbone:
    """Four Conv-BatchNorm-ReLU blocks and global max pooling: trains from scratch on a CPU in
    seconds.  BatchNorm matters: without it the same net stayed at chance on the demo data."""
    filters = tuple(int(f) for f in filters)

    def build(size: int, weights):
        from .._lazy import import_keras

        keras = import_keras()
        layers = keras.layers
        inp = keras.Input((size, size, 3))
        x = inp
        for i, f in enumerate(filters):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
            if i < len(filters) - 1:
                x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        model = keras.Model(inp, x, name="tiny_cnn")
        if weights is not None:
            model.load_weights(weights)
        return model

    return Backbone(
        name="tiny", input_size=96, feature_dim=filters[-1], builder=build, preprocess=_unit, pooling="max"
    )


@hookimpl
def truthnet_register_backbones(register):
    register("mobilenetv2", mobilenetv2, "MobileNetV2, ImageNet weights, 1280-d (paper); option: alpha")
    register("efficientnetb0", efficientnetb0, "EfficientNetB0, ImageNet weights, 1280-d")
    register("tiny", tiny, "4 Conv-BN-ReLU blocks + global max pool; trains from scratch on CPU (demo, tests)")

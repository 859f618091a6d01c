"""Build, save and load the CNN-LSTM (Keras 3 API).

The network (paper 3.4): ``TimeDistributed(backbone) -> TimeDistributed(GlobalAveragePooling2D)
-> LSTM(128) -> Dropout(0.5) -> Dense(64, relu) -> Dense(1, sigmoid)``.  The layers after the
pooling form the *head*; :func:`build_head` builds the same head on precomputed embeddings
with the same layer names, so weights move between the two by name.

A TruthNet model file is an ordinary Keras file plus the pipeline configuration: a
``truthnet.json`` member inside the ``.keras`` zip, or a ``truthnet_config`` attribute on the
``.h5`` root.  Keras itself ignores both, so the file still loads with plain
``keras.saving.load_model``.
"""

from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import PipelineConfig
from .errors import ConfigError, ModelError, UnsafeModelError

FORMAT = "truthnet-model"
FORMAT_VERSION = 1
META_MEMBER = "truthnet.json"
H5_ATTR = "truthnet_config"

#: layer names of the head, shared by the full model and the embedding-only head
HEAD_LAYERS = ("lstm", "dropout", "dense", "score")


def _head_layers(keras, config: PipelineConfig) -> list:
    L = keras.layers
    return [
        L.LSTM(config.lstm_units, name="lstm"),
        L.Dropout(config.dropout, name="dropout"),
        L.Dense(config.dense_units, activation="relu", name="dense"),
        L.Dense(1, activation="sigmoid", name="score"),
    ]


def build_backbone(config: PipelineConfig, weights: Any = "config"):
    from . import plugins

    backbone = plugins.create_backbone(config.backbone, **config.backbone_options)
    w = config.backbone_weights if weights == "config" else weights
    return backbone, backbone.build(config.image_size, w)


def build_model(config: PipelineConfig, *, weights: Any = "config"):
    """The paper's CNN-LSTM for ``config`` (uncompiled).  ``weights`` overrides the backbone's."""
    from ._lazy import import_keras

    keras = import_keras()
    backbone, cnn = build_backbone(config, weights)
    cnn.trainable = bool(config.trainable_backbone)
    size = config.image_size
    inp = keras.Input((config.num_frames, size, size, 3), name="frames")
    x = keras.layers.TimeDistributed(cnn, name="cnn")(inp)
    pool = keras.layers.GlobalAveragePooling2D if backbone.pooling == "avg" else keras.layers.GlobalMaxPooling2D
    x = keras.layers.TimeDistributed(pool(), name="pool")(x)
    for layer in _head_layers(keras, config):
        x = layer(x)
    return keras.Model(inp, x, name=f"truthnet_{config.backbone}_lstm")


def build_head(config: PipelineConfig, feature_dim: int):
    """The temporal head alone, on per-frame embeddings ``(num_frames, feature_dim)``."""
    from ._lazy import import_keras

    keras = import_keras()
    inp = keras.Input((config.num_frames, feature_dim), name="embeddings")
    x = inp
    for layer in _head_layers(keras, config):
        x = layer(x)
    return keras.Model(inp, x, name="truthnet_head")


def build_encoder(model):
    """The per-frame part of a full model: ``(T, H, W, 3) -> (T, D)`` embeddings."""
    from ._lazy import import_keras

    keras = import_keras()
    return keras.Model(model.inputs[0], model.get_layer("pool").output, name="truthnet_encoder")


def copy_head_weights(src, dst) -> None:
    """Copy the head's weights between a full model and a head model (either direction)."""
    for name in HEAD_LAYERS:
        dst.get_layer(name).set_weights(src.get_layer(name).get_weights())


def recalibrate_batchnorm(model, x) -> None:
    """Set every BatchNormalization layer's moving statistics to those of the batch ``x``.

    A randomly initialised MobileNetV2 (no ImageNet weights: offline machines, tests,
    benchmarks) shrinks its activations to ~1e-12, so every video scores the same.  One forward
    pass in training mode with momentum 0 gives each layer the statistics of real inputs.
    """
    from ._lazy import import_keras

    keras = import_keras()
    bns = list({id(l): l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)}.values())
    saved = [(l, l.momentum, l.trainable) for l in bns]
    for l in bns:
        l.momentum = 0.0
        l.trainable = True
    try:
        model(x, training=True)
    finally:
        for l, m, t in saved:
            l.momentum = m
            l.trainable = t


def _all_layers(model):
    """Every layer, looking inside nested models and TimeDistributed wrappers."""
    for layer in getattr(model, "layers", []):
        yield layer
        inner = getattr(layer, "layer", None)  # TimeDistributed
        for sub in (inner, layer):
            if sub is not None and hasattr(sub, "layers"):
                yield from _all_layers(sub)


def compile_model(model, learning_rate: float = 1e-4) -> None:
    """Adam(lr) + binary cross-entropy, metrics accuracy and AUC (paper 3.4.4)."""
    from ._lazy import import_keras

    keras = import_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )


# --- saving and loading --------------------------------------------------------------------


def _metadata(config: PipelineConfig, extra: dict | None) -> dict:
    from . import __version__, plugins

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "truthnet_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pipeline": config.to_dict(),
        # which package provides each part, so that a missing plugin names what to install
        "plugins": plugins.pipeline_plugins(config),
    }
    meta.update(extra or {})
    return meta


def save_model(model, config: PipelineConfig, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save ``model`` with its pipeline configuration to ``.keras`` (recommended) or ``.h5``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5"):
        raise ModelError(f"{path}: model files must end in .keras or .h5")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps(_metadata(config, metadata), indent=2, sort_keys=True)
    tmp = path.with_name(path.name + ".tmp" + suffix)  # never leave a half-written model behind
    model.save(tmp)
    if suffix == ".keras":
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(META_MEMBER, meta)
    else:
        import h5py

        with h5py.File(tmp, "a") as f:
            f.attrs[H5_ATTR] = meta
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike) -> tuple[dict | None, dict]:
    """``(truthnet_metadata or None, keras_model_config)`` of a model file, without loading it.

    Raises :class:`ModelError` for a missing file or one that is no Keras model file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: model file does not exist")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory; expected a .keras or .h5 model file")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                if "config.json" not in names:
                    raise ModelError(f"{path}: a zip file but not a Keras model (no config.json inside)")
                kcfg = json.loads(zf.read("config.json"))
                meta = json.loads(zf.read(META_MEMBER)) if META_MEMBER in names else None
        except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, KeyError) as exc:
            raise ModelError(f"{path}: damaged .keras file: {exc}") from exc
        return check_metadata(path, meta), kcfg
    import h5py

    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                if raw is None:
                    raise ModelError(
                        f"{path}: HDF5 file without a model configuration (a weights-only file?)",
                        hint="load weights into a built model instead, or save the whole model",
                    )
                kcfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
                m = f.attrs.get(H5_ATTR)
                meta = json.loads(m.decode() if isinstance(m, bytes) else m) if m is not None else None
        except OSError as exc:
            raise ModelError(f"{path}: damaged HDF5 model file: {exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: damaged HDF5 model file: {exc}") from exc
        return check_metadata(path, meta), kcfg
    raise ModelError(f"{path}: not a Keras model file (expected a .keras zip archive or an .h5 file)")


def check_metadata(path: str, meta: Any) -> dict | None:
    """``meta`` if it is TruthNet metadata of the right shape, else one :class:`ModelError` (exit
    code 4) naming what is wrong: a list, a pipeline that is not an object or has a setting of the
    wrong type (``"num_frames": "10"``), a card with non-numeric counts or metrics."""
    if meta is None:
        return None
    from .errors import ConfigError
    from .modelcard import ModelCard

    try:
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, found {type(meta).__name__}")
        if "pipeline" in meta:
            PipelineConfig.from_dict(meta["pipeline"])
        ModelCard.from_metadata(meta)
    except (ConfigError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: malformed TruthNet metadata ({META_MEMBER}): {exc}",
                         hint="the file was altered or written by another tool; use the model file as it was saved") \
            from None
    return meta


def read_card(path: str | os.PathLike):
    """The :class:`~truthnet.modelcard.ModelCard` of a model file, without loading the model (no
    TensorFlow).  Raises :class:`ModelError` for a file that is not a model or a malformed card."""
    from .modelcard import ModelCard

    return ModelCard.from_metadata(read_metadata(path)[0])


def _find_unsafe(node: Any) -> str | None:
    if isinstance(node, dict):
        cls = node.get("class_name")
        if cls in ("Lambda", "function", "__lambda__"):
            return cls
        for v in node.values():
            found = _find_unsafe(v)
            if found:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _find_unsafe(v)
            if found:
                return found
    return None


def load_model(path: str | os.PathLike, config: PipelineConfig | None = None):
    """Load a model file; returns ``(keras_model, PipelineConfig, metadata)``.

    A TruthNet file carries its configuration; a bare ``.h5``/``.keras`` (e.g. the paper's own
    ``deepfake_detector_cnn_lstm.h5``) needs ``config``.  Never executes code from the file:
    Keras safe mode is on, and a model holding a ``Lambda`` layer is refused up front.

    Plugins are loaded first, and the backbone's factory is called, so that a plugin
    backbone's own Keras layers (``keras.saving.register_keras_serializable``) are known before
    Keras deserialises the file.  A part whose plugin is missing is a :class:`ModelError`
    naming the package to install.
    """
    cfg, meta = inspect_model(path, config)
    return load_keras_model(path, cfg), cfg, meta


def inspect_model(path: str | os.PathLike, config: PipelineConfig | None = None) -> tuple[PipelineConfig, dict]:
    """What :func:`load_model` checks before Keras reads the weights, without TensorFlow: the
    file is a Keras model with no ``Lambda`` layer, its configuration (or ``config``), its
    metadata, and the plugins it needs.  Returns ``(PipelineConfig, metadata)``."""
    path = os.fspath(path)
    meta, kcfg = read_metadata(path)
    unsafe = _find_unsafe(kcfg)
    if unsafe:
        raise UnsafeModelError(
            f"{path}: refusing to load: the model contains a {unsafe} layer, which runs arbitrary "
            "Python code when loaded",
            hint="rebuild the model without Lambda layers, or load it yourself if you trust its source",
        )
    if meta is not None:
        if meta.get("format") != FORMAT:
            raise ModelError(f"{path}: unknown metadata format {meta.get('format')!r}")
        file_cfg = PipelineConfig.from_dict(meta["pipeline"])
        cfg = file_cfg if config is None else config
    elif config is None:
        raise ModelError(
            f"{path}: this model file carries no TruthNet pipeline configuration",
            hint="say how it was trained: config=PipelineConfig.preset('paper') (CLI: --preset paper)",
        )
    else:
        cfg, meta = config, {}
    _load_backbone_plugin(cfg, meta, path)
    return cfg, meta


def load_keras_model(path: str | os.PathLike, cfg: PipelineConfig):
    """The Keras model in ``path`` (checked by :func:`inspect_model` first), its input shape
    checked against ``cfg``: a :class:`ModelError` when Keras cannot read it."""
    from ._lazy import import_keras

    path = os.fspath(path)
    keras = import_keras()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        hint = None
        if "Could not locate class" in str(exc):
            hint = (
                f"a custom layer of backbone {cfg.backbone!r} is not registered: its plugin must register it "
                "with keras.saving.register_keras_serializable in a module its backbone factory imports"
            )
        raise ModelError(f"{path}: Keras could not load this model: {exc}", hint=hint) from exc
    check_input_shape(model, cfg, path)
    return model


def _load_backbone_plugin(cfg: PipelineConfig, meta: dict, path: str) -> None:
    """Make sure every plugin ``cfg`` needs is there, then call the backbone's factory: a
    backbone with its own Keras layers imports (registers) them there."""
    from . import plugins
    from .errors import TruthnetError

    plugins.require_pipeline_plugins(cfg, meta.get("plugins"), where=path)
    try:
        plugins.create_backbone(cfg.backbone, **cfg.backbone_options)
    except TruthnetError as exc:
        raise ModelError(f"{path}: the model's backbone {cfg.backbone!r} cannot be created: {exc}") from exc


def check_input_shape(model, cfg: PipelineConfig, where: str = "model") -> None:
    shape = tuple(model.input_shape)
    want = (cfg.num_frames, cfg.image_size, cfg.image_size, 3)
    if len(shape) != 5 or tuple(shape[1:]) != want:
        raise ModelError(
            f"{where}: model input shape {shape[1:]} does not match the pipeline's "
            f"(num_frames, image_size, image_size, 3) = {want}",
            hint="pass the configuration it was trained with",
        )
    out = tuple(model.output_shape)
    if out[-1] != 1:
        raise ModelError(f"{where}: model output shape {out} is not a single score per video")


def config_with_threshold(cfg: PipelineConfig, threshold: float | None) -> PipelineConfig:
    if threshold is None:
        return cfg
    try:
        return cfg.replace(threshold=float(threshold))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid threshold {threshold!r}: {exc}") from exc

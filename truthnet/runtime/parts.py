"""The two parts a scan runs of a model: the frame encoder (backbone and pooling, one embedding
per frame) and the temporal head (LSTM to score), on TensorFlow or on OpenVINO.

On a CPU, a model file's parts run on OpenVINO (runtime ``auto``, where it is installed): the
same networks and weights, read by OpenVINO from TensorFlow's frozen graph of each part and
run in float32.  They are converted once per model file and cached (:mod:`.ovcache`;
key: the file's SHA-256 and the OpenVINO version) with Keras's outputs on a fixed input, which
every load compares against.  From the cache a scan needs neither TensorFlow nor Keras: their
import, the weights' load and the first graph trace (~8 s of one core) are gone, and embedding
takes about half the CPU.  Conversion is checked against Keras: embeddings within
:data:`EMBEDDING_TOLERANCE` of their scale, and scores within :data:`SCORE_TOLERANCE` (the head's
on Keras's embeddings, and the encoder's and head's together), or the model stays on TensorFlow
(and says why).  The encoder keeps a convolution's following scales apart from its weights
(:func:`_scales_apart`): folded in, as OpenVINO does by default, they moved the paper's scores by
up to 1.4e-6 on 10 realistic clips.

OpenVINO gives each frame's embedding and each video's score bit for bit the same whatever
else is in the batch (``tests/test_model_parts.py``): a file's score depends on its own bytes
only, never on which files it was scanned with.

``TRUTHNET_MODEL_RUNTIME=tensorflow`` (or ``load_classifier(..., runtime="tensorflow")``)
keeps a model on TensorFlow; a GPU device (or, with no device named, an NVIDIA driver that
shows a GPU) keeps it there too, where TensorFlow can use the GPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from . import ovcache
from ..config import PipelineConfig
from ..errors import ConfigError, ModelError

_log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "tensorflow")

#: bump when what a cache entry holds changes meaning
CACHE_FORMAT = 2

#: the most an embedding on OpenVINO may differ from Keras's, relative to the largest magnitude
#: of the check embeddings (measured: ~6e-6 on MobileNetV2)
EMBEDDING_TOLERANCE = 1e-4
#: the most a score on OpenVINO may differ from Keras's: the head's on Keras's embeddings (measured:
#: ~6e-8), and the encoder's and head's together (the paper's MobileNetV2: 6e-8 on the check input,
#: 1.8e-7 on 10 realistic clips; 1.5e-6 and 1.4e-6 when OpenVINO folds the batch normalisations'
#: scales into the convolutions' weights and computes them itself, see :func:`_scales_apart`)
SCORE_TOLERANCE = 1e-6

#: frames per call of the encoder: bounds the memory of a batch's activations
FRAME_CHUNK = 32


class KerasParts:
    """The parts as Keras models (TensorFlow): the encoder is called in fixed-size chunks of a
    compiled graph (3x faster than an eager call of the whole model on CPU, and no retrace per
    batch size), the last chunk padded."""

    runtime = "tensorflow"

    def __init__(self, encoder, head) -> None:
        self.encoder, self.head_model = encoder, head

    @classmethod
    def split(cls, model, config: PipelineConfig) -> KerasParts | None:
        """The parts of a TruthNet model (its ``cnn``, ``pool`` and head layers); None for one
        without those names (a bare paper ``.h5``: called whole)."""
        from .._lazy import import_keras
        from ..model import HEAD_LAYERS

        keras = import_keras()
        try:
            cnn = model.get_layer("cnn").layer
            pool = model.get_layer("pool").layer
            head_layers = [model.get_layer(n) for n in HEAD_LAYERS]
        except (ValueError, AttributeError):
            return None
        size = config.image_size
        inp = keras.Input((size, size, 3))
        encoder = keras.Model(inp, pool(cnn(inp)), name="frame_encoder")
        emb_in = keras.Input((config.num_frames, encoder.output_shape[-1]))
        y = emb_in
        for layer in head_layers:
            y = layer(y)
        return cls(encoder, keras.Model(emb_in, y, name="head"))

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` model inputs -> ``(N, D)`` embeddings."""
        chunk = FRAME_CHUNK
        feats = []
        for i in range(0, len(frames), chunk):
            part = frames[i : i + chunk]
            if len(part) < chunk:
                part = np.concatenate([part, np.zeros((chunk - len(part),) + part.shape[1:], part.dtype)])
            feats.append(np.asarray(self.encoder.predict_on_batch(part))[: min(chunk, len(frames) - i)])
        return np.concatenate(feats)

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """``(n, T, D)`` embeddings -> ``(n,)`` scores."""
        return np.asarray(self.head_model(emb, training=False), dtype=np.float32).reshape(-1)


class OpenVINOParts:
    """The same parts compiled by OpenVINO (float32, any batch size).  Thread-safe: one
    inference request per part, taken in turn."""

    runtime = "openvino"

    def __init__(self, encoder, head) -> None:
        """``encoder`` and ``head``: each ``(compiled model, constant inputs)``, the constants
        fed to inputs 1, 2, ... (:func:`_compile`) once, for every call."""
        self._compiled = (encoder[0], head[0])
        self._requests = []
        tensor = ovcache.import_openvino().Tensor
        for compiled, constants in (encoder, head):
            if len(compiled.inputs) != 1 + len(constants):
                raise NotExact(f"a part on OpenVINO has {len(compiled.inputs)} inputs, {1 + len(constants)} expected")
            request = compiled.create_infer_request()
            for i, value in enumerate(constants, start=1):
                request.set_input_tensor(i, tensor(value))
            self._requests.append((request, compiled.outputs[0], threading.Lock()))

    def _run(self, which: int, x: np.ndarray) -> np.ndarray:
        request, output, lock = self._requests[which]
        with lock:
            got = request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
            return np.array(got[output], dtype=np.float32, copy=True)  # the request reuses its buffers

    def embed(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self._compiled[0].outputs[0].get_partial_shape()[-1].get_length()), np.float32)
        return np.concatenate([self._run(0, frames[i : i + FRAME_CHUNK]) for i in range(0, len(frames), FRAME_CHUNK)])

    def scores(self, emb: np.ndarray) -> np.ndarray:
        if len(emb) == 0:
            return np.zeros((0,), np.float32)
        return self._run(1, emb).reshape(-1)


def requested_runtime(runtime: str | None) -> str:
    """The runtime asked for: ``runtime``, else the environment's ``TRUTHNET_MODEL_RUNTIME``,
    else ``"auto"``; one of :data:`RUNTIMES` or a :class:`ConfigError`."""
    runtime = (runtime or os.environ.get("TRUTHNET_MODEL_RUNTIME") or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown model runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}",
                          hint="TRUTHNET_MODEL_RUNTIME=openvino|tensorflow|auto")
    return runtime


def resolve_runtime(runtime: str | None, device: str | None) -> str:
    """``"openvino"`` or ``"tensorflow"`` for a model's parts (:func:`requested_runtime`;
    ``auto``: OpenVINO on a CPU where it is installed)."""
    runtime = requested_runtime(runtime)
    on_gpu = _gpu_device(device)
    if runtime == "openvino":
        if on_gpu:
            raise ConfigError(f"model runtime 'openvino' runs on the CPU, not on {device or 'a GPU'}",
                              hint="leave the runtime at auto (TensorFlow on a GPU) or use --device cpu")
        if not ovcache.available():
            raise ConfigError("model runtime 'openvino' needs OpenVINO: pip install openvino")
        return "openvino"
    if runtime == "tensorflow" or on_gpu or not ovcache.available():
        return "tensorflow"
    return "openvino"


def _gpu_device(device: str | None) -> bool:
    """Whether the model should run on a GPU: one is named (or was chosen for this process,
    :func:`truthnet.device.use_device`), or none is and an NVIDIA driver shows one that
    ``CUDA_VISIBLE_DEVICES`` does not hide (where TensorFlow would use it by itself)."""
    from .. import device as devices

    chosen = device or devices._chosen
    if chosen:
        return devices.parse_device(str(chosen))[0] == "gpu"
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    try:
        return bool(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return False


def cache_dir(model_sha256: str, config: PipelineConfig) -> Path:
    """The cache entry for a model file's parts: keyed by the file's bytes, the input shape and
    the versions of the code that turns them into networks (:func:`_code_versions`); this
    user's own (:func:`.ovcache.user_entry`)."""
    from ..settings import default_cache_dir

    key = hashlib.sha256(f"{CACHE_FORMAT}|{model_sha256}|{config.num_frames}|{config.image_size}|"
                         f"{_code_versions(config)}".encode()).hexdigest()[:24]
    return ovcache.user_entry(default_cache_dir() / "model-openvino" / key)


def _code_versions(config: PipelineConfig) -> str:
    """OpenVINO's, TensorFlow's, Keras's and TruthNet's versions and the backbone's plugin
    distribution and version: a backbone's own layers are code outside the model file, so an
    upgrade of any of these converts again (read without importing them, except OpenVINO)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__, plugins

    parts = [ovcache.import_openvino().get_version(), __version__]
    for dists in (("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly"), ("keras", "keras-nightly")):
        for dist in dists:
            try:
                parts.append(f"{dist}={version(dist)}")
                break
            except PackageNotFoundError:
                continue
        else:
            parts.append("-")
    try:
        entry = plugins.get_entry("backbone", config.backbone)
        parts += [str(entry.distribution), str(entry.version)]
    except Exception:  # (an unknown backbone fails later, where it is loaded)
        parts.append("?")
    return "|".join(parts)


def _check_frames(config: PipelineConfig) -> np.ndarray:
    """Four frames over [-1, 1]: both normalisations' ranges ([0, 1] and a backbone's own)."""
    s = config.image_size
    return np.random.default_rng(0).uniform(-1, 1, (4, s, s, 3)).astype(np.float32)


def _compile(model, *, scales_apart: bool = False):
    """``(compiled model, constant inputs)``.  ``scales_apart``: the model's per-channel scales
    after a convolution stay a multiplication of its output (:func:`_scales_apart`)."""
    with ovcache.lock():  # (the edit too: no other OpenVINO work of this process meanwhile)
        edited = model.clone() if scales_apart else model  # (never the model a cache entry is written from)
        constants = _scales_apart(edited) if scales_apart else []
        return ovcache.compile(edited, {"INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}), constants


def _scales_apart(model) -> list:
    """Keep each constant that multiplies a convolution's output (a batch normalisation's scale,
    as TensorFlow's frozen graph gives it) out of the convolution's weights: OpenVINO folds such a
    scale into the weights it convolves with, and ``conv(x, w * s)`` rounds differently from
    TensorFlow's ``conv(x, w) * s``.  Over MobileNetV2's 52 of them the scores of the paper's
    model moved by up to 1.4e-6 from Keras's; with the scales apart, by 1.8e-7 (10 realistic clips),
    for ~25 % more CPU in the encoder (~0.25 CPU-s per 100 frames on 2 threads).  Each such
    constant becomes an input of the model, in order; returns their values (fed once per
    request: OpenVINO never folds an input)."""
    ovcache.import_openvino()  # (without its telemetry)
    from openvino import opset13 as opset

    inputs, values = [], []
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Multiply":
            continue
        for i in (0, 1):
            const, other = node.input_value(i).get_node(), node.input_value(1 - i).get_node()
            if const.get_type_name() == "Constant" and other.get_type_name() in ("Convolution", "GroupConvolution"):
                value = np.array(const.get_data(), copy=True)
                param = opset.parameter(list(value.shape), const.get_output_element_type(0))
                node.input(i).replace_source_output(param.output(0))
                inputs.append(param)
                values.append(value)
                break
    if inputs:
        model.add_parameters(inputs)
        model.validate_nodes_and_infer_types()
    _log.debug("%d scales kept apart from their convolutions' weights", len(values))
    return values


def _check(parts: OpenVINOParts, reference: dict, config: PipelineConfig) -> None:
    """The parts' outputs on the check input against Keras's (``reference``)."""
    emb = parts.embed(_check_frames(config))
    want = reference["embeddings"]
    if emb.shape != want.shape:
        raise NotExact(f"the encoder on OpenVINO gives embeddings shaped {emb.shape}, Keras {want.shape}")
    diff = float(np.max(np.abs(emb - want))) / max(float(np.max(np.abs(want))), 1e-12)
    if not diff <= EMBEDDING_TOLERANCE:
        raise NotExact(f"the encoder on OpenVINO differs from Keras by {diff:.2g} of the embeddings' scale")
    scores = parts.scores(reference["head_input"])
    diff = float(np.max(np.abs(scores - reference["scores"])))
    if not diff <= SCORE_TOLERANCE:
        raise NotExact(f"the head on OpenVINO differs from Keras by {diff:.2g} in the score")
    # and both together: the encoder's own differences, through the head, on the score
    scores = parts.scores(_head_input(emb, reference["head_input"].shape[1]))
    diff = float(np.max(np.abs(scores - reference["scores"])))
    if not diff <= SCORE_TOLERANCE:
        raise NotExact(f"the encoder and head on OpenVINO differ from Keras by {diff:.2g} in the score")


def _head_input(emb: np.ndarray, t: int) -> np.ndarray:
    """The head's check input: the check frames' embeddings, each sequence a different mix."""
    dim = emb.shape[1]
    return np.stack([np.resize(emb, (t, dim)), np.resize(emb[::-1], (t, dim))]).astype(np.float32)


class NotExact(RuntimeError):
    """The parts on OpenVINO do not give Keras's outputs on the check input."""


def _from_cache(folder: Path, config: PipelineConfig) -> OpenVINOParts:
    parts = OpenVINOParts(_compile(ovcache.read(folder / "encoder.xml"), scales_apart=True),
                          _compile(ovcache.read(folder / "head.xml")))
    _check(parts, ovcache.read_reference(folder), config)
    return parts


def _convert(keras_parts: KerasParts, config: PipelineConfig):
    """The parts read by OpenVINO from TensorFlow's frozen graphs and checked against Keras:
    ``(parts, models, reference)``."""
    import tensorflow as tf

    s, t = config.image_size, config.num_frames
    dim = int(keras_parts.encoder.output_shape[-1])
    models = {
        "encoder": ovcache.frozen_graph(lambda x: keras_parts.encoder(x, training=False),
                                        [tf.TensorSpec([None, s, s, 3], tf.float32)], "encoder", fold=True),
        "head": ovcache.frozen_graph(lambda x: keras_parts.head_model(x, training=False),
                                     [tf.TensorSpec([None, t, dim], tf.float32)], "head", fold=True),
    }
    parts = OpenVINOParts(_compile(models["encoder"], scales_apart=True), _compile(models["head"]))
    frames = _check_frames(config)
    emb = keras_parts.embed(frames)
    head_input = _head_input(emb, t)
    reference = {"embeddings": emb, "head_input": head_input, "scores": keras_parts.scores(head_input)}
    _check(parts, reference, config)
    return parts, models, reference


def load(path: str, config: PipelineConfig, runtime: str = "openvino", *, strict: bool = False):
    """``(keras_model or None, parts or None, sha256 of the file)`` for a checked model file
    (:func:`truthnet.model.inspect_model`).  On OpenVINO the parts come from the cache without
    Keras (model None) where the cache holds them; else the Keras model is loaded and its parts
    converted (and cached).  A model whose parts OpenVINO cannot give exactly stays on
    TensorFlow, with a warning (``strict``: a :class:`ModelError` instead)."""
    from ..filecheck import file_sha256
    from ..model import load_keras_model

    sha = file_sha256(path)
    if runtime == "tensorflow":
        model = load_keras_model(path, config)
        return model, KerasParts.split(model, config), sha
    try:
        folder = cache_dir(sha, config)
    except (OSError, ImportError, ValueError) as exc:
        _log.debug("model OpenVINO cache unusable: %s", exc)
        folder = None
    loaded: dict = {}

    def keras_model():
        model = load_keras_model(path, config)
        if file_sha256(path) != sha:  # (never one file's networks under another's bytes)
            raise ModelError(f"{path}: the model file changed while it was being loaded; load it again")
        return model

    def convert():
        model = loaded["model"] = keras_model()
        keras_parts = loaded["keras"] = KerasParts.split(model, config)
        if keras_parts is None:
            raise NotExact("the model has no TruthNet layer names (cnn, pool, lstm, ...) to split it by")
        return _convert(keras_parts, config)

    try:
        parts = ovcache.cached(folder, lambda f: _from_cache(f, config), convert, "the model's parts", _log)
    except ModelError:
        raise
    except Exception as exc:
        if strict:
            raise ModelError(f"{path}: the model cannot run on OpenVINO: {type(exc).__name__}: {exc}") from exc
        if loaded.get("keras", False) is None:  # a bare .h5, called whole: nothing to convert
            return loaded["model"], None, sha
        _log.warning("the model stays on TensorFlow: OpenVINO could not take its parts (%s: %s)",
                     type(exc).__name__, exc)
        model = loaded.get("model")
        if model is None:  # (the cache failed before Keras was needed)
            model = keras_model()
        keras_parts = loaded.get("keras")
        return model, keras_parts if keras_parts is not None else KerasParts.split(model, config), sha
    return loaded.get("model"), parts, sha

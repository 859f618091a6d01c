"""MTCNN's three networks (the ``mtcnn`` package's weights) run by OpenVINO instead of TensorFlow.

The same networks and weights: TensorFlow traces each one into a frozen graph, which OpenVINO
reads, and runs on one thread per detector in float32.  Only the networks move: the pyramid,
the patches (:mod:`.mtcnn_ops`, TensorFlow's arithmetic in NumPy) and the box arithmetic stay
the package's.  On the realistic corpus the ``paper`` preset found the same faces, boxes and
crops on every sampled frame both ways, with about 25 % less CPU for detection
(``docs/scan.md``).

Each network is checked against TensorFlow's outputs on a fixed input: one whose outputs
differ by more than :data:`TOLERANCE` (another CPU, an OpenVINO that chose a lower precision)
raises :class:`NotExact`, and the detector stays on TensorFlow.

The converted networks are cached (:func:`cache_dir`: OpenVINO's own format, with TensorFlow's
outputs on the check input beside them), keyed by the weights' bytes and the versions of the
``mtcnn`` package and OpenVINO.  From the cache, loading takes ~0.3 s and no TensorFlow: the
networks are checked against the stored outputs, and a cache entry that is missing, damaged
or no longer matches is converted again from TensorFlow (~1 s plus TensorFlow's import).

OpenVINO is imported without its telemetry (:func:`truthnet.runtime.ovcache.import_openvino`); the
cache is :mod:`truthnet.runtime.ovcache`'s, shared with the model's own networks.
"""

from __future__ import annotations

import importlib.util
import logging
import threading

import numpy as np

from ..runtime import ovcache
from ..runtime.ovcache import available, import_openvino  # noqa: F401 - this module's API since 0.2

#: the most a network's output may differ from TensorFlow's on the check input
TOLERANCE = 1e-5

#: the input side each network takes (None: any size, PNet is fully convolutional)
INPUT_SIDES = {"pnet": None, "rnet": 24, "onet": 48}


class NotExact(RuntimeError):
    """A network's outputs on OpenVINO differ from TensorFlow's by more than :data:`TOLERANCE`."""




class OpenVINONetwork:
    """Called like the package's Keras network: a float32 NHWC batch in, its outputs out as
    NumPy arrays.  One inference request, so one caller at a time (the detector's lock)."""

    def __init__(self, compiled) -> None:
        self._request = compiled.create_infer_request()
        self._outputs = list(compiled.outputs)

    def __call__(self, x):
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if len(x) == 0:  # no boxes left for RNet/ONet: empty outputs, as TensorFlow gives
            return tuple(np.zeros((0, *(d.get_length() for d in o.get_partial_shape()[1:])), np.float32)
                         for o in self._outputs)
        got = self._request.infer({0: x})
        return tuple(np.array(got[o], copy=True) for o in self._outputs)  # the request reuses its buffers


#: OpenVINO binds the thread running a network to a core by default, and every detection
#: thread (and every process) got the same core: two detections at once shared one core while
#: the other idled (1.16 cores used by two detection threads, 1.51 unbound; 4.29 -> 3.10 s for
#: the same frames). So the threads are left to the OS.
PIN_THREADS = False

_compiled: dict[str, object] = {}  # network name -> compiled and checked model, once per process
_compiled_lock = threading.Lock()

NAMES = ("pnet", "rnet", "onet")

#: bump when what the cache holds changes meaning
CACHE_FORMAT = 1

_log = logging.getLogger(__name__)


def networks() -> dict:
    """``{"pnet": ..., "rnet": ..., "onet": ...}`` on OpenVINO: each network compiled and
    checked once per process (from the cache: ~0.3 s, no TensorFlow; else converted from
    TensorFlow and cached), then one inference request per caller."""
    with _compiled_lock:
        if any(name not in _compiled for name in NAMES):
            _compiled.update(_load())
        return {name: OpenVINONetwork(_compiled[name]) for name in NAMES}


def cache_dir():
    """Where the converted networks are cached: under TruthNet's cache folder
    (``$TRUTHNET_CACHE``), one folder per weights and versions."""
    from ..settings import default_cache_dir

    return ovcache.user_entry(default_cache_dir() / "mtcnn-openvino" / _cache_key())


def _cache_key() -> str:
    import hashlib
    from importlib.metadata import version

    ov = import_openvino()
    h = hashlib.sha256(f"{CACHE_FORMAT}|{version('mtcnn')}|{ov.get_version()}".encode())
    for name in NAMES:
        h.update(_weights_path(name).read_bytes())
    return h.hexdigest()[:24]


def _weights_path(name: str):
    """The package's weights file for a network, found without importing the package."""
    from pathlib import Path

    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the mtcnn package is not installed: pip install mtcnn")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights" / f"{name}.lz4"


def _load() -> dict:
    """The three networks compiled and checked: from the cache where it holds them, else
    converted from TensorFlow (and cached where the cache folder can be written)."""
    try:
        folder = cache_dir()
    except (OSError, ImportError, ValueError) as exc:  # weights unreadable: the conversion below says what is wrong
        _log.debug("MTCNN OpenVINO cache unusable: %s", exc)
        folder = None
    return ovcache.cached(folder, _from_cache, _convert, "MTCNN's networks", _log)


def _compile_options() -> dict:
    return {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": PIN_THREADS}


def _check_input(name: str) -> np.ndarray:
    side = INPUT_SIDES[name] or 37  # (PNet: an odd size, as pyramid levels are)
    return np.random.default_rng(0).uniform(-1, 1, (2, side, side, 3)).astype(np.float32)


def _from_cache(folder) -> dict:
    reference = ovcache.read_reference(folder)
    compiled = {}
    for name in NAMES:
        compiled[name] = ovcache.compile(ovcache.read(folder / f"{name}.xml"), _compile_options())
        want = [reference[f"{name}_{i}"] for i in range(sum(k.startswith(f"{name}_") for k in reference))]
        _compare(name, want, OpenVINONetwork(compiled[name])(_check_input(name)))
    return compiled


def _convert():
    """Each network read by OpenVINO from TensorFlow's frozen graph of it and checked against
    TensorFlow: ``(compiled, models, reference outputs)``."""
    from .._lazy import import_tensorflow

    import_tensorflow()
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    compiled, models, reference = {}, {}, {}
    for name, stage in zip(NAMES, (StagePNet(), StageRNet(), StageONet())):
        models[name] = _read(name, stage._model)
        compiled[name] = ovcache.compile(models[name], _compile_options())
        x = _check_input(name)
        want = [np.asarray(t) for t in stage._model(x)]
        _compare(name, want, OpenVINONetwork(compiled[name])(x))
        reference.update({f"{name}_{i}": a for i, a in enumerate(want)})
    return compiled, models, reference


def _save(folder, models: dict, reference: dict, *, replace: bool = False) -> None:
    """An entry for the converted networks (:func:`truthnet.runtime.ovcache.save`)."""
    ovcache.save(folder, models, reference, replace=replace, usable=lambda f: ovcache.usable(f, _from_cache),
                 what="MTCNN's networks", log=_log)


def _read(name: str, keras_net):
    """The network read by OpenVINO from the frozen TensorFlow graph of it."""
    import tensorflow as tf

    side = INPUT_SIDES[name]
    return ovcache.frozen_graph(keras_net, [tf.TensorSpec([None, side, side, 3], tf.float32)], name)


def _compare(name: str, want: list, got) -> None:
    """A network's outputs on the check input against TensorFlow's."""
    got = [np.asarray(t) for t in got]
    if len(want) != len(got) or any(a.shape != b.shape for a, b in zip(want, got)):
        raise NotExact(f"MTCNN's {name} on OpenVINO gives outputs shaped {[b.shape for b in got]}, "
                       f"TensorFlow {[a.shape for a in want]}")
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(want, got))
    if diff > TOLERANCE:
        raise NotExact(f"MTCNN's {name} on OpenVINO differs from TensorFlow by {diff:.2g}")

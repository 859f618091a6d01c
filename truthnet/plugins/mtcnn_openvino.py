"""MTCNN's three networks (the ``mtcnn`` package's weights) run by OpenVINO instead of TensorFlow.

The same networks and weights: TensorFlow traces each one into a frozen graph, which OpenVINO
reads (a fraction of a second, nothing written to disk) and runs on one thread per detector in
float32.  Only the networks move: the pyramid, the patches and the box arithmetic stay the
package's.  On the realistic corpus the ``paper`` preset found the same faces, boxes and crops
on every sampled frame both ways, with about 25 % less CPU for detection (``docs/scan.md``).

Each network is checked against TensorFlow on a fixed input when it is loaded: one whose
outputs differ by more than :data:`TOLERANCE` (another CPU, an OpenVINO that chose a lower
precision) raises :class:`NotExact`, and the detector stays on TensorFlow.

OpenVINO's telemetry package, which its import would otherwise load (it writes an id under
``~/intel`` and its converter reports usage over the network), is kept out of the process:
evidence tooling does not phone home.
"""

from __future__ import annotations

import importlib.util
import sys
import threading

import numpy as np

#: the most a network's output may differ from TensorFlow's on the check input
TOLERANCE = 1e-5

#: the input side each network takes (None: any size, PNet is fully convolutional)
INPUT_SIDES = {"pnet": None, "rnet": 24, "onet": 48}


class NotExact(RuntimeError):
    """A network's outputs on OpenVINO differ from TensorFlow's by more than :data:`TOLERANCE`."""


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def import_openvino():
    """``openvino``, without its telemetry (see the module's docstring)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # its import then falls back to a stub
    import openvino

    return openvino


class OpenVINONetwork:
    """Called like the package's Keras network: a float32 NHWC batch in, its outputs out (NumPy
    arrays, or tensors with ``as_tensors``, as the package's RNet/ONet stages expect).  One
    inference request, so one caller at a time (the detector's lock)."""

    def __init__(self, compiled, as_tensors: bool = False) -> None:
        self._request = compiled.create_infer_request()
        self._outputs = list(compiled.outputs)
        self._as_tensors = as_tensors

    def __call__(self, x):
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if len(x) == 0:  # no boxes left for RNet/ONet: empty outputs, as TensorFlow gives
            out = tuple(np.zeros((0, *(d.get_length() for d in o.get_partial_shape()[1:])), np.float32)
                        for o in self._outputs)
        else:
            got = self._request.infer({0: x})
            out = tuple(np.array(got[o], copy=True) for o in self._outputs)  # the request reuses its buffers
        if self._as_tensors:
            import tensorflow as tf

            out = tuple(tf.constant(o) for o in out)
        return out


#: OpenVINO binds the thread running a network to a core by default, and every detection
#: thread (and every process) got the same core: two detections at once shared one core while
#: the other idled (1.16 cores used by two detection threads, 1.51 unbound; 4.29 -> 3.10 s for
#: the same frames). So the threads are left to the OS.
PIN_THREADS = False

_compiled: dict[str, object] = {}  # network name -> compiled and checked model, once per process
_compiled_lock = threading.Lock()


def networks(stages: dict) -> dict:
    """``{"pnet": ..., "rnet": ..., "onet": ...}`` on OpenVINO for the package's stage objects
    (``StagePNet()`` ...): each network read, compiled and checked against TensorFlow once per
    process (~1 s for the three), then one inference request per caller."""
    with _compiled_lock:
        for name, stage in stages.items():
            if name not in _compiled:
                _compiled[name] = _compile(name, stage._model)
        return {name: OpenVINONetwork(_compiled[name], as_tensors=name != "pnet") for name in stages}


def _compile(name: str, keras_net):
    ov = import_openvino()
    core = ov.Core()
    model = _read(core, name, keras_net)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32",
                                                 "ENABLE_CPU_PINNING": PIN_THREADS})
    _check(name, OpenVINONetwork(compiled, as_tensors=name != "pnet"), keras_net)
    return compiled


def _read(core, name: str, keras_net):
    """The network read by OpenVINO from the frozen TensorFlow graph of it (through a temporary
    file, deleted once read: OpenVINO's TensorFlow reader takes a path)."""
    import os
    import tempfile

    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    side = INPUT_SIDES[name]
    concrete = tf.function(keras_net, input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)])
    frozen = convert_variables_to_constants_v2(concrete.get_concrete_function())
    with tempfile.TemporaryDirectory(prefix="truthnet-mtcnn-") as folder:
        path = os.path.join(folder, f"{name}.pb")
        with open(path, "wb") as fh:
            fh.write(frozen.graph.as_graph_def().SerializeToString())
        return core.read_model(path)


def _check(name: str, net: OpenVINONetwork, keras_net) -> None:
    """The network's outputs against TensorFlow's on one fixed input."""
    side = INPUT_SIDES[name] or 37  # (PNet: an odd size, as pyramid levels are)
    x = np.random.default_rng(0).uniform(-1, 1, (2, side, side, 3)).astype(np.float32)
    want = [np.asarray(t) for t in keras_net(x)]
    got = [np.asarray(t) for t in net(x)]
    if len(want) != len(got) or any(a.shape != b.shape for a, b in zip(want, got)):
        raise NotExact(f"MTCNN's {name} on OpenVINO gives outputs shaped {[b.shape for b in got]}, "
                       f"TensorFlow {[a.shape for a in want]}")
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(want, got))
    if diff > TOLERANCE:
        raise NotExact(f"MTCNN's {name} on OpenVINO differs from TensorFlow by {diff:.2g}")

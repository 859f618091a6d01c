"""Built-in face detectors: ``mtcnn`` (the paper's), ``haar`` (OpenCV, no TensorFlow), ``none``."""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from ..errors import ConfigError, PluginError
from ..faces import Face, downscale
from .hookspecs import hookimpl


_log = logging.getLogger(__name__)

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016): the ``mtcnn`` package's networks and weights.

    By default (``coarse_side=320``) a pass on a 320-pixel copy of each frame finds where the
    largest face is and how large; a full-resolution pass over only the pyramid levels that can
    hold a face at least ``1 / ratio`` of its size, in a window of ``margin`` face sizes around
    it, gives the boxes; frames where the coarse pass finds nothing get the whole pyramid.  The
    chosen (largest) face gets the box full-resolution MTCNN gives it, at a fraction of the
    cost; other faces far from it keep their coarse boxes (``truthnet.plugins.mtcnn_pyramid``).
    ``coarse_side=None`` runs the whole pyramid on every frame, as the paper did.

    ``max_side`` downscales frames before anything else and maps the boxes back (faster, boxes
    a little different).  ``min_confidence`` drops detections MTCNN itself kept (its own
    thresholds are PNet 0.6, RNet 0.7, ONet 0.8; 0 keeps all it returns).  ``device`` is a
    TensorFlow device string ("CPU:0", "GPU:0").  ``runtime``: where the three networks run:
    ``auto`` (the default) uses OpenVINO on a CPU when it is installed and gives TensorFlow's
    outputs on a check input, else TensorFlow; ``openvino`` or ``tensorflow`` to insist
    (:mod:`truthnet.plugins.mtcnn_openvino`: the same faces, ~30 % less CPU).

    Detection memory is bounded: a batch never holds more than ``max_batch_pixels`` (default
    ten 1080p frames, :data:`MAX_BATCH_PIXELS`), so ten 4K frames go through in batches of
    two, not all at once (a 3-second 4K clip peaked at 5.3 GB).  Up to 1080p nothing changes.

    Frames of the same size are detected in one batch, unless ``per_frame``: the ``mtcnn``
    package is not batch-invariant (a frame's boxes can change with the other frames of its
    batch), and the paper called ``detect_faces(frame)`` one frame at a time, so the ``paper``
    preset runs each frame alone and gets the package's single-frame answer.
    """

    name = "mtcnn"
    finds_faces = True

    @staticmethod
    def runs_in_decoder(options: dict, device: str | None = None) -> bool:
        """Whether a scan detects in its decode worker processes: where the networks run on
        OpenVINO on the CPU (no TensorFlow; built from their cache in a fraction of a second),
        so each worker decodes and detects its own files and only the crops travel back: no
        frames pickled between processes, no detection threads sharing one interpreter.  On a
        GPU, or with ``runtime=tensorflow``, the scanning process detects, in its threads."""
        runtime = options.get("runtime", "auto")
        where = str(options.get("device") or device or "CPU").upper()
        if runtime == "tensorflow" or not where.startswith("CPU"):
            return False
        from . import mtcnn_openvino

        return mtcnn_openvino.available()

    def __init__(
        self,
        max_side: int | None = None,
        min_confidence: float = 0.9,
        min_face_size: int = 20,
        device: str | None = None,
        coarse_side: int | None = 320,
        ratio: float = 2.5,
        margin: float = 1.0,
        per_frame: bool = False,
        max_batch_pixels: int = 0,
        runtime: str = "auto",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"mtcnn runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.runtime = runtime
        self.max_batch_pixels = int(max_batch_pixels) or MAX_BATCH_PIXELS
        self.max_side = int(max_side) if max_side else None
        self.min_confidence = float(min_confidence)
        self.min_face_size = int(min_face_size)
        if self.min_face_size < 12:
            raise ConfigError(f"mtcnn min_face_size must be at least 12 pixels, got {min_face_size}")
        self.coarse_side = int(coarse_side) if coarse_side else None
        if self.coarse_side is not None and self.coarse_side < 48:
            raise ConfigError(f"mtcnn coarse_side must be at least 48 pixels (or None), got {coarse_side}")
        self.ratio = float(ratio)
        if self.ratio < 1.0:
            raise ConfigError(f"mtcnn ratio must be >= 1, got {ratio}")
        self.margin = float(margin)
        if self.margin < 0.5:
            raise ConfigError(f"mtcnn margin must be >= 0.5 (face sizes around the face), got {margin}")
        self.per_frame = bool(per_frame)
        self.device = device or "CPU:0"
        self._net = None
        self._lock = threading.Lock()

    def ready(self) -> None:
        """Build the networks (done by the first :meth:`detect` otherwise): on OpenVINO from
        their cache without TensorFlow, else with TensorFlow's import and graphs."""
        self._model()

    def _model(self):
        with self._lock:
            if self._net is None:
                try:
                    self._net = self._build()
                except ImportError as exc:  # pragma: no cover - mtcnn is a hard dependency
                    raise PluginError("the mtcnn package is not installed: pip install mtcnn") from exc
            return self._net

    def _build(self):
        """The networks on the runtime asked for; ``auto``: OpenVINO on a CPU where it is
        installed and gives TensorFlow's outputs (checked when loaded), else TensorFlow."""
        from . import mtcnn_openvino
        from .mtcnn_pyramid import PyramidMTCNN

        on_cpu = self.device.upper().startswith("CPU")
        if self.runtime == "openvino" and not on_cpu:
            raise ConfigError(f"mtcnn runtime 'openvino' runs on the CPU, not on {self.device}",
                              hint="leave runtime at auto (TensorFlow on a GPU) or use the CPU")
        if self.runtime == "tensorflow" or not on_cpu or (self.runtime == "auto" and not mtcnn_openvino.available()):
            return self._on_tensorflow()
        if not mtcnn_openvino.available():
            raise PluginError("mtcnn runtime 'openvino' needs OpenVINO: pip install openvino")
        try:
            return PyramidMTCNN(device=self.device, runtime="openvino")
        except Exception as exc:
            if self.runtime == "openvino":
                raise PluginError(f"mtcnn on OpenVINO: {type(exc).__name__}: {exc}") from exc
            _log.warning("MTCNN stays on TensorFlow: OpenVINO could not take its networks (%s: %s)",
                         type(exc).__name__, exc)
            return self._on_tensorflow()

    def _on_tensorflow(self):
        from .._lazy import import_tensorflow
        from .mtcnn_pyramid import PyramidMTCNN

        import_tensorflow()
        return PyramidMTCNN(device=self.device)

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        from .mtcnn_pyramid import coarse_to_fine

        if not frames:
            return []
        net = self._model()
        smalls, factors = zip(*(downscale(f, self.max_side) for f in frames))
        results: list[list[Face]] = [[] for _ in frames]
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(smalls):
            groups.setdefault(img.shape, []).append(i)
        batches = [[i] for i in range(len(frames))] if self.per_frame else [
            chunk for idxs in groups.values() for chunk in _chunks(idxs, smalls[idxs[0]], self.max_batch_pixels)]
        for idxs in batches:
            batch = [np.ascontiguousarray(smalls[i]) for i in idxs]
            with self._lock:  # one network instance is not safe to call from several threads at once
                if self.coarse_side:
                    out = coarse_to_fine(
                        net,
                        batch,
                        coarse_side=self.coarse_side,
                        ratio=self.ratio,
                        margin=self.margin,
                        min_face_size=self.min_face_size,
                    )
                else:
                    out = net.detect(batch, min_face_size=self.min_face_size)
            for i, rows in zip(idxs, out):
                results[i] = [_face(r).scaled(factors[i]) for r in rows if float(r[4]) >= self.min_confidence]
        return results


#: where MTCNN's networks run (``auto``: OpenVINO on a CPU when installed and exact, else TensorFlow)
RUNTIMES = ("auto", "openvino", "tensorflow")

#: the most pixels one detection batch holds: ten 1080p frames (about 1 GB of MTCNN working memory)
MAX_BATCH_PIXELS = 10 * 1920 * 1080


def _chunks(idxs: list[int], frame: np.ndarray, max_pixels: int) -> list[list[int]]:
    """``idxs`` (frames shaped like ``frame``) in runs of at most ``max_pixels`` pixels (at least one frame)."""
    per = max(1, max_pixels // max(1, frame.shape[0] * frame.shape[1]))
    return [idxs[i : i + per] for i in range(0, len(idxs), per)]


def _face(row: np.ndarray) -> Face:
    """A :class:`Face` from one row of :meth:`PyramidMTCNN.detect`, with the integer box
    ``MTCNN.detect_faces`` would report for it."""
    x1, y1, x2, y2 = (float(v) for v in row[:4])
    box = tuple(float(v) for v in np.asarray([x1, y1, x2 - x1, y2 - y1]).round())
    kps = {name: (float(row[5 + j]), float(row[10 + j])) for j, name in enumerate(LANDMARKS)}
    return Face(box, float(row[4]), kps)


class HaarDetector:
    """OpenCV's shipped Haar cascade (frontal faces).  Fast, no TensorFlow; less accurate."""

    name = "haar"
    finds_faces = True
    runs_in_decoder = True  # OpenCV only: the scanner detects in its decode workers, in parallel

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int | None = 640,
    ) -> None:
        import cv2

        self._path = cascade if os.path.isabs(cascade) else os.path.join(cv2.data.haarcascades, cascade)
        # One CascadeClassifier shared between threads gives wrong detections: one per thread.
        self._local = threading.local()
        self._classifier()
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_side = int(max_side) if max_side else None

    def _classifier(self):
        import cv2

        clf = getattr(self._local, "clf", None)
        if clf is None:
            clf = cv2.CascadeClassifier(self._path)
            if clf.empty():
                raise ConfigError(f"cannot load Haar cascade {self._path!r}")
            self._local.clf = clf
        return clf

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        import cv2

        clf = self._classifier()
        out = []
        for frame in frames:
            small, factor = downscale(frame, self.max_side)
            gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
            boxes = clf.detectMultiScale(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size,) * 2
            )
            out.append([Face(tuple(float(v) for v in b), 1.0).scaled(factor) for b in boxes])
        return out


class NoDetector:
    """No face detection: the whole frame is the model's input."""

    name = "none"
    finds_faces = False
    runs_in_decoder = True

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        return [[Face((0.0, 0.0, float(f.shape[1]), float(f.shape[0])), 1.0)] for f in frames]


@hookimpl
def truthnet_register_face_detectors(register):
    register(
        "mtcnn",
        MTCNNDetector,
        "MTCNN with 5 keypoints (paper); options: coarse_side, ratio, margin, max_side, min_confidence, "
        "min_face_size, per_frame, device, runtime (auto, openvino, tensorflow)",
    )
    register("haar", HaarDetector, "OpenCV Haar cascade, no TensorFlow needed; options: max_side, min_neighbors")
    register("none", NoDetector, "no detection: the whole frame is used")

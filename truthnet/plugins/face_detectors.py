"""Built-in face detectors: ``mtcnn`` (the paper's), ``haar`` (OpenCV, no TensorFlow), ``none``."""

from __future__ import annotations

import os
import threading

import numpy as np

from ..errors import ConfigError, PluginError
from ..faces import Face, downscale
from .hookspecs import hookimpl


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) via the ``mtcnn`` package, which ships its weights.

    ``max_side`` downscales frames before detection and maps the boxes back (the paper runs at
    full resolution: ``None``).  ``min_confidence`` drops weak detections.  ``device`` is a
    TensorFlow device string ("CPU:0", "GPU:0").  Frames of the same size are detected in one
    batched call.
    """

    name = "mtcnn"
    finds_faces = True

    def __init__(
        self,
        max_side: int | None = None,
        min_confidence: float = 0.9,
        min_face_size: int = 20,
        device: str | None = None,
    ) -> None:
        self.max_side = int(max_side) if max_side else None
        self.min_confidence = float(min_confidence)
        self.min_face_size = int(min_face_size)
        self.device = device or "CPU:0"
        self._mtcnn = None
        self._lock = threading.Lock()

    def _model(self):
        with self._lock:
            if self._mtcnn is None:
                from .._lazy import import_tensorflow

                import_tensorflow()
                try:
                    from mtcnn import MTCNN
                except ImportError as exc:  # pragma: no cover - mtcnn is a hard dependency
                    raise PluginError("the mtcnn package is not installed: pip install mtcnn") from exc
                self._mtcnn = MTCNN(device=self.device)
            return self._mtcnn

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        if not frames:
            return []
        model = self._model()
        smalls, factors = zip(*(downscale(f, self.max_side) for f in frames))
        results: list[list[Face]] = [[] for _ in frames]
        # mtcnn batches only same-shaped images without padding effects; group by shape
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(smalls):
            groups.setdefault(img.shape, []).append(i)
        for idxs in groups.values():
            batch = [np.ascontiguousarray(smalls[i]) for i in idxs]
            with self._lock:  # one MTCNN instance is not safe to call from several threads at once
                out = model.detect_faces(batch, min_face_size=self.min_face_size)
            if len(batch) == 1 and out and isinstance(out[0], dict):
                out = [out]
            for i, dets in zip(idxs, out):
                faces = []
                for d in dets or []:
                    conf = float(d.get("confidence", 0.0))
                    if conf < self.min_confidence:
                        continue
                    x, y, w, h = (float(v) for v in d["box"])
                    kps = {k: (float(v[0]), float(v[1])) for k, v in (d.get("keypoints") or {}).items()}
                    faces.append(Face((x, y, w, h), conf, kps or None).scaled(factors[i]))
                results[i] = faces
        return results


class HaarDetector:
    """OpenCV's shipped Haar cascade (frontal faces).  Fast, no TensorFlow; less accurate."""

    name = "haar"
    finds_faces = True

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

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        return [[Face((0.0, 0.0, float(f.shape[1]), float(f.shape[0])), 1.0)] for f in frames]


@hookimpl
def truthnet_register_face_detectors(register):
    register("mtcnn", MTCNNDetector, "MTCNN with 5 keypoints (paper); options: max_side, min_confidence, device")
    register("haar", HaarDetector, "OpenCV Haar cascade, no TensorFlow needed; options: max_side, min_neighbors")
    register("none", NoDetector, "no detection: the whole frame is used")

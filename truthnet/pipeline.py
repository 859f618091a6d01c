"""Video -> face sequence: sample, decode only the sampled frames, detect, crop, resize, normalise."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .config import PipelineConfig
from .errors import DetectorError, NoFaceError, TooFewFramesError
from .faces import Face, crop_box, select_face
from .video import VideoInfo, count_frames, frames_digest, probe, read_frames


@dataclass
class FaceSequence:
    """The model's input for one video, and what was found on the way.

    ``crops`` holds the resized face crops as uint8 RGB, shape ``(num_frames, S, S, 3)``; padded
    frames (video shorter than ``num_frames``) are black and come last.  ``faces_found[i]`` is the
    number of faces detected in sampled frame ``i`` (``None`` when the detector does not look for
    faces); ``face_used[i]`` says whether frame ``i``'s crop is a detected face.
    """

    path: str
    info: VideoInfo
    frame_indices: list[int]
    crops: np.ndarray
    faces_found: list[int] | None
    face_used: list[bool]
    boxes: list[tuple[int, int, int, int] | None]
    padded: int
    normalization: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def frames_used(self) -> int:
        return len(self.frame_indices)

    def inputs(self, preprocess=None) -> np.ndarray:
        """The crops as float32 model input, normalised as the pipeline says."""
        return normalise(self.crops, self.normalization, preprocess)


def normalise(crops: np.ndarray, normalization: str, preprocess=None) -> np.ndarray:
    """uint8 crops -> float32 model input: ``"unit"`` divides by 255 (the paper), ``"backbone"``
    applies the backbone's own ``preprocess``."""
    x = crops.astype(np.float32)
    if normalization == "unit":
        return x / np.float32(255.0)
    return preprocess(x).astype(np.float32)


class FacePipeline:
    """Turns a video path into a :class:`FaceSequence` following a :class:`PipelineConfig`.

    The sampler, detector and backbone preprocessing are created once, by name, through the
    plugin registry.  The detector is created lazily: the ``none`` and ``haar`` detectors never
    import TensorFlow.
    """

    def __init__(self, config: PipelineConfig, *, device: str | None = None) -> None:
        from . import plugins

        self.config = config
        self.sampler = plugins.create_sampler(config.sampler, **config.sampler_options)
        self._device = device
        self._detector = None
        self._preprocess = None
        if config.normalization == "backbone":
            self._preprocess = plugins.create_backbone(config.backbone, **config.backbone_options).preprocess

    @property
    def detector(self):
        if self._detector is None:
            from . import plugins

            opts = dict(self.config.detector_options)
            if self._device and self.config.detector == "mtcnn":
                opts.setdefault("device", self._device)
            self._detector = plugins.create_face_detector(self.config.detector, **opts)
        return self._detector

    def ready(self) -> None:
        """Build the detector now, with whatever it loads once (MTCNN: TensorFlow, its three
        networks and their graphs), so that no file's ``detect`` time includes it."""
        ready = getattr(self.detector, "ready", None)
        if ready is not None:
            ready()

    def sample(self, info: VideoInfo) -> list[int]:
        idx = self.sampler.sample(info, self.config.num_frames)
        idx = sorted({int(i) for i in idx if 0 <= int(i) < max(info.frame_count, 0)})
        return idx[: self.config.num_frames]

    def window_indices(self, info: VideoInfo, windows: int = 1) -> list[list[int]]:
        """Frame indices of up to ``windows`` sequences spread over the video: the sampler runs
        on each of k equal segments.  ``windows=1`` is the sampler over the whole video.

        k is the largest number up to ``windows`` for which every segment yields as many frames
        as one window over the whole clip: a short clip gets fewer windows rather than windows
        padded with black frames (which pushed scores towards "fake": 0.02 -> 0.41 for one real
        12-frame clip at 1 -> 50 windows).  Callers see k as ``len(result)``.
        """
        n = max(info.frame_count, 0)
        full = len(self.sample(info))
        k = max(1, min(int(windows), n // max(full, 1)))
        while True:
            out = []
            for w in range(k):
                lo, hi = (w * n) // k, ((w + 1) * n) // k
                sub = dataclasses.replace(info, frame_count=hi - lo)
                out.append([lo + i for i in self.sample(sub)])
            if k == 1 or all(len(w) >= full for w in out):
                return out
            k -= 1

    def decode(
        self, path: str | os.PathLike, info: VideoInfo | None = None, windows: int = 1
    ) -> tuple[VideoInfo, list[tuple[list[np.ndarray], list[int]]], float]:
        """Probe and read the sampled frames of each window (one pass over the file).

        Uses OpenCV only (no TensorFlow), so the scanner can run it in an isolated process.
        Returns ``(info, [(frames, indices) per window], seconds)``.
        """
        path = os.fspath(path)
        t0 = time.perf_counter()
        info = info or probe(path)
        wanted = self.window_indices(info, windows)
        flat = sorted({i for w in wanted for i in w})
        frames, got = read_frames(path, flat, info)
        if len(got) < len(flat):
            # The header overstated the length: resample over the frames that really exist.
            info = dataclasses.replace(info, frame_count=count_frames(path), counted=True)
            wanted = self.window_indices(info, windows)
            flat = sorted({i for w in wanted for i in w})
            frames, got = read_frames(path, flat, info)
        info = dataclasses.replace(info, frames_sha256=frames_digest(frames, got))
        by_index = dict(zip(got, frames))
        per_window = [([by_index[i] for i in w if i in by_index], [i for i in w if i in by_index]) for w in wanted]
        return info, per_window, time.perf_counter() - t0

    def prepare(self, path: str | os.PathLike, info: VideoInfo | None = None) -> FaceSequence:
        """Build the model input for one video.

        Raises the :mod:`truthnet.errors` video errors (``NotAVideoError``, ``DecodeError``,
        ``TooFewFramesError``, ``NoFaceError`` ...) for files that cannot be scored.
        """
        info, windows, seconds = self.decode(path, info)
        frames, got = windows[0]
        return self.build(os.fspath(path), info, frames, got, decode_seconds=seconds)

    def build(
        self, path: str, info: VideoInfo, frames: list[np.ndarray], got: list[int], *, decode_seconds: float = 0.0
    ) -> FaceSequence:
        """Detect, crop, resize: decoded frames -> :class:`FaceSequence`."""
        cfg = self.config
        self.ready()
        t1 = time.perf_counter()
        if len(got) < cfg.min_frames:
            raise TooFewFramesError(path, f"{len(got)} decodable frame(s), the pipeline needs at least {cfg.min_frames}")

        detector = self.detector
        try:
            detections: list[list[Face]] = detector.detect(frames)
        except Exception as exc:  # one video's detector failure must not stop a scan
            raise DetectorError(
                path, f"face detector {cfg.detector!r} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            ) from exc
        t2 = time.perf_counter()
        finds = getattr(detector, "finds_faces", True)
        faces_found = [len(d) for d in detections] if finds else None
        chosen = [select_face(d, cfg.face_selection) for d in detections]
        n_face = sum(c is not None for c in chosen)
        if finds and cfg.min_face_frames > 0 and n_face < cfg.min_face_frames:
            err = NoFaceError(
                path,
                f"no face in {len(frames) - n_face} of {len(frames)} sampled frames "
                f"(needs a face in at least {cfg.min_face_frames})",
            )
            err.faces_found = faces_found
            raise err

        crops, boxes, used = self._crop(frames, chosen, finds)
        t3 = time.perf_counter()
        return FaceSequence(
            path=path,
            info=info,
            frame_indices=got,
            crops=crops,
            faces_found=faces_found,
            face_used=used,
            boxes=boxes,
            padded=cfg.num_frames - len(got),
            normalization=cfg.normalization,
            timings={"decode": decode_seconds, "detect": t2 - t1, "crop": t3 - t2},
        )

    def _crop(self, frames: list[np.ndarray], chosen: list[Face | None], finds: bool):
        """Each frame's crop (its face's box with the margin; where it has none, per
        ``no_face_policy``: the nearest frame's box, black, or the whole frame), resized."""
        cfg = self.config
        size = cfg.image_size
        crops = np.zeros((cfg.num_frames, size, size, 3), dtype=np.uint8)
        boxes: list[tuple[int, int, int, int] | None] = []
        used: list[bool] = []
        face_positions = [i for i, c in enumerate(chosen) if c is not None]
        for i, (frame, face) in enumerate(zip(frames, chosen)):
            h, w = frame.shape[:2]
            box = None
            if face is not None:
                box = crop_box(face.box, w, h, cfg.face_margin, cfg.square_crop)
            elif cfg.no_face_policy == "nearest" and face_positions:
                j = min(face_positions, key=lambda p: abs(p - i))
                fh, fw = frames[j].shape[:2]
                if (fh, fw) == (h, w):
                    box = crop_box(chosen[j].box, w, h, cfg.face_margin, cfg.square_crop)
            if box is None and cfg.no_face_policy == "black" and finds:
                boxes.append(None)
                used.append(False)
                continue  # stays black
            if box is None:
                box = (0, 0, w, h)
            boxes.append(box)
            used.append(face is not None)
            x0, y0, x1, y1 = box
            crops[i] = _resize(frame[y0:y1, x0:x1], size)
        return crops, boxes, used

    def inputs(self, seq: FaceSequence) -> np.ndarray:
        return seq.inputs(self._preprocess)

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        return normalise(crops, self.config.normalization, self._preprocess)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    # cv2.resize's default (bilinear) is what the paper's script used
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)

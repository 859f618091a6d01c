"""Generated test and demo videos: a real face (skimage's astronaut photo) moving over a background.

Used by the test suite, the benchmarks and ``truthnet demo``; deterministic for a given seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def astronaut_face(size: int = 128) -> np.ndarray:
    """The face region of ``skimage.data.astronaut()`` (Eileen Collins), RGB uint8, square."""
    import cv2
    from skimage import data

    img = data.astronaut()
    face = img[10:250, 120:330]  # head and shoulders; MTCNN finds the face in it
    return cv2.resize(face, (size, int(size * face.shape[0] / face.shape[1])), interpolation=cv2.INTER_AREA)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(40, 200, size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    grad = (xx / max(w - 1, 1))[..., None] * rng.integers(-40, 40, size=3)
    bg = np.clip(base + grad + rng.normal(0, 4, size=(h, w, 3)), 0, 255)
    return bg.astype(np.uint8)


def write_video(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB frames with OpenCV (mp4v for .mp4, MJPG for .avi)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = FOURCC.get(path.suffix.lower(), "mp4v")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with fourcc {fourcc}")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def face_frames(
    n_frames: int = 12, width: int = 320, height: int = 240, face_size: int = 120, seed: int = 0, face=None
) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """Frames of a face moving across a background, and each frame's pasted face rectangle."""
    rng = np.random.default_rng(seed)
    face = astronaut_face(face_size) if face is None else face
    fh, fw = face.shape[:2]
    bg = _background(height, width, rng)
    x0, y0 = rng.integers(0, max(width - fw, 1)), rng.integers(0, max(height - fh, 1))
    x1, y1 = rng.integers(0, max(width - fw, 1)), rng.integers(0, max(height - fh, 1))
    frames, rects = [], []
    for t in range(n_frames):
        a = t / max(n_frames - 1, 1)
        x, y = int(x0 + (x1 - x0) * a), int(y0 + (y1 - y0) * a)
        f = bg.copy()
        f[y : y + fh, x : x + fw] = face
        frames.append(f)
        rects.append((x, y, fw, fh))
    return frames, rects


def make_face_clip(path, n_frames: int = 12, seed: int = 0, **kw) -> tuple[Path, list]:
    frames, rects = face_frames(n_frames, seed=seed, **kw)
    return write_video(path, frames, kw.get("fps", 10.0)), rects


def make_noface_clip(path, n_frames: int = 12, width: int = 320, height: int = 240, seed: int = 0) -> Path:
    """A clip of moving coloured shapes and no face."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = _background(height, width, rng)
    frames = []
    for t in range(n_frames):
        f = bg.copy()
        cv2.circle(f, (20 + 10 * t % width, height // 2), 25, (200, 60, 60), -1)
        cv2.rectangle(f, (width // 2, 30 + 5 * t % height), (width // 2 + 50, 90 + 5 * t % height), (40, 90, 220), -1)
        frames.append(f)
    return write_video(path, frames)

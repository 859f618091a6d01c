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


# --- labelled synthetic datasets ----------------------------------------------------------


def _soft_ellipse(h: int, w: int, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """A soft elliptical mask over a face rectangle (values 0..1), jittered per call."""
    import cv2

    mask = np.zeros((h, w), np.float32)
    cx = w / 2 * (1 + rng.uniform(-jitter, jitter))
    cy = h * 0.52 * (1 + rng.uniform(-jitter, jitter))
    ax = w * 0.36 * (1 + rng.uniform(-jitter, jitter))
    ay = h * 0.42 * (1 + rng.uniform(-jitter, jitter))
    cv2.ellipse(mask, (int(cx), int(cy)), (max(int(ax), 2), max(int(ay), 2)), 0, 0, 360, 1.0, -1)
    k = max(3, int(min(h, w) * 0.15) | 1)
    return cv2.GaussianBlur(mask, (k, k), 0)


def self_blend(face: np.ndarray, rng: np.random.Generator, strength: float = 1.0, jitter: float = 0.04, *,
               with_mask: bool = False):
    """Self-blended image (after Shiohara & Yamasaki, CVPR 2022): a colour-shifted, slightly
    rescaled copy of the face blended back over itself under a soft mask.  The result has the
    blending boundary and colour mismatch of a face swap without a second identity.
    ``with_mask``: also return the blend mask (``(h, w)`` float32, 0..1): where it was altered."""
    import cv2

    h, w = face.shape[:2]
    src = face.astype(np.float32)
    shift = rng.uniform(12, 28, size=3) * rng.choice([-1, 1], size=3) * strength
    src = np.clip(src * rng.uniform(0.9, 1.1) + shift, 0, 255)
    s = 1.0 + rng.uniform(-0.04, 0.04)
    M = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-2, 2), s)
    M[:, 2] += rng.uniform(-0.02, 0.02, size=2) * (w, h)
    src = cv2.warpAffine(src, M, (w, h), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        src = cv2.GaussianBlur(src, (3, 3), 0)
    mask = _soft_ellipse(h, w, rng, jitter)[..., None]
    out = np.clip(mask * src + (1 - mask) * face.astype(np.float32), 0, 255).astype(np.uint8)
    return (out, mask[..., 0]) if with_mask else out


def face_swap(target: np.ndarray, donor: np.ndarray, rng: np.random.Generator, detector=None) -> np.ndarray:
    """Swap ``donor``'s face into ``target``: align by MTCNN's five keypoints (similarity
    transform), then Poisson-blend (``cv2.seamlessClone``) under a jittered elliptical mask."""
    import cv2

    h, w = target.shape[:2]
    if detector is None:
        from .plugins import create_face_detector

        detector = create_face_detector("mtcnn")
    ft, fd = detector.detect([target, donor])
    if not ft or not fd:
        return self_blend(target, rng)  # no keypoints to align on: fall back to self-blending
    kt, kd = ft[0].keypoints, fd[0].keypoints
    names = sorted(set(kt or {}) & set(kd or {}))
    if len(names) < 3:
        return self_blend(target, rng)
    M, _ = cv2.estimateAffinePartial2D(np.float32([kd[n] for n in names]), np.float32([kt[n] for n in names]))
    if M is None:
        return self_blend(target, rng)
    warped = cv2.warpAffine(donor, M, (w, h), borderMode=cv2.BORDER_REFLECT)
    x, y, bw, bh = (int(v) for v in ft[0].box)
    mask = np.zeros((h, w), np.uint8)
    sub = (_soft_ellipse(max(bh, 4), max(bw, 4), rng, 0.05) > 0.5).astype(np.uint8) * 255
    y0, x0 = max(y, 1), max(x, 1)
    y1, x1 = min(y + bh, h - 1), min(x + bw, w - 1)
    mask[y0:y1, x0:x1] = sub[y0 - y : y1 - y, x0 - x : x1 - x]
    if not mask.any():
        return self_blend(target, rng)
    ys, xs = np.nonzero(mask)
    centre = (int((xs.min() + xs.max()) / 2), int((ys.min() + ys.max()) / 2))
    return cv2.seamlessClone(warped, target, mask, centre, cv2.NORMAL_CLONE)


def _clip_frames(
    rng: np.random.Generator, n_frames: int, width: int, height: int, face: np.ndarray
) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """A real clip: the face with natural motion (drift, slight zoom, small head tilt,
    lighting change) over a random background."""
    import cv2

    bg = _background(height, width, rng)
    base = int(min(width, height) * rng.uniform(0.5, 0.65))
    f0 = cv2.resize(face, (base, int(base * face.shape[0] / face.shape[1])), interpolation=cv2.INTER_AREA)
    fh, fw = f0.shape[:2]
    fh, fw = min(fh, height - 2), min(fw, width - 2)
    f0 = f0[:fh, :fw]
    p0 = rng.uniform(0, 1, size=2)
    p1 = np.clip(p0 + rng.uniform(-0.5, 0.5, size=2), 0, 1)
    tilt0, tilt1 = rng.uniform(-6, 6, size=2)
    gain0, gain1 = rng.uniform(0.85, 1.15, size=2)
    frames, rects = [], []
    for t in range(n_frames):
        a = t / max(n_frames - 1, 1)
        x = int((p0[0] + (p1[0] - p0[0]) * a) * (width - fw))
        y = int((p0[1] + (p1[1] - p0[1]) * a) * (height - fh))
        M = cv2.getRotationMatrix2D((fw / 2, fh / 2), tilt0 + (tilt1 - tilt0) * a, 1.0)
        fc = cv2.warpAffine(f0, M, (fw, fh), borderMode=cv2.BORDER_REPLICATE)
        frame = bg.copy()
        frame[y : y + fh, x : x + fw] = fc
        gain = gain0 + (gain1 - gain0) * a
        frame = np.clip(frame.astype(np.float32) * gain + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        rects.append((x, y, fw, fh))
    return frames, rects


def _load_user_faces(folder: str | os.PathLike) -> list[np.ndarray]:
    import cv2

    faces = []
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            img = cv2.imread(str(p))
            if img is not None:
                faces.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return faces


def make_dataset(
    out: str | os.PathLike,
    *,
    n_real: int = 40,
    n_fake: int = 40,
    n_frames: int = 12,
    width: int = 160,
    height: int = 120,
    methods: tuple[str, ...] = ("sbi",),
    faces_dir: str | os.PathLike | None = None,
    real_videos_dir: str | os.PathLike | None = None,
    seed: int = 0,
    progress=None,
    masks: bool = False,
) -> list[Path]:
    """Write a labelled dataset in the ``folder`` layout: ``real/clipNNNN.mp4`` and
    ``fake/clipNNNN__<method>.mp4`` (made from real clip NNNN, so both share a group).

    ``methods``: ``sbi`` (self-blending) and/or ``swap`` (face swap between two sources aligned
    by MTCNN keypoints, seamless cloning).  ``faces_dir``: real face photos to use instead of
    the astronaut.  ``real_videos_dir``: the user's own real videos; fakes are made from them
    (per frame, the detected face is self-blended) and they are copied as the real class.
    ``masks``: also write each self-blended fake's blend masks, ``masks/<fake name>.npz`` (array
    ``masks``: ``(frames, height, width)`` uint8, 255 = fully blended), the ground truth of where
    it was altered (:mod:`truthnet.explain` is checked against it).  Deterministic for a given seed.
    """
    out = Path(out)
    (out / "real").mkdir(parents=True, exist_ok=True)
    (out / "fake").mkdir(parents=True, exist_ok=True)
    for m in methods:
        if m not in ("sbi", "swap"):
            raise ValueError(f"unknown fake method {m!r}; known: sbi, swap")
    written: list[Path] = []
    _mark_synthetic(out, methods=list(methods), seed=seed, n_real=n_real, n_fake=n_fake,
                    faces="user photos" if faces_dir else "skimage astronaut",
                    real_videos=str(real_videos_dir) if real_videos_dir else None)
    if real_videos_dir is not None:
        return _fakes_from_user_videos(Path(real_videos_dir), out, seed, progress)
    faces = _source_faces(faces_dir)
    detector = None
    if "swap" in methods:
        from .plugins import create_face_detector

        detector = create_face_detector("mtcnn")
    n = max(n_real, n_fake)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        face = faces[i % len(faces)]
        frames, rects = _clip_frames(rng, n_frames, width, height, face)
        name = f"clip{i:04d}"
        if i < n_real:
            written.append(write_video(out / "real" / f"{name}.mp4", frames))
        if i < n_fake:
            written.append(_write_fake(out, name, methods[i % len(methods)], frames, rects,
                                       faces[(i + 1) % len(faces)], len(faces), rng, detector, masks))
        if progress:
            progress(i + 1, n)
    return written


def _write_fake(out: Path, name: str, method: str, frames, rects, donor, n_faces: int, rng, detector,
                masks: bool) -> Path:
    """One fake clip (``fake/<name>__<method>.mp4``) and, for ``sbi`` when asked, its blend masks."""
    if method == "swap" and n_faces == 1:
        donor = np.ascontiguousarray(donor[:, ::-1])  # the mirrored face: another geometry
    blend_masks: list | None = [] if masks and method == "sbi" else None
    path = write_video(out / "fake" / f"{name}__{method}.mp4", _fake_frames(frames, rects, method, donor, rng,
                                                                           detector, blend_masks))
    if blend_masks:
        (out / "masks").mkdir(exist_ok=True)
        np.savez_compressed(out / "masks" / f"{name}__{method}.npz", masks=np.stack(blend_masks))
    return path


def _source_faces(faces_dir) -> list[np.ndarray]:
    """The user's face photos, or the astronaut when none are given (or none load)."""
    faces = _load_user_faces(faces_dir) if faces_dir else []
    if not faces:
        from skimage import data

        faces = [data.astronaut()[10:250, 120:330]]
    return faces


def _fake_frames(frames, rects, method: str, donor, rng, detector, masks: list | None = None) -> list[np.ndarray]:
    """The clip's frames with the face region of each self-blended (``sbi``) or swapped with
    ``donor`` (``swap``); ``masks`` (sbi) gets each frame's blend mask, frame-sized uint8."""
    out = []
    for f, (x, y, w, h) in zip(frames, rects):
        f = f.copy()
        region = f[y : y + h, x : x + w]
        if method == "sbi":
            f[y : y + h, x : x + w], m = self_blend(region, rng, with_mask=True)
            if masks is not None:
                full = np.zeros(f.shape[:2], np.uint8)
                full[y : y + h, x : x + w] = np.round(m * 255).astype(np.uint8)
                masks.append(full)
        else:
            import cv2

            d = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA)
            f[y : y + h, x : x + w] = face_swap(np.ascontiguousarray(region), d, rng, detector)
        out.append(f)
    return out


def _mark_synthetic(out: Path, **how) -> None:
    """Leave :data:`truthnet.modelcard.SYNTHETIC_MARKER` in the output, so that a model trained
    on it says so in its card (and every verdict list shows it)."""
    import json

    from . import __version__
    from .modelcard import SYNTHETIC_MARKER

    info = {"generator": "truthnet synth", "truthnet_version": __version__, **how,
            "note": "generated clips: a model trained on them knows nothing about real footage"}
    (out / SYNTHETIC_MARKER).write_text(json.dumps(info, indent=2))


def _fakes_from_user_videos(src: Path, out: Path, seed: int, progress=None) -> list[Path]:
    from .plugins import create_face_detector
    from .video import VideoInfo, is_video_path, probe, read_frames

    detector = create_face_detector("mtcnn", max_side=640)
    videos = sorted(p for p in src.rglob("*") if p.is_file() and is_video_path(p))
    written = []
    for i, p in enumerate(videos):
        rng = np.random.default_rng([seed, i])
        name = f"user{i:04d}"
        info: VideoInfo = probe(p)
        frames, _ = read_frames(p, range(min(info.frame_count, 300)), info)
        real_path = out / "real" / f"{name}{p.suffix.lower()}"
        shutil_copy(p, real_path)
        written.append(real_path)
        fake = []
        for f, faces in zip(frames, detector.detect(frames)):
            f = f.copy()
            if faces:
                x, y, w, h = (int(v) for v in max(faces, key=lambda fc: fc.area).box)
                x, y = max(x, 0), max(y, 0)
                if w > 8 and h > 8:
                    f[y : y + h, x : x + w] = self_blend(np.ascontiguousarray(f[y : y + h, x : x + w]), rng)
            fake.append(f)
        written.append(write_video(out / "fake" / f"{name}__sbi.mp4", fake, info.fps or 25.0))
        if progress:
            progress(i + 1, len(videos))
    return written


def shutil_copy(src: Path, dst: Path) -> None:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)

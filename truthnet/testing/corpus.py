"""A realistic footage corpus: what real face videos look like to a decoder and to MTCNN.

The benchmark's first videos (one large centred face on a flat background, OpenCV's ``mp4v``
writer with short keyframe intervals) are the easy case.  Real footage (FaceForensics++, DFDC)
is H.264 with keyframes every ~250 frames and B-frames, 480p to 1080p and portrait, 25-60 fps
or variable, sometimes with rotation metadata and audio, faces 5-50 % of the frame width,
sometimes two people, moving heads, blur, textured scenes.  This module writes such files
through a real encoder (libx264 via PyAV), deterministically from a seed, and caches them:

    python -m truthnet.testing.corpus DIR [--small] [--seed N]

``corpus(folder, small=False)`` returns the :class:`Clip` list (spec + path); ``small=True``
writes the same kinds of file at tiny sizes and durations for the test suite.  Faces come from
``skimage.data.astronaut()`` (one real photo, mirrored and tinted for the second person);
backgrounds from skimage's bundled photos and textures.  Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

#: bump when the rendering or encoding changes, so cached files are rewritten
CORPUS_VERSION = 1
# In astronaut_face's patch, MTCNN's face box is ~0.40 of the patch wide, centred at ~(0.49, 0.45)
_FACE_W, _FACE_CX, _FACE_CY, _FACE_H = 0.40, 0.49, 0.45, 0.45


@dataclass(frozen=True)
class Track:
    """One person: face width as a fraction of the frame width (start, end), the path of the
    face centre in frame fractions (interpolated), head roll amplitude in degrees."""

    size: tuple[float, float]
    path: tuple[tuple[float, float], ...]
    mirror: bool = False
    roll: float = 6.0
    light: float = 1.0  # gain on the face: under 1 is a dim, low-contrast face (weaker MTCNN confidences)
    occlude: float = 0.0  # most of the face's height an object (a hand, a microphone) covers from below


@dataclass(frozen=True)
class ClipSpec:
    """One file of the corpus; ``width`` x ``height`` is the upright (displayed) picture."""

    name: str
    width: int
    height: int
    fps: float
    seconds: float
    tracks: tuple[Track, ...]
    background: str = "coffee"
    blur: float = 0.0  # Gaussian sigma (pixels) over the whole picture: defocus / motion softness
    vfr: bool = False  # frame intervals alternate between 1/fps and 1.6/fps
    rotation: int = 0  # display rotation metadata (degrees anticlockwise); stored frames turned the other way
    audio: bool = False
    keyint: int = 250

    @property
    def frame_times(self) -> np.ndarray:
        """Presentation time of every frame, seconds."""
        if not self.vfr:
            return np.arange(int(round(self.fps * self.seconds))) / self.fps
        steps = np.where((np.arange(int(self.fps * self.seconds)) // 15) % 2 == 0, 1.0, 1.6) / self.fps
        t = np.concatenate([[0.0], np.cumsum(steps)])
        return t[t < self.seconds]


@dataclass(frozen=True)
class Clip:
    spec: ClipSpec
    path: Path

    @property
    def frame_count(self) -> int:
        return len(self.spec.frame_times)


def _full_specs() -> list[ClipSpec]:
    T = Track
    return [
        ClipSpec("480p25-small-face", 854, 480, 25, 20,
                 (T((0.05, 0.06), ((0.3, 0.45), (0.6, 0.5), (0.45, 0.4)), light=0.7, occlude=0.45),), blur=0.8),
        ClipSpec("480p30-two-faces-audio", 854, 480, 30, 12,
                 (T((0.12, 0.13), ((0.3, 0.5), (0.35, 0.45))), T((0.08, 0.08), ((0.72, 0.42), (0.7, 0.5)), mirror=True)),
                 background="rocket", audio=True),
        ClipSpec("720p30-two-faces", 1280, 720, 30, 15,
                 (T((0.10, 0.11), ((0.25, 0.5), (0.4, 0.45))), T((0.05, 0.05), ((0.75, 0.4), (0.7, 0.5)), mirror=True, light=0.75)),
                 background="chelsea"),
        ClipSpec("720p60-face-leaves", 1280, 720, 60, 10, (T((0.15, 0.15), ((0.4, 0.5), (0.7, 0.5), (1.3, 0.5))),)),
        ClipSpec("1080p25-tiny-face", 1920, 1080, 25, 12, (T((0.05, 0.05), ((0.55, 0.4), (0.45, 0.45)), light=0.8),),
                 background="rocket", blur=1.5),
        ClipSpec("1080p30-blur", 1920, 1080, 30, 10, (T((0.2, 0.3), ((0.5, 0.5), (0.45, 0.5))),), blur=2.5),
        ClipSpec("portrait-1080x1920-close", 1080, 1920, 30, 10, (T((0.35, 0.5), ((0.5, 0.4), (0.5, 0.45)), roll=8),),
                 background="chelsea"),
        ClipSpec("rotated90-720x1280", 720, 1280, 30, 10, (T((0.2, 0.22), ((0.5, 0.35), (0.45, 0.4))),), rotation=90),
        ClipSpec("vfr-480p", 854, 480, 30, 15, (T((0.07, 0.08), ((0.4, 0.5), (0.6, 0.45)), roll=12, light=0.8, occlude=0.35),), vfr=True),
        ClipSpec("480p25-long", 854, 480, 25, 60, (T((0.08, 0.1), ((0.3, 0.5), (0.7, 0.45), (0.4, 0.5))),),
                 background="rocket"),
    ]


def specs(small: bool = False) -> list[ClipSpec]:
    """The corpus's files; ``small``: the same kinds at 640 px on the long side (faces
    of at least 8 % so that they stay above MTCNN's 20 px) and 2 s (the long and the VFR file
    320 px and 12 s, so that they hold more than one keyframe interval)."""
    full = _full_specs()
    if not small:
        return full
    out = []
    for s in full:
        # the long and the VFR file keep more than 250 frames (a keyframe interval, a seek),
        # at half the size: they are there for the decoder
        long = "long" in s.name or s.vfr
        k = (320.0 if long else 640.0) / max(s.width, s.height)
        w, h = (int(round(v * k / 2)) * 2 for v in (s.width, s.height))
        seconds = 12.0 if long else min(s.seconds, 2.0)
        # faces under ~8 % of 640 px would be below MTCNN's 20-pixel minimum face
        tracks = tuple(dataclasses.replace(t, size=tuple(max(v, 0.08) for v in t.size)) for t in s.tracks)
        out.append(dataclasses.replace(s, width=w, height=h, seconds=seconds, tracks=tracks))
    return out


# --- rendering -------------------------------------------------------------------------------


def _background(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """A photo filling 1.2x the frame (the camera pans over it) with a fine texture on top."""
    import cv2
    from skimage import data

    photo = getattr(data, spec.background)()
    H, W = int(spec.height * 1.2), int(spec.width * 1.2)
    k = max(W / photo.shape[1], H / photo.shape[0])
    photo = cv2.resize(photo, (int(np.ceil(photo.shape[1] * k)), int(np.ceil(photo.shape[0] * k))))[:H, :W]
    tex = data.gravel() if rng.random() < 0.5 else data.grass()
    reps = (H // tex.shape[0] + 1, W // tex.shape[1] + 1)
    tex = np.tile(tex, reps)[:H, :W].astype(np.float32) - float(tex.mean())
    return np.clip(photo.astype(np.float32) + 0.25 * tex[..., None], 0, 255).astype(np.uint8)


def _soft_mask(h: int, w: int) -> np.ndarray:
    import cv2

    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, int(h * 0.48)), (int(w * 0.46), int(h * 0.5)), 0, 0, 360, 1.0, -1)
    k = max(3, int(min(h, w) * 0.08) | 1)
    return cv2.GaussianBlur(mask, (k, k), 0)


def _track_state(track: Track, u: float, t: float, W: int) -> tuple[float, float, float, float]:
    """Face centre (pixels fractions), face width (pixels), roll (degrees) at progress ``u``."""
    pts = np.asarray(track.path, np.float64)
    seg = u * (len(pts) - 1)
    i = min(int(seg), len(pts) - 2)
    a = seg - i
    a = 0.5 - 0.5 * np.cos(np.pi * a)  # ease in and out between path points
    cx, cy = pts[i] * (1 - a) + pts[i + 1] * a
    cx += 0.01 * np.sin(2.1 * t)  # small head sway and nod on top of the path
    cy += 0.008 * np.sin(1.3 * t + 1.0)
    size = (track.size[0] + (track.size[1] - track.size[0]) * u) * W * (1 + 0.04 * np.sin(0.9 * t))
    return cx, cy, size, track.roll * np.sin(0.7 * t)


def render(spec: ClipSpec, index: int, seed: int = 0, _cache: dict | None = None) -> tuple[np.ndarray, list]:
    """Frame ``index`` of ``spec`` upright (RGB, ``height`` x ``width``) and each visible
    face's approximate box ``(x, y, w, h)`` (where MTCNN's box should be)."""
    import cv2

    from ..synth import astronaut_face

    cache = _cache if _cache is not None else {}
    if "bg" not in cache:
        rng = np.random.default_rng([seed, CORPUS_VERSION, *spec.name.encode()])
        cache["bg"] = _background(spec, rng)
        cache["grain"] = [rng.normal(0, 3, (spec.height, spec.width, 1)).astype(np.int16) for _ in range(3)]
        cache["face"] = astronaut_face(512)
    times = spec.frame_times
    t = float(times[index])
    u = t / max(float(times[-1]), 1e-9)
    H, W = spec.height, spec.width
    bg = cache["bg"]
    ox = int((bg.shape[1] - W) * (0.5 + 0.5 * np.sin(0.15 * t)))  # slow camera pan
    oy = int((bg.shape[0] - H) * (0.5 + 0.5 * np.sin(0.11 * t + 0.5)))
    frame = bg[oy : oy + H, ox : ox + W].astype(np.float32)
    boxes = []
    for k, track in enumerate(spec.tracks):
        cx, cy, fw, roll = _track_state(track, u, t + k, W)
        pw = max(int(round(fw / _FACE_W)), 8)
        src = cache["face"][:, ::-1] if track.mirror else cache["face"]
        patch = cv2.resize(src, (pw, int(round(pw * src.shape[0] / src.shape[1]))), interpolation=cv2.INTER_AREA)
        ph = patch.shape[0]
        M = cv2.getRotationMatrix2D((pw * _FACE_CX, ph * _FACE_CY), roll, 1.0)
        patch = cv2.warpAffine(patch, M, (pw, ph), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        if track.mirror:
            patch = patch * np.float32([0.9, 1.0, 1.1])  # a second person, a little different in colour
        if track.light != 1.0:  # dim and flat: light from behind, contrast squeezed towards grey
            patch = (patch - 128.0) * track.light + 128.0 * (0.6 + 0.4 * track.light)
        alpha = cv2.warpAffine(_soft_mask(ph, pw), M, (pw, ph))[..., None]
        x0, y0 = int(round(cx * W - pw * _FACE_CX)), int(round(cy * H - ph * _FACE_CY))
        fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + pw, W), min(y0 + ph, H)
        if fx1 <= fx0 or fy1 <= fy0:
            continue  # left the frame
        a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        p = patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        frame[fy0:fy1, fx0:fx1] = a * p + (1 - a) * frame[fy0:fy1, fx0:fx1]
        bx, by, bw, bh = cx * W - fw / 2, cy * H - ph * _FACE_H / 2, fw, ph * _FACE_H
        if track.occlude:  # rises and falls: MTCNN's confidence drops (0.85-0.95), or it misses the face
            top = by + bh * (1 - track.occlude * (0.5 + 0.5 * np.sin(0.8 * t)))
            cv2.rectangle(frame, (int(bx - 0.1 * bw), int(top)), (int(bx + 1.1 * bw), int(by + 1.4 * bh)),
                          (90.0, 60.0, 50.0), -1)
        if 0 <= bx and bx + bw <= W and 0 <= by and by + bh <= H:
            boxes.append((bx, by, bw, bh))
    if spec.blur:
        frame = cv2.GaussianBlur(frame, (0, 0), spec.blur)
    out = np.clip(frame.astype(np.int16) + cache["grain"][index % 3], 0, 255).astype(np.uint8)
    return out, boxes


# --- encoding --------------------------------------------------------------------------------


def write_clip(spec: ClipSpec, path: str | os.PathLike, seed: int = 0) -> Path:
    """Encode ``spec`` as H.264 (libx264, ``keyint`` frames between keyframes, 3 B-frames) in
    an MP4, with AAC audio and rotation metadata where the spec asks."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.mp4")
    times = spec.frame_times
    sw, sh = (spec.height, spec.width) if spec.rotation in (90, 270) else (spec.width, spec.height)
    cache: dict = {}
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(spec.fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = sw, sh, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        # one encoder thread: x264's output then depends on nothing but its input
        vs.options = {"preset": "veryfast", "crf": "23", "threads": "1",
                      "x264-params": f"keyint={spec.keyint}:min-keyint=25:bframes=3:scenecut=0"}
        aus = None
        if spec.audio:
            aus = out.add_stream("aac", rate=48000)
            aus.layout = "mono"
        sent = 0
        for i, t in enumerate(times):
            img, _ = render(spec, i, seed, cache)
            if spec.rotation == 90:  # displayed turned 90 degrees anticlockwise: store it clockwise
                img = np.ascontiguousarray(np.rot90(img, k=-1))
            elif spec.rotation == 270:
                img = np.ascontiguousarray(np.rot90(img, k=1))
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for pkt in vs.encode(frame):
                out.mux(pkt)
            if aus is not None:
                sent = _audio_until(aus, out, t + 1.0 / spec.fps, sent)
        for pkt in vs.encode():
            out.mux(pkt)
        if aus is not None:
            for pkt in aus.encode():
                out.mux(pkt)
    if spec.rotation:
        _set_rotation(tmp, path, spec.rotation)
        tmp.unlink()
    else:
        tmp.replace(path)
    return path


def _audio_until(stream, out, t_end: float, sent: int) -> int:
    """Encode a tone with a little noise up to ``t_end`` seconds (1024-sample AAC frames)."""
    import av

    while sent / 48000.0 < t_end:
        n = np.arange(sent, sent + 1024)
        wave = 0.2 * np.sin(2 * np.pi * 220.0 * n / 48000.0) + 0.02 * np.sin(n * 0.37)
        frame = av.AudioFrame.from_ndarray(wave.astype(np.float32)[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, sent
        for pkt in stream.encode(frame):
            out.mux(pkt)
        sent += 1024
    return sent


def _set_rotation(src: Path, dst: Path, degrees: int) -> None:
    """Add a display matrix (rotation metadata) by remuxing with FFmpeg (no re-encode)."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-display_rotation", str(degrees),
           "-i", str(src), "-c", "copy", str(dst)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ffmpeg could not set the rotation of {src}: {r.stderr.strip()[-300:]}")


# --- the cached corpus -----------------------------------------------------------------------


def _key(spec: ClipSpec, seed: int) -> str:
    blob = json.dumps([CORPUS_VERSION, seed, dataclasses.asdict(spec)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def corpus(folder: str | os.PathLike, small: bool = False, seed: int = 0, progress=None) -> list[Clip]:
    """Every clip of the corpus under ``folder``, written where missing or out of date.

    A file's name holds a hash of its spec, the seed and :data:`CORPUS_VERSION`, so a changed
    spec writes a new file and an unchanged one is never re-encoded."""
    folder = Path(folder)
    clips = []
    for spec in specs(small):
        path = folder / f"{spec.name}-{_key(spec, seed)}.mp4"
        if not path.exists():
            if progress:
                progress(f"writing {path.name} ({len(spec.frame_times)} frames, {spec.width}x{spec.height})")
            write_clip(spec, path, seed)
        clips.append(Clip(spec, path))
    return clips


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m truthnet.testing.corpus", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--small", action="store_true", help="tiny sizes and durations (the test suite's corpus)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for clip in corpus(args.folder, args.small, args.seed, progress=lambda m: print(m, file=sys.stderr)):
        s = clip.spec
        print(f"{clip.path}\t{s.width}x{s.height}\t{clip.frame_count} frames\t{s.seconds:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

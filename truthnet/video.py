"""Probe a video file and read only the frames a sampler asked for.

OpenCV's reported frame count is a guess from the container header: it can be zero, or larger
than the number of frames that decode (truncated files, variable frame rate).  ``probe`` checks
it cheaply and ``read_frames`` copes when the video ends early.  Reading walks the stream with
``grab`` (demux + decode without the colour conversion and copy) and calls ``retrieve`` only on
the wanted frames: measured here at 0.3-0.6 s for 10 frames of a 720p clip, against ~2.7 s for
reading every frame and picking afterwards.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import DecodeError, EmptyFileError, FrameTooLargeError, NotAVideoError, UnreadableFileError

#: extensions treated as videos when walking folders
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp"}
)

#: a reported frame count above this is treated as unreliable and counted
_MAX_TRUSTED_FRAMES = 10_000_000

#: frames above this many pixels are refused from the stream header, before decoding (a crafted
#: 1.5 MB MJPEG of 16000 x 16000 frames otherwise takes gigabytes); ``TRUTHNET_MAX_PIXELS`` changes it
DEFAULT_MAX_PIXELS = 4096 * 2304

#: FFmpeg demuxers allowed to open a file: real containers only.  Concat lists, playlists (HLS,
#: M3U), image sequences and other indirections would judge a file by *other* files' bytes.
#: (FFmpeg's ``format_whitelist``, given to OpenCV's and PyAV's opens alike.)
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,avi,matroska,webm,flv,mpeg,mpegts,mpegvideo,asf"

#: text files that point at other files: refused by name before FFmpeg sees them
_INDIRECTIONS = ((b"ffconcat", "an FFmpeg concat list"), (b"#EXTM3U", "an M3U/HLS playlist"),
                 (b"#EXTINF", "an M3U playlist"), (b"[playlist]", "a PLS playlist"))


def max_pixels() -> int:
    """The pixel limit in force (``TRUTHNET_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`)."""
    from .errors import ConfigError

    text = os.environ.get("TRUTHNET_MAX_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"TRUTHNET_MAX_PIXELS={text!r}: expected a whole number of pixels") from None
    if n < 1:
        raise ConfigError(f"TRUTHNET_MAX_PIXELS={text!r}: must be at least 1")
    return n


@dataclass(frozen=True)
class VideoInfo:
    """What a sampler needs to know about a video."""

    path: str
    frame_count: int
    fps: float
    width: int
    height: int
    codec: str = ""
    size_bytes: int = 0
    counted: bool = False  # True when frame_count was measured by decoding, not read from the header
    frames_sha256: str = ""  # digest of the sampled frames once read (:func:`frames_digest`)

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration"] = self.duration
        return d


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _sniff_container(head: bytes) -> str | None:
    """Name of the container the first bytes announce, or None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mp4/mov"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska/webm"
    if head[:3] == b"FLV":
        return "flv"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    if head[:1] == b"\x47" and len(head) > 188 and head[188:189] == b"\x47":
        return "mpeg-ts"
    if len(head) > 196 and head[4:5] == b"\x47" and head[196:197] == b"\x47":
        return "mpeg-ts"  # M2TS: 192-byte packets, a 4-byte time code first
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "asf/wmv"
    return None


def _check_file(path: str) -> tuple[int, str | None]:
    """Size and sniffed container; raises the specific error for unusable files.  Only regular
    files are opened (:mod:`truthnet.filecheck`): pipes, sockets and devices never are."""
    from .filecheck import open_regular, sniff_image

    with open_regular(path) as fh:
        try:
            head = fh.read(256)
        except OSError as exc:
            raise UnreadableFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
        size = os.fstat(fh.fileno()).st_size
    if size == 0:
        raise EmptyFileError(path, "empty file (0 bytes)")
    image = sniff_image(head)
    if image:  # OpenCV would open it as a one-frame "video" and it would get a score
        raise NotAVideoError(path, f"{image}, not a video")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for magic, what in _INDIRECTIONS:
        if text[: len(magic)].lower() == magic.lower():
            raise NotAVideoError(path, f"{what}: it points at other files, and a file is judged by its own bytes only")
    container = _sniff_container(head)
    if container is None:  # never handed to FFmpeg's format guessing
        raise NotAVideoError(path, "not a video container TruthNet reads (MP4/MOV, Matroska/WebM, AVI, FLV, "
                             "MPEG-PS/TS, ASF/WMV): unrecognised content")
    return size, container


_CAPTURE_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


_QUIET = []


def _quiet_decoder_logs(cv2) -> None:
    """FFmpeg prints "moov atom not found" and the like to stderr for every broken file, and
    OpenCV a warning after it; TruthNet reports those files itself, with a status and reason.
    Silenced when TruthNet first opens a video (never on import), unless the user set
    ``OPENCV_FFMPEG_LOGLEVEL`` / ``OPENCV_LOG_LEVEL`` themselves."""
    if _QUIET:
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read by FFmpeg's backend at each open
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    _QUIET.append(True)


def _open(path: str):
    """An OpenCV capture of ``path`` through FFmpeg: real container demuxers only
    (:data:`DEMUXERS`) and one decoding thread.  Frame threading can conceal a damaged
    macroblock differently from run to run; one thread decodes the same bytes to the same
    frames every time (the same frames as threads on an intact stream)."""
    import cv2

    _quiet_decoder_logs(cv2)
    # OpenCV reads FFmpeg's open options from this variable at each open ("key;value|...")
    options = os.environ.get(_CAPTURE_OPTIONS, "")
    if "format_whitelist" not in options:
        os.environ[_CAPTURE_OPTIONS] = "|".join(x for x in (options, f"format_whitelist;{DEMUXERS}") if x)
    with _utf8_name(path) as name:
        cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        return None
    # Rotation metadata (phone videos) applied, said out loud rather than left to the build's
    # default: frames come out upright, and probe's size is that of the upright frames
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # (an open() parameter the FFmpeg backend refuses)
    return cap


@contextmanager
def _utf8_name(path: str | os.PathLike) -> Iterator[str]:
    """A name FFmpeg can be given for ``path``: itself, or for a name that is not valid UTF-8
    (which OpenCV and PyAV cannot pass on, and OpenCV's worker crashed on) the same open file
    through ``/proc/self/fd``, held open until the decoder has opened it."""
    path = os.fspath(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        if not os.path.isdir("/proc/self/fd"):
            raise DecodeError(path, "the file name is not valid UTF-8 and this system cannot open it another way",
                              hint="rename the file") from None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    yield path


def _check_pixels(path: str, cap) -> None:
    """Refuse frames above the pixel limit from the header's size, before any is decoded."""
    import cv2

    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    limit = max_pixels()
    if w * h > limit:
        raise FrameTooLargeError(path, f"frames of {w} x {h} ({w * h / 1e6:.1f} Mpixel) are above the limit of "
                                 f"{limit / 1e6:.1f} Mpixel (TRUTHNET_MAX_PIXELS); nothing was decoded")


def keyframe_indices(path: str | os.PathLike) -> list[int] | None:
    """Display indices of a video's keyframes, read from its demuxed packets without decoding
    (~0.01 s a clip); None where PyAV cannot say (not installed, no timestamps)."""
    try:
        import av
    except ImportError:
        return None
    try:
        with _utf8_name(path) as name, av.open(name, options={"format_whitelist": DEMUXERS}) as container:
            stream = container.streams.video[0]
            pts, keys = [], []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
    except (av.FFmpegError, IndexError, OSError):
        return None
    # a packet's display index is the rank of its timestamp (B-frames arrive out of order)
    rank = np.empty(len(pts), np.int64)
    rank[np.argsort(np.asarray(pts), kind="stable")] = np.arange(len(pts))
    return sorted(int(rank[i]) for i, k in enumerate(keys) if k)


def _fail_open(path: str, container: str | None):
    if container is None:
        raise NotAVideoError(path, "not a video file OpenCV can open (unrecognised content)")
    raise DecodeError(
        path, f"looks like {container} but cannot be opened: truncated or corrupt, or an unsupported codec"
    )


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open a video and return its :class:`VideoInfo`.

    Raises :class:`UnreadableFileError`, :class:`EmptyFileError`, :class:`NotAVideoError` or
    :class:`DecodeError`; never returns an info for a file whose first frame does not decode.
    """
    import cv2

    path = os.fspath(path)
    size, container = _check_file(path)
    cap = _open(path)
    if cap is None:
        _fail_open(path, container)
    try:
        _check_pixels(path, cap)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") if fourcc else ""
        ok, frame = cap.read()
        if not ok or frame is None:
            if container is None:
                raise NotAVideoError(path, "OpenCV opened the file but it holds no video frames")
            raise DecodeError(path, f"{container} container but no frame decodes (truncated or corrupt)")
        # the size of the frames read_frames returns (rotation applied), not the header's
        height, width = frame.shape[:2]
        counted = False
        if count <= 0 or count > _MAX_TRUSTED_FRAMES:
            # header has no usable count: count by grabbing (no colour conversion, cheap)
            count = 1
            while cap.grab():
                count += 1
            counted = True
    finally:
        cap.release()
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = 0.0
    return VideoInfo(path, count, fps, width, height, codec, size, counted)


def read_frames(
    path: str | os.PathLike, indices: Sequence[int], info: VideoInfo | None = None
) -> tuple[list[np.ndarray], list[int]]:
    """Read the frames at ``indices`` (sorted, unique) as RGB uint8 arrays.

    Returns ``(frames, read_indices)``: ``read_indices`` lists the indices actually read, which
    is shorter than ``indices`` when the video ends before a requested index (the header
    overstated its length).  Raises :class:`DecodeError` when no wanted frame decodes.
    """
    import cv2

    path = os.fspath(path)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return [], []
    if info is None:
        _check_file(path)
    cap = _open(path)
    if cap is None:
        _fail_open(path, None if info is None else "video")
    frames: list[np.ndarray] = []
    got: list[int] = []
    try:
        _check_pixels(path, cap)
        keyframes = _seek_points(path, wanted)
        pos = 0
        for idx in wanted:
            # Seek only across a keyframe far enough ahead: decoding restarts there either way,
            # and grabbing through frames is cheaper than a seek for short gaps
            k = keyframes[bisect.bisect_right(keyframes, idx) - 1] if keyframes else 0
            if k - pos >= _SEEK_MIN_SKIP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == idx:
                    pos = idx
                else:  # inexact on this file: start again and grab through
                    keyframes = []
                    cap.release()
                    cap = _open(path)
                    pos = 0
            while pos < idx:
                if not cap.grab():
                    return _finish(path, frames, got)
                pos += 1
            if not cap.grab():
                return _finish(path, frames, got)
            ok, frame = cap.retrieve()
            pos += 1
            if not ok or frame is None:
                return _finish(path, frames, got)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            got.append(idx)
    finally:
        cap.release()
    return frames, got


#: a gap (frames) between wanted frames below which seeking never pays
_SEEK_GAP = 250
#: seek only when a keyframe lets decoding skip at least this many frames
_SEEK_MIN_SKIP = 50


def _seek_points(path: str, wanted: list[int]) -> list[int]:
    """The keyframes worth seeking to: none unless some gap between wanted frames (or before
    the first) is longer than a usual keyframe interval (~250 frames in real footage); with
    linspace sampling of short clips nearly every interval holds a wanted frame, and grabbing
    through to the last one is the floor."""
    gaps = np.diff([0, *wanted])
    if gaps.max() <= _SEEK_GAP:
        return []
    return [k for k in (keyframe_indices(path) or []) if k > 0]


def _finish(path: str, frames: list[np.ndarray], got: list[int]) -> tuple[list[np.ndarray], list[int]]:
    if not frames:
        raise DecodeError(path, "no requested frame could be decoded (truncated or corrupt stream)")
    return frames, got


def frames_digest(frames: Sequence[np.ndarray], indices: Sequence[int]) -> str:
    """SHA-256 of the decoded frames with their indices and shapes: what the model was shown,
    so two results of the same bytes can be checked to have decoded the same."""
    import hashlib

    h = hashlib.sha256()
    for i, f in zip(indices, frames):
        h.update(f"{int(i)}:{'x'.join(map(str, f.shape))}:{f.dtype};".encode())
        h.update(np.ascontiguousarray(f).data)
    return h.hexdigest()


def count_frames(path: str | os.PathLike) -> int:
    """Count decodable frames by grabbing through the whole stream (slow; for broken headers)."""
    path = os.fspath(path)
    cap = _open(path)
    if cap is None:
        _fail_open(path, _check_file(path)[1])
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n

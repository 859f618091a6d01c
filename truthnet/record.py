"""The one result record: what TruthNet says about one file, from any entry point.

The Python API (``Classifier.score_video(s)``), ``truthnet scan``, ``evaluate``, ``calibrate``,
the job queue, the Ray engine, the store, the JSON/CSV/HTML reports and the TUI all produce or
read :class:`Result`.  Its fields are documented here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUS_OK = "ok"

#: every status a result can have; only ``ok`` carries a score
STATUSES = {
    "ok": "scored: `score` in [0, 1], `label` `fake` when `score >= threshold`",
    "no_face": "the face detector found no face in the sampled frames",
    "too_few_frames": "fewer decodable frames than the pipeline's `min_frames`",
    "decode_error": "looks like a video (container signature) but frames do not decode, or the file "
                    "crashed two fresh decoder processes",
    "not_a_video": "empty file, text, an image, random bytes, a named pipe, socket or device (never opened)",
    "unreadable": "missing, a directory, or no read permission",
    "detector_error": "the face detector failed on this video's frames (e.g. a plugin bug)",
    "timeout": "decoding took longer than the per-file time limit",
    "too_large": "the stream's header announces frames above the pixel limit (`TRUTHNET_MAX_PIXELS`, default "
                 "4096 x 2304); refused before any frame is decoded",
}

#: statuses that a re-scan does not retry: the same file and model give the same answer.
#: ``timeout``, ``unreadable`` and ``detector_error`` may be transient and are retried (a
#: decoder death is retried at once in a fresh worker; see :mod:`truthnet.decode.isolation`).
FINAL_STATUSES = ("ok", "no_face", "too_few_frames", "decode_error", "not_a_video")


def label_for(score: float, threshold: float) -> str:
    """The paper's rule (3.3.3): a score at or above the threshold is fake."""
    return "fake" if score >= threshold else "real"


def is_failure(status: str) -> bool:
    """Whether a status (or a summary count key) means the file could not be scored."""
    return status not in (STATUS_OK, "real", "fake")


@dataclass
class Result:
    """The outcome for one file.

    ``score`` and ``label`` are ``None`` whenever ``status`` is not ``"ok"``: a file that could
    not be scored never gets a made-up score.

    Fields:
        path: the file, as it was given; a scan stores it absolute and normalised
            (:func:`truthnet.paths.norm`).
        status: one of :data:`STATUSES`.
        reason: why a file failed, or which windows were skipped; empty when nothing to say.
        score: the model's score in [0, 1] (mean over windows), only for ``ok``.
        label: ``"fake"`` (``score >= threshold``) or ``"real"``, only for ``ok``.
        threshold: the decision threshold the label was made with.
        size: file size in bytes (scans).
        sha256: SHA-256 of the whole file: its identity.  A stored result is reused only for the
            same file hash, model SHA-256 and pipeline configuration (``model_key``).
        frames_sha256: SHA-256 of the decoded sampled frames (with their indices): the same bytes
            decode to the same frames on every run and through every entry point.
        duration: video duration in seconds, when probed.
        fps: frames per second, when probed (a sampled frame's time is ``index / fps``).
        frames_sampled: frames decoded and fed to the model (all windows together).
        frames_padded: black frames appended because the video was shorter than the model's
            sequence (first window).
        frame_indices: the sampled frame indices (first window); see :meth:`frame_times`.
        faces_found: faces detected per sampled frame, or ``None`` when the detector does not
            look for faces (``none``).
        window_scores: per-window scores when more than one window was asked for; shorter than
            asked when the clip holds too few frames for that many windows (``reason`` says so).
        timings: seconds per stage (``decode``, ``detect``, ``crop``, ``embed``, ``classify``;
            ``reused`` = 1 when taken from an earlier scan).
        thumbs: a JPEG strip of the face crops (store, HTML report, TUI); never in JSON.
        scan_id, scanned_at, model_key: where a stored result comes from.
    """

    path: str
    status: str
    reason: str = ""
    score: float | None = None
    label: str | None = None
    threshold: float | None = None
    size: int | None = None
    sha256: str | None = None
    frames_sha256: str | None = None
    duration: float | None = None
    fps: float | None = None
    frames_sampled: int = 0
    frames_padded: int = 0
    frame_indices: list[int] = field(default_factory=list)
    faces_found: list[int] | None = None
    window_scores: list[float] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    thumbs: bytes | None = None
    scan_id: int | None = None
    scanned_at: float | None = None
    model_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def is_fake(self) -> bool | None:
        return None if self.label is None else self.label == "fake"

    def frame_times(self) -> list[float] | None:
        """Seconds into the video of each sampled frame (first window), when the fps is known."""
        if not self.fps or not self.frame_indices:
            return None
        return [round(i / self.fps, 3) for i in self.frame_indices]

    def to_dict(self, *, with_thumbs: bool = False) -> dict[str, Any]:
        """JSON-ready fields (the thumbnails only when asked: they are image bytes)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "thumbs"}
        if with_thumbs:
            d["thumbs"] = self.thumbs
        return d


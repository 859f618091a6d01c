"""Worker-side decoding: one file -> its sampled frames (or face crops), no TensorFlow.

This runs inside the decode worker processes of :mod:`truthnet.isolation` (and in threads for
the in-process strategy), so it imports OpenCV and the plugin registry only.  With a face
detector that can run here (``runs_in_decoder``: ``none``, ``haar``) it also detects and crops,
so only the small crops cross the process boundary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .config import PipelineConfig
from .errors import VideoError

#: decode function run in the worker: (config_dict, path, windows) -> (info, per_window, seconds)
DecodeFn = Callable[[dict, str, int], tuple]


@dataclass
class WindowFailure:
    """Why one window of a video could not be built (picklable, unlike the exceptions)."""

    status: str
    reason: str
    faces_found: list[int] | None
    frames: int


_pipelines: dict[str, object] = {}  # one FacePipeline per configuration in each worker


def pipeline_for(config: dict):
    """The worker's :class:`~truthnet.pipeline.FacePipeline` for ``config`` (built once)."""
    from .pipeline import FacePipeline

    key = json.dumps(config, sort_keys=True)
    pipe = _pipelines.get(key)
    if pipe is None:
        pipe = _pipelines[key] = FacePipeline(PipelineConfig.from_dict(config))
    return pipe


def default_decode(config: dict, path: str, windows: int):
    """Probe ``path`` and read the sampled frames of each window; with a detector that runs in
    the decoder, return :class:`~truthnet.pipeline.FaceSequence` / :class:`WindowFailure` per
    window instead of the full-resolution frames."""
    pipe = pipeline_for(config)
    info, per_window, seconds = pipe.decode(path, windows=windows)
    if not detects_in_decoder(pipe.config):
        return info, per_window, seconds
    return info, [build_window(pipe, path, info, frames, got, seconds) for frames, got in per_window], seconds


def detects_in_decoder(config: PipelineConfig) -> bool:
    """Whether ``config``'s face detector declares it can run in the decode workers (no
    TensorFlow, cheap to create in each process)."""
    from . import plugins

    return bool(getattr(plugins.get_entry("face_detector", config.detector).factory, "runs_in_decoder", False))


def build_window(pipe, path, info, frames, got, seconds):
    """Detect and crop one window: a FaceSequence, or a WindowFailure saying why not."""
    try:
        return pipe.build(path, info, frames, got, decode_seconds=seconds)
    except VideoError as exc:
        return WindowFailure(exc.status, exc.reason, getattr(exc, "faces_found", None), len(got))

"""Worker-side decoding: one file -> its sampled frames (or face crops), no TensorFlow.

This runs inside the decode worker processes of :mod:`truthnet.decode.isolation` (and in threads for
the in-process strategy), so it imports OpenCV and the plugin registry only.  With a face
detector that can run here (``runs_in_decoder``: ``none``, ``haar``, ``mtcnn`` on OpenVINO on the
CPU) it also detects and crops,
so only the small crops cross the process boundary.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from ..config import PipelineConfig
from ..errors import VideoError

#: decode function run in the worker: (config_dict, path, windows) -> (info, per_window, seconds)
DecodeFn = Callable[[dict, str, int], tuple]


@dataclass
class WindowFailure:
    """Why one window of a video could not be built (picklable, unlike the exceptions)."""

    status: str
    reason: str
    faces_found: list[int] | None
    frames: int


class PipelinePool:
    """Face pipelines of one configuration not in use.  A thread takes one for a file and
    gives it back: a pipeline's detector (a network, a cascade) is never called from two
    threads at once, and no thread builds one that another has already built."""

    def __init__(self, build: Callable[[], object], key: str = "") -> None:
        self.build, self.key = build, key
        self.lock = threading.Lock()
        self.free: list = []

    @contextmanager
    def take(self):
        with self.lock:
            pipe = self.free.pop() if self.free else None
        if pipe is None:
            pipe = self.build()
        try:
            yield pipe
        finally:
            with self.lock:
                self.free.append(pipe)


_pools: dict[str, PipelinePool] = {}  # per configuration and device: this process's face pipelines
_pools_lock = threading.Lock()


def pipelines_for(config: dict, device: str | None = None) -> PipelinePool:
    """The :class:`~truthnet.pipeline.FacePipeline` pool of this process for ``config`` (and the
    face detector's ``device``): the one cache of face pipelines, used by the decode workers,
    by decoding in threads and by the engine's detection threads
    (:meth:`truthnet.classifier.Classifier.face_pipelines`)."""
    key = json.dumps([config, device], sort_keys=True, default=str)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            from ..pipeline import FacePipeline

            pool = _pools[key] = PipelinePool(lambda: FacePipeline(PipelineConfig.from_dict(config), device=device),
                                              key)
    return pool


def default_decode(config: dict, path: str, windows: int, detect: bool | None = None):
    """Probe ``path`` and read the sampled frames of each window; with a detector that runs in
    the decoder, return :class:`~truthnet.pipeline.FaceSequence` / :class:`WindowFailure` per
    window instead of the full-resolution frames.  ``detect``: the engine's decision (it plans
    its threads by it); None: decided here from ``config`` (:func:`detects_in_decoder`)."""
    with pipelines_for(config).take() as pipe:
        info, per_window, seconds = pipe.decode(path, windows=windows)
        if not (detects_in_decoder(pipe.config) if detect is None else detect):
            return info, per_window, seconds
        return info, [build_window(pipe, path, info, frames, got, seconds) for frames, got in per_window], seconds


def detects_in_decoder(config: PipelineConfig, device: str | None = None) -> bool:
    """Whether ``config``'s face detector declares it can run in the decode workers (no
    TensorFlow, cheap to create in each process): its factory's ``runs_in_decoder``, a flag or
    a function of the detector's options and the classifier's ``device``."""
    from .. import plugins

    flag = getattr(plugins.get_entry("face_detector", config.detector).factory, "runs_in_decoder", False)
    if callable(flag):
        flag = flag(dict(config.detector_options), device)
    return bool(flag)


def build_window(pipe, path, info, frames, got, seconds):
    """Detect and crop one window: a FaceSequence, or a WindowFailure saying why not."""
    try:
        return pipe.build(path, info, frames, got, decode_seconds=seconds)
    except VideoError as exc:
        return WindowFailure(exc.status, exc.reason, getattr(exc, "faces_found", None), len(got))

"""Built-in frame samplers: ``linspace`` (the paper's), ``stride`` and ``window``."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..video import VideoInfo
from .hookspecs import hookimpl


class LinspaceSampler:
    """``num_frames`` indices evenly spaced over the whole video (paper 3.5.2).

    ``np.linspace(0, n - 1, num_frames)`` rounded down.  A video with fewer than ``num_frames``
    frames yields each of its frames once; the pipeline pads with black frames.
    """

    name = "linspace"

    def sample(self, info: VideoInfo, num_frames: int) -> list[int]:
        n = info.frame_count
        if n <= 0:
            return []
        if n < num_frames:
            return list(range(n))
        return np.linspace(0, n - 1, num_frames).astype(int).tolist()


class StrideSampler:
    """Every ``step``-th frame from ``start`` (paper 3.2.1: "every 5th frame"), at most ``num_frames``."""

    name = "stride"

    def __init__(self, step: int = 5, start: int = 0) -> None:
        if step < 1 or start < 0:
            raise ConfigError(f"stride sampler needs step >= 1 and start >= 0, got step={step}, start={start}")
        self.step = int(step)
        self.start = int(start)

    def sample(self, info: VideoInfo, num_frames: int) -> list[int]:
        return list(range(self.start, info.frame_count, self.step))[:num_frames]


class WindowSampler:
    """``num_frames`` consecutive frames (paper 3.2.5: "consecutive video frames ... grouped").

    ``position`` places the window: 0.0 at the start, 0.5 centred, 1.0 at the end.
    """

    name = "window"

    def __init__(self, position: float = 0.5) -> None:
        if not 0.0 <= float(position) <= 1.0:
            raise ConfigError(f"window sampler position must be in [0, 1], got {position}")
        self.position = float(position)

    def sample(self, info: VideoInfo, num_frames: int) -> list[int]:
        n = info.frame_count
        if n <= num_frames:
            return list(range(max(n, 0)))
        start = int(round((n - num_frames) * self.position))
        return list(range(start, start + num_frames))


@hookimpl
def truthnet_register_samplers(register):
    register("linspace", LinspaceSampler, "N frames evenly spaced over the video (paper)")
    register("stride", StrideSampler, "every k-th frame from a start frame (options: step, start)")
    register("window", WindowSampler, "N consecutive frames (option: position 0..1)")

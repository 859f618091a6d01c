"""Face records and the cropping policy shared by every detector."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` is ``(x, y, w, h)`` in pixels of the frame it was found in."""

    box: tuple[float, float, float, float]
    confidence: float = 1.0
    keypoints: dict[str, tuple[float, float]] | None = field(default=None, compare=False)

    @property
    def area(self) -> float:
        return max(self.box[2], 0.0) * max(self.box[3], 0.0)

    def scaled(self, factor: float) -> Face:
        """The same face in a frame ``factor`` times larger (to map boxes back after downscaling)."""
        x, y, w, h = self.box
        kps = None
        if self.keypoints:
            kps = {k: (px * factor, py * factor) for k, (px, py) in self.keypoints.items()}
        return Face((x * factor, y * factor, w * factor, h * factor), self.confidence, kps)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "confidence": round(float(self.confidence), 4),
            "keypoints": {k: [round(float(a), 2), round(float(b), 2)] for k, (a, b) in self.keypoints.items()}
            if self.keypoints
            else None,
        }


def select_face(faces: list[Face], how: str = "largest") -> Face | None:
    if not faces:
        return None
    if how == "confident":
        return max(faces, key=lambda f: (f.confidence, f.area))
    return max(faces, key=lambda f: (f.area, f.confidence))


def crop_box(
    box: tuple[float, float, float, float], frame_w: int, frame_h: int, margin: float = 0.0, square: bool = False
) -> tuple[int, int, int, int]:
    """Integer ``(x0, y0, x1, y1)`` of a face box grown by ``margin`` (a fraction of its size on
    each side), made square around its centre if asked, and clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2.0, y + h / 2.0
    w, h = w * (1.0 + 2.0 * margin), h * (1.0 + 2.0 * margin)
    if square:
        w = h = max(w, h)
    x0 = int(round(max(cx - w / 2.0, 0.0)))
    y0 = int(round(max(cy - h / 2.0, 0.0)))
    x1 = int(round(min(cx + w / 2.0, frame_w)))
    y1 = int(round(min(cy + h / 2.0, frame_h)))
    if x1 - x0 < 2 or y1 - y0 < 2:  # degenerate box: use the whole frame rather than 0 pixels
        return 0, 0, frame_w, frame_h
    return x0, y0, x1, y1


def downscale(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``frame`` shrunk so that its long side is at most ``max_side``; and the factor back up."""
    import cv2

    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return frame, 1.0
    s = max_side / float(max(h, w))
    small = cv2.resize(frame, (max(1, int(round(w * s))), max(1, int(round(h * s)))), interpolation=cv2.INTER_AREA)
    return small, 1.0 / s

"""Pictures of an :class:`~truthnet.explain.Explanation`: a PNG (``truthnet explain``, the HTML
report) and rows of coloured half-blocks for a terminal (the TUI).  Both show the same three
things per sampled frame: the face crop, the heat map over it, and the frame's contribution as a
bar (red up: towards fake; green down: towards real) with the frame's time.  The TUI cuts its
half-block pictures out of the stored PNG (:func:`heat_tiles`): one picture, shown everywhere."""

from __future__ import annotations

import os

import numpy as np

CELL = 96  # pixels per frame column in the PNG
_TITLE_H = 52  # pixels above the crops
_RED, _GREEN, _GREY = (220, 60, 60), (60, 170, 80), (150, 150, 150)  # RGB: the image is drawn in RGB


def overlay(crop: np.ndarray, heat: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """RGB crop with the heat map (JET colours, 0 blue .. 1 red) blended over it."""
    import cv2

    if heat is None:
        return crop
    colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET),
                           cv2.COLOR_BGR2RGB)
    return np.clip((1 - alpha) * crop.astype(np.float32) + alpha * colours, 0, 255).astype(np.uint8)


def _ascii(text: str) -> str:
    """OpenCV draws ASCII only: anything else becomes ``?`` (a name is never dropped)."""
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def render(expl) -> np.ndarray:
    """The explanation as one RGB image: a title, the crops, the crops with heat maps, and the
    frame contributions with times."""
    import cv2

    r = expl.result
    n = len(r.frame_indices)
    width = max(n, 4) * CELL
    title_h, bar_h, label_h = _TITLE_H, 70, 18
    img = np.full((title_h + 2 * CELL + bar_h + label_h, width, 3), 255, np.uint8)
    verdict = f"{(r.label or r.status).upper()}  score {r.score:.3f}  (threshold {r.threshold:g})" if r.ok else \
        f"{r.status.upper()}: {r.reason}"
    cv2.putText(img, _ascii(verdict), (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    sub = f"{os.path.basename(r.path)}  file {(r.sha256 or '?')[:12]}  model {(expl.model_sha256 or '?')[:18]}"
    cv2.putText(img, _ascii(sub), (6, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    if not r.ok or expl.crops is None:
        return img[: title_h + 10]
    times = r.frame_times() or [None] * n
    top = float(max((abs(c) for c in expl.contributions), default=0.0)) or 1.0
    for i in range(n):
        x0 = i * CELL
        crop = cv2.resize(expl.crops[i], (CELL, CELL), interpolation=cv2.INTER_NEAREST)
        img[title_h : title_h + CELL, x0 : x0 + CELL] = crop
        heat = None if expl.heatmaps is None else cv2.resize(expl.heatmaps[i], (CELL, CELL))
        img[title_h + CELL : title_h + 2 * CELL, x0 : x0 + CELL] = overlay(crop, heat)
        _bar(img, x0, title_h + 2 * CELL, bar_h, expl.contributions[i] / top)
        label = "" if times[i] is None else f"{times[i]:.2f}s"
        cv2.putText(img, label, (x0 + 4, img.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    if expl.heatmaps is None and expl.heatmap_note:
        cv2.putText(img, _ascii(expl.heatmap_note)[:120], (6, title_h + CELL + CELL // 2),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 160), 1, cv2.LINE_AA)
    return img


def _bar(img: np.ndarray, x0: int, y0: int, h: int, v: float) -> None:
    """One contribution bar in a column: up (red) towards fake, down (green) towards real."""
    import cv2

    mid = y0 + h // 2
    cv2.line(img, (x0, mid), (x0 + CELL - 1, mid), _GREY, 1)
    end = mid - int(round(v * (h // 2 - 3)))
    colour = _RED if v > 0 else _GREEN
    if end != mid:
        cv2.rectangle(img, (x0 + CELL // 4, min(mid, end)), (x0 + 3 * CELL // 4, max(mid, end)), colour, -1)


def png_bytes(expl) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(render(expl), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB image
        raise RuntimeError("OpenCV could not encode the explanation as PNG")
    return buf.tobytes()


def write_png(expl, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    with open(path, "wb") as fh:
        fh.write(png_bytes(expl))
    return path


def heat_tiles(png: bytes, frames: int) -> list[np.ndarray]:
    """The heat-map overlays of a picture :func:`render` drew (its third band), one RGB tile per
    frame: what the TUI shows of a kept explanation, the very picture the PNG holds."""
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.shape[0] < _TITLE_H + 2 * CELL:
        return []
    band = cv2.cvtColor(img[_TITLE_H + CELL : _TITLE_H + 2 * CELL], cv2.COLOR_BGR2RGB)
    return [band[:, i * CELL : (i + 1) * CELL] for i in range(min(frames, band.shape[1] // CELL))]

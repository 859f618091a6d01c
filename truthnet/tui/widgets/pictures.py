"""Pictures in any terminal: half-block rendering (each cell shows two pixels, "▀" with the
upper pixel as foreground and the lower as background), plus a character line plot."""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text


def half_block(img: np.ndarray, width: int) -> Text:
    """An RGB uint8 image as ``width`` columns of half-block characters."""
    import cv2

    h, w = img.shape[:2]
    rows = max(2, int(round(width * h / w)) // 2 * 2)
    small = cv2.resize(img, (width, rows), interpolation=cv2.INTER_AREA)
    text = Text()
    for y in range(0, rows, 2):
        for x in range(width):
            top = small[y, x]
            bot = small[y + 1, x]
            text.append(
                "▀",
                Style(color=f"rgb({top[0]},{top[1]},{top[2]})", bgcolor=f"rgb({bot[0]},{bot[1]},{bot[2]})"),
            )
        if y + 2 < rows:
            text.append("\n")
    return text


def split_strip(jpeg: bytes) -> list[np.ndarray]:
    """The face crops of a stored thumbnail strip (square tiles side by side)."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        return []
    arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    s = arr.shape[0]
    return [arr[:, i : i + s] for i in range(0, arr.shape[1] - s + 1, s)]


def line_plot(series: dict[str, tuple[list[float], list[float]]], width: int = 40, height: int = 12,
              xlim=(0.0, 1.0), ylim=(0.0, 1.0), diagonal: bool = False) -> Text:
    """A small plot of one or more (x, y) series on a character grid (for ROC and training curves)."""
    grid = [[" "] * width for _ in range(height)]
    colours = [[None] * width for _ in range(height)]
    palette = ["bright_cyan", "bright_magenta", "yellow", "green"]

    def put(x, y, ch, colour):
        cx = int(round((x - xlim[0]) / max(xlim[1] - xlim[0], 1e-9) * (width - 1)))
        cy = height - 1 - int(round((y - ylim[0]) / max(ylim[1] - ylim[0], 1e-9) * (height - 1)))
        if 0 <= cx < width and 0 <= cy < height:
            grid[cy][cx] = ch
            colours[cy][cx] = colour

    if diagonal:
        for i in range(width):
            t = i / (width - 1)
            put(xlim[0] + t * (xlim[1] - xlim[0]), ylim[0] + t * (ylim[1] - ylim[0]), "·", "grey50")
    for k, (name, (xs, ys)) in enumerate(series.items()):
        colour = palette[k % len(palette)]
        # densify so that steep segments draw as lines, not dots
        for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
            n = max(2, int(max(abs(x1 - x0) / max(xlim[1] - xlim[0], 1e-9) * width,
                               abs(y1 - y0) / max(ylim[1] - ylim[0], 1e-9) * height * 2)))
            for t in np.linspace(0, 1, n):
                put(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, "•", colour)
        if len(xs) == 1:
            put(xs[0], ys[0], "•", colour)
    text = Text()
    for r in range(height):
        text.append("│")
        for c in range(width):
            text.append(grid[r][c], style=colours[r][c] or "")
        text.append("\n")
    text.append("└" + "─" * width + "\n")
    for k, name in enumerate(series):
        text.append(f"• {name}  ", style=palette[k % len(palette)])
    return text


__all__ = ["half_block", "split_strip", "line_plot", "Segment"]

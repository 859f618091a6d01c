"""A directory tree that shows only folders and videos, and counts the videos in each folder."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.widgets import DirectoryTree

from ...video import is_video_path


def count_videos(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if e.is_file() and is_video_path(e.name))
    except OSError:
        return 0


class VideoTree(DirectoryTree):
    """Folders and video files only; a folder's label ends with its number of videos."""

    def __init__(self, path, **kw) -> None:
        super().__init__(path, **kw)
        self._counts: dict[str, int] = {}

    def filter_paths(self, paths):
        out = []
        for p in paths:
            try:
                if p.is_dir() or is_video_path(p.name):
                    if not p.name.startswith("."):
                        out.append(p)
            except OSError:
                continue
        return out

    def render_label(self, node, base_style, style):
        label = super().render_label(node, base_style, style)
        data = node.data
        if data is None:
            return label
        path = Path(data.path)
        if path.is_dir():
            key = str(path)
            if key not in self._counts:
                self._counts[key] = count_videos(path)
            n = self._counts[key]
            if n:
                label = Text.assemble(label, Text(f"  {n}▶", style="bold cyan"))
        else:
            label = Text.assemble(Text("▶ ", style="cyan"), label)
        return label

"""A directory tree that shows only folders and videos, and counts the videos under each folder."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.widgets import DirectoryTree

from ...paths import one_line
from ...video import is_video_path


def _walk(folder: str, seen: set[str]):
    """``(dir, video file names)`` for ``folder`` and every folder below it, each real folder
    once (a symlink loop ends there), hidden folders skipped like the tree skips them."""
    real = os.path.realpath(folder)
    if real in seen:
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    names = []
    for e in entries:
        try:
            if e.is_dir():
                if not e.name.startswith("."):
                    subdirs.append(e.path)
            elif e.is_file() and is_video_path(e.name):
                names.append(e.name)
        except OSError:
            continue
    yield folder, names
    for d in subdirs:
        yield from _walk(d, seen)


def videos_below(folder: str | os.PathLike) -> list[str]:
    """Every video file in ``folder`` and its sub-folders, sorted by path."""
    return sorted(os.path.join(d, n) for d, names in _walk(os.fspath(folder), set()) for n in names)


class VideoTree(DirectoryTree):
    """Folders and video files only; a folder's label ends with the number of videos under it
    (FaceForensics++ keeps its videos three folders down: the top folders say how many)."""

    def __init__(self, path, **kw) -> None:
        super().__init__(path, **kw)
        self._counts: dict[str, int] = {}

    def count(self, folder: Path) -> int:
        """Videos in ``folder`` and below; one walk fills the counts of every folder under it."""
        key = str(folder)
        if key not in self._counts:
            per_dir: dict[str, int] = {}
            order = []
            for d, names in _walk(key, set()):
                per_dir[d] = len(names)
                order.append(d)
            for d in reversed(order):  # children come after their parent: sum bottom-up
                parent = os.path.dirname(d)
                if d != key and parent in per_dir:
                    per_dir[parent] += per_dir[d]
            for d in order:
                self._counts.setdefault(d, per_dir[d])
        return self._counts[key]

    def process_label(self, label) -> Text:
        """A file name is text, never markup, and one line whatever bytes it holds."""
        return super().process_label(Text(one_line(label)) if isinstance(label, str) else label)

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
            n = self.count(path)
            if n:
                label = Text.assemble(label, Text(f"  {n}▶", style="bold cyan"))
        else:
            label = Text.assemble(Text("▶ ", style="cyan"), label)
        return label

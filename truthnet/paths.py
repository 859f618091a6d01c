"""How paths are stored and shown, the same way in the CLI, the store, reports and the TUI.

Stored: absolute and normalised (:func:`norm`), so ``truthnet scan nasty`` run from one folder
and ``truthnet-tui /abs/path/nasty`` name the same files.  Symlinks are *not* resolved: an
analyst who opened a case through a link (``/cases/current -> /mnt/evidence/42``) sees the names
they typed, and the same file reached through two links is still found once per scan (the
collector de-duplicates by real path only for folder loops).

Shown: relative to the scanned root's parent folder (:func:`shown`), so the root's own name stays
visible (``nasty/sub/a.mp4``) and files of two roots never look alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def norm(path: str | os.PathLike) -> str:
    """``path`` absolute and normalised (``..``, ``.`` and doubled separators removed)."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def root_of(path: str, roots: Iterable[str]) -> str | None:
    """The longest of ``roots`` that holds ``path`` (or is it), or ``None``."""
    best = None
    for r in roots:
        r = norm(r)
        if path == r or path.startswith(r.rstrip(os.sep) + os.sep):
            if best is None or len(r) > len(best):
                best = r
    return best


def shown(path: str, roots: Iterable[str] | None = None) -> str:
    """``path`` as an analyst reads it: relative to the parent of the scanned root that holds
    it (``case/sub/a.mp4``); unchanged when no root holds it."""
    root = root_of(path, roots or ())
    if root is None:
        return path
    return os.path.relpath(path, os.path.dirname(root) or os.sep)


def folder_of(path: str, roots: Iterable[str] | None = None) -> str:
    """The shown folder of ``path`` (for grouping a report by folder)."""
    return os.path.dirname(shown(path, roots)) or "."

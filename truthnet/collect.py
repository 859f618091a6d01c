"""Collecting the files of a scan: walk folders, keep videos, report what cannot be read."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .paths import norm
from .video import is_video_path


@dataclass
class Collected:
    """Files to scan (absolute, normalised: :func:`truthnet.paths.norm`) and named paths that
    cannot be.  ``below``: for each named folder, how many videos its sub-folders hold that
    are not scanned (only without ``recursive``: the hint to use ``-r``)."""

    files: list[str]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (path, status, reason)
    below: dict[str, int] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Named paths that do not exist."""
        return [p for p, status, reason in self.problems if reason == MISSING]


MISSING = "file does not exist"


def collect_files(
    paths: Iterable[str | os.PathLike],
    *,
    recursive: bool = False,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
) -> Collected:
    """The files to scan, in a stable order, each once.

    A file named on the command line is always scanned (whatever its extension); inside
    folders only video extensions (or ``include`` globs) count.  Folder symlinks are followed
    once: a symlink loop ends there.  A named path that does not exist is reported as a problem.
    """
    out: list[str] = []
    seen: set[str] = set()
    problems: list[tuple[str, str, str]] = []
    wanted = matcher(include, exclude)

    def add(p: str) -> None:
        key = norm(p)
        if key not in seen:
            seen.add(key)
            out.append(key)

    below: dict[str, int] = {}
    for raw in paths:
        p = norm(raw)
        if os.path.isdir(p):
            _walk(p, recursive, wanted, add, problems)
            if not recursive:  # every time, not only when the folder itself held none
                n = _count_below(p, wanted)
                if n:
                    below[p] = n
        elif os.path.lexists(p):
            if not exclude or not any(fnmatch.fnmatch(os.path.basename(p), g) for g in exclude):
                add(p)
        else:
            problems.append((p, "unreadable", MISSING))
    return Collected(out, problems, below)


def matcher(include: list[str] | None, exclude: list[str] | None):
    """``wanted(path)``: not excluded, and an ``include`` glob or a video extension."""

    def wanted(p: str) -> bool:
        name = os.path.basename(p)
        if exclude and any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(p, g) for g in exclude):
            return False
        if include:
            return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(p, g) for g in include)
        return is_video_path(p)

    return wanted


def _walk(top: str, recursive: bool, wanted, add, problems: list) -> None:
    """``add`` every wanted file in ``top`` (and below it when ``recursive``), in name order;
    each real folder visited once (a symlink loop ends there); an unlistable folder is a problem."""
    visited_dirs: set[str] = set()
    stack = [top]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in visited_dirs:
            continue  # symlink loop or a folder reached twice
        visited_dirs.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            problems.append((d, "unreadable", f"cannot list folder: {exc.strerror or exc}"))
            continue
        subdirs = []
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(e.path)
            elif wanted(e.path):
                add(e.path)
        if recursive:
            stack.extend(reversed(subdirs))


def _count_below(folder: str, wanted) -> int:
    """Videos in the sub-folders of ``folder`` (symlinked folders not followed: a hint only)."""
    n = 0
    for d, _dirs, names in os.walk(folder):
        if d != folder:
            n += sum(1 for name in names if wanted(os.path.join(d, name)))
    return n

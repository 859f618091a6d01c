"""Collecting the files of a scan: walk folders, keep videos, report what cannot be read."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .video import is_video_path


@dataclass
class Collected:
    files: list[str]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (path, status, reason)


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

    def wanted(p: str) -> bool:
        name = os.path.basename(p)
        if exclude and any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(p, g) for g in exclude):
            return False
        if include:
            return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(p, g) for g in include)
        return is_video_path(p)

    def add(p: str) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        p = os.fspath(raw)
        if os.path.isdir(p):
            visited_dirs: set[str] = set()
            stack = [p]
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
        elif os.path.lexists(p):
            if not exclude or not any(fnmatch.fnmatch(os.path.basename(p), g) for g in exclude):
                add(p)
        else:
            problems.append((p, "unreadable", "file does not exist"))
    return Collected(out, problems)

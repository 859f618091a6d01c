"""Checking output paths before any work, so a typo costs a second, not a whole scan.

:func:`check_writable` creates nothing: it only looks at the path and its nearest existing
folder.  Errors are :class:`~truthnet.errors.ConfigError` (exit code 3, one line, no traceback).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def check_writable(path: str | os.PathLike, what: str = "output file") -> Path:
    """Raise a :class:`ConfigError` unless a file could be written at ``path``.

    A path that is a folder, whose nearest existing ancestor is not a folder, or that cannot be
    written for permissions (or a read-only file system such as ``/proc``) is refused.
    """
    p = Path(os.path.abspath(os.fspath(path)))
    if p.is_dir():
        suffix = ".csv" if "csv" in what else ".sqlite" if "db" in what else ".html"
        raise ConfigError(f"{what} {path}: is a folder; give a file name (e.g. {Path(path) / 'report'}{suffix})")
    if p.exists():
        try:
            with open(p, "ab"):
                pass
        except OSError as exc:
            raise write_error(path, exc, what) from None
        return p
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is not a folder")
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".truthnet-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write in {parent}: {exc.strerror or exc}") from None
    return p


def write_error(path: str | os.PathLike, exc: OSError, what: str = "output file") -> ConfigError:
    """A one-line error for an ``OSError`` met while writing ``path``."""
    return ConfigError(f"cannot write {what} {path}: {exc.strerror or exc}")


def reports_dir() -> Path:
    """Where the TUI offers to write reports: ``$TRUTHNET_REPORTS_DIR``, else a
    ``truthnet-reports`` folder in the user's documents folder.  Never beside the evidence."""
    env = os.environ.get("TRUTHNET_REPORTS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_documents_dir

    return Path(user_documents_dir()) / "truthnet-reports"


def default_report_path(folder: str | os.PathLike, suffix: str = ".html") -> Path:
    """A new report file for ``folder`` in :func:`reports_dir`, named after it and the time."""
    import time

    name = Path(folder).name or "root"
    return reports_dir() / f"truthnet-{name}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"

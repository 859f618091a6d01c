"""Checking output paths before any work, so a typo costs a second, not a whole scan.

:func:`check_writable` creates nothing: it only looks at the path and its nearest existing
folder.  Errors are :class:`~truthnet.errors.ConfigError` (exit code 3, one line, no traceback).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError


def check_writable(path: str | os.PathLike, what: str = "output file", *, make_parents: bool = False) -> Path:
    """Raise a :class:`ConfigError` unless a file could be written at ``path``.

    A path that is a folder, whose nearest existing ancestor is not a folder, or that cannot be
    written for permissions (or a read-only file system such as ``/proc``) is refused; so is one
    whose folder does not exist, unless ``make_parents`` (a typo must not create a folder chain).
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
    if parent != p.parent and not make_parents:
        raise ConfigError(f"{what} {path}: the folder {p.parent} does not exist",
                          hint="create it first, or pass --mkdir to create it")
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


def write_atomically(path: str | os.PathLike, write) -> Path:
    """Write a text report through ``write(fh)`` into a temporary file beside ``path``, then rename it
    over ``path``: a full disk or an interrupt leaves the previous report whole, never a
    truncated one.  Parent folders are created as before."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with open(fd, "w", newline="", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: first characters that make a spreadsheet read a cell as a formula (OWASP: CSV injection)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell that a spreadsheet shows as text: a string starting like a formula gets a
    leading apostrophe, undecodable bytes of a file name become ``\\xNN`` (:func:`paths.text`);
    numbers and everything else unchanged."""
    if isinstance(value, str):
        from ..paths import text

        value = text(value)
        if value.startswith(_FORMULA_STARTS):
            return "'" + value
    return value

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


# -- names with any bytes -------------------------------------------------------------------------
# A POSIX file name is bytes; Python hands it over as ``str`` with each undecodable byte as a lone
# surrogate (``surrogateescape``).  That string is lossless, but SQLite, UTF-8 files and terminals
# refuse it, and a name may hold newlines, escape sequences or markup.  Two views:
#   text(s)      any bytes as readable text (``\xff``), for files, tables and the store's text column
#   one_line(s)  text(s) with control characters escaped too, for a line of terminal output
# The store keeps the exact bytes beside its text (``results.path_bytes``), so nothing is lost.

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def text(s: str) -> str:
    """``s`` as valid Unicode: undecodable bytes of a file name become ``\\xNN``; anything else unchanged."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return os.fsencode(s).decode("utf-8", "backslashreplace") if _fs_encodable(s) else \
            s.encode("utf-8", "backslashreplace").decode("ascii")


def _fs_encodable(s: str) -> bool:
    try:
        os.fsencode(s)
        return True
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to (e.g. from JSON)
        return False


def one_line(s: str) -> str:
    """:func:`text` with control characters (newlines, escape sequences, C1) escaped: one
    name is always one line of output and never drives the terminal."""
    return text(s).translate(_CONTROL)


def stored(s: str) -> str:
    r"""The store's text for a name: the name itself when it is valid UTF-8 without a backslash,
    else its bytes escaped (``\\`` for a backslash, ``\xNN`` for an undecodable byte).  One text
    per name (``a`` + byte 0xFF and a file literally named ``a\xff`` never share a row)."""
    if "\\" not in s and text(s) == s:
        return s
    raw = os.fsencode(s) if _fs_encodable(s) else s.encode("utf-8", "surrogatepass")
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def exact_bytes(s: str) -> bytes | None:
    """The file name's bytes when :func:`stored` is not the name itself, else ``None``."""
    return None if stored(s) == s or not _fs_encodable(s) else os.fsencode(s)

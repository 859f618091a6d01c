"""Which files TruthNet opens: regular files only, and nothing that could block.

Opening a named pipe waits for a writer, reading ``/dev/zero`` never ends, and a socket cannot
be opened at all; any of them once stalled a whole scan.  So every path is classified with
``stat`` first (``lstat``, then the target's ``stat`` for a symlink: neither opens anything),
only regular files are opened, and they are opened with ``O_NONBLOCK`` and checked again on
the open descriptor (a file swapped for a pipe between the two checks is still refused).
Reading a regular file can still hang on a dead network mount: :func:`read_within`
bounds the one read the scan's main process does (the fingerprint).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from .errors import NotAVideoError, UnreadableFileError, VideoTimeoutError

T = TypeVar("T")

#: what ``st_mode`` says a non-regular file is, in words for a reason line
_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

#: leading bytes of image formats OpenCV would happily open as a one-frame "video"
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file (directly or through symlinks).

    Raises :class:`UnreadableFileError` (missing, dangling symlink, directory, no permission)
    or :class:`NotAVideoError` naming what the file is (a named pipe, a socket, a device).
    Opens nothing.
    """
    path = os.fspath(path)
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        raise UnreadableFileError(path, "file does not exist") from None
    except PermissionError:
        raise UnreadableFileError(path, "permission denied", hint="check the folder's permissions") from None
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    via = ""
    st = lst
    if stat.S_ISLNK(lst.st_mode):
        target = os.path.realpath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise UnreadableFileError(path, f"a symlink to a missing file ({target})") from None
        except OSError as exc:
            raise UnreadableFileError(path, f"a symlink whose target cannot be read ({target}): "
                                            f"{exc.strerror or exc}") from None
        via = f"a symlink to {target}, "
    if stat.S_ISREG(st.st_mode):
        return st
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFileError(path, f"{via}is a directory, not a video file")
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise NotAVideoError(path, f"{via}{kind}, not a video file: never opened")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading without ever blocking on a special file."""
    path = os.fspath(path)
    check_regular(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise UnreadableFileError(path, "permission denied", hint="check the file's read permission") from None
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot open the file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the stat and the open
        os.close(fd)
        raise NotAVideoError(path, "changed into a special file while being opened: never read")
    return os.fdopen(fd, "rb")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the whole file, streamed in 1 MiB blocks (hashlib releases the GIL; about
    1 GB/s a core).  A video's identity: results are reused only for the same hash.  Opened as
    :func:`open_regular` does: a pipe or device is never read."""
    import hashlib

    h = hashlib.sha256()
    with open_regular(path) as fh:
        fd = fh.fileno()
        os.set_blocking(fd, True)  # a regular file: O_NONBLOCK was only for the open
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sniff_image(head: bytes) -> str | None:
    """``"a PNG image"`` etc. when the first bytes are an image format's signature."""
    for sig, name in _IMAGE_SIGNATURES:
        if head.startswith(sig):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:2] == b"BM" and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":  # reserved bytes are 0
        return "a BMP image"
    return None


def read_within(path: str, timeout: float, read: Callable[[str], T]) -> T:
    """``read(path)`` (e.g. :func:`truthnet.features.file_fingerprint`), given up after
    ``timeout`` seconds with :class:`VideoTimeoutError`.  The read runs in a daemon thread: one
    that hangs forever (a dead network mount) is left behind and never holds up the scan or
    its exit."""
    out: dict = {}

    def work() -> None:
        try:
            out["value"] = read(path)
        except BaseException as exc:  # handed to the caller's thread
            out["exc"] = exc

    t = threading.Thread(target=work, name="truthnet-read", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise VideoTimeoutError(path, f"reading the file took longer than {timeout:g} s")
    if "exc" in out:
        raise out["exc"]
    return out["value"]

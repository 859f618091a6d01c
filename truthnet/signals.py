"""Ctrl-C and SIGTERM as a request to stop, never as an exception at an arbitrary point.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be: between
``BEGIN`` and ``COMMIT`` of a result, halfway through a report.  A scan instead asks for the
first signal to *set an event* that the scanner checks between files (everything finished is
stored, the scan is marked ``interrupted``); a second signal stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: what a first signal says on stderr (written with os.write: safe inside a signal handler)
FIRST_NOTICE = b"\nstopping after the files in hand (Ctrl-C again to stop at once)\n"


@contextmanager
def stop_requests(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[threading.Event]:
    """Within the block, the first of ``signals`` sets the yielded event and the second raises
    ``KeyboardInterrupt``; the previous handlers come back on exit.  Off the main thread
    (embedded use) signals cannot be caught: the event is simply never set by one."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        try:
            os.write(2, FIRST_NOTICE)
        except OSError:
            pass

    previous, mask = handle(signals, handler)
    try:
        yield stop
    finally:
        if mask:  # block again what was blocked before, before the old handlers come back
            signal.pthread_sigmask(signal.SIG_BLOCK, set(mask) & set(signals))
        for s, h in previous.items():
            signal.signal(s, h)


def handle(signals, handler) -> tuple[dict, set | None]:
    """Install ``handler`` for ``signals`` and unblock them in this thread (the main thread;
    elsewhere nothing is installed and ``({}, None)`` comes back).  Returns the previous handlers
    and the previous signal mask.

    Unblocking matters: the signal mask is inherited across ``fork``/``exec``, so a parent that
    started this process while it blocked SIGTERM (some supervisors and libraries block it
    around a spawn) leaves every thread here blocking it, and a handled SIGTERM then stays
    pending for ever: the process cannot be stopped politely."""
    if threading.current_thread() is not threading.main_thread():
        return {}, None
    previous = {s: signal.signal(s, handler) for s in signals}
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    return previous, mask

"""``truthnet scan --watch DIR``: score every new or changed video under a folder once it is
complete, into the same store with the same reuse rules as a scan.

A file is *complete* when its size and modification time have not changed for ``settle``
seconds and no process holds it open for writing (Linux ``/proc``).  Files being written are
therefore never scored half-written; a file deleted before it is complete is simply forgotten;
a file renamed into place (``x.mp4.part`` -> ``x.mp4``) is one new file.

Arrivals are learnt from the operating system's events (the optional ``watchfiles`` package)
and, always, from a walk of the folder every ``rescan`` seconds: events never arrive on some
network file systems, and a burst can overflow the kernel's queue.  Without ``watchfiles`` (or
with ``poll``) the walk alone is used, every ``poll`` seconds.  On start the whole folder is
walked: what arrived while no watcher ran is scored, and what a previous watcher (or scan) has
already reported for these bytes and this model is not reported again.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: seconds a file's size and mtime must stay unchanged before it is taken as complete
SETTLE_SECONDS = 2.0
#: seconds between walks of the folder when events are used (the walk catches what they miss)
RESCAN_SECONDS = 30.0


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    since: float  # when (monotonic) this size and mtime were first seen


@dataclass
class Arrivals:
    """Which files under ``root`` are new or changed, and which of those are complete."""

    root: str
    settle: float = SETTLE_SECONDS
    include: list[str] | None = None
    exclude: list[str] | None = None
    clock: Callable[[], float] = time.monotonic
    pending: dict[str, _Pending] = field(default_factory=dict)
    handed: dict[str, tuple] = field(default_factory=dict)  # path -> identity (_ident) when handed out

    def walk(self) -> None:
        """Notice every video under the folder (recursively), as a scan would list them."""
        from .collect import collect_files

        files = collect_files([self.root], recursive=True, include=self.include, exclude=self.exclude).files
        present = {os.path.abspath(p) for p in files}
        for gone in [p for p in self.handed if p not in present]:  # deleted or moved away: forget it
            del self.handed[gone]
        self.notice(files)

    def notice(self, paths) -> None:
        """``paths`` may have changed: track those that are videos and not yet handed out as
        they are now."""
        from .collect import matcher

        wanted = matcher(self.include, self.exclude)  # inside a watched folder as inside a scanned one
        for p in paths:
            p = os.path.abspath(p)
            st = _stat(p)
            if st is None:
                self.pending.pop(p, None)  # deleted (or renamed away) before it was complete
                continue
            if not wanted(p):
                continue
            now = (st.st_size, st.st_mtime_ns)
            if self.handed.get(p) == _ident(st):
                continue
            cur = self.pending.get(p)
            if cur is None or (cur.size, cur.mtime_ns) != now:
                self.pending[p] = _Pending(st.st_size, st.st_mtime_ns, self.clock())

    def changed(self, events) -> None:
        """What the OS reported: ``(change, path)`` pairs, ``change`` one of ``added``,
        ``modified``, ``deleted``.  A folder *added* (moved in whole, or made and filled) is one
        event for the folder and none for the files it brings: its videos are tracked now, not
        at the next walk.  Symbolic links to folders are left to the walk (which follows each
        once); an event for the watched folder itself is a walk."""
        from .collect import collect_files

        files, folders = [], set()
        for change, path in events:
            path = os.path.abspath(path)
            if change == "added" and os.path.isdir(path) and not os.path.islink(path):
                folders.add(path)
            else:
                files.append(path)
        self.notice(files)
        if self.root in folders:
            self.walk()
            return
        tops = [f for f in sorted(folders) if not any(f.startswith(o + os.sep) for o in folders)]
        if tops:
            self.notice(collect_files(tops, recursive=True, include=self.include, exclude=self.exclude).files)

    def ready(self) -> list[str]:
        """The pending files that are complete now, in name order; handed out once each (until
        their bytes change again)."""
        from .procs import open_for_writing

        stable = []
        for p, cur in list(self.pending.items()):
            st = _stat(p)
            if st is None:
                del self.pending[p]
                continue
            if (st.st_size, st.st_mtime_ns) != (cur.size, cur.mtime_ns):
                self.pending[p] = _Pending(st.st_size, st.st_mtime_ns, self.clock())
            elif self.clock() - cur.since >= self.settle:
                stable.append((p, st))
        if not stable:
            return []
        writing = open_for_writing()
        out = []
        for p, st in stable:
            if (st.st_dev, st.st_ino) in writing:
                continue  # a writer still holds it: wait
            del self.pending[p]
            self.handed[p] = _ident(st)
            out.append(p)
        return sorted(out)


def _ident(st) -> tuple:
    """What says a file at a path is still the one handed out: size, mtime, inode and ctime (a
    copy that keeps size and mtime, ``cp -p`` or ``rsync -t``, is a new inode or ctime)."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    import stat

    return st if stat.S_ISREG(st.st_mode) else None


def event_source(root: str, stop: threading.Event) -> queue.Queue | None:
    """A queue that a background thread fills with the paths the OS says changed under
    ``root`` (``watchfiles``), or None when ``watchfiles`` is not installed."""
    try:
        import watchfiles
    except ImportError:
        return None
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for changes in watchfiles.watch(root, stop_event=stop, recursive=True, debounce=200, step=50,
                                            raise_interrupt=False):
                for change, path in changes:
                    q.put((change.name, path))
        except Exception as exc:  # the walk still finds everything; say why events stopped
            q.put(exc)

    threading.Thread(target=pump, name="truthnet-watch-events", daemon=True).start()
    return q


def watch(root: str, session, *, settle: float = SETTLE_SECONDS, poll: float | None = None,
          rescan: float = RESCAN_SECONDS, include=None, exclude=None, cancel=None,
          on_log: Callable[[str], None] | None = None, tick: float = 0.25) -> None:
    """Feed complete new or changed videos under ``root`` to ``session.add`` until ``cancel``
    is set (the file in hand is finished first).  ``poll``: walk every ``poll`` seconds instead
    of listening to OS events."""
    cancel = cancel or threading.Event()
    arrivals = Arrivals(os.path.abspath(root), settle=settle, include=include, exclude=exclude)
    stop = threading.Event()
    events = None if poll else event_source(arrivals.root, stop)
    interval = poll if poll else (rescan if events is not None else 2.0)
    if on_log:
        how = f"polling every {interval:g} s" if events is None else f"OS events, and a walk every {interval:g} s"
        on_log(f"watching {arrivals.root} ({how}); a file is scored once unchanged for {settle:g} s "
               "and closed by its writer")
    arrivals.walk()
    last_walk = time.monotonic()
    try:
        while not cancel.is_set():
            if events is not None:
                if not _drain(events, arrivals, tick, on_log):
                    events, interval = None, poll or 2.0  # the events stopped: walk often instead
            else:
                cancel.wait(tick)
            if time.monotonic() - last_walk >= interval:
                arrivals.walk()
                last_walk = time.monotonic()
            ready = arrivals.ready()
            if ready and not cancel.is_set():
                session.add(ready, cancel=cancel)
    finally:
        stop.set()


def _drain(events: queue.Queue, arrivals: Arrivals, tick: float, on_log) -> bool:
    """Take what the event thread queued (waiting up to ``tick`` for the first); False once the
    events have stopped."""
    try:
        item = events.get(timeout=tick)
    except queue.Empty:
        return True
    batch = [item]
    while True:
        try:
            batch.append(events.get_nowait())
        except queue.Empty:
            break
    alive = True
    for item in batch:
        if isinstance(item, Exception):
            alive = False
            if on_log:
                on_log(f"warning: file-system events stopped ({item}); the folder is walked every 2 s instead")
    arrivals.changed([item for item in batch if not isinstance(item, Exception)])
    return alive

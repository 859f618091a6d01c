"""Decode isolation: the strategies by which the engine gets decoded frames for its files.

``process`` (the default everywhere): a pool of plain subprocesses, OpenCV only, talking over
socket pairs with the typed messages below.  A native crash or a hang inside a decoder costs
that one file (``decode_error`` / ``timeout``), never the caller.  ``thread``: the same decode
function in threads of the calling process (no start-up cost; a crash takes the caller down and
the time limit cannot be enforced).  Both run :func:`truthnet.decode.default_decode`, so a
file gets the same frames, status and score whichever strategy reads it.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as future_wait
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from . import DecodeFn, default_decode
from ..errors import ConfigError, TruthnetError, VideoError

ISOLATIONS = ("auto", "process", "thread")


# --- the messages -------------------------------------------------------------------------


@dataclass
class DecodeTask:
    """Decode ``path`` with pipeline ``config`` into ``windows`` windows; ``detect``: whether
    the decoder also detects and crops (the engine's decision; None: the decode function's)."""

    key: int
    config: dict
    path: str
    windows: int
    detect: bool | None = None


@dataclass
class Decoded:
    """``per_window``: ``(frames, indices)`` per window, or built FaceSequence/WindowFailure
    when the detector ran in the worker."""

    key: int
    info: Any
    per_window: list
    seconds: float


@dataclass
class DecodeFailed:
    """The file cannot be decoded: its own status and reason.  ``retry``: the failure may be
    the worker's, not the file's (out of memory): the strategy tries once more, afresh."""

    key: int
    status: str
    reason: str
    retry: bool = False


@dataclass
class SetupFailed:
    """The worker could not set up the pipeline (unknown plugin, bad option): the scan's
    configuration is wrong, not the file.  The engine raises it as a :class:`ConfigError`."""

    key: int
    message: str


Message = Decoded | DecodeFailed | SetupFailed


def decode_one(decode_fn: DecodeFn, task: DecodeTask) -> Message:
    """Run ``decode_fn`` on one task and turn the outcome into a message (both strategies)."""
    try:
        if decode_fn is default_decode and task.detect is not None:  # (other decode functions decide alone)
            info, per_window, seconds = decode_fn(task.config, task.path, task.windows, detect=task.detect)
        else:
            info, per_window, seconds = decode_fn(task.config, task.path, task.windows)
        return Decoded(task.key, info, per_window, seconds)
    except VideoError as exc:
        return DecodeFailed(task.key, exc.status, exc.reason)
    except TruthnetError as exc:  # ConfigError, UnknownNameError, PluginError: not the file's fault
        return SetupFailed(task.key, str(exc))
    except MemoryError:  # the machine's state as much as the file's: worth one more try
        return DecodeFailed(task.key, "decode_error", "ran out of memory decoding this file", retry=True)
    except Exception as exc:  # an unexpected decoder failure is this file's problem only
        return DecodeFailed(task.key, "decode_error", f"{type(exc).__name__}: {exc}")


def fn_spec(fn: DecodeFn) -> str:
    """``module:qualname`` of a decode function, importable in the worker process."""
    spec = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in spec or fn.__module__ == "__main__":
        raise ConfigError(
            f"the decode workers cannot import the decode function {spec}",
            hint="define it at module level in an importable module (not the script being run, "
            "not inside a function), or decode in threads (isolation='thread')",
        )
    return spec


#: what a decode worker sends once it has imported its decode function, before any task
READY = "ready"


# --- the process strategy -----------------------------------------------------------------


class _Worker:
    """One decode subprocess (``python -m truthnet.decode.worker``), over a socket pair."""

    def __init__(self, spec: str) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        from ..procs import python_env

        env = python_env(whole_sys_path=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "truthnet.decode.worker", str(child.fileno()), spec],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.task: DecodeTask | None = None
        self.started = 0.0
        self.ready = False  # it has said READY: it imported its decode function

    def exitcode(self) -> int | None:
        try:
            return self.proc.wait(2)
        except Exception:
            return None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(2)
        except Exception:
            pass
        self.conn.close()


#: attempts a file gets when its worker dies under it (a crash signal, an out-of-memory kill):
#: a worker can die for reasons of its own, so only a file that kills a fresh one again is blamed
ATTEMPTS = 2


class IsolatedDecoder:
    """A pool of decode processes with a per-file time limit.

    ``run(tasks)`` yields one message per task as files finish, in completion order; at most
    one decoded file per worker waits unconsumed.  A file whose worker dies is retried once in
    a fresh worker; only a second death makes it that file's ``decode_error``.
    """

    def __init__(self, workers: int = 2, timeout: float = 120.0, decode_fn: DecodeFn = default_decode) -> None:
        self.n = max(1, int(workers))
        self.timeout = float(timeout)
        self.spec = fn_spec(decode_fn)
        self.workers: list[_Worker] = []
        self.restarts = 0
        self.deaths: dict[int, list[str]] = {}  # task key -> how each worker died on it
        self._todo: deque = deque()

    def __enter__(self) -> IsolatedDecoder:
        self.workers = [_Worker(self.spec) for _ in range(self.n)]
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except Exception:
                pass
        for w in self.workers:
            try:
                w.proc.wait(1)
            except Exception:
                w.kill()
            w.conn.close()
        self.workers = []

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.restarts += 1
        self.workers[self.workers.index(w)] = _Worker(self.spec)

    def _dispatch(self, todo: deque) -> None:
        for w in self.workers:
            if w.task is None and todo:
                w.task = todo.popleft()
                w.started = time.monotonic()
                try:
                    w.conn.send(w.task)
                except (BrokenPipeError, OSError):
                    task = w.task
                    self._replace(w)
                    todo.appendleft(task)

    def run(self, tasks: Iterable[DecodeTask]) -> Iterator[Message | None]:
        """Messages as files finish; ``None`` after each 0.2 s with nothing finished, so the
        caller can act between files (flush a waiting batch, notice a cancel).  Task keys are
        per run: a pool kept between runs forgets the earlier runs' worker deaths."""
        self.deaths = {}
        todo = self._todo = deque(tasks)
        while todo or any(w.task for w in self.workers):
            self._dispatch(todo)
            busy = [w for w in self.workers if w.task is not None]
            if not busy:
                continue
            ready = wait([w.conn for w in busy], timeout=0.2)
            answered = False
            for w in busy:
                msg = self._collect(w, ready)
                if msg is not None:
                    answered = True
                    yield msg
            if not answered:
                yield None

    def _collect(self, w: _Worker, ready: list) -> Message | None:
        """The message of a worker that answered, died or ran out of time (else None; a task
        whose worker died the first time is queued again)."""
        task = w.task
        if w.conn in ready:
            try:
                msg = w.conn.recv()
                if isinstance(msg, str) and msg == READY:
                    w.ready = True
                    msg = w.conn.recv() if w.conn.poll() else READY
            except (EOFError, OSError):
                msg = None  # the socket closed: the worker died
            if isinstance(msg, str):  # READY: started; the task's answer is still to come
                return self._timed_out(w)
            if isinstance(msg, SetupFailed):
                w.task = None
                return SetupFailed(task.key, msg.message)
            if msg is None and not w.ready:  # it died before it could take any file
                code = w.exitcode()
                raise ConfigError(
                    f"a decode worker could not start (exit code {code}) before reading any file",
                    hint=f"check that `{sys.executable} -c 'import truthnet.decode.worker'` works, "
                    "or decode in threads (isolation='thread')",
                )
            if msg is not None and not (isinstance(msg, DecodeFailed) and msg.retry):
                w.task = None
                return msg
            w.task = None
            if msg is None:
                code = w.exitcode()
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            else:
                how = msg.reason
            self._replace(w)
            return self._died(task, how)
        return self._timed_out(w)

    def _timed_out(self, w: _Worker) -> DecodeFailed | None:
        """The timeout message of a worker past its time limit (the worker is replaced)."""
        if time.monotonic() - w.started <= self.timeout:
            return None
        task, w.task = w.task, None
        self._replace(w)
        return DecodeFailed(task.key, "timeout", f"decoding took longer than {self.timeout:g} s")

    def _died(self, task: DecodeTask, how: str) -> DecodeFailed | None:
        """Retry a task whose worker died, or blame the file when it has killed ``ATTEMPTS``."""
        deaths = self.deaths.setdefault(task.key, [])
        deaths.append(how)
        if len(deaths) < ATTEMPTS:
            self._todo.appendleft(task)  # next, in a fresh worker
            return None
        return DecodeFailed(task.key, "decode_error",
                            f"the decoder crashed on this file in {len(deaths)} fresh workers "
                            f"({', then '.join(deaths)})")


# --- the thread strategy ------------------------------------------------------------------


class InProcessDecoder:
    """The same decode function in ``workers`` threads of this process (OpenCV releases the
    GIL).  No start-up cost; no protection against native crashes or hangs."""

    def __init__(self, workers: int = 2, timeout: float = 120.0, decode_fn: DecodeFn = default_decode) -> None:
        self.n = max(1, int(workers))
        self.decode_fn = decode_fn
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> InProcessDecoder:
        self.pool = ThreadPoolExecutor(max_workers=self.n)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            # after a cancel, a decode still running (a thread cannot be stopped) finishes in
            # the background: the caller does not wait for it
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def run(self, tasks: Iterable[DecodeTask]) -> Iterator[Message | None]:
        """Messages in submission order; ``None`` after each 0.2 s the next one is not ready."""
        todo = deque(tasks)
        running: deque = deque()
        retried: set[int] = set()
        while todo or running:
            while todo and len(running) < self.n * 2:  # bounded look-ahead: memory stays flat
                task = todo.popleft()
                running.append((task, self.pool.submit(decode_one, self.decode_fn, task)))
            task, future = running[0]
            if not future_wait([future], timeout=0.2).done:
                yield None  # a tick: nothing finished yet
                continue
            running.popleft()
            msg = future.result()
            if isinstance(msg, DecodeFailed) and msg.retry and task.key not in retried:
                retried.add(task.key)  # out of memory: once more, when others may have finished
                todo.appendleft(task)
                continue
            yield msg


def open_decoder(isolation: str, workers: int, timeout: float, decode_fn: DecodeFn = default_decode):
    """The decoder pool for a resolved isolation strategy (``process`` or ``thread``; the
    engine resolves ``auto`` and refuses unknown names)."""
    if isolation == "process":
        return IsolatedDecoder(workers, timeout, decode_fn)
    if isolation == "thread":
        return InProcessDecoder(workers, timeout, decode_fn)
    raise ConfigError(f"unknown decode isolation {isolation!r}; choose process or thread")

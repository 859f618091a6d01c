"""Decode isolation: the strategies by which the engine gets decoded frames for its files.

``process`` (the default everywhere): a pool of plain subprocesses, OpenCV only, talking over
socket pairs with the typed messages below.  A native crash or a hang inside a decoder costs
that one file (``decode_error`` / ``timeout``), never the caller.  ``thread``: the same decode
function in threads of the calling process (no start-up cost; a crash takes the caller down and
the time limit cannot be enforced).  Both run :func:`truthnet.decode.default_decode`, so a
file gets the same frames, status and score whichever strategy reads it.
"""

from __future__ import annotations

import os
import sys
import threading
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
    """One decode subprocess, over a socket pair: ``python -m truthnet.decode.worker``, or a
    fork of the pool's :class:`_Template` (``proc`` then a :class:`_Forked`)."""

    def __init__(self, spec: str, template: _Template | None = None) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        self.forked = template is not None
        if template is not None:
            self.proc = template.fork(child)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "truthnet.decode.worker", str(child.fileno()), spec],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=worker_env(),
            )
        child.close()
        self.conn = Connection(parent.detach())
        self.task: DecodeTask | None = None
        self.started = 0.0
        self.ready = False  # it has said READY: it imported its decode function

    def exitcode(self) -> int | None:
        """How it ended (negative: the signal), None where that cannot be told.  A forked worker's
        comes from its template, which may need a moment on a loaded machine (the wait ends at
        once if the template is gone)."""
        try:
            return self.proc.wait(30 if self.forked else 2)
        except Exception:
            return None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(2)
        except Exception:
            pass
        self.conn.close()


def worker_env(template: bool = False) -> dict[str, str]:
    """The environment of a decode worker (or ``template``): this process's, where Python finds
    this truthnet and the decode function, and one OpenBLAS thread unless one is set (a worker
    uses no BLAS worth a thread, and OpenBLAS starts one per core at NumPy's import: ~0.1 s of
    CPU per process, measured); always one in a template, which forks only while it is the only
    thread of its process."""
    from ..procs import python_env

    env = python_env(whole_sys_path=True)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if template:
        env["OPENBLAS_NUM_THREADS"] = "1"
    return env


#: start a pool's workers as forks of one warmed-up template process (Linux): the imports
#: (~0.5 s of a core) and, for MTCNN detecting on real footage, the compiled kernels (~0.65 s)
#: are paid once per pool instead of once per worker.  ``TRUTHNET_DECODE_TEMPLATE=0``: each
#: worker a fresh interpreter, as before (``benchmarks/bench_levers.py --lever worker-template``)
TEMPLATE = os.environ.get("TRUTHNET_DECODE_TEMPLATE", "1").strip() != "0"


def templates_possible() -> bool:
    return TEMPLATE and sys.platform.startswith("linux") and hasattr(os, "fork")


class _Template:
    """The template process (``python -m truthnet.decode.worker --template``): imports and warms
    up once, then forks a worker for each socket sent to it.  Requests are sent without waiting
    (the first ones wait in the socket while it warms up); its answers are read when a worker's
    pid or exit code is asked for.  Any failure of the template costs nothing but its speed:
    the pool then starts plain workers (:attr:`IsolatedDecoder.template` None)."""

    def __init__(self, spec: str, native: bool) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "truthnet.decode.worker", "--template", str(child.fileno()), spec,
             *(["--native"] if native else [])],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=worker_env(template=True),
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.spec = spec
        self.keys = 0
        self.pids: dict[int, int] = {}
        self.codes: dict[int, int] = {}
        self.refused: set[int] = set()
        self.alive = True  # its socket is open
        self.usable = True  # the pool forks its next workers from it

    def load_kernels(self) -> None:
        """Have it load MTCNN's compiled kernels before it forks the next worker."""
        try:
            self.conn.send(("native",))
        except OSError:
            self.alive = False

    def fork(self, sock) -> _Forked:
        from multiprocessing.reduction import send_handle

        self.keys += 1
        try:
            self.conn.send(("fork", self.keys))
            send_handle(self.conn, sock.fileno(), self.proc.pid)
        except BaseException:
            # the request may be half sent (the stream out of step): the template is closed, and
            # the worker's socket closes unanswered, so the pool starts a plain one
            self.usable = self.alive = False
            self.conn.close()
            if not isinstance(sys.exc_info()[1], Exception):
                raise  # (a second Ctrl-C)
        return _Forked(self, self.keys)

    def running(self) -> bool:
        """Its socket open and its process alive (it ends when its socket closes)."""
        return self.alive and self.proc.poll() is None

    def _pump(self, until, timeout: float) -> bool:
        """Read the template's answers until ``until()`` or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0 or not self.alive or not self.conn.poll(left):
                return until()
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.alive = False
                return until()
            if msg[0] == "forked":
                self.pids[msg[1]] = msg[2]
            elif msg[0] == "exited":
                self.codes[msg[1]] = msg[2]
            elif msg[0] == "refused":
                self.refused.add(msg[1])
        return True

    def close(self, *, kill: bool = False) -> None:
        """Stop it (and any worker of it still running); ``kill``: at once (it forked none)."""
        if not kill:
            try:
                self.conn.send(None)
                self.proc.wait(2)
            except Exception:
                kill = True
        if kill:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()
        self.alive = False


_prestarted: _Template | None = None
_prestart_lock = threading.Lock()
_discard_at_exit = False


def prestart(decode_fn: DecodeFn = default_decode) -> None:
    """Start the template of the next process pool now, so that its imports (~0.5 s of a core)
    overlap with the caller's own start (``api.scan`` calls this before it lists files or
    loads the model).  The next :class:`IsolatedDecoder` for ``decode_fn`` forks its workers
    from it; one never used is stopped by :func:`discard_prestarted`, at the latest when this
    process exits."""
    global _prestarted, _discard_at_exit
    if not templates_possible():
        return
    with _prestart_lock:
        if _prestarted is not None:
            return
        try:
            _prestarted = _Template(fn_spec(decode_fn), False)
        except Exception:  # (the pool starts its own workers)
            return
        if not _discard_at_exit:
            import atexit

            atexit.register(discard_prestarted)
            _discard_at_exit = True


def discard_prestarted() -> None:
    """Stop the pre-started template if no pool took it (at once: it forked nothing)."""
    _take_prestarted(None)


def _take_prestarted(spec: str | None) -> _Template | None:
    """The pre-started template, if it runs ``spec`` and is alive (then no longer pre-started);
    one that does not fit is stopped."""
    global _prestarted
    with _prestart_lock:
        t, _prestarted = _prestarted, None
    if t is not None and (t.spec != spec or not t.running()):
        t.close(kill=True)
        return None
    return t


class _Forked:
    """A forked worker as :class:`_Worker` uses a Popen: ``pid``, ``wait(timeout)``, ``kill()``."""

    def __init__(self, template: _Template, key: int) -> None:
        self.template, self.key = template, key

    @property
    def pid(self) -> int | None:
        t = self.template
        t._pump(lambda: self.key in t.pids or self.key in t.refused, 5.0)
        return t.pids.get(self.key)

    def wait(self, timeout: float) -> int:
        import subprocess

        t = self.template
        if not t._pump(lambda: self.key in t.codes or self.key in t.refused, timeout):
            raise subprocess.TimeoutExpired("decode worker", timeout)
        return t.codes.get(self.key, 1)

    def kill(self) -> None:
        try:
            self.template.conn.send(("kill", self.key))
        except OSError:
            pass


#: seconds a decode worker may take to start (imports; a template's first fork waits for its
#: warm-up) before the pool gives up on it; not part of any file's ``timeout``
STARTUP_LIMIT = 120.0

#: attempts a file gets when its worker dies under it (a crash signal, an out-of-memory kill):
#: a worker can die for reasons of its own, so only a file that kills a fresh one again is blamed
ATTEMPTS = 2


class IsolatedDecoder:
    """A pool of decode processes with a per-file time limit.

    ``run(tasks)`` yields one message per task as files finish, in completion order; at most
    one decoded file per worker waits unconsumed.  A file whose worker dies is retried once in
    a fresh worker; only a second death makes it that file's ``decode_error``.
    """

    def __init__(self, workers: int = 2, timeout: float = 120.0, decode_fn: DecodeFn = default_decode,
                 warm: bool = False) -> None:
        """``warm``: the workers will detect faces on real footage, worth MTCNN's compiled
        kernels from the first frame: a template loads them once for all the workers."""
        self.n = max(1, int(workers))
        self.timeout = float(timeout)
        self.spec = fn_spec(decode_fn)
        self.warm = warm
        self.workers: list[_Worker] = []
        self.template: _Template | None = None  # forks the workers (two or more, on Linux)
        self.restarts = 0
        self.deaths: dict[int, list[str]] = {}  # task key -> how each worker died on it
        self._todo: deque = deque()

    def __enter__(self) -> IsolatedDecoder:
        self.template = _take_prestarted(self.spec)
        try:
            if self.template is not None and self.warm:
                self.template.load_kernels()
            elif self.template is None and self.n >= 2 and templates_possible():
                try:
                    self.template = _Template(self.spec, self.warm)
                except OSError:  # (plain workers: only slower)
                    self.template = None
            self.workers = []
            for _ in range(self.n):
                self.workers.append(self._new())
        except BaseException:
            self.close()
            raise
        return self

    def _new(self) -> _Worker:
        t = self.template
        return _Worker(self.spec, t if t is not None and t.usable and t.alive else None)

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except Exception:
                pass
        for w in self.workers:
            if not w.forked:  # (the template's are told to end, and it kills any left when it ends, below)
                try:
                    w.proc.wait(1)
                except Exception:
                    w.kill()
            w.conn.close()
        self.workers = []
        if self.template is not None:
            self.template.close()
            self.template = None

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.restarts += 1
        self.workers[self.workers.index(w)] = self._new()

    def _fallback(self, w: _Worker, task: DecodeTask) -> None:
        """A forked worker lost to its template (it died, refused to fork, or is stuck starting):
        a plain worker instead and the task again, nothing counted against the file; the pool
        forks no more."""
        w.task = None
        if self.template is not None:
            self.template.usable = False
        self._replace(w)
        self.restarts -= 1
        self._todo.appendleft(task)

    def _dispatch(self, todo: deque) -> None:
        for w in self.workers:
            if w.task is None and todo:
                w.task = todo.popleft()
                w.started = time.monotonic()
                try:
                    w.conn.send(w.task)
                except (BrokenPipeError, OSError):
                    task = w.task
                    if w.forked and not w.ready:
                        self._fallback(w, task)
                        continue
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
                    w.started = time.monotonic()  # a file's time limit is its own: not its worker's start-up
                    msg = w.conn.recv() if w.conn.poll() else READY
            except (EOFError, OSError):
                msg = None  # the socket closed: the worker died
            if isinstance(msg, str):  # READY: started; the task's answer is still to come
                return self._timed_out(w)
            if isinstance(msg, SetupFailed):
                w.task = None
                return SetupFailed(task.key, msg.message)
            if msg is None and not w.ready and w.forked:  # the template failed it: a plain one instead
                return self._fallback(w, task)
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
                if w.forked and code is None and not self.template.running():
                    return self._fallback(w, task)  # the template died, its workers with it: not the file's doing
                if w.forked and code is not None and code < 0:
                    # a crash: the retry and every later worker a fresh interpreter, each with an
                    # address-space layout of its own (forks share the template's)
                    self.template.usable = False
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            else:
                how = msg.reason
            self._replace(w)
            return self._died(task, how)
        return self._timed_out(w)

    def _timed_out(self, w: _Worker) -> DecodeFailed | None:
        """The timeout message of a worker past its time limit (the worker is replaced).  Until
        the worker is ready the file's clock has not started: a worker that takes longer than
        :data:`STARTUP_LIMIT` to start is the pool's failure, not the file's."""
        elapsed = time.monotonic() - w.started
        if not w.ready:
            if elapsed <= STARTUP_LIMIT:
                return None
            if w.forked:
                return self._fallback(w, w.task)
            raise ConfigError(f"a decode worker did not start within {STARTUP_LIMIT:g} s",
                              hint="a heavily loaded machine, or an import that hangs; or decode in threads "
                                   "(isolation='thread')")
        if elapsed <= self.timeout:
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


def open_decoder(isolation: str, workers: int, timeout: float, decode_fn: DecodeFn = default_decode,
                 warm: bool = False):
    """The decoder pool for a resolved isolation strategy (``process`` or ``thread``; the
    engine resolves ``auto`` and refuses unknown names); ``warm``: :class:`IsolatedDecoder`'s."""
    if isolation == "process":
        return IsolatedDecoder(workers, timeout, decode_fn, warm)
    if isolation == "thread":
        return InProcessDecoder(workers, timeout, decode_fn)
    raise ConfigError(f"unknown decode isolation {isolation!r}; choose process or thread")

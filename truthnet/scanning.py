"""``truthnet scan``: score every file it is given, survive anything, lose nothing.

Decoding runs in separate worker processes (OpenCV only, no TensorFlow): a native crash or a
hang inside a decoder costs that one file (status ``decode_error`` or ``timeout``), not the
scan.  The main process detects faces and runs the model on the decoded frames, and writes
each result to the store the moment it exists.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait

import numpy as np

from .config import PipelineConfig
from .errors import VideoError
from .pipeline import FaceSequence
from .plugins import check_worker_safe
from .store import ResultRow, Store
from .video import is_video_path

#: decode function run in the worker: (config_dict, path, windows) -> (info, per_window, seconds)
DecodeFn = Callable[[dict, str, int], tuple]


def default_decode(config: dict, path: str, windows: int):
    """The worker's job: probe the file and read the sampled frames of each window.

    With a detector that can run in the worker (``runs_in_decoder``: ``none``, ``haar``) it
    also detects and crops there, in parallel, and sends back the small face crops
    (:class:`~truthnet.pipeline.FaceSequence`, or a :class:`WindowFailure`) instead of the
    full-resolution frames."""
    from .pipeline import FacePipeline

    pipe = _pipeline_cache.get(json.dumps(config, sort_keys=True))
    if pipe is None:
        pipe = FacePipeline(PipelineConfig.from_dict(config))
        _pipeline_cache[json.dumps(config, sort_keys=True)] = pipe
    info, per_window, seconds = pipe.decode(path, windows=windows)
    if not detects_in_decoder(pipe.config):
        return info, per_window, seconds
    return info, [_build(pipe, path, info, frames, got, seconds) for frames, got in per_window], seconds


@dataclass
class WindowFailure:
    """Why one window of a video could not be built (picklable, unlike the exceptions)."""

    status: str
    reason: str
    faces_found: list[int] | None
    frames: int


def detects_in_decoder(config: PipelineConfig) -> bool:
    """Whether ``config``'s face detector declares it can run in the decode workers (no
    TensorFlow, cheap to create in each process)."""
    from . import plugins

    return bool(getattr(plugins.get_entry("face_detector", config.detector).factory, "runs_in_decoder", False))


def _build(pipe, path, info, frames, got, seconds):
    try:
        return pipe.build(path, info, frames, got, decode_seconds=seconds)
    except VideoError as exc:
        return WindowFailure(exc.status, exc.reason, getattr(exc, "faces_found", None), len(got))


_pipeline_cache: dict = {}


# --- collecting files ----------------------------------------------------------------------


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


# --- isolated decoding ---------------------------------------------------------------------


def _spec(fn: DecodeFn) -> str:
    """``module:qualname`` of a decode function, importable in the worker process."""
    spec = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in spec:
        raise ValueError(f"decode functions must be importable module-level functions, got {spec}")
    return spec


class _Worker:
    """One decode subprocess, talking over a socket pair."""

    def __init__(self, spec: str) -> None:
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "truthnet._decode_worker", str(child.fileno()), spec],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.task = None
        self.started = 0.0

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


class IsolatedDecoder:
    """A pool of decode processes with a per-file time limit.

    ``run(tasks)`` yields ``(key, "ok", payload)`` or ``(key, "error", (status, reason))`` as
    files finish, in completion order; at most ``lookahead`` decoded files wait unconsumed.
    """

    def __init__(self, workers: int = 2, timeout: float = 120.0, decode_fn: DecodeFn = default_decode) -> None:
        self.n = max(1, int(workers))
        self.timeout = float(timeout)
        self.spec = _spec(decode_fn)
        self.workers: list[_Worker] = []
        self.restarts = 0

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

    def run(self, tasks: Iterable[tuple]) -> Iterator[tuple]:
        """``tasks``: ``(key, config_dict, path, windows)``."""
        todo = deque(tasks)
        while todo or any(w.task for w in self.workers):
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
            busy = [w for w in self.workers if w.task is not None]
            if not busy:
                continue
            ready = wait([w.conn for w in busy], timeout=0.2)
            now = time.monotonic()
            for w in busy:
                key = w.task[0]
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None  # the socket closed: the worker died
                    if msg is not None:
                        w.task = None
                        yield msg
                        continue
                    code = w.exitcode()
                    w.task = None
                    self._replace(w)
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    yield (key, "error", ("decode_error", f"the decoder crashed ({how}) on this file"))
                elif now - w.started > self.timeout:
                    w.task = None
                    self._replace(w)
                    yield (key, "error", ("timeout", f"decoding took longer than {self.timeout:g} s"))


# --- the scan ------------------------------------------------------------------------------


def model_key(model_path: str | None, config: PipelineConfig, windows: int) -> str:
    from .features import file_fingerprint

    fp = file_fingerprint(model_path) if model_path and os.path.exists(model_path) else "in-memory"
    return hashlib.sha256(f"{fp}|{config.to_json()}|w{windows}".encode()).hexdigest()[:20]


def thumbnail_strip(crops: np.ndarray, size: int = 64) -> bytes | None:
    """The face crops side by side as one small JPEG (for reports and the TUI)."""
    import cv2

    if crops is None or not len(crops):
        return None
    tiles = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None


@dataclass
class ScanSummary:
    scan_id: int
    counts: Counter
    total: int
    skipped: int
    seconds: float
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in ("ok", "real", "fake"))

    @property
    def fakes(self) -> int:
        return self.counts.get("fake", 0)

    def to_dict(self) -> dict:
        statuses = {k: v for k, v in self.counts.items() if k not in ("real", "fake")}
        return {
            "summary": True,
            "scan_id": self.scan_id,
            "files": self.total,
            "real": self.counts.get("real", 0),
            "fake": self.counts.get("fake", 0),
            "failed": self.failed,
            "statuses": statuses,
            "reused": self.skipped,
            "seconds": round(self.seconds, 2),
            "interrupted": self.interrupted,
        }


class Scanner:
    """Runs one scan of many files with a :class:`~truthnet.detector.Detector`."""

    def __init__(
        self,
        detector,
        store: Store,
        *,
        model_path: str | None = None,
        windows: int = 1,
        workers: int = 2,
        timeout: float = 120.0,
        force: bool = False,
        batch_size: int = 8,
        decode_fn: DecodeFn = default_decode,
    ) -> None:
        check_worker_safe(detector.config)  # the decode workers load installed plugins only
        self.det = detector
        self.store = store
        self.windows = max(1, int(windows))
        self.workers = workers
        self.timeout = timeout
        self.force = force
        self.batch_size = max(1, batch_size)
        self.decode_fn = decode_fn
        self.model_path = model_path
        self.key = model_key(model_path, detector.config, self.windows)

    def scan(
        self,
        files: list[str],
        *,
        problems: list[tuple[str, str, str]] = (),
        roots: list[str] | None = None,
        options: dict | None = None,
        on_result: Callable[[ResultRow], None] | None = None,
    ) -> ScanSummary:
        """Score ``files``; each ends as exactly one stored result.  Ctrl-C/SIGTERM stop it
        cleanly (the scan is marked ``interrupted``; a re-run does the rest)."""
        t0 = time.perf_counter()
        scan_id = self.store.start_scan(self.model_path, self.key, roots or files, options or {})
        counts: Counter = Counter()

        def emit(row: ResultRow) -> None:
            row.model_key = self.key
            row.scan_id = scan_id
            row.scanned_at = time.time()
            row.threshold = self.det.threshold if row.threshold is None else row.threshold
            self.store.add_result(scan_id, row)
            counts[row.status] += 1
            if row.label:
                counts[row.label] += 1
            if on_result:
                on_result(row)

        state = "done"
        skipped = 0
        try:
            for path, status, reason in problems:
                emit(ResultRow(path=path, status=status, reason=reason))
            tasks, meta, skipped = self._plan(files, emit)
            self.execute(tasks, meta, emit)
        except KeyboardInterrupt:
            state = "interrupted"
        finally:
            self.store.finish_scan(scan_id, state, dict(counts))
        summary = ScanSummary(scan_id, counts, len(files) + len(problems), skipped, time.perf_counter() - t0)
        summary.interrupted = state == "interrupted"
        return summary

    def _plan(self, files: list[str], emit) -> tuple[list[tuple], dict, int]:
        """Fingerprint each file; emit what needs no work (unreadable, already scored with this
        model); return the decode tasks for the rest."""
        from .features import file_fingerprint

        tasks = []
        meta: dict[int, tuple[str, int | None, str | None]] = {}
        skipped = 0
        for i, path in enumerate(files):
            try:
                size = os.path.getsize(path)
                fp = file_fingerprint(path)
            except PermissionError:
                emit(ResultRow(path=path, status="unreadable", reason="permission denied"))
                continue
            except OSError as exc:
                emit(ResultRow(path=path, status="unreadable", reason=f"cannot read the file: {exc.strerror or exc}"))
                continue
            if os.path.isdir(path):
                emit(ResultRow(path=path, status="unreadable", reason="is a directory"))
                continue
            if not self.force:
                prev = self.store.previous(fp, self.key)
                if prev is not None:
                    prev.path, prev.size = path, size
                    prev.timings = {**prev.timings, "reused": 1.0}
                    prev.thumbs = self.store.thumbs(path)
                    emit(prev)
                    skipped += 1
                    continue
            meta[i] = (path, size, fp)
            tasks.append((i, self.det.config.to_dict(), path, self.windows))
        return tasks, meta, skipped

    def execute(self, tasks: list[tuple], meta: dict, emit) -> None:
        """Decode, detect and score ``tasks`` on this machine (engines override this)."""
        execute_local(
            self.det, tasks, meta, emit, windows=self.windows, workers=self.workers, timeout=self.timeout,
            batch_size=self.batch_size, decode_fn=self.decode_fn,
        )


def execute_local(det, tasks, meta, emit, *, windows: int = 1, workers: int = 2, timeout: float = 120.0,
                  batch_size: int = 8, decode_fn: DecodeFn = default_decode) -> None:
    """The local engine: isolated decoding in worker processes, detection and batched scoring
    here; ``emit(row)`` is called once per task."""
    pipe = det.pipeline
    pending: list[tuple] = []  # (row, [FaceSequence per window])

    def flush() -> None:
        seqs = [s for _, ss in pending for s in ss]
        stages: dict[str, float] = {}
        scores = det.predict_sequences(seqs, timings=stages) if seqs else []
        it = iter(scores)
        for row, ss in pending:
            ws = [float(next(it)) for _ in ss]
            row.window_scores = ws if windows > 1 else None
            row.score = float(np.mean(ws))
            row.label = "fake" if row.score >= det.threshold else "real"
            for stage, seconds in stages.items():  # the batch's time, shared out per sequence
                row.timings[stage] = round(seconds / len(seqs) * len(ss), 4)
            emit(row)
        pending.clear()

    in_worker = detects_in_decoder(pipe.config)
    with IsolatedDecoder(workers, timeout, decode_fn) as pool:
        for key, kind, payload in pool.run(tasks):
            path, size, fp = meta.pop(key)
            row = ResultRow(path=path, status="ok", size=size, fingerprint=fp)
            if kind == "error":
                row.status, row.reason = payload
                emit(row)
                continue
            info, per_window, dec_seconds = payload
            row.duration = info.duration
            seqs, faces, errors = [], [], []
            t = time.perf_counter()
            detect_seconds = 0.0
            for item in per_window:
                if not isinstance(item, (FaceSequence, WindowFailure)):  # frames: detect here
                    item = _build(pipe, path, info, *item, dec_seconds)
                if isinstance(item, FaceSequence):
                    seqs.append(item)
                    detect_seconds += item.timings.get("detect", 0.0) + item.timings.get("crop", 0.0)
                else:
                    errors.append(item)
                faces.extend(item.faces_found or [])
            row.frames_sampled = sum(s.frames_used for s in seqs) + sum(e.frames for e in errors)
            finds = getattr(pipe.detector, "finds_faces", True)
            row.faces_found = faces if finds else None
            if in_worker:  # measured in the worker
                row.timings = {"decode": round(dec_seconds, 4), "detect": round(detect_seconds, 4)}
            else:
                row.timings = {"decode": round(dec_seconds, 4), "detect": round(time.perf_counter() - t, 4)}
            if not seqs:
                row.status, row.reason = errors[0].status, errors[0].reason
                emit(row)
                continue
            if errors:
                row.reason = f"{len(errors)} of {len(per_window)} windows skipped: {errors[0].reason}"
            row.thumbs = thumbnail_strip(seqs[0].crops[: seqs[0].frames_used])
            pending.append((row, seqs))
            if sum(len(s) for _, s in pending) >= batch_size:
                flush()
        flush()

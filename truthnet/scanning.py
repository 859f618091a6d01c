"""A scan: plan (file hashes, reuse from the store), run the engine, store every result.

Each result is written to the store the moment it exists, so a scan stopped at any point keeps
what it finished; a re-run with the same model reuses final results (:data:`FINAL_STATUSES`).
The work itself is :class:`truthnet.engine.Engine`'s, as for every other entry point.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .config import PipelineConfig
from .decode import DecodeFn, default_decode
from .engine import Engine
from .errors import StoreError, VideoError
from .record import Result, is_failure
from .store import Store

__all__ = ["Scanner", "ScanSummary", "model_key", "model_sha256"]


def model_sha256(model_path: str | None) -> str | None:
    """SHA-256 of the whole model file (what a report cites), or None for an in-memory model."""
    from .filecheck import file_sha256

    if not model_path or not os.path.isfile(model_path):
        return None
    return file_sha256(model_path)


def weights_sha256(classifier) -> str:
    """SHA-256 of a classifier's weights (shapes and values, in order): the identity of a model
    that has no file."""
    h = hashlib.sha256()
    for w in classifier.model.get_weights():
        h.update(f"{w.dtype}{w.shape};".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def model_key(model_sha: str, config: PipelineConfig, windows: int) -> str:
    """What a stored result was computed with: the model (its file's or its weights' SHA-256),
    the pipeline configuration and the windows."""
    return hashlib.sha256(f"{model_sha}|{config.to_json()}|w{windows}".encode()).hexdigest()[:32]


@dataclass
class ScanSummary:
    scan_id: int
    counts: Counter
    total: int
    skipped: int
    seconds: float
    interrupted: bool = False
    model_card: dict | None = None  # ModelCard.stored() of the model that gave the verdicts
    model: str | None = None         # the model file (absolute), None for an in-memory model
    model_sha256: str | None = None  # its SHA-256 (an in-memory model: of its weights, "weights:...")
    threshold: float | None = None
    not_scanned_below: int = 0       # videos in sub-folders of the named folders, left out without -r

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.counts.items() if is_failure(s))

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
            "not_scanned_below": self.not_scanned_below,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "threshold": self.threshold,
            **self._card(),
        }

    def _card(self) -> dict:
        """``model_card`` (its fields and one-line ``summary``) and the card's ``warnings``."""
        stored = self.model_card or {}
        return {"model_card": {"summary": stored.get("summary"), **(stored.get("card") or {})},
                "warnings": list(stored.get("warnings") or [])}


class Scanner:
    """Runs one scan of many files with a classifier, into a :class:`~truthnet.store.Store`."""

    def __init__(
        self,
        classifier,
        store: Store,
        *,
        model_path: str | None = None,
        windows: int = 1,
        workers: int | None = None,
        timeout: float = 120.0,
        force: bool = False,
        batch_size: int = 8,
        decode_fn: DecodeFn = default_decode,
        isolation: str = "auto",
        max_wait: float | None = None,
    ) -> None:
        self.classifier = classifier
        self.store = store
        self.force = force
        self.model_path = model_path
        self.engine = Engine(classifier, windows=windows, isolation=isolation, workers=workers, timeout=timeout,
                             batch_size=batch_size, decode_fn=decode_fn, max_wait=max_wait)
        self.windows = self.engine.windows
        # the model file's hash; a model with no file is known by its weights, never by a constant
        self.model_sha256 = model_sha256(model_path)
        if not self.model_sha256 and model_path is None:  # a classifier loaded from a file: that file's bytes
            self.model_sha256 = getattr(classifier, "source_sha256", None)
        self.weights_sha = None if self.model_sha256 else weights_sha256(classifier)
        self.key = model_key(self.model_sha256 or f"weights:{self.weights_sha}", classifier.config,
                             self.windows)
        from .modelcard import ModelCard

        self.card = ModelCard.from_metadata(getattr(classifier, "metadata", None)).stored()

    def scan(
        self,
        files: list[str],
        *,
        problems: list[tuple[str, str, str]] = (),
        roots: list[str] | None = None,
        options: dict | None = None,
        on_result: Callable[[Result], None] | None = None,
        cancel=None,
    ) -> ScanSummary:
        """Score ``files``; each ends as exactly one stored result.  Ctrl-C/SIGTERM or
        ``cancel.set()`` stop it cleanly (the scan is marked ``interrupted``; a re-run does the
        rest).  Paths are stored absolute and normalised; a scan of nothing is not recorded
        (``scan_id`` 0)."""
        from .paths import norm

        t0 = time.perf_counter()
        files = [norm(f) for f in files]
        problems = [(norm(p), s, r) for p, s, r in problems]
        if not files and not problems:
            return ScanSummary(0, Counter(), 0, 0, time.perf_counter() - t0)
        scan_id = self._start([norm(r) for r in roots or files], options or {})
        counts: Counter = Counter()
        emit = self._emitter(scan_id, counts, on_result)
        state = "done"
        skipped = 0
        try:
            for path, status, reason in problems:
                emit(Result(path=path, status=status, reason=reason))
            todo, skipped = self._plan(files, emit, cancel)
            self.execute(todo, emit, cancel)
            if cancel is not None and cancel.is_set():
                state = "interrupted"
        except KeyboardInterrupt:
            state = "interrupted"
        except BaseException:
            state = "failed"
            raise
        finally:
            counts = self._finish(scan_id, state, counts)
        summary = ScanSummary(scan_id, counts, len(files) + len(problems), skipped, time.perf_counter() - t0,
                              model_card=self.card, model=self.model_path, threshold=self.classifier.threshold,
                              model_sha256=self.model_sha256 or f"weights:{self.weights_sha}")
        summary.interrupted = state == "interrupted"
        return summary

    def session(self, roots: list[str], options: dict | None = None,
                on_result: Callable[[Result], None] | None = None) -> ScanSession:
        """One recorded scan that files are added to as they come (``truthnet scan --watch``)."""
        from .paths import norm

        return ScanSession(self, [norm(r) for r in roots], options or {}, on_result)

    def _start(self, roots: list[str], options: dict) -> int:
        """Record the scan (model, roots, options, this process) and return its id."""
        from . import __version__
        from .procs import identity

        info = {"model_sha256": self.model_sha256, "truthnet_version": __version__,
                "threshold": self.classifier.threshold, "windows": self.windows, "process": identity()}
        return self.store.start_scan(self.model_path, self.key, roots, options, info, model_card=self.card)

    def _emitter(self, scan_id: int, counts: Counter, on_result) -> Callable[[Result], None]:
        """``emit(row)``: stamp a finished result with this scan, store it, count it, pass it on."""

        def emit(row: Result) -> None:
            row.model_key = self.key
            row.scan_id = scan_id
            row.scanned_at = time.time()
            row.threshold = self.classifier.threshold if row.threshold is None else row.threshold
            self.store.add_result(scan_id, row)
            counts[row.status] += 1
            if row.label:
                counts[row.label] += 1
            if on_result:
                on_result(row)

        return emit

    def _finish(self, scan_id: int, state: str, counts: Counter) -> Counter:
        """Mark the scan finished; after an interrupt or a failure, count what the store holds
        (the stop may land between storing a row and counting it)."""
        if state != "done":
            try:
                recount: Counter = Counter()
                for r in self.store.results(scan_id):
                    recount.update([r.status] + ([r.label] if r.label else []))
                counts = recount
            except StoreError:
                pass  # the store itself failed: the counts in hand are what we know
        try:
            self.store.finish_scan(scan_id, state, dict(counts))
        except StoreError:
            if state != "failed":  # else the error in flight (e.g. a full disk) says why
                raise
        return counts

    def _plan(self, files: list[str], emit, cancel=None, *, quiet_if_reported: bool = False
              ) -> tuple[list[Result], int]:
        """Check and hash each file; emit what needs no work (special files, unreadable, already
        scored with this model); return the rows left to score.  Nothing here opens a pipe or a
        device, and the one read (the SHA-256 of the whole file) is bounded by the per-file
        timeout.  ``quiet_if_reported`` (a watcher): a file whose path already has a final
        result for these very bytes and this model is passed over without a new row."""
        from .filecheck import check_regular, file_sha256, read_within

        todo: list[Result] = []
        skipped = 0
        for path in files:
            if cancel is not None and cancel.is_set():  # the rest are left for a re-run
                break
            try:
                size = check_regular(path).st_size  # stat only: a FIFO or /dev/zero is never opened
                sha = read_within(path, self.engine.timeout, file_sha256)
            except VideoError as exc:
                emit(Result(path=path, status=exc.status, reason=exc.reason))
                continue
            except OSError as exc:
                emit(Result(path=path, status="unreadable", reason=f"cannot read the file: {exc.strerror or exc}"))
                continue
            if quiet_if_reported and self.store.reported(path, sha, self.key):
                skipped += 1
                continue
            if not self.force:
                prev = self.store.previous(sha, self.key)
                if prev is not None:
                    prev.path, prev.size = path, size
                    prev.timings = {**prev.timings, "reused": 1.0}
                    emit(prev)
                    skipped += 1
                    continue
            todo.append(Result(path=path, status="ok", size=size, sha256=sha))
        return todo, skipped

    def execute(self, rows: list[Result], emit, cancel=None) -> None:
        """Score ``rows`` on this machine (the Ray engine overrides this)."""
        for row in self.engine.run(rows, cancel=cancel):
            self._check_model_bytes()
            emit(row)

    def _check_model_bytes(self) -> None:
        """The model file hashed when the scan started (what its results cite) must be the bytes
        the classifier scores with, which it hashed when it loaded them: a file replaced in
        between would give verdicts of one model under the name of another."""
        loaded = getattr(self.classifier, "source_sha256", None)
        if self.model_sha256 and loaded and loaded != self.model_sha256:
            raise self.model_changed(loaded)

    def model_changed(self, loaded: str):
        """The error for a model file whose bytes (SHA-256 ``loaded``) are not those the scan's
        results cite."""
        from .errors import ModelError

        return ModelError(f"{self.model_path}: the model file changed while the scan was starting (SHA-256 "
                          f"{self.model_sha256[:12]} when it started, {loaded[:12]} when the model loaded); "
                          "no result was stored with it", hint="run the scan again")


class ScanSession:
    """A scan that stays open: :meth:`add` scores more files into it (each with the same reuse
    rules as a scan), :meth:`close` marks it finished and returns its summary."""

    def __init__(self, scanner: Scanner, roots: list[str], options: dict, on_result) -> None:
        self.scanner = scanner
        scanner.engine.keep_decoders = True  # one pool of decode workers for the session, not one per add
        self.t0 = time.perf_counter()
        self.scan_id = scanner._start(roots, options)
        self.counts: Counter = Counter()
        self.emit = scanner._emitter(self.scan_id, self.counts, on_result)
        self.files = 0
        self.skipped = 0

    def add(self, files: list[str], cancel=None) -> None:
        """Score ``files`` (absolute paths); one already reported with these bytes and this model
        is passed over silently, a copy of known bytes under a new name is reused."""
        todo, skipped = self.scanner._plan(files, self.emit, cancel, quiet_if_reported=True)
        self.files += len(files)
        self.skipped += skipped
        self.scanner.execute(todo, self.emit, cancel)

    def close(self, state: str = "done") -> ScanSummary:
        sc = self.scanner
        sc.engine.close()
        counts = sc._finish(self.scan_id, state, self.counts)
        summary = ScanSummary(self.scan_id, counts, self.files, self.skipped, time.perf_counter() - self.t0,
                              model_card=sc.card, model=sc.model_path, threshold=sc.classifier.threshold,
                              model_sha256=sc.model_sha256 or f"weights:{sc.weights_sha}")
        summary.interrupted = state == "interrupted"
        return summary

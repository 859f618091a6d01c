"""The engine: every verdict TruthNet gives, from any entry point, takes this road.

files -> decode (an isolation strategy, :mod:`truthnet.decode.isolation`) -> face detection and crops
(in the worker for detectors that need no TensorFlow: MTCNN on OpenVINO, OpenCV's; here
otherwise) -> backbone + temporal head in batches across videos -> :class:`~truthnet.record.Result`.
The Python API (``score_video(s)``), ``evaluate``, ``calibrate``, ``truthnet scan``, the job queue
and the Ray actors all call :meth:`Engine.run`, so a file and a model give the same status and
score everywhere.
"""

from __future__ import annotations

import os
import time
from collections import deque
from contextlib import closing, contextmanager
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..decode import DecodeFn, WindowFailure, build_window, default_decode, detects_in_decoder
from ..errors import ConfigError, ModelError
from ..decode.isolation import ISOLATIONS, Decoded, DecodeFailed, DecodeTask, SetupFailed, fn_spec, open_decoder
from ..pipeline import FaceSequence
from ..record import Result, label_for


def thumbnail_strip(crops: np.ndarray, size: int = 64) -> bytes | None:
    """The face crops side by side as one small JPEG (for reports and the TUI)."""
    import cv2

    if crops is None or not len(crops):
        return None
    tiles = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None


def refuse_untrained(classifier) -> None:
    """A :class:`ModelError` for a model that says it was never trained (see :class:`Engine`)."""
    meta = getattr(classifier, "metadata", None) or {}
    if meta.get("trained") is not False or getattr(classifier, "allow_untrained", False):
        return
    if os.environ.get("TRUTHNET_ALLOW_UNTRAINED", "") not in ("", "0"):
        return
    raise ModelError(
        "this model was never trained (its metadata says trained=false): its verdicts would mean nothing",
        hint="train it with `truthnet train`, or use a trained model; for experiments set "
        "TRUTHNET_ALLOW_UNTRAINED=1",
    )


@dataclass
class _Ready:
    """A decoded file waiting in the model batch."""

    row: Result
    seqs: list[FaceSequence]


@dataclass
class _Batch:
    """One run's decoded files waiting for the model, and since when the oldest has waited;
    the batches the model is scoring (``scoring``: future, files, stage timings, sequences) in
    the run's scoring thread (``pool``; None: scored in the caller's thread)."""

    items: list[_Ready] = field(default_factory=list)
    oldest: float = 0.0
    pool: ThreadPoolExecutor | None = None
    scoring: deque = field(default_factory=deque)


class Engine:
    """Scores files with a classifier (:class:`~truthnet.classifier.Classifier`).

    Args:
        classifier: the model and its pipeline.
        windows: sequences spread over each video; the score is their mean.
        isolation: ``"process"`` (decoders in subprocesses, a crash or hang costs one file),
            ``"thread"`` (same decode code in threads; no start-up cost, no protection), or
            ``"auto"`` (the default: ``process``, unless the sampler or detector was registered
            at run time with ``register_plugin()`` or ``decode_fn`` lives in ``__main__``, which
            the worker processes cannot see: then ``thread``).
        workers: decoders working at once (None: chosen for the cores, see :func:`plan_threads`).
        detect_threads: threads detecting faces here, each with its own detector (None: chosen
            for the cores); unused when the detector runs in the decode workers.
        timeout: seconds allowed to decode one file (``process`` only).
        batch_size: sequences per model call, across videos.
        thumbs: also make the JPEG strip of the face crops for each result.
        max_wait: score the waiting videos once the oldest has waited this many seconds, even
            if the batch is not full (``None``: only full batches).  Interactive front ends set
            it so results (and progress) come per file, not per batch of ``batch_size``.
        keep_decoders: keep the decode workers (and the detectors they built) between runs, until
            :meth:`close` (a Ray actor scoring batch after batch); a run that stops early (a
            cancel) closes them, as work may be left in them.

    The model scores each batch in a thread of its own, so that the thread reading the decode
    workers never stops for it: a worker whose file is decoded waits until its frames are
    read, and a batch takes about a second on a CPU (:attr:`score_in_thread`).

    Raises :class:`~truthnet.errors.ModelError` for a model whose metadata says it was never
    trained (``new_classifier``, ``truthnet new-model``): its verdicts would mean nothing.
    Experiments that want them anyway set ``classifier.allow_untrained = True`` or
    ``TRUTHNET_ALLOW_UNTRAINED=1``.
    """

    #: score batches in a thread of the run (False: in the thread that reads the decoders, as
    #: before; ``benchmarks/bench_levers.py --lever score-in-thread`` measures the difference)
    score_in_thread = True

    def __init__(self, classifier, *, windows: int = 1, isolation: str = "auto", workers: int | None = None,
                 timeout: float = 120.0, batch_size: int = 8, thumbs: bool = True,
                 decode_fn: DecodeFn = default_decode, detect_threads: int | None = None,
                 max_wait: float | None = None, keep_decoders: bool = False) -> None:
        refuse_untrained(classifier)
        if int(windows) < 1:
            raise ConfigError(f"windows must be at least 1, got {windows}")
        self.clf = classifier
        self.windows = int(windows)
        self.max_wait = max_wait
        if isolation not in ISOLATIONS:
            raise ConfigError(f"unknown decode isolation {isolation!r}; choose one of: {', '.join(ISOLATIONS)}")
        if isolation == "auto":
            isolation = "process" if _worker_safe(classifier.config, decode_fn) else "thread"
        elif isolation == "process":  # asked for: what the workers cannot build is an error now
            from ..plugins import check_worker_safe

            check_worker_safe(classifier.config)  # the decode workers load installed plugins only
            fn_spec(decode_fn)  # ... and import the decode function by name
        self.isolation = isolation
        #: the detector can run in the decode workers (a run with few files still detects here)
        self.in_worker = detects_in_decoder(classifier.config, getattr(classifier, "device", None))
        from ..plugins import get_entry

        # a detector with a set-up step (``ready``: MTCNN's networks) is worth building in the
        # workers only for runs long enough to pay for it (:meth:`_plan`); OpenCV's always are
        self._setup_cost = hasattr(get_entry("face_detector", classifier.config.detector).factory, "ready")
        self._asked = (workers, detect_threads)
        self.workers, self.detect_threads = self._threads(self.in_worker)
        self.timeout = timeout
        self.batch_size = max(1, int(batch_size))
        self.thumbs = thumbs
        self.decode_fn = decode_fn
        self.keep_decoders = keep_decoders
        self._decoders = None  # the decoders kept open between runs (keep_decoders)

    def _threads(self, in_worker: bool) -> tuple[int, int]:
        """(decode workers, detection threads): the ones asked for, else :func:`plan_threads`'s."""
        auto_workers, auto_detect = plan_threads(in_worker)
        workers, detect = self._asked
        return (auto_workers if workers is None else max(1, int(workers)),
                auto_detect if detect is None else max(1, int(detect)))

    def _plan(self, files: int) -> tuple[bool, int, int]:
        """(detect in the workers, workers, detection threads) for a run of ``files``: a
        detector with a set-up step detects in the workers only with at least
        :data:`FILES_PER_DETECTING_WORKER` files per worker (or decoders kept between runs),
        since each worker builds its own where this process's are built once and kept."""
        if self.in_worker and (self.keep_decoders or not self._setup_cost
                               or files >= FILES_PER_DETECTING_WORKER * self.workers):
            return True, self.workers, self.detect_threads
        return (False, *self._threads(False))

    def close(self) -> None:
        """Stop the decoders kept between runs (``keep_decoders``); a no-op otherwise."""
        if self._decoders is not None:
            self._decoders.__exit__(None, None, None)
            self._decoders = None

    @contextmanager
    def _decoding(self, files: int, workers: int, warm: bool = False):
        """This run's decoders: the kept ones (opened on first use), or ``workers`` for this
        run's ``files`` (no more workers than files: each one started costs its imports);
        ``warm``: they detect on real footage (:class:`~truthnet.decode.isolation.IsolatedDecoder`)."""
        if not self.keep_decoders:
            with open_decoder(self.isolation, min(workers, max(1, files)), self.timeout,
                              self.decode_fn, warm) as decoders:
                yield decoders
            return
        if self._decoders is None:
            self._decoders = open_decoder(self.isolation, self.workers, self.timeout, self.decode_fn,
                                          self.in_worker).__enter__()
        yield self._decoders

    def run(self, rows: Iterable[Result], *, cancel=None) -> Iterator[Result]:
        """Complete each of ``rows`` (``path`` set; ``size``/``sha256`` kept) with its
        status and score; yields them in completion order.  ``cancel.is_set()`` stops within
        a fraction of a second, even while a file is still decoding: the files already decoded
        are still scored and yielded, the rest are not yielded at all.

        A classifier whose weights still load in the background (``load_classifier(...,
        background=True)``) decodes and detects meanwhile; no row is yielded before they are
        loaded, so weights that fail to load leave no result behind (the error is raised)."""
        wait = getattr(self.clf, "wait_loaded", None)
        with closing(self._run(list(rows), cancel)) as run:  # a caller that stops early closes the decoders now
            for row in run:
                if wait is not None:
                    wait()
                yield row

    def _run(self, rows: list[Result], cancel) -> Iterator[Result]:
        if not rows:
            return
        for r in rows:
            r.threshold = self.clf.threshold if r.threshold is None else r.threshold
        config = self.clf.config.to_dict()
        pool = self.clf.face_pipelines()  # the classifier's: detectors built once, reused by every run
        in_worker, workers, detect_threads = self._plan(len(rows))
        tasks = [DecodeTask(i, config, r.path, self.windows, in_worker) for i, r in enumerate(rows)]
        warm = in_worker and sum(r.size or 0 for r in rows) >= WARM_BYTES_PER_WORKER * min(workers, len(rows))
        batch = _Batch()  # this run's sequences waiting for the model (run state: never on self)
        faces: deque = deque()  # futures of _faces, in decode order
        finished = False
        try:
            with self._decoding(len(tasks), workers, warm) as decoders, \
                    ThreadPoolExecutor(detect_threads, thread_name_prefix="truthnet-faces") as detect, \
                    ThreadPoolExecutor(1, thread_name_prefix="truthnet-score") as score:
                batch.pool = score if self.score_in_thread else None
                try:
                    yield from self._read(decoders, tasks, rows, pool, detect, detect_threads, faces, batch, cancel)
                    finished = not (cancel is not None and cancel.is_set())
                    while faces:
                        yield from self._collect(faces.popleft(), batch)
                    yield from self._flush(batch)
                    yield from self._scored(batch, wait=True)
                except BaseException:  # stopped early or failed: batches not yet started are not scored,
                    score.shutdown(wait=False, cancel_futures=True)  # only the one running is waited for
                    raise
        finally:
            if not finished:  # stopped early: work may be left in kept decoders, the next run starts afresh
                self.close()

    def _read(self, decoders, tasks, rows, pool, detect, detect_threads: int, faces: deque, batch: _Batch,
              cancel) -> Iterator[Result]:
        """Read the decoders until every task is answered (or ``cancel``): failures yielded,
        decoded files given to detection, detected ones batched and scored."""
        # the decoders yield None every 0.2 s nothing finished: the loop acts on time too
        for msg in decoders.run(tasks):
            if isinstance(msg, SetupFailed):
                raise _setup_failed(msg)
            if isinstance(msg, DecodeFailed):
                row = rows[msg.key]
                row.status, row.reason = msg.status, msg.reason
                yield row
            elif msg is not None:
                row = rows[msg.key]
                faces.append((row, detect.submit(self._faces, pool, row, msg)))
            # collect finished detections; at most two per thread wait, so memory stays flat
            while faces and (faces[0][1].done() or len(faces) > 2 * detect_threads):
                yield from self._collect(faces.popleft(), batch)
            if batch.items and self.max_wait is not None and time.monotonic() - batch.oldest >= self.max_wait:
                yield from self._flush(batch)
            yield from self._scored(batch)
            if cancel is not None and cancel.is_set():
                break

    def _collect(self, item, batch: _Batch) -> Iterator[Result]:
        row, future = item
        ready = future.result()
        if ready is None:
            yield row
            return
        if not batch.items:
            batch.oldest = time.monotonic()
        batch.items.append(ready)
        if sum(len(p.seqs) for p in batch.items) >= self.batch_size:  # a full batch: score it now
            yield from self._flush(batch)

    def _faces(self, pool, row: Result, msg: Decoded) -> _Ready | None:
        """Detect (unless the worker did) and crop each window; None when no window is usable
        (``row`` then carries the failure)."""
        with pool.take() as pipe:
            return self._faces_with(pipe, row, msg)

    def _faces_with(self, pipe, row: Result, msg: Decoded) -> _Ready | None:
        row.status, row.duration = "ok", msg.info.duration
        row.fps = msg.info.fps or None
        row.frames_sha256 = msg.info.frames_sha256 or None
        if row.sha256 is None:  # a scan hashed it while planning; the API's files are hashed here
            from ..filecheck import file_sha256

            row.sha256 = file_sha256(row.path)
        seqs: list[FaceSequence] = []
        errors: list[WindowFailure] = []
        faces: list[int] = []
        detect = 0.0  # the decoder's detection time for windows it built, this thread's for the rest
        for item in msg.per_window:
            if not isinstance(item, (FaceSequence, WindowFailure)):  # frames: detect here
                pipe.ready()  # set-up once per detector (and waiting for TensorFlow): not this file's time
                t = time.perf_counter()
                item = build_window(pipe, row.path, msg.info, *item, msg.seconds)
                detect += time.perf_counter() - t
            elif isinstance(item, FaceSequence):
                detect += item.timings.get("detect", 0.0) + item.timings.get("crop", 0.0)
            if isinstance(item, FaceSequence):
                seqs.append(item)
            else:
                errors.append(item)
            faces.extend(item.faces_found or [])
        row.frames_sampled = sum(s.frames_used for s in seqs) + sum(e.frames for e in errors)
        row.faces_found = faces if getattr(pipe.detector, "finds_faces", True) else None
        row.timings = {"decode": round(msg.seconds, 4), "detect": round(detect, 4)}
        if not seqs:
            row.status, row.reason = errors[0].status, errors[0].reason
            return None
        notes = []
        if len(msg.per_window) < self.windows:
            notes.append(f"{len(msg.per_window)} of {self.windows} windows: the clip's {msg.info.frame_count} "
                         "frames hold no more full windows")
        if errors:
            notes.append(f"{len(errors)} of {len(msg.per_window)} windows skipped: {errors[0].reason}")
        row.reason = "; ".join(notes)
        first = seqs[0]
        row.frame_indices, row.frames_padded = list(first.frame_indices), first.padded
        if self.thumbs:
            row.thumbs = thumbnail_strip(first.crops[: first.frames_used])
        return _Ready(row, seqs)

    def _flush(self, batch: _Batch) -> Iterator[Result]:
        """Score the waiting sequences in one batch: in the scoring thread (their rows come
        from :meth:`_scored`; the next batch is given to it once this one is scored, so reading
        goes on while one batch is scored and memory stays flat), or here."""
        pending, batch.items = batch.items, []
        if not pending:
            return
        seqs = [s for p in pending for s in p.seqs]
        stages: dict[str, float] = {}
        if batch.pool is None:
            yield from self._rows(pending, self.clf.predict_sequences(seqs, timings=stages), stages, len(seqs))
            return
        while batch.scoring:  # one batch at a time with the model: a cancel waits for one batch at most
            yield from self._finish(batch.scoring.popleft())
        batch.scoring.append((batch.pool.submit(self.clf.predict_sequences, seqs, timings=stages), pending, stages,
                              len(seqs)))
        yield from self._scored(batch)

    def _scored(self, batch: _Batch, wait: bool = False) -> Iterator[Result]:
        """The rows of the batches the scoring thread has finished, in order (``wait``: of all)."""
        while batch.scoring and (wait or batch.scoring[0][0].done()):
            yield from self._finish(batch.scoring.popleft())

    def _finish(self, item) -> Iterator[Result]:
        """The rows of one batch given to the scoring thread, once scored (the model's error,
        if it raised, is raised here)."""
        future, pending, stages, n = item
        yield from self._rows(pending, future.result(), stages, n)

    def _rows(self, pending: list[_Ready], scores, stages: dict[str, float], n: int) -> Iterator[Result]:
        """The rows of one scored batch: ``scores`` per sequence, ``stages`` the batch's timings
        over its ``n`` sequences."""
        scores = iter(scores)
        threshold = self.clf.threshold
        for p in pending:
            ws = [float(next(scores)) for _ in p.seqs]
            row = p.row
            row.window_scores = ws if self.windows > 1 else None
            row.score = float(np.mean(ws))
            row.label = label_for(row.score, threshold)
            row.threshold = threshold
            for stage, seconds in stages.items():  # the batch's time, shared out per sequence
                row.timings[stage] = round(seconds / n * len(p.seqs), 4)
            yield row


#: a run detects in its decode workers (where the detector can) only with at least this many
#: files per worker: each worker builds its own detector (MTCNN on OpenVINO: ~0.5 CPU-s), while
#: this process builds its detectors once and keeps them between runs.  A run of a few files
#: detects here (the test suite, mostly 2-5 file scans in long-lived processes, ran 273 s with
#: every run detecting here, 319 s with every run in the workers)
FILES_PER_DETECTING_WORKER = 2

#: bytes of video per decode worker from which a run that detects in the workers has them load
#: MTCNN's compiled kernels once, in their template, before the first frame (each worker
#: loads them anyway once it has detected ``mtcnn_pyramid.NATIVE_AFTER`` pixels, ~5 Mpixel:
#: two 480p clips).  Real footage is ~0.3-3 MB a clip; the test suite's clips are ~10-100 KB,
#: and pay nothing for kernels they would never load.  Decoders kept between runs (a Ray actor's)
#: that detect load them always: they serve batch after batch
WARM_BYTES_PER_WORKER = 1 << 20


def _setup_failed(msg: SetupFailed) -> ConfigError:
    return ConfigError(
        f"the decode workers could not set up the pipeline: {msg.message}",
        hint="plugins registered at run time with register_plugin() exist only in this process: install them "
             "as a package with a `truthnet` entry point, or decode in threads (isolation='thread')",
    )


def _worker_safe(config, decode_fn: DecodeFn) -> bool:
    """Whether the decode worker processes can build this pipeline (installed plugins only)
    and import the decode function (not one defined in ``__main__``)."""
    from ..plugins import check_worker_safe

    try:
        check_worker_safe(config)
        fn_spec(decode_fn)
    except ConfigError:
        return False
    return True


def plan_threads(detect_in_worker: bool, cores: int | None = None) -> tuple[int, int]:
    """(decode workers, detection threads) for this machine's cores.

    Measured on realistic H.264 (``benchmarks/bench_realistic.py``): reaching 10 frames of a
    long-GOP clip costs ~0.6 s of one core, the paper's MTCNN ~1.2 s per video, and MTCNN's many
    small ops gain little from a second intra-op thread but nearly 2x from a second frame
    detected at once.  So with detection here, half the cores decode and detection runs in one
    thread per core, at most 4 (TensorFlow's shared pool keeps them from oversubscribing; more
    threads were not measured to pay); with detection in the workers (MTCNN on OpenVINO, the
    OpenCV detectors), every core decodes and detects: no frames cross between processes and no
    two detections share an interpreter (``bench_levers.py --lever mtcnn-in-decoder``)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = max(1, int(cores))
    if detect_in_worker:
        return max(1, n), 1
    return max(1, n // 2), max(1, min(n, 4))

"""``truthnet scan --engine ray``: the same scan, spread over a Ray cluster.

The driver plans the scan exactly as the local engine does (fingerprints, reuse from the store)
and writes every result itself, so the store and the reports are the same as a local scan's.
Files go to Ray actors in small batches; each actor loads the model once (shipped through the
object store, not re-read per file) and runs the local pipeline on its batch, decoding
isolated per file as locally.  An actor that dies mid-batch has its files retried one by one on
the others; a file that kills ``max_attempts`` workers ends as a failure instead of retrying
forever.  Ctrl-C stops the cluster work and keeps what was written.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from .errors import ConfigError
from .scanning import Scanner

INSTALL_HINT = "Ray is not installed: pip install 'truthnet[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


class _Scorer:
    """A Ray actor: one model, the local engine, a batch of files at a time."""

    def __init__(self, model_bytes: bytes, suffix: str, config: dict, windows: int, timeout: float,
                 decode_workers: int, batch_size: int) -> None:
        import tempfile

        from .config import PipelineConfig
        from .classifier import load_classifier

        fd, path = tempfile.mkstemp(suffix=suffix, prefix="truthnet-model-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(model_bytes)
        self.det = load_classifier(path, PipelineConfig.from_dict(config))
        self.det.allow_untrained = True  # the driver's Engine already refused an untrained model, or was told to allow it
        os.unlink(path)
        self.windows, self.timeout = windows, timeout
        self.decode_workers, self.batch_size = decode_workers, batch_size

    def pid(self) -> int:
        return os.getpid()

    def score(self, rows: list) -> list:
        from .engine import Engine

        # one CPU per actor: one decoder, one detection thread
        engine = Engine(self.det, windows=self.windows, workers=self.decode_workers, detect_threads=1,
                        timeout=self.timeout, batch_size=self.batch_size)
        return list(engine.run(rows))


class RayScanner(Scanner):
    """A :class:`Scanner` whose ``execute`` runs on Ray actors."""

    def __init__(self, detector, store, *, address: str | None = None, num_workers: int = 2,
                 gpus_per_worker: float = 0.0, files_per_task: int = 4, max_attempts: int = 2,
                 decode_workers: int = 1, **kw) -> None:
        super().__init__(detector, store, **kw)
        self.address = address
        self.num_workers = max(1, int(num_workers))
        self.gpus_per_worker = float(gpus_per_worker)
        self.files_per_task = max(1, int(files_per_task))
        self.max_attempts = max(1, int(max_attempts))
        self.decode_workers = decode_workers
        self.on_actor_started = None  # test hook: called with the actor handles once they are up

    def _model_bytes(self) -> tuple[bytes, str]:
        if not self.model_path or not os.path.exists(self.model_path):
            raise ConfigError("--engine ray needs the model as a file (it is shipped to the workers)")
        return Path(self.model_path).read_bytes(), Path(self.model_path).suffix

    def execute(self, rows: list, emit, cancel=None) -> None:
        if not rows:
            return
        ray = import_ray()
        started_here = False
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            started_here = True
        actor_cls = ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=0)(_Scorer)
        model_bytes, suffix = self._model_bytes()
        model_ref = ray.put(model_bytes)  # once, through the object store

        def new_actor():
            return actor_cls.remote(model_ref, suffix, self.det.config.to_dict(), self.engine.windows, self.engine.timeout,
                                    self.decode_workers, self.engine.batch_size)

        actors = [new_actor() for _ in range(self.num_workers)]
        if self.on_actor_started:
            self.on_actor_started(actors)
        queue: deque[list] = deque(rows[i : i + self.files_per_task] for i in range(0, len(rows), self.files_per_task))
        attempts: dict[int, int] = {}
        running: dict = {}  # ObjectRef -> (actor, batch)
        idle = list(actors)
        try:
            while queue or running:
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                while queue and idle:
                    batch = queue.popleft()
                    actor = idle.pop()
                    ref = actor.score.remote(batch)
                    running[ref] = (actor, batch)
                done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in done:
                    actor, batch = running.pop(ref)
                    try:
                        rows = ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                            ray.exceptions.ActorDiedError):
                        self._worker_died(batch, attempts, queue, emit)
                        idle.append(new_actor())  # replace the dead worker
                        continue
                    for row in rows:
                        emit(row)
                    idle.append(actor)
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        finally:
            for a in actors + idle:
                try:
                    ray.kill(a)
                except Exception:
                    pass
            if started_here:
                ray.shutdown()

    def _worker_died(self, batch, attempts, queue, emit) -> None:
        """Retry a dead worker's files one by one; a file that kills workers repeatedly fails."""
        for row in batch:
            attempts[row.path] = attempts.get(row.path, 0) + 1
            if attempts[row.path] >= self.max_attempts and len(batch) == 1:
                row.status, row.reason = "decode_error", f"the worker died {attempts[row.path]} times while scoring this file"
                emit(row)
            else:
                queue.append([row])



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

from ..errors import ConfigError
from ..scanning import Scanner

INSTALL_HINT = "Ray is not installed: pip install 'truthnet[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


#: Ray retries an unreachable cluster for 20 s by default; an explicit address gets this many
_CONNECT_SECONDS = "5"


def _use_ray_token() -> None:
    """Use Ray's token authentication when a token is at hand, as ``ray start`` does.

    Ray 2.60 turns token authentication on for a cluster started where a token exists
    (``~/.ray/auth_token``, ``$RAY_AUTH_TOKEN`` or ``$RAY_AUTH_TOKEN_PATH``), but a driver that
    names the address explicitly does not look for it (only ``address="auto"`` does), so it is
    refused.  An explicit ``$RAY_AUTH_MODE`` is left as it is; the one set here lasts for the
    connection only (:func:`_forget_ray_token` after ``ray.shutdown``)."""
    global _token_mode_set
    if os.environ.get("RAY_AUTH_MODE"):
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path)):
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    _token_mode_set = True
    _refresh_ray_config()


def _refresh_ray_config() -> None:
    try:  # Ray caches its configuration: make this process read the mode again
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # an older Ray without token authentication: nothing to refresh
        pass


#: whether :func:`_use_ray_token` set ``$RAY_AUTH_MODE`` (and so must take it away again)
_token_mode_set = False


def _forget_ray_token() -> None:
    """Undo :func:`_use_ray_token` once the connection is shut down: the process's environment
    is as it was before the scan."""
    global _token_mode_set
    if _token_mode_set:
        os.environ.pop("RAY_AUTH_MODE", None)
        _token_mode_set = False
        _refresh_ray_config()


def connect(ray, address: str) -> None:
    """``ray.init(address=...)`` that answers in seconds: a one-line :class:`ConfigError` when
    nothing listens at ``address`` or the cluster refuses us, never a traceback."""
    hint = ("start a cluster with `ray start --head` and pass the address it prints; a cluster with token "
            "authentication needs its token here (~/.ray/auth_token or $RAY_AUTH_TOKEN)")
    if address != "auto" and "://" not in address:
        import socket

        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT, auto or ray://HOST:PORT")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
        except OSError as exc:
            raise ConfigError(f"no Ray cluster answers at {address}: {exc.strerror or exc}", hint=hint) from None
    _use_ray_token()
    wait_var = "RAY_gcs_server_port_wait_time_s"
    saved = os.environ.get(wait_var)
    os.environ.setdefault(wait_var, _CONNECT_SECONDS)
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _forget_ray_token()
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {first}", hint=hint) from None
    finally:
        if saved is None:
            os.environ.pop(wait_var, None)


class _Scorer:
    """A Ray actor: one model, the local engine, a batch of files at a time."""

    def __init__(self, model_bytes: bytes, suffix: str, config: dict, windows: int, timeout: float,
                 decode_workers: int, batch_size: int) -> None:
        import tempfile

        from ..config import PipelineConfig
        from ..classifier import load_classifier

        fd, path = tempfile.mkstemp(suffix=suffix, prefix="truthnet-model-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(model_bytes)
        self.classifier = load_classifier(path, PipelineConfig.from_dict(config))
        self.classifier.allow_untrained = True  # the driver's Engine already refused an untrained model, or was told to allow it
        os.unlink(path)
        from . import Engine

        # one engine for the actor's life: its decode workers (and the detectors they built) serve
        # every batch; one CPU per actor: one detection thread
        self.engine = Engine(self.classifier, windows=windows, workers=decode_workers, detect_threads=1,
                             timeout=timeout, batch_size=batch_size, keep_decoders=True)

    def pid(self) -> int:
        return os.getpid()

    def decoder_pids(self) -> list[int]:
        """The kept decode workers' process ids, and their template's where they are forks of one
        (empty before the first batch, or in threads)."""
        decoders = self.engine._decoders
        template = getattr(decoders, "template", None)
        pids = [w.proc.pid for w in getattr(decoders, "workers", [])]
        return [p for p in ([template.proc.pid] if template is not None else []) + pids if p is not None]

    def score(self, rows: list) -> list:
        return list(self.engine.run(rows))


class RayScanner(Scanner):
    """A :class:`Scanner` whose ``execute`` runs on Ray actors."""

    def __init__(self, classifier, store, *, address: str | None = None, num_workers: int = 2,
                 gpus_per_worker: float = 0.0, files_per_task: int = 4, max_attempts: int = 2,
                 decode_workers: int = 1, **kw) -> None:
        super().__init__(classifier, store, **kw)
        self.address = address
        self.num_workers = max(1, int(num_workers))
        self.gpus_per_worker = float(gpus_per_worker)
        self.files_per_task = max(1, int(files_per_task))
        self.max_attempts = max(1, int(max_attempts))
        self.decode_workers = decode_workers
        self.on_actor_started = None  # test hook: called with the actor handles once they are up

    def _model_bytes(self) -> tuple[bytes, str]:
        """The model file's bytes to ship, which must be those whose SHA-256 the results cite
        (hashed when the scan started): a file replaced in between gives no verdict."""
        import hashlib

        if not self.model_path or not os.path.exists(self.model_path):
            raise ConfigError("--engine ray needs the model as a file (it is shipped to the workers)")
        data = Path(self.model_path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if self.model_sha256 and sha != self.model_sha256:
            raise self.model_changed(sha)
        return data, Path(self.model_path).suffix

    def execute(self, rows: list, emit, cancel=None) -> None:
        if not rows:
            return
        ray = import_ray()
        started_here = self._init_ray(ray)
        actor_cls = ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=0)(_Scorer)
        model_bytes, suffix = self._model_bytes()
        model_ref = ray.put(model_bytes)  # once, through the object store

        def new_actor():
            return actor_cls.remote(model_ref, suffix, self.classifier.config.to_dict(), self.engine.windows,
                                    self.engine.timeout, self.decode_workers, self.engine.batch_size)

        actors = [new_actor() for _ in range(self.num_workers)]
        if self.on_actor_started:
            self.on_actor_started(actors)
        idle = list(actors)
        try:
            self._dispatch(ray, rows, idle, new_actor, emit, cancel)
        finally:
            for a in actors + idle:
                try:
                    ray.kill(a)
                except Exception:
                    pass
            if started_here:
                ray.shutdown()
                _forget_ray_token()

    def _init_ray(self, ray) -> bool:
        """Connect to the cluster at ``address``, or start a local instance; True when this call
        started (and so must shut down) the instance."""
        if ray.is_initialized():
            return False
        if self.address:
            connect(ray, self.address)
        else:
            ray.init(num_cpus=self.num_workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        return True

    def _dispatch(self, ray, rows: list, idle: list, new_actor, emit, cancel) -> None:
        """Hand out ``files_per_task`` files at a time to idle actors until every file has a
        result; a dead actor is replaced and its files retried (:meth:`_worker_died`)."""
        queue: deque[list] = deque(rows[i : i + self.files_per_task] for i in range(0, len(rows), self.files_per_task))
        attempts: dict[int, int] = {}
        running: dict = {}  # ObjectRef -> (actor, batch)
        try:
            while queue or running:
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                while queue and idle:
                    batch = queue.popleft()
                    actor = idle.pop()
                    running[actor.score.remote(batch)] = (actor, batch)
                done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in done:
                    actor, batch = running.pop(ref)
                    try:
                        results = ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                            ray.exceptions.ActorDiedError):
                        self._worker_died(batch, attempts, queue, emit)
                        idle.append(new_actor())  # replace the dead worker
                        continue
                    for row in results:
                        emit(row)
                    idle.append(actor)
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref, force=True)
            raise

    def _worker_died(self, batch, attempts, queue, emit) -> None:
        """Retry a dead worker's files one by one; a file that kills workers repeatedly fails."""
        for row in batch:
            attempts[row.path] = attempts.get(row.path, 0) + 1
            if attempts[row.path] >= self.max_attempts and len(batch) == 1:
                row.status, row.reason = "decode_error", f"the worker died {attempts[row.path]} times while scoring this file"
                emit(row)
            else:
                queue.append([row])



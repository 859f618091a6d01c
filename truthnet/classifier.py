"""The scripting API: a :class:`Classifier` is a loaded CNN-LSTM plus its pipeline; it scores
videos into :class:`~truthnet.record.Result` records through the one engine
(:mod:`truthnet.engine`), exactly as ``truthnet scan`` does.

"Classifier" is the deepfake model; "face detector" is the pipeline stage that finds faces."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any, NamedTuple

import numpy as np

from .config import PipelineConfig
from .pipeline import FacePipeline, FaceSequence
from .record import Result


class Classifier:
    """A Keras CNN-LSTM together with the :class:`PipelineConfig` it was built with."""

    def __init__(self, model, config: PipelineConfig, *, metadata: dict | None = None, device: str | None = None):
        #: the Keras model; a :class:`~concurrent.futures.Future` while the model loads in the
        #: background (``load_classifier(..., background=True)``: :attr:`model` waits for it);
        #: None until first needed when the scan's parts came from OpenVINO's cache without it
        self._model = model
        self.config = config
        self.metadata = metadata or {}
        self.device = device
        #: the configuration's pipeline for input normalisation (scoring and explaining take
        #: pipelines with built detectors from :meth:`face_pipelines`)
        self.pipeline = FacePipeline(config, device=device)
        #: the parts scoring runs (:mod:`truthnet.runtime.parts`): False until known, None for a
        #: model without TruthNet's layer names (called whole)
        self._parts: Any = False
        self._keras_parts: Any = None  # Keras's own parts, for explanations, when scoring is on OpenVINO
        self._sha256: str | None = None  # of the file the parts were loaded from
        self._lock = threading.RLock()
        #: score even though the metadata says ``trained: False`` (experiments, benchmarks)
        self.allow_untrained = False
        #: the model file it was loaded from (absolute), None for one built in memory
        self.source: str | None = None

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def _resolve(self) -> None:
        """Wait for a background load; take what it gave (once: threads that ask together wait
        for the same load)."""
        if not isinstance(self._model, Future):
            return
        with self._lock:
            loading = self._model
            if isinstance(loading, Future):
                got = loading.result()
                if isinstance(got, _Loaded):
                    self._parts, self._sha256 = got.parts, got.sha256
                    self._model = got.model
                else:
                    self._model = got

    @property
    def model(self):
        """The Keras model; waits for it while it loads in the background, and raises what
        loading raised (a :class:`~truthnet.errors.ModelError` for weights Keras cannot read).
        Where the scan's parts came from OpenVINO's cache, Keras loads the file now (once), and
        only if it still has the bytes the parts were converted from."""
        self._resolve()
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load_keras()
        return self._model

    @model.setter
    def model(self, model) -> None:
        """Another Keras model: no longer the file's (if it came from one)."""
        self._model = model
        self._parts, self._keras_parts, self._sha256, self.source = False, None, None, None

    def _load_keras(self):
        from .errors import ModelError
        from .filecheck import file_sha256
        from .model import load_keras_model

        if self.source is None:
            raise ModelError("this classifier has no model (nor a file to load it from)")
        model = load_keras_model(self.source, self.config)
        if self._sha256 is not None and file_sha256(self.source) != self._sha256:
            raise ModelError(f"{self.source}: the model file changed since this classifier scored with it",
                             hint="load the model again")
        return model

    @property
    def runtime(self) -> str:
        """What scores run on: ``"openvino"`` or ``"tensorflow"`` (waits for a background load)."""
        parts = self._split()
        return parts.runtime if parts is not None else "tensorflow"

    def wait_loaded(self) -> None:
        """Return once the model (or the parts scoring needs) is loaded; raise what loading raised."""
        self._split()

    # -- scoring --------------------------------------------------------------------------
    def predict_sequences(self, seqs: list[FaceSequence], *, timings: dict | None = None) -> np.ndarray:
        """Scores for prepared sequences, batched across videos (``timings``: see
        :meth:`predict_inputs`)."""
        if not seqs:
            return np.zeros((0,), dtype=np.float32)
        x = np.stack([self.pipeline.inputs(s) for s in seqs])
        return self.predict_inputs(x, timings=timings)

    def predict_inputs(self, x: np.ndarray, *, timings: dict | None = None) -> np.ndarray:
        """Scores for model inputs ``(N, T, H, W, 3)``.

        The frames of all N videos go through the frame encoder together, then the small
        temporal head runs on the embeddings (:mod:`truthnet.runtime.parts`: on OpenVINO on a
        CPU, else TensorFlow).  Models without TruthNet's layer names (a bare paper ``.h5``) are
        called whole.  A ``timings`` dict gets the seconds of the encoder (``embed``) and of the
        head (``classify``; the whole model when it cannot be split).
        """
        parts = self._split()  # (waits for a load in the background: not this batch's time)
        t0 = time.perf_counter()
        if parts is None:
            out = np.asarray(self.model(x, training=False), dtype=np.float32).reshape(-1)
            if timings is not None:
                timings["classify"] = time.perf_counter() - t0
            return out
        n, t = x.shape[:2]
        emb = parts.embed(x.reshape((n * t,) + x.shape[2:])).reshape(n, t, -1)
        t1 = time.perf_counter()
        out = parts.scores(emb)
        if timings is not None:
            timings["embed"], timings["classify"] = t1 - t0, time.perf_counter() - t1
        return out

    def _split(self):
        """The parts scoring runs (see :attr:`_parts`)."""
        self._resolve()
        if self._parts is False:
            with self._lock:  # (split and traced once, whichever thread asks first)
                if self._parts is False:
                    from .runtime.parts import KerasParts

                    self._parts = KerasParts.split(self.model, self.config)
        return self._parts

    def keras_parts(self):
        """The model's parts as Keras models (:class:`~truthnet.runtime.parts.KerasParts`; None
        for a model without TruthNet's layer names): what explanations differentiate."""
        parts = self._split()
        if parts is None or parts.runtime == "tensorflow":
            return parts
        with self._lock:
            if self._keras_parts is None:
                from .runtime.parts import KerasParts

                self._keras_parts = KerasParts.split(self.model, self.config)
        return self._keras_parts

    @property
    def source_sha256(self) -> str | None:
        """The SHA-256 of the model file's bytes that scores are computed with (waits for a
        background load); None for a model built in memory."""
        self._resolve()
        return self._sha256

    def face_pipelines(self):
        """The pool of :class:`FacePipeline` objects for this classifier's configuration and
        device (:func:`truthnet.decode.pipelines_for`, the process's one cache): every run with
        it (``score_video`` per file, each Ray batch, a watcher's files, an explanation) takes
        a pipeline whose detector is already built, and gives it back."""
        from .decode import pipelines_for

        return pipelines_for(self.config.to_dict(), self.device)

    def score_video(self, path: str | os.PathLike) -> Result:
        """Score one video.  Bad files come back as a result with a failure status.

        Decodes in this process (no worker start-up); :meth:`score_videos` isolates decoding in
        subprocesses.  Both run the same engine: same frames, status and score."""
        return next(self.score_videos([path], workers=1, isolation="thread", detect_threads=1))

    def score_videos(
        self, paths: Iterable[str | os.PathLike], *, batch_size: int = 8, workers: int | None = None, windows: int = 1,
        isolation: str = "auto", timeout: float = 120.0, detect_threads: int | None = None,
    ) -> Iterator[Result]:
        """Score many videos, yielding results in input order as they are ready.

        The engine of ``truthnet scan``: decoding in ``workers`` isolated processes (a decoder
        crash or hang costs one file), faces and model batched across videos."""
        from .engine import Engine

        rows = [Result(path=os.fspath(p), status="ok") for p in paths]
        engine = Engine(self, windows=windows, isolation=isolation, workers=workers, timeout=timeout,
                        batch_size=batch_size, thumbs=False, detect_threads=detect_threads)
        ready: dict[int, Result] = {}
        order = {id(r): i for i, r in enumerate(rows)}
        nxt = 0
        for row in engine.run(rows):
            ready[order[id(row)]] = row
            while nxt in ready:
                yield ready.pop(nxt)
                nxt += 1

    def explain(self, path: str | os.PathLike):
        """Score one video and say why: each sampled frame's contribution and a Grad-CAM heat map
        over each face crop (:class:`truthnet.explain.Explanation`; computed only when asked)."""
        from .explain import explain

        return explain(self, path)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, metadata: dict | None = None):
        from .model import save_model

        meta = {k: v for k, v in self.metadata.items() if k not in ("format", "format_version", "pipeline")}
        meta.update(metadata or {})
        return save_model(self.model, self.config, path, meta)

    def with_threshold(self, threshold: float) -> Classifier:
        from .model import config_with_threshold

        # the same model, parts and compiled graphs (no second trace); a load still running in
        # the background is shared: each takes what it gives
        other = Classifier(self._model, config_with_threshold(self.config, threshold), metadata=self.metadata,
                         device=self.device)
        other._parts, other._keras_parts, other._sha256 = self._parts, self._keras_parts, self._sha256
        other.allow_untrained = self.allow_untrained
        other.source = self.source
        return other


def load_classifier(
    path: str | os.PathLike,
    config: PipelineConfig | None = None,
    *,
    threshold: float | None = None,
    device: str | None = None,
    background: bool = False,
    runtime: str | None = None,
) -> Classifier:
    """Load a saved model (with the configuration it carries, or ``config`` for a bare file).

    ``runtime``: what scores run on (:mod:`truthnet.runtime.parts`): ``"auto"`` (the default, or
    ``$TRUTHNET_MODEL_RUNTIME``) is OpenVINO on a CPU where it is installed and exact, from its
    cache without TensorFlow; ``"openvino"`` insists (a :class:`~truthnet.errors.ModelError`
    where it cannot); ``"tensorflow"`` is Keras.

    ``background``: check the file, its configuration and its plugins now, and load what scoring
    needs (from OpenVINO's cache ~0.5 s; with Keras, importing TensorFlow, ~5 s of one core) in a
    thread while the caller goes on: a scan decodes its first files meanwhile.  The first score
    waits for it and raises what loading raised."""
    from .model import config_with_threshold, inspect_model
    from .runtime.parts import requested_runtime, resolve_runtime

    cfg, meta = inspect_model(path, config)
    strict = requested_runtime(runtime) == "openvino"
    resolved = resolve_runtime(runtime, device)
    source = os.path.abspath(os.fspath(path))
    loaded = None
    if background:
        model = _in_thread(_load_parts, source, cfg, resolved, strict)
    else:
        loaded = _load_parts(source, cfg, resolved, strict)
        model = loaded.model
    clf = Classifier(model, config_with_threshold(cfg, threshold), metadata=meta, device=device)
    clf.source = source
    if loaded is not None:
        clf._parts, clf._sha256 = loaded.parts, loaded.sha256
    return clf


class _Loaded(NamedTuple):
    model: Any  # the Keras model, or None where the parts came from OpenVINO's cache
    parts: Any
    sha256: str


def _load_parts(path: str, cfg: PipelineConfig, runtime: str, strict: bool) -> _Loaded:
    from .runtime import parts as model_parts

    return _Loaded(*model_parts.load(path, cfg, runtime, strict=strict))


def _in_thread(fn, *args) -> Future:
    """``fn(*args)`` in a daemon thread (an interrupted scan does not wait for it at exit)."""
    future: Future = Future()

    def work() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits for the model
                future.set_exception(exc)

    threading.Thread(target=work, name="truthnet-load-model", daemon=True).start()
    return future


def new_classifier(
    config: PipelineConfig | str = "paper", *, weights: Any = "config", seed: int | None = None
) -> Classifier:
    """A freshly built, untrained classifier for a configuration or preset name (metadata
    ``trained: False``: scoring with it raises :class:`~truthnet.errors.ModelError` unless
    ``allow_untrained`` is set on it or ``TRUTHNET_ALLOW_UNTRAINED=1``)."""
    from .model import build_model

    cfg = PipelineConfig.preset(config) if isinstance(config, str) else config
    if seed is not None:
        from ._lazy import import_keras

        import_keras().utils.set_random_seed(seed)
    # says so in its metadata: the engine refuses to give verdicts with it (see Engine)
    return Classifier(build_model(cfg, weights=weights), cfg, metadata={"trained": False})


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
from typing import Any

import numpy as np

from .config import PipelineConfig
from .pipeline import FacePipeline, FaceSequence
from .record import Result


class Classifier:
    """A Keras CNN-LSTM together with the :class:`PipelineConfig` it was built with."""

    def __init__(self, model, config: PipelineConfig, *, metadata: dict | None = None, device: str | None = None):
        #: the Keras model, or a :class:`~concurrent.futures.Future` of it while it loads in the
        #: background (``load_classifier(..., background=True)``): :attr:`model` waits for it
        self._model = model
        self.config = config
        self.metadata = metadata or {}
        self.device = device
        #: the configuration's pipeline for input normalisation (scoring and explaining take
        #: pipelines with built detectors from :meth:`face_pipelines`)
        self.pipeline = FacePipeline(config, device=device)
        self._parts: tuple | None | bool = False  # compiled (encoder, head), built on first use
        #: score even though the metadata says ``trained: False`` (experiments, benchmarks)
        self.allow_untrained = False
        #: the model file it was loaded from (absolute), None for one built in memory
        self.source: str | None = None

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def model(self):
        """The Keras model; waits for it while it loads in the background, and raises what
        loading raised (a :class:`~truthnet.errors.ModelError` for weights Keras cannot read)."""
        model = self._model
        if isinstance(model, Future):
            model = self._model = model.result()
        return model

    @model.setter
    def model(self, model) -> None:
        self._model = model

    def wait_loaded(self) -> None:
        """Return once the model is loaded; raise what loading raised."""
        self.model  # noqa: B018 - the property waits

    # -- scoring --------------------------------------------------------------------------
    #: frames per call of the compiled frame encoder; the last chunk is padded to this size so
    #: the graph is traced once (a new input shape costs a retrace)
    FRAME_CHUNK = 32

    def predict_sequences(self, seqs: list[FaceSequence], *, timings: dict | None = None) -> np.ndarray:
        """Scores for prepared sequences, batched across videos (``timings``: see
        :meth:`predict_inputs`)."""
        if not seqs:
            return np.zeros((0,), dtype=np.float32)
        x = np.stack([self.pipeline.inputs(s) for s in seqs])
        return self.predict_inputs(x, timings=timings)

    def predict_inputs(self, x: np.ndarray, *, timings: dict | None = None) -> np.ndarray:
        """Scores for model inputs ``(N, T, H, W, 3)``.

        The frames of all N videos go through the backbone together, in fixed-size chunks of a
        compiled graph (3x faster than an eager call of the whole model on CPU, and no retrace
        per batch size); the small temporal head then runs on the embeddings.  Models without
        TruthNet's layer names (a bare paper ``.h5``) are called whole.  A ``timings`` dict gets
        the seconds of the backbone (``embed``) and of the head (``classify``; the whole model
        when it cannot be split).
        """
        parts = self._split()  # (waits for weights loading in the background: not this batch's time)
        t0 = time.perf_counter()
        if parts is None:
            out = np.asarray(self.model(x, training=False), dtype=np.float32).reshape(-1)
            if timings is not None:
                timings["classify"] = time.perf_counter() - t0
            return out
        encoder, head = parts
        n, t = x.shape[:2]
        frames = x.reshape((n * t,) + x.shape[2:])
        chunk = self.FRAME_CHUNK
        feats = []
        for i in range(0, len(frames), chunk):
            part = frames[i : i + chunk]
            if len(part) < chunk:
                part = np.concatenate([part, np.zeros((chunk - len(part),) + part.shape[1:], part.dtype)])
            feats.append(np.asarray(encoder.predict_on_batch(part))[: min(chunk, len(frames) - i)])
        emb = np.concatenate(feats).reshape(n, t, -1)
        t1 = time.perf_counter()
        out = np.asarray(head(emb, training=False), dtype=np.float32).reshape(-1)
        if timings is not None:
            timings["embed"], timings["classify"] = t1 - t0, time.perf_counter() - t1
        return out

    def _split(self):
        if self._parts is not False:
            return self._parts
        self._parts = None
        try:
            from ._lazy import import_keras
            from .model import HEAD_LAYERS

            keras = import_keras()
            cnn = self.model.get_layer("cnn").layer
            pool = self.model.get_layer("pool").layer
            head_layers = [self.model.get_layer(n) for n in HEAD_LAYERS]
        except (ValueError, AttributeError):
            return None
        size = self.config.image_size
        inp = keras.Input((size, size, 3))
        encoder = keras.Model(inp, pool(cnn(inp)), name="frame_encoder")
        emb_in = keras.Input((self.config.num_frames, encoder.output_shape[-1]))
        y = emb_in
        for layer in head_layers:
            y = layer(y)
        self._parts = (encoder, keras.Model(emb_in, y, name="head"))
        return self._parts

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

        other = Classifier(self._model, config_with_threshold(self.config, threshold), metadata=self.metadata,
                         device=self.device)
        other._parts = self._parts  # same model, same compiled graphs: no second trace
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
) -> Classifier:
    """Load a saved model (with the configuration it carries, or ``config`` for a bare file).

    ``background``: check the file, its configuration and its plugins now, and read the weights
    (importing TensorFlow, ~4 s of one core) in a thread while the caller goes on: a scan decodes
    its first files meanwhile.  The first use of :attr:`Classifier.model` waits for it and raises
    what loading raised."""
    from .model import config_with_threshold, inspect_model, load_keras_model

    cfg, meta = inspect_model(path, config)
    if background:
        model = _in_thread(load_keras_model, path, cfg)
    else:
        model = load_keras_model(path, cfg)
    clf = Classifier(model, config_with_threshold(cfg, threshold), metadata=meta, device=device)
    clf.source = os.path.abspath(os.fspath(path))
    return clf


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


"""``truthnet train``: the paper's training, with cached embeddings for frozen backbones.

Paper 3.4.4-3.4.5: Adam 1e-4, binary cross-entropy, batch 4, 10 epochs, shuffling every epoch,
metrics accuracy and AUC.  Added: validation every epoch, early stopping on validation loss
with the best weights kept, optional class weights, resume after an interruption
(``BackupAndRestore``), a history JSON and loss/accuracy curves.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import PipelineConfig
from .datasets import ManifestRow, read_dataset, read_manifest, split_rows, write_manifest
from .errors import DatasetError, VideoError
from .events import Event
from .features import FeatureCache, embedding_key, file_fingerprint


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 4
    learning_rate: float = 1e-4
    seed: int = 0
    shuffle: bool = True
    patience: int | None = 3  # early stopping on val_loss; None: train all epochs
    class_weight: bool = False  # weight classes inversely to their frequency (paper: 951 real, 1,524 fake)
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_protocol: str = "group"
    workers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """Why a video could not be used for training: its status and the reason, as a scan says."""

    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


@dataclass
class TrainResult:
    model_path: Path
    out_dir: Path
    history: dict[str, list[float]]
    counts: dict[str, dict[str, int]]
    failed: dict[str, Failure] = field(default_factory=dict)
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0


Progress = Callable[[Event], None]  #: receives progress Events (``print`` works: str(event) is its message)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- data ----------------------------------------------------------------------------------


def load_rows(dataset: str | os.PathLike, layout: str | None = None) -> tuple[str, list[ManifestRow]]:
    """Rows of a dataset folder (layout auto-detected) or of a manifest CSV written earlier."""
    p = Path(dataset)
    if p.is_file() and p.suffix.lower() == ".csv":
        return "manifest", read_manifest(p)
    return read_dataset(p, layout)


def prepare_crops(
    rows: list[ManifestRow], cfg: PipelineConfig, cache: FeatureCache, *, workers: int = 2, progress: Progress | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Face crops of every row (from the cache when possible).

    Returns ``(crops_by_path, fingerprint_by_path, failures_by_path)``; a failure maps to
    ``"status: reason"``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .pipeline import FacePipeline

    pipe = FacePipeline(cfg)
    crops: dict[str, np.ndarray] = {}
    fps: dict[str, str] = {}
    failed: dict[str, Failure] = {}

    def one(row: ManifestRow):
        try:
            fp = file_fingerprint(row.path)
        except VideoError as exc:  # missing, a pipe, a device: never opened
            return row.path, None, None, Failure(exc.status, exc.reason)
        except OSError as exc:
            return row.path, None, None, Failure("unreadable", str(exc))
        hit = cache.get_crops(cfg, fp)
        if hit is not None:
            c, meta = hit
            return row.path, fp, c, None if c is not None else Failure(meta["status"], meta["reason"])
        try:
            seq = pipe.prepare(row.path)
        except VideoError as exc:
            cache.put_crops(cfg, fp, None, {"status": exc.status, "reason": exc.reason})
            return row.path, fp, None, Failure(exc.status, exc.reason)
        cache.put_crops(cfg, fp, seq.crops, {"frame_indices": seq.frame_indices, "faces_found": seq.faces_found})
        return row.path, fp, seq.crops, None

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as ex:
        for i, (path, fp, c, err) in enumerate(ex.map(one, rows), 1):
            if fp:
                fps[path] = fp
            if err:
                failed[path] = err
            else:
                crops[path] = c
            if progress and (i % 10 == 0 or i == len(rows)):
                el = time.perf_counter() - t0
                eta = el / i * (len(rows) - i)
                progress(Event("faces", i, len(rows), f"faces: {i}/{len(rows)} videos, {len(failed)} failed, ETA {eta:.0f} s"))
    return crops, fps, failed


def embed_crops(
    encoder, cfg: PipelineConfig, crops: dict[str, np.ndarray], fps: dict[str, str], cache: FeatureCache,
    weights_tag: str, *, batch_videos: int = 8, progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame embeddings ``(T, D)`` of each video, computed once and cached."""
    from .pipeline import FacePipeline

    norm = FacePipeline(cfg).normalise
    key = embedding_key(cfg, weights_tag)
    out: dict[str, np.ndarray] = {}
    todo = []
    for path in crops:
        e = cache.get_embedding(key, fps[path])
        if e is None:
            todo.append(path)
        else:
            out[path] = e
    t0 = time.perf_counter()
    for i in range(0, len(todo), batch_videos):
        chunk = todo[i : i + batch_videos]
        x = np.stack([norm(crops[p]) for p in chunk])
        emb = np.asarray(encoder(x, training=False), dtype=np.float32)
        for p, e in zip(chunk, emb):
            cache.put_embedding(key, fps[p], e)
            out[p] = e
        if progress:
            done = min(i + batch_videos, len(todo))
            eta = (time.perf_counter() - t0) / done * (len(todo) - done)
            progress(Event("embeddings", done, len(todo), f"embeddings: {done}/{len(todo)} videos, ETA {eta:.0f} s"))
    return out


# --- fitting -------------------------------------------------------------------------------


def _dataset_class():
    from ._lazy import import_keras

    keras = import_keras()

    class ShuffledArrays(keras.utils.PyDataset):
        """Batches of ``(x, y, sample_weight)``, reshuffled every epoch by our own seeded RNG,
        so that two fits with the same seed see the same batches (cached vs end to end)."""

        def __init__(self, x, y, batch_size, seed, shuffle, class_weight=None):
            super().__init__()
            self.x, self.y = x, y.astype(np.float32)
            self.bs = batch_size
            self.rng = np.random.default_rng(seed)
            self.shuffle = shuffle
            self.order = self.rng.permutation(len(y)) if shuffle else np.arange(len(y))
            cw = class_weight or {0: 1.0, 1: 1.0}
            self.w = np.array([cw[int(v)] for v in y], dtype=np.float32)

        def __len__(self):
            return math.ceil(len(self.y) / self.bs)

        def __getitem__(self, i):
            idx = self.order[i * self.bs : (i + 1) * self.bs]
            return self.x[idx], self.y[idx], self.w[idx]

        def on_epoch_end(self):
            if self.shuffle:
                self.order = self.rng.permutation(len(self.y))

    return ShuffledArrays


def _progress_callback(progress: Progress, epochs: int):
    from ._lazy import import_keras

    keras = import_keras()

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            el = time.perf_counter() - self.t0
            eta = el / (epoch + 1) * (epochs - epoch - 1)
            parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))
            progress(Event("epoch", epoch + 1, epochs, f"epoch {epoch + 1}/{epochs} {parts} ETA {eta:.0f} s"))

    return EpochProgress()


def fit(
    model, x: np.ndarray, y: np.ndarray, tcfg: TrainConfig, *, val: tuple[np.ndarray, np.ndarray] | None = None,
    work_dir: Path | None = None, progress: Progress | None = None,
) -> dict[str, list[float]]:
    """Compile and fit ``model`` (full model or head) the paper's way; returns the history."""
    from ._lazy import import_keras
    from .model import compile_model

    keras = import_keras()
    compile_model(model, tcfg.learning_rate)
    cw = None
    if tcfg.class_weight:
        counts = Counter(int(v) for v in y)
        cw = {c: len(y) / (2.0 * counts[c]) for c in (0, 1) if counts[c]}
    data = _dataset_class()(x, y, tcfg.batch_size, tcfg.seed, tcfg.shuffle, cw)
    callbacks = []
    if progress:
        callbacks.append(_progress_callback(progress, tcfg.epochs))
    if val is not None and len(val[1]) and tcfg.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg.patience, restore_best_weights=True)
        )
    if work_dir is not None:
        # resumable: an interrupted run continues from its last finished epoch
        callbacks.append(keras.callbacks.BackupAndRestore(str(work_dir / "backup"), delete_checkpoint=True))
    validation = (val[0], val[1].astype(np.float32)) if val is not None and len(val[1]) else None
    hist = model.fit(
        data, epochs=tcfg.epochs, validation_data=validation, callbacks=callbacks, verbose=0, shuffle=False
    )
    return {k: [float(v) for v in vs] for k, vs in hist.history.items()}


# --- the whole run -------------------------------------------------------------------------


def _fit_model(cfg, tcfg, crops, fps, cache, train_rows, val_rows, out, progress):
    """Build the model and fit it: end to end when the backbone trains, else the head on
    cached embeddings (the same maths for a frozen backbone, many times faster)."""
    from .model import build_encoder, build_head, build_model, copy_head_weights

    y_tr = np.array([r.label for r in train_rows])
    y_va = np.array([r.label for r in val_rows])

    from ._lazy import import_keras

    import_keras().utils.set_random_seed(tcfg.seed)
    model = build_model(cfg)
    if cfg.trainable_backbone:
        progress(Event.log(f"training end to end ({cfg.backbone} trainable): {len(train_rows)} train, {len(val_rows)} val"))
        from .pipeline import FacePipeline

        norm = FacePipeline(cfg).normalise
        x_tr = np.stack([norm(crops[r.path]) for r in train_rows])
        x_va = np.stack([norm(crops[r.path]) for r in val_rows]) if val_rows else None
        history = fit(model, x_tr, y_tr, tcfg, val=(x_va, y_va) if val_rows else None, work_dir=out, progress=progress)
    else:
        encoder = build_encoder(model)
        weights_tag = str(cfg.backbone_weights)
        if cfg.backbone_weights is None:
            # random weights are only reproducible through the seed: key the cache on it
            weights_tag = f"random-seed{tcfg.seed}"
        emb = embed_crops(encoder, cfg, crops, fps, cache, weights_tag, progress=progress)
        head = build_head(cfg, next(iter(emb.values())).shape[-1])
        copy_head_weights(model, head)
        progress(Event.log(f"training the head on cached embeddings: {len(train_rows)} train, {len(val_rows)} val"))
        e_tr = np.stack([emb[r.path] for r in train_rows])
        e_va = np.stack([emb[r.path] for r in val_rows]) if val_rows else None
        history = fit(head, e_tr, y_tr, tcfg, val=(e_va, y_va) if val_rows else None, work_dir=out, progress=progress)
        copy_head_weights(head, model)
    return history, model


def _split(dataset, layout: str | None, tcfg: TrainConfig, progress: Progress):
    """The dataset's rows with their split, and the real/fake count of each split."""
    layout_name, rows = load_rows(dataset, layout)
    rows = split_rows(
        rows, seed=tcfg.seed, val_fraction=tcfg.val_fraction, test_fraction=tcfg.test_fraction, protocol=tcfg.split_protocol
    )
    counts = {
        s: {"real": sum(r.label == 0 for r in rows if r.split == s), "fake": sum(r.label == 1 for r in rows if r.split == s)}
        for s in ("train", "val", "test")
    }
    progress(Event.log(f"dataset: {layout_name} layout, {len(rows)} videos; split {json.dumps(counts)}"))
    return layout_name, rows, counts


def _metadata(dataset, layout_name: str, rows, counts: dict, out: Path, cfg: PipelineConfig, tcfg: TrainConfig,
              history: dict, fps: dict[str, str], fitted: tuple[list, list], failed: int, seconds: float,
              progress: Progress) -> dict:
    """What the saved model says about its training: the card, the dataset, the fingerprints of
    every video it saw (evaluation and calibration leave those out wherever they turn up again)."""
    from . import __version__
    from .features import FP_PREFIX
    from .modelcard import build as build_card
    from .paths import norm

    kept = None  # early stopping restores the epoch of least validation loss
    if tcfg.patience is not None and history.get("val_loss"):
        kept = int(np.argmin(history["val_loss"]))
    card = build_card(dataset=str(dataset), layout=layout_name, counts=counts, paths=[r.path for r in rows],
                      manifest=out / "manifest.csv", config=cfg, history=history, best_epoch=kept)
    if card["synthetic"]:
        progress(Event.log(f"warning: {card['synthetic_videos']} of {len(rows)} videos are synthetic (truthnet "
                           "synth): the model's card says so wherever its verdicts are shown"))
    train_rows, val_rows = fitted
    return {
        "card": card,
        "trained": True,
        "truthnet_version": __version__,
        "train_config": tcfg.to_dict(),
        "dataset": norm(dataset),  # absolute: evaluation compares it with the dataset it is given
        "training_fingerprints": {s: sorted(fps[r.path][:FP_PREFIX] for r in part if r.path in fps)
                                  for s, part in (("train", train_rows), ("val", val_rows))},
        "layout": layout_name,
        "split_counts": counts,
        "failed_videos": failed,
        "history": history,
        "train_seconds": round(seconds, 2),
    }


def _save(model, cfg: PipelineConfig, out: Path, model_name: str, meta: dict, history: dict,
          progress: Progress) -> Path:
    """The model file, history.json and the training curves (a missing plotting backend must
    not lose a trained model)."""
    from .model import save_model

    model_path = save_model(model, cfg, out / model_name, meta)
    (out / "history.json").write_text(json.dumps(history, indent=2))
    try:
        from .reports.plots import plot_history

        plot_history(history, out / "training_curves.png")
    except Exception as exc:
        progress(Event.log(f"warning: could not draw the training curves: {exc}"))
    return model_path


def train(
    dataset: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PipelineConfig | str = "paper",
    tcfg: TrainConfig | None = None,
    *,
    layout: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress | None = _stderr,
    model_name: str = "model.keras",
) -> TrainResult:
    """Train on a dataset folder (or manifest CSV) and save the model with its pipeline config,
    manifest, history and curves into ``out_dir``."""
    t_start = time.perf_counter()
    cfg = PipelineConfig.preset(config) if isinstance(config, str) else config
    tcfg = tcfg or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda m: None)

    layout_name, rows, counts = _split(dataset, layout, tcfg, progress)
    fit_rows = [r for r in rows if r.split in ("train", "val")]
    cache = FeatureCache(cache_dir)
    crops, fps, failed = prepare_crops(fit_rows, cfg, cache, workers=tcfg.workers, progress=progress)
    write_manifest(rows, out / "manifest.csv", {p: {"status": f.status, "reason": str(f)} for p, f in failed.items()})
    train_rows = [r for r in fit_rows if r.split == "train" and r.path in crops]
    val_rows = [r for r in fit_rows if r.split == "val" and r.path in crops]
    if len({r.label for r in train_rows}) < 2:
        raise DatasetError(
            f"{dataset}: after dropping {len(failed)} unusable videos the training split lacks a class",
            hint="see manifest.csv's status column",
        )
    history, model = _fit_model(cfg, tcfg, crops, fps, cache, train_rows, val_rows, out, progress)
    seconds = time.perf_counter() - t_start
    meta = _metadata(dataset, layout_name, rows, counts, out, cfg, tcfg, history, fps, (train_rows, val_rows),
                     len(failed), seconds, progress)
    model_path = _save(model, cfg, out, model_name, meta, history, progress)
    progress(Event.log(f"saved {model_path} ({seconds:.1f} s)"))
    return TrainResult(model_path, out, history, counts, failed, seconds, cache.hits, cache.misses)

"""``truthnet evaluate`` and ``truthnet calibrate``: the paper's Table I, ROC, thresholds."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .events import Event


def compute_metrics(y_true, scores, threshold: float = 0.5) -> dict:
    """Table I (per-class precision/recall/F1/support, accuracy, macro and weighted averages),
    the confusion matrix ``[[TN, FP], [FN, TP]]`` (fake is positive), ROC-AUC and the ROC curve."""
    from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score, roc_curve

    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = (s >= threshold).astype(int)
    report = classification_report(
        y, pred, labels=[0, 1], target_names=["real", "fake"], output_dict=True, zero_division=0
    )
    cm = confusion_matrix(y, pred, labels=[0, 1]).tolist()
    auc, curve = None, {"fpr": [], "tpr": [], "thresholds": []}
    if len(set(y.tolist())) == 2:
        auc = float(roc_auc_score(y, s))
        fpr, tpr, thr = roc_curve(y, s)
        curve = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": [float(min(t, 1e9)) for t in thr]}
    return {
        "n": int(len(y)),
        "threshold": float(threshold),
        "accuracy": float(report["accuracy"]),
        "report": {k: v for k, v in report.items() if k != "accuracy"},
        "confusion_matrix": cm,
        "roc_auc": auc,
        "roc_curve": curve,
    }


def evaluate(
    model, dataset, out_dir=None, *, split: str | None = None, layout: str | None = None,
    threshold: float | None = None, batch_size: int = 8, include_training: bool = False, progress=None,
) -> dict:
    """Score a dataset split with a model and write predictions.csv, metrics.json, roc.png and
    confusion_matrix.png into ``out_dir``.  Videos that fail are listed with their status and
    left out of the metrics (counted in ``failed``).

    ``split`` None: ``test`` on the model's own dataset, ``all`` of any other; videos the model
    was trained on are left out unless ``include_training`` (see :mod:`truthnet.datasets.holdout`).  The
    metrics name the split and its size (``split``, ``split_videos``, ``selection``)."""
    from .classifier import Classifier, load_classifier
    from .datasets.holdout import select

    clf = model if isinstance(model, Classifier) else load_classifier(model, threshold=threshold)
    if threshold is not None and isinstance(model, Classifier):
        clf = clf.with_threshold(threshold)
    chosen = select(dataset, clf.metadata, purpose="evaluate", split=split, layout=layout,
                    include_training=include_training)
    rows, split = chosen.rows, chosen.info["split"]
    if progress:
        progress(Event.log(chosen.describe()))
    preds = []
    for i, v in enumerate(clf.score_videos([r.path for r in rows], batch_size=batch_size), 1):
        preds.append(v)
        if progress:
            progress(Event("evaluate", i, len(rows), f"evaluate: {i}/{len(rows)} videos"))
    ok = [(r, v) for r, v in zip(rows, preds) if v.ok]
    if not ok:
        raise DatasetError(f"{dataset}: none of the {len(rows)} videos in the {split!r} split could be scored")
    metrics = compute_metrics([r.label for r, _ in ok], [v.score for _, v in ok], clf.threshold)
    metrics["split"] = split
    metrics["split_videos"] = len(rows)
    metrics["selection"] = {**chosen.info, "summary": chosen.describe()}
    metrics["failed"] = {v.path: v.status for v in preds if not v.ok}
    metrics["model"] = _model_identity(model, clf)
    if out_dir is not None:
        _write_outputs(Path(out_dir), rows, preds, metrics)
    return metrics


def _model_identity(model, clf) -> dict:
    """The model the metrics are of: its file and SHA-256 (an in-memory model: its weights' hash)."""
    from .scanning import model_sha256, weights_sha256

    path = None if hasattr(model, "score_videos") else os.path.abspath(os.fspath(model))
    sha = model_sha256(path) if path else getattr(clf, "source_sha256", None)  # (a classifier from a file: its bytes)
    return {"path": path, "sha256": sha or f"weights:{weights_sha256(clf)}", "threshold": clf.threshold}


def _write_outputs(out: Path, rows, preds, metrics: dict) -> None:
    from .reports.plots import plot_confusion, plot_roc

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "group", "split", "status", "score", "predicted", "reason"])
        for r, v in zip(rows, preds):
            w.writerow([r.path, "fake" if r.label else "real", r.group, r.split, v.status,
                        "" if v.score is None else f"{v.score:.6f}", v.label or "", v.reason])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if metrics["roc_auc"] is not None:
        plot_roc(metrics["roc_curve"]["fpr"], metrics["roc_curve"]["tpr"], metrics["roc_auc"], out / "roc.png")
    plot_confusion(metrics["confusion_matrix"], out / "confusion_matrix.png")


def pick_threshold(real_scores, *, real_recall: float | None = None, max_fpr: float | None = None) -> float:
    """The lowest threshold at which at least ``real_recall`` of real videos score below it
    (are called real); ``max_fpr`` is the same target written as 1 - real recall."""
    if (real_recall is None) == (max_fpr is None):
        raise ValueError("give exactly one of real_recall or max_fpr")
    target = real_recall if real_recall is not None else 1.0 - max_fpr
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target real recall must be in (0, 1], got {target}")
    s = np.sort(np.asarray(real_scores, dtype=float))
    if len(s) == 0:
        raise DatasetError("no real videos to calibrate on")
    k = int(np.ceil(target * len(s)))  # this many real scores must fall below the threshold
    t = float(np.nextafter(s[k - 1], np.inf))
    return min(t, 1.0)


#: fewer real videos than this make a threshold that moves with every video (a warning)
MIN_CALIBRATION_VIDEOS = 30


def calibrated_path(model_path) -> Path:
    """Where ``calibrate`` writes by default: ``<name>.calibrated.keras`` beside the model."""
    p = Path(model_path)
    return p.with_name(f"{p.stem}.calibrated{p.suffix}")


def calibrate(
    model_path, dataset, *, real_recall: float | None = None, max_fpr: float | None = None, split: str | None = None,
    layout: str | None = None, output=None, in_place: bool = False, include_training: bool = False, progress=None,
) -> dict:
    """Pick a threshold on real videos and write the model with it to a new file: ``output``,
    else ``<name>.calibrated.keras`` beside it; over the input only with ``in_place``.

    ``split`` None: ``val`` on the model's own dataset, ``all`` of any other (videos it was
    trained on left out).  The result warns (``warnings``) below :data:`MIN_CALIBRATION_VIDEOS`
    real videos."""
    from .classifier import load_classifier
    from .errors import ConfigError
    from .datasets.holdout import select

    if output and in_place:
        raise ConfigError("give either an output file or in_place (--in-place), not both")
    target = Path(model_path) if in_place else Path(output) if output else calibrated_path(model_path)
    clf = load_classifier(model_path)
    chosen = select(dataset, clf.metadata, purpose="calibrate", split=split, layout=layout,
                    include_training=include_training)
    real = [r.path for r in chosen.rows if r.label == 0]
    if progress:
        progress(Event.log(chosen.describe()))
    scores = []
    for i, v in enumerate(clf.score_videos(real), 1):
        if v.ok:
            scores.append(v.score)
        if progress:
            progress(Event("calibrate", i, len(real), f"calibrate: {i}/{len(real)} real videos"))
    t = pick_threshold(scores, real_recall=real_recall, max_fpr=max_fpr)
    warnings = []
    if len(scores) < MIN_CALIBRATION_VIDEOS:
        warnings.append(f"only {len(scores)} real videos scored (fewer than {MIN_CALIBRATION_VIDEOS}): this threshold "
                        "will move with every video added; calibrate on more")
    s = np.asarray(scores)
    meta = {"calibration": {"split": chosen.info["split"], "dataset": chosen.info["dataset"],
                            "real_recall": real_recall, "max_fpr": max_fpr, "threshold": t, "n_real": len(scores),
                            "previous_threshold": clf.threshold}}
    path = clf.with_threshold(t).save(target, meta)
    return {"threshold": t, "previous_threshold": clf.threshold, "n_real": len(scores),
            "real_called_real": float((s < t).mean()) if len(s) else None,
            "real_called_real_before": float((s < clf.threshold).mean()) if len(s) else None,
            "split": chosen.info["split"], "selection": chosen.describe(), "model": str(path),
            "input_model": str(model_path), "in_place": bool(in_place), "warnings": warnings}

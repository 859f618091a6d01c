"""``truthnet evaluate`` and ``truthnet calibrate``: the paper's Table I, ROC, thresholds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .datasets import ManifestRow, split_rows
from .errors import DatasetError
from .events import ProgressText


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


def _rows_for(dataset, split: str, meta: dict, layout: str | None) -> list[ManifestRow]:
    from .training import load_rows

    _, rows = load_rows(dataset, layout)
    tc = meta.get("train_config") or {}
    # the same seed and fractions as training: a folder dataset gives back the same held-out split
    rows = split_rows(
        rows,
        seed=tc.get("seed", 0),
        val_fraction=tc.get("val_fraction", 0.1),
        test_fraction=tc.get("test_fraction", 0.2),
        protocol=tc.get("split_protocol", "group"),
    )
    if split != "all":
        rows = [r for r in rows if r.split == split]
    if not rows:
        raise DatasetError(f"{dataset}: no videos in the {split!r} split")
    return rows


def evaluate(
    model, dataset, out_dir=None, *, split: str = "test", layout: str | None = None, threshold: float | None = None,
    batch_size: int = 8, progress=None,
) -> dict:
    """Score a dataset split with a model and write predictions.csv, metrics.json, roc.png and
    confusion_matrix.png into ``out_dir``.  Videos that fail are listed with their status and
    left out of the metrics (counted in ``failed``)."""
    from .classifier import Classifier, load_classifier

    det = model if isinstance(model, Classifier) else load_classifier(model, threshold=threshold)
    if threshold is not None and isinstance(model, Classifier):
        det = det.with_threshold(threshold)
    rows = _rows_for(dataset, split, det.metadata, layout)
    preds = []
    for i, v in enumerate(det.score_videos([r.path for r in rows], batch_size=batch_size), 1):
        preds.append(v)
        if progress:
            progress(ProgressText("evaluate", i, len(rows), f"evaluate: {i}/{len(rows)} videos"))
    ok = [(r, v) for r, v in zip(rows, preds) if v.ok]
    if not ok:
        raise DatasetError(f"{dataset}: none of the {len(rows)} videos in the {split!r} split could be scored")
    metrics = compute_metrics([r.label for r, _ in ok], [v.score for _, v in ok], det.threshold)
    metrics["split"] = split
    metrics["failed"] = {v.path: v.status for v in preds if not v.ok}
    if out_dir is not None:
        from .reports import plot_confusion, plot_roc

        out = Path(out_dir)
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
    return metrics


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


def calibrate(
    model_path, dataset, *, real_recall: float | None = None, max_fpr: float | None = None, split: str = "val",
    layout: str | None = None, output=None, progress=None,
) -> dict:
    """Pick a threshold on a validation split and store it in the model file."""
    from .classifier import load_classifier

    det = load_classifier(model_path)
    rows = _rows_for(dataset, split, det.metadata, layout)
    real = [r.path for r in rows if r.label == 0]
    scores = []
    for i, v in enumerate(det.score_videos(real), 1):
        if v.ok:
            scores.append(v.score)
        if progress:
            progress(ProgressText("calibrate", i, len(real), f"calibrate: {i}/{len(real)} real videos"))
    t = pick_threshold(scores, real_recall=real_recall, max_fpr=max_fpr)
    new = det.with_threshold(t)
    meta = {"calibration": {"split": split, "real_recall": real_recall, "max_fpr": max_fpr, "threshold": t,
                            "n_real": len(scores), "previous_threshold": det.threshold}}
    path = new.save(output or model_path, meta)
    return {"threshold": t, "previous_threshold": det.threshold, "n_real": len(scores), "model": str(path)}

"""Pictures and text tables: training curves, ROC curve, confusion matrix, the paper's Table I."""

from __future__ import annotations

import os
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict[str, list[float]], path: str | os.PathLike) -> Path:
    """Training/validation loss and accuracy per epoch (the paper's section 4.3 figures)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_roc(fpr, tpr, auc: float | None, path: str | os.PathLike) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC (AUC = {auc:.3f})" if auc is not None else "ROC")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set_xlabel("false positive rate (real called fake)")
    ax.set_ylabel("true positive rate (fake caught)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(cm, path: str | os.PathLike) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    labels = ["real", "fake"]
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = max(sum(sum(r) for r in cm), 1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{cm[i][j]}\n{cm[i][j] / total:.1%}", ha="center", va="center",
                    color="white" if cm[i][j] > total / 3 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def table_one(metrics: dict) -> str:
    """The paper's Table I as plain text."""
    rep = metrics["report"]
    n = metrics["n"]
    lines = [f"{'':14s}{'precision':>10s}{'recall':>10s}{'f1-score':>10s}{'support':>10s}"]
    for name in ("real", "fake"):
        r = rep[name]
        lines.append(f"{name.capitalize():14s}{r['precision']:10.2f}{r['recall']:10.2f}{r['f1-score']:10.2f}{int(r['support']):10d}")
    lines.append(f"{'Accuracy':14s}{'':10s}{'':10s}{metrics['accuracy']:10.2f}{n:10d}")
    for key, name in (("macro avg", "Macro avg"), ("weighted avg", "Weighted avg")):
        r = rep[key]
        lines.append(f"{name:14s}{r['precision']:10.2f}{r['recall']:10.2f}{r['f1-score']:10.2f}{n:10d}")
    auc = metrics.get("roc_auc")
    lines.append(f"ROC-AUC: {auc:.4f}" if auc is not None else "ROC-AUC: undefined (one class only)")
    cm = metrics["confusion_matrix"]
    lines.append("Confusion matrix (rows true, columns predicted):")
    lines.append(f"{'':8s}{'real':>8s}{'fake':>8s}")
    lines.append(f"{'real':8s}{cm[0][0]:8d}{cm[0][1]:8d}")
    lines.append(f"{'fake':8s}{cm[1][0]:8d}{cm[1][1]:8d}")
    return "\n".join(lines)

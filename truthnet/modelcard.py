"""Model cards: what a model was trained on travels inside it and beside every verdict.

A model trained on 70 synthetic clips called all 73 real-world clips of a test "fake", and
nothing said so.  So :func:`truthnet.training.train` stores a card in the model's metadata
(``"card"`` in ``truthnet.json``): the dataset root and layout, videos per class and split,
whether the data is synthetic (``truthnet synth`` leaves :data:`SYNTHETIC_MARKER` in its
output), a fingerprint of the manifest, the preset, training and test metrics when known, the
TruthNet version and date.  :meth:`ModelCard.warnings` says what makes its verdicts weak; the
scan summary, ``truthnet results``, the HTML report and the TUI show them.  Models saved before
cards existed get one built from the metadata they do have.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .filecheck import file_sha256

#: file ``truthnet synth`` / :func:`truthnet.synth.make_dataset` writes at the root of its output
SYNTHETIC_MARKER = "truthnet-synthetic.json"

#: fewer training videos than this earns a warning (the paper trained on ~1,700)
MIN_TRAIN_VIDEOS = 300


@dataclass
class ModelCard:
    """What a model was trained on.  ``None`` means unknown (an old or foreign model file)."""

    trained: bool | None = None
    dataset: str | None = None
    layout: str | None = None
    counts: dict[str, dict[str, int]] | None = None  # split -> {"real": n, "fake": n}
    synthetic: bool | None = None
    synthetic_videos: int | None = None  # of all the dataset's videos, how many are synthetic
    manifest_sha256: str | None = None
    preset: str | None = None
    train_metrics: dict[str, float] | None = None  # the kept epoch's loss/accuracy/AUC (and val_*)
    test_metrics: dict[str, Any] | None = None  # split, n, accuracy, roc_auc (the demo records its own)
    truthnet_version: str | None = None
    created: str | None = None

    # -- reading and writing --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelCard:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def check(self) -> ModelCard:
        """Raise ``ValueError`` naming the first field of a wrong type (a card read from a file may
        hold anything: ``"counts": {"train": {"real": "many"}}`` is an error, not a traceback later)."""
        def fail(name: str, value: Any, want: str) -> None:
            raise ValueError(f"card field {name} must be {want}, got {value!r}")

        for name in ("trained", "synthetic"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                fail(name, v, "true, false or null")
        for name in ("dataset", "layout", "manifest_sha256", "preset", "truthnet_version", "created"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                fail(name, v, "a string or null")
        if self.synthetic_videos is not None and not _count(self.synthetic_videos):
            fail("synthetic_videos", self.synthetic_videos, "a count")
        if self.counts is not None:
            if not isinstance(self.counts, dict) or not all(
                    isinstance(c, dict) and all(_count(n) for n in c.values()) for c in self.counts.values()):
                fail("counts", self.counts, "{split: {class: count}}")
        for name in ("train_metrics", "test_metrics"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, dict):
                fail(name, v, "an object")
            for k, x in v.items():
                if k not in ("split", "selection") and x is not None and not _number(x):
                    fail(f"{name}.{k}", x, "a number")
        return self

    @classmethod
    def from_metadata(cls, meta: dict | None) -> ModelCard:
        """The card of a model's metadata; for files saved before cards, what their metadata says.
        Raises ``ValueError`` for metadata of the wrong shape (:meth:`check`)."""
        meta = meta or {}
        if not isinstance(meta, dict):
            raise ValueError(f"the metadata must be a JSON object, got {type(meta).__name__}")
        if meta.get("card") is not None and not isinstance(meta["card"], dict):
            raise ValueError(f"card must be a JSON object, got {type(meta['card']).__name__}")
        if isinstance(meta.get("card"), dict):
            card = cls.from_dict(meta["card"])
        else:
            card = cls(trained=meta.get("trained"), dataset=meta.get("dataset"), layout=meta.get("layout"),
                       counts=meta.get("split_counts"))
            hist = meta.get("history")
            if isinstance(hist, dict) and hist:
                if not all(isinstance(v, list) and all(_number(x) for x in v) for v in hist.values()):
                    raise ValueError("history must map each metric to a list of numbers")
                card.train_metrics = {k: round(float(v[-1]), 4) for k, v in hist.items() if v}
        card.truthnet_version = card.truthnet_version or meta.get("truthnet_version")
        card.created = card.created or meta.get("created")
        return card.check()

    # -- what it says -----------------------------------------------------------------------
    def videos(self, split: str | None = None) -> int | None:
        if not self.counts:
            return None
        splits = [split] if split else list(self.counts)
        return sum(int(n) for s in splits for n in (self.counts.get(s) or {}).values())

    def summary(self) -> str:
        """One line: what, on what, how well."""
        if self.trained is False:
            head = "untrained model"
        elif self.dataset is None and self.counts is None:
            head = "model with no record of its training data"
        else:
            n, train = self.videos(), self.videos("train")
            head = f"trained on {n} videos" if n is not None else "trained"
            if train is not None:
                c = self.counts.get("train", {})
                head += f" ({train} for training: {c.get('real', 0)} real, {c.get('fake', 0)} fake)"
            if self.dataset:
                head += f" from {self.dataset}" + (f" [{self.layout}]" if self.layout else "")
        parts = [head]
        if self.synthetic:
            parts.append("SYNTHETIC data")
        if self.preset:
            parts.append(f"preset {self.preset}")
        m = self.train_metrics or {}
        if "val_auc" in m or "val_accuracy" in m:
            val = [f"{k[4:]} {m[k]:.3f}" for k in ("val_accuracy", "val_auc") if k in m]
            parts.append("validation " + ", ".join(val))
        t = self.test_metrics or {}
        if t.get("roc_auc") is not None or t.get("accuracy") is not None:
            parts.append(f"test ({t.get('n', '?')} videos) " + ", ".join(
                f"{k} {t[k]:.3f}" for k in ("accuracy", "roc_auc") if t.get(k) is not None))
        stamp = " ".join(x for x in (f"TruthNet {self.truthnet_version}" if self.truthnet_version else "",
                                     (self.created or "")[:10]) if x)
        if stamp:
            parts.append(stamp)
        return "; ".join(parts)

    def warnings(self) -> list[str]:
        """Why this model's verdicts should not be taken at face value (empty: nothing known)."""
        out = []
        if self.trained is False:
            out.append("untrained model: its scores are random, not evidence")
            return out
        if self.dataset is None and self.counts is None:
            out.append("no record of what this model was trained on: its verdicts cannot be qualified")
        if self.synthetic:
            some = self.synthetic_videos
            total = self.videos()
            share = f"{some} of {total} videos" if some is not None and total and some < total else "all of it"
            out.append(f"trained on synthetic clips (truthnet synth; {share}): its verdicts on real footage mean "
                       "little (a demo model)")
        train = self.videos("train")
        if train is not None and train < MIN_TRAIN_VIDEOS:
            out.append(f"trained on only {train} videos (fewer than {MIN_TRAIN_VIDEOS}): expect unreliable verdicts")
        return out

    def stored(self) -> dict[str, Any]:
        """What a scan keeps of the card in the results store (and its ``--json`` summary)."""
        return {"summary": self.summary(), "warnings": self.warnings(), "card": self.to_dict()}


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# --- building a card while training ------------------------------------------------------


def synthetic_count(paths: Iterable[str | os.PathLike]) -> int:
    """How many of ``paths`` lie under a folder that holds :data:`SYNTHETIC_MARKER`."""
    marked: dict[Path, bool] = {}

    def under_marker(folder: Path) -> bool:
        if folder not in marked:
            here = (folder / SYNTHETIC_MARKER).is_file()
            marked[folder] = here or (folder.parent != folder and under_marker(folder.parent))
        return marked[folder]

    return sum(under_marker(Path(os.path.abspath(p)).parent) for p in paths)


def preset_name(config) -> str:
    """The preset ``config`` equals, else ``custom (<closest preset> with <changed settings>)``.
    Backbone weights given as a file count as ``imagenet`` when the file holds the backbone's
    known ImageNet weights (:data:`truthnet.backbones.KNOWN_WEIGHTS`), whatever its name."""
    from .backbones import known_weights
    from .config import PRESETS

    mine = config.to_dict()
    weights = mine.get("backbone_weights")
    if weights not in (None, "imagenet") and known_weights(mine.get("backbone"), weights) == "imagenet":
        mine["backbone_weights"] = "imagenet"
    best, diff = None, None
    for name, preset in sorted(PRESETS.items()):
        changed = [k for k, v in preset.to_dict().items() if mine.get(k) != v]
        if not changed:
            return name
        if diff is None or len(changed) < len(diff):
            best, diff = name, changed
    return f"custom ({best} with {', '.join(diff)} changed)" if best else "custom"


def build(*, dataset: str, layout: str, counts: dict, paths: list[str], manifest: str | os.PathLike, config,
          history: dict[str, list[float]], best_epoch: int | None) -> dict[str, Any]:
    """The card of a training run, as stored in the model's metadata (``"card"``)."""
    from datetime import datetime, timezone

    from . import __version__

    synthetic = synthetic_count(paths)
    epoch = best_epoch if best_epoch is not None else max((len(v) for v in history.values()), default=0) - 1
    metrics = {k: round(float(v[epoch]), 4) for k, v in history.items() if 0 <= epoch < len(v)}
    if metrics:
        metrics["epoch"] = epoch + 1
    card = ModelCard(
        trained=True, dataset=os.path.abspath(dataset), layout=layout, counts=counts, synthetic=synthetic > 0,
        synthetic_videos=synthetic, manifest_sha256=file_sha256(manifest), preset=preset_name(config),
        train_metrics=metrics or None, truthnet_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return card.to_dict()


def with_test_metrics(card: dict, metrics: dict) -> dict:
    """``card`` with the headline numbers of an evaluation (:func:`truthnet.evaluation.evaluate`)."""
    keep = {k: metrics.get(k) for k in ("split", "n", "accuracy", "roc_auc")}
    return {**card, "test_metrics": json.loads(json.dumps(keep, default=float))}

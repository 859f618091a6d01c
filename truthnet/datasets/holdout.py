"""Which videos an evaluation or a calibration may use, and saying so.

Honest numbers need three things stated and enforced: the split and its size, whether the
dataset is the model's own, and that no video the model was trained on is scored again.

- On the model's own dataset (its metadata's ``dataset``, or a training ``manifest.csv``) the
  split is re-derived with the training seed and fractions; evaluation defaults to ``test`` and
  calibration to ``val``.  On any other dataset both default to ``all`` of it (a random 10 % of
  someone else's dataset is no held-out set).
- Training videos are found by content (:data:`~truthnet.features.FP_PREFIX` digits of
  :func:`~truthnet.features.file_fingerprint`, stored by training as ``training_fingerprints``),
  so a copy in another folder is caught too.  For older models without them, the re-derived
  split of the own dataset tells which rows were trained on; elsewhere the overlap is unknown and
  the report says so.  Overlapping videos are left out unless ``include_training`` is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import ManifestRow, split_rows
from ..errors import DatasetError, VideoError
from ..features import FP_PREFIX, file_fingerprint
from ..paths import norm

#: the training splits whose videos an evaluation / a calibration must not score again
#: (calibrating on the validation split is the point of having one)
USED_BY = {"evaluate": ("train", "val"), "calibrate": ("train",)}
DEFAULT_SPLIT = {"evaluate": "test", "calibrate": "val"}


@dataclass
class Selection:
    rows: list[ManifestRow]
    info: dict = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the CLI and the TUI: split, size, dataset, overlap."""
        i = self.info
        own = "the model's own dataset" if i["own_dataset"] else "not the model's training dataset"
        line = f"{i['split']} split: {i['videos']} videos of {i['dataset']} ({own})"
        ov = i["training_overlap"]
        if ov["checked"] == "unavailable":
            return line + "; overlap with the training videos unknown (the model records none)"
        if ov["found"]:
            verb = "left out" if ov["excluded"] else "INCLUDED (--include-training-videos)"
            return line + f"; {ov['found']} training video(s) {verb}"
        return line + "; none of them was a training video"


def is_own_dataset(dataset, meta: dict) -> bool:
    """Whether ``dataset`` is the one the model was trained on (or training's manifest.csv)."""
    trained_on = meta.get("dataset")
    if trained_on and norm(dataset) == norm(trained_on):
        return True
    p = os.fspath(dataset)
    return p.endswith(".csv") and os.path.basename(p) == "manifest.csv" and bool(meta.get("train_config"))


def select(dataset, meta: dict, *, purpose: str = "evaluate", split: str | None = None,
           layout: str | None = None, include_training: bool = False) -> Selection:
    """The rows to score for ``purpose`` (``evaluate`` or ``calibrate``) and what to say about them."""
    from ..training import load_rows

    own = is_own_dataset(dataset, meta)
    split = split or (DEFAULT_SPLIT[purpose] if own else "all")
    _, rows = load_rows(dataset, layout)
    tc = meta.get("train_config") or {}
    # the same seed and fractions as training: the own dataset gives back the same held-out split
    rows = split_rows(rows, seed=tc.get("seed", 0), val_fraction=tc.get("val_fraction", 0.1),
                      test_fraction=tc.get("test_fraction", 0.2), protocol=tc.get("split_protocol", "group"))
    if split != "all":
        rows = [r for r in rows if r.split == split]
    if not rows:
        raise DatasetError(f"{dataset}: no videos in the {split!r} split")
    used = _training_rows(rows, meta, own, USED_BY[purpose])
    overlap = {"checked": used[0], "found": None if used[1] is None else len(used[1]),
               "excluded": bool(used[1]) and not include_training}
    if used[1] and not include_training:
        drop = set(used[1])
        rows = [r for r in rows if r.path not in drop]
        if not rows:
            raise DatasetError(f"{dataset}: every video of the {split!r} split was used to train this model",
                               hint="evaluate on held-out videos, or pass --include-training-videos to score them anyway")
    info = {"split": split, "videos": len(rows), "dataset": norm(dataset), "own_dataset": own,
            "training_overlap": overlap}
    return Selection(rows, info)


def _training_rows(rows: list[ManifestRow], meta: dict, own: bool, splits: tuple[str, ...]):
    """``(how, paths)``: the rows the model was trained on, by fingerprint when the model
    records them, else by the re-derived split of its own dataset; ``paths`` None when unknown."""
    stored = meta.get("training_fingerprints")
    if stored:
        known = {fp for s in splits for fp in stored.get(s, [])}
        hits = []
        for r in rows:
            try:
                if file_fingerprint(r.path)[:FP_PREFIX] in known:
                    hits.append(r.path)
            except (OSError, VideoError):  # a missing, unreadable or special file (a pipe):
                pass  # it fails when scored, with its own status
        return "fingerprints", hits
    if own:
        return "split", [r.path for r in rows if r.split in splits]
    return "unavailable", None

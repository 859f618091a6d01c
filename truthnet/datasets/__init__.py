"""Datasets: which layout a folder has, its manifest (path, label, group, split, source), and
the train/val/test split.

The layouts themselves (Celeb-DF, FaceForensics++, DFDC, real/ + fake/ folders) and the manifest
row are in :mod:`.layouts`; which videos an evaluation may use is :mod:`.holdout`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .layouts import ManifestRow

REAL, FAKE = 0, 1


def detect_layout(root: str | os.PathLike) -> str:
    from .. import plugins

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist or is not a folder")
    # the specific layouts first: a Celeb-DF tree also contains no real/ + fake/ pair, but a
    # folder layout could contain anything
    order = sorted(plugins.list_dataset_layouts(), key=lambda n: n == "folder")
    for name in order:
        if plugins.create_dataset_layout(name).detect(root):
            return name
    lines = [f"  {n}: {getattr(plugins.create_dataset_layout(n), 'expects', '')}" for n in order]
    raise DatasetError(f"{root}: matches no dataset layout. Each layout expects:\n" + "\n".join(lines))


def read_dataset(root: str | os.PathLike, layout: str | None = None) -> tuple[str, list[ManifestRow]]:
    from .. import plugins

    name = layout or detect_layout(root)
    rows = plugins.create_dataset_layout(name).read(Path(root))
    if not rows:
        raise DatasetError(f"{root}: the {name} layout found no videos")
    labels = Counter(r.label for r in rows)
    if len(labels) < 2:
        only = "real" if REAL in labels else "fake"
        raise DatasetError(f"{root}: only {only} videos found ({len(rows)}); training needs both classes")
    return name, rows


def split_rows(
    rows: list[ManifestRow],
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    protocol: str = "group",
) -> list[ManifestRow]:
    """Assign ``split`` to rows that have none.

    ``protocol="group"`` (default): stratified by label and seeded, whole groups at a time, so
    a fake and the real video it came from stay together.  ``protocol="paper"``: the paper's
    random split of single videos (stratified), ignoring groups.  Rows with an official split
    keep it; when only a test split is official, validation comes out of the training rows.
    """
    if protocol not in ("group", "paper"):
        raise DatasetError(f"unknown split protocol {protocol!r}; known: group, paper")
    rng = np.random.default_rng(seed)
    fixed = [r for r in rows if r.split]
    todo = [r for r in rows if not r.split]
    out = list(fixed)
    has_test = any(r.split == "test" for r in fixed)
    has_val = any(r.split == "val" for r in fixed)
    # rows an official split put in "train" may still give up a validation share
    if fixed and not has_val:
        train = [r for r in out if r.split == "train"]
        out = [r for r in out if r.split != "train"]
        todo = todo + [replace(r, split="") for r in train]
    fractions = {"val": 0.0 if has_val else val_fraction, "test": 0.0 if has_test else test_fraction}
    if not todo:
        return out
    units: dict[str, list[ManifestRow]] = defaultdict(list)
    for i, r in enumerate(todo):
        units[r.group if protocol == "group" else f"#{i}"].append(r)
    keys = sorted(units)
    rng.shuffle(keys)
    totals = Counter(r.label for r in todo)
    target = {s: {lab: totals[lab] * f for lab in totals} for s, f in fractions.items()}
    have = {s: Counter() for s in fractions}
    for k in keys:
        unit = units[k]
        counts = Counter(r.label for r in unit)
        # put the group where it fills the largest remaining deficit, if it fits
        best, best_gain = "train", 0.0
        for s in ("test", "val"):
            gain = sum(min(counts[lab], target[s][lab] - have[s][lab]) for lab in counts)
            if gain > best_gain + 1e-9 and all(have[s][lab] + counts[lab] <= target[s][lab] + 0.5 for lab in counts):
                best, best_gain = s, gain
        if best != "train":
            have[best].update(counts)
        out.extend(replace(r, split=best) for r in unit)
    return out


def write_manifest(rows: list[ManifestRow], path: str | os.PathLike, extra: dict[str, dict] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["path", "label", "group", "split", "source"]
    extra_cols = sorted({k for v in (extra or {}).values() for k in v})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields + extra_cols)
        w.writeheader()
        for r in rows:
            w.writerow({**asdict(r), **(extra or {}).get(r.path, {})})
    return path


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    with open(path, newline="") as fh:
        return [
            ManifestRow(r["path"], int(r["label"]), r["group"], r.get("split", ""), r.get("source", ""))
            for r in csv.DictReader(fh)
        ]

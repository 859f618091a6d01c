"""The built-in dataset layouts and the manifest row they produce.

Labels are ours everywhere: 0 = real, 1 = fake.  (Celeb-DF's test list uses the opposite.)
``group`` ties a fake to the real video or identity it was made from, so that splits never put
them on opposite sides.  This module needs neither the plugin registry nor the rest of
:mod:`truthnet.datasets` (the registry loads it as a built-in plugin).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DatasetError
from ..video import is_video_path

REAL, FAKE = 0, 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestRow:
    path: str
    label: int  # 0 real, 1 fake
    group: str
    split: str = ""  # "train" / "val" / "test", or "" when the layout has no official split
    source: str = ""  # e.g. "Celeb-real", "Deepfakes/c23", "folder"


def _videos(root: Path):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for f in sorted(filenames):
            if is_video_path(f):
                yield Path(dirpath) / f


# --- layouts -------------------------------------------------------------------------------


class FolderLayout:
    """``real/`` and ``fake/`` folders at any depth.

    The nearest ancestor folder named ``real`` or ``fake`` (any case) gives the label; a
    ``train``/``val``/``test`` ancestor gives the split.  The group is the file name up to the
    first ``__`` (``fake/id03__blend.mp4`` belongs with ``real/id03.mp4``), else the stem.
    """

    name = "folder"
    expects = "folders named real/ and fake/ (any depth) holding the videos"

    def detect(self, root: Path) -> bool:
        names = {p.name.lower() for p in Path(root).rglob("*") if p.is_dir()}
        return "real" in names and "fake" in names

    def read(self, root: Path) -> list[ManifestRow]:
        root = Path(root)
        rows = []
        for p in _videos(root):
            parts = [x.lower() for x in p.relative_to(root).parts[:-1]]
            label = next((REAL if x == "real" else FAKE for x in reversed(parts) if x in ("real", "fake")), None)
            if label is None:
                continue
            split = next((x for x in reversed(parts) if x in SPLITS), "")
            group = p.stem.split("__")[0]
            rows.append(ManifestRow(str(p), label, group, split, "folder"))
        return rows


class CelebDFLayout:
    """Celeb-DF v1/v2: ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/`` and
    ``List_of_testing_videos.txt`` (the official test split; it writes 1 for *real*)."""

    name = "celebdf"
    expects = "Celeb-real/, YouTube-real/, Celeb-synthesis/ and List_of_testing_videos.txt"

    def detect(self, root: Path) -> bool:
        root = Path(root)
        return (root / "Celeb-synthesis").is_dir() and ((root / "Celeb-real").is_dir() or (root / "YouTube-real").is_dir())

    def read(self, root: Path) -> list[ManifestRow]:
        root = Path(root)
        test: dict[str, int] = {}
        listing = root / "List_of_testing_videos.txt"
        if listing.exists():
            for n, line in enumerate(listing.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    flag, rel = line.split(maxsplit=1)
                    # Celeb-DF: 1 = real, 0 = fake -- the opposite of TruthNet's labels
                    test[rel.strip()] = REAL if int(flag) == 1 else FAKE
                except ValueError:
                    raise DatasetError(f"{listing}:{n}: expected '<0|1> <relative path>', got {line!r}") from None
        rows = []
        for folder, label in (("Celeb-real", REAL), ("YouTube-real", REAL), ("Celeb-synthesis", FAKE)):
            d = root / folder
            if not d.is_dir():
                continue
            for p in _videos(d):
                rel = p.relative_to(root).as_posix()
                stem = p.stem
                # id0_0000 (real), id0_id16_0000 (fake of id0's video 0000 with id16's face),
                # 00000 (YouTube): group by the identity in the video
                group = stem.split("_")[0] if folder != "YouTube-real" else f"yt{stem}"
                split = ""
                if rel in test:
                    if test[rel] != label:
                        raise DatasetError(
                            f"{listing}: lists {rel} as {'real' if test[rel] == REAL else 'fake'}, "
                            f"but it is in {folder}/"
                        )
                    split = "test"
                elif test:
                    split = "train"
                rows.append(ManifestRow(str(p), label, group, split, folder))
        return rows


class FaceForensicsLayout:
    """FaceForensics++: ``original_sequences/<source>/<compression>/videos/NNN.mp4`` and
    ``manipulated_sequences/<method>/<compression>/videos/NNN_MMM.mp4``; the official
    ``train.json`` / ``val.json`` / ``test.json`` pair lists when present (root or ``splits/``)."""

    name = "faceforensics"
    expects = "original_sequences/ and manipulated_sequences/<method>/<compression>/videos/"

    def detect(self, root: Path) -> bool:
        root = Path(root)
        return (root / "original_sequences").is_dir() and (root / "manipulated_sequences").is_dir()

    def read(self, root: Path) -> list[ManifestRow]:

        root = Path(root)
        split_of: dict[str, str] = {}
        for name in SPLITS:
            for cand in (root / f"{name}.json", root / "splits" / f"{name}.json"):
                if cand.exists():
                    try:
                        pairs = json.loads(cand.read_text())
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{cand}: not valid JSON: {exc}") from None
                    for pair in pairs:
                        for vid in pair:
                            split_of[str(vid)] = name
                    break
        rows = []
        parent: dict[str, str] = {}  # union-find over video ids: a fake joins both its sources

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for kind, label in (("original_sequences", REAL), ("manipulated_sequences", FAKE)):
            for p in _videos(root / kind):
                source = "/".join(p.relative_to(root / kind).parts[:2])
                ids = p.stem.split("_")
                for other in ids[1:]:
                    parent[find(other)] = find(ids[0])
                split = split_of.get(ids[0], "")
                rows.append(ManifestRow(str(p), label, ids[0], split, source))
        return [replace(r, group=find(r.group)) for r in rows]


class DFDCLayout:
    """DFDC: folders with a ``metadata.json`` mapping file name -> ``{"label": "REAL"|"FAKE",
    "original": ..., "split": ...}``."""

    name = "dfdc"
    expects = "folders with metadata.json files ({'x.mp4': {'label': 'FAKE', 'original': 'y.mp4'}})"

    def detect(self, root: Path) -> bool:
        return any(Path(root).rglob("metadata.json"))

    def read(self, root: Path) -> list[ManifestRow]:

        rows = []
        for meta in sorted(Path(root).rglob("metadata.json")):
            try:
                data = json.loads(meta.read_text())
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{meta}: not valid JSON: {exc}") from None
            for name, rec in sorted(data.items()):
                p = meta.parent / name
                label = str(rec.get("label", "")).upper()
                if label not in ("REAL", "FAKE"):
                    raise DatasetError(f"{meta}: {name}: label must be REAL or FAKE, got {rec.get('label')!r}")
                if not p.exists():
                    continue
                original = rec.get("original") or name
                split = rec.get("split", "")
                split = {"validation": "val"}.get(split, split) if split in (*SPLITS, "validation") else ""
                rows.append(ManifestRow(str(p), REAL if label == "REAL" else FAKE, Path(original).stem, split, meta.parent.name))
        return rows


# --- detection, reading, splitting ---------------------------------------------------------

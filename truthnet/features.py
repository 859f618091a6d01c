"""On-disk caches of face crops and backbone embeddings, keyed by file content and config.

With a frozen backbone and no augmentation a frame's embedding is the same every epoch, so it
is computed once; training the head on cached embeddings is the same maths as the paper's
end-to-end fit, many times faster.  Crops are cached too, so a second run (another backbone,
more epochs) skips decoding and face detection.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .config import PipelineConfig
from .settings import default_cache_dir

#: the settings that decide the crops (everything before the backbone)
CROP_KEYS = (
    "sampler",
    "sampler_options",
    "num_frames",
    "min_frames",
    "detector",
    "detector_options",
    "face_selection",
    "face_margin",
    "square_crop",
    "no_face_policy",
    "min_face_frames",
    "image_size",
)


#: hex digits of :func:`file_fingerprint` a model's metadata keeps per training video (64 bits:
#: no accidental collision in any real dataset, half the size in a model file)
FP_PREFIX = 16


def file_fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """A content fingerprint: size plus the first and last MiB (BLAKE2b).  Cheap on big files,
    and changes when a file is replaced, re-encoded or truncated."""
    from .filecheck import open_regular

    with open_regular(path) as fh:  # never a pipe or a device: they would block or never end
        size = os.fstat(fh.fileno()).st_size
        h = hashlib.blake2b(digest_size=16)
        h.update(str(size).encode())
        h.update(fh.read(chunk))
        if size > 2 * chunk:
            fh.seek(-chunk, os.SEEK_END)
            h.update(fh.read(chunk))
    return h.hexdigest()


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def crop_key(cfg: PipelineConfig) -> str:
    d = cfg.to_dict()
    return _hash({k: d[k] for k in CROP_KEYS})


def embedding_key(cfg: PipelineConfig, weights_tag: str = "") -> str:
    d = cfg.to_dict()
    return _hash(
        {
            "crops": crop_key(cfg),
            "backbone": d["backbone"],
            "backbone_options": d["backbone_options"],
            "weights": d["backbone_weights"] if not weights_tag else weights_tag,
            "normalization": d["normalization"],
        }
    )


class FeatureCache:
    """``root/crops/<cfgkey>/<fingerprint>.npz`` and ``root/emb/<key>/<fingerprint>.npy``.

    A failed video is cached as a ``.json`` with its status and reason, so re-runs skip it
    quickly and report the same reason.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def _crop_path(self, cfg: PipelineConfig, fp: str, ext: str) -> Path:
        return self.root / "crops" / crop_key(cfg) / f"{fp}{ext}"

    def get_crops(self, cfg: PipelineConfig, fp: str):
        """``(crops, meta)``, ``(None, failure_meta)`` or ``None`` when not cached."""
        p = self._crop_path(cfg, fp, ".npz")
        if p.exists():
            with np.load(p, allow_pickle=False) as z:
                crops = z["crops"]
                meta = json.loads(str(z["meta"]))
            self.hits += 1
            return crops, meta
        f = self._crop_path(cfg, fp, ".json")
        if f.exists():
            self.hits += 1
            return None, json.loads(f.read_text())
        self.misses += 1
        return None

    def put_crops(self, cfg: PipelineConfig, fp: str, crops: np.ndarray | None, meta: dict) -> None:
        ext = ".npz" if crops is not None else ".json"
        p = self._crop_path(cfg, fp, ext)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        if crops is not None:
            with open(tmp, "wb") as fh:
                np.savez(fh, crops=crops, meta=np.array(json.dumps(meta)))
        else:
            tmp.write_text(json.dumps(meta))
        os.replace(tmp, p)  # atomic: a crash never leaves a half-written entry

    def emb_path(self, key: str, fp: str) -> Path:
        return self.root / "emb" / key / f"{fp}.npy"

    def get_embedding(self, key: str, fp: str) -> np.ndarray | None:
        p = self.emb_path(key, fp)
        if p.exists():
            self.hits += 1
            return np.load(p)
        self.misses += 1
        return None

    def put_embedding(self, key: str, fp: str, emb: np.ndarray) -> None:
        p = self.emb_path(key, fp)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, p)

"""Shared fixtures: small generated videos and bad files (nothing binary is committed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# plugins installed in the developer's environment must not change what the suite sees
os.environ.setdefault("TRUTHNET_LOAD_PLUGINS", "")
# most tests score with freshly built (untrained) models, which the engine refuses by default;
# tests of that refusal unset this (subprocesses inherit it through os.environ)
os.environ.setdefault("TRUTHNET_ALLOW_UNTRAINED", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Generated videos: faces moving, short, no face; and one of each kind of bad file."""
    from truthnet.synth import make_face_clip, make_noface_clip

    d = tmp_path_factory.mktemp("media")
    out: dict[str, Path] = {}
    out["face"], out["face_rects"] = make_face_clip(d / "face.mp4", n_frames=30, seed=1)
    out["face_avi"], _ = make_face_clip(d / "face.avi", n_frames=12, seed=2)
    out["short"], _ = make_face_clip(d / "short.mp4", n_frames=4, seed=3)
    out["noface"] = make_noface_clip(d / "noface.mp4", n_frames=12, seed=4)
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    import numpy as np

    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    out["random"] = d / "random.mp4"
    (d / "notes.mp4").write_text("this is a text file, not a video\n" * 50)
    out["text"] = d / "notes.mp4"
    data = out["face"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    out["truncated"] = d / "truncated.mp4"
    return out


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """The realistic corpus at small sizes (truthnet.corpus): H.264 with long GOPs and B-frames,
    portrait, 60 fps, VFR, rotated, with audio; by name (``480p25-long`` ...)."""
    from truthnet.corpus import corpus

    return {c.spec.name: c for c in corpus(tmp_path_factory.mktemp("corpus"), small=True)}

"""A job's progress, ETA and environment as people read them (``jobs list`` and the TUI)."""

from __future__ import annotations

import time


def progress_text(j: dict) -> str:
    """``epoch 3/12 25%`` / ``41/120 60%``: the job's progress as people read it."""
    if j["state"] == "queued":
        return ""
    if j.get("kind") == "watch":  # runs until stopped: no share of a whole to show
        return "watching" if j["state"] == "running" else ""
    if j.get("total"):
        stage = f"{j['stage']} " if j.get("stage") else ""
        return f"{stage}{j['done']}/{j['total']} {j['progress']:.0%}"
    return f"{j['progress']:.0%}" if j["state"] == "running" else ""


def eta_text(j: dict) -> str:
    """Time left in the job's *current stage*, named (a training job's faces, embeddings and
    epochs are stages of their own: "43 s" at 22 % of the faces said nothing about the epochs)."""
    if j["state"] != "running" or j.get("eta") is None:
        return ""
    left = max(0.0, j["eta"] - (time.time() - (j.get("updated") or time.time())))
    when = f"{left / 60:.0f} min" if left >= 120 else f"{left:.0f} s"
    return f"{when} ({j['stage']})" if j.get("stage") else when


def env_text(j: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in (j.get("env") or {}).items())

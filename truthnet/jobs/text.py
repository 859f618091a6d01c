"""A job's progress, ETA and environment as people read them (``jobs list`` and the TUI)."""

from __future__ import annotations

import time


def progress_text(j: dict) -> str:
    """``epoch 3/12 25%`` / ``41/120 60%``: the job's progress as people read it."""
    if j["state"] == "queued":
        return ""
    if j.get("total"):
        stage = f"{j['stage']} " if j.get("stage") else ""
        return f"{stage}{j['done']}/{j['total']} {j['progress']:.0%}"
    return f"{j['progress']:.0%}" if j["state"] == "running" else ""


def eta_text(j: dict) -> str:
    if j["state"] != "running" or j.get("eta") is None:
        return ""
    left = max(0.0, j["eta"] - (time.time() - (j.get("updated") or time.time())))
    return f"{left / 60:.0f} min" if left >= 120 else f"{left:.0f} s"


def env_text(j: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in (j.get("env") or {}).items())

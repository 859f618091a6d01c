"""User settings (the default model), in the user config folder or ``$TRUTHNET_MODEL``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def settings_path() -> Path:
    env = os.environ.get("TRUTHNET_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("truthnet")) / "settings.json"


def load_settings() -> dict:
    p = settings_path()
    try:
        return json.loads(p.read_text()) if p.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def default_model() -> str | None:
    """``$TRUTHNET_MODEL``, else the model set with ``truthnet default-model PATH``."""
    return os.environ.get("TRUTHNET_MODEL") or load_settings().get("default_model")


def set_default_model(path: str | None) -> Path:
    s = load_settings()
    if path is None:
        s.pop("default_model", None)
    else:
        s["default_model"] = str(Path(path).resolve())
    p = settings_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(s, indent=2))
    return p

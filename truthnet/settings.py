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


def default_cache_dir() -> Path:
    """Where caches live (crops, embeddings, the GPU list): ``$TRUTHNET_CACHE`` or the user's
    cache folder."""
    env = os.environ.get("TRUTHNET_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("truthnet"))


def load_settings() -> dict:
    """The saved settings; a damaged file is an error naming it, never silently dropped (and
    then overwritten by the next ``set_default_model``)."""
    from .errors import ConfigError

    p = settings_path()
    if not p.exists():
        return {}
    way_out = (f"fix or delete {p} (then `truthnet default-model PATH` writes a new one); "
               "$TRUTHNET_MODEL or --model work meanwhile")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the TruthNet settings file: {exc}", hint=way_out) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the TruthNet settings file holds {type(data).__name__}, not an object", hint=way_out)
    return data


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
    tmp = p.with_name(p.name + ".tmp")  # a crash mid-write never leaves a half-written file
    tmp.write_text(json.dumps(s, indent=2), encoding="utf-8")
    os.replace(tmp, p)
    return p

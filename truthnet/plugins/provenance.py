"""Which plugins a pipeline needs, where they come from, and where they can run.

A saved model names the plugins of its pipeline (distribution and version) so that loading it
where one is missing says which package to install.  Plugins registered at run time exist in
one process only, so the scan's decode workers cannot use them: :func:`check_worker_safe`
refuses them up front instead of failing once per file.
"""

from __future__ import annotations

import logging
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelError, UnknownNameError
from .options import PARTS

if TYPE_CHECKING:
    from ..config import PipelineConfig

log = logging.getLogger(__name__)

PACKAGE_HINT = (
    "package it: name its module under [project.entry-points.truthnet] in a pyproject.toml and "
    "pip install it (see docs/plugins.md), or score in this process with Classifier.score_videos(isolation='thread')"
)


def pipeline_plugins(config: PipelineConfig) -> list[dict[str, Any]]:
    """The sampler, face detector and backbone of ``config`` with the package providing each
    (stored in every saved model's metadata)."""
    from . import get_entry

    out = []
    for part, kind in PARTS.items():
        e = get_entry(kind, getattr(config, part))
        out.append(
            {"part": part, "kind": kind, "name": e.name, "source": e.source, "distribution": e.distribution,
             "version": e.version, "runtime": e.runtime}
        )
    return out


def _installed_version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def require_pipeline_plugins(config: PipelineConfig, recorded: list[dict] | None = None, where: str = "model") -> None:
    """Raise :class:`ModelError` saying what to install when a part of ``config`` is provided by
    no loaded plugin; ``recorded`` is the model's ``plugins`` metadata (what provided each part
    when it was saved)."""
    from . import get_entry, plugin_load_errors

    by_part = {r.get("part"): r for r in recorded or [] if isinstance(r, dict)}
    for part, kind in PARTS.items():
        name = getattr(config, part)
        rec = by_part.get(part) if by_part.get(part, {}).get("name") == name else None
        try:
            entry = get_entry(kind, name)
        except UnknownNameError as exc:
            raise _missing(where, kind, name, rec, exc, plugin_load_errors()) from None
        if rec and rec.get("distribution") == entry.distribution and rec.get("version") != entry.version:
            log.warning(
                "%s: saved with %s %s, loading with %s", where, rec.get("distribution"), rec.get("version"), entry.version
            )


def _missing(where: str, kind: str, name: str, rec: dict | None, exc: UnknownNameError, errors: dict) -> ModelError:
    what = f"{where}: this model needs the {kind.replace('_', ' ')} {name!r}"
    dist, version = (rec or {}).get("distribution"), (rec or {}).get("version")
    if rec and rec.get("runtime"):
        return ModelError(
            f"{what}, which was registered at run time ({rec.get('source')}) when the model was saved",
            hint="register it again with truthnet.plugins.register_plugin before loading, or " + PACKAGE_HINT,
        )
    if dist and dist != "truthnet":
        installed = _installed_version(dist)
        if installed is None:
            return ModelError(f"{what} from the package {dist} {version}, which is not installed",
                              hint=f"pip install {dist}")
        broken = "; ".join(f"{k}: {v}" for k, v in errors.items())
        return ModelError(
            f"{what} from {dist}, which is installed ({installed}) but its plugin was not loaded"
            + (f" (failed to load: {broken})" if broken else ""),
            hint="check TRUTHNET_LOAD_PLUGINS / TRUTHNET_BLOCK_PLUGINS and `truthnet plugins`",
        )
    if dist == "truthnet":
        return ModelError(f"{what}, built into truthnet {version} but not into this version", hint=exc.message)
    return ModelError(f"{what}, which no installed plugin provides", hint=exc.message)


def check_worker_safe(config: PipelineConfig) -> None:
    """Raise :class:`ConfigError` when a part the scan's decode workers look up (sampler, face
    detector, and the backbone's preprocessing when ``normalization="backbone"``) was
    registered at run time: the workers are fresh processes that load only installed plugins."""
    from . import get_entry

    parts = ["sampler", "detector"] + (["backbone"] if config.normalization == "backbone" else [])
    for part in parts:
        e = get_entry(PARTS[part], getattr(config, part))
        if e.runtime:
            raise ConfigError(
                f"the {e.kind.replace('_', ' ')} {e.name!r} was registered at run time ({e.source}) and cannot "
                "reach the scan's decode worker processes",
                hint=PACKAGE_HINT,
            )

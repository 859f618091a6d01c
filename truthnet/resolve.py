"""Which model a command uses when none is named, and the configuration it scores with
(shared by the CLI, the TUI and jobs)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import ModelError

if TYPE_CHECKING:
    from .config import PipelineConfig

NO_MODEL_HELP = (
    "no model given and no default model configured. Get one with `truthnet demo` (a small model "
    "trained on synthetic data, in minutes) or `truthnet train DATASET`, then pass --model PATH or "
    "set it once with `truthnet default-model PATH` (or $TRUTHNET_MODEL)."
)


def resolve_model(model: str | os.PathLike | None) -> str:
    """``model`` if given, else the configured default model; a :class:`ModelError` that says how
    to get one when there is none."""
    from .settings import default_model

    chosen = model or default_model()
    if not chosen:
        raise ModelError(NO_MODEL_HELP)
    return os.fspath(chosen)


def inference_config(
    model: str | os.PathLike,
    *,
    preset: str | None = None,
    sampler: str | None = None,
    detector: str | None = None,
    options: Iterable[str] | None = None,
) -> PipelineConfig | None:
    """The configuration to score ``model`` with: ``preset`` (for a bare model file) or the
    model's own, with ``sampler``/``detector`` and their options changed.  ``None`` when nothing
    is changed and no preset is given (the model's own configuration is used as it is)."""
    from .config import PipelineConfig
    from .plugins.options import configure_parts, parse_options

    opts = parse_options(options)
    base = PipelineConfig.preset(preset) if preset else None
    if not (sampler or detector or opts):
        return base
    if base is None:
        from .model import read_metadata

        meta, _ = read_metadata(model)
        if meta is None or "pipeline" not in meta:
            return None  # load_model says the file needs --preset
        base = PipelineConfig.from_dict(meta["pipeline"])
    return configure_parts(base, sampler=sampler, detector=detector, options=opts, fixed_backbone=True)

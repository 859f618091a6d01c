"""Which model a command uses when none is named (shared by the CLI, the TUI and jobs)."""

from __future__ import annotations

import os

from .errors import ModelError

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

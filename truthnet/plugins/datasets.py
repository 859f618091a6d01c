"""Built-in dataset layouts (filled in by the training work)."""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def truthnet_register_dataset_layouts(register):
    return None

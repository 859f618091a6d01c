"""Plugin options: ``--option part.key=value`` parsing, and validation against the factory.

A plugin's options are the keyword arguments of its factory.  They are read from the factory's
signature, so a typo or a value of the wrong kind is an error that names the valid options,
before any video is touched, instead of a ``TypeError`` deep inside a run.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import argparse

    from ..config import PipelineConfig

#: pipeline part (the ``PipelineConfig`` field) -> registry kind
PARTS: dict[str, str] = {"sampler": "sampler", "detector": "face_detector", "backbone": "backbone"}

_OPTION_HELP = (
    "a plugin option, e.g. detector.min_face_size=40 (parts: sampler, detector, backbone; "
    "repeatable; values are read as JSON, else as text)"
)


def _value(text: str) -> Any:
    """``40`` -> 40, ``0.5`` -> 0.5, ``true`` -> True, ``[16, 32]`` -> [16, 32], else the text."""
    python_words = {"True": True, "False": False, "None": None}
    if text in python_words:
        return python_words[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_options(items: Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """``["detector.min_face_size=40", ...]`` -> ``{"detector": {"min_face_size": 40}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        part, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(
                f"--option expects PART.KEY=VALUE (parts: {', '.join(PARTS)}), got {item!r}",
                hint="for example --option detector.min_face_size=40",
            )
        if part not in PARTS:
            raise ConfigError(f"--option {item!r}: unknown part {part!r}; parts: {', '.join(PARTS)}")
        out.setdefault(part, {})[name.strip()] = _value(raw.strip())
    return out


def factory_options(kind: str, name: str) -> dict[str, inspect.Parameter] | None:
    """The options ``kind`` ``name`` accepts: its factory's keyword parameters, or ``None`` when
    it takes any keyword (``**options``) or its signature cannot be read."""
    from . import get_entry

    try:
        sig = inspect.signature(get_entry(kind, name).factory)
    except (TypeError, ValueError):
        return None
    params = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            params[p.name] = p
    return params


def _describe(params: dict[str, inspect.Parameter]) -> str:
    if not params:
        return "it takes no options"
    shown = [n if p.default is p.empty else f"{n} (default {p.default!r})" for n, p in params.items()]
    return "valid options: " + ", ".join(shown)


def validate_options(kind: str, name: str, options: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for an option ``kind`` ``name`` does not take, a required one
    left out, or text where the default is a number or a flag."""
    params = factory_options(kind, name)
    if params is None:
        return
    what = f"{kind.replace('_', ' ')} {name!r}"
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"{what} has no option {', '.join(map(repr, unknown))}; {_describe(params)}")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in options]
    if missing:
        raise ConfigError(f"{what} needs the option(s) {', '.join(missing)}; {_describe(params)}")
    for key, value in options.items():
        default = params[key].default
        if isinstance(default, (bool, int, float)) and isinstance(value, str):
            kind_of = "true or false" if isinstance(default, bool) else "a number"
            raise ConfigError(f"{what}: option {key!r} expects {kind_of} (default {default!r}), got {value!r}")


def configure_parts(
    config: PipelineConfig,
    *,
    sampler: str | None = None,
    detector: str | None = None,
    backbone: str | None = None,
    options: dict[str, dict[str, Any]] | Iterable[str] | None = None,
    image_size: int | None = None,
    fixed_backbone: bool = False,
) -> PipelineConfig:
    """``config`` with the named parts and their options changed, every part checked against
    its plugin.

    Options for a part that keeps its plugin are merged into the ones it has.  A new backbone
    without an ``image_size`` gets the ``input_size`` it declares (the side it was designed
    for).  ``fixed_backbone`` (scoring a trained model) refuses backbone changes.
    """
    from . import create_backbone, get_entry

    opts = options if isinstance(options, dict) else parse_options(options)
    names = {"sampler": sampler, "detector": detector, "backbone": backbone}
    if fixed_backbone and (backbone not in (None, config.backbone) or opts.get("backbone")):
        raise ConfigError(
            "the backbone and its options are part of a trained model and cannot change when scoring it",
            hint="train a new model with --backbone / --option backbone.KEY=VALUE",
        )
    changes: dict[str, Any] = {}
    for part, kind in PARTS.items():
        name = names[part] or getattr(config, part)
        get_entry(kind, name)  # UnknownNameError lists the installed names
        if name != getattr(config, part) or part in opts:
            base = getattr(config, f"{part}_options") if name == getattr(config, part) else {}
            changes[part] = name
            changes[f"{part}_options"] = {**base, **opts.get(part, {})}
        validate_options(kind, name, changes.get(f"{part}_options", getattr(config, f"{part}_options")))
    if image_size:
        changes["image_size"] = int(image_size)
    if changes.get("backbone", config.backbone) != config.backbone:
        new = create_backbone(changes["backbone"], **changes["backbone_options"])
        if not image_size:
            changes["image_size"] = int(new.input_size)
        _check_weights(new, config.backbone_weights)
    return config.replace(**changes) if changes else config


def _check_weights(backbone: Any, weights: str | None) -> None:
    """A preset's weights (``imagenet``) may not exist for the backbone that replaces its own:
    say so now, not after every video's faces have been cropped."""
    if weights is None or weights in backbone.pretrained or os.path.exists(str(weights)):
        return
    known = ", ".join(["none", *backbone.pretrained])
    raise ConfigError(
        f"backbone {backbone.name!r} has no {weights!r} weights; it offers: {known} (or a weights file)",
        hint="choose with --weights, e.g. --weights none to train it from random initialisation",
    )


def add_part_arguments(parser: argparse.ArgumentParser, names: Iterable[str] = ("sampler",)) -> None:
    """Add ``--NAME`` for each pipeline part in ``names`` and the repeatable ``--option``."""
    for name in names:
        parser.add_argument(f"--{name}", help=f"{name} name (see `truthnet plugins`)")
    parser.add_argument("--option", action="append", default=[], metavar="PART.KEY=VALUE", help=_OPTION_HELP)

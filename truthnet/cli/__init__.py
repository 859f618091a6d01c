"""``truthnet``: thin commands over the Python API.

Data goes to stdout (``--json`` for machines), progress and messages to stderr.  Only this
module exits the process; exit codes are :class:`ExitCode`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import ModelError, TruthnetError
from .console import stderr_console, stdout_console
from .exitcodes import ExitCode, UsageParser


def _error(exc: BaseException) -> None:
    from rich.markup import escape

    stderr_console().print(f"[red]error:[/] {escape(str(exc))}")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


# --- commands ------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    from .. import plugins

    entries = plugins.list_entries()
    errors = plugins.plugin_load_errors()
    if args.json:
        _print_json(
            {
                "plugins": [
                    {"kind": e.kind, "name": e.name, "source": e.source, "description": e.description}
                    for e in entries
                ],
                "load_errors": errors,
            }
        )
        return ExitCode.OK
    from rich.table import Table

    table = Table(title="TruthNet plugins", title_justify="left")
    for col in ("kind", "name", "provided by", "description"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.kind.replace("_", " "), e.name, e.source, e.description)
    stdout_console().print(table)
    for name, err in errors.items():
        stderr_console().print(f"[red]plugin {name!r} failed to load:[/] {err}")
    return ExitCode.OK


def cmd_presets(args: argparse.Namespace) -> int:
    from ..config import PRESETS

    data = {name: cfg.to_dict() for name, cfg in sorted(PRESETS.items())}
    if args.name:
        from ..config import PipelineConfig

        data = {args.name: PipelineConfig.preset(args.name).to_dict()}
    if args.json:
        _print_json(data)
        return ExitCode.OK
    from rich.table import Table

    names = list(data)
    table = Table(title="Pipeline presets", title_justify="left")
    table.add_column("setting")
    for n in names:
        table.add_column(n)
    for key in data[names[0]]:
        table.add_row(key, *(json.dumps(data[n][key]) for n in names))
    stdout_console().print(table)
    return ExitCode.OK


def cmd_probe(args: argparse.Namespace) -> int:
    from ..video import probe

    failed = False
    for path in args.videos:
        try:
            info = probe(path).to_dict()
            out = {"path": path, "status": "ok", **info}
        except TruthnetError as exc:
            failed = True
            out = {"path": path, "status": exc.status, "reason": getattr(exc, "reason", str(exc))}
        if args.json:
            _print_json(out)
        else:
            if out["status"] == "ok":
                print(
                    f"{path}: {out['frame_count']} frames, {out['fps']:.2f} fps, "
                    f"{out['width']}x{out['height']}, {out['duration']:.2f} s, codec {out['codec'] or '?'}"
                )
            else:
                print(f"{path}: {out['status']}: {out['reason']}")
    return ExitCode.SOME_FAILED if failed else ExitCode.OK


def _config_from_args(args: argparse.Namespace):
    from ..config import PipelineConfig

    return PipelineConfig.preset(args.preset) if getattr(args, "preset", None) else None


def cmd_score(args: argparse.Namespace) -> int:
    from ..classifier import load_classifier

    from ..resolve import resolve_model

    clf = load_classifier(resolve_model(args.model), _config_from_args(args), threshold=args.threshold)
    from .scan import card_of, print_card

    print_card(stderr_console(), card_of(clf), warnings_only=True)  # synthetic data, few videos ...
    failed = 0
    for v in clf.score_videos(args.videos, batch_size=args.batch_size):
        failed += not v.ok
        if args.json:
            _print_json(v.to_dict())
        elif v.ok:
            print(f"{v.label.upper():4s}  {v.score:.4f}  {v.path}")
        else:
            print(f"{v.status.upper()}  -  {v.path}: {v.reason}")
    return ExitCode.SOME_FAILED if failed else ExitCode.OK


def cmd_new_model(args: argparse.Namespace) -> int:
    from ..config import PipelineConfig
    from ..classifier import new_classifier

    from ..plugins import configure_parts

    cfg = PipelineConfig.preset(args.preset)
    if args.weights is not None:
        cfg = cfg.replace(backbone_weights=None if args.weights == "none" else args.weights)
    cfg = configure_parts(cfg, sampler=args.sampler, detector=args.detector, backbone=args.backbone,
                          options=args.option, image_size=args.image_size)
    clf = new_classifier(cfg, seed=args.seed)
    path = clf.save(args.output, {"trained": False})
    stderr_console().print(f"wrote untrained {args.preset} model to {path} (train it with `truthnet train`)")
    return ExitCode.OK


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="truthnet",
        description="Tell real face videos from deepfakes (MobileNetV2 + LSTM).",
        epilog="Exit codes: " + ", ".join(f"{int(c)} {c.name.lower()}" for c in ExitCode),
    )
    parser.add_argument("--version", action="version", version=f"truthnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed samplers, face detectors, backbones and dataset layouts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("presets", help="show the pipeline presets (the paper's configuration and others)")
    p.add_argument("name", nargs="?", help="show only this preset")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("probe", help="show frame count, fps, size and duration of video files")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=cmd_probe)

    from .scan import threshold

    p = sub.add_parser("score", help="score a few video files with a model (see `scan` for folders)")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--model", "-m", help="a .keras/.h5 model file (default: `truthnet default-model`)")
    p.add_argument("--preset", help="pipeline preset for a bare model file that carries no configuration")
    p.add_argument("--threshold", type=threshold, help="override the model's decision threshold (0-1)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", action="store_true", help="one JSON object per video")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("new-model", help="write an untrained model for a preset (for experiments)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--weights", help="backbone weights: imagenet, none, or a file (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", "-o", required=True)
    from ..plugins.options import add_part_arguments

    add_part_arguments(p, ("sampler", "detector", "backbone"))
    p.add_argument("--image-size", type=int, help="default: the preset's, or the --backbone's input size")
    p.set_defaults(func=cmd_new_model)

    from . import experiment as cli_experiment
    from . import scan as cli_scan

    cli_experiment.register(sub)
    cli_scan.register(sub)
    from . import jobs as cli_jobs

    cli_jobs.register(sub)
    from . import explain as cli_explain

    cli_explain.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        stderr_console().print("[yellow]interrupted[/]")
        return ExitCode.INTERRUPTED
    except ModelError as exc:
        _error(exc)
        return ExitCode.MODEL
    except TruthnetError as exc:  # ConfigError, DatasetError, PluginError ...
        _error(exc)
        return ExitCode.USAGE
    except BrokenPipeError:  # `truthnet ... | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # nothing more to flush at exit
        return ExitCode.OK
    except OSError as exc:  # an input or output path the user gave: one line, not a traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(OSError(f"{where}{exc.strerror or exc}"))
        return ExitCode.USAGE

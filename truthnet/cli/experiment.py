"""``truthnet train / evaluate / calibrate / synth / demo``: the paper's experiment."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from .console import stdout_console


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    from .. import api

    cfg, tcfg = api.train_settings(vars(args))
    api.check_dataset(args.dataset, args.layout)  # before any video is read
    res = api.train(args.dataset, args.output or "runs/train", cfg, tcfg, layout=args.layout, cache_dir=args.cache,
                    device=args.device, on_event=lambda ev: _log(ev.message))
    print(json.dumps({"model": str(res.model_path), "counts": res.counts, "failed": len(res.failed),
                      "seconds": round(res.seconds, 1), "final": {k: v[-1] for k, v in res.history.items()}}))
    return 0


def _print_metrics(m: dict, out_dir) -> None:
    from ..reports.plots import table_one

    if m.get("selection"):
        print(f"evaluated on the {m['selection']['summary']}")
    print(table_one(m))
    if m.get("failed"):
        print(f"{len(m['failed'])} video(s) could not be scored and are left out: " +
              ", ".join(f"{Path(p).name} ({s})" for p, s in list(m["failed"].items())[:5]))
    if out_dir:
        print(f"reports: {out_dir}/metrics.json, predictions.csv, roc.png, confusion_matrix.png")


def cmd_evaluate(args) -> int:
    from .. import api
    from ..resolve import inference_config

    api.check_dataset(args.dataset, args.layout)  # before any model loads
    model = args.model
    cfg = inference_config(model, sampler=args.sampler, detector=args.detector, options=args.option)
    if cfg is not None:
        from ..classifier import load_classifier

        model = load_classifier(model, cfg)
    m = api.evaluate(model, args.dataset, args.output, split=args.split, layout=args.layout,
                     threshold=args.threshold, include_training=args.include_training_videos)
    if args.json:
        print(json.dumps(m))
    else:
        _print_metrics(m, args.output)
    return 0


def cmd_calibrate(args) -> int:
    from .. import api

    r = api.calibrate(args.model, args.dataset, real_recall=args.real_recall, max_fpr=args.max_fpr, split=args.split,
                      layout=args.layout, output=args.output, in_place=args.in_place,
                      include_training=args.include_training_videos)
    if args.json:
        print(json.dumps(r))
        return 0
    from rich.table import Table

    pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
    t = Table(title=f"calibrated on the {r['selection']}", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    target = f"real recall {args.real_recall}" if args.real_recall is not None else f"max FPR {args.max_fpr}"
    for k, v in (("target", target), ("real videos scored", str(r["n_real"])),
                 ("threshold", f"{r['previous_threshold']:.4f} -> {r['threshold']:.4f}"),
                 ("real called real", f"{pct(r['real_called_real_before'])} -> {pct(r['real_called_real'])}"),
                 ("written to", r["model"] + (" (in place)" if r["in_place"] else "")),
                 ("input model", r["input_model"] + ("" if r["in_place"] else " (unchanged)"))):
        t.add_row(k, v)
    stdout_console().print(t)
    for w in r["warnings"]:
        _log(f"warning: {w}")
    return 0


def cmd_synth(args) -> int:
    from ..synth import make_dataset

    paths = make_dataset(
        args.output, n_real=args.real, n_fake=args.fake, n_frames=args.frames, width=args.width, height=args.height,
        methods=tuple(args.methods.split(",")), faces_dir=args.faces, real_videos_dir=args.from_videos, seed=args.seed,
        progress=lambda i, n: _log(f"synth: {i}/{n}") if i % 10 == 0 or i == n else None, masks=args.masks,
    )
    _log(f"wrote {len(paths)} videos to {args.output} (folder layout: real/ and fake/)")
    return 0


def cmd_demo(args) -> int:
    """Synthetic data -> train (tiny CNN, CPU) -> evaluate on the held-out split -> scan it."""
    from ..config import PipelineConfig
    from ..evaluation import evaluate
    from ..synth import make_dataset
    from ..training import TrainConfig, train

    t0 = time.perf_counter()
    out = Path(args.output)
    data = out / "data"
    _log(f"[1/4] generating {args.videos} real and {args.videos} fake clips (self-blended faces) in {data}")
    make_dataset(data, n_real=args.videos, n_fake=args.videos, seed=args.seed, masks=True)  # masks: see explain
    cfg = PipelineConfig.preset("tiny", image_size=64)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=8, learning_rate=1e-3, seed=args.seed, patience=None)
    _log("[2/4] training the tiny CNN-LSTM on the training split (MTCNN face crops)")
    res = train(data, out / "run", cfg, tcfg, cache_dir=out / "cache")
    _log("[3/4] evaluating on the held-out test split")
    m = evaluate(res.model_path, data, out / "run" / "eval", split="test")
    _print_metrics(m, out / "run" / "eval")
    _log("[4/4] scanning the test split with the saved model")
    from ..classifier import load_classifier

    clf = load_classifier(res.model_path)
    import csv

    with open(out / "run" / "eval" / "predictions.csv", newline="") as fh:
        rows = [r["path"] for r in csv.DictReader(fh)]
    for v in clf.score_videos(rows[: args.show]):
        score = "-" if v.score is None else f"{v.score:.3f}"
        print(f"  {v.status:8s} {(v.label or '-'):5s} {score:>6s}  {Path(v.path).parent.name}/{Path(v.path).name}")
    from ..modelcard import with_test_metrics

    clf.save(res.model_path, {"card": with_test_metrics(clf.metadata.get("card") or {}, m)})  # the card's test line
    # a model trained on synthetic clips never silently becomes the default for real scans
    _log(f"demo model: {res.model_path} (trained on synthetic clips: not set as the default model).\n"
         f"  try it:  truthnet scan {data} -r --model {res.model_path}\n"
         f"           truthnet-tui {data} --model {res.model_path}\n"
         f"  its card: truthnet model-info {res.model_path}")
    total = time.perf_counter() - t0
    summary = {"roc_auc": m["roc_auc"], "accuracy": m["accuracy"], "test_videos": m["n"], "seconds": round(total, 1),
               "model": str(res.model_path)}
    print(json.dumps(summary))
    return 0


def register(sub) -> None:
    """Add ``train``, ``evaluate``, ``calibrate``, ``synth`` and ``demo`` to the subparsers."""
    _register_train(sub)
    _register_evaluate(sub)
    _register_calibrate(sub)
    _register_synth_and_demo(sub)


def _register_train(sub) -> None:
    from ..config import list_presets
    from ..plugins.options import add_part_arguments

    p = sub.add_parser("train", help="train the CNN-LSTM on a dataset (paper hyperparameters by default)")
    p.add_argument("dataset", help="dataset folder (layout auto-detected) or a manifest CSV")
    p.add_argument("--output", "-o", help="output folder (model.keras, manifest.csv, curves; default runs/train, "
                                          "for a queued job its run folder)")
    p.add_argument("--preset", default="paper", choices=list_presets())
    p.add_argument("--backbone", help="backbone name (see `truthnet plugins`)")
    p.add_argument("--weights", help="backbone weights: imagenet, none, or a file")
    p.add_argument("--detector", help="face detector name")
    add_part_arguments(p)  # --sampler, --option part.key=value
    p.add_argument("--image-size", type=int, help="default: the preset's, or the --backbone's input size")
    p.add_argument("--layout", help="dataset layout (default: auto-detect)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs; -1 disables")
    p.add_argument("--class-weight", action="store_true", help="weight classes inversely to their frequency")
    p.add_argument("--split", default="group", choices=["group", "paper"], help="split protocol when the dataset has none")
    p.add_argument("--device", help="cpu or gpu[:N]")
    p.add_argument("--workers", type=int, default=2, help="threads decoding videos")
    p.add_argument("--cache", help="embedding/crop cache folder (default: the user cache dir)")
    p.set_defaults(func=cmd_train)


def _register_evaluate(sub) -> None:
    from ..plugins.options import add_part_arguments
    from .scan import threshold

    p = sub.add_parser("evaluate", help="Table I, confusion matrix, ROC-AUC and plots on a dataset split")
    p.add_argument("model")
    p.add_argument("dataset", help="dataset folder or the manifest CSV written by train")
    p.add_argument("--output", "-o", help="folder for metrics.json, predictions.csv, roc.png, confusion_matrix.png")
    p.add_argument("--split", choices=["train", "val", "test", "all"],
                   help="default: test on the model's own dataset (its metadata's), all videos of any other")
    p.add_argument("--include-training-videos", action="store_true",
                   help="also score videos the model was trained on (left out by default, found by content)")
    p.add_argument("--layout")
    p.add_argument("--threshold", type=threshold, help="override the model's decision threshold (0-1)")
    p.add_argument("--json", action="store_true")
    add_part_arguments(p, ("sampler", "detector"))
    p.set_defaults(func=cmd_evaluate)


def _register_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="pick a threshold on real videos; write the model with it to a new file")
    p.add_argument("model")
    p.add_argument("dataset")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--real-recall", type=float, help="fraction of real videos that must be called real")
    g.add_argument("--max-fpr", type=float, help="largest fraction of real videos called fake")
    p.add_argument("--split", choices=["train", "val", "test", "all"],
                   help="default: val on the model's own dataset, all videos of any other")
    p.add_argument("--include-training-videos", action="store_true",
                   help="also use videos the model was trained on (left out by default)")
    p.add_argument("--layout")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", help="the calibrated model file (default: <name>.calibrated.keras beside it)")
    out.add_argument("--in-place", action="store_true", help="overwrite the input model file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_calibrate)


def _register_synth_and_demo(sub) -> None:
    p = sub.add_parser("synth", help="write a labelled synthetic dataset (folder layout)")
    p.add_argument("output")
    p.add_argument("--real", type=int, default=40)
    p.add_argument("--fake", type=int, default=40)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--methods", default="sbi", help="comma list of sbi (self-blending) and swap (face swap)")
    p.add_argument("--faces", help="folder of real face photos to use instead of the astronaut")
    p.add_argument("--from-videos", help="folder of your own real videos: make fakes from them")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--masks", action="store_true",
                   help="also write each self-blended fake's blend masks to masks/NAME.npz (where it was altered)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("demo", help="synthetic data -> train -> evaluate -> scan, on a CPU in minutes")
    p.add_argument("--output", "-o", default="demo-out")
    p.add_argument("--videos", type=int, default=50, help="real clips (and as many fakes)")
    p.add_argument("--epochs", type=int, default=8,
                   help="the tiny network reaches validation accuracy 1.0 by epoch 4-6 on these clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", type=int, default=8, help="test videos to list in the scan step")
    p.set_defaults(func=cmd_demo)

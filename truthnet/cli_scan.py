"""``truthnet scan``, ``truthnet results`` and ``truthnet default-model``."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path


from .exitcodes import ExitCode
from .resolve import NO_MODEL_HELP, resolve_model  # noqa: F401  (NO_MODEL_HELP: its 0.1 home)


def _sigterm_as_interrupt() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use)
        pass


def _progress_bar(console, total: int):
    """A transient files-done bar with rate and ETA on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.2f} files/s"), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True,
    )
    return progress, progress.add_task("scan", total=total, rate=0.0)


def _result_line(row) -> str:
    if row.status == "ok":
        return f"{row.label.upper():4s} {row.score:.4f}  {row.path}"
    return f"{row.status.upper()}  {row.path}: {row.reason}"


def cmd_scan(args) -> int:
    import time

    from rich.console import Console

    from . import api

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    clf = api.load(args.model, preset=args.preset, threshold=args.threshold, device=args.device)
    if not args.json:  # before the first verdict too, not only in the summary
        print_card(err, card_of(clf), warnings_only=True)
    bar = task = None
    t0 = time.perf_counter()

    def on_event(ev) -> None:
        nonlocal bar, task
        row = ev.result
        if row is None:  # the plan: how many files
            pass
        elif args.json:
            d = row.to_dict()
            d.pop("model_key", None)
            sys.stdout.write(json.dumps(d) + "\n")
            sys.stdout.flush()
        else:
            print(_result_line(row), flush=True)
        if not args.json and not args.quiet:
            if bar is None:
                bar, task = _progress_bar(err, ev.total)
                bar.start()
            bar.update(task, completed=ev.done, rate=ev.done / max(time.perf_counter() - t0, 1e-6))

    _sigterm_as_interrupt()
    options = {k: v for k, v in vars(args).items() if k not in ("func",)}
    try:
        outcome = api.scan(
            args.paths, model=resolve_model(args.model), classifier=clf, db=args.db, recursive=args.recursive,
            include=args.include, exclude=args.exclude, windows=args.windows, workers=args.workers,
            timeout=args.timeout, batch_size=args.batch_size, force=args.force, engine=args.engine,
            ray={"address": args.ray_address, "num_workers": args.num_workers,
                 "gpus_per_worker": args.gpus_per_worker},
            options=options, on_event=on_event,
        )
    finally:
        if bar is not None:
            bar.stop()
    return _finish_scan(outcome, args, err)


def _finish_scan(outcome, args, err) -> int:
    """Reports, the summary, the exit code."""
    from .store import Store

    summary = outcome.summary
    store = Store(outcome.db)
    rows = store.results(summary.scan_id, with_thumbs=bool(args.html))
    if args.csv:
        from .htmlreport import write_csv

        write_csv(rows, args.csv)
    if args.html:
        from .htmlreport import write_html

        write_html(rows, args.html, scan=store.scan(summary.scan_id))
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict()) + "\n")
    else:
        _print_summary(err, summary, store.path, args)
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    if args.fail_on_fake and summary.fakes:
        return ExitCode.FAKES_FOUND
    if summary.failed:
        return ExitCode.SOME_FAILED
    return ExitCode.OK


def _print_summary(console, summary, db, args) -> None:
    from rich.table import Table

    d = summary.to_dict()
    t = Table(title=f"scan #{summary.scan_id}: {d['files']} files in {d['seconds']:.1f} s", title_justify="left")
    t.add_column("outcome")
    t.add_column("files", justify="right")
    t.add_row("[red]fake[/]", str(d["fake"]))
    t.add_row("[green]real[/]", str(d["real"]))
    for status, n in sorted(d["statuses"].items()):
        if status != "ok":
            t.add_row(f"[yellow]{status}[/]", str(n))
    console.print(t)
    print_card(console, summary.model_card)
    extra = f"; {d['reused']} reused from earlier scans (--force redoes them)" if d["reused"] else ""
    console.print(f"results stored in {db} (scan #{summary.scan_id}){extra}")
    if summary.interrupted:
        console.print("[yellow]interrupted:[/] run the same command again to finish the remaining files")


def card_of(clf) -> dict:
    from .modelcard import ModelCard

    return ModelCard.from_metadata(clf.metadata).stored()


def print_card(console, stored: dict | None, *, warnings_only: bool = False) -> None:
    """The model card's one line, and each of its warnings where nobody can miss them."""
    from rich.markup import escape

    if not stored:
        return
    if not warnings_only:
        console.print(f"[dim]model card:[/] {escape(str(stored.get('summary') or '-'))}")
    for w in stored.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/] {escape(w)}")


def cmd_results(args) -> int:
    from .store import Store

    store = Store(args.db)
    if args.scan is None and not (args.csv or args.html or args.json):
        scans = store.scans(limit=args.limit)
        from rich.console import Console
        from rich.table import Table
        import time

        t = Table(title=f"scans in {store.path}", title_justify="left")
        for col in ("id", "started", "state", "files", "fake", "real", "failed", "model", "model warnings"):
            t.add_column(col)
        for s in scans:
            c = s["counts"] or {}
            failed = sum(v for k, v in c.items() if k not in ("ok", "real", "fake"))
            t.add_row(str(s["id"]), time.strftime("%Y-%m-%d %H:%M", time.localtime(s["started"])), s["state"],
                      str(s["n"]), str(c.get("fake", 0)), str(c.get("real", 0)), str(failed), str(s["model"] or "-"),
                      _warning_cell(s.get("model_card")))
        Console().print(t)
        return ExitCode.OK
    scan_id = args.scan
    if scan_id is None:
        scans = store.scans(limit=1)
        if not scans:
            from .errors import TruthnetError

            raise TruthnetError(f"no scans in {store.path} yet")
        scan_id = scans[0]["id"]
    if store.scan(scan_id) is None:
        from .errors import ConfigError

        raise ConfigError(f"no scan #{scan_id} in {store.path}")
    rows = store.results(scan_id, with_thumbs=bool(args.html))
    from rich.console import Console

    print_card(Console(stderr=True, highlight=False, soft_wrap=True), store.scan(scan_id).get("model_card"))
    if args.csv:
        from .htmlreport import write_csv

        write_csv(rows, args.csv)
    if args.html:
        from .htmlreport import write_html

        write_html(rows, args.html, scan=store.scan(scan_id))
    if args.json:
        for r in rows:
            d = r.to_dict()
            d.pop("model_key", None)
            sys.stdout.write(json.dumps(d) + "\n")
    return 0


def _warning_cell(stored: dict | None):
    from rich.text import Text

    if not stored:
        return Text("unknown (scanned before model cards)", style="dim")
    warnings = stored.get("warnings") or []
    return Text("; ".join(warnings), style="bold yellow") if warnings else Text("none", style="green")


def cmd_model_info(args) -> int:
    """``truthnet model-info MODEL [--json]``: the model's card and its warnings."""
    from .modelcard import ModelCard
    from .resolve import resolve_model

    path = resolve_model(args.model)
    card = ModelCard.read(path)
    if args.json:
        sys.stdout.write(json.dumps({"model": path, "summary": card.summary(), "warnings": card.warnings(),
                                     "card": card.to_dict()}, default=str) + "\n")
        return ExitCode.OK
    print(f"model: {path}")
    print(f"summary: {card.summary()}")
    for key, value in card.to_dict().items():
        if value is not None:
            print(f"  {key}: {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    for w in card.warnings():
        print(f"warning: {w}")
    return ExitCode.OK


def cmd_default_model(args) -> int:
    from .settings import default_model, set_default_model

    if args.clear:
        set_default_model(None)
        print("default model cleared")
    elif args.path:
        from .modelcard import ModelCard

        card = ModelCard.read(args.path)  # refuse a file that is not a model now, not at scan time
        if card.synthetic and not args.accept_synthetic:
            from .errors import ConfigError

            raise ConfigError(
                f"{args.path} was trained on synthetic clips ({card.summary()}); it would give every real "
                "video an unqualified verdict", hint="use it for one scan with --model PATH, or pass "
                "--accept-synthetic to make it the default anyway (its warning still shows on every verdict list)")
        p = set_default_model(args.path)
        print(f"default model: {Path(args.path).resolve()} (saved in {p})")
    else:
        print(default_model() or "no default model (set one: truthnet default-model PATH)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("scan", help="score every video under the given paths, headless (results stored in SQLite)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and folders")
    p.add_argument("--model", "-m", help="model file (default: `truthnet default-model` or $TRUTHNET_MODEL)")
    p.add_argument("--preset", help="pipeline preset for a bare model file without TruthNet metadata")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    p.add_argument("--include", action="append", metavar="GLOB", help="only files matching (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching (repeatable)")
    p.add_argument("--threshold", type=float, help="override the model's decision threshold")
    p.add_argument("--workers", type=int, default=2, help="decoder processes (default 2)")
    p.add_argument("--device", help="cpu or gpu[:N]")
    p.add_argument("--windows", type=int, default=1, help="score K sequences spread over each video (score = mean)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed to decode one file")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", action="store_true", help="one JSON object per video, then a summary object")
    p.add_argument("--csv", metavar="FILE", help="also write the results as CSV")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--db", metavar="FILE", help="results database (default: the user data folder)")
    p.add_argument("--force", action="store_true", help="rescore files already scored with this model")
    p.add_argument("--fail-on-fake", action="store_true", help="exit 1 when any video is fake")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: spread the files over a Ray cluster (pip install 'truthnet[ray]')")
    p.add_argument("--ray-address", help="an existing Ray cluster (default: start a local one)")
    p.add_argument("--num-workers", type=int, default=2, help="Ray workers (each loads the model once)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("results", help="list past scans, or export one as JSON/CSV/HTML")
    p.add_argument("--scan", type=int, help="scan id (default: the latest, when exporting)")
    p.add_argument("--json", action="store_true", help="print the scan's results, one JSON object per line")
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--html", metavar="FILE")
    p.add_argument("--db", metavar="FILE")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("default-model", help="show or set the model used when --model is not given")
    p.add_argument("path", nargs="?")
    p.add_argument("--clear", action="store_true")
    p.add_argument("--accept-synthetic", action="store_true",
                   help="allow a model trained on synthetic data (e.g. the demo's) as the default")
    p.set_defaults(func=cmd_default_model)

    p = sub.add_parser("model-info", help="what a model was trained on (its model card) and its warnings")
    p.add_argument("model", nargs="?", help="model file (default: the default model)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=cmd_model_info)

"""``truthnet scan``, ``truthnet results`` and ``truthnet default-model``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


from .console import stderr_console, stdout_console
from .exitcodes import ExitCode
from ..resolve import resolve_model


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--windows 0`` or ``-2`` is a usage error, exit 3)."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def threshold(text: str) -> float:
    """argparse type: a decision threshold in [0, 1] (``--threshold 1.5`` is a usage error, exit
    3, before any model loads)."""
    import argparse

    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"a threshold is between 0 and 1, got {text}")
    return x


def positive_float(text: str) -> float:
    import argparse

    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return x


def _progress_bar(console, total: int):
    """A transient files-done bar on stderr: elapsed time from the start, rate and ETA from the
    first finished file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.fields[stage]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True, refresh_per_second=4,
        # result lines go to stdout: drawn above the bar when both are the terminal, left alone
        # (not diverted to stderr) when stdout is a pipe or a file
        redirect_stdout=sys.stdout.isatty(), redirect_stderr=False,
    )
    return progress, progress.add_task("scan", total=total, rate="", stage="loading the model")


def _result_line(row, roots) -> str:
    """One line per file, whatever its name holds (newlines and escape sequences are escaped),
    with the threshold that made the verdict: ``FAKE 0.9312 >= 0.50  case/a.mp4``."""
    from ..paths import one_line, shown

    where = one_line(shown(row.path, roots))
    if row.status == "ok":
        cmp = ">=" if row.score >= row.threshold else "< "
        return f"{row.label.upper():4s} {row.score:.4f} {cmp} {row.threshold:.2f}  {where}"
    return f"{row.status.upper()}  {where}: {one_line(row.reason or '')}"


def check_outputs(args) -> None:
    """``--html`` / ``--csv`` must be writable before any work (a typo found after an hour's scan
    loses the report)."""
    from ..reports.files import check_writable

    for flag in ("html", "csv"):
        if getattr(args, flag, None):
            check_writable(getattr(args, flag), f"--{flag}", make_parents=getattr(args, "mkdir", False))


class _ScanView:
    """What ``truthnet scan`` shows as events arrive: one line (or JSON line) per result on
    stdout; the card's warnings, log messages and a progress bar on stderr."""

    def __init__(self, args, roots: list[str]) -> None:
        self.args, self.roots = args, roots
        self.err = stderr_console()
        self.bar = self.task = None
        self.started = 0.0  # when scoring started: the rate counts from there, not from model loading

    def __call__(self, ev) -> None:
        row, args = ev.result, self.args
        if ev.stage == "log":  # may hold a folder's name: text, never markup, one line
            from rich.text import Text

            from ..paths import one_line

            self.err.print(Text(one_line(ev.message)))
            return
        if row is None:  # the plan (how many files), then "scoring" once the model is loaded
            if ev.message == "scoring" and not args.json:  # the card's warnings before the first verdict
                print_card(self.err, ev.card, warnings_only=True)
        elif args.json:
            d = row.to_dict()
            d.pop("model_key", None)
            sys.stdout.write(json.dumps(d) + "\n")
            sys.stdout.flush()
        else:
            print(_result_line(row, self.roots), flush=True)
        if not args.json and not args.quiet and not getattr(args, "watch", False):
            self._progress(ev, row)

    def _progress(self, ev, row) -> None:
        import time

        from rich.console import Console

        if self.bar is None:
            self.bar, self.task = _progress_bar(Console(stderr=True), ev.total)
            self.bar.start()
        now = time.perf_counter()
        if row is None and self.started == 0.0 and ev.message == "scoring":
            self.started = now
        rate = ev.done / (now - self.started) if ev.done and self.started else None
        self.bar.update(self.task, completed=ev.done, stage="scanning" if self.started else "loading the model",
                        rate=f"{rate:.2f} files/s" if rate else "")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def cmd_scan(args) -> int:
    import time

    from .. import api
    from ..errors import ConfigError
    from ..paths import norm
    from ..signals import stop_requests

    check_outputs(args)
    roots = [norm(p) for p in args.paths]
    view = _ScanView(args, roots)
    t0 = time.perf_counter()
    asked = {k: v for k, v in vars(args).items() if k not in ("func",)}
    if args.watch and len(args.paths) != 1:
        raise ConfigError("--watch takes one folder")
    with stop_requests() as stop:  # a first Ctrl-C/SIGTERM stops between files, a second at once
        try:
            opts = api.ScanOptions.from_args(vars(args))
            if args.watch:  # until a signal; exit 130 after the file in hand
                outcome = api.watch(args.paths[0], opts, db=args.db, settle=args.settle, poll=args.poll,
                                    asked=asked, on_event=view, cancel=stop)
            else:
                outcome = api.scan(args.paths, opts, db=args.db, asked=asked, on_event=view, cancel=stop)
        except KeyboardInterrupt:
            view.stop()
            # a second signal while the files were listed or the model loaded: the scanner itself
            # stores what finished and returns
            view.err.print(f"[yellow]interrupted[/] after {time.perf_counter() - t0:.1f} s, before scoring "
                           "started (listing files or loading the model): no results stored")
            return ExitCode.INTERRUPTED
        finally:
            view.stop()
        code = _finish_scan(outcome, args, view.err, roots)
    # a stop asked for at any point is an interrupted run, even when nothing was left to do
    return ExitCode.INTERRUPTED if stop.is_set() else code


def _write_reports(store, scan: dict | None, args) -> None:
    from rich.text import Text

    from ..reports.html import write_csv, write_html
    from ..reports.files import write_error
    from ..paths import one_line

    if not (args.csv or args.html):
        return
    rows = store.results(scan["id"], with_thumbs=bool(args.html)) if scan else []
    for flag, write in (("csv", write_csv), ("html", write_html)):
        target = getattr(args, flag)
        if target:
            try:
                path = write(rows, target, scan=scan, **({"store": store} if flag == "html" else {}))
            except OSError as exc:
                raise write_error(target, exc, f"--{flag}") from None
            stderr_console().print(Text(f"wrote the {flag.upper()} report ({len(rows)} files): {one_line(str(path))}"))


def _finish_scan(outcome, args, err, roots) -> int:
    """Reports, the summary, the exit code."""
    from ..store import Store

    summary = outcome.summary
    store = Store(outcome.db)
    _write_reports(store, store.scan(summary.scan_id), args)
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


def interrupted_line(summary, db) -> str:
    """Exactly what an interrupted scan finished and kept."""
    stored = sum(n for k, n in summary.counts.items() if k not in ("real", "fake"))
    scored = summary.counts.get("ok", 0)
    return (f"interrupted: {stored} of {summary.total} files finished and stored in {db} (scan #{summary.scan_id}: "
            f"{scored} scored, {stored - scored} not scorable); run the same command again to finish the other "
            f"{summary.total - stored}")


def _print_summary(console, summary, db, args) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..paths import one_line

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
    if getattr(args, "watch", False):
        console.print(Text(f"stopped watching: {d['files']} arrivals handled ({d['reused']} already reported or "
                           f"reused); results stored in {one_line(str(db))} (scan #{summary.scan_id})"))
        return
    if summary.interrupted:
        console.print(f"[yellow]{interrupted_line(summary, db)}[/]")
        return
    if summary.not_scanned_below:
        console.print(f"[yellow]not scanned:[/] {summary.not_scanned_below} videos in sub-folders (add -r to scan them)")
    extra = f"; {d['reused']} reused from earlier scans (--force redoes them)" if d["reused"] else ""
    console.print(Text(f"results stored in {one_line(str(db))} (scan #{summary.scan_id}){extra}"))


def _open_existing_store(db):
    """The store ``results`` reads: a named ``--db`` that does not exist is an error, never a new
    empty database; the default one may simply not exist yet (None)."""
    from ..errors import ConfigError
    from ..store import Store, default_db_path

    path = Path(db) if db else default_db_path()
    if not path.exists():
        if db:
            raise ConfigError(f"--db {db}: no such results database")
        return None
    if path.is_dir():
        raise ConfigError(f"--db {db}: is a folder, not a results database")
    return Store(path)


def _scans_table(store, limit: int):
    import time

    from rich.table import Table
    from rich.text import Text

    from ..paths import one_line

    t = Table(title=Text(f"scans in {one_line(str(store.path))}"), title_justify="left")
    for col in ("id", "started", "state", "files", "fake", "real", "failed"):
        t.add_column(col, no_wrap=True)
    t.add_column("scanned roots", overflow="fold")
    t.add_column("model", overflow="fold")
    t.add_column("model warnings", overflow="fold")
    for s in store.scans(limit=limit):
        c = s["counts"] or {}
        failed = sum(v for k, v in c.items() if k not in ("ok", "real", "fake"))
        t.add_row(str(s["id"]), time.strftime("%Y-%m-%d %H:%M", time.localtime(s["started"])), s["state"],
                  str(s["n"]), str(c.get("fake", 0)), str(c.get("real", 0)), str(failed),
                  Text("\n".join(one_line(r) for r in s["roots"] or []) or "-"), Text(one_line(str(s["model"] or "-"))),
                  _warning_cell(s.get("model_card")))
    return t


def _verdicts_table(store, scan: dict):
    from rich.table import Table
    from rich.text import Text

    from ..paths import one_line, shown

    roots = scan["roots"] or []
    t = Table(title=Text(f"scan #{scan['id']} ({scan['state']}): {', '.join(one_line(r) for r in roots)}"),
              title_justify="left")
    for col in ("verdict", "score", "threshold", "status"):
        t.add_column(col, no_wrap=True)
    t.add_column("file", overflow="fold")
    t.add_column("reason", overflow="fold")
    rows = store.results(scan["id"])
    rows.sort(key=lambda r: (r.score is None, -(r.score or 0.0), r.path))  # fakes first, unscored last
    for r in rows:
        style = "bold red" if r.label == "fake" else "bold green" if r.label else "yellow"
        t.add_row(Text(r.label or "-", style=style), "" if r.score is None else f"{r.score:.4f}",
                  "" if r.threshold is None else f"{r.threshold:.4g}", r.status,
                  Text(one_line(shown(r.path, roots))), Text(one_line(r.reason or "")))
    return t


def card_of(clf) -> dict:
    from ..modelcard import ModelCard

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
    from rich.console import Console

    from ..errors import ConfigError

    check_outputs(args)
    store = _open_existing_store(args.db)
    if store is None:
        Console(stderr=True).print("no scans yet (run `truthnet scan PATH`)")
        return ExitCode.OK
    if args.scan is None and not (args.csv or args.html or args.json):
        stdout_console().print(_scans_table(store, args.limit))
        return ExitCode.OK
    scan_id = args.scan
    if scan_id is None:
        scans = store.scans(limit=1)
        if not scans:
            raise ConfigError(f"no scans in {store.path} yet")
        scan_id = scans[0]["id"]
    scan = store.scan(scan_id)
    if scan is None:
        raise ConfigError(f"no scan #{scan_id} in {store.path}")
    print_card(stderr_console(), scan.get("model_card"))
    _write_reports(store, scan, args)
    if args.json:
        for r in store.results(scan_id):
            d = r.to_dict()
            d.pop("model_key", None)
            sys.stdout.write(json.dumps(d) + "\n")
    elif not (args.csv or args.html):
        stdout_console().print(_verdicts_table(store, scan))
    return ExitCode.OK


def _warning_cell(stored: dict | None):
    from rich.text import Text

    if not stored:
        return Text("unknown (scanned before model cards)", style="dim")
    warnings = stored.get("warnings") or []
    return Text("; ".join(warnings), style="bold yellow") if warnings else Text("none", style="green")


def cmd_model_info(args) -> int:
    """``truthnet model-info MODEL [--json]``: the model's card and its warnings."""
    from ..model import read_card

    path = resolve_model(args.model)
    card = read_card(path)
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
    from ..settings import default_model, set_default_model

    if args.clear:
        set_default_model(None)
        print("default model cleared")
    elif args.path:
        from ..model import read_card

        card = read_card(args.path)  # refuse a file that is not a model now, not at scan time
        if card.synthetic and not args.accept_synthetic:
            from ..errors import ConfigError

            raise ConfigError(
                f"{args.path} was trained on synthetic clips ({card.summary()}); it would give every real "
                "video an unqualified verdict", hint="use it for one scan with --model PATH, or pass "
                "--accept-synthetic to make it the default anyway (its warning still shows on every verdict list)")
        p = set_default_model(args.path)
        print(f"default model: {Path(args.path).resolve()} (saved in {p})")
    else:
        print(default_model() or "no default model (set one: truthnet default-model PATH)")
    return 0


def _watch_arguments(p) -> None:
    p.add_argument("--watch", action="store_true",
                   help="keep watching the folder: score each new or changed video once complete, until "
                        "Ctrl-C/SIGTERM (exit 130); what arrived while no watcher ran is scored first")
    p.add_argument("--settle", type=positive_float, metavar="SECONDS",
                   help="--watch: seconds a file must stay unchanged (and closed) before it is scored (default 2)")
    p.add_argument("--poll", type=positive_float, metavar="SECONDS",
                   help="--watch: walk the folder every SECONDS instead of listening to file-system events "
                        "(network file systems); without the watchfiles package this is the default (2 s)")


def register(sub) -> None:
    p = sub.add_parser("scan", help="score every video under the given paths, headless (results stored in SQLite)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and folders")
    p.add_argument("--model", "-m", help="model file (default: `truthnet default-model` or $TRUTHNET_MODEL)")
    p.add_argument("--preset", help="pipeline preset for a bare model file without TruthNet metadata")
    from ..plugins.options import add_part_arguments

    add_part_arguments(p, ("sampler", "detector"))  # score with another sampler/detector or options
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    p.add_argument("--include", action="append", metavar="GLOB", help="only files matching (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching (repeatable)")
    p.add_argument("--threshold", type=threshold, help="override the model's decision threshold (0-1)")
    p.add_argument("--workers", type=positive_int,
                   help="decoder processes (default: one per core when they also detect faces, as "
                        "MTCNN on OpenVINO and the OpenCV detectors do; half the cores when the main "
                        "process detects)")
    p.add_argument("--device", help="cpu or gpu[:N]")
    p.add_argument("--windows", type=positive_int, default=1,
                   help="score up to K sequences spread over each video (score = mean); a short clip gets "
                        "fewer (never windows padded with black frames)")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="seconds allowed to decode one file")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--json", action="store_true", help="one JSON object per video, then a summary object")
    p.add_argument("--csv", metavar="FILE", help="also write the results as CSV")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--mkdir", action="store_true", help="create missing folders of --csv/--html (else an error)")
    p.add_argument("--db", metavar="FILE", help="results database (default: the user data folder)")
    p.add_argument("--force", action="store_true", help="rescore files already scored with this model")
    p.add_argument("--fail-on-fake", action="store_true", help="exit 1 when any video is fake")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _watch_arguments(p)
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: spread the files over a Ray cluster (pip install 'truthnet[ray]')")
    p.add_argument("--ray-address", help="an existing Ray cluster (default: start a local one)")
    p.add_argument("--num-workers", type=positive_int, default=2, help="Ray workers (each loads the model once)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("results", help="list past scans, show one scan's verdicts, or export one as JSON/CSV/HTML")
    p.add_argument("--scan", type=int, help="scan id: print its verdicts (default when exporting: the latest)")
    p.add_argument("--json", action="store_true", help="print the scan's results, one JSON object per line")
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--html", metavar="FILE")
    p.add_argument("--mkdir", action="store_true", help="create missing folders of --csv/--html (else an error)")
    p.add_argument("--db", metavar="FILE", help="results database (must exist; default: the user data folder)")
    p.add_argument("--limit", type=positive_int, default=20)
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

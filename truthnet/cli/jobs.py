"""``truthnet jobs add / list / log / cancel / retry / run``: the job queue, headless.

The queue is in the results store (``--db``, default the same as ``truthnet scan`` and the
TUI), so jobs added here show in the TUI and jobs queued in the TUI show here.
"""

from __future__ import annotations

import json
import os
import sys
import time

from .console import stdout_console
from ..errors import ConfigError
from ..jobs.text import env_text, eta_text, progress_text


def _queue(args):
    from ..jobs import JobQueue

    return JobQueue(args.db)


def command_args(kind: str, path: str, rest: list[str]):
    """The command ``jobs add KIND PATH REST...`` queues, parsed by that command's own parser:
    the same options, defaults and usage errors as ``truthnet KIND`` (evaluate takes its model
    as ``-m``, like the other kinds)."""
    from . import experiment as cli_experiment
    from . import scan as cli_scan
    from .exitcodes import UsageParser

    def build_parser():  # `truthnet KIND`'s own parser (the CLI's, without importing it: no cycle)
        parser = UsageParser(prog="truthnet")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        (cli_scan if kind == "scan" else cli_experiment).register(sub)
        return parser

    rest = list(rest)
    if kind == "evaluate":
        pre = UsageParser(prog="truthnet jobs add evaluate", add_help=False)
        pre.add_argument("--model", "-m")
        known, rest = pre.parse_known_args(rest)
        from ..resolve import resolve_model

        return rest, build_parser().parse_args(["evaluate", resolve_model(known.model), path, *rest])
    return rest, build_parser().parse_args([kind, path, *rest])


def cmd_add(args) -> int:
    """``truthnet jobs add KIND PATH [the options of truthnet KIND]``: checked now as the command
    would check them, run later exactly as the command would run."""
    from ..device import device_name
    from ..jobs.queue import check_job

    command = _queue_options(args)
    device = device_name(args.device)
    try:
        rest, ns = command_args(args.kind, args.path, command)
    except SystemExit as exc:  # the command's own usage error, printed by its parser (exit 3)
        return int(exc.code or 0)
    if getattr(ns, "quiet", False):
        raise ConfigError("--quiet: not for a queued job (its output is its log: `truthnet jobs log ID`)")
    model = _check_command(args.kind, args.path, ns)
    # the target first, then the model; checked before the store is opened (JobQueue.add
    # checks again, for every caller)
    target, model = check_job(args.kind, args.path, model)
    if len(getattr(ns, "paths", ())) > 1:
        raise ConfigError("one folder or file per scan job: queue one job for each")
    options = {"argv": rest, "args": _stored_args(ns, model)}
    q = _queue(args)
    jid = q.add(args.kind, target, model=model, preset=getattr(ns, "preset", None), device=device,
                force=bool(getattr(ns, "force", False)), options=options, origin="cli")
    if args.json:
        print(json.dumps(q.get(jid), default=str))
    else:
        print(f"job {jid} queued: {args.kind} {target} on {device}")
        _hint_unserved(q)
    return 0


def _queue_options(args) -> list[str]:
    """Take the queue's own options out of the command's (they may come anywhere: `jobs add train
    DATA --device gpu:0 --epochs 3`); the job's device is the device the command runs on, its
    store the queue's.  Returns the command's arguments."""
    from .exitcodes import UsageParser

    own = UsageParser(prog="truthnet jobs add", add_help=False)
    own.add_argument("--device")
    own.add_argument("--db")
    own.add_argument("--json", action="store_true")
    mine, command = own.parse_known_args(args.command_args)
    args.device, args.db, args.json = mine.device or args.device, mine.db or args.db, mine.json or args.json
    return command


def _check_command(kind: str, path: str, ns) -> str | None:
    """What the command itself would check before any work (the target first, then the model,
    as the commands do); returns the model the job will use (None for training)."""
    from .. import api
    from ..paths import norm

    if not os.path.lexists(norm(path)):
        raise ConfigError(f"no such file or folder: {path}")
    if kind == "scan":
        from .scan import check_outputs

        if getattr(ns, "watch", False):
            raise ConfigError("--watch: not for a queued job (a watcher never finishes); run `truthnet scan --watch` itself")

        check_outputs(ns)
        model = api.ScanOptions.from_args(vars(ns)).model
        api.plan(ns.paths, recursive=ns.recursive, include=ns.include, exclude=ns.exclude)
        return model
    if kind == "train":
        api.train_settings(vars(ns))  # plugin names, options and weights: now, not in the job
        api.check_dataset(ns.dataset, ns.layout)
        return None
    api.check_dataset(ns.dataset, ns.layout)
    return ns.model


def _stored_args(ns, model: str | None) -> dict:
    """The parsed command as the job stores it: JSON, every path absolute (the job runs in
    another folder)."""
    stored = {k: v for k, v in vars(ns).items() if k not in ("func",)}
    for key in ("html", "csv", "output", "cache", "model"):
        if stored.get(key):
            stored[key] = os.path.abspath(os.path.expanduser(stored[key]))
    if stored.get("weights") and stored["weights"] not in ("imagenet", "none"):
        stored["weights"] = os.path.abspath(os.path.expanduser(stored["weights"]))
    if model:
        stored["model"] = model
    return json.loads(json.dumps(stored, default=str))


def _hint_unserved(q) -> None:
    """Say which queued jobs wait for a runner nobody started, and nothing when none waits."""
    served = {d for r in q.runners() for d in r["devices"]}
    waiting: dict[str, int] = {}
    for j in q.jobs(["queued"]):
        if j["device"] not in served:
            waiting[j["device"]] = waiting.get(j["device"], 0) + 1
    for device, n in sorted(waiting.items()):
        print(f"{n} queued job(s) wait for {device}, and no runner serves it: start one with "
              f"`truthnet jobs run --device {device}`", file=sys.stderr)


def cmd_list(args) -> int:
    q = _queue(args)
    jobs = q.jobs(args.state, limit=args.limit)
    if args.json:
        for j in jobs:
            j["eta_text"] = eta_text(j)
            sys.stdout.write(json.dumps(j, default=str) + "\n")
        return 0
    from rich.table import Table

    def when(t):
        return time.strftime("%m-%d %H:%M:%S", time.localtime(t)) if t else ""

    from rich.text import Text

    from ..paths import one_line

    def cell(value) -> Text:  # a path or message is text, never markup, and one line
        return Text(one_line(str(value or "")))

    t = Table(title=Text(f"jobs in {one_line(str(q.path))}"), title_justify="left")
    _hint_unserved(q)
    for col in ("id", "kind", "target", "device", "state", "progress", "ETA", "pid", "env", "started", "finished",
                "message"):
        t.add_column(col, overflow="fold")
    for j in jobs:
        t.add_row(str(j["id"]), cell(j["kind"]), cell(j["target"]), cell(j["device"]), j["state"], cell(progress_text(j)),
                  eta_text(j), str(j["pid"] or ""), cell(env_text(j)), when(j["started"]), when(j["finished"]),
                  cell(_first_line(j["message"])))
    stdout_console().print(t)
    return 0


def _first_line(text: str | None) -> str:
    """A job's message in a table row: its first line (a multi-line error is in `jobs log`)."""
    lines = (text or "").strip().splitlines() or [""]
    return lines[0] + (" … (truthnet jobs log ID)" if len(lines) > 1 else "")


def cmd_log(args) -> int:
    from ..paths import one_line

    q = _queue(args)
    q.get(args.id)  # an unknown id is an error, not an empty log
    last = 0
    rows = q.log(args.id, tail=args.tail)
    while True:
        for lid, _, line in rows:
            sys.stdout.write(one_line(line) + "\n")  # one stored line is one printed line
            last = lid
        sys.stdout.flush()
        if not args.follow:
            return 0
        if q.get(args.id)["state"] not in ("queued", "running"):
            rows = q.log(args.id, after=last)
            if not rows:
                return 0
            continue
        time.sleep(0.5)
        rows = q.log(args.id, after=last)


def cmd_cancel(args) -> int:
    how = _queue(args).cancel(args.id)
    if how == "cancelled":
        print(f"job {args.id} cancelled (it had not started)")
    else:
        print(f"job {args.id}: its runner will stop it (SIGTERM, then SIGKILL after the runner's grace period)")
    return 0


def cmd_retry(args) -> int:
    _queue(args).retry(args.id)
    print(f"job {args.id} queued again")
    return 0


def cmd_run(args) -> int:
    from .exitcodes import ExitCode
    from ..device import device_name
    from ..jobs import discover_devices
    from ..jobs.runner import Runner

    devices = [device_name(d) for d in args.device or []]
    if not devices or (not args.skip_gpu_check and any(d != "cpu" for d in devices)):
        known = discover_devices()
        missing = [d for d in devices if d not in known]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not found: TensorFlow sees {len(known) - 1} GPU(s) here "
                              f"(devices: {', '.join(known)})")
        devices = devices or known
    runner = Runner(args.db, devices, until_empty=args.until_empty, grace=args.grace, owner=args.owner)
    runner.run()
    return ExitCode.INTERRUPTED if runner.stop_reason and runner.stop_reason.startswith("received") else 0


def register(sub) -> None:
    import argparse

    from ..jobs import JOB_KINDS, STATES

    p = sub.add_parser("jobs", help="queue scans, training and evaluations and run them, one process per job "
                                    "(see docs/jobs.md)")
    js = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    def common(sp):
        sp.add_argument("--db", metavar="FILE", help="results database (default: the same as scan and the TUI)")
        return sp

    a = common(js.add_parser(
        "add", help="queue a job: truthnet jobs add KIND PATH [--device D] [the options of truthnet KIND]",
        description="Queue `truthnet scan|train|evaluate PATH OPTIONS` to run in the background. The options after "
                    "PATH are the command's own, with its defaults, checked now (evaluate: its model as -m).",
        usage="truthnet jobs add [--db FILE] [--device D] [--json] {scan,train,evaluate} PATH [options of the command]"))
    a.add_argument("kind", choices=JOB_KINDS)
    a.add_argument("path", help="folder (scan: also a file) to work on; train/evaluate: a dataset or manifest CSV")
    a.add_argument("--device", default="cpu", help="cpu or gpu:N (default cpu): where the job runs")
    a.add_argument("--json", action="store_true", help="print the queued job as JSON")
    a.add_argument("command_args", nargs=argparse.REMAINDER, metavar="...",
                   help="the options of `truthnet KIND` (see `truthnet KIND -h`)")
    a.set_defaults(func=cmd_add)

    a = common(js.add_parser("list", help="list jobs: state, progress, ETA, pid and device environment"))
    a.add_argument("--state", action="append", choices=STATES, help="only jobs in this state (repeatable)")
    a.add_argument("--limit", type=int, default=50, help="the newest N jobs (default 50)")
    a.add_argument("--json", action="store_true", help="one JSON object per job")
    a.set_defaults(func=cmd_list)

    a = common(js.add_parser("log", help="print a job's log"))
    a.add_argument("id", type=int)
    a.add_argument("--tail", type=int, help="only the last N lines")
    a.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    a.set_defaults(func=cmd_log)

    a = common(js.add_parser("cancel", help="cancel a queued job, or stop a running one"))
    a.add_argument("id", type=int)
    a.set_defaults(func=cmd_cancel)

    a = common(js.add_parser("retry", help="queue a failed, cancelled or interrupted job again"))
    a.add_argument("id", type=int)
    a.set_defaults(func=cmd_retry)

    a = common(js.add_parser("run", help="run queued jobs: one at a time per device, devices in parallel"))
    a.add_argument("--device", action="append", metavar="D",
                   help="cpu or gpu:N, repeatable (default: cpu and every GPU TensorFlow sees)")
    a.add_argument("--until-empty", action="store_true", help="exit when nothing is queued for these devices")
    a.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL (default 10)")
    a.add_argument("--skip-gpu-check", action="store_true",
                   help="do not ask TensorFlow (in a child process) whether the GPUs given exist")
    a.add_argument("--owner", default="cli", help=argparse.SUPPRESS)
    a.set_defaults(func=cmd_run)

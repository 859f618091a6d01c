"""What a job does, inside its own process: scan, train, evaluate (and a test-only kind).

:func:`run_work` is the one place that maps a job onto TruthNet's functions.  It reports
structured progress through ``report(stage, done, total, message)`` and writes log lines to
stdout (the runner stores them); it never parses its own log text back into numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ..paths import one_line
from ..errors import ConfigError
from ..store import Store
from .queue import JOB_KINDS

#: ``report(stage, done, total, message)``; stage/done/total None: only the message changed
Report = Callable[[Optional[str], Optional[int], Optional[int], str], None]


def run_work(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    """Do ``job``'s work in this process; returns its result (``message``: one line for people).

    Cancellation arrives as KeyboardInterrupt (the job's process turns SIGTERM into it)."""
    kinds = {"scan": _scan, "train": _train, "evaluate": _evaluate, "explain": _explain, "watch": _watch}
    if job["kind"] not in kinds:  # a kind an installed plugin provides (truthnet_register_job_kinds)
        from .. import plugins

        try:
            run = plugins.get_entry("job_kind", job["kind"]).factory
        except ConfigError as exc:
            raise ConfigError(f"unknown job kind {job['kind']!r}; known: {', '.join(JOB_KINDS)}",
                              hint=getattr(exc, "hint", None)) from None
        return run(job, store, report, out_dir)
    if job["device"] != "cpu":
        _require_gpu(job)
    return kinds[job["kind"]](job, store, report, out_dir)


def _say(line: str) -> None:
    print(line, flush=True)


def _require_gpu(job: dict) -> None:
    """A GPU job on a machine where TensorFlow sees no GPU would silently run on the CPU."""
    from .._lazy import import_tensorflow

    if not import_tensorflow().config.list_physical_devices("GPU"):
        raise ConfigError(
            f"job {job['id']} is for {job['device']} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}) "
            "but TensorFlow sees no GPU in its process; queue it for cpu or check the driver (nvidia-smi)")


def event_progress(report: Report):
    """An ``on_event`` for :mod:`truthnet.api`: each event's message goes to the log, and its
    structure (stage, done, total) becomes the job's progress; no log text is parsed."""

    def on_event(ev) -> None:
        _say(ev.message)
        if ev.total:
            report(ev.stage, ev.done, ev.total, ev.message)
        else:
            report(None, None, None, ev.message)

    return on_event


def _model(job: dict) -> str:
    from ..resolve import resolve_model

    return resolve_model(job.get("model"))  # jobs are queued with one; older ones may use the default


def _command(job: dict) -> dict | None:
    """The parsed options of the command a job was queued as (``jobs add KIND PATH OPTIONS``),
    or None for a job queued with the TUI's few settings."""
    return (job.get("options") or {}).get("args")


def _scan(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    from .. import api

    command = _command(job)
    model = _model(job)
    base = job["target"] if os.path.isdir(job["target"]) else os.path.dirname(job["target"])
    _say(one_line(f"scanning {job['target']} with {model}"))

    def on_event(ev) -> None:
        row = ev.result
        if row is None:
            report("scan", 0, ev.total, f"0/{ev.total} files")
            return
        name, verdict = _verdict(row, base)
        _say(f"{name}: {verdict}")
        report("scan", ev.done, ev.total, f"{ev.done}/{ev.total} files, last: {name} {verdict}")

    if command is not None:  # exactly `truthnet scan PATH OPTIONS`, with its defaults
        opts = api.ScanOptions.from_args(command)
        opts.device, opts.model = None, model  # (the runner gave this process its device)
        out = api.scan([job["target"]], opts, db=store.path, asked={"job": job["id"], **command}, on_event=on_event)
        _reports(store, out.summary.scan_id, command)
    else:  # the TUI's scan of a folder: everything below it
        out = api.scan([job["target"]], model=model, preset=job.get("preset"), db=store.path, recursive=True,
                       force=bool(job.get("force")), asked={"job": job["id"]}, on_event=on_event)
    summary = out.summary
    if summary.interrupted:  # the scanner stopped cleanly on SIGTERM: the job stops here too
        raise KeyboardInterrupt
    d = summary.to_dict()
    return {"scan_id": summary.scan_id, "summary": d, "model": str(model),
            "message": f"{d['fake']} fake, {d['real']} real, {d['failed']} not scored (scan #{summary.scan_id})"}


def _verdict(row, base: str) -> tuple[str, str]:
    """A result's name (relative to ``base``) and verdict, one line each; the threshold beside
    the score: the log says why it is that verdict."""
    if row.status == "ok":
        verdict = f"{row.label} {row.score:.3f} ({'>=' if row.score >= row.threshold else '<'} {row.threshold:.2f})"
    else:
        verdict = f"{row.status}: {one_line(row.reason or '')}"
    return one_line(os.path.relpath(row.path, base)), verdict


def _watch(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    """``truthnet scan --watch`` as a job: runs until cancelled, each result logged as it comes."""
    from .. import api

    model = _model(job)
    _say(one_line(f"watching {job['target']} with {model}"))

    def on_event(ev) -> None:
        if ev.result is None:
            if ev.message:
                _say(one_line(ev.message))
            return
        name, verdict = _verdict(ev.result, job["target"])
        _say(f"{name}: {verdict}")
        report(None, None, None, f"watching: {ev.done} scored, last: {name} {verdict}")

    api.watch(job["target"], model=model, preset=job.get("preset"), db=store.path, asked={"job": job["id"]},
              on_event=on_event)
    raise KeyboardInterrupt  # a watcher ends only when asked to: the job was stopped


def _explain(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    """One file's explanation, kept in the store (the details screen shows it) and written to
    the job's folder as PNG and JSON."""
    from .. import api

    model = _model(job)
    _say(one_line(f"explaining {job['target']} with {model}"))
    report("explain", 0, 1, "scoring and explaining")
    expl, written = api.explain(job["target"], model=model, preset=job.get("preset"), db=store.path, output=out_dir)
    r = expl.result
    if not r.ok:
        raise ConfigError(one_line(f"{r.status}: {r.reason}: nothing to explain"))
    report("explain", 1, 1, "explained")
    for path in written:
        _say(one_line(f"wrote {path}"))
    return {"model": str(model), "png": written[0], "sha256": r.sha256,
            "message": f"{r.label} {r.score:.3f}: explanation kept (d on the video shows it)"}


def _reports(store: Store, scan_id: int, command: dict) -> None:
    """``--html``/``--csv`` of a queued scan, written as the command writes them."""
    from ..reports.html import write_csv, write_html

    scan = store.scan(scan_id)
    for flag, write in (("csv", write_csv), ("html", write_html)):
        if command.get(flag):
            path = write(store.results(scan_id, with_thumbs=flag == "html"), command[flag], scan=scan,
                         **({"store": store} if flag == "html" else {}))
            _say(one_line(f"wrote the {flag.upper()} report: {path}"))


def _train(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    from .. import api
    from ..config import PipelineConfig
    from ..training import TrainConfig

    command = _command(job)
    if command is not None:  # exactly `truthnet train DATA OPTIONS`, into the job's folder unless -o
        cfg, tcfg = api.train_settings(command)
        res = api.train(job["target"], command.get("output") or out_dir, cfg, tcfg, layout=command.get("layout"),
                        cache_dir=command.get("cache"), on_event=event_progress(report))
        return {"model": str(res.model_path), "out_dir": str(res.model_path.parent), "counts": res.counts,
                "message": f"model saved to {res.model_path}"}
    preset = job.get("preset") or "tiny"
    cfg = PipelineConfig.preset(preset)
    # the paper's hyperparameters for the paper's presets; the tiny CNN needs a larger step
    tcfg = TrainConfig() if preset.startswith("paper") else TrainConfig(
        epochs=12, batch_size=8, learning_rate=1e-3, patience=None)
    res = api.train(job["target"], out_dir, cfg, tcfg, on_event=event_progress(report))
    return {"model": str(res.model_path), "out_dir": str(out_dir), "counts": res.counts,
            "message": f"model saved to {res.model_path}"}


def _evaluate(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    from .. import api

    model = _model(job)
    command = _command(job)
    if command is not None:  # exactly `truthnet evaluate MODEL DATA OPTIONS`, into the job's folder unless -o
        clf = api.load(model, threshold=command.get("threshold"), sampler=command.get("sampler"),
                       detector=command.get("detector"), parts=command.get("option"))
        out_dir = Path(command.get("output") or out_dir)
        metrics = api.evaluate(clf, job["target"], out_dir, split=command.get("split"), layout=command.get("layout"),
                               include_training=bool(command.get("include_training_videos")),
                               on_event=event_progress(report))
    else:
        clf = api.load(model, preset=job.get("preset"))
        # the split as asked (the TUI's dialog); None: test on the model's own dataset, all
        # videos of another; the model's training videos are left out unless asked
        opts = job.get("options") or {}
        metrics = api.evaluate(clf, job["target"], out_dir, split=opts.get("split"),
                               include_training=bool(opts.get("include_training")), on_event=event_progress(report))
    auc = "n/a" if metrics["roc_auc"] is None else f"{metrics['roc_auc']:.3f}"
    return {"metrics": str(out_dir / "metrics.json"), "out_dir": str(out_dir), "model": str(model),
            "message": f"{metrics['split']} split, {metrics['split_videos']} videos: accuracy "
                       f"{metrics['accuracy']:.3f}, ROC-AUC {auc}"}

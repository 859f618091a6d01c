"""Queued work (scan, train, evaluate) for the TUI, run one job at a time per device.

The queue lives in the results store, so it outlives the app.  A job reports progress and log
lines through callbacks and stops when its ``cancel`` event is set.  Nothing here imports
Textual: the TUI runs :func:`run_job` in a worker thread and turns the callbacks into messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import TruthnetError
from .store import Store

JOB_KINDS = ("scan", "train", "evaluate")


class Cancelled(Exception):
    """Raised inside a job when the user cancelled it."""


def runs_dir() -> Path:
    from .store import default_db_path

    return default_db_path().parent / "runs"


def run_job(
    store: Store,
    job: dict,
    *,
    cancel: threading.Event,
    report: Callable[[float, str], None],
    log: Callable[[str], None],
    out_root: Path | None = None,
) -> dict:
    """Run one job to its end and record the outcome in the store; returns the job's row."""
    jid = job["id"]

    def say(msg: str) -> None:
        store.append_job_log(jid, msg)
        log(msg)

    try:
        if job["kind"] == "scan":
            result = _scan(store, job, cancel, report, say)
        elif job["kind"] == "train":
            result = _train(job, cancel, report, say, out_root)
        elif job["kind"] == "evaluate":
            result = _evaluate(job, cancel, report, say, out_root)
        else:
            raise TruthnetError(f"unknown job kind {job['kind']!r}; known: {', '.join(JOB_KINDS)}")
        state, message = "done", result.pop("message", "done")
    except Cancelled:
        state, message, result = "cancelled", "cancelled by the user", None
    except TruthnetError as exc:
        state, message, result = "failed", str(exc), None
    except Exception as exc:  # the app must survive any job failure; the job records it
        state, message, result = "failed", f"{type(exc).__name__}: {exc}", None
    say(f"{state}: {message}")
    fields = {"state": state, "message": message, "finished": time.time()}
    if result is not None:
        fields["result"] = result
        fields["progress"] = 1.0
    store.update_job(jid, **fields)
    return store.job(jid)


def _detector(job: dict):
    from .config import PipelineConfig
    from .classifier import load_classifier
    from .errors import ModelError
    from .settings import default_model

    model = job.get("model") or default_model()
    if not model:
        raise ModelError("no model chosen and no default model configured (run `truthnet demo` or train one)")
    cfg = PipelineConfig.preset(job["preset"]) if job.get("preset") else None
    return model, load_classifier(model, cfg)


def _scan(store: Store, job: dict, cancel, report, say) -> dict:
    from .scanning import Scanner, collect_files

    model, det = _detector(job)
    collected = collect_files([job["target"]], recursive=True)
    total = max(len(collected.files) + len(collected.problems), 1)
    say(f"scanning {total} files in {job['target']} with {model}")
    done = 0
    t0 = time.perf_counter()

    def on_result(row) -> None:
        nonlocal done
        done += 1
        rate = done / max(time.perf_counter() - t0, 1e-6)
        eta = (total - done) / rate if rate else 0
        verdict = f"{row.label} {row.score:.3f}" if row.status == "ok" else f"{row.status}: {row.reason}"
        say(f"{Path(row.path).name}: {verdict}")
        report(done / total, f"{done}/{total} files, {rate:.2f} files/s, ETA {eta:.0f} s")
        if cancel.is_set():
            raise KeyboardInterrupt  # the scanner stops cleanly and marks the scan interrupted

    summary = Scanner(det, store, model_path=str(model)).scan(
        collected.files, problems=collected.problems, roots=[job["target"]], on_result=on_result
    )
    if summary.interrupted:
        raise Cancelled()
    d = summary.to_dict()
    return {"scan_id": summary.scan_id, "summary": d,
            "message": f"{d['fake']} fake, {d['real']} real, {d['failed']} not scored"}


def _out_dir(job: dict, out_root: Path | None) -> Path:
    return (out_root or runs_dir()) / f"job-{job['id']}-{job['kind']}"


def _train(job: dict, cancel, report, say, out_root) -> dict:
    from .config import PipelineConfig
    from .training import TrainConfig, train

    preset = job.get("preset") or "tiny"
    cfg = PipelineConfig.preset(preset)
    tcfg = TrainConfig() if preset == "paper" else TrainConfig(epochs=12, batch_size=8, learning_rate=1e-3, patience=None)
    out = _out_dir(job, out_root)

    def progress(msg: str) -> None:
        if cancel.is_set():
            raise Cancelled()
        say(msg)
        if msg.startswith("epoch "):
            n, of = msg.split()[1].split("/")
            report(0.3 + 0.7 * int(n) / int(of), msg)
        elif msg.startswith("faces:"):
            i, n = msg.split()[1].split("/")
            report(0.3 * int(i) / max(int(n), 1), msg)

    res = train(job["target"], out, cfg, tcfg, progress=progress)
    return {"model": str(res.model_path), "out_dir": str(out), "counts": res.counts,
            "message": f"model saved to {res.model_path}"}


def _evaluate(job: dict, cancel, report, say, out_root) -> dict:
    from .evaluation import evaluate

    model, det = _detector(job)
    out = _out_dir(job, out_root)

    def progress(msg: str) -> None:
        if cancel.is_set():
            raise Cancelled()
        say(msg)
        total = getattr(msg, "total", 0)  # a ProgressText carries its counts; other lines are log only
        if total:
            report(msg.done / total, msg)

    # the split as asked in the dialog; None: test on the model's own dataset, all of another
    opts = job.get("options") or {}
    metrics = evaluate(det, job["target"], out, split=opts.get("split"),
                       include_training=bool(opts.get("include_training")), progress=progress)
    return {"metrics": str(out / "metrics.json"), "out_dir": str(out), "model": str(model),
            "message": f"{metrics['split']} split, {metrics['split_videos']} videos: accuracy "
                       f"{metrics['accuracy']:.3f}, ROC-AUC "
                       + ("n/a" if metrics["roc_auc"] is None else f"{metrics['roc_auc']:.3f}")}

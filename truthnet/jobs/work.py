"""What a job does, inside its own process: scan, train, evaluate (and a test-only kind).

:func:`run_work` is the one place that maps a job onto TruthNet's functions.  It reports
structured progress through ``report(stage, done, total, message)`` and writes log lines to
stdout (the runner stores them); it never parses its own log text back into numbers.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, ModelError
from ..store import Store
from .queue import JOB_KINDS, SELFTEST_KIND

#: ``report(stage, done, total, message)``; stage/done/total None: only the message changed
Report = Callable[[Optional[str], Optional[int], Optional[int], str], None]


def run_work(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    """Do ``job``'s work in this process; returns its result (``message``: one line for people).

    Cancellation arrives as KeyboardInterrupt (the job's process turns SIGTERM into it)."""
    kinds = {"scan": _scan, "train": _train, "evaluate": _evaluate, SELFTEST_KIND: _selftest}
    if job["kind"] not in kinds:
        raise ConfigError(f"unknown job kind {job['kind']!r}; known: {', '.join(JOB_KINDS)}")
    if job["kind"] in JOB_KINDS and job["device"] != "cpu":
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


def text_progress(report: Report) -> Callable[[str], None]:
    """A ``progress(text)`` callback for training/evaluation: each line goes to the log; a
    leading ``stage: N/M`` (``epoch 3/12 ...``, ``faces: 10/40 videos``) also becomes a progress
    event.  A line in any other form only updates the message: rewording cannot fail a job."""
    count = re.compile(r"^\s*([A-Za-z][\w ]*?):?\s+(\d+)\s*/\s*(\d+)\b")

    def progress(text: str) -> None:
        _say(text)
        m = count.match(text)
        if m:
            report(m.group(1).strip(), int(m.group(2)), int(m.group(3)), text)
        else:
            report(None, None, None, text)

    return progress


def _detector(job: dict):
    from ..config import PipelineConfig
    from ..detector import load_detector
    from ..settings import default_model

    model = job.get("model") or default_model()
    if not model:
        raise ModelError("the job names no model and no default model is set (`truthnet default-model PATH`)")
    cfg = PipelineConfig.preset(job["preset"]) if job.get("preset") else None
    return model, load_detector(model, cfg)


def _scan(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    from ..scanning import Scanner, collect_files

    model, det = _detector(job)
    collected = collect_files([job["target"]], recursive=True)
    total = len(collected.files) + len(collected.problems)
    _say(f"scanning {total} files under {job['target']} with {model}")
    report("scan", 0, total, f"0/{total} files")
    done = 0
    base = job["target"] if os.path.isdir(job["target"]) else os.path.dirname(job["target"])

    def on_result(row) -> None:
        nonlocal done
        done += 1
        verdict = f"{row.label} {row.score:.3f}" if row.status == "ok" else f"{row.status}: {row.reason}"
        name = os.path.relpath(row.path, base)
        _say(f"{name}: {verdict}")
        report("scan", done, total, f"{done}/{total} files, last: {name} {verdict}")

    summary = Scanner(det, store, model_path=str(model), force=bool(job.get("force"))).scan(
        collected.files, problems=collected.problems, roots=[job["target"]], options={"job": job["id"]},
        on_result=on_result,
    )
    if summary.interrupted:  # the scanner stopped cleanly on SIGTERM: the job stops here too
        raise KeyboardInterrupt
    d = summary.to_dict()
    return {"scan_id": summary.scan_id, "summary": d, "model": str(model),
            "message": f"{d['fake']} fake, {d['real']} real, {d['failed']} not scored (scan #{summary.scan_id})"}


def _train(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    from ..config import PipelineConfig
    from ..training import TrainConfig, train

    preset = job.get("preset") or "tiny"
    cfg = PipelineConfig.preset(preset)
    # the paper's hyperparameters for the paper's presets; the tiny CNN needs a larger step
    tcfg = TrainConfig() if preset.startswith("paper") else TrainConfig(
        epochs=12, batch_size=8, learning_rate=1e-3, patience=None)
    res = train(job["target"], out_dir, cfg, tcfg, progress=text_progress(report))
    return {"model": str(res.model_path), "out_dir": str(out_dir), "counts": res.counts,
            "message": f"model saved to {res.model_path}"}


def _evaluate(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    from ..evaluation import evaluate

    model, det = _detector(job)
    metrics = evaluate(det, job["target"], out_dir, split="all", progress=text_progress(report))
    auc = "n/a" if metrics["roc_auc"] is None else f"{metrics['roc_auc']:.3f}"
    return {"metrics": str(out_dir / "metrics.json"), "out_dir": str(out_dir), "model": str(model),
            "message": f"accuracy {metrics['accuracy']:.3f}, ROC-AUC {auc}"}


def _selftest(job: dict, store: Store, report: Report, out_dir: Path) -> dict:
    """TEST-ONLY kind ``_selftest`` (not offered by ``truthnet jobs add`` nor the TUI): reports the
    environment its process saw, and does what the fault tests ask through ``options``: append
    its id to a ``mark`` file, ``ignore_sigterm``, print ``lines`` lines, sleep ``sleep`` seconds
    (only on the attempts listed in ``sleep_attempts``, if given) in ``steps``, ``abort``.
    It imports no TensorFlow, so fault tests run in seconds."""
    import signal

    o = job.get("options") or {}
    if o.get("mark"):
        with open(o["mark"], "a") as fh:
            fh.write(f"{job['id']} {os.getpid()}\n")
    if o.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for i in range(int(o.get("lines", 0))):
        print(f"selftest line {i}")
    sys.stdout.flush()
    sleep = float(o.get("sleep", 0))
    if "sleep_attempts" in o and job.get("attempt") not in o["sleep_attempts"]:
        sleep = 0.0
    steps = max(1, int(o.get("steps", 1)))
    for i in range(steps):
        report("sleep", i, steps, f"step {i}/{steps}")
        time.sleep(sleep / steps)
    if o.get("abort"):
        os.abort()
    report("sleep", steps, steps, "slept")
    return {"message": "selftest done", "pid": os.getpid(), "attempt": job.get("attempt"),
            "env": {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")},
            "tensorflow_loaded": "tensorflow" in sys.modules}

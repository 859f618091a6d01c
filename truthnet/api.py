"""The API that the CLI, the TUI and the job queue are thin over.

Each function does one whole piece of work and returns data; none prints or exits.  Each
takes ``on_event`` (called with :class:`~truthnet.events.Event` as the work goes) and ``cancel``
(anything with ``is_set()``, e.g. :class:`threading.Event`): a cancelled scan returns its
summary marked ``interrupted`` (everything finished is stored); cancelled training, evaluation
or calibration raise :class:`~truthnet.errors.Cancelled`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Cancelled, ConfigError
from .events import Event

OnEvent = Callable[[Event], None]


@dataclass
class ScanOutcome:
    """What :func:`scan` returns: the summary, and where its results are stored."""

    summary: Any  # truthnet.scanning.ScanSummary
    db: Path
    model: str

    @property
    def scan_id(self) -> int:
        return self.summary.scan_id


def _progress(on_event: OnEvent | None, cancel) -> Callable[[Event], None]:
    """A library ``progress(event)`` callback that forwards events and honours ``cancel``."""

    def progress(event: Event) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        if on_event is not None:
            on_event(Event.of(event))

    return progress


def load(model: str | os.PathLike | None = None, *, preset: str | None = None, threshold: float | None = None,
         device: str | None = None, sampler: str | None = None, detector: str | None = None,
         parts: list[str] | None = None, background: bool = False):
    """The classifier for ``model`` (default: the configured default model); ``preset`` for a
    bare model file; ``sampler``/``detector``/``parts`` (``part.key=value``) change its
    pipeline's parts (the backbone is fixed by the trained model).  ``background``: read the
    weights in a thread (see :func:`~truthnet.classifier.load_classifier`)."""
    from .classifier import load_classifier
    from .resolve import resolve_model

    path = resolve_model(model)
    if device:
        from .device import use_device

        use_device(device)
    from .resolve import inference_config

    cfg = inference_config(path, preset=preset, sampler=sampler, detector=detector, options=parts)
    return load_classifier(path, cfg, threshold=threshold, device=device, background=background)


def plan(paths: Sequence[str | os.PathLike], *, recursive: bool = False, include: list[str] | None = None,
         exclude: list[str] | None = None):
    """The files a scan of ``paths`` would score (:class:`~truthnet.collect.Collected`), checked
    before any model loads: a named path that does not exist, or nothing to scan at all, is a
    :class:`~truthnet.errors.ConfigError` (a folder whose videos are all in sub-folders says how
    many and suggests ``recursive``)."""
    from .collect import collect_files

    collected = collect_files(paths, recursive=recursive, include=include, exclude=exclude)
    if collected.missing:
        raise ConfigError(f"no such file or folder: {', '.join(collected.missing)}")
    if not collected.files and not collected.problems:
        if collected.below:  # (each named folder counted: all its videos are below it)
            where = "; ".join(f"{p} has {n} in sub-folders" for p, n in collected.below.items())
            raise ConfigError(f"no videos directly in the given folder(s): {where}",
                              hint="scan them with -r, or recursive=True from Python")
        raise ConfigError(f"nothing to scan: no video files in {', '.join(os.fspath(p) for p in paths)}",
                          hint="--include GLOB picks files by name when they lack a video extension")
    return collected


@dataclass
class ScanOptions:
    """How :func:`scan` scores: the model, which files, and how hard to try.

    ``classifier``: an already loaded model (a script scoring many folders keeps one) instead of
    loading ``model``.  ``max_wait``: seconds a decoded file may wait for a fuller model batch.
    ``sampler``/``detector``/``parts`` (``part.key=value`` options) change the model's pipeline.
    ``engine="ray"`` spreads the files over Ray (``ray``: ``address``, ``num_workers``,
    ``gpus_per_worker``)."""

    model: str | os.PathLike | None = None
    classifier: Any = None
    preset: str | None = None
    threshold: float | None = None
    recursive: bool = False
    include: list[str] | None = None
    exclude: list[str] | None = None
    windows: int = 1
    workers: int | None = None
    timeout: float = 120.0
    batch_size: int = 8
    max_wait: float | None = 0.5
    force: bool = False
    device: str | None = None
    sampler: str | None = None
    detector: str | None = None
    parts: list[str] | None = None
    engine: str = "local"
    ray: dict | None = None

    @classmethod
    def from_args(cls, args: dict) -> ScanOptions:
        """From ``truthnet scan``'s parsed options (a dict): the command and a queued scan job
        (``jobs add scan PATH OPTIONS``) make the same call."""
        from .resolve import resolve_model

        return cls(
            model=resolve_model(args.get("model")), preset=args.get("preset"), threshold=args.get("threshold"),
            device=args.get("device"), sampler=args.get("sampler"), detector=args.get("detector"),
            parts=args.get("option"), recursive=bool(args.get("recursive")), include=args.get("include"),
            exclude=args.get("exclude"), windows=args.get("windows", 1), workers=args.get("workers"),
            timeout=args.get("timeout", 120.0), batch_size=args.get("batch_size", 8), force=bool(args.get("force")),
            engine=args.get("engine", "local"),
            ray={"address": args.get("ray_address"), "num_workers": args.get("num_workers", 2),
                 "gpus_per_worker": args.get("gpus_per_worker", 0.0)},
        )

    def check(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"unknown engine {self.engine!r}; choose local or ray")
        if int(self.windows) < 1:
            raise ConfigError(f"windows must be at least 1, got {self.windows}")


def scan(paths: Sequence[str | os.PathLike], options: ScanOptions | None = None, *,
         db: str | os.PathLike | None = None, asked: dict | None = None, on_event: OnEvent | None = None,
         cancel=None, **overrides: Any) -> ScanOutcome:
    """Score every file under ``paths`` into the results store (``db``, default: the user's).

    ``options`` (:class:`ScanOptions`; any of its fields may also be given as a keyword, e.g.
    ``scan(["evidence/"], model="m.keras", recursive=True)``); ``asked``: what the caller was
    asked (a command's options, a job's id), stored with the scan.  Checked before the model
    loads (:class:`~truthnet.errors.ConfigError`): the paths (see :func:`plan`), the options and
    that the store can be opened.  ``Event("scan", 0, total)`` once the files are counted (before
    the model loads), again once scoring starts, then one ``Event("scan", done, total,
    result=...)`` per file."""
    from dataclasses import replace

    from .decode import isolation

    opts = replace(options or ScanOptions(), **overrides)
    opts.check()
    if opts.engine == "local":  # the decode workers' template imports while the files are listed and the model loads
        isolation.prestart()
    try:
        return _scan(paths, opts, db, asked, on_event, cancel)
    finally:
        isolation.discard_prestarted()  # (one no pool took: every file reused, or none to decode)


def _scan(paths, opts: ScanOptions, db, asked, on_event, cancel) -> ScanOutcome:
    from .paths import norm
    from .store import Store

    collected = plan(paths, recursive=opts.recursive, include=opts.include, exclude=opts.exclude)
    total = len(collected.files) + len(collected.problems)
    if on_event is not None:  # before the model loads: a progress display can start now
        on_event(Event("scan", 0, total, f"{total} files to scan"))
        for folder, n in collected.below.items():
            on_event(Event("log", message=f"note: {folder} has {n} more videos in sub-folders (add -r to scan them)"))
    store = Store(db)
    store.require_writable()
    # the weights load while the first files decode (the engine waits for them before any verdict);
    # a watcher loads them first: a model that cannot load is an error now, not at the first arrival
    clf, model_path = _classifier(opts, background=opts.engine != "ray")
    scanner = _scanner(opts, clf, store, model_path)
    done = 0
    if on_event is not None:  # scoring starts now, the weights loading meanwhile (a rate counts from here)
        on_event(Event("scan", 0, total, "scoring", card=scanner.card))

    def on_result(row) -> None:
        nonlocal done
        done += 1
        if on_event is not None:
            on_event(Event("scan", done, total, row.path, result=row))

    summary = scanner.scan(collected.files, problems=collected.problems, roots=[norm(p) for p in paths],
                           options=asked or {}, on_result=on_result, cancel=cancel)
    summary.not_scanned_below = sum(collected.below.values())
    return ScanOutcome(summary, store.path, model_path)


def watch(folder: str | os.PathLike, options: ScanOptions | None = None, *, db: str | os.PathLike | None = None,
          settle: float | None = None, poll: float | None = None, asked: dict | None = None,
          on_event: OnEvent | None = None, cancel=None, **overrides: Any) -> ScanOutcome:
    """Score every new or changed video under ``folder`` once it is complete, until ``cancel``
    is set (:mod:`truthnet.watch`); one scan in the store for the watcher's whole run.  What
    arrived while no watcher ran is scored first; what is already reported for these bytes and
    this model is not reported again.  ``settle``: seconds a file must stay unchanged (default
    2); ``poll``: walk the folder every ``poll`` seconds instead of listening to OS events.
    One ``Event("scan", done, 0, result=...)`` per result (``total`` is unknown: 0)."""
    from dataclasses import replace

    from . import watch as watching
    from .paths import norm
    from .store import Store

    opts = replace(options or ScanOptions(), **overrides)
    opts.check()
    root = norm(folder)
    if not os.path.isdir(root):
        raise ConfigError(f"--watch needs a folder: {folder} is not one")
    if opts.engine != "local":
        raise ConfigError("--watch scores on this machine: --engine ray is not for a watcher")
    for name, v in (("settle", settle), ("poll", poll)):
        if v is not None and not v > 0:
            raise ConfigError(f"--{name} must be a positive number of seconds, got {v}")
    store = Store(db)
    store.require_writable()
    clf, model_path = _classifier(opts)
    scanner = _scanner(opts, clf, store, model_path)
    done = 0
    if on_event is not None:
        on_event(Event("scan", 0, 0, "scoring", card=scanner.card))

    def on_result(row) -> None:
        nonlocal done
        done += 1
        if on_event is not None:
            on_event(Event("scan", done, 0, row.path, result=row))

    session = scanner.session([root], asked, on_result)
    state = "failed"
    try:
        watching.watch(root, session, settle=watching.SETTLE_SECONDS if settle is None else settle, poll=poll,
                       include=opts.include, exclude=opts.exclude, cancel=cancel,
                       on_log=None if on_event is None else (lambda m: on_event(Event("log", message=m))))
        state = "interrupted"  # a watcher ends only when asked to
    except KeyboardInterrupt:
        state = "interrupted"
    finally:
        summary = session.close(state)
    return ScanOutcome(summary, store.path, model_path)


def explain(path: str | os.PathLike, *, model: str | os.PathLike | None = None, classifier=None,
            preset: str | None = None, threshold: float | None = None, db: str | os.PathLike | None = None,
            output: str | os.PathLike | None = None, store: bool = True):
    """Explain one video's verdict (:mod:`truthnet.explain`) and keep it: in the store (``db``;
    the TUI and the HTML report show it beside the verdict) unless ``store`` is False, and as
    ``<output>/<name>.explain.png`` and ``.json`` when ``output`` is given.  Returns
    ``(Explanation, [files written])``; a file that cannot be scored gives an explanation
    holding just its failed result (nothing stored or written)."""

    from .explain.figure import png_bytes
    from .scanning import model_key
    from .store import Store

    st = None
    if store:  # a store that cannot keep it is an error before minutes of work, not after
        st = Store(db)
        st.require_writable()
    clf = classifier if classifier is not None else load(model, preset=preset, threshold=threshold)
    expl = clf.explain(path)
    written: list[str] = []
    if not expl.ok:
        return expl, written
    data, png = expl.to_dict(), png_bytes(expl)
    if st is not None:
        st.save_explanation(model_key(expl.model_sha256, clf.config, 1), data, png)
    if output is not None:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        written = _write_explanation(out, os.path.basename(os.fspath(path)), data, png)
    return expl, written


def _write_explanation(out: Path, name: str, data: dict, png: bytes) -> list[str]:
    """Write ``NAME.explain.json`` and ``.png`` in ``out``, unless they hold the explanation of
    another file, other bytes, model or threshold (two ``clip.mp4`` from two cases, say): then
    ``NAME.2.explain.*``, ``NAME.3.explain.*``, ... An explanation never replaces a different
    one: a name is claimed by creating its JSON exclusively (two explains at once get two names),
    the JSON is written before the picture, and a picture without its JSON is left alone."""
    import itertools
    import json

    text = json.dumps(data, indent=2)

    def same(old) -> bool:
        if not isinstance(old, dict) or not isinstance(old.get("path"), str):
            return False
        return (os.path.abspath(old["path"]) == os.path.abspath(data["path"])
                and all(old.get(k) == data.get(k) for k in ("sha256", "model_sha256", "threshold")))

    for n in itertools.count(1):
        stem = name if n == 1 else f"{name}.{n}"
        png_path, json_path = out / f"{stem}.explain.png", out / f"{stem}.explain.json"
        if png_path.exists() and not json_path.exists():  # a picture without its JSON: not ours to replace
            continue
        try:
            with open(json_path, "x", encoding="utf-8") as f:  # a free name, claimed
                f.write(text)
        except FileExistsError:
            try:
                old = json.loads(json_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # damaged, or not ours: never replaced
                continue
            if not same(old):
                continue
            json_path.write_text(text, encoding="utf-8")  # the same file, bytes and model: written again
        png_path.write_bytes(png)
        return [str(png_path), str(json_path)]
    raise AssertionError("unreachable")


def _classifier(opts: ScanOptions, *, background: bool = False):
    """The classifier a scan uses and its model file's absolute path (None for one in memory);
    ``background``: its weights load while the caller goes on (a scan decodes meanwhile)."""
    from .paths import norm
    from .resolve import resolve_model

    model_path = resolve_model(opts.model) if opts.classifier is None else (os.fspath(opts.model) if opts.model else None)
    model_path = norm(model_path) if model_path else None  # the store and reports name it absolute
    clf = opts.classifier or load(model_path, preset=opts.preset, threshold=opts.threshold, device=opts.device,
                                  sampler=opts.sampler, detector=opts.detector, parts=opts.parts,
                                  background=background)
    if opts.classifier is not None and opts.threshold is not None:
        clf = clf.with_threshold(opts.threshold)
    return clf, model_path


def _scanner(opts: ScanOptions, clf, store, model_path: str | None):
    """The local :class:`~truthnet.scanning.Scanner`, or its Ray twin."""
    common = dict(model_path=model_path or None, windows=opts.windows, workers=opts.workers, timeout=opts.timeout,
                  force=opts.force, batch_size=opts.batch_size)
    if opts.engine == "ray":
        from .engine.ray import RayScanner, import_ray

        import_ray()  # fail now, with the install hint, not after the plan
        r = opts.ray or {}
        return RayScanner(clf, store, address=r.get("address"), num_workers=r.get("num_workers", 2),
                          gpus_per_worker=r.get("gpus_per_worker", 0.0), **common)
    from .scanning import Scanner

    return Scanner(clf, store, max_wait=opts.max_wait, **common)


def train(dataset, output, config="paper", train_config=None, *, layout: str | None = None, cache_dir=None,
          device: str | None = None, on_event: OnEvent | None = None, cancel=None):
    """Train on a dataset (see :func:`truthnet.training.train`); returns its ``TrainResult``."""
    from .training import train as _train

    if device:
        from .device import use_device

        use_device(device)
    return _train(dataset, output, config, train_config, layout=layout, cache_dir=cache_dir,
                  progress=_progress(on_event, cancel))


def check_backbone_weights(cfg) -> None:
    """Before any video is read: a frozen backbone needs pretrained weights (random frozen
    features train to chance: accuracy 0.5), and a weights file must exist; ``imagenet`` must be
    in the Keras cache (or a known copy of it) when it cannot be downloaded."""
    from .errors import ConfigError

    w = cfg.backbone_weights
    if w is None and not cfg.trainable_backbone:
        raise ConfigError(f"backbone {cfg.backbone!r} is frozen and has no pretrained weights (--weights none): its "
                          "random features would train to chance",
                          hint="give --weights imagenet or --weights PATH, or use a preset whose backbone is trained "
                               "(--preset tiny)")
    if w not in (None, "imagenet") and not os.path.isfile(w):
        raise ConfigError(f"--weights {w}: no such file")
    if w == "imagenet":
        _check_imagenet_available(cfg.backbone)


def _check_imagenet_available(backbone: str) -> None:
    """ImageNet weights of the built-in Keras backbones without downloading: Keras's cached file,
    or a known copy in its cache folder under any name.  Other backbones are checked when built."""
    from .backbones import KNOWN_WEIGHTS, imagenet_weights_cached, keras_models_dir
    from .errors import ConfigError

    if backbone not in KNOWN_WEIGHTS or imagenet_weights_cached(backbone):
        return
    folder = keras_models_dir()
    if os.environ.get("TRUTHNET_OFFLINE") or not _can_download():
        raise ConfigError(f"backbone {backbone!r}: ImageNet weights are not in the Keras cache ({folder}) and cannot "
                          "be downloaded here",
                          hint="give the weights file with --weights PATH, or copy it into that folder")


def _can_download() -> bool:
    """Whether Keras could fetch its weights (a quick connection to their host)."""
    import socket

    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=2).close()
        return True
    except OSError:
        return False


def train_settings(args: dict):
    """``(PipelineConfig, TrainConfig)`` from ``truthnet train``'s parsed options (a dict): the
    command and a queued training job make the same model.  Plugin names and ``--option``
    values are checked here, before any video is read."""
    from .config import PipelineConfig
    from .plugins import configure_parts
    from .training import TrainConfig

    over = {}
    if args.get("weights"):
        over["backbone_weights"] = None if args["weights"] == "none" else args["weights"]
    cfg = PipelineConfig.preset(args.get("preset") or "paper", **over)
    cfg = configure_parts(cfg, sampler=args.get("sampler"), detector=args.get("detector"), backbone=args.get("backbone"),
                          options=args.get("option"), image_size=args.get("image_size"))
    check_backbone_weights(cfg)
    patience = args.get("patience", 3)
    tcfg = TrainConfig(
        epochs=args.get("epochs", 10), batch_size=args.get("batch_size", 4), learning_rate=args.get("lr", 1e-4),
        seed=args.get("seed", 0), patience=None if patience < 0 else patience,
        class_weight=bool(args.get("class_weight")), split_protocol=args.get("split", "group"),
        workers=args.get("workers", 2),
    )
    return cfg, tcfg


def check_dataset(dataset, layout: str | None = None) -> None:
    """Raise the :class:`~truthnet.errors.DatasetError` a dataset folder or manifest would give,
    now (listing files only, no model, no TensorFlow)."""
    from .training import load_rows

    load_rows(dataset, layout)


def evaluate(model, dataset, output=None, *, split: str | None = None, layout: str | None = None,
             threshold: float | None = None, batch_size: int = 8, include_training: bool = False,
             on_event: OnEvent | None = None, cancel=None) -> dict:
    """Table I metrics of ``model`` (a path or a loaded classifier) on a dataset split.

    ``split`` None: ``test`` on the model's own dataset, all videos of any other; videos the
    model was trained on are left out unless ``include_training`` (:mod:`truthnet.datasets.holdout`)."""
    from .evaluation import evaluate as _evaluate
    from .resolve import resolve_model

    check_dataset(dataset, layout)  # before the model loads: a typo costs a second, not a model load
    if model is None or isinstance(model, (str, os.PathLike)):
        model = resolve_model(model)
    return _evaluate(model, dataset, output, split=split, layout=layout, threshold=threshold, batch_size=batch_size,
                     include_training=include_training, progress=_progress(on_event, cancel))


def calibrate(model, dataset, *, real_recall: float | None = None, max_fpr: float | None = None,
              split: str | None = None, layout: str | None = None, output=None, in_place: bool = False,
              include_training: bool = False, on_event: OnEvent | None = None, cancel=None) -> dict:
    """Pick a decision threshold on real videos and write the model with it to a new file
    (``output``, default ``<name>.calibrated.keras`` beside it; ``in_place`` overwrites)."""
    from .evaluation import calibrate as _calibrate
    from .resolve import resolve_model

    check_dataset(dataset, layout)

    return _calibrate(resolve_model(model), dataset, real_recall=real_recall, max_fpr=max_fpr, split=split,
                      layout=layout, output=output, in_place=in_place, include_training=include_training,
                      progress=_progress(on_event, cancel))

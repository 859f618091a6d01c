"""TruthNet against the paper's straightforward pipeline, on the same videos and the same weights.

    python benchmarks/bench_pipeline.py                 # full run (40 videos, 10-20 s, 720p/1080p)
    python benchmarks/bench_pipeline.py --videos 8 --seconds 6 --memory-videos 0   # a quick look

It generates its own inputs (a real face moving over a background), then measures:

* reference: read every frame with cv2, pick 10 by np.linspace, MTCNN on each full-resolution
  frame one at a time, crop, resize to 224, divide by 255, ``model.predict`` one video at a time;
* TruthNet's scan (``Scanner``: isolated decoding of the sampled frames only, batched detection
  and classification) with MTCNN, and with detector ``none``; and the floor for ``none``
  (decoding the 10 sampled frames plus the backbone's forward pass, nothing else);
* training: 10 epochs of the frozen paper model end to end, against 10 epochs of the head on
  cached embeddings;
* memory: peak RSS of a scan of N small videos against 10 N.

It prints a table and writes everything as JSON (``--out``).  Timings are wall-clock on this
machine; the ratios compare runs made in the same process, on the same videos.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRUTHNET_ALLOW_UNTRAINED", "1")  # speed runs use untrained stand-in models
import numpy as np  # noqa: E402

import truthnet  # noqa: E402
from truthnet.synth import astronaut_face  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_videos(folder: Path, n: int, seconds: float, seed: int = 0) -> list[Path]:
    """n face videos alternating 720p and 1080p, ``seconds`` to 2x ``seconds`` long, 25 fps."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    face0 = astronaut_face(400)
    out = []
    for i in range(n):
        p = folder / f"clip{i:03d}.mp4"
        w, h = (1280, 720) if i % 2 == 0 else (1920, 1080)
        if p.exists():
            out.append(p)
            continue
        length = int(25 * seconds * (1 + (i % 3) / 2))
        size = int(h * rng.uniform(0.35, 0.5))
        face = cv2.resize(face0, (size, int(size * face0.shape[0] / face0.shape[1])))
        fh, fw = face.shape[:2]
        bg = np.full((h, w, 3), rng.integers(40, 200, size=3), np.uint8)
        x0, y0 = rng.integers(0, w - fw), rng.integers(0, h - fh)
        x1, y1 = rng.integers(0, w - fw), rng.integers(0, h - fh)
        writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
        for t in range(length):
            a = t / max(length - 1, 1)
            x, y = int(x0 + (x1 - x0) * a), int(y0 + (y1 - y0) * a)
            f = bg.copy()
            f[y : y + fh, x : x + fw] = face
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        writer.release()
        out.append(p)
    return out


# --- the paper's straightforward pipeline ---------------------------------------------------


def read_every_frame(path) -> list:
    """The paper's way: decode the whole video (BGR), pick frames afterwards."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def reference_scores(model, paths, mtcnn) -> tuple[list[float | None], dict]:
    import cv2

    t = {"decode": 0.0, "detect": 0.0, "embed_classify": 0.0}
    scores = []
    for p in paths:
        t0 = time.perf_counter()
        frames = read_every_frame(p)
        idx = np.linspace(0, len(frames) - 1, 10).astype(int)
        picked = [cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB) for i in idx]
        del frames
        t1 = time.perf_counter()
        seq, found = [], 0
        for f in picked:
            dets = mtcnn.detect_faces(f)
            if dets:
                d = max(dets, key=lambda d: d["box"][2] * d["box"][3])
                x, y, w, h = (max(int(v), 0) for v in d["box"])
                crop = f[y : y + h, x : x + w]
                found += 1
            else:
                crop = f
            seq.append(cv2.resize(crop, (224, 224)) / 255.0)
        t2 = time.perf_counter()
        x = np.expand_dims(np.array(seq, dtype=np.float32), 0)
        s = float(model.predict(x, verbose=0)[0, 0])
        t3 = time.perf_counter()
        t["decode"] += t1 - t0
        t["detect"] += t2 - t1
        t["embed_classify"] += t3 - t2
        scores.append(s if found else None)
    return scores, t


def reference_none_scores(model, paths) -> list[float]:
    """The straightforward pipeline with whole frames instead of face crops."""
    import cv2

    out = []
    for p in paths:
        frames = read_every_frame(p)
        idx = np.linspace(0, len(frames) - 1, 10).astype(int)
        seq = [cv2.resize(cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB), (224, 224)) / 255.0 for i in idx]
        out.append(float(model.predict(np.array(seq, dtype=np.float32)[None], verbose=0)[0, 0]))
    return out


def scan_scores(clf, paths, workers: int) -> tuple[dict[str, float | None], dict, float]:
    from truthnet.scanning import Scanner
    from truthnet.store import Store

    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "r.sqlite")
        t0 = time.perf_counter()
        s = Scanner(clf, store, model_path=None, workers=workers, force=True, batch_size=8).scan([str(p) for p in paths])
        wall = time.perf_counter() - t0
        rows = store.results(s.scan_id)
    stages = {"decode": 0.0, "detect": 0.0, "embed": 0.0, "classify": 0.0}
    for r in rows:
        for k in stages:
            stages[k] += r.timings.get(k, 0.0)
    return {r.path: r.score for r in rows}, stages, wall


def floor_none(clf, paths, workers: int) -> dict:
    """The least a `none` scan can do: decode the 10 sampled frames of each video (spread over
    ``workers`` processes, as the scan does) plus the network's forward pass over all of them."""
    import cv2

    from truthnet.video import probe, read_frames

    t0 = time.perf_counter()
    xs = []
    for p in paths:
        info = probe(p)
        frames, _ = read_frames(p, clf.pipeline.sample(info), info)
        xs.append(np.stack([cv2.resize(f, (224, 224)) for f in frames]).astype(np.float32) / 255.0)
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(xs), 8):
        clf.predict_inputs(np.stack(xs[i : i + 8]))
    t_forward = time.perf_counter() - t0
    return {"decode_s": round(t_decode, 2), "forward_s": round(t_forward, 2),
            "floor_s": round(t_decode / workers + t_forward, 2)}


# --- training -------------------------------------------------------------------------------


def bench_training(n_videos: int, epochs: int = 10) -> dict:
    from truthnet._lazy import import_keras
    from truthnet.model import build_encoder, build_head, build_model, copy_head_weights
    from truthnet.training import TrainConfig, fit

    keras = import_keras()
    keras.utils.set_random_seed(0)
    cfg = truthnet.PipelineConfig.preset("paper", backbone_weights=None)
    rng = np.random.default_rng(0)
    x = rng.random((n_videos, 10, 224, 224, 3), dtype=np.float32)
    y = np.arange(n_videos) % 2
    tcfg = TrainConfig(epochs=epochs, batch_size=4, patience=None)
    full = build_model(cfg)
    head = build_head(cfg, 1280)
    copy_head_weights(full, head)
    t0 = time.perf_counter()
    emb = np.asarray(build_encoder(full).predict(x, batch_size=4, verbose=0))
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit(head, emb, y, tcfg)
    t_head = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit(full, x, y, tcfg)
    t_e2e = time.perf_counter() - t0
    return {
        "videos": n_videos,
        "epochs": epochs,
        "end_to_end_s": round(t_e2e, 2),
        "embed_once_s": round(t_embed, 2),
        "head_on_cache_s": round(t_head, 2),
        "speedup_epochs_only": round(t_e2e / t_head, 1),
        "speedup_including_embedding": round(t_e2e / (t_head + t_embed), 1),
    }


# --- memory ---------------------------------------------------------------------------------


MEM_CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
import truthnet
from truthnet.collect import collect_files
from truthnet.scanning import Scanner
from truthnet.store import Store
clf = truthnet.load_classifier(sys.argv[1])
files = collect_files([sys.argv[2]]).files[: int(sys.argv[3])]
with tempfile.TemporaryDirectory() as d:
    s = Scanner(clf, Store(Path(d) / "r.sqlite"), workers=2).scan(files)
print(json.dumps({"files": len(files), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ok": s.counts.get("ok", 0)}))
"""


def bench_memory(work: Path, n_small: int) -> dict:
    from truthnet.synth import make_face_clip

    folder = work / "small"
    for i in range(n_small * 10):
        p = folder / f"s{i:05d}.mp4"
        if not p.exists():
            make_face_clip(p, n_frames=10, seed=i, width=96, height=72, face_size=40)
    cfg = truthnet.PipelineConfig.preset("tiny", detector="none", image_size=32)
    model = truthnet.new_classifier(cfg, seed=0).save(work / "tiny-none.keras")
    out = {}
    for n in (n_small, n_small * 10):
        r = subprocess.run([sys.executable, "-c", MEM_CHILD, str(model), str(folder), str(n)],
                           capture_output=True, text=True, check=True)
        out[n] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=10.0, help="shortest clip length (longest is 2x)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-videos", type=int, default=40)
    ap.add_argument("--memory-videos", type=int, default=100, help="N for the N vs 10N memory check; 0 skips")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "truthnet-bench"))
    ap.add_argument("--out", default="benchmarks/results/latest.json")
    args = ap.parse_args()
    work = Path(args.work)
    t0 = time.perf_counter()
    paths = make_videos(work / "videos", args.videos, args.seconds)
    print(f"inputs: {len(paths)} videos in {work / 'videos'} ({time.perf_counter() - t0:.0f} s to generate)", flush=True)

    from truthnet._lazy import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    paper = truthnet.PipelineConfig.preset("paper", backbone_weights=None)
    base = truthnet.new_classifier(paper, seed=0)
    # No ImageNet weights offline: a random MobileNetV2 maps every frame to ~1e-12, so give its
    # BatchNorm layers the statistics of real frames (one pass), and spread the head's output,
    # so that "same scores, same verdicts" is a real check
    from truthnet.model import recalibrate_batchnorm
    from truthnet.pipeline import FacePipeline

    calib = FacePipeline(paper.replace(detector="none"))
    frames = np.concatenate([calib.inputs(calib.prepare(p)) for p in paths[:2]])
    recalibrate_batchnorm(base.model.get_layer("cnn").layer, frames)
    score = base.model.get_layer("score")
    w, b = score.get_weights()
    score.set_weights([w * 8.0, b])
    model = base.model
    warm = np.zeros((1, 10, 224, 224, 3), np.float32)
    model.predict(warm, verbose=0)  # first-call set-up outside the timings, for both pipelines
    model(warm, training=False)

    from mtcnn import MTCNN

    # Both pipelines build their graphs on one face frame outside the timings (a one-time cost
    # per process, reported as setup_s)
    warm_frame = np.full((480, 640, 3), 120, np.uint8)
    warm_face = astronaut_face(300)
    warm_frame[50 : 50 + warm_face.shape[0], 100:400] = warm_face
    t0 = time.perf_counter()
    mtcnn = MTCNN()
    mtcnn.detect_faces(warm_frame)
    setup_ref = time.perf_counter() - t0
    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "python": platform.python_version(), "truthnet": truthnet.__version__},
                     "videos": len(paths), "clip_seconds": [args.seconds, 2 * args.seconds]}

    t0 = time.perf_counter()
    ref, ref_stages = reference_scores(model, paths, mtcnn)
    ref_wall = time.perf_counter() - t0
    results["reference"] = {"seconds": round(ref_wall, 2), "videos_per_s": round(len(paths) / ref_wall, 3),
                            "setup_s": round(setup_ref, 2),
                            "stages_s": {k: round(v, 2) for k, v in ref_stages.items()}}
    print(f"reference: {len(paths) / ref_wall:.3f} videos/s", flush=True)

    clf = truthnet.Classifier(model, paper)
    t0 = time.perf_counter()
    clf.pipeline.detector.detect([warm_frame])
    clf.predict_inputs(warm)
    setup_scan = time.perf_counter() - t0
    scores, stages, wall = scan_scores(clf, paths, args.workers)
    diffs = [abs(scores[str(p)] - r) for p, r in zip(paths, ref) if r is not None and scores.get(str(p)) is not None]
    same = sum((scores[str(p)] >= 0.5) == (r >= 0.5) for p, r in zip(paths, ref)
               if r is not None and scores.get(str(p)) is not None)
    results["scan_mtcnn"] = {
        "config": "paper (MTCNN coarse-to-fine: 320 px pass, then full resolution over the levels that can hold the largest face)",
        "seconds": round(wall, 2), "videos_per_s": round(len(paths) / wall, 3),
        "speedup_vs_reference": round(ref_wall / wall, 2), "setup_s": round(setup_scan, 2),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "max_score_diff": float(f"{max(diffs):.2e}") if diffs else None, "compared": len(diffs),
        "same_verdicts": f"{same}/{len(diffs)}",
        "scores": [[p.name, r, scores.get(str(p))] for p, r in zip(paths, ref)],
    }
    print(f"scan mtcnn: {len(paths) / wall:.3f} videos/s ({ref_wall / wall:.1f}x), max |diff| "
          f"{results['scan_mtcnn']['max_score_diff']}", flush=True)

    reference_none = reference_none_scores(model, paths)
    none_clf = truthnet.Classifier(model, paper.replace(detector="none"))
    none_clf.predict_inputs(warm)  # its graph, outside the timings like every other
    scores_none, stages_none, wall_none = scan_scores(none_clf, paths, args.workers)
    floor = floor_none(none_clf, paths, args.workers)
    diffs_none = [abs(scores_none[str(p)] - reference_none[i]) for i, p in enumerate(paths)]
    results["scan_none"] = {"seconds": round(wall_none, 2), "videos_per_s": round(len(paths) / wall_none, 3),
                            "floor": floor, "ratio_to_floor": round(wall_none / floor["floor_s"], 2),
                            "max_score_diff_vs_reference_none": float(f"{max(diffs_none):.2e}"),
                            "stages_s": {k: round(v, 2) for k, v in stages_none.items()}}
    floor = floor["floor_s"]
    print(f"scan none: {wall_none:.1f} s against a floor of {floor:.1f} s ({wall_none / floor:.2f}x)", flush=True)

    results["training"] = bench_training(args.train_videos)
    print(f"training: {results['training']}", flush=True)
    if args.memory_videos:
        results["memory"] = bench_memory(work, args.memory_videos)
        print(f"memory: {results['memory']}", flush=True)
    results["peak_rss_mb_bench_process"] = round(rss_mb(), 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

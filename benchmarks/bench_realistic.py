"""The paper's straightforward pipeline against ``truthnet scan --preset paper`` on realistic footage.

    python benchmarks/bench_realistic.py --quick     # small corpus, a few minutes
    python benchmarks/bench_realistic.py             # full corpus (10 clips, 480p-1080p, 10-60 s)
    python benchmarks/bench_realistic.py --folder DIR --model M.keras   # DIR's videos, that model:
                                                     # the main row only (e.g. 50 clips)

Both sides run in one process tree, on the same files, with the same model file (MobileNetV2
with ImageNet weights, the paper's head trained briefly on the corpus so that its scores
straddle 0.5).  This process stays small (no TensorFlow): every measured run is a fresh child,
whose peak memory comes from ``wait4`` (the child's own high-water mark, not this process's)
and from sampling the resident memory of its whole process tree.

* reference: every frame read with cv2, 10 picked by np.linspace, ``MTCNN().detect_faces`` on
  each frame alone, the largest face cropped, resized to 224, / 255, ``model.predict`` per video;
* scan: ``truthnet scan DIR --model M --json`` (the CLI, start-up included; set-up measured as
  the same command on a one-file folder);
* boxes: the reference's largest face per sampled frame against TruthNet's ``FacePipeline``
  (the code the scan runs) for the same frames;
* synthetic best case (a separate row): the first benchmark's videos, one large centred face
  on a flat background, OpenCV's mp4v writer with short keyframe intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve()
# ../shared/weights beside the checkout (or beside the folder of worktrees)
WEIGHTS = next((p for p in (HERE.parents[i] / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.h5"
                            for i in (2, 3)) if p.exists()), None)
KERAS_NAME = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def machine() -> dict:
    """What a result file says about the machine it was measured on."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}


def byte_compile() -> None:
    """Byte-compile this truthnet, as ``pip install`` does: an edited checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` (this machine's setting) otherwise compiles every changed module
    from source in every child, ~0.1 s of each process's start-up that no installed copy pays."""
    import compileall

    compileall.compile_dir(str(HERE.parents[1] / "truthnet"), quiet=1)


def emit(result: dict, out: str | os.PathLike | None) -> None:
    """Print a benchmark's result as JSON and write it to ``out`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


# --- measuring a child process from a small parent --------------------------------------------


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (kB), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; wall time, CPU time, its own peak RSS (wait4) and the peak of its tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

    threading.Thread(target=sample, daemon=True).start()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    done.set()
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # 1: the scan found fakes or failures, still a result
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{err[-3000:]}")
    cpu = ru.ru_utime + ru.ru_stime
    return {"stdout": out, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cpu_util": round(cpu / wall / (os.cpu_count() or 1), 2),
            "peak_rss_mb_largest_process": round(ru.ru_maxrss / 1024, 1),
            "peak_rss_mb_tree_sampled": round(peak[0] / 1024, 1)}


def child(role: str, *args: str, env: dict | None = None) -> tuple[dict, dict]:
    r = run_child([sys.executable, str(HERE), "--child", role, *args], env)
    return json.loads(r.pop("stdout").strip().splitlines()[-1]), r


# --- the children ---------------------------------------------------------------------------


def _boxes(paths: list[str], seqs) -> dict:
    # a frame without a face is cropped whole by both sides: None, as the reference says
    return {"boxes": {p: [list(b) if b and u else None for b, u in zip(s.boxes, s.face_used)]
                      for p, s in zip(paths, seqs)},
            "frames": {p: list(s.frame_indices) for p, s in zip(paths, seqs)}}


def role_boxes(paths: list[str]) -> dict:
    """TruthNet's boxes (``FacePipeline``, the code the scan runs) for each file's sampled frames."""
    import truthnet
    from truthnet.pipeline import FacePipeline

    pipe = FacePipeline(truthnet.PipelineConfig.preset("paper"))
    return _boxes(paths, [pipe.prepare(p) for p in paths])


def role_model(paths: list[str], out: str) -> dict:
    """The paper model on ImageNet MobileNetV2, its head trained briefly on the corpus's face
    sequences (labels alternate) so that scores straddle 0.5; TruthNet's boxes on the way."""
    import numpy as np

    import truthnet
    from truthnet.model import build_encoder, build_head, copy_head_weights
    from truthnet.pipeline import FacePipeline
    from truthnet.training import TrainConfig, fit

    cfg = truthnet.PipelineConfig.preset("paper")
    clf = truthnet.new_classifier(cfg, seed=0)
    pipe = FacePipeline(cfg)
    seqs = [pipe.prepare(p) for p in paths]
    x = np.stack([pipe.inputs(s) for s in seqs])
    emb = np.asarray(build_encoder(clf.model).predict(x, batch_size=4, verbose=0))
    head = build_head(cfg, emb.shape[-1])
    y = np.arange(len(paths)) % 2
    fit(head, emb, y, TrainConfig(epochs=3, batch_size=4, learning_rate=1e-3, patience=None))
    copy_head_weights(head, clf.model)
    # trained (briefly, on alternating labels): a stand-in whose scores straddle 0.5, not a detector
    clf.save(out, {"trained": True, "note": "benchmark stand-in: head fit 3 epochs to alternating labels"})
    scores = head.predict(emb, verbose=0)[:, 0].tolist()
    return {"model": out, "train_scores": scores, **_boxes(paths, seqs)}


def role_reference(paths: list[str], model_path: str) -> dict:
    """The paper's straightforward pipeline; set-up (imports, model load, MTCNN) apart."""
    t0 = time.perf_counter()
    import cv2
    import numpy as np
    from mtcnn import MTCNN

    import truthnet

    model = truthnet.load_classifier(model_path).model
    mtcnn = MTCNN()
    warm = np.zeros((1, 10, 224, 224, 3), np.float32)
    model.predict(warm, verbose=0)
    mtcnn.detect_faces(np.full((240, 320, 3), 128, np.uint8))
    setup = time.perf_counter() - t0
    stages = {"decode": 0.0, "detect": 0.0, "embed_classify": 0.0}
    scores, boxes = {}, {}
    for p in paths:
        t1 = time.perf_counter()
        cap, frames = cv2.VideoCapture(p), []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        idx = np.linspace(0, len(frames) - 1, 10).astype(int)
        picked = [cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB) for i in idx]
        del frames
        t2 = time.perf_counter()
        seq, bx = [], []
        for f in picked:
            dets = mtcnn.detect_faces(f)
            if dets:
                d = max(dets, key=lambda d: d["box"][2] * d["box"][3])
                x, y, w, h = (max(int(v), 0) for v in d["box"])
                crop, b = f[y : y + h, x : x + w], [x, y, x + w, y + h]
            else:
                crop, b = f, None
            seq.append(cv2.resize(crop, (224, 224)) / 255.0)
            bx.append(b)
        t3 = time.perf_counter()
        scores[p] = float(model.predict(np.array(seq, np.float32)[None], verbose=0)[0, 0])
        stages["decode"] += t2 - t1
        stages["detect"] += t3 - t2
        stages["embed_classify"] += time.perf_counter() - t3
        boxes[p] = bx
    return {"setup_s": round(setup, 2), "stages_s": {k: round(v, 2) for k, v in stages.items()},
            "scores": scores, "boxes": boxes}


# --- the parent -----------------------------------------------------------------------------


#: the documented deviation ``paper-fast``: MTCNN coarse to fine over each video's frames
PAPER_FAST = ["--option", "detector.coarse_side=320", "--option", "detector.per_frame=false"]


def scan(folder: Path, model: Path, workers: int, env: dict, extra: list[str] = (),
         db: Path | None = None) -> tuple[dict, dict]:
    db = db or folder.parent / f"{folder.name}.sqlite"
    cmd = [str(Path(sys.executable).with_name("truthnet")), "scan", str(folder), "--model", str(model), "--json",
           "--quiet", "--force", "--db", str(db), *extra]
    if workers:  # else the engine's own plan for the cores (truthnet.engine.plan_threads)
        cmd += ["--workers", str(workers)]
    r = run_child(cmd, env)
    rows = [json.loads(line) for line in r.pop("stdout").splitlines() if line.startswith("{")]
    return {"rows": [x for x in rows if "path" in x], "summary": rows[-1]}, r


def compare(tag: str, paths: list[str], ref: dict, scanned: dict, boxes: dict | None) -> dict:
    by_path = {os.path.realpath(r["path"]): r for r in scanned["rows"]}
    stages: dict[str, float] = {}
    diffs, same, straddle = [], 0, 0
    for p in paths:
        row = by_path[os.path.realpath(p)]
        for k, v in (row.get("timings") or {}).items():
            stages[k] = stages.get(k, 0.0) + v
        r, s = ref["scores"][p], row.get("score")
        if s is not None:
            diffs.append(abs(r - s))
            same += (r >= 0.5) == (s >= 0.5)
            straddle += r >= 0.5
    out = {"videos": len(paths), "max_score_diff": float(f"{max(diffs):.2e}") if diffs else None,
           "same_verdicts": f"{same}/{len(diffs)}", "reference_fakes": f"{straddle}/{len(paths)}",
           "scan_stages_s": {k: round(v, 2) for k, v in stages.items()},
           "reference_scores": [round(ref["scores"][p], 4) for p in paths]}
    if boxes is not None:
        frames = [(p, i) for p in paths for i in range(len(ref["boxes"][p]))]
        equal = sum(ref["boxes"][p][i] == boxes["boxes"][p][i] for p, i in frames)
        out["largest_boxes_equal"] = f"{equal}/{len(frames)}"
        out["box_mismatches"] = [[Path(p).name, i, ref["boxes"][p][i], boxes["boxes"][p][i]]
                                 for p, i in frames if ref["boxes"][p][i] != boxes["boxes"][p][i]][:10]
    print(f"{tag}: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def measure(tag: str, folder: Path, paths: list[str], model: Path, workers: int, env: dict, one: Path,
            boxes: dict | None, db: Path | None = None) -> tuple[dict, dict, dict]:
    """The row, and the reference's output and run (for rows compared against the same run)."""
    ref, ref_run = child("reference", str(model), *paths, env=env)
    res, scan_run = scan(folder, model, workers, env, db=db)
    _, setup_run = scan(one, model, workers, env)
    row = compare(tag, paths, ref, res, boxes)
    ref_wall, scan_wall = ref_run["wall_s"], scan_run["wall_s"]
    row.update({
        "reference": {**ref_run, "setup_s": ref["setup_s"], "stages_s": ref["stages_s"],
                      "without_setup_s": round(ref_wall - ref["setup_s"], 2)},
        "scan": {**scan_run, "setup_s_one_file_scan": setup_run["wall_s"],
                 "without_setup_s": round(scan_wall - setup_run["wall_s"], 2)},
        "speedup_wall": round(ref_wall / scan_wall, 2),
        "speedup_without_setup": round((ref_wall - ref["setup_s"]) / max(scan_wall - setup_run["wall_s"], 1e-6), 2),
    })
    print(f"{tag}: reference {ref_wall} s, scan {scan_wall} s ({row['speedup_wall']}x; "
          f"{row['speedup_without_setup']}x without set-up)", file=sys.stderr, flush=True)
    return row, ref, ref_run


def measure_fast(folder: Path, paths: list[str], model: Path, workers: int, env: dict, ref: dict,
                 ref_run: dict) -> dict:
    """The same scan with ``paper-fast``'s detection (not the paper: its boxes may differ)."""
    res, run = scan(folder, model, workers, env, PAPER_FAST)
    row = compare("realistic, paper-fast detection", paths, ref, res, None)
    row["scan"] = run
    row["speedup_wall"] = round(ref_run["wall_s"] / run["wall_s"], 2)
    print(f"paper-fast: reference {ref_run['wall_s']} s, scan {run['wall_s']} s ({row['speedup_wall']}x)",
          file=sys.stderr, flush=True)
    return row


def memory_rows(work: Path, model: Path, n: int, workers: int, env: dict) -> dict:
    from truthnet.synth import make_face_clip

    out = {}
    for count in (n, 10 * n):
        folder = work / f"mem{count}"
        for i in range(count):
            p = folder / f"m{i:05d}.mp4"
            if not p.exists():
                make_face_clip(p, n_frames=10, seed=i, width=160, height=120, face_size=64)
        _, r = scan(folder, model, workers, env)
        out[str(count)] = r
        print(f"memory {count} videos: {r}", file=sys.stderr, flush=True)
    return out


def corpus_folder(work: Path, quick: bool):
    """The realistic corpus under ``work``: ``(clips, folder, paths, one)``, the corpus's files
    linked alone into ``folder`` (for ``truthnet scan DIR``) and a one-file folder ``one`` (for
    a scan's set-up)."""
    from truthnet.testing.corpus import corpus

    clips = corpus(work / "corpus", small=quick, progress=lambda m: print(m, file=sys.stderr))
    folder = work / "videos"
    folder.mkdir(exist_ok=True)
    paths = []
    for c in clips:
        link = folder / c.path.name
        if not link.exists():
            link.symlink_to(c.path.resolve())
        paths.append(str(link))
    return clips, folder, paths, one_file_folder(work)


def one_file_folder(work: Path) -> Path:
    """``work/one``, holding one tiny clip: a scan of it is a scan's set-up."""
    from truthnet.synth import make_face_clip

    one = work / "one"
    one.mkdir(exist_ok=True)
    if not (one / "tiny.mp4").exists():
        make_face_clip(one / "tiny.mp4", n_frames=4, seed=0)
    return one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small corpus, 2 synthetic videos, memory at 5 / 50")
    ap.add_argument("--workers", type=int, default=None,
                    help="decode workers for the scan (default: the engine's plan for this machine's cores)")
    ap.add_argument("--memory-videos", type=int, default=None, help="N for the N vs 10 N memory rows (0: skip)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "truthnet-bench-realistic"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--weights", default=None, help="MobileNetV2 ImageNet weights, no top (.h5)")
    ap.add_argument("--folder", default=None,
                    help="measure the videos in this folder (not below it) instead of the corpus: the main row only")
    ap.add_argument("--model", default=None, help="with --folder: this model file instead of training one")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.child:
        fn = {"model": lambda: role_model(rest[1:], rest[0]), "reference": lambda: role_reference(rest[1:], rest[0]),
              "boxes": lambda: role_boxes(rest)}
        print(json.dumps(fn[args.child]()))
        return
    byte_compile()
    work = Path(args.work) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    keras_home = work / "keras"
    (keras_home / "models").mkdir(parents=True, exist_ok=True)
    weights = Path(args.weights) if args.weights else WEIGHTS
    if not (args.folder and args.model):  # (a model file given holds its weights)
        if weights is None or not weights.exists():
            sys.exit("needs MobileNetV2's ImageNet weights (no top): --weights FILE.h5")
        shutil.copy(weights, keras_home / "models" / KERAS_NAME)
    env = {"KERAS_HOME": str(keras_home), "TRUTHNET_LOAD_PLUGINS": ""}
    if args.folder:
        folder_main(args, work, env)
        return
    t0 = time.perf_counter()
    clips, folder, paths, one = corpus_folder(work, args.quick)
    print(f"corpus ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    model = work / "paper-head.keras"
    boxes, model_run = child("model", str(model), *paths, env=env)
    results: dict = {
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "model": {"file": model.name, "train_scores": [round(s, 3) for s in boxes["train_scores"]], **model_run},
        "corpus": [{"name": c.spec.name, "size": f"{c.spec.width}x{c.spec.height}", "frames": c.frame_count,
                    "fps": c.spec.fps, "vfr": c.spec.vfr, "rotation": c.spec.rotation, "audio": c.spec.audio}
                   for c in clips],
    }
    results["realistic"], ref, ref_run = measure("realistic", folder, paths, model, args.workers, env, one, boxes)
    results["realistic_paper_fast"] = measure_fast(folder, paths, model, args.workers, env, ref, ref_run)

    sys.path.insert(0, str(HERE.parent))
    from bench_pipeline import make_videos

    synth = make_videos(work / "synthetic", 2 if args.quick else 10, 4.0 if args.quick else 10.0)
    results["synthetic_best_case"], _, _ = measure("synthetic best case (one large centred face, mp4v, short GOPs)",
                                             work / "synthetic", [str(p) for p in synth], model, args.workers, env,
                                             one, None)
    n = args.memory_videos if args.memory_videos is not None else (5 if args.quick else 100)
    if n:
        results["memory"] = memory_rows(work, model, n, args.workers, env)
    out = Path(args.out or f"benchmarks/results/realistic-{'quick' if args.quick else 'full'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def folder_main(args, work: Path, env: dict) -> None:
    """``--folder``: the main row (reference against scan, boxes, scores, set-up apart) on the
    videos in one folder, with ``--model`` or a model trained as for the corpus."""
    from truthnet.video import VIDEO_EXTENSIONS

    folder = Path(args.folder).resolve()
    paths = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not paths:
        sys.exit(f"no videos in {folder}")
    one = one_file_folder(work)
    if args.model:
        from truthnet.config import PipelineConfig
        from truthnet.model import read_metadata

        model = Path(args.model).resolve()
        meta = read_metadata(model)[0] or {}
        if "pipeline" not in meta or PipelineConfig.from_dict(meta["pipeline"]) != PipelineConfig.preset("paper"):
            sys.exit(f"{model}: not a model of the `paper` pipeline, which the reference reproduces")
        boxes, model_run = child("boxes", *paths, env=env)
    else:
        model = work / f"paper-head-{folder.name}.keras"
        boxes, model_run = child("model", str(model), *paths, env=env)
    row, _, _ = measure(f"folder {folder.name}", folder, paths, model, args.workers, env, one, boxes,
                        db=work / f"folder-{folder.name}.sqlite")
    results = {"machine": machine(), "mode": "folder", "folder": str(folder),
               "model": {"file": str(model), "trained_here": not args.model, "boxes_run": model_run},
               "realistic": row}
    emit(results, args.out or f"benchmarks/results/realistic-{folder.name}.json")


if __name__ == "__main__":
    main()

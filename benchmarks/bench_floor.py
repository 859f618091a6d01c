"""How far `truthnet scan --preset paper` is from the floor of its own stages, on realistic footage.

    python benchmarks/bench_floor.py            # the 10-clip realistic corpus (bench_realistic.py's)
    python benchmarks/bench_floor.py --quick    # the small corpus
    python benchmarks/bench_floor.py --folder DIR --out F.json   # another folder (e.g. 50 clips)

The floor: each stage alone, one after the other, in one fresh process, on the same files and
the same model file as the scan: decoding just the sampled frames (``FacePipeline.decode``, as a
decode worker does), detecting and cropping on those frames (``FacePipeline.build``: the paper's
MTCNN, per frame), and embedding + classifying the crops (``Classifier.predict_sequences``, all
sequences in one call).  Each stage's CPU-seconds (all threads of the process) are summed and
divided by the cores: a scan that kept every core busy with nothing but this work, and paid no
set-up, would take that long.  Graphs are built on one clip before the clock starts.

That floor assumes N cores do N times one core's work.  The *both-cores floor* checks it: one
such process per core, started together, each on every N-th file, all working the same stage at
once (they wait for each other between stages; one TensorFlow thread each): their CPU-seconds,
measured while every core works, summed and divided by the cores (the split of files is not
balanced, so the stages' wall times, also reported, overstate it).  On this 2-core VM two busy
cores do less than twice one core's work, so this floor is nearer what a scan can reach.

The scan side is ``truthnet scan DIR --model M --json`` in a fresh child (start-up included), and
the same command on a one-file folder for its set-up.  Both sides run in one invocation of this
script, on the same files and model; the scan's scores are compared with the floor's.

Reuses ``bench_realistic.py``'s work folder (corpus and stand-in model); builds them if absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import bench_realistic as br  # noqa: E402  (the corpus, the stand-in model, fresh-child measurement)


def _barrier(folder: str | None, name: str) -> None:
    """Wait until every process of a both-cores floor has reached ``name`` (files in ``folder``:
    ``N`` is the number of processes, ``RANK`` this one's; nothing when measuring alone)."""
    if not folder:
        return
    n, rank = int(os.environ["FLOOR_N"]), os.environ["FLOOR_RANK"]
    Path(folder, f"{name}.{rank}").touch()
    while len(list(Path(folder).glob(f"{name}.*"))) < n:
        time.sleep(0.005)


def role_floor(model: str, warm: str, paths: list[str]) -> dict:
    """Each stage alone over all files, CPU-seconds and wall seconds per stage."""
    import truthnet
    from truthnet.pipeline import FacePipeline

    clf = truthnet.load_classifier(model)
    pipe = FacePipeline(clf.config)
    seq = pipe.prepare(warm)  # graphs built before the clock: the floor has no set-up
    clf.predict_sequences([seq])
    sync = os.environ.get("FLOOR_BARRIER")

    def timed(fn, stage):
        _barrier(sync, stage)
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        return out, time.process_time() - c0, time.perf_counter() - w0

    decoded, decode_cpu, decode_wall = timed(lambda: [pipe.decode(p) for p in paths], "decode")
    seqs, detect_cpu, detect_wall = timed(
        lambda: [pipe.build(p, info, *windows[0]) for p, (info, windows, _) in zip(paths, decoded)], "detect")
    scores, embed_cpu, embed_wall = timed(lambda: clf.predict_sequences(seqs), "embed")
    return {"cpu_s": {"decode": decode_cpu, "detect_crop": detect_cpu, "embed_classify": embed_cpu},
            "wall_s": {"decode": decode_wall, "detect_crop": detect_wall, "embed_classify": embed_wall},
            "scores": [float(s) for s in scores], "paths": paths}


def prepare(root: Path, quick: bool):
    """bench_realistic.py's work folder, built where absent: ``(work, env, folder, paths, one,
    model)`` -- the corpus linked into ``folder``, a one-file folder, the stand-in ``paper`` model
    and the environment (KERAS_HOME holding the ImageNet weights) every child runs in."""
    work = root / ("quick" if quick else "full")
    keras_home = work / "keras"
    (keras_home / "models").mkdir(parents=True, exist_ok=True)
    if br.WEIGHTS is None:
        sys.exit("needs MobileNetV2's ImageNet weights (no top) in ../shared/weights")
    target = keras_home / "models" / br.KERAS_NAME
    if not target.exists():
        target.write_bytes(br.WEIGHTS.read_bytes())
    env = {"KERAS_HOME": str(keras_home), "TRUTHNET_LOAD_PLUGINS": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    _, folder, paths, one = br.corpus_folder(work, quick)
    model = work / "paper-head.keras"
    if not model.exists():
        br.child("model", str(model), *paths, env=env)
    return work, env, folder, paths, one, model


def both_cores(model: Path, warm: Path, paths: list[str], env: dict, cores: int) -> dict:
    """The both-cores floor: ``cores`` floor processes at once, each on every ``cores``-th file,
    stage by stage together; per stage the CPU-seconds of all and the slowest process's wall time."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="floor-barrier-") as sync:
        procs = [subprocess.Popen([sys.executable, str(HERE), "--child", "floor", str(model), str(warm),
                                   *paths[rank::cores]], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **env, "FLOOR_BARRIER": sync, "FLOOR_N": str(cores),
                                       "FLOOR_RANK": str(rank), "TF_NUM_INTRAOP_THREADS": "1",
                                       "TF_NUM_INTEROP_THREADS": "1"})
                 for rank in range(cores)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    stages = list(outs[0]["wall_s"])
    wall = {k: max(o["wall_s"][k] for o in outs) for k in stages}
    return {"processes": cores, "wall_s": {k: round(v, 2) for k, v in wall.items()},
            "cpu_s": {k: round(sum(o["cpu_s"][k] for o in outs), 2) for k in stages},
            "floor_s": round(sum(sum(o["cpu_s"].values()) for o in outs) / cores, 2),
            "scores": {p: s for o in outs for p, s in zip(o["paths"], o["scores"])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small corpus")
    ap.add_argument("--prepare", action="store_true", help="build the corpus and the model, measure nothing")
    ap.add_argument("--work", default=os.path.join("/tmp", "truthnet-bench-realistic"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--folder", help="measure on this folder of videos (e.g. 50 clips: the corpus written with "
                                     "several --seed values) instead of the corpus, with the same model")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.child:
        print(json.dumps(role_floor(rest[0], rest[1], rest[2:])))
        return
    work, env, folder, paths, one, model = prepare(Path(args.work), args.quick)
    if args.prepare:
        return
    if args.folder:
        folder = Path(os.path.abspath(args.folder))
        paths = sorted(str(folder / p.name) for p in folder.iterdir() if p.suffix == ".mp4")

    cores = os.cpu_count() or 1
    floor_run = br.run_child([sys.executable, str(HERE), "--child", "floor", str(model), str(one / "tiny.mp4"),
                              *paths], env)
    floor = json.loads(floor_run.pop("stdout").strip().splitlines()[-1])
    setup = br.run_child([sys.executable, "-m", "truthnet.cli", "scan", str(one), "--model", str(model),
                          "--db", str(work / "floor-setup.sqlite"), "--force", "--json"], env)
    scan = br.run_child([sys.executable, "-m", "truthnet.cli", "scan", str(folder), "--model", str(model),
                         "--db", str(work / "floor-scan.sqlite"), "--force", "--json"], env)
    shared = both_cores(model, one / "tiny.mp4", paths, env, cores)
    rows = [json.loads(x) for x in scan.pop("stdout").splitlines()]
    setup.pop("stdout")
    by_path = {r["path"]: r for r in rows if "path" in r}
    diffs = [abs(by_path[p]["score"] - s) for p, s in zip(floor["paths"], floor["scores"])
             if by_path.get(p, {}).get("score") is not None]
    stages = {"decode": 0.0, "detect": 0.0, "embed": 0.0, "classify": 0.0}
    for r in by_path.values():
        for k in stages:
            stages[k] += (r.get("timings") or {}).get(k, 0.0)
    cpu_total = sum(floor["cpu_s"].values())
    floor_s = cpu_total / cores
    result = {
        "machine": br.machine(),
        "videos": len(paths),
        "floor": {"cpu_s": {k: round(v, 2) for k, v in floor["cpu_s"].items()},
                  "wall_s": {k: round(v, 2) for k, v in floor["wall_s"].items()},
                  "cpu_s_total": round(cpu_total, 2), "floor_s": round(floor_s, 2), "process": floor_run},
        "scan": {**scan, "setup_one_file": setup, "stage_timers_sum_s": {k: round(v, 2) for k, v in stages.items()},
                 "ratio_to_floor": round(scan["wall_s"] / floor_s, 2),
                 "ratio_to_floor_without_setup": round((scan["wall_s"] - setup["wall_s"]) / floor_s, 2)},
        "scores": {"compared": len(diffs), "max_abs_diff": max(diffs) if diffs else None},
    }
    shared_scores = shared.pop("scores")
    result["floor_both_cores"] = shared
    result["scan"]["ratio_to_both_cores_floor"] = round(scan["wall_s"] / shared["floor_s"], 2)
    result["scan"]["ratio_to_both_cores_floor_without_setup"] = round(
        (scan["wall_s"] - setup["wall_s"]) / shared["floor_s"], 2)
    result["scores"]["both_cores_max_abs_diff"] = max(
        abs(shared_scores[p] - s) for p, s in zip(floor["paths"], floor["scores"]))
    out = Path(args.out or f"benchmarks/results/floor-{'quick' if args.quick else 'full'}-cpu-{cores}core.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

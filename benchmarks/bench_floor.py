"""How far `truthnet scan --preset paper` is from the floor of its own stages, on realistic footage.

    python benchmarks/bench_floor.py            # the 10-clip realistic corpus (bench_realistic.py's)
    python benchmarks/bench_floor.py --quick    # the small corpus
    python benchmarks/bench_floor.py --folder DIR --out F.json   # another folder (e.g. 50 clips)

The floor: each stage alone, one after the other, in one fresh process, on the same files and
the same model file as the scan: decoding just the sampled frames (``FacePipeline.decode``, as a
decode worker does), detecting and cropping on those frames (``FacePipeline.build``: the paper's
MTCNN, per frame, the pyramid and patches by the fastest kernels this process has: the
Numba-compiled ones, else TensorFlow's), and embedding + classifying the crops
(``Classifier.predict_sequences``, all sequences in one call, on the runtime a scan chooses).  Each stage's CPU-seconds (all threads of the process) are summed and
divided by the cores: a scan that kept every core busy with nothing but this work, and paid no
set-up, would take that long.  Graphs are built on one clip before the clock starts.

That floor assumes N cores do N times one core's work.  The *both-cores floor* checks it: one
such process per core, started together, the files split between them by their decode + detect
CPU-seconds in the floor above, all working the same stage at once (they wait for each other
between stages; one TensorFlow thread each, where the floor above uses TensorFlow's default):
their CPU-seconds, measured while the cores work together, summed and divided by the cores.
Each stage's ``cores_used`` (its CPU-seconds over the slowest process's wall time) says how far
the stage really ran on every core at once; the per-process figures are in the result.

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
    deadline = time.monotonic() + 1800
    while len(list(Path(folder).glob(f"{name}.*"))) < n:
        if time.monotonic() > deadline:
            sys.exit(f"floor process {rank}: the others never reached {name!r}")
        time.sleep(0.005)


def role_floor(model: str, warm: str, paths: list[str]) -> dict:
    """Each stage alone over all files, CPU-seconds and wall seconds per stage."""
    import truthnet
    from truthnet._lazy import import_tensorflow
    from truthnet.pipeline import FacePipeline

    # each stage at its best: MTCNN's pyramid and patches by the compiled kernels, or where
    # Numba is missing by TensorFlow's (the NumPy passes give the same bits for more CPU; a scan
    # imports TensorFlow for them once they pay), the model on the runtime a scan chooses
    # (OpenVINO on a CPU)
    from truthnet.plugins.mtcnn_ops import native_kernels

    if native_kernels() is None:
        import_tensorflow()
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

    per_file = {p: 0.0 for p in paths}  # decode + detect CPU-seconds of each file (to balance a split)

    def each(fn, items):
        out = []
        for p, item in items:
            c = time.process_time()
            out.append(fn(p, item))
            per_file[p] += time.process_time() - c
        return out

    decoded, decode_cpu, decode_wall = timed(lambda: each(lambda p, _: pipe.decode(p), [(p, None) for p in paths]),
                                             "decode")
    seqs, detect_cpu, detect_wall = timed(
        lambda: each(lambda p, d: pipe.build(p, d[0], *d[1][0]), list(zip(paths, decoded))), "detect")
    scores, embed_cpu, embed_wall = timed(lambda: clf.predict_sequences(seqs), "embed")
    return {"cpu_s": {"decode": decode_cpu, "detect_crop": detect_cpu, "embed_classify": embed_cpu},
            "wall_s": {"decode": decode_wall, "detect_crop": detect_wall, "embed_classify": embed_wall},
            "scores": [float(s) for s in scores], "paths": paths, "per_file_cpu_s": per_file}


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


def split(costs: dict[str, float], n: int) -> list[list[str]]:
    """``n`` shares of the files with about equal cost (the largest first, each to the share with
    the least so far)."""
    shares: list[list[str]] = [[] for _ in range(n)]
    load = [0.0] * n
    for p in sorted(costs, key=costs.get, reverse=True):
        i = load.index(min(load))
        shares[i].append(p)
        load[i] += costs[p]
    return [sorted(s) for s in shares]


def both_cores(model: Path, warm: Path, costs: dict[str, float], env: dict, cores: int) -> dict:
    """The both-cores floor: one floor process per core at once, the files split between them by
    their decode + detect CPU-seconds alone (``costs``), stage by stage together; per stage the
    CPU-seconds of all, each process's wall time, and the cores used (CPU over the slowest wall)."""
    import subprocess
    import tempfile

    shares = [s for s in split(costs, min(cores, len(costs))) if s]
    n = len(shares)
    with tempfile.TemporaryDirectory(prefix="floor-barrier-") as sync:
        procs = [subprocess.Popen([sys.executable, str(HERE), "--child", "floor", str(model), str(warm), *share],
                                  stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **env, "FLOOR_BARRIER": sync, "FLOOR_N": str(n),
                                       "FLOOR_RANK": str(rank), "TF_NUM_INTRAOP_THREADS": "1",
                                       "TF_NUM_INTEROP_THREADS": "1"})
                 for rank, share in enumerate(shares)]
        outs = []
        for p in procs:
            text = p.communicate()[0]
            if p.returncode != 0:  # the others would wait for it at the next stage
                for q in procs:
                    q.kill()
                sys.exit(f"a both-cores floor process failed (exit code {p.returncode})")
            outs.append(json.loads(text.strip().splitlines()[-1]))
    stages = list(outs[0]["wall_s"])
    wall = {k: max(o["wall_s"][k] for o in outs) for k in stages}
    cpu = {k: sum(o["cpu_s"][k] for o in outs) for k in stages}
    return {"processes": n, "wall_s": {k: round(v, 2) for k, v in wall.items()},
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "cores_used": {k: round(cpu[k] / wall[k], 2) for k in stages},
            "per_process": [{"files": len(share), "cost_alone_cpu_s": round(sum(costs[p] for p in share), 2),
                             "cpu_s": {k: round(v, 2) for k, v in o["cpu_s"].items()},
                             "wall_s": {k: round(v, 2) for k, v in o["wall_s"].items()}}
                            for share, o in zip(shares, outs)],
            "floor_s": round(sum(cpu.values()) / cores, 2),
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
    br.byte_compile()
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
    shared = both_cores(model, one / "tiny.mp4", floor["per_file_cpu_s"], env, cores)
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

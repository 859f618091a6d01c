"""`truthnet scan --engine ray` with 1 and 2 local workers against the local engine, same run.

    python benchmarks/bench_ray_workers.py            # the 10-clip realistic corpus, paper preset
    python benchmarks/bench_ray_workers.py --quick    # the small corpus

Each side is ``truthnet scan DIR --model M --json --force`` in a fresh child (start-up, and for
Ray the local instance's start, included), on the same files and model file (bench_realistic.py's
work folder: the corpus and its stand-in ``paper`` model, built if absent).  Scores are compared
with the local engine's; CPU-seconds and peak memory (wait4 of the child, and the sampled tree:
Ray's workers are not the child's own memory) beside the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import bench_floor  # noqa: E402
import bench_realistic as br  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", default=os.path.join("/tmp", "truthnet-bench-realistic"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work, env, folder, _, _, model = bench_floor.prepare(Path(args.work), args.quick)
    env = {**env, "RAY_USAGE_STATS_ENABLED": "0"}
    sides = {"local": [], "ray-1": ["--engine", "ray", "--num-workers", "1"],
             "ray-2": ["--engine", "ray", "--num-workers", "2"]}
    results, scores = {}, {}
    for name, extra in sides.items():
        run = br.run_child([sys.executable, "-m", "truthnet.cli", "scan", str(folder), "--model", str(model),
                            "--db", str(work / f"ray-bench-{name}.sqlite"), "--force", "--json", *extra], env)
        rows = [json.loads(x) for x in run.pop("stdout").splitlines()]
        scores[name] = {r["path"]: r.get("score") for r in rows if "path" in r}
        summary = rows[-1]
        results[name] = {**run, "files": summary.get("files"), "statuses": summary.get("statuses"),
                         "cpu_s_per_video": round(run["cpu_s"] / max(1, summary.get("files") or 1), 2)}
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    for name in ("ray-1", "ray-2"):
        diffs = [abs(scores[name][p] - s) for p, s in scores["local"].items()
                 if s is not None and scores[name].get(p) is not None]
        results[name]["max_abs_score_diff_vs_local"] = max(diffs) if diffs else None
        results[name]["scores_compared"] = len(diffs)
    results["ray-2"]["speedup_vs_ray_1"] = round(results["ray-1"]["wall_s"] / results["ray-2"]["wall_s"], 2)
    out = {"machine": br.machine(),
           "videos": len(scores["local"]), "runs": results,
           "note": "cpu_s and peak_rss_mb_largest_process are the scan process's own (wait4): for Ray they leave "
                   "out the Ray workers, which the tree sample includes"}
    target = Path(args.out or f"benchmarks/results/ray-workers-{'quick' if args.quick else 'full'}-cpu-"
                              f"{os.cpu_count()}core.json")
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

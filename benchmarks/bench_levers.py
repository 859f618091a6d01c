"""One speed lever of `truthnet scan --preset paper`, off and on, alternating, on the same files.

    python benchmarks/bench_levers.py --lever background-load --pairs 5

A scan of the realistic corpus on two cores varies by about a second from run to run, as
much as the levers worth trying: one run each way proves nothing.  This runs ``--pairs``
pairs of fresh ``truthnet scan`` children (the CLI, start-up included), off then on, with
the same files, model and options, and reports every run, the medians and the scores' largest
difference between the two sides.  The lever is switched off inside the child (no product
option exists for it); levers:

* ``background-load``: the model's weights (and TensorFlow) load in a thread while the first
  files decode (``load_classifier(..., background=True)``, what ``truthnet scan`` does); off:
  loaded before the decoders start.
* ``openvino-mtcnn``: MTCNN's networks on OpenVINO (the detector's ``runtime=auto`` where
  OpenVINO is installed); off: ``--option detector.runtime=tensorflow``.

* ``openvino-unpinned``: MTCNN's OpenVINO networks run on threads the OS schedules
  (``mtcnn_openvino.PIN_THREADS = False``); off: OpenVINO binds them to cores, as it does by
  default (every detection thread to the same core).
* ``score-in-thread``: the model scores each batch in a thread of the run, so the thread that
  reads the decode workers never stops for it (``Engine.score_in_thread``); off: scored in that
  thread, and a decode worker with a finished file waits meanwhile.

* ``openvino-model``: the model's frame encoder and head on OpenVINO, from their cache
  (``truthnet.runtime.parts``): no TensorFlow or Keras in the scan unless the kernels below pay;
  off: ``TRUTHNET_MODEL_RUNTIME=tensorflow`` (Keras, TensorFlow imported for it).
* ``tensorflow-kernels``: a scan whose model runs on OpenVINO imports TensorFlow in the
  background for MTCNN's pyramid kernels once it has detected enough pixels with the NumPy
  copies (``mtcnn_pyramid.TENSORFLOW_KERNELS_AFTER``); off: never.

* ``mtcnn-in-decoder``: MTCNN on OpenVINO detects in the decode worker processes (one per
  core), which send back only the crops (``MTCNNDetector.runs_in_decoder``); off: the workers
  (half the cores) send the frames and threads of the scanning process detect.

* ``native-kernels``: MTCNN's pyramid and patches by the Numba-compiled kernels
  (``mtcnn_kernels``: one pass each, the same bits); off: ``TRUTHNET_NATIVE_KERNELS=0``, the
  NumPy passes (and TensorFlow's kernels once they pay).

* ``worker-template``: a scan's decode workers are forks of one template process that
  imported everything (and MTCNN's compiled kernels) once (``truthnet.decode.isolation.TEMPLATE``);
  off: each worker a fresh interpreter that imports for itself.

``--off-tree DIR`` compares two versions of the code instead: the off side runs the source
tree ``DIR`` (e.g. ``git worktree add /tmp/before HEAD~1``), the on side this one.  That is
how a lever whose old way no longer exists in the code is measured (``tf-free-detection``:
MTCNN's pyramid and patches in NumPy, so detection starts without TensorFlow).

``--folder`` scans another folder of videos (e.g. 50 clips: the corpus written with several
``--seed`` values by ``python -m truthnet.testing.corpus``) with the same stand-in model.
One unmeasured scan runs first (file-system caches warm for both sides).

Reuses ``bench_realistic.py``'s work folder (corpus and stand-in model); builds them if absent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import bench_floor  # noqa: E402  (the corpus and model, prepared once)
import bench_realistic as br  # noqa: E402  (fresh-child measurement)

# Each lever: (Python run in the child before the CLI, extra scan options) switching it off.
OFF = {
    "background-load": (
        "import truthnet.api as a\n"
        "_load = a.load\n"
        "def load(*args, **kw):\n"
        "    kw['background'] = False\n"
        "    return _load(*args, **kw)\n"
        "a.load = load\n",
        [],
    ),
    "openvino-mtcnn": ("", ["--option", "detector.runtime=tensorflow"]),
    "openvino-unpinned": ("import truthnet.plugins.mtcnn_openvino as m\nm.PIN_THREADS = True\n", []),
    "score-in-thread": ("from truthnet.engine import Engine\nEngine.score_in_thread = False\n", []),
    "openvino-model": ("import os\nos.environ['TRUTHNET_MODEL_RUNTIME'] = 'tensorflow'\n", []),
    "tensorflow-kernels": ("import truthnet.plugins.mtcnn_pyramid as m\nm.TENSORFLOW_KERNELS_AFTER = float('inf')\n", []),
    "native-kernels": ("import os\nos.environ['TRUTHNET_NATIVE_KERNELS'] = '0'\n", []),
    "worker-template": ("import truthnet.decode.isolation as m\nm.TEMPLATE = False\n", []),
    "mtcnn-in-decoder": ("from truthnet.plugins.face_detectors import MTCNNDetector as M\n"
                         "M.runs_in_decoder = staticmethod(lambda options, device=None: False)\n", []),
}


def scan_child(folder: Path, model: Path, db: Path, env: dict, prelude: str, extra: list[str]) -> tuple[dict, dict]:
    code = prelude + "import sys\nfrom truthnet.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    cmd = [sys.executable, "-c", code, "scan", str(folder), "--model", str(model), "--json", "--quiet",
           "--force", "--db", str(db), *extra]
    r = br.run_child(cmd, env)
    rows = [json.loads(line) for line in r.pop("stdout").splitlines() if line.startswith("{")]
    return {x["path"]: x.get("score") for x in rows if "path" in x}, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lever", choices=sorted(OFF))
    ap.add_argument("--off-tree", help="the off side runs this source tree (another commit's checkout)")
    ap.add_argument("--name", help="the lever's name in the output (with --off-tree)")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="the small corpus")
    ap.add_argument("--folder", help="scan this folder of videos instead of the corpus")
    ap.add_argument("--work", default=os.path.join("/tmp", "truthnet-bench-realistic"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    br.byte_compile()
    if args.off_tree:
        tree = Path(args.off_tree).resolve()
        if not (tree / "truthnet" / "__init__.py").is_file():
            ap.error(f"--off-tree {tree}: not a TruthNet source tree")
        off = (f"import sys\nsys.path.insert(0, {str(tree)!r})\n"
               f"import truthnet\nassert truthnet.__file__.startswith({str(tree)!r}), truthnet.__file__\n", [])
        lever = args.name or f"tree:{tree}"
    elif args.lever:
        off, lever = OFF[args.lever], args.lever
    else:
        ap.error("--lever or --off-tree is required")
    work, env, folder, paths, _, model = bench_floor.prepare(Path(args.work), args.quick)
    db = work / "levers.sqlite"
    if args.folder:
        folder = Path(args.folder).resolve()
        paths = sorted(str(p) for p in folder.iterdir() if p.suffix == ".mp4")
    scan_child(folder, model, db, env, "", [])  # file-system caches warm before the clock
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    scores: dict[str, dict] = {}
    for i in range(args.pairs):
        for side, (prelude, extra) in (("off", off), ("on", ("", []))):
            got, r = scan_child(folder, model, db, env, prelude, extra)
            scores.setdefault(side, got)
            runs[side].append(r)
            print(f"pair {i + 1} {side}: {r['wall_s']} s wall, {r['cpu_s']} CPU-s", file=sys.stderr)
    diffs = [abs(scores["off"][p] - scores["on"][p]) for p in scores["off"]
             if scores["off"][p] is not None and scores["on"].get(p) is not None]
    med = {side: {k: round(statistics.median(r[k] for r in rs), 2) for k in ("wall_s", "cpu_s")}
           for side, rs in runs.items()}
    out = {
        "machine": br.machine(),
        "lever": lever,
        "videos": len(paths),
        "pairs": args.pairs,
        "median": med,
        "wall_ratio_on_over_off": round(med["on"]["wall_s"] / med["off"]["wall_s"], 3),
        "runs": runs,
        "scores": {"compared": len(diffs), "max_abs_diff": max(diffs) if diffs else None},
    }
    br.emit(out, args.out)


if __name__ == "__main__":
    main()

"""Peak memory of decoding and detecting faces in one clip, each measurement in a fresh process.

    python benchmarks/detect_memory.py [--width 3840 --height 2160]

Generates a face clip of the given size (``truthnet.synth``), then for the ``mtcnn`` defaults
and the ``paper`` detector options, with and without the detection batch bound, runs
``FacePipeline.prepare`` in a child process and reads the child's peak RSS from a small parent
(``ru_maxrss`` is inherited across fork/exec, so the parent here never imports TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time, json
import truthnet
from truthnet.pipeline import FacePipeline
path, budget, which = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = {} if which == "default" else dict(truthnet.config.PAPER_MTCNN)
cfg = truthnet.PipelineConfig.preset("tiny", image_size=32, detector_options={**opts, "max_batch_pixels": budget})
t = time.perf_counter()
seq = FacePipeline(cfg).prepare(path)
print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "faces_found": seq.faces_found}))
"""

PARENT = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(r.stdout.strip() or r.stderr.strip().splitlines()[-1])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=3840)
    ap.add_argument("--height", type=int, default=2160)
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    from truthnet.synth import make_face_clip

    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "clip.mp4"
        make_face_clip(clip, n_frames=args.frames, seed=1, width=args.width, height=args.height)
        out = {"clip": f"{args.width}x{args.height}, {args.frames} frames", "runs": []}
        for which in ("default", "paper"):
            for label, budget in (("unbounded", 10**12), ("bounded", 0)):
                res = subprocess.run([sys.executable, "-c", PARENT, sys.executable, "-c", CHILD, str(clip), str(budget),
                                      which], capture_output=True, text=True, check=True).stdout.splitlines()
                run = {"detector_options": which, "batch": label, "peak_mb": int(res[-1]), **json.loads(res[0])}
                out["runs"].append(run)
                print(run, file=sys.stderr)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

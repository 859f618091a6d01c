"""Peak memory of `truthnet scan --preset paper` on 1080p footage against the number of files.

    python -m truthnet.testing.corpus /tmp/corpus50/s1 --seed 1      # (and --seed 2, 3, 4)
    python benchmarks/bench_memory_1080p.py /tmp/corpus50 --counts 3 6 12

Takes the distinct 1080p clips (1920x1080 and 1080x1920, long-GOP H.264) under the folder(s)
given, and scans the first N of them for each N, each scan a fresh ``truthnet scan`` child of
this small process (no TensorFlow here): its own peak RSS (``wait4``) and the sampled peak of
its whole process tree (decode workers included).  Same stand-in model as bench_realistic.py.
Distinct clips, because copies of one file are scored once and reused by their hash.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import bench_floor  # noqa: E402  (the stand-in model)
import bench_realistic as br  # noqa: E402  (fresh-child measurement)


def clips_1080p(folders: list[str]) -> list[Path]:
    sys.path.insert(0, str(HERE.parents[1]))
    from truthnet.video import probe

    out = []
    for folder in folders:
        for p in sorted(Path(folder).rglob("*.mp4")):
            info = probe(str(p))
            if sorted((info.width, info.height)) == [1080, 1920]:
                out.append(p.resolve())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--counts", type=int, nargs="+", default=[3, 6, 12])
    ap.add_argument("--work", default=os.path.join("/tmp", "truthnet-bench-realistic"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work, env, _, _, _, model = bench_floor.prepare(Path(args.work), False)
    clips = clips_1080p(args.folders)
    if len(clips) < max(args.counts):
        sys.exit(f"{len(clips)} distinct 1080p clips found, {max(args.counts)} needed")
    rows = {}
    for n in args.counts:
        with tempfile.TemporaryDirectory(dir=work) as d:
            folder = Path(d) / "clips"
            folder.mkdir()
            for i, clip in enumerate(clips[:n]):
                (folder / f"{i:03d}-{clip.name}").symlink_to(clip)
            got, r = br.scan(folder, model, 0, env)
            statuses = sorted({row["status"] for row in got["rows"]})
        rows[str(n)] = {**r, "files": n, "statuses": statuses}
        print(f"{n} files: {r}", file=sys.stderr, flush=True)
    out = {"machine": br.machine(),
           "clips": [c.name for c in clips[: max(args.counts)]], "scans": rows}
    br.emit(out, args.out)


if __name__ == "__main__":
    main()

"""What the whole-file SHA-256 (a result's identity) costs next to the scan it belongs to.

    python benchmarks/bench_hashing.py [--small]

On the realistic corpus (``truthnet.testing.corpus``: H.264 480p-1080p, 10-60 s, long GOPs, B-frames,
VFR, rotation), in one run on the same files: the SHA-256 of every file (``filecheck.file_sha256``,
the function the scan calls, files in the page cache as a scan right after a copy finds them),
and ``truthnet scan`` of the same folder (a fresh CLI process, the ``tiny`` network with the
default MTCNN, so the scan is faster than a ``paper`` scan and hashing's share an upper bound).
Cold-cache reads were not measured (dropping the page cache needs a privilege this benchmark
does not ask for): there, reading the file costs the same for hashing and for decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the small corpus (quick)")
    ap.add_argument("--corpus", help="an existing corpus folder (default: generate one)")
    args = ap.parse_args()
    from truthnet.filecheck import file_sha256

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.corpus or Path(tmp) / "corpus")
        if not args.corpus:
            from truthnet.testing.corpus import corpus

            corpus(folder, small=args.small)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".mp4", ".mov", ".mkv"))
        size = sum(p.stat().st_size for p in files)
        for p in files:  # warm the page cache once, as a scan right after a copy finds it
            file_sha256(p)
        t = time.perf_counter()
        for p in files:
            file_sha256(p)
        hashing = time.perf_counter() - t

        import truthnet

        model = Path(tmp) / "tiny.keras"
        truthnet.new_classifier(truthnet.PipelineConfig.preset("tiny"), seed=0).save(model)
        env = {**os.environ, "TRUTHNET_ALLOW_UNTRAINED": "1", "TRUTHNET_DB": str(Path(tmp) / "r.sqlite")}
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "truthnet", "scan", str(folder), "-r", "-m", str(model), "--json"],
                           capture_output=True, text=True, env=env)
        scan = time.perf_counter() - t
        summary = json.loads(r.stdout.splitlines()[-1])
    out = {
        "files": len(files), "bytes": size, "sha256_seconds": round(hashing, 3),
        "sha256_mb_per_s": round(size / 1e6 / hashing, 1), "scan_seconds": round(scan, 2),
        "scan_statuses": summary["statuses"], "hashing_share_of_scan": round(hashing / scan, 4),
        "cpu": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Faithfulness of ``truthnet explain`` on self-blended fakes whose altered region is known.

    truthnet demo -o demo-out                                  # a model trained by the demo
    truthnet synth held-out --real 0 --fake 40 --seed 7 --masks  # fakes it never saw, with masks
    python benchmarks/bench_explain.py --model demo-out/run/model.keras --data held-out

For each fake: the share of the Grad-CAM mass inside the blended region (blend mask >= 0.5,
cut to each face crop) beside that region's share of the crop area, and the deletion test
(log-odds drop after greying the most salient 20 % of every crop, against the mean over five
random 20 %s made of feature-map cells).  Writes ``benchmarks/results/explain-faithfulness.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a truthnet synth --masks folder")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "explain-faithfulness.json"))
    args = ap.parse_args()

    import truthnet
    from truthnet.explain.faithfulness import deletion, mass_inside

    clf = truthnet.load_classifier(args.model)
    rows = []
    t0 = time.perf_counter()
    for mask_file in sorted(Path(args.data, "masks").glob("*.npz")):
        video = Path(args.data, "fake", mask_file.stem + ".mp4")
        e = clf.explain(video)
        if not e.ok:
            rows.append({"video": video.name, "status": e.result.status})
            continue
        inside, area = mass_inside(e, np.load(mask_file)["masks"])
        sal, rnd = deletion(clf, e, args.fraction)
        rows.append({"video": video.name, "status": "ok", "score": round(e.result.score, 4),
                     "mass_inside": round(inside, 4), "area_inside": round(area, 4),
                     "deletion_salient": round(sal, 4), "deletion_random": round(rnd, 4)})
        print(json.dumps(rows[-1]), flush=True)
    ok = [r for r in rows if r["status"] == "ok"]
    summary = {
        "fakes": len(rows), "explained": len(ok),
        "mass_inside_more_than_outside": sum(r["mass_inside"] > 0.5 for r in ok),
        "mass_inside_more_than_area": sum(r["mass_inside"] > r["area_inside"] for r in ok),
        "mean_mass_inside": round(float(np.mean([r["mass_inside"] for r in ok])), 4),
        "mean_area_inside": round(float(np.mean([r["area_inside"] for r in ok])), 4),
        "deletion_salient_beats_random": sum(r["deletion_salient"] > r["deletion_random"] for r in ok),
        "mean_deletion_salient": round(float(np.mean([r["deletion_salient"] for r in ok])), 4),
        "mean_deletion_random": round(float(np.mean([r["deletion_random"] for r in ok])), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = {"model": args.model, "data": args.data, "fraction": args.fraction, "machine": platform.platform(),
           "summary": summary, "fakes": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

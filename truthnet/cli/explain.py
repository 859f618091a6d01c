"""``truthnet explain FILE``: why a video got its score (frames and face regions)."""

from __future__ import annotations

import json
import sys

from ..paths import one_line
from .console import stderr_console
from .exitcodes import ExitCode


def cmd_explain(args) -> int:
    from .. import api
    from .scan import card_of, print_card

    clf = api.load(args.model, preset=args.preset, threshold=args.threshold)
    print_card(stderr_console(), card_of(clf), warnings_only=True)
    expl, written = api.explain(args.video, classifier=clf, db=args.db, output=args.output,
                                store=not args.no_store)
    if args.json:
        sys.stdout.write(json.dumps(expl.to_dict(), default=str) + "\n")
    else:
        _print(expl)
    for path in written:
        stderr_console().print(one_line(f"wrote {path}"), highlight=False, markup=False)
    return ExitCode.OK if expl.ok else ExitCode.SOME_FAILED


def _print(expl) -> None:
    """The verdict, then one line per sampled frame: time, contribution as a bar, heat peak."""
    r = expl.result
    if not r.ok:
        print(one_line(f"{r.status.upper()}  -  {r.path}: {r.reason}"))
        return
    print(one_line(f"{r.label.upper()}  {r.score:.4f}  (threshold {r.threshold:g})  {r.path}"))
    print(f"model {expl.model_sha256}\nfile  {r.sha256}")
    print("frame contributions (log-odds of the score minus those with that frame replaced by the average frame;"
          " + towards fake):")
    top = max((abs(c) for c in expl.contributions), default=0.0) or 1.0
    d = expl.to_dict()
    for f in d["frames"]:
        c = f["contribution"]
        bar = ("+" if c > 0 else "-") * int(round(abs(c) / top * 20))
        when = "" if f["time"] is None else f"{f['time']:7.2f}s"
        peak = f"  heat peak at ({f['heat_peak_xy'][0]:.2f}, {f['heat_peak_xy'][1]:.2f})" if "heat_peak_xy" in f else ""
        face = "" if f["face"] in (None, True) else "  (no face: crop of the nearest face's box)"
        print(f"  #{f['index']:<6d}{when}  {c:+.4f}  {bar:<20s}{peak}{face}")
    print(f"heat maps: {expl.heatmap_layer}" if expl.heatmaps is not None else f"heat maps: {expl.heatmap_note}")


def register(sub) -> None:
    from .scan import threshold

    p = sub.add_parser("explain", help="why a video got its score: each frame's part in it and a heat map per face")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument("--model", "-m", help="a .keras/.h5 model file (default: `truthnet default-model`)")
    p.add_argument("--preset", help="pipeline preset for a bare model file that carries no configuration")
    p.add_argument("--threshold", type=threshold, help="override the model's decision threshold (0-1)")
    p.add_argument("--output", "-o", default=".",
                   help="folder for NAME.explain.png and NAME.explain.json (default: the current folder)")
    p.add_argument("--db", help="results database that keeps the explanation for the TUI and HTML reports "
                                "(default: $TRUTHNET_DB or the user data folder)")
    p.add_argument("--no-store", action="store_true", help="do not keep it in the results database")
    p.add_argument("--json", action="store_true", help="the explanation as one JSON object on stdout")
    p.set_defaults(func=cmd_explain)

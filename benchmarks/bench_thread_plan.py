"""A/B: the engine's thread plan vs the old fixed plan (2 decode workers, detection in one thread),
same files, same model, fresh child per run; order alternated."""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
# usage: python benchmarks/bench_thread_plan.py WORK  (WORK: bench_realistic.py's --work folder, full run)
work = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/work") / "full"
model = work / "paper-head.keras"
videos = sorted(str(p) for p in (work / "videos").glob("*.mp4"))
code = r'''
import sys, time, json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
import truthnet
w, d = sys.argv[1], sys.argv[2]
clf = truthnet.load_classifier(sys.argv[3])
paths = sys.argv[4:]
list(clf.score_videos(paths[:1], workers=1, detect_threads=1))  # warm: graphs built
t = time.perf_counter()
out = list(clf.score_videos(paths, workers=None if w == "auto" else int(w), detect_threads=None if d == "auto" else int(d)))
print(json.dumps({"s": time.perf_counter() - t, "scores": [r.score for r in out]}))
'''
res = {}
for rnd in range(2):
    for plan in ((["2", "1"], "old: 2 decoders, 1 detect thread"), (["auto", "auto"], "plan_threads")):
        t0 = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([sys.executable, "-c", code, *plan[0], str(model), *videos], capture_output=True, text=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert p.returncode == 0, p.stderr[-2000:]
        d = json.loads(p.stdout.strip().splitlines()[-1])
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        res.setdefault(plan[1], []).append({"scoring_s": round(d["s"], 2), "child_wall_s": round(time.perf_counter() - t0, 2), "child_cpu_s": round(cpu, 2)})
        res.setdefault(plan[1] + " scores", d["scores"])
a, b = res["old: 2 decoders, 1 detect thread scores"], res["plan_threads scores"]
res["max_score_diff"] = max(abs(x - y) for x, y in zip(a, b))
print(json.dumps(res, indent=1))

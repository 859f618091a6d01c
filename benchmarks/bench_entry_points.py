"""Usage: python benchmarks/bench_entry_points.py WORK/full  (bench_realistic.py's full-run folder).

One run, 10 realistic clips (long-GOP H.264, small/two faces, rotated, VFR), one model
(paper preset, head briefly trained so scores straddle 0.5):
 A. every entry point gives the same status and score: score_videos (process), score_videos
    (thread), score_video per file, and `truthnet scan --json` (a fresh process);
 B. score_video per file with detectors kept on the classifier vs rebuilt each call (the old
    behaviour, simulated by dropping the pool before each call), alternated, outputs compared."""
import json, os, subprocess, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import truthnet

work = sys.argv[1]
model = os.path.join(work, "paper-head.keras")
videos = sorted(os.path.join(work, "videos", f) for f in os.listdir(os.path.join(work, "videos")))
clf = truthnet.load_classifier(model)
out = {"files": [os.path.basename(v) for v in videos], "preset_detector": clf.config.detector}

t = time.perf_counter(); proc = list(clf.score_videos(videos, isolation="process")); out["process_s"] = round(time.perf_counter() - t, 2)
t = time.perf_counter(); thr = list(clf.score_videos(videos, isolation="thread")); out["thread_s"] = round(time.perf_counter() - t, 2)
db = os.path.join(work, "measure.sqlite")
t = time.perf_counter()
r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "truthnet"), "scan", *videos, "--model", model,
                    "--json", "--quiet", "--force", "--db", db], capture_output=True, text=True)
out["cli_scan_s_fresh_process"] = round(time.perf_counter() - t, 2)
cli = {json.loads(l)["path"]: json.loads(l) for l in r.stdout.splitlines() if l.startswith("{") and '"path"' in l}

kept, rebuilt = [], []
t_kept, t_rebuilt = [], []
for i, v in enumerate(videos):
    for mode in (("kept", "rebuilt") if i % 2 == 0 else ("rebuilt", "kept")):
        if mode == "rebuilt":
            clf._face_pipelines = None  # what every call did before: a new MTCNN per call
        t = time.perf_counter(); res = clf.score_video(v); dt = time.perf_counter() - t
        (kept if mode == "kept" else rebuilt).append(res)
        (t_kept if mode == "kept" else t_rebuilt).append(dt)
out["score_video_per_file_s"] = {"detectors_kept_total": round(sum(t_kept), 2), "rebuilt_each_call_total": round(sum(t_rebuilt), 2),
                                 "kept_per_file": [round(x, 2) for x in t_kept], "rebuilt_per_file": [round(x, 2) for x in t_rebuilt]}
rows = []
for v, a, b, c, d in zip(videos, proc, thr, kept, rebuilt):
    s = cli.get(os.path.abspath(v), {})
    rows.append({"file": os.path.basename(v), "status": [a.status, b.status, c.status, s.get("status")],
                 "score_process": a.score, "score_thread": b.score, "score_single": c.score, "score_cli": s.get("score"),
                 "score_single_rebuilt": d.score})
def maxdiff(k):
    return max(abs(r["score_process"] - r[k]) for r in rows if r["score_process"] is not None and r[k] is not None)
out["rows"] = rows
out["max_abs_score_diff_vs_process"] = {k: maxdiff(k) for k in ("score_thread", "score_single", "score_cli", "score_single_rebuilt")}
out["labels_equal"] = all(len(set(r["status"])) == 1 for r in rows)
out["scores_range"] = [min(r["score_process"] for r in rows), max(r["score_process"] for r in rows)]
print(json.dumps(out, indent=1))

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from truthnet.collect import collect_files
from truthnet.scanning import Scanner
from truthnet.store import Store

from helpers import child_env, cli, cli_cmd, parent_pid, process_gone, start_faulty_scan, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.allow_untrained]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tiny_model):
    return Path(tiny_model)


@pytest.fixture(scope="module")
def messy(tmp_path_factory, media):
    """Good videos with and without faces, and every kind of bad file."""
    d = tmp_path_factory.mktemp("messy")
    face = media["face_avi"].read_bytes()
    expect = {}

    def put(rel, data, status):
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        expect[str(p)] = status

    put("good face.mp4", media["face"].read_bytes(), "ok")
    put("sub/ünïcode-видео.avi", face, "ok")
    put("sub/-leading-dash.avi", face, "ok")
    put("sub/new\nline.avi", face, "ok")
    put("sub/<script>alert(1)</script>.mp4", face, "ok")
    put("no_face.mp4", media["noface"].read_bytes(), "no_face")
    put("truncated.mp4", media["truncated"].read_bytes(), "decode_error")
    put("zero.mp4", b"", "not_a_video")
    put("random.mp4", media["random"].read_bytes(), "not_a_video")
    put("notes.mkv", media["text"].read_bytes(), "not_a_video")
    put("codec.avi", face.replace(b"MJPG", b"ZZZZ"), "decode_error")  # an unsupported codec
    os.symlink(d / "gone.mp4", d / "dangling.mp4")  # unreadable, even for root
    expect[str(d / "dangling.mp4")] = "unreadable"
    os.symlink(d, d / "sub" / "loop")  # a directory symlink loop
    (d / "readme.txt").write_text("not listed: not a video extension")
    return d, expect


def test_every_file_once_with_the_right_status(messy, model, tmp_path):
    d, expect = messy
    db = tmp_path / "r.sqlite"
    html = tmp_path / "report.html"
    r = cli("scan", d, "-r", "--model", model, "--db", db, "--json", "--html", html, timeout=600)
    assert r.returncode == 2, r.stderr  # some files could not be scored
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    rows, summary = lines[:-1], lines[-1]
    assert summary["summary"] is True and summary["files"] == len(expect)
    got = {x["path"]: x for x in rows}
    assert len(rows) == len(got) == len(expect)
    assert {p: x["status"] for p, x in got.items()} == expect
    for x in rows:
        assert (x["score"] is None) == (x["status"] != "ok")
        assert x["reason"] or x["status"] == "ok"
        assert x["scan_id"] == summary["scan_id"]
    assert summary["failed"] == sum(s != "ok" for s in expect.values())
    # the report escapes every file name
    page = html.read_text()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;" in page and "data:image/jpeg;base64," in page
    # the store holds the same, and `truthnet results` exports it
    assert {x.path: x.status for x in Store(db).results(summary["scan_id"])} == expect
    r2 = cli("results", "--db", db, "--json")
    assert {json.loads(x)["path"] for x in r2.stdout.splitlines()} == set(expect)


def test_json_fields_are_documented(messy, model, tmp_path):
    d, _ = messy
    r = cli("scan", d / "good face.mp4", "--model", model, "--db", tmp_path / "r.sqlite", "--json")
    assert r.returncode == 0, r.stderr
    doc = (ROOT / "docs" / "scan.md").read_text()
    for line in r.stdout.splitlines():
        for key in json.loads(line):
            assert f"`{key}`" in doc, f"field {key} is not documented in docs/scan.md"


def test_exit_codes_fail_on_fake_and_no_model(messy, model, tmp_path):
    d, _ = messy
    good = d / "good face.mp4"
    r = cli("scan", good, "--model", model, "--db", tmp_path / "r.sqlite", "--threshold", "0", "--fail-on-fake", "-q")
    assert r.returncode == 1, r.stderr
    assert "FAKE" in r.stdout
    r = cli("scan", good, "--db", tmp_path / "r.sqlite")
    assert r.returncode == 4
    assert "truthnet demo" in r.stderr and "Traceback" not in r.stderr


def _clips(folder, n):
    from truthnet.synth import make_face_clip

    folder.mkdir(parents=True, exist_ok=True)
    return [make_face_clip(folder / f"clip{i:03d}.mp4", n_frames=10, seed=100 + i, width=160, height=120, face_size=70)[0]
            for i in range(n)]


def test_killed_scan_resumes_without_loss_or_repeats(model, tmp_path):
    clips = _clips(tmp_path / "videos", 24)
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen(cli_cmd("scan", tmp_path / "videos", "--model", model, "--db", db, "--json", "--batch-size", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env())
    first = []
    for line in proc.stdout:
        first.append(json.loads(line))
        if len(first) >= 6:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    stored = Store(db).results()
    assert 6 <= len(stored) < len(clips)  # everything printed was committed; the kill left work undone
    r = cli("scan", tmp_path / "videos", "--model", model, "--db", db, "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()][:-1]
    summary = json.loads(r.stdout.splitlines()[-1])
    assert sorted(x["path"] for x in rows) == sorted(map(str, clips))  # no file lost
    reused = [x for x in rows if x["timings"].get("reused")]
    assert summary["reused"] == len(reused) == len(stored)  # none scored twice
    assert {x["path"] for x in reused} == {x.path for x in stored}


def test_decoder_crash_and_hang_cost_one_file_each(model, tmp_path, media):
    import truthnet

    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("a.mp4", "crash.mp4", "b.mp4", "hang.mp4", "c.mp4", "oncecrash.mp4"):
        (folder / name).write_bytes(media["face"].read_bytes() + name.encode())  # distinct fingerprints
    clf = truthnet.load_classifier(model)
    sys.path.insert(0, str(Path(__file__).parent))
    from fault_decoders import faulty
    from truthnet.plugins import mtcnn_openvino

    if mtcnn_openvino.available():
        # MTCNN's converted networks in the cache before the clock: a worker that had to convert
        # them (TensorFlow's import, seconds) would spend the 4 s limit of its first file on that
        # when this test runs before any other has filled the session's shared cache
        mtcnn_openvino.networks()
    store = Store(tmp_path / "r.sqlite")
    files = collect_files([folder]).files
    s = Scanner(clf, store, model_path=str(model), workers=2, timeout=4, decode_fn=faulty).scan(files)
    got = {Path(r.path).name: r for r in store.results(s.scan_id)}
    assert {k: v.status for k, v in got.items()} == {
        "a.mp4": "ok", "b.mp4": "ok", "c.mp4": "ok", "crash.mp4": "decode_error", "hang.mp4": "timeout",
        "oncecrash.mp4": "ok"}
    # a worker death is retried once in a fresh worker; only a file that kills two is blamed
    assert (folder / "oncecrash.mp4.attempted").exists() and got["oncecrash.mp4"].score is not None
    assert "crashed on this file in 2 fresh workers (signal 6, then signal 6)" in got["crash.mp4"].reason
    assert "4 s" in got["hang.mp4"].reason
    # the non-final timeout is decoded again by a re-run; the final results are reused
    again = Scanner(clf, store, model_path=str(model), workers=2, timeout=4, decode_fn=faulty).scan(files)
    assert again.skipped == 5 and again.counts["timeout"] == 1


def test_two_scans_share_one_database(model, tmp_path):
    a = _clips(tmp_path / "a", 6)
    b = _clips(tmp_path / "b", 6)
    db = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen(cli_cmd("scan", tmp_path / x, "--model", model, "--db", db, "--json", "--batch-size", "1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
             for x in ("a", "b")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    store = Store(db)
    scans = store.scans()
    assert len(scans) == 2 and all(s["state"] == "done" for s in scans)
    paths = {r.path for r in store.results()}
    assert paths == {str(p) for p in a + b}


def test_windows_keep_per_window_scores(model, tmp_path, media):
    import truthnet

    clf = truthnet.load_classifier(model)
    store = Store(tmp_path / "r.sqlite")
    s = Scanner(clf, store, model_path=str(model), windows=3).scan([str(media["face"])])
    (row,) = store.results(s.scan_id)
    assert row.status == "ok" and len(row.window_scores) == 3
    assert row.score == pytest.approx(sum(row.window_scores) / 3)
    assert row.frames_sampled == 30  # 3 windows x 10 frames of a 30-frame clip


def test_scanning_from_a_script_without_main_guard(model, media, tmp_path):
    """Decode workers are plain subprocesses: they never re-run the user's script."""
    script = tmp_path / "myscan.py"
    script.write_text(
        "import truthnet\n"
        "from truthnet.scanning import Scanner\n"
        "from truthnet.store import Store\n"
        f"clf = truthnet.load_classifier({str(model)!r})\n"
        f"store = Store({str(tmp_path / 'r.sqlite')!r})\n"
        f"s = Scanner(clf, store).scan([{str(media['face'])!r}, {str(media['short'])!r}])\n"
        "print('SCANS', len(store.scans()), dict(s.counts))\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=child_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("SCANS") == 1 and "SCANS 1 " in r.stdout


def test_videos_are_scored_in_batches_with_their_own_scores(model, tmp_path):
    import truthnet

    clips = _clips(tmp_path / "v", 5)
    clf = truthnet.load_classifier(model)
    alone = {str(c): float(clf.predict_sequences([clf.pipeline.prepare(c)])[0]) for c in clips}
    sizes = []
    real = clf.predict_sequences

    def counting(seqs, **kw):
        sizes.append(len(seqs))
        return real(seqs, **kw)

    clf.predict_sequences = counting
    store = Store(tmp_path / "r.sqlite")
    s = Scanner(clf, store, model_path=str(model), batch_size=4).scan([str(c) for c in clips])
    assert sizes == [4, 1]  # a batch as soon as 4 videos are ready, the rest at the end
    rows = store.results(s.scan_id)
    assert len(rows) == 5 and all(r.status == "ok" for r in rows)
    for r in rows:
        assert r.score == pytest.approx(alone[r.path], abs=1e-5)
        assert r.timings["embed"] > 0 and r.timings["classify"] > 0  # the backbone and the head, apart


def test_opencv_detectors_detect_in_the_decode_workers(tmp_path, media):
    import truthnet

    clf = truthnet.new_classifier(truthnet.PipelineConfig.preset("tiny", detector="haar", image_size=32), seed=0)
    expected = float(clf.predict_sequences([clf.pipeline.prepare(media["face"])])[0])
    calls = []
    here = clf.pipeline.detector.detect
    clf.pipeline.detector.detect = lambda frames: calls.append(len(frames)) or here(frames)
    store = Store(tmp_path / "r.sqlite")
    s = Scanner(clf, store).scan([str(media["face"]), str(media["noface"])])
    rows = {Path(r.path).name: r for r in store.results(s.scan_id, with_thumbs=True)}
    assert calls == []  # nothing was detected in this process: the workers did it
    face, noface = rows[media["face"].name], rows[media["noface"].name]
    assert face.status == "ok" and face.score == pytest.approx(expected, abs=1e-5)
    assert face.frames_sampled == 10 and sum(n > 0 for n in face.faces_found) >= 8
    assert face.timings["detect"] > 0 and face.thumbs
    assert noface.status == "no_face" and noface.faces_found == [0] * 10 and "no face" in noface.reason


def test_mtcnn_on_openvino_detects_in_the_decode_workers(model, tmp_path, media, monkeypatch):
    """MTCNN on OpenVINO needs no TensorFlow: the decode workers detect and send back only the
    crops, and the scanning process builds no detector.  The same files detected in this
    process instead (the engine's decision travels with each task: the workers, which do not
    see this test's patch, obey it) give the very same faces, scores and frames."""
    import truthnet
    import truthnet.engine
    from truthnet.engine import Engine
    from truthnet.plugins.face_detectors import MTCNNDetector

    files = [str(media["face"]), str(media["noface"]), str(media["short"])]
    per_worker, decides = truthnet.engine.FILES_PER_DETECTING_WORKER, MTCNNDetector.__dict__["runs_in_decoder"]
    monkeypatch.setattr(truthnet.engine, "FILES_PER_DETECTING_WORKER", 0)  # however many cores this has
    built_here = []  # windows detected in this process
    build = truthnet.engine.build_window
    monkeypatch.setattr(truthnet.engine, "build_window", lambda *a: built_here.append(a[1]) or build(*a))

    def scan(db, files=files):
        built_here.clear()
        clf = truthnet.load_classifier(model)
        s = Scanner(clf, Store(tmp_path / db), model_path=str(model)).scan(files)
        return {Path(r.path).name: r for r in Store(tmp_path / db).results(s.scan_id)}, sorted(built_here)

    assert Engine(truthnet.load_classifier(model)).in_worker
    workers, here = scan("workers.sqlite")
    monkeypatch.setattr(MTCNNDetector, "runs_in_decoder", staticmethod(lambda options, device=None: False))
    assert not Engine(truthnet.load_classifier(model)).in_worker
    main, here_after = scan("main.sqlite")
    assert here == [] and here_after == sorted(files)  # ... and the patched side did detect here
    # a run too short to pay for each worker's detector set-up detects here, where it is kept
    monkeypatch.setattr(MTCNNDetector, "runs_in_decoder", decides)
    monkeypatch.setattr(truthnet.engine, "FILES_PER_DETECTING_WORKER", per_worker)
    one, here_short = scan("one.sqlite", files[:1])
    assert here_short == files[:1] and one[media["face"].name].score == workers[media["face"].name].score
    assert {n: r.status for n, r in workers.items()} == {n: r.status for n, r in main.items()}
    assert workers[media["face"].name].status == "ok" and workers[media["noface"].name].status == "no_face"
    for name, r in workers.items():
        other = main[name]
        assert (r.score, r.faces_found, r.frame_indices, r.frames_sha256) == (
            other.score, other.faces_found, other.frame_indices, other.frames_sha256), name
        if r.status == "ok":
            assert r.timings["detect"] > 0 and other.timings["detect"] > 0


def test_no_decode_worker_outlives_a_scan_killed_outright(model, tmp_path, media):
    """A scan killed with -9 while its worker is deep in a decode (here: one that would hang for
    ten minutes) leaves no decoder running."""
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "hang.mp4").write_bytes(media["face"].read_bytes())
    scan = start_faulty_scan(model, tmp_path / "r.sqlite", folder, workers=1)

    def workers() -> list[int]:
        out = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and b"truthnet.decode.worker" in (d / "cmdline").read_bytes():
                    if parent_pid(int(d.name)) == scan.pid:
                        out.append(int(d.name))
            except OSError:
                continue
        return out

    try:
        wait_until(lambda: (folder / "hang.mp4.decoding").exists(), what="the worker to be inside the endless decode")
        pids = workers()
        assert pids
    finally:
        scan.kill()
        scan.wait()

    wait_until(lambda: all(process_gone(p) for p in pids), timeout=60, what="the orphaned decode worker to exit")

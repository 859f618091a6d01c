"""`truthnet scan --engine ray` on a local Ray instance (2 CPUs) against the local engine."""

import json
import os
from pathlib import Path

import pytest

from helpers import cli

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.allow_untrained]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, media, tiny_model, small_corpus):
    from truthnet.synth import make_face_clip

    d = tmp_path_factory.mktemp("ray")
    folder = d / "videos"
    for i in range(8):
        make_face_clip(folder / f"c{i}.mp4", n_frames=10, seed=200 + i, width=160, height=120, face_size=70)
    (folder / "noface.mp4").write_bytes(media["noface"].read_bytes())
    (folder / "broken.mp4").write_bytes(media["truncated"].read_bytes())
    (folder / "zero.mp4").write_bytes(b"")
    # realistic footage (H.264, long GOP, B-frames) with bits flipped in its frame data
    data = bytearray(small_corpus["480p25-long"].path.read_bytes())
    rng = __import__("numpy").random.default_rng(11)
    for i in rng.integers(len(data) // 4, 3 * len(data) // 4, 300):
        data[i] ^= 1 << int(rng.integers(0, 8))
    (folder / "damaged-long.mp4").write_bytes(bytes(data))
    return folder, Path(tiny_model)


def test_ray_engine_matches_local_and_survives_a_killed_worker(setup, tmp_path):
    import truthnet
    from truthnet.engine.ray import RayScanner
    from truthnet.collect import collect_files
    from truthnet.scanning import Scanner
    from truthnet.store import Store

    folder, model = setup
    files = collect_files([folder]).files
    clf = truthnet.load_classifier(model)
    local_store = Store(tmp_path / "local.sqlite")
    s_local = Scanner(clf, local_store, model_path=str(model)).scan(files)
    local = {r.path: r for r in local_store.results(s_local.scan_id)}

    store = Store(tmp_path / "ray.sqlite")
    scanner = RayScanner(clf, store, model_path=str(model), num_workers=2, files_per_task=2)
    killed = []

    def kill_one(actors):
        # kill a worker while it works on its first batch: its files must be retried elsewhere
        ref = actors[0].pid.remote()
        pid = ray.get(ref)
        os.kill(pid, 9)
        killed.append(pid)

    scanner.on_actor_started = kill_one
    s_ray = scanner.scan(files)
    rows = store.results(s_ray.scan_id)
    assert killed
    assert sorted(r.path for r in rows) == sorted(files)  # every file once, none twice
    for r in rows:  # the same status, the same decoded frames and score as the local engine
        assert r.status == local[r.path].status
        assert r.frames_sha256 == local[r.path].frames_sha256, r.path
        if r.score is not None:
            assert abs(r.score - local[r.path].score) < 1e-6
    assert not ray.is_initialized()  # the engine shut down the instance it started

    # the results are in the store and in `truthnet results` like any local scan
    out = cli("results", "--db", tmp_path / "ray.sqlite", "--scan", s_ray.scan_id, "--json")
    assert out.returncode == 0, out.stderr
    assert {json.loads(x)["path"] for x in out.stdout.splitlines()} == set(files)


def test_cli_engine_ray(setup, tmp_path):
    folder, model = setup
    r = cli("scan", folder, "--model", model, "--db", tmp_path / "r.sqlite", "--engine", "ray", "--num-workers", "2",
            "--json", timeout=600, child=True)
    assert r.returncode == 2, r.stderr[-2000:]  # the broken files are reported, not fatal
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    summary = lines[-1]
    ok = {Path(x["path"]).name for x in lines[:-1] if x["status"] == "ok"}
    assert summary["files"] == 12 and summary["statuses"]["ok"] == len(ok) and {f"c{i}.mp4" for i in range(8)} <= ok
    assert {Path(x["path"]).name: x["status"] for x in lines[:-1]}["broken.mp4"] == "decode_error"

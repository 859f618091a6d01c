"""`--ray-address HOST:PORT` against a real `ray start --head` cluster with token
authentication, and one-line errors within seconds when it cannot connect (issue #15, item 4)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command, from this Python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A one-CPU head node whose token lives where `ray start` keeps it (~/.ray/auth_token of a
    private HOME).  Stopped by killing its own process group: `ray stop` would stop every Ray
    process on the machine, other users' included."""
    root = Path(tempfile.mkdtemp(prefix="tnray", dir="/tmp"))  # Ray's socket paths must stay short
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("5eed" * 16)
    port = _free_port()
    env = {**os.environ, "HOME": str(home)}
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([*RAY, "start", "--head", "--block", "--num-cpus", "1", "--port", str(port),
                             "--temp-dir", str(root / "t"), "--include-dashboard", "false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start did not come up: {proc.stderr.read()[-2000:]}")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}", home, root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def _env(home, **extra):
    env = {**os.environ, "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(k, None)
    return env


@pytest.mark.allow_untrained
def test_scan_reaches_a_token_cluster_by_explicit_address(cluster, tmp_path, media, tiny_model):

    address, home, _ = cluster
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "face.mp4").write_bytes(media["face"].read_bytes())
    (folder / "zero.mp4").write_bytes(b"")
    model = tiny_model
    r = subprocess.run([sys.executable, "-m", "truthnet.cli", "scan", str(folder), "--model", str(model), "--db",
                        str(tmp_path / "r.sqlite"), "--engine", "ray", "--ray-address", address, "--num-workers", "1",
                        "--json"], capture_output=True, text=True, timeout=300,
                       env=_env(home, TRUTHNET_CONFIG=str(tmp_path / "s.json")))
    assert r.returncode == 2, r.stderr[-3000:]  # the empty file is reported, the clip is scored
    rows = {Path(x["path"]).name: x for x in map(json.loads, r.stdout.splitlines()[:-1])}
    assert rows["face.mp4"]["status"] == "ok" and rows["face.mp4"]["score"] is not None
    assert rows["zero.mp4"]["status"] == "not_a_video"


def _connect(address: str, home) -> tuple[subprocess.CompletedProcess, float]:
    code = ("import ray, sys\nfrom truthnet.errors import ConfigError\nfrom truthnet.engine.ray import connect\n"
            f"try:\n    connect(ray, {address!r})\nexcept ConfigError as e:\n    print(e); sys.exit(3)\n"
            "print('connected'); ray.shutdown()\n")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(home), timeout=120)
    return r, time.monotonic() - t


def test_connection_failures_are_one_line_within_seconds(cluster, tmp_path):
    """Ray alone keeps retrying for minutes; the bounds below only catch that (they leave a loaded
    machine plenty of room for Python, Ray's import and the connection check)."""
    address, _, _ = cluster
    stranger = tmp_path / "home"  # no token: the cluster refuses
    stranger.mkdir()
    r, seconds = _connect(address, stranger)
    assert r.returncode == 3 and seconds < 60, (r.stdout, r.stderr[-2000:])
    assert r.stdout.startswith(f"cannot connect to the Ray cluster at {address}") and len(r.stdout.splitlines()) == 1
    assert "auth_token" in r.stdout  # the way out
    r, seconds = _connect(f"127.0.0.1:{_free_port()}", stranger)  # nothing listens there
    assert r.returncode == 3 and seconds < 60 and "no Ray cluster answers" in r.stdout, r.stderr[-2000:]
    r, _ = _connect("nonsense", stranger)
    assert r.returncode == 3 and "expected HOST:PORT" in r.stdout


def test_the_token_mode_lasts_for_the_connection_only(cluster):
    """A driver with the cluster's token connects (Ray needs $RAY_AUTH_MODE=token for an explicit
    address); once shut down, the process's environment is as before."""
    address, home, _ = cluster
    code = ("import os, ray\nfrom truthnet.engine.ray import connect, _forget_ray_token\n"
            f"connect(ray, {address!r})\nprint(os.environ.get('RAY_AUTH_MODE'))\n"
            "ray.shutdown(); _forget_ray_token()\nprint(os.environ.get('RAY_AUTH_MODE'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(home), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["token", "None"]

import json
import os
import shutil
import subprocess

import pytest

from truthnet import ConfigError, UnknownNameError, plugins
from truthnet.plugins import hookimpl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_builtins_are_registered_with_their_source():
    assert {"linspace", "stride", "window"} <= set(plugins.list_samplers())
    assert {"mtcnn", "haar", "none"} <= set(plugins.list_face_detectors())
    assert {"mobilenetv2", "efficientnetb0", "tiny"} <= set(plugins.list_backbones())
    assert plugins.list_backbones("mobile*") == ["mobilenetv2"]
    assert all(e.source == plugins.BUILTIN_SOURCE for e in plugins.list_entries())


@pytest.mark.parametrize("kind,create", [("backbone", plugins.create_backbone), ("face_detector", plugins.create_face_detector)])
def test_unknown_name_lists_installed(kind, create):
    with pytest.raises(UnknownNameError) as e:
        create("resnet9000")
    assert e.value.known == plugins.list_names(kind)
    assert "installed:" in str(e.value)


def test_bad_options_name_the_valid_ones():
    with pytest.raises(ConfigError, match=r"sampler 'stride' has no option 'stepp'; valid options: step \(default 5\)"):
        plugins.create_sampler("stride", stepp=3)
    with pytest.raises(ConfigError, match=r"window.*position must be in \[0, 1\]"):
        plugins.create_sampler("window", position=2.0)  # the factory's own check still speaks


@pytest.mark.parametrize("name", plugins.list_backbones())
def test_every_backbone_describes_itself(name):
    b = plugins.create_backbone(name)
    assert b.input_size > 0 and b.feature_dim > 0 and b.pooling in ("avg", "max")
    import numpy as np

    x = np.full((2, 4, 4, 3), 255.0, dtype=np.float32)
    assert b.preprocess(x).shape == x.shape


def test_runtime_registration_and_no_silent_shadowing():
    class P:
        @hookimpl
        def truthnet_register_samplers(self, register):
            register("first-frame", lambda: type("S", (), {"sample": lambda self, info, n: [0]})())
            register("linspace", lambda: None)  # must not replace the built-in

    try:
        plugins.register_plugin(P(), name="test-plugin", source="test")
        assert "first-frame" in plugins.list_samplers()
        assert plugins.get_entry("sampler", "linspace").source == plugins.BUILTIN_SOURCE
        assert plugins.get_entry("sampler", "first-frame").source == "test"
    finally:
        plugins.reset()
    assert "first-frame" not in plugins.list_samplers()


EXAMPLE = "truthnet-plugin-example 0.2.0"


def _installed(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return bool(version(dist))
    except PackageNotFoundError:
        return False


def _run(args, env, **kw):
    return subprocess.run(args, env=env, capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_third_party_plugin_trains_from_the_cli_and_scores_in_a_fresh_scan(tmp_path, python):
    """The example plugin, pip-installed: listed, used by `truthnet train` from the CLI (its
    sampler, face detector and custom-layer backbone, with options), saved, and scored by
    `truthnet scan` in a fresh process (custom layer loaded in safe mode; the detector runs in
    the scan's decode workers, which load the plugin themselves)."""
    src = tmp_path / "plugin-src"
    shutil.copytree(os.path.join(ROOT, "examples", "truthnet-plugin-example"), src)
    site = tmp_path / "site"
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    r = _run([*pip, "--target", str(site), str(src)], os.environ)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), ROOT]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TRUTHNET_LOAD_PLUGINS", None)
    cli = [python, "-m", "truthnet.cli"]

    r = _run([*cli, "plugins", "--json"], env)
    assert r.returncode == 0, r.stderr
    names = {(p["kind"], p["name"]): p["source"] for p in json.loads(r.stdout)["plugins"]}
    for key in [("sampler", "middle-third"), ("face_detector", "centre"), ("backbone", "micro-gate")]:
        assert names[key] == EXAMPLE
    assert names[("backbone", "mobilenetv2")] == plugins.BUILTIN_SOURCE
    r = _run([*cli, "plugins", "--json"], {**env, "TRUTHNET_LOAD_PLUGINS": ""})  # the allowlist switches it off
    assert "middle-third" not in r.stdout

    data, run = tmp_path / "data", tmp_path / "run"
    r = _run([*cli, "synth", str(data), "--real", "4", "--fake", "4", "--frames", "12", "--width", "96",
              "--height", "72"], env)
    assert r.returncode == 0, r.stderr
    train = [*cli, "train", str(data), "-o", str(run), "--preset", "tiny", "--sampler", "middle-third",
             "--detector", "centre", "--backbone", "micro-gate", "--option", "sampler.fraction=0.5",
             "--option", "detector.size=0.7", "--option", "backbone.width=4", "--epochs", "1", "--workers", "1",
             "--cache", str(tmp_path / "cache")]
    r = _run([*train[:-2], "--option", "backbone.widht=4"], env)  # a typo: refused, naming the valid options
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "backbone 'micro-gate' has no option 'widht'; valid options: width (default 8), reduction" in r.stderr
    r = _run(train, env)
    assert r.returncode == 0, r.stderr
    model = run / "model.keras"

    from truthnet.model import read_metadata

    meta, _ = read_metadata(model)
    pipe = meta["pipeline"]
    assert (pipe["sampler"], pipe["detector"], pipe["backbone"]) == ("middle-third", "centre", "micro-gate")
    assert pipe["sampler_options"] == {"fraction": 0.5} and pipe["backbone_options"] == {"width": 4}
    assert pipe["image_size"] == 32  # micro-gate's declared input_size: no --image-size given
    assert {(p["part"], p["distribution"], p["version"]) for p in meta["plugins"]} == {
        (part, "truthnet-plugin-example", "0.2.0") for part in ("sampler", "detector", "backbone")
    }

    r = _run([*cli, "scan", str(data), "-r", "--model", str(model), "--json", "--workers", "1",
              "--db", str(tmp_path / "scan.sqlite")], env)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    videos, summary = rows[:-1], rows[-1]
    assert summary["files"] == 8 and summary["failed"] == 0
    assert all(v["status"] == "ok" and 0.0 < v["score"] < 1.0 for v in videos), videos
    # fraction=0.5 samples frames 3..8 of 12 (the default third: 4..7); centre finds one face each
    assert {v["frames_sampled"] for v in videos} == {6}
    assert all(v["faces_found"] == [1] * 6 for v in videos)

    # scoring cannot change the trained backbone
    r = _run([*cli, "scan", str(data), "-r", "--model", str(model), "--option", "backbone.width=2"], env)
    assert r.returncode == 3 and "cannot change when scoring" in r.stderr, r.stderr

    # here, where the plugin is not installed: the model names the package to install ...
    from truthnet import ModelError
    from truthnet.model import load_model

    with pytest.raises(ModelError, match="needs the sampler 'middle-third' from") as e:
        load_model(model)
    if not _installed("truthnet-plugin-example"):  # (a developer may have it installed, switched off)
        assert "0.2.0, which is not installed (pip install truthnet-plugin-example)" in str(e.value)
    # ... and it really does need the plugin's layer: plain Keras cannot place ChannelGate
    import keras

    with pytest.raises(Exception, match="ChannelGate"):
        keras.saving.load_model(model, safe_mode=True)


def test_broken_plugin_is_reported_not_fatal(tmp_path, python):
    pkg = tmp_path / "site"
    (pkg / "broken_tn_plugin").mkdir(parents=True)
    (pkg / "broken_tn_plugin" / "__init__.py").write_text("raise ImportError('needs libfoo')\n")
    dist = pkg / "broken_tn_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-tn-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[truthnet]\nbroken = broken_tn_plugin\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pkg), ROOT])}
    env.pop("TRUTHNET_LOAD_PLUGINS", None)
    r = subprocess.run([python, "-m", "truthnet.cli", "plugins", "--json"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "needs libfoo" in out["load_errors"]["broken"]
    assert any(p["name"] == "linspace" for p in out["plugins"])

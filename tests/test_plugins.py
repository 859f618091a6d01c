import json
import os
import shutil
import subprocess
import textwrap

import pytest

from truthnet import PluginError, UnknownNameError, plugins
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


def test_bad_options_are_a_plugin_error():
    with pytest.raises(PluginError, match="stride"):
        plugins.create_sampler("stride", stepp=3)


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


@pytest.mark.slow
def test_pip_installed_plugin_package_is_used_by_name(tmp_path, media, python):
    """Copy the example plugin to a temp folder, pip-install it, and score a video with it."""
    src = tmp_path / "plugin-src"
    shutil.copytree(os.path.join(ROOT, "examples", "truthnet-plugin-example"), src)
    target = tmp_path / "site"
    r = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(src)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), ROOT]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TRUTHNET_LOAD_PLUGINS", None)
    code = textwrap.dedent(
        f"""
        import json, truthnet
        from truthnet import plugins
        cfg = truthnet.PipelineConfig(sampler="middle-third", detector="centre", backbone="micro",
                                      backbone_weights=None, trainable_backbone=True, image_size=32)
        det = truthnet.new_detector(cfg, seed=0)
        v = det.score_video({str(media["face"])!r})
        print(json.dumps({{"status": v.status, "score": v.score, "indices": v.frame_indices,
                          "faces": v.faces_found, "source": plugins.get_entry("backbone", "micro").source}}))
        """
    )
    r = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] == "ok" and 0.0 < out["score"] < 1.0
    assert out["indices"] == list(range(10, 20))  # the middle third of 30 frames
    assert out["faces"] == [1] * len(out["indices"])
    assert out["source"] == "truthnet-plugin-example 0.1.0"

    r = subprocess.run([python, "-m", "truthnet.cli", "plugins", "--json"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)
    names = {(p["kind"], p["name"]): p["source"] for p in listing["plugins"]}
    assert names[("sampler", "middle-third")] == "truthnet-plugin-example 0.1.0"
    assert names[("face_detector", "centre")] == "truthnet-plugin-example 0.1.0"
    assert names[("backbone", "mobilenetv2")] == plugins.BUILTIN_SOURCE

    # the allowlist can switch it off
    env["TRUTHNET_LOAD_PLUGINS"] = ""
    r = subprocess.run([python, "-m", "truthnet.cli", "plugins", "--json"], env=env, capture_output=True, text=True)
    assert "middle-third" not in r.stdout


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

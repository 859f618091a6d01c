"""The plugin contracts, datasette-style: every hook is documented and exercised here (one
``test_hook_<name>`` each, through the real pipeline), every link in the docs resolves, and
mistakes a plugin author makes are errors that say what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import truthnet
from truthnet import ConfigError, ModelError, PipelineConfig, PluginError, plugins
from truthnet.plugins import contracts, hookimpl, hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec"))


@pytest.fixture
def register():
    """Register plugin objects at run time for one test; forgotten afterwards."""
    def add(plugin, source="test"):
        plugins.register_plugin(plugin, source=source)

    yield add
    plugins.reset()


# --- meta-tests ----------------------------------------------------------------------------


def test_every_hook_is_documented_and_has_a_test():
    assert set(HOOKS) == set(plugins.KINDS.values())
    docs = (ROOT / "docs" / "plugins.md").read_text()
    undocumented = [h for h in HOOKS if f"`{h}`" not in docs]
    assert not undocumented, f"hooks missing from docs/plugins.md: {undocumented}"
    untested = [h for h in HOOKS if f"test_hook_{h}" not in globals()]
    assert not untested, f"hooks without a test_hook_<name> here: {untested}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@pytest.mark.parametrize(
    "doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
            "examples/truthnet-plugin-example/README.md"],
)
def test_every_relative_link_resolves(doc):
    path = ROOT / doc
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{doc} links to missing files: {broken}"


def test_builtins_meet_the_protocols():
    for name in plugins.list_samplers():
        assert isinstance(plugins.create_sampler(name), contracts.Sampler), name
    for name in plugins.list_face_detectors():
        assert isinstance(plugins.create_face_detector(name), contracts.FaceDetector), name
    for name in plugins.list_dataset_layouts():
        assert isinstance(plugins.create_dataset_layout(name), contracts.DatasetLayout), name


# --- one test per hook ---------------------------------------------------------------------


class EveryOther:
    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def sample(self, info, num_frames):
        return list(range(self.offset, info.frame_count, 2))[:num_frames]


def test_hook_truthnet_register_samplers(register, media):
    class P:
        @hookimpl
        def truthnet_register_samplers(self, register):
            register("every-other", EveryOther, "every second frame")

    register(P())
    assert isinstance(plugins.create_sampler("every-other"), contracts.Sampler)
    cfg = plugins.configure_parts(PipelineConfig.preset("tiny", detector="none", image_size=32),
                                  sampler="every-other", options=["sampler.offset=1"])
    from truthnet.pipeline import FacePipeline

    seq = FacePipeline(cfg).prepare(media["face"])  # a real 30-frame clip
    assert seq.frame_indices == list(range(1, 20, 2))
    with pytest.raises(ConfigError, match=r"sampler 'every-other' has no option 'ofset'; valid options: offset"):
        plugins.configure_parts(cfg, options=["sampler.ofset=1"])


@pytest.mark.allow_untrained
def test_hook_truthnet_register_face_detectors(register, media, tmp_path):
    from truthnet.faces import Face

    class Corner:
        finds_faces = True

        def __init__(self, side: int = 16) -> None:
            self.side = side

        def detect(self, frames):
            return [[Face((0.0, 0.0, float(self.side), float(self.side)), 0.9)] for _ in frames]

    class P:
        @hookimpl
        def truthnet_register_face_detectors(self, register):
            register("corner", Corner)

    register(P())
    cfg = PipelineConfig.preset("tiny", detector="corner", detector_options={"side": 20}, face_margin=0.0, image_size=32)
    clf = truthnet.new_classifier(cfg, seed=0)
    v = clf.score_video(media["face"])  # in this process a run-time plugin works
    assert v.status == "ok" and v.faces_found == [1] * 10
    assert clf.pipeline.prepare(media["face"]).boxes == [(0, 0, 20, 20)] * 10

    # the scan's decode workers are fresh processes: asked for, they are refused up front,
    # saying how to package it; by default the scanner decodes in threads instead
    from truthnet.scanning import Scanner
    from truthnet.store import Store

    with pytest.raises(ConfigError, match=r"face detector 'corner' was registered at run time.*entry-points\.truthnet"):
        Scanner(clf, Store(tmp_path / "db.sqlite"), isolation="process")
    scanner = Scanner(clf, Store(tmp_path / "db.sqlite"))
    assert scanner.engine.isolation == "thread"
    scanner.scan([str(media["face"])])
    (row,) = Store(tmp_path / "db.sqlite").results()
    assert (row.status, row.faces_found) == ("ok", [1] * 10)


def _conv_backbone(name: str, feature_dim: int, channels: int, *, flat: bool = False):
    from truthnet.backbones import Backbone

    def build(size, weights):
        import keras

        inp = keras.Input((size, size, 3))
        x = keras.layers.Conv2D(channels, 3, strides=4, name="conv")(inp)
        if flat:
            x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, x)

    return Backbone(name=name, input_size=40, feature_dim=feature_dim, builder=build, preprocess=lambda x: x / 255.0)


@pytest.mark.allow_untrained
def test_hook_truthnet_register_backbones(register, media, tmp_path):
    class P:
        @hookimpl
        def truthnet_register_backbones(self, register):
            register("conv8", lambda: _conv_backbone("conv8", 8, 8))
            register("lying", lambda: _conv_backbone("lying", 12, 8))
            register("flat", lambda: _conv_backbone("flat", 8, 8, flat=True))

    register(P(), source="notebook")
    base = PipelineConfig.preset("tiny", detector="none")
    cfg = plugins.configure_parts(base, backbone="conv8")
    assert cfg.image_size == 40  # the backbone's input_size, as no image size was given
    clf = truthnet.new_classifier(cfg, seed=0)
    want = clf.score_video(media["face"]).score
    with pytest.raises(ModelError, match=r"declares feature_dim=12, but its model maps \(40, 40, 3\) to \(10, 10, 8\)"):
        truthnet.new_classifier(base.replace(backbone="lying", image_size=40))
    with pytest.raises(ModelError, match=r"'flat' declares feature_dim=8.*to \(8,\)"):
        truthnet.new_classifier(base.replace(backbone="flat", image_size=40))

    path = clf.save(tmp_path / "m.keras")
    plugins.reset()  # a new session: the notebook's plugin is gone
    with pytest.raises(ModelError, match=r"needs the backbone 'conv8', which was registered at run time \(notebook\)"):
        truthnet.load_classifier(path)
    register(P())
    assert truthnet.load_classifier(path).score_video(media["face"]).score == pytest.approx(want, abs=1e-6)


def test_hook_truthnet_register_job_kinds(tmp_path, request):
    """The queue takes scan, train and evaluate, and a kind only where a plugin provides it:
    the test suite's own ``_selftest`` kind is refused until it is installed as a plugin is;
    then a real runner and job process (separate processes) find it and run it."""
    from helpers import cli
    from truthnet.jobs import JobQueue

    db = tmp_path / "q.sqlite"
    q = JobQueue(db)
    with pytest.raises(ConfigError, match="unknown job kind '_selftest'; known: scan, train, evaluate$"):
        q.add("_selftest", str(tmp_path))
    kind = request.getfixturevalue("selftest_kind")
    jid = q.add(kind, str(tmp_path), options={"lines": 2})
    r = cli("jobs", "run", "--until-empty", "--skip-gpu-check", "--device", "cpu", "--db", db, child=True)
    assert r.returncode == 0, r.stderr[-2000:]
    job = q.get(jid)
    assert (job["state"], job["message"]) == ("done", "selftest done"), job


def test_hook_truthnet_register_dataset_layouts(register, tmp_path, media):
    from truthnet.datasets import ManifestRow, read_dataset

    class ListLayout:
        expects = "labels.txt: one 'real|fake path' per line"

        def detect(self, root):
            return (root / "labels.txt").is_file()

        def read(self, root):
            rows = []
            for line in (root / "labels.txt").read_text().splitlines():
                label, rel = line.split(maxsplit=1)
                rows.append(ManifestRow(str(root / rel), int(label == "fake"), Path(rel).stem, source="list"))
            return rows

    class P:
        @hookimpl
        def truthnet_register_dataset_layouts(self, register):
            register("list", ListLayout)

    register(P())
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(media["face_avi"].read_bytes())
    (tmp_path / "labels.txt").write_text("real a.mp4\nfake b.mp4\n")
    name, rows = read_dataset(tmp_path)  # detected among the built-in layouts
    assert name == "list"
    assert [(Path(r.path).name, r.label) for r in rows] == [("a.mp4", 0), ("b.mp4", 1)]


# --- mistakes a plugin author makes --------------------------------------------------------


def test_misspelled_hook_is_an_error_naming_it(register):
    class Typo:
        @hookimpl
        def truthnet_register_sampler(self, register):  # "sampler", not "samplers"
            register("never", EveryOther)

    with pytest.raises(PluginError, match="unknown hook 'truthnet_register_sampler'.*truthnet_register_samplers"):
        register(Typo())
    assert "never" not in plugins.list_samplers()


def test_misspelled_hook_in_an_installed_plugin_is_reported(tmp_path, monkeypatch):
    pkg = tmp_path / "typo_tn_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from truthnet.plugins import hookimpl\n\n"
        "@hookimpl\ndef truthnet_register_backbone(register):\n    register('x', object)\n"
    )
    dist = tmp_path / "typo_tn_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: typo-tn-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[truthnet]\ntypo = typo_tn_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TRUTHNET_LOAD_PLUGINS", "typo")
    plugins.reset()
    try:
        assert "unknown hook 'truthnet_register_backbone'" in plugins.plugin_load_errors()["typo"]
        assert "mobilenetv2" in plugins.list_backbones()  # TruthNet keeps working
        with pytest.raises(ConfigError, match="failed to load: typo: .*truthnet_register_backbone"):
            plugins.create_backbone("x")
    finally:
        plugins.reset()


def test_cli_options_are_checked_before_any_work(tmp_path, capsys):
    from truthnet.cli import main

    assert main(["train", str(tmp_path / "nowhere"), "--option", "detector.min_face=30"]) == 3
    err = capsys.readouterr().err
    assert "face detector 'mtcnn' has no option 'min_face'; valid options:" in err and "min_face_size" in err
    assert main(["train", str(tmp_path), "--sampler", "stride", "--option", "sampler.step=two"]) == 3
    assert "option 'step' expects a number (default 5), got 'two'" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--option", "detector=3"]) == 3
    assert "--option expects PART.KEY=VALUE" in capsys.readouterr().err
    # the paper preset's ImageNet weights do not exist for tiny: said now, not after cropping
    assert main(["train", str(tmp_path), "--backbone", "tiny"]) == 3
    assert "backbone 'tiny' has no 'imagenet' weights; it offers: none" in capsys.readouterr().err


@pytest.mark.allow_untrained
def test_new_model_and_scoring_options(tmp_path, media):
    from truthnet.cli import main
    from truthnet.model import read_metadata
    from truthnet.resolve import inference_config

    out = tmp_path / "m.keras"
    assert main(["new-model", "--preset", "tiny", "--image-size", "32", "--sampler", "stride", "--option",
                 "sampler.step=3", "--option", "backbone.filters=[8, 16]", "-o", str(out)]) == 0
    meta, _ = read_metadata(out)
    assert meta["pipeline"]["sampler_options"] == {"step": 3}
    assert meta["pipeline"]["backbone_options"] == {"filters": [8, 16]}
    assert [(p["part"], p["name"], p["distribution"]) for p in meta["plugins"]] == [
        ("sampler", "stride", "truthnet"), ("detector", "mtcnn", "truthnet"), ("backbone", "tiny", "truthnet")
    ]
    # scoring may change the sampler and detector (and their options), not the backbone
    cfg = inference_config(out, detector="none", options=["sampler.start=1"])
    assert (cfg.detector, cfg.sampler_options) == ("none", {"step": 3, "start": 1})
    v = truthnet.load_classifier(out, cfg).score_video(media["face"])
    assert v.status == "ok" and v.frame_indices == list(range(1, 30, 3))
    assert inference_config(out) is None  # nothing changed: the model's own configuration
    with pytest.raises(ConfigError, match="cannot change when scoring"):
        inference_config(out, options=["backbone.filters=[4]"])

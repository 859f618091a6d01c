"""Model cards: what a model was trained on, and warnings beside every verdict list (issue #15,
item 3).  The training round trip is in test_training.py (it trains anyway)."""

import json
from pathlib import Path
import os

import pytest

from truthnet.modelcard import SYNTHETIC_MARKER, ModelCard, preset_name, synthetic_count

from helpers import cli

SYNTH_CARD = {
    "trained": True, "dataset": "/data/demo", "layout": "folder", "synthetic": True, "synthetic_videos": 100,
    "counts": {"train": {"real": 35, "fake": 35}, "val": {"real": 5, "fake": 5}, "test": {"real": 10, "fake": 10}},
    "preset": "tiny", "train_metrics": {"val_accuracy": 0.9, "val_auc": 0.95},
    "test_metrics": {"split": "test", "n": 20, "accuracy": 1.0, "roc_auc": 1.0},
}


def test_card_summary_and_warnings():
    card = ModelCard.from_metadata({"card": SYNTH_CARD, "truthnet_version": "0.1.0", "created": "2026-11-27T00:00:00"})
    line = card.summary()
    assert "trained on 100 videos (70 for training: 35 real, 35 fake) from /data/demo [folder]" in line
    assert "SYNTHETIC" in line and "preset tiny" in line and "test (20 videos) accuracy 1.000" in line
    assert "TruthNet 0.1.0 2026-11-27" in line and "\n" not in line
    w = card.warnings()
    assert len(w) == 2 and "synthetic" in w[0] and "only 70 videos (fewer than 300)" in w[1]
    big = ModelCard.from_dict({**SYNTH_CARD, "synthetic": False, "counts": {"train": {"real": 200, "fake": 200}}})
    assert big.warnings() == []
    assert "untrained" in ModelCard.from_metadata({"trained": False}).warnings()[0]
    # a model saved before cards: what its metadata says, or an honest "no record"
    old = ModelCard.from_metadata({"trained": True, "dataset": "d", "layout": "folder",
                                   "split_counts": {"train": {"real": 400, "fake": 500}},
                                   "history": {"loss": [0.5, 0.3]}})
    assert old.videos("train") == 900 and old.train_metrics == {"loss": 0.3} and old.warnings() == []
    assert "no record" in ModelCard.from_metadata({}).warnings()[0]


def test_synthetic_marker_and_preset_names(tmp_path):
    from truthnet import PipelineConfig
    from truthnet.synth import make_dataset

    make_dataset(tmp_path / "synth", n_real=2, n_fake=2, n_frames=4, seed=0)
    marker = json.loads((tmp_path / "synth" / SYNTHETIC_MARKER).read_text())
    assert marker["generator"] == "truthnet synth" and marker["n_real"] == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.mp4").write_bytes(b"x")
    paths = [*map(str, (tmp_path / "synth").rglob("*.mp4")), str(tmp_path / "mine" / "a.mp4")]
    assert synthetic_count(paths) == 4
    assert preset_name(PipelineConfig.preset("paper")) == "paper"
    assert preset_name(PipelineConfig.preset("tiny", image_size=64)) == "custom (tiny with image_size changed)"


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory, tiny_classifier):
    d = tmp_path_factory.mktemp("card")
    return tiny_classifier.save(d / "demo.keras", {"trained": True, "card": SYNTH_CARD})




@pytest.mark.slow
def test_synthetic_warning_in_json_html_and_results(synthetic_model, media, tmp_path):
    settings = Path(os.environ["TRUTHNET_CONFIG"])
    db, html = tmp_path / "r.sqlite", tmp_path / "report.html"
    r = cli("scan", media["face"], "--model", synthetic_model, "--db", db, "--json", "--html", html)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["model_card"]["synthetic"] is True and "SYNTHETIC" in summary["model_card"]["summary"]
    assert any("synthetic" in w for w in summary["warnings"])
    page = html.read_text()
    assert "id='model-warnings'" in page and "trained on synthetic clips" in page
    assert page.index("model-warnings") < page.index("<table")  # above the verdicts
    r = cli("results", "--db", db, "--scan", summary["scan_id"], "--json")
    assert r.returncode == 0 and "warning: trained on synthetic clips" in r.stderr.replace("\n", " ")
    r = cli("results", "--db", db, env={"COLUMNS": "250"})
    assert "trained on synthetic" in r.stdout
    # model-info, and the default model refuses synthetic data unless told
    r = cli("model-info", synthetic_model, "--json")
    info = json.loads(r.stdout)
    assert info["card"]["synthetic"] is True and info["warnings"] == ModelCard.from_dict(SYNTH_CARD).warnings()
    r = cli("default-model", synthetic_model)
    assert r.returncode == 3 and "--accept-synthetic" in r.stderr and not settings.exists()
    r = cli("default-model", synthetic_model, "--accept-synthetic")
    assert r.returncode == 0 and str(synthetic_model) in settings.read_text()


@pytest.mark.slow
async def test_tui_shows_the_warning_above_the_verdicts(synthetic_model, tmp_path):
    from truthnet.tui.app import make_app
    from truthnet.tui.widgets.model_card import ModelCardBanner

    (tmp_path / "v").mkdir()
    app = make_app(tmp_path / "v", model=str(synthetic_model), db=str(tmp_path / "r.sqlite"), start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.2)
        banner = app.query_one("#model-card", ModelCardBanner)
        text = str(banner.render())
        assert banner.has_class("warn") and "⚠ trained on synthetic clips" in text and "SYNTHETIC" in text
        assert banner.region.y < app.query_one("#videos").region.y


@pytest.mark.slow
async def test_tui_export_of_two_scans_gives_each_scans_own_model_card(synthetic_model, media, tmp_path):
    """Each verdict was given by its own scan's model, not by the model the app holds now: with no
    model selected the table shows every model's verdicts, each with its model's name."""
    import shutil

    import truthnet
    from truthnet import api
    from truthnet.tui.app import make_app

    case = tmp_path / "case"
    case.mkdir()
    a, b = shutil.copy(media["face"], case / "a.mp4"), shutil.copy(media["face_avi"], case / "b.avi")
    other = truthnet.new_classifier(truthnet.PipelineConfig.preset("tiny", image_size=32), seed=1)
    other = other.save(tmp_path / "other.keras", {"trained": True})  # no card: "no training record"
    db = tmp_path / "r.sqlite"
    s1 = api.scan([a], model=synthetic_model, db=db).scan_id
    s2 = api.scan([b], model=other, db=db).scan_id
    app = make_app(case, model=None, db=str(db), start_jobs=False)
    app.find_devices = lambda: None
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.2)
        rows = [r for _, r in app._rows if r is not None]
        assert sorted(r.scan_id for r in rows) == [s1, s2]
        table = app.query_one("#videos")
        assert sorted(str(table.get_row_at(i)[-1]) for i in range(2)) == sorted([Path(synthetic_model).name, "other.keras"])
        app.write_report(rows, str(tmp_path / "out" / "report.html"))
    page = (tmp_path / "out" / "report.html").read_text()
    assert f"scan #{s1}: trained on synthetic clips" in page
    assert f"scan #{s2}: " in page and "by different models" in page
    # the face strips are each result's own
    assert page.count("data:image/jpeg;base64,") == 2

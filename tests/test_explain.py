"""``truthnet explain``: the explanation is of the verdict's own frames, deterministic, drawn,
kept for the TUI and HTML report, and faithful (checked against known blend masks and by the
deletion test with a model trained by ``truthnet demo``)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One ``truthnet demo`` run (synthetic data with blend masks -> a trained tiny model)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    r = cli("demo", "-o", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_demo_meets_its_auc_bar(demo):
    out, r = demo
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["roc_auc"] >= 0.90
    assert summary["test_videos"] >= 16
    assert "Macro avg" in r.stdout and "Confusion matrix" in r.stdout
    assert (out / "run" / "eval" / "roc.png").exists()
    assert len(list((out / "data" / "masks").glob("*__sbi.npz"))) == len(list((out / "data" / "fake").glob("*.mp4")))


@pytest.mark.allow_untrained
@pytest.mark.parametrize("clip", ["480p30-two-faces-audio", "rotated90-720x1280", "vfr-480p"])
def test_the_explanation_is_of_the_verdicts_frames(tmp_path, small_corpus, tiny_model, clip):
    """Realistic footage (H.264, B-frames, two faces, rotation metadata, VFR): the explained
    frames, their decoded bytes and the score are the scan's, the heat maps are the crops' size,
    and explaining twice gives the same numbers."""
    from truthnet import api
    from truthnet.filecheck import file_sha256

    path = small_corpus[clip].path
    scan = api.scan([path], model=tiny_model, db=tmp_path / "r.sqlite")
    from truthnet.store import Store

    verdict = Store(tmp_path / "r.sqlite").results(scan.summary.scan_id)[0]
    assert verdict.status == "ok"
    clf = api.load(tiny_model)
    expl = clf.explain(path)
    again = clf.explain(path)
    size = clf.config.image_size
    assert expl.frame_indices == verdict.frame_indices
    assert expl.result.frames_sha256 == verdict.frames_sha256
    assert expl.result.sha256 == verdict.sha256 == file_sha256(path)
    assert expl.model_sha256 == file_sha256(tiny_model)
    assert expl.result.score == pytest.approx(verdict.score, abs=1e-6)
    assert expl.recomputed_score == pytest.approx(verdict.score, abs=1e-5)  # the explained pass is the scored one
    n = len(expl.frame_indices)
    assert expl.heatmaps.shape == (clf.config.num_frames, size, size) == expl.crops.shape[:3]
    assert expl.heatmaps.min() >= 0 and 0.9 < expl.heatmaps[:n].max() <= 1.0  # each face scaled to its peak
    assert len(expl.contributions) == n and len(expl.heat_weights) == n and max(expl.heat_weights) == 1.0
    assert np.array_equal(expl.heatmaps, again.heatmaps) and expl.contributions == again.contributions
    d = expl.to_dict()
    assert [f["index"] for f in d["frames"]] == verdict.frame_indices
    assert [f["time"] for f in d["frames"]] == verdict.frame_times()


@pytest.mark.allow_untrained
def test_cli_writes_png_and_json_and_the_store_keeps_it_for_the_html_report(tmp_path, small_corpus, tiny_model):
    import cv2

    from truthnet.scanning import model_key, model_sha256
    from truthnet.store import Store

    path = small_corpus["480p30-two-faces-audio"].path
    db = tmp_path / "r.sqlite"
    r = cli("explain", path, "-m", tiny_model, "-o", tmp_path / "out", "--db", db)
    assert r.returncode == 0, r.stderr
    png = tmp_path / "out" / f"{path.name}.explain.png"
    data = json.loads((tmp_path / "out" / f"{path.name}.explain.json").read_text())
    img = cv2.imread(str(png))
    n = len(data["frames"])
    assert img is not None and img.shape[1] >= n * 96 and img.shape[0] > 2 * 96  # crops, heat maps, bars
    assert "frame contributions" in r.stdout and r.stdout.count("heat peak at") == n
    from truthnet import api

    clf = api.load(tiny_model)
    kept = Store(db).explanation(data["sha256"], model_key(model_sha256(tiny_model), clf.config, 1))
    assert kept is not None and kept[0] == data and kept[1] == png.read_bytes()
    # a scan of the same bytes with the same model: its HTML report shows this explanation
    scan = cli("scan", path, "-m", tiny_model, "--db", db, "--html", tmp_path / "report.html")
    assert scan.returncode == 0, scan.stderr
    html = (tmp_path / "report.html").read_text()
    import base64

    assert base64.b64encode(png.read_bytes()).decode() in html
    # another case's file of the same name gets files of its own; the first explanation stays, and
    # explaining the first file again replaces its own files, nothing else
    other = tmp_path / "case2" / path.name
    other.parent.mkdir()
    other.write_bytes(small_corpus["480p25-small-face"].path.read_bytes())
    first = (png.read_bytes(), (tmp_path / "out" / f"{path.name}.explain.json").read_text())
    r2 = cli("explain", other, "-m", tiny_model, "-o", tmp_path / "out", "--no-store")
    assert r2.returncode == 0, r2.stderr
    second = json.loads((tmp_path / "out" / f"{path.name}.2.explain.json").read_text())
    assert second["path"] == str(other) and second["sha256"] != data["sha256"]
    assert f"wrote {tmp_path / 'out' / path.name}.2.explain.png" in r2.stderr
    assert (png.read_bytes(), (tmp_path / "out" / f"{path.name}.explain.json").read_text()) == first
    r3 = cli("explain", path, "-m", tiny_model, "-o", tmp_path / "out", "--no-store")
    assert r3.returncode == 0 and not (tmp_path / "out" / f"{path.name}.3.explain.json").exists()
    assert json.loads((tmp_path / "out" / f"{path.name}.explain.json").read_text()) == data
    # --json: the same object on stdout; a file that cannot be scored exits 2 with its status
    j = cli("explain", path, "-m", tiny_model, "--no-store", "--json", "-o", tmp_path / "out2")
    assert json.loads(j.stdout) == data
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    b = cli("explain", bad, "-m", tiny_model, "--no-store", "-o", tmp_path / "out3")
    assert b.returncode == 2 and "NOT_A_VIDEO" in b.stdout and not (tmp_path / "out3").exists()


def test_faithfulness_on_self_blended_fakes_with_known_masks(demo):
    """The demo's held-out fakes (never trained on), whose blend masks synth wrote: the heat
    maps' mass lies in the blended region more than outside it and more than its share of the
    area on most, and greying the most salient 20 % of each crop lowers the fake score more than
    greying a random 20 % (the deletion test)."""
    import truthnet
    from truthnet.explain.faithfulness import deletion, mass_inside

    out, _ = demo
    clf = truthnet.load_classifier(out / "run" / "model.keras")
    rows = list(csv.DictReader((out / "run" / "eval" / "predictions.csv").open()))
    fakes = [Path(r["path"]) for r in rows if Path(r["path"]).parent.name == "fake"]
    assert len(fakes) >= 8
    inside, area, salient, random = [], [], [], []
    for p in fakes:
        e = clf.explain(p)
        m, a = mass_inside(e, np.load(out / "data" / "masks" / f"{p.stem}.npz")["masks"])
        s, r = deletion(clf, e)
        inside.append(m), area.append(a), salient.append(s), random.append(r)
    inside, area, salient, random = map(np.asarray, (inside, area, salient, random))
    assert (inside > 0.5).all()  # more heat inside the blended region than outside, on every fake
    assert (inside > area).mean() > 0.5  # and more than the region's share of the crop, on most
    assert (salient > random).mean() >= 0.5 and salient.mean() > random.mean()


def test_a_backbone_without_a_spatial_map_says_so(tmp_path, media):
    """A 1x1 feature map (here: the tiny CNN with four poolings at 16 px) has nowhere to put
    heat: no heat map, a note instead, and the frame contributions still."""
    import truthnet

    cfg = truthnet.PipelineConfig.preset("tiny", image_size=16, detector="none",
                                         backbone_options={"filters": [8, 8, 8, 8, 8]})
    clf = truthnet.new_classifier(cfg, seed=0)
    clf.allow_untrained = True
    e = clf.explain(media["face"])
    assert e.ok and e.heatmaps is None and "no spatial map" in e.heatmap_note
    assert len(e.contributions) == len(e.frame_indices)
    from truthnet.explain.figure import png_bytes

    assert png_bytes(e)[:8] == b"\x89PNG\r\n\x1a\n"


def test_explanation_files_never_replace_another_explanation(tmp_path, monkeypatch):
    """Which NAME.explain.* an explanation gets, without a model: its own files are rewritten (the
    path as typed or absolute), anything else (another file's, a damaged JSON, a picture without
    its JSON) is left as it was; names that are not UTF-8 keep their bytes."""
    from truthnet.api import _write_explanation

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    data = {"path": str(tmp_path / "a" / "clip.mp4"), "sha256": "1" * 64, "model_sha256": "m", "threshold": 0.5}

    def names(written):
        return [os.path.basename(p) for p in written]

    assert names(_write_explanation(out, "clip.mp4", data, b"png1")) == ["clip.mp4.explain.png",
                                                                         "clip.mp4.explain.json"]
    again = {**data, "path": os.path.join("a", "clip.mp4")}  # the same file, typed relative
    assert names(_write_explanation(out, "clip.mp4", again, b"png1b"))[0] == "clip.mp4.explain.png"
    assert (out / "clip.mp4.explain.png").read_bytes() == b"png1b"
    other = {**data, "path": str(tmp_path / "b" / "clip.mp4"), "sha256": "2" * 64}
    assert names(_write_explanation(out, "clip.mp4", other, b"png2"))[0] == "clip.mp4.2.explain.png"
    assert (out / "clip.mp4.explain.png").read_bytes() == b"png1b"
    new_model = {**data, "path": os.path.join("a", "clip.mp4"), "model_sha256": "m2"}
    assert names(_write_explanation(out, "clip.mp4", new_model, b"png3"))[0] == "clip.mp4.3.explain.png"
    (out / "x.mp4.explain.json").write_text("{not json")  # damaged: skipped, kept
    (out / "x.mp4.2.explain.png").write_bytes(b"someone's")  # a picture alone: skipped, kept
    assert names(_write_explanation(out, "x.mp4", data, b"p"))[0] == "x.mp4.3.explain.png"
    assert (out / "x.mp4.explain.json").read_text() == "{not json"
    assert (out / "x.mp4.2.explain.png").read_bytes() == b"someone's" and not (out / "x.mp4.2.explain.json").exists()
    odd = os.fsdecode(b"caf\xe9\n.mp4")  # not UTF-8, with a newline
    weird = {**data, "path": str(tmp_path / odd)}
    png, js = _write_explanation(out, odd, weird, b"p")
    assert os.fsencode(os.path.basename(png)) == b"caf\xe9\n.mp4.explain.png"
    assert json.loads(open(js, encoding="utf-8").read())["path"] == weird["path"]
    assert names(_write_explanation(out, odd, weird, b"p"))[0] == os.path.basename(png)

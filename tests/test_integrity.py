"""Evidence integrity: a file is judged by its own bytes, changed bytes never get an old verdict,
the same bytes decode to the same frames, and oversized frames are refused before decoding."""

import json

import pytest

from helpers import cli

pytestmark = pytest.mark.allow_untrained


def test_a_concat_list_pointing_at_a_clip_is_refused_not_scored(media, tmp_path):
    from truthnet.video import probe

    (tmp_path / "sib.mp4").write_bytes(media["face"].read_bytes())
    (tmp_path / "x.mp4").write_text("ffconcat version 1.0\nfile sib.mp4\n")
    (tmp_path / "list.mp4").write_text("#EXTM3U\nsib.mp4\n")
    for name, what in (("x.mp4", "concat list"), ("list.mp4", "playlist")):
        with pytest.raises(Exception) as e:
            probe(tmp_path / name)
        assert e.value.status == "not_a_video" and what in e.value.reason


def test_changed_middle_bytes_are_rescored_and_results_carry_hashes(media, none_model, tmp_path):
    import hashlib

    from truthnet import api

    clip = tmp_path / "v" / "clip.mp4"
    clip.parent.mkdir()
    data = bytearray(media["face"].read_bytes())
    clip.write_bytes(bytes(data))
    db = tmp_path / "r.sqlite"
    first = json.loads(cli("scan", clip.parent, "-m", none_model, "--db", db, "--json").stdout.splitlines()[0])
    assert first["sha256"] == hashlib.sha256(bytes(data)).hexdigest() and first["frames_sha256"]
    assert api.scan([clip.parent], model=none_model, db=db).summary.skipped == 1  # the same bytes: reused
    mid = len(data) // 2  # same size, first and last MiB unchanged
    data[mid : mid + 64] = bytes(64)
    clip.write_bytes(bytes(data))
    changed = api.scan([clip.parent], model=none_model, db=db)
    assert changed.summary.skipped == 0
    from truthnet.store import Store

    assert Store(db).results(changed.summary.scan_id)[0].sha256 == hashlib.sha256(bytes(data)).hexdigest()


def test_another_model_never_gets_the_first_models_verdict(media, none_classifier, none_model, tmp_path):
    """The same bytes scored with another model file (same pipeline, other weights) are scored
    again; the first model's verdict is still reused for the first model."""
    import truthnet
    from truthnet import api
    from truthnet.store import Store

    other = truthnet.new_classifier(none_classifier.config, seed=1).save(tmp_path / "other.keras")
    clip = tmp_path / "v" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(media["face"].read_bytes())
    db = tmp_path / "r.sqlite"
    first = api.scan([clip.parent], model=none_model, db=db).summary
    second = api.scan([clip.parent], model=str(other), db=db).summary
    again = api.scan([clip.parent], model=none_model, db=db).summary
    assert (first.skipped, second.skipped, again.skipped) == (0, 0, 1)
    store = Store(db)
    a, b = (store.results(s.scan_id)[0] for s in (first, second))
    assert a.status == b.status == "ok" and a.model_key != b.model_key and a.sha256 == b.sha256
    assert a.score != b.score  # the other weights' own verdict


def test_the_same_damaged_bytes_decode_to_the_same_frames(media, tmp_path):
    import numpy as np

    from truthnet import PipelineConfig
    from truthnet.pipeline import FacePipeline

    data = bytearray(media["face"].read_bytes())
    rng = np.random.default_rng(3)
    for i in rng.integers(len(data) // 4, len(data), 200):
        data[i] ^= 1 << int(rng.integers(0, 8))
    (tmp_path / "flipped.mp4").write_bytes(bytes(data))
    pipe = FacePipeline(PipelineConfig.preset("tiny", image_size=32, detector="none"))
    digests = {pipe.decode(tmp_path / "flipped.mp4")[0].frames_sha256 for _ in range(3)}
    assert len(digests) == 1 and "" not in digests


def test_frames_above_the_pixel_limit_are_refused_before_decoding(media, monkeypatch):
    from truthnet.errors import FrameTooLargeError
    from truthnet.video import probe

    info = probe(media["face"])
    monkeypatch.setenv("TRUTHNET_MAX_PIXELS", str(info.width * info.height - 1))
    with pytest.raises(FrameTooLargeError, match="above the limit"):
        probe(media["face"])


def _huge_mjpeg(path, side: int = 16000) -> None:
    """A few-kB MJPEG AVI whose headers (AVI main header, stream format, every JPEG's SOF0) say
    ``side`` x ``side``: the shape of the 1.5 MB file that drove a scan past 9 GB."""
    import struct
    import subprocess

    import imageio_ffmpeg

    small = path.with_name("small.avi")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=gray:s=64x64:r=5",
                    "-frames:v", "12", "-c:v", "mjpeg", str(small)], check=True)
    data = bytearray(small.read_bytes())
    i = data.find(b"avih")
    struct.pack_into("<II", data, i + 8 + 32, side, side)
    i = data.find(b"strf")
    struct.pack_into("<ii", data, i + 12, side, side)
    j = 0
    while (j := data.find(b"\xff\xc0", j)) >= 0:
        struct.pack_into(">HH", data, j + 5, side, side)
        j += 2
    path.write_bytes(bytes(data))


def test_a_crafted_huge_frame_mjpeg_is_too_large_and_costs_no_memory(none_model, tmp_path):
    import subprocess
    import sys

    from helpers import cli_cmd, child_env

    folder = tmp_path / "case"
    folder.mkdir()
    _huge_mjpeg(folder / "huge.avi")
    db = tmp_path / "r.sqlite"
    # the scan's peak memory, measured from a small parent (ru_maxrss is inherited across fork)
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); "
            "print(r.stdout, r.stderr)")
    out = subprocess.run([sys.executable, "-c", code, *cli_cmd("scan", folder, "-m", none_model, "--db", db, "--json")],
                         capture_output=True, text=True, env=child_env(), timeout=300).stdout
    rc, peak_mb = (int(x) for x in out.split("\n", 1)[0].split())
    row = json.loads(next(ln for ln in out.splitlines() if ln.startswith('{"path"')))
    assert rc == 2 and row["status"] == "too_large" and "16000 x 16000" in row["reason"]
    assert peak_mb < 3000, f"a {16000 * 16000 / 1e6:.0f} Mpixel header cost {peak_mb} MB"


def test_detection_batches_are_bounded_by_pixels_with_the_same_faces(media, monkeypatch):
    """Ten 4K frames no longer go through MTCNN at once: a batch is cut to a pixel budget, and
    the faces found are the ones the whole batch gives."""
    import numpy as np

    from truthnet import PipelineConfig
    from truthnet.pipeline import FacePipeline
    from truthnet.plugins.face_detectors import MTCNNDetector

    pipe = FacePipeline(PipelineConfig.preset("tiny", image_size=32, detector="none"))
    frames = pipe.decode(media["face"])[1][0][0]
    h, w = frames[0].shape[:2]
    whole = MTCNNDetector(max_batch_pixels=len(frames) * h * w)
    bounded = MTCNNDetector(max_batch_pixels=2 * h * w)
    net = bounded._model()
    sizes = []
    detect = net.detect

    def spy(batch, **kw):  # the real network, recording each batch it is given
        sizes.append(len(batch))
        return detect(batch, **kw)

    monkeypatch.setattr(net, "detect", spy)
    a, b = whole.detect(frames), bounded.detect(frames)
    assert len(frames) == 10 and sizes and max(sizes) <= 2
    assert [len(x) for x in a] == [len(x) for x in b] and any(len(x) for x in a)
    for fa, fb in zip(a, b):
        for x, y in zip(fa, fb):
            assert np.allclose(x.box, y.box, atol=1.0) and abs(x.confidence - y.confidence) < 1e-3


def test_weights_that_fail_to_load_stop_the_scan_before_any_verdict(media, none_model, tmp_path):
    """A model file whose configuration reads fine but whose weights do not load is the model's
    error (exit 4, one message), and no file gets a row under that model, not even one that would
    fail to decode without it (a guard for any future loading of the weights during decoding)."""
    import zipfile

    from truthnet.store import Store

    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(none_model) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, b"not HDF5 at all" if item.filename.endswith(".h5") else data)
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(media["face"].read_bytes())
    (folder / "text.mp4").write_text("not a video\n")
    db = tmp_path / "r.sqlite"
    r = cli("scan", folder, "-m", broken, "--db", db)
    assert r.returncode == 4, r.stderr
    assert "could not load this model" in r.stderr and "Traceback" not in r.stderr
    assert Store(db).results() == []

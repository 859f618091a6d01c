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

    clip = tmp_path / "v" / "clip.mp4"
    clip.parent.mkdir()
    data = bytearray(media["face"].read_bytes())
    clip.write_bytes(bytes(data))
    db = tmp_path / "r.sqlite"
    first = json.loads(cli("scan", clip.parent, "-m", none_model, "--db", db, "--json").stdout.splitlines()[0])
    assert first["sha256"] == hashlib.sha256(bytes(data)).hexdigest() and first["frames_sha256"]
    again = cli("scan", clip.parent, "-m", none_model, "--db", db, "--json").stdout.splitlines()
    assert json.loads(again[-1])["reused"] == 1
    mid = len(data) // 2  # same size, first and last MiB unchanged
    data[mid : mid + 64] = bytes(64)
    clip.write_bytes(bytes(data))
    changed = cli("scan", clip.parent, "-m", none_model, "--db", db, "--json").stdout.splitlines()
    assert json.loads(changed[-1])["reused"] == 0
    assert json.loads(changed[0])["sha256"] != first["sha256"]


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

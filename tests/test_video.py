import os

import numpy as np
import pytest

from truthnet import DecodeError, EmptyFileError, NotAVideoError, UnreadableFileError, probe, read_frames


def test_probe_reports_real_values(media):
    info = probe(media["face"])
    assert (info.frame_count, info.width, info.height) == (30, 320, 240)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(3.0)
    assert probe(media["face_avi"]).frame_count == 12


def test_read_only_requested_frames_matches_sequential_decode(media):
    import cv2

    cap = cv2.VideoCapture(str(media["face"]))
    every = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        every.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    want = [0, 7, 8, 20, 29]
    frames, got = read_frames(media["face"], want)
    assert got == want
    for f, i in zip(frames, want):
        assert np.array_equal(f, every[i])


def test_read_past_end_returns_what_exists(media):
    frames, got = read_frames(media["short"], [0, 2, 3, 10, 50])
    assert got == [0, 2, 3]
    assert len(frames) == 3


@pytest.mark.parametrize(
    "key,error",
    [("empty", EmptyFileError), ("random", NotAVideoError), ("text", NotAVideoError), ("truncated", DecodeError)],
)
def test_bad_files_raise_specific_errors(media, key, error):
    with pytest.raises(error) as e:
        probe(media[key])
    assert str(media[key]) in str(e.value)


def test_missing_and_directory_are_unreadable(tmp_path):
    with pytest.raises(UnreadableFileError, match="does not exist"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(UnreadableFileError, match="directory"):
        probe(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_permission_denied_is_unreadable(media, tmp_path):
    p = tmp_path / "locked.mp4"
    p.write_bytes(media["face"].read_bytes())
    p.chmod(0)
    with pytest.raises(UnreadableFileError, match="permission"):
        probe(p)

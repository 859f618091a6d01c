"""Nothing blocks: pipes, sockets and devices are classified by stat and never opened; images
are not videos (issue #15, item 1)."""

import os
import socket

import pytest

import truthnet
from truthnet.filecheck import check_regular, sniff_image
from truthnet.collect import collect_files
from truthnet.scanning import Scanner
from truthnet.store import Store

pytestmark = pytest.mark.allow_untrained  # these tests score with freshly built models


def _png(path) -> None:
    import cv2
    import numpy as np

    _, buf = cv2.imencode(".png", np.full((48, 64, 3), 128, np.uint8))
    path.write_bytes(buf.tobytes())


@pytest.fixture
def special(tmp_path, media):
    d = tmp_path / "v"
    d.mkdir()
    (d / "good.mp4").write_bytes(media["face"].read_bytes())
    os.mkfifo(d / "pipe.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.mp4"))
    os.symlink("/dev/zero", d / "zero.mp4")
    _png(d / "picture.mp4")
    yield d
    sock.close()


@pytest.mark.timeout(120)
def test_a_folder_of_special_files_finishes_with_a_status_for_each(special, tiny_classifier):
    clf = tiny_classifier
    store = Store(special.parent / "r.sqlite")
    files = collect_files([special]).files
    assert len(files) == 5  # the pipe, the socket and the device link are collected like any .mp4
    s = Scanner(clf, store, timeout=20).scan(files)
    got = {os.path.basename(r.path): r for r in store.results(s.scan_id)}
    assert {k: r.status for k, r in got.items()} == {
        "good.mp4": "ok", "pipe.mp4": "not_a_video", "sock.mp4": "not_a_video", "zero.mp4": "not_a_video",
        "picture.mp4": "not_a_video"}
    assert "named pipe (FIFO)" in got["pipe.mp4"].reason
    assert "socket" in got["sock.mp4"].reason
    assert "/dev/zero" in got["zero.mp4"].reason and "character device" in got["zero.mp4"].reason
    assert got["picture.mp4"].reason == "a PNG image, not a video"
    assert got["good.mp4"].score is not None


@pytest.mark.timeout(60)
def test_the_api_refuses_special_files_in_both_isolations(special, tiny_classifier):
    """The engine without a scan plan (Classifier.score_videos) checks in the decoder too."""
    clf = tiny_classifier
    paths = [str(special / n) for n in ("pipe.mp4", "zero.mp4", "picture.mp4")]
    for isolation in ("thread", "process"):
        rows = list(clf.score_videos(paths, isolation=isolation))
        assert [r.status for r in rows] == ["not_a_video"] * 3, isolation


def test_image_signatures_and_stat_only_checks(special, tmp_path):
    import cv2
    import numpy as np

    img = np.full((20, 20, 3), 200, np.uint8)
    for ext, name in ((".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"), (".webp", "WebP"), (".tiff", "TIFF")):
        _, buf = cv2.imencode(ext, img)
        assert sniff_image(buf.tobytes()[:256]) == f"a {name} image", ext
    assert sniff_image(b"GIF89a" + bytes(20)) == "a GIF image"
    assert sniff_image(b"\x00\x00\x00\x18ftypmp42") is None
    assert check_regular(special / "good.mp4").st_size > 0
    with pytest.raises(truthnet.errors.UnreadableFileError, match="directory"):
        check_regular(special)
    os.symlink(tmp_path / "gone", tmp_path / "dangling.mp4")
    with pytest.raises(truthnet.errors.UnreadableFileError, match="missing"):
        check_regular(tmp_path / "dangling.mp4")


def test_a_read_that_hangs_costs_the_file_not_the_scan():
    import time

    from truthnet.errors import VideoTimeoutError
    from truthnet.filecheck import read_within

    t = time.monotonic()
    with pytest.raises(VideoTimeoutError, match="longer than 0.2 s"):
        read_within("slow.mp4", 0.2, lambda p: time.sleep(30))
    assert time.monotonic() - t < 20  # not the 30 s the read would take: only a hang bound
    assert read_within("x", 5, len) == 1
    with pytest.raises(KeyError):
        read_within("x", 5, lambda p: {}[p])

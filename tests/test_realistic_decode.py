"""Real-footage properties (truthnet.testing.corpus): long GOPs, B-frames, VFR, rotation, audio; and
``read_frames`` returning exactly what a full sequential decode returns on every such file."""

import numpy as np
import pytest

from truthnet.video import keyframe_indices, probe, read_frames


def _sequential(path) -> list[np.ndarray]:
    """Every frame, decoded front to back with OpenCV (RGB): the reference."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def _packets(path):
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        kinds = {s.type for s in c.streams}
        pkts = [(p.pts, p.is_keyframe) for p in c.demux(v) if p.size]
        return v.codec_context.name, kinds, pkts


def test_the_corpus_has_what_real_footage_has(small_corpus):
    import av

    names = set(small_corpus)
    codec, kinds, pkts = _packets(small_corpus["480p25-long"].path)
    assert codec == "h264" and kinds == {"video"}
    pts = [p for p, _ in pkts]
    assert pts != sorted(pts)  # B-frames: packets arrive out of display order
    assert [i for i, (_, k) in enumerate(sorted(pkts)) if k] == [0, 250]  # keyint 250
    _, kinds, pkts = _packets(small_corpus["480p30-two-faces-audio"].path)
    assert kinds == {"video", "audio"}
    _, _, pkts = _packets(small_corpus["vfr-480p"].path)
    steps = np.diff(sorted(p for p, _ in pkts))
    assert steps.min() * 1.5 < steps.max()  # variable frame rate
    with av.open(str(small_corpus["rotated90-720x1280"].path)) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 90 and (first.width, first.height) == (640, 360)  # stored landscape
    assert {"portrait-1080x1920-close", "720p60-face-leaves", "1080p30-blur"} <= names


def test_read_frames_equals_a_full_sequential_decode_on_every_file(small_corpus):
    for name, clip in small_corpus.items():
        every = _sequential(clip.path)
        info = probe(clip.path)
        assert info.frame_count == len(every) == clip.frame_count, name
        assert (info.height, info.width) == every[0].shape[:2], name
        n = len(every)
        # the paper's linspace; the last frames (a seek on long files); two far-apart frames
        for wanted in (np.linspace(0, n - 1, 10).astype(int), range(max(n - 9, 0), n, 4), [3, n - 8]):
            frames, got = read_frames(clip.path, list(wanted), info)
            assert got == sorted(set(int(i) for i in wanted)), name
            for frame, i in zip(frames, got):
                assert np.array_equal(frame, every[i]), (name, i)


def test_keyframes_come_from_the_packets_and_seeking_keeps_frames_identical(small_corpus):
    clip = small_corpus["480p25-long"]
    assert keyframe_indices(clip.path) == [0, 250]
    vfr = small_corpus["vfr-480p"]
    kf = keyframe_indices(vfr.path)
    assert kf[:2] == [0, 250]  # display indices, not timestamps, on a VFR file too
    every = _sequential(vfr.path)
    frames, got = read_frames(vfr.path, [2, 262, len(every) - 1])  # 2 -> 262 crosses the keyframe
    assert all(np.array_equal(f, every[i]) for f, i in zip(frames, got))


def test_a_rotated_clip_comes_out_upright(small_corpus, mtcnn_detector):
    clip = small_corpus["rotated90-720x1280"]
    info = probe(clip.path)
    assert (info.width, info.height) == (360, 640)  # portrait as displayed, not as stored
    frames, _ = read_frames(clip.path, [0, 30], info)
    assert frames[0].shape == (640, 360, 3)
    for frame in frames:
        faces = mtcnn_detector.detect_faces(frame)
        assert faces, "no face in the rotated clip's frame"
        kp = max(faces, key=lambda d: d["box"][2] * d["box"][3])["keypoints"]
        eyes_y = (kp["left_eye"][1] + kp["right_eye"][1]) / 2
        mouth_y = (kp["mouth_left"][1] + kp["mouth_right"][1]) / 2
        assert eyes_y < kp["nose"][1] < mouth_y  # upright: eyes above nose above mouth
        assert kp["left_eye"][0] < kp["right_eye"][0]


@pytest.mark.parametrize("bad", ["missing", "text"])
def test_keyframe_index_is_none_for_what_pyav_cannot_read(tmp_path, bad):
    p = tmp_path / "x.mp4"
    if bad == "text":
        p.write_text("not a video\n" * 20)
    assert keyframe_indices(p) is None

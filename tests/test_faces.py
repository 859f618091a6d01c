import numpy as np
import pytest

from truthnet import NoFaceError, PipelineConfig
from truthnet.faces import crop_box
from truthnet.pipeline import FacePipeline


def _inside(box, rect, tol=0.25):
    """The crop's centre lies on the pasted face picture, and the crop is face-sized."""
    x0, y0, x1, y1 = box
    rx, ry, rw, rh = rect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return rx <= cx <= rx + rw and ry <= cy <= ry + rh and (x1 - x0) < rw * (1 + tol)


@pytest.fixture(scope="module")
def mtcnn_pipeline():
    return FacePipeline(PipelineConfig.preset("paper", image_size=64))


def test_mtcnn_finds_the_moving_face_and_crops_it(media, mtcnn_pipeline):
    seq = mtcnn_pipeline.prepare(media["face"])
    rects = media["face_rects"]
    assert seq.faces_found == [1] * 10
    assert all(seq.face_used)
    for box, idx in zip(seq.boxes, seq.frame_indices):
        assert _inside(box, rects[idx]), (box, rects[idx])
    # the crop moves with the face
    assert seq.boxes[0] != seq.boxes[-1]


def test_no_face_clip_reports_zero_faces(media, mtcnn_pipeline):
    with pytest.raises(NoFaceError) as e:
        mtcnn_pipeline.prepare(media["noface"])
    assert e.value.faces_found == [0] * 10
    assert e.value.status == "no_face"


@pytest.mark.parametrize("policy", ["full_frame", "black"])
def test_no_face_policy_is_followed(media, policy):
    cfg = PipelineConfig.preset("paper", image_size=48, min_face_frames=0, no_face_policy=policy)
    seq = FacePipeline(cfg).prepare(media["noface"])
    assert seq.faces_found == [0] * 10 and not any(seq.face_used)
    if policy == "black":
        assert not seq.crops.any()
    else:
        import cv2

        from truthnet.video import read_frames

        frames, _ = read_frames(media["noface"], seq.frame_indices[:1])
        expected = cv2.resize(frames[0], (48, 48), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(seq.crops[0], expected)


def test_haar_detector_finds_face_without_tensorflow(media):
    seq = FacePipeline(PipelineConfig.preset("paper", detector="haar", image_size=48)).prepare(media["face"])
    assert sum(n > 0 for n in seq.faces_found) >= 8
    used = [(b, i) for b, i, u in zip(seq.boxes, seq.frame_indices, seq.face_used) if u]
    assert all(_inside(b, media["face_rects"][i], tol=0.6) for b, i in used)


def test_none_detector_uses_whole_frames(media):
    seq = FacePipeline(PipelineConfig.preset("paper", detector="none", image_size=32)).prepare(media["face"])
    assert seq.faces_found is None
    assert seq.boxes == [(0, 0, 320, 240)] * 10


def test_crop_box_margin_square_and_clipping():
    assert crop_box((10, 20, 30, 40), 100, 100) == (10, 20, 40, 60)
    assert crop_box((10, 20, 30, 40), 100, 100, square=True) == (5, 20, 45, 60)
    assert crop_box((0, 0, 50, 50), 60, 60, margin=0.5) == (0, 0, 60, 60)


@pytest.mark.parametrize("detector", ["haar", "mtcnn"])
def test_detection_in_threads_equals_sequential(media, detector):
    """Detectors are shared by score_videos' decode threads: results must not depend on it."""
    from concurrent.futures import ThreadPoolExecutor

    pipe = FacePipeline(PipelineConfig.preset("paper", detector=detector, image_size=32))
    paths = [media["face"], media["short"], media["face_avi"]] * 2
    alone = [pipe.prepare(p) for p in paths[:3]]
    with ThreadPoolExecutor(3) as ex:
        threaded = list(ex.map(pipe.prepare, paths))
    for a, b in zip(alone * 2, threaded):
        assert a.boxes == b.boxes and a.faces_found == b.faces_found
        assert np.array_equal(a.crops, b.crops)

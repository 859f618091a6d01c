"""The fast MTCNN driver against the ``mtcnn`` package's own ``detect_faces`` (real networks)."""

import numpy as np
import pytest

from truthnet import ConfigError
from truthnet.plugins.face_detectors import MTCNNDetector
from truthnet.plugins.mtcnn_pyramid import PyramidMTCNN, coarse_to_fine, levels_to_skip, normalised
from truthnet.synth import _background, astronaut_face


def _frame(w, h, faces, seed=0):
    """A ``w`` x ``h`` RGB frame with the astronaut's face pasted at ``(x, y, size)`` each."""
    img = _background(h, w, np.random.default_rng(seed))
    for x, y, size in faces:
        face = astronaut_face(size)
        img[y : y + face.shape[0], x : x + face.shape[1]] = face
    return img


@pytest.fixture(scope="module")
def net():
    return PyramidMTCNN()


def _package_boxes(mtcnn_detector, frame):
    return sorted(tuple(float(v) for v in d["box"]) for d in mtcnn_detector.detect_faces(frame))


def _boxes(rows):
    return sorted(tuple(float(v) for v in np.asarray([r[0], r[1], r[2] - r[0], r[3] - r[1]]).round()) for r in rows)


def test_normalisation_is_the_packages_exactly():
    from mtcnn.utils.images import normalize_images

    frames = [np.random.default_rng(i).integers(0, 256, (37, 53, 3), dtype=np.uint8) for i in range(3)]
    ours = normalised(frames)
    assert ours.dtype == np.float32 and ours.ctypes.data % 64 == 0
    assert np.array_equal(ours, normalize_images(np.stack(frames)).astype(np.float32))


def test_full_pyramid_gives_the_packages_faces(mtcnn_detector, net):
    frames = [_frame(480, 360, [(40, 60, 150), (300, 40, 90)], seed=s) for s in range(3)]
    got = net.detect(frames)
    for frame, rows in zip(frames, got):
        expected = _package_boxes(mtcnn_detector, frame)
        assert len(expected) >= 2  # both pasted faces
        assert _boxes(rows) == expected


def test_coarse_to_fine_gives_the_full_resolution_box_of_the_largest_face(mtcnn_detector, net):
    frames = [_frame(1280, 720, [(100 + 150 * i, 150, 260), (950, 350, 150)], seed=i) for i in range(3)]
    got = coarse_to_fine(net, frames)
    for frame, rows in zip(frames, got):
        expected = mtcnn_detector.detect_faces(frame)
        largest = max(expected, key=lambda d: d["box"][2] * d["box"][3])
        ours = max(rows, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        assert _boxes([ours]) == [tuple(float(v) for v in largest["box"])]
        # the landmarks are the full-resolution ones, not the coarse pass's (to a pixel)
        assert abs(ours[5] - largest["keypoints"]["left_eye"][0]) <= 1
        assert len(rows) == len(expected) == 2  # the other face, outside the window, is still counted
    # and the fine pass really did skip levels: the point of it
    size = min(ours[2] - ours[0], ours[3] - ours[1])
    assert levels_to_skip(size, 20, 0.709, 2.5) >= 2


def test_a_face_too_small_for_the_coarse_pass_is_still_found(mtcnn_detector, net):
    import cv2

    frame = _frame(1280, 720, [(600, 300, 48)])
    assert not net.detect([cv2.resize(frame, (320, 180), interpolation=cv2.INTER_AREA)])[0].size  # coarse: none
    rows = coarse_to_fine(net, [frame])[0]
    assert len(rows) == 1 and _boxes(rows) == _package_boxes(mtcnn_detector, frame)


def test_blank_frames_have_no_faces(net):
    frames = [np.full((720, 1280, 3), 128, np.uint8)] * 2
    assert [r.shape for r in coarse_to_fine(net, frames)] == [(0, 15), (0, 15)]


def test_levels_to_skip():
    assert levels_to_skip(30, 20, 0.709, 2.5) == 0
    ks = [levels_to_skip(s, 20, 0.709, 2.5) for s in (60, 120, 240, 480)]
    assert ks == sorted(ks) and ks[0] < ks[-1]
    for s, k in zip((60, 120, 240, 480), ks):  # the smallest face still found is <= size / ratio
        assert 20 / 0.709**k <= s / 2.5 < 20 / 0.709 ** (k + 1)


def test_detector_options_are_checked_and_large_min_face_size_works():
    with pytest.raises(ConfigError, match="coarse_side"):
        MTCNNDetector(coarse_side=16)
    with pytest.raises(ConfigError, match="margin"):
        MTCNNDetector(margin=0.1)
    with pytest.raises(ConfigError, match="min_face_size"):
        MTCNNDetector(min_face_size=8)
    # mtcnn 1.x builds pyramid levels under 12 px for min_face_size > 20 and fails on them
    faces = MTCNNDetector(min_face_size=40, coarse_side=None).detect([_frame(640, 480, [(200, 100, 180)])])[0]
    assert len(faces) == 1 and faces[0].keypoints and set(faces[0].keypoints) >= {"left_eye", "nose"}


def test_a_pnet_window_gives_the_whole_levels_proposals_inside_it(net):
    import tensorflow as tf
    from mtcnn.utils.images import scale_images

    from truthnet.plugins.mtcnn_pyramid import _proposals, _windows

    frames = [_frame(1280, 720, [(300 + 200 * i, 150 + 50 * i, 260)], seed=i) for i in range(2)]
    level = scale_images(tf.convert_to_tensor(normalised(frames)), 0.3016)
    regions = np.asarray([[40.0, 20.0, 150.0, 130.0], [101.0, 33.0, 211.0, 143.0]])  # level pixels
    crops, offsets = _windows(level, regions)
    assert crops.shape[1] < level.shape[1] and crops.shape[2] < level.shape[2]  # really cropped
    assert (offsets % 2 == 0).all() and crops.shape[1] % 2 == 0 and crops.shape[2] % 2 == 0
    reg_w, cls_w = (t.numpy() for t in net.pnet._model(level))
    reg_c, cls_c = (t.numpy() for t in net.pnet._model(crops))
    hc, wc = cls_c.shape[1:3]
    masked = np.zeros_like(cls_w)
    for b, (oy, ox) in enumerate(offsets // 2):  # PNet's outputs on the window: the whole level's
        # (to float rounding: oneDNN may sum a convolution in another order for another size)
        np.testing.assert_allclose(cls_c[b], cls_w[b, oy : oy + hc, ox : ox + wc], atol=1e-6)
        np.testing.assert_allclose(reg_c[b], reg_w[b, oy : oy + hc, ox : ox + wc], atol=1e-6)
        masked[b, oy : oy + hc, ox : ox + wc] = cls_w[b, oy : oy + hc, ox : ox + wc]
    part = _proposals(reg_c, cls_c, 0.6, offsets // 2)
    assert len(part) > 0
    # ... and so are the proposals, mapped back to whole-level coordinates
    same = _proposals(reg_w, masked, 0.6, np.zeros((2, 2), np.int64))
    assert len(part) == len(same)
    order = lambda a: a[np.lexsort(np.round(a[:, :5], 2).T[::-1])]  # noqa: E731
    np.testing.assert_allclose(order(part), order(same), atol=1e-4)


def test_the_installed_mtcnn_is_the_pinned_range_whose_internals_the_driver_uses():
    """The driver calls each stage's Keras model (``stage._model``) and the package's box
    utilities: only the range pinned in pyproject.toml is checked (by this module and
    tests/test_paper_parity.py); another version must fail here by name, not drift silently."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    pin = re.search(r'"mtcnn>=([\d.]+),<([\d.]+)"', (Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pin, "pyproject.toml pins mtcnn to a range"
    have = tuple(int(x) for x in version("mtcnn").split(".")[:2])
    low, high = (tuple(int(x) for x in v.split(".")[:2]) for v in pin.groups())
    assert low <= have < high, f"mtcnn {version('mtcnn')} is outside the checked range {pin.group(0)}"
    from mtcnn.stages.stage_pnet import StagePNet  # the internals the driver relies on

    assert hasattr(StagePNet(), "_model")

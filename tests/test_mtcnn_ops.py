"""TensorFlow's two image operations in MTCNN, in NumPy (:mod:`truthnet.plugins.mtcnn_ops`),
compiled by Numba and as NumPy passes: the same bits as TensorFlow's CPU kernels on real decoded
frames, every pyramid level, windows and patches that reach past the frame; and the package's
box arithmetic loaded without it."""

import subprocess
import sys

import numpy as np
import pytest

from truthnet.plugins import mtcnn_ops as ops
from truthnet.plugins.mtcnn_pyramid import _adjust_bboxes, normalised


@pytest.fixture(scope="module")
def frames(small_corpus):
    """Decoded H.264 frames: 1080p, 720p and a 480p frame; textured backgrounds, small faces."""
    from truthnet.video import probe, read_frames

    out = []
    for name in ("1080p25-tiny-face", "720p30-two-faces", "480p25-small-face"):
        clip = small_corpus[name]
        out += read_frames(clip.path, [probe(clip.path).frame_count // 2], probe(clip.path))[0]
    return out


@pytest.fixture(params=["compiled", "numpy"])
def kernels(request, monkeypatch):
    """Each test once with the compiled kernels (Numba is a dependency: they must load) and
    once with the NumPy passes."""
    if request.param == "compiled":
        assert ops.native_kernels() is not None, "Numba is a dependency: its kernels must compile"
    else:
        monkeypatch.setattr(ops, "NATIVE", False)
        assert ops.native_kernels() is None
    return request.param


def test_the_pyramid_is_tensorflows_to_the_bit(frames, kernels):
    import tensorflow as tf
    from mtcnn.utils.images import build_scale_pyramid, scale_images

    for frame in frames:
        h, w = frame.shape[:2]
        rows, cols = normalised([frame]), normalised([frame], columns=True)
        assert np.array_equal(cols[0], rows[0].transpose(1, 0, 2))
        scales = ops.scale_pyramid(w, h, 20, 0.709)
        assert np.array_equal(scales, build_scale_pyramid(w, h, min_face_size=20, scale_factor=0.709))
        for s in scales[min(h, w) * scales >= 12]:
            want = np.asarray(scale_images(tf.convert_to_tensor(rows), s))[0]
            assert want.shape[:2] == ops.scaled_size(h, w, s)
            got = ops.resize_area(cols[0], *want.shape[:2])
            assert got.dtype == np.float32 and np.array_equal(got, want), (frame.shape, s)
            # a window is computed as those pixels of the whole level, nothing else
            oh, ow = want.shape[:2]
            win = (oh // 3, ow // 5, oh // 3 + max(oh // 4, 1), ow // 5 + max(ow // 3, 1))
            assert np.array_equal(ops.resize_area(cols[0], oh, ow, win), want[win[0] : win[2], win[1] : win[3]])
            for thin in ((oh // 2, 0, oh // 2 + 1, ow), (0, ow // 2, oh, ow // 2 + 1)):  # one row, one column
                assert np.array_equal(ops.resize_area(cols[0], oh, ow, thin), want[thin[0] : thin[2], thin[1] : thin[3]])


def test_patches_are_tensorflows_to_the_bit_inside_and_past_the_frame(frames, kernels):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    for frame in frames:
        images = normalised([frame, frame[::-1].copy()])
        n = 300
        y1, x1 = rng.uniform(-0.3, 1.0, n), rng.uniform(-0.3, 1.0, n)  # some start or end outside
        boxes = np.stack([y1, x1, y1 + rng.uniform(0.001, 0.6, n), x1 + rng.uniform(0.001, 0.6, n)], 1)
        index = rng.integers(0, 2, n)
        for side in (24, 48):
            want = np.asarray(tf.image.crop_and_resize(images, boxes, index, (side, side)))
            got = ops.crop_and_resize(images.transpose(0, 2, 1, 3), boxes, index, (side, side))
            assert np.array_equal(got, want)
    assert ops.crop_and_resize(images.transpose(0, 2, 1, 3), np.zeros((0, 4)), np.zeros(0, int), (24, 24)).shape == (0, 24, 24, 3)


def test_box_refinement_is_the_packages_on_a_tensor():
    """The package adds the RNet/ONet offsets to float64 boxes with a TensorFlow tensor, which
    turns the whole update into float32 arithmetic: the driver does the same."""
    import tensorflow as tf
    from mtcnn.utils.bboxes import adjust_bboxes

    rng = np.random.default_rng(0)
    boxes = np.concatenate([np.zeros((500, 1)), rng.uniform(0, 1900, (500, 4)), rng.uniform(0, 1, (500, 1))], 1)
    offsets = rng.normal(0, 0.1, (500, 4)).astype(np.float32)
    want = adjust_bboxes(boxes.copy(), tf.constant(offsets))
    assert np.array_equal(_adjust_bboxes(boxes, offsets), want)
    assert not np.array_equal(adjust_bboxes(boxes.copy(), offsets), want)  # (in float64 it would differ)


def test_the_packages_box_arithmetic_loads_without_tensorflow():
    code = (
        "import sys\n"
        "from truthnet.plugins.mtcnn_ops import package_bboxes\n"
        "bx, lm = package_bboxes()\n"
        "import inspect, mtcnn.utils.bboxes as real\n"  # (this import does load TensorFlow)
        "print(inspect.getsource(bx.smart_nms_from_bboxes) == inspect.getsource(real.smart_nms_from_bboxes),"
        " bx.__name__, 'mtcnn.utils.landmarks' in sys.modules)\n"
    )
    before = "import sys\nfrom truthnet.plugins.mtcnn_ops import package_bboxes\npackage_bboxes()\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mtcnn')))\n"
    r = subprocess.run([sys.executable, "-c", before], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["True", "truthnet._mtcnn_bboxes", "True"], r.stdout + r.stderr[-2000:]


def test_detection_is_the_same_with_compiled_numpy_or_tensorflow_kernels(frames, monkeypatch):
    """A detection uses the compiled kernels; without Numba, the NumPy passes until TensorFlow
    is imported, then TensorFlow's kernels: every box, landmark and confidence is the same each
    way, whole pyramid or windows (coarse to fine), one frame or several."""
    from truthnet.plugins import mtcnn_openvino, mtcnn_pyramid

    if not mtcnn_openvino.available():
        pytest.skip("OpenVINO is not installed")
    net = mtcnn_pyramid.PyramidMTCNN(runtime="openvino")
    got = {}
    for name in ("compiled", "numpy", "tensorflow"):
        monkeypatch.setattr(ops, "NATIVE", name == "compiled")
        monkeypatch.setattr(mtcnn_pyramid, "NATIVE_AFTER", 0)  # (compiled from the first frame)
        if name == "tensorflow":
            import tensorflow  # noqa: F401  (imported: its kernels are used)
        ops_class = {"compiled": mtcnn_pyramid._NumpyOps, "numpy": mtcnn_pyramid._NumpyOps,
                     "tensorflow": mtcnn_pyramid._TensorFlowOps}[name]
        if name == "numpy" and "tensorflow" in sys.modules:  # (imported by an earlier test)
            monkeypatch.setattr(mtcnn_pyramid, "_ops_for", mtcnn_pyramid._NumpyOps)
        else:
            assert type(mtcnn_pyramid._ops_for(frames[:1])) is ops_class
        got[name] = [net.detect([f]) for f in frames] + [mtcnn_pyramid.coarse_to_fine(net, [f]) for f in frames]
        got[name].append(net.detect([frames[1], frames[1][:, ::-1].copy()]))
        monkeypatch.undo()
    assert sum(len(r) for out in got["numpy"] for r in out) >= len(frames)  # (faces were found)
    for other in ("numpy", "tensorflow"):
        for a, b in zip(got["compiled"], got[other]):
            assert len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))

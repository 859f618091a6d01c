"""A faster driver for the ``mtcnn`` package's networks, with the same boxes where it matters.

``MTCNN.detect_faces`` (mtcnn 1.x) spends most of its time outside the networks: it keeps the
normalised batch as a float64 NumPy array and converts it to a tensor again for every pyramid
level and refinement stage (a 1080p frame: ~25 MB per conversion, a dozen times), and calls
each network eagerly through Keras.  And for the large faces deepfake detection keeps, most of
its work is in the highest-resolution pyramid levels, which only find faces of 20-60 pixels.

:class:`PyramidMTCNN` runs the package's own PNet/RNet/ONet stages and weights:

* ``detect(frames)`` is ``detect_faces`` with the batch normalised by table lookup and shared
  with TensorFlow without a copy, each network one compiled graph, and pyramid levels under
  12 pixels dropped (the package fails on them when ``min_face_size`` > 20; with the default
  20 there are none).  Same boxes as the package, ~3x faster.
* ``detect(frames, skip=k)`` leaves out the ``k`` highest-resolution levels: faces smaller
  than ``min_face_size / scale_factor**k`` are not looked for; larger ones go through the
  computation they go through in the full pyramid.
* ``detect(frames, regions=...)`` runs PNet on a window around each frame's region only, on
  the levels where that saves work (even offsets and sizes keep its stride-2 grid).

:func:`coarse_to_fine` combines them: a pass on a 320-pixel copy says where the largest face is
and how large; a full-resolution pass over the levels that can hold it, PNet in a window of
three face sizes around it, gives its full-resolution box and landmarks.  Frames where the
coarse pass finds nothing get the whole pyramid, so small faces are still found.  On the
benchmark's 720p/1080p frames the largest face's box equals ``detect_faces``'s on every frame,
at ~1/16 of the time on 2 CPU cores.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import threading

import numpy as np

from . import mtcnn_ops
from .mtcnn_ops import crop_and_resize, loaded_kernels, native_kernels, package_bboxes, resize_area, scale_pyramid, scaled_size


class PyramidMTCNN:
    """The ``mtcnn`` package's three stages with a tensor-once, level-skipping driver."""

    def __init__(self, device: str = "CPU:0", runtime: str = "tensorflow") -> None:
        """``runtime``: ``"tensorflow"``, or ``"openvino"``: the same networks on OpenVINO
        (:mod:`.mtcnn_openvino`, for less CPU) and the pyramid and patches in NumPy
        (:mod:`.mtcnn_ops`, TensorFlow's arithmetic to the bit), so a detection needs no
        TensorFlow at all once the converted networks are cached; raises what converting or
        checking them raised."""
        self.device = device
        self.runtime = runtime
        if runtime == "openvino":
            from .mtcnn_openvino import networks

            self._nets = networks()
            return
        import tensorflow as tf
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        self.pnet, self.rnet, self.onet = StagePNet(), StageRNet(), StageONet()
        # One graph per network for every input size instead of an eager Keras call per level:
        # 1.6x faster on 2 cores, same outputs (measured bit for bit on the benchmark frames)
        spec = [tf.TensorSpec([None, None, None, 3], tf.float32)]
        for stage in (self.pnet, self.rnet, self.onet):
            stage._model = tf.function(stage._model, input_signature=spec)
            stage._model.get_concrete_function()  # traced now, not in the first frame's detection
        self._nets = {name: _TensorFlowNetwork(tf, stage._model, device)
                      for name, stage in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet))}

    def scales(self, height: int, width: int, min_face_size: int, scale_factor: float, skip: int = 0) -> np.ndarray:
        """The package's pyramid (``build_scale_pyramid``) without levels under 12 pixels, less
        its ``skip`` finest levels."""
        s = scale_pyramid(width, height, min_face_size=min_face_size, scale_factor=scale_factor)
        s = s[min(height, width) * s >= 12]
        return s[max(int(skip), 0) :]

    def detect(
        self,
        frames: list[np.ndarray],
        *,
        skip: int = 0,
        regions: np.ndarray | None = None,
        min_face_size: int = 20,
        scale_factor: float = 0.709,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
    ) -> list[np.ndarray]:
        """Faces in same-shaped RGB ``frames``: per frame an ``(n, 15)`` array of
        ``x1, y1, x2, y2, confidence``, the five landmarks' x then their y (left eye, right eye,
        nose, mouth left, mouth right), in pixels of the frame.

        ``regions`` (one ``x0, y0, x1, y1`` per frame, full-resolution pixels) limits PNet, on
        the pyramid levels where that saves work, to an even-aligned window around each region:
        PNet is fully convolutional with stride 2, so every proposal inside the window is the
        one the whole level gives (to float rounding); proposals outside it are not made.
        """
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"frames of one call must share a shape, got {sorted(shapes)}")
        h, w = frames[0].shape[:2]
        scales = self.scales(h, w, min_face_size, scale_factor, skip)
        empty = [np.empty((0, 15), np.float64) for _ in frames]
        if len(scales) == 0:
            return empty
        n = len(frames)
        bx, _ = package_bboxes()
        if self.runtime == "openvino":
            bb = self._stages(_ops_for(frames), scales, regions, thresholds, n)
        else:
            import tensorflow as tf

            try:
                bb = self._stages(_TensorFlowOps(tf, frames, self.device), scales, regions, thresholds, n)
            except tf.errors.InvalidArgumentError:  # what the package reads as "no faces"
                return empty
        if len(bb) == 0:
            return empty
        oshapes = np.asarray([[h, w, 3]] * n)
        bb = bx.limit_bboxes(np.asarray(bb), images_shapes=oshapes, limit_landmarks=False)
        # float64, as the package keeps them: its integer boxes round x2 - x1 in float64, and
        # a float32 copy can land on the other side of a .5
        return [bb[bb[:, 0] == i, 1:16].astype(np.float64) for i in range(n)]

    def _stages(self, ops, scales, regions, thresholds, n: int) -> np.ndarray:
        """The package's three stages (its ``StagePNet/RNet/ONet.__call__``), the pyramid and
        patches by ``ops`` (:func:`_ops_for`): the same calls to its box arithmetic, in the
        same order, as its stage objects make, PNet limited to ``regions`` where given."""
        bx, lm = package_bboxes()
        proposals = []
        for s in scales:
            level, offsets = ops.level(s, None if regions is None else np.asarray(regions, np.float64) * s)
            reg, cls = self._nets["pnet"](level)
            b = _proposals(reg, cls, thresholds[0], offsets // 2)
            b = bx.upscale_bboxes(b, np.asarray([s] * n))
            proposals.append(bx.smart_nms_from_bboxes(b, threshold=0.5, method="union", initial_sort=False))
        bb = np.concatenate(proposals, axis=0)
        bb = bx.smart_nms_from_bboxes(bb, threshold=0.7, method="union", initial_sort=True)
        bb = bx.resize_to_square(bb)
        if len(bb) == 0:
            return bb
        # RNet (StageRNet.__call__)
        offsets, scores = self._nets["rnet"](ops.patches(bb, 24))
        bb = bx.replace_confidence(bb, scores)
        bb = _adjust_bboxes(bb, offsets)
        bb = bx.pick_matches(bb, score_threshold=thresholds[1])
        bb = bx.smart_nms_from_bboxes(bb, threshold=0.7, method="union", initial_sort=True)
        bb = bx.resize_to_square(bb)
        if len(bb) == 0:
            return bb
        # ONet (StageONet.__call__)
        offsets, landmarks, scores = self._nets["onet"](ops.patches(bb, 48))
        landmarks = lm.adjust_landmarks(_Eager(landmarks), bb)
        bb = bx.replace_confidence(bb, scores)
        bb = _adjust_bboxes(bb, offsets)
        bb = np.concatenate([bb, landmarks], axis=-1)
        bb = bx.pick_matches(bb, scores_column=5, score_threshold=thresholds[2])
        return bx.smart_nms_from_bboxes(bb, threshold=0.7, method="min", initial_sort=True)


def _window_plan(n: int, hs: int, ws: int, regions: np.ndarray):
    """Where :func:`_windows` crops a batch of ``n`` pyramid levels of ``hs x ws``: ``(side_h,
    side_w, offsets)`` with ``offsets`` ``(y, x)`` per frame, or None where a window would not
    save much (the whole level is used)."""
    need_w = int(np.ceil(np.max(regions[:, 2] - regions[:, 0]))) + 12
    need_h = int(np.ceil(np.max(regions[:, 3] - regions[:, 1]))) + 12
    side_w = min(need_w + need_w % 2, ws)
    side_h = min(need_h + need_h % 2, hs)
    if side_w * side_h * 1.5 > ws * hs:
        return None
    offsets = np.zeros((n, 2), np.int64)
    for i, (x0, y0, x1, y1) in enumerate(regions):
        for axis, lo, hi, side, dim in ((1, x0, x1, side_w, ws), (0, y0, y1, side_h, hs)):
            if side >= dim:
                continue
            start = int(np.floor((lo + hi) / 2.0 - side / 2.0))
            start = min(max(start, 0), dim - side)
            offsets[i, axis] = start - start % 2
    return side_h, side_w, offsets


def _windows(level, regions):
    """Crop a batch of pyramid-level images to one window size that holds each frame's
    ``regions`` row (level pixels), at even offsets and of even size, so that PNet's stride-2
    grid and its pooling are those of the whole level.  Returns ``(crops, offsets)``, offsets
    as ``(y, x)`` pixels; levels where a window would not save much come back whole."""
    import tensorflow as tf

    n, hs, ws = (int(v) for v in level.shape[:3])
    plan = _window_plan(n, hs, ws, regions)
    if plan is None:
        return level, np.zeros((n, 2), np.int64)
    side_h, side_w, offsets = plan
    crops = tf.stack([level[i, oy : oy + side_h, ox : ox + side_w] for i, (oy, ox) in enumerate(offsets)])
    return crops, offsets


def _proposals(reg: np.ndarray, cls: np.ndarray, threshold: float, cells: np.ndarray) -> np.ndarray:
    """``mtcnn.utils.bboxes.generate_bounding_box`` for PNet outputs of windows whose first
    cell is ``cells[i]`` (``y, x``) of the whole level: the same arithmetic, so the same boxes."""
    sort_by_scores = package_bboxes()[0].sort_by_scores

    score = cls[:, :, :, 1]
    b, y, x = np.where(score > threshold)
    reg_x1, reg_y1, reg_x2, reg_y2 = np.transpose(reg[b, y, x], (1, 0))
    y, x = y + cells[b, 0], x + cells[b, 1]
    up_x, up_y = x * 2 + 1, y * 2 + 1  # (the package's cell corners: stride * i + 1, + 12)
    down_x, down_y = x * 2 + 12, y * 2 + 12
    reg_w, reg_h = down_x - up_x, down_y - up_y
    conf = score[b, y - cells[b, 0], x - cells[b, 1]]
    x1, y1 = up_x + reg_x1 * reg_w, up_y + reg_y1 * reg_h
    x2, y2 = down_x + reg_x2 * reg_w, down_y + reg_y2 * reg_h
    out = np.stack([b, x1, y1, x2, y2, conf], axis=0).T
    return sort_by_scores(out, scores=out[:, -1], ascending=False)


def _ops_for(frames: list[np.ndarray]):
    """The pyramid and patches of ``frames``: the same bits every way (:mod:`.mtcnn_ops`), so
    the choice is speed alone.  With the compiled kernels (Numba) :mod:`.mtcnn_ops` (a 1080p
    frame's pyramid ~30 ms of one core, patches ~4 ms, against TensorFlow's ~40 and ~4:
    ``native-kernels`` in benchmarks/bench_levers.py); a process loads them once it has
    detected :data:`NATIVE_AFTER` pixels, so one that only ever looks at a few small frames
    does not pay for Numba's start.  Until then, or without them, TensorFlow's kernels where
    TensorFlow is already imported, else the NumPy passes (~70 ms and ~22 ms), so a detection
    never waits for TensorFlow; without the compiled kernels, a process that has no other use
    for TensorFlow (a scan whose model runs on OpenVINO) imports it for its kernels alone once
    they pay for the import (:data:`TENSORFLOW_KERNELS_AFTER`)."""
    pixels = sum(int(f.shape[0]) * int(f.shape[1]) for f in frames)
    wanted = _native_wanted(pixels)
    if wanted and native_kernels() is not None:
        return _NumpyOps(frames)
    tf = sys.modules.get("tensorflow")
    if tf is not None and not getattr(getattr(tf, "__spec__", None), "_initializing", True):
        return _TensorFlowOps(tf, frames)
    if wanted or not mtcnn_ops.NATIVE:  # (no compiled kernels to be had)
        _count_numpy_pixels(pixels)
    return _NumpyOps(frames)


#: pixels a process detects before it loads the compiled kernels (:func:`.mtcnn_ops.native_kernels`):
#: their load costs ~0.5 CPU-s once (Numba's start), and the NumPy passes ~17 ms of one core per
#: Mpixel more, so they pay from ~30 Mpixel on.  5 Mpixel is two or three 1080p frames: a scan of
#: real footage loads them at once, a process that detects a few small frames (a short clip, a
#: test) never does
NATIVE_AFTER = 5e6

_native_pixels = 0


def _native_wanted(pixels: int) -> bool:
    """Count ``pixels`` about to be detected; whether this process has now detected enough to
    load the compiled kernels (or has them already)."""
    global _native_pixels
    if loaded_kernels() is not None:
        return True
    with _count_lock:
        _native_pixels += pixels
        return _native_pixels >= NATIVE_AFTER


#: pixels of frames detected with the NumPy copies after which the process imports TensorFlow
#: in the background for its image kernels.  Measured on the realistic corpus's frames (one
#: core): a full pyramid costs 33 ms per Mpixel with the copies and 24 ms with TensorFlow's
#: kernels, whose import costs ~4 s of one core and ~0.6 GB: it pays back ~450 Mpixel later.
#: So a scan of up to ~100 files never imports it, and a long watch does (docs/scan.md)
TENSORFLOW_KERNELS_AFTER = 1000e6

_numpy_pixels = 0
_kernels_wanted = False
_count_lock = threading.Lock()


def _count_numpy_pixels(pixels: int) -> None:
    global _numpy_pixels, _kernels_wanted
    with _count_lock:
        _numpy_pixels += pixels
        if _kernels_wanted or _numpy_pixels < TENSORFLOW_KERNELS_AFTER:
            return
        _kernels_wanted = True
    if importlib.util.find_spec("tensorflow") is not None:
        threading.Thread(target=_import_tensorflow, name="truthnet-import-tensorflow", daemon=True).start()


def _import_tensorflow() -> None:
    from .._lazy import import_tensorflow

    try:
        import_tensorflow()
    except Exception as exc:  # (detection goes on with the NumPy copies)
        import logging

        logging.getLogger(__name__).debug("TensorFlow's kernels not imported: %s: %s", type(exc).__name__, exc)


class _NumpyOps:
    """A batch's pyramid levels and patches by :mod:`.mtcnn_ops` (no TensorFlow)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.columns = normalised(frames, columns=True)
        self.w, self.h = self.columns.shape[1:3]

    def level(self, s: float, regions: np.ndarray | None):
        """One pyramid level (or each frame's window of it) and the windows' offsets."""
        n = len(self.columns)
        hs, ws = scaled_size(self.h, self.w, s)
        plan = None if regions is None else _window_plan(n, hs, ws, regions)
        if plan is None:
            return np.stack([resize_area(c, hs, ws) for c in self.columns]), np.zeros((n, 2), np.int64)
        side_h, side_w, offsets = plan  # only the windows are computed, each pixel as in the whole
        return np.stack([resize_area(c, hs, ws, (oy, ox, oy + side_h, ox + side_w))
                         for c, (oy, ox) in zip(self.columns, offsets)]), offsets

    def patches(self, bb: np.ndarray, side: int) -> np.ndarray:
        """``mtcnn.utils.images.extract_patches``: each box cut from its frame, ``side`` pixels."""
        coords = bb[:, [2, 1, 4, 3]] / np.asarray([[self.h, self.w, self.h, self.w]])
        return crop_and_resize(self.columns, coords, bb[:, 0].astype(int), (side, side))


class _TensorFlowOps:
    """The same as :class:`_NumpyOps` by TensorFlow's kernels (the package's ``scale_images``
    and ``extract_patches``), as tensors on ``device``."""

    def __init__(self, tf, frames: list[np.ndarray], device: str = "CPU:0") -> None:
        self.tf, self.device = tf, device
        with tf.device(device):
            self.images = _as_tensor(tf, normalised(frames))
        self.h, self.w = frames[0].shape[:2]

    def level(self, s: float, regions: np.ndarray | None):
        tf = self.tf
        with tf.device(self.device):  # (the size scale_images computes for the scale)
            level = tf.image.resize(self.images, scaled_size(self.h, self.w, s), method=tf.image.ResizeMethod.AREA)
            if regions is None:
                return level, np.zeros((int(level.shape[0]), 2), np.int64)
            return _windows(level, regions)

    def patches(self, bb: np.ndarray, side: int):
        tf = self.tf
        coords = bb[:, [2, 1, 4, 3]] / np.asarray([[self.h, self.w, self.h, self.w]])
        with tf.device(self.device):
            return tf.image.crop_and_resize(self.images, coords, bb[:, 0].astype(int), (side, side))


class _TensorFlowNetwork:
    """One of the package's networks (its traced graph) on ``device``, outputs as NumPy arrays
    like :class:`.mtcnn_openvino.OpenVINONetwork`'s."""

    def __init__(self, tf, model, device: str) -> None:
        self.tf, self.model, self.device = tf, model, device

    def __call__(self, x):
        with self.tf.device(self.device):
            return tuple(np.asarray(t) for t in self.model(x))


def _adjust_bboxes(bb: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``mtcnn.utils.bboxes.adjust_bboxes`` as it runs in the package, where the offsets are a
    TensorFlow tensor: ``boxes += offsets * sizes`` then happens in TensorFlow (NumPy's in-place
    add gives way to the tensor's ``__radd__``), all in float32: the sizes and the boxes are
    converted to float32, multiplied and added there, and the float32 sum is stored back."""
    bb = bb.copy()
    w = bb[:, 3] - bb[:, 1] + 1
    h = bb[:, 4] - bb[:, 2] + 1
    sizes = np.stack([w, h, w, h], axis=-1).astype(np.float32)
    bb[:, 1:5] = bb[:, 1:5].astype(np.float32) + np.asarray(offsets, np.float32) * sizes
    return bb


class _Eager:
    """An array where the package's ``adjust_landmarks`` expects an eager tensor (``.numpy()``)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = np.asarray(array, np.float32)

    def numpy(self) -> np.ndarray:
        return self._array


# (x - 127.5) / 128 for every uint8 x: exact in float32, so this table gives the very values
# the package computes in float64, and its AREA resize (which sums in float32) gives the very
# same pyramid; one table lookup per pixel instead of three float64 passes and a 2x copy
_NORMALISE = ((np.arange(256, dtype=np.float64) - 127.5) / 128.0).astype(np.float32)


def normalised(frames: list[np.ndarray], columns: bool = False) -> np.ndarray:
    """Same-shaped uint8 RGB frames -> one float32 batch in MTCNN's [-1, 1] scale; with
    ``columns``, each frame column-major (``(n, w, h, 3)``, what :mod:`.mtcnn_ops` reads)."""
    import cv2

    if columns:
        frames = [cv2.transpose(np.ascontiguousarray(f, dtype=np.uint8)) for f in frames]  # (~5x NumPy's copy)
    out = _aligned_empty((len(frames), *frames[0].shape))
    for i, f in enumerate(frames):
        cv2.LUT(np.ascontiguousarray(f, dtype=np.uint8), _NORMALISE, dst=out[i])
    return out


_ALIGN = 64  # TensorFlow's kernels abort (not raise) on tensors whose memory is less aligned


def _aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array whose data starts on a 64-byte boundary."""
    n = int(np.prod(shape)) * 4
    raw = np.empty(n + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + n].view(np.float32).reshape(shape)


def _as_tensor(tf, array: np.ndarray):
    """``array`` as a tensor without a copy (DLPack) where TensorFlow can share the memory: for
    a batch of full-HD frames, ``convert_to_tensor``'s copy costs more than the networks."""
    if array.ctypes.data % _ALIGN == 0 and array.flags.c_contiguous:
        try:
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        except Exception:  # old NumPy / TensorFlow: copy
            pass
    return tf.convert_to_tensor(array)


def levels_to_skip(face_size: float, min_face_size: int, scale_factor: float, ratio: float) -> int:
    """The most fine pyramid levels that can be left out while faces of ``face_size / ratio``
    pixels and more are still found."""
    target = face_size / ratio
    if target <= min_face_size:
        return 0
    return max(int(math.floor(math.log(target / min_face_size) / math.log(1.0 / scale_factor))), 0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def coarse_to_fine(
    net: PyramidMTCNN,
    frames: list[np.ndarray],
    *,
    coarse_side: int = 320,
    ratio: float = 2.5,
    margin: float = 1.0,
    min_face_size: int = 20,
    scale_factor: float = 0.709,
) -> list[np.ndarray]:
    """Faces in same-shaped ``frames`` as :meth:`PyramidMTCNN.detect` gives them at full
    resolution, for the largest face and every face near it at least ``1 / ratio`` its size:
    those are found at full resolution, with the finest pyramid levels skipped and PNet
    limited to a window around the largest faces (``margin`` face sizes on each side).  Other
    faces seen by the coarse pass are kept with their coarse boxes (scaled back), so counts
    stay meaningful."""
    from ..faces import downscale

    h, w = frames[0].shape[:2]
    kw = {"min_face_size": min_face_size, "scale_factor": scale_factor}
    if max(h, w) <= coarse_side:
        return net.detect(frames, **kw)
    smalls = [downscale(f, coarse_side) for f in frames]
    coarse = net.detect([small for small, _ in smalls], **kw)
    back = np.ones(15, np.float32)
    back[:4] = back[5:] = smalls[0][1]  # coordinates back to full resolution, not the confidence
    coarse = [c * back for c in coarse]

    # One full-resolution pass for the frames where the coarse pass saw a face: the pyramid
    # levels that can hold a face of 1 / ratio of the largest one (the fewest any frame
    # needs), PNet limited to a window of the largest faces with a margin of one face size
    found = [i for i, c in enumerate(coarse) if len(c)]
    out: list[np.ndarray | None] = [None] * len(frames)
    retry = [i for i, c in enumerate(coarse) if not len(c)]
    if found:
        skip, regions = None, []
        for i in found:
            c = coarse[i]
            bw, bh = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
            sizes = np.maximum(bw, bh)
            big = c[sizes >= sizes.max() / 1.5]
            k = levels_to_skip(float(np.max(np.minimum(bw, bh))), min_face_size, scale_factor, ratio)
            skip = k if skip is None else min(skip, k)
            pad = float(sizes.max()) * margin
            regions.append([big[:, 0].min() - pad, big[:, 1].min() - pad, big[:, 2].max() + pad, big[:, 3].max() + pad])
        fines = net.detect([frames[i] for i in found], skip=skip, regions=np.asarray(regions), **kw)
        for i, fine in zip(found, fines):
            if len(fine):
                out[i] = fine
            else:
                retry.append(i)  # the coarse face did not hold up: look everywhere
    if retry:
        retry.sort()
        for i, fine in zip(retry, net.detect([frames[i] for i in retry], **kw)):
            out[i] = fine
    result = []
    for i, fine in enumerate(out):
        extra = [c for c in coarse[i] if all(_iou(c, f) < 0.3 for f in fine)] if len(fine) else []
        result.append(np.concatenate([fine, np.asarray(extra, np.float32)]) if extra else fine)
    return result

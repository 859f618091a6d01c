"""A faster driver for the ``mtcnn`` package's networks, with the same boxes where it matters.

``MTCNN.detect_faces`` (mtcnn 1.x) spends most of its time outside the networks: it keeps the
normalised batch as a float64 NumPy array and converts it to a tensor again for every pyramid
scale and for each refinement stage (a 1080p frame: ~25 MB per conversion, twelve times).  And
for the large faces deepfake detection cares about, most of its work is in the finest pyramid
levels, which only find faces of 20-60 pixels.

:class:`PyramidMTCNN` runs the package's own PNet/RNet/ONet stages and weights, unchanged:

* ``detect(frames)`` is ``detect_faces`` with the batch converted to a tensor once and pyramid
  levels under 12 pixels dropped (the package would fail on them for ``min_face_size`` > 20;
  with the default of 20 there are none, so the results are the package's).
* ``detect(frames, skip=k)`` leaves out the ``k`` finest levels: faces smaller than
  ``min_face_size / scale_factor**k`` cannot be found, larger ones go through exactly the
  computation they go through in the full pyramid.

:func:`coarse_to_fine` uses both: a pass on a small copy of each frame says how large the
largest face is, then a full-resolution pass over only the levels that can hold a face at
least ``1 / ratio`` of that size gives the full-resolution boxes and landmarks.  Frames where
the coarse pass finds nothing get the whole pyramid, so small faces are still found.
"""

from __future__ import annotations

import math

import numpy as np


class PyramidMTCNN:
    """The ``mtcnn`` package's three stages with a tensor-once, level-skipping driver."""

    def __init__(self, device: str = "CPU:0") -> None:
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        self.device = device
        self.pnet, self.rnet, self.onet = StagePNet(), StageRNet(), StageONet()

    def scales(self, height: int, width: int, min_face_size: int, scale_factor: float, skip: int = 0) -> np.ndarray:
        """The package's pyramid (``build_scale_pyramid``) without levels under 12 pixels, less
        its ``skip`` finest levels."""
        from mtcnn.utils.images import build_scale_pyramid

        s = build_scale_pyramid(width, height, min_face_size=min_face_size, scale_factor=scale_factor)
        s = s[min(height, width) * s >= 12]
        return s[max(int(skip), 0) :]

    def detect(
        self,
        frames: list[np.ndarray],
        *,
        skip: int = 0,
        min_face_size: int = 20,
        scale_factor: float = 0.709,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
    ) -> list[np.ndarray]:
        """Faces in same-shaped RGB ``frames``: per frame an ``(n, 15)`` array of
        ``x1, y1, x2, y2, confidence``, the five landmarks' x then their y (left eye, right eye,
        nose, mouth left, mouth right), in pixels of the frame."""
        import tensorflow as tf
        from mtcnn.utils.bboxes import (
            generate_bounding_box,
            limit_bboxes,
            resize_to_square,
            smart_nms_from_bboxes,
            upscale_bboxes,
        )
        from mtcnn.utils.images import scale_images

        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"frames of one call must share a shape, got {sorted(shapes)}")
        h, w = frames[0].shape[:2]
        scales = self.scales(h, w, min_face_size, scale_factor, skip)
        empty = [np.empty((0, 15), np.float32) for _ in frames]
        if len(scales) == 0:
            return empty
        n = len(frames)
        with tf.device(self.device):
            images = _as_tensor(tf, normalised(frames))
            try:
                proposals = []
                for s in scales:
                    reg, cls = self.pnet._model(scale_images(images, s))
                    b = upscale_bboxes(generate_bounding_box(reg, cls, thresholds[0]), np.asarray([s] * n))
                    proposals.append(smart_nms_from_bboxes(b, threshold=0.5, method="union", initial_sort=False))
                bb = np.concatenate(proposals, axis=0)
                bb = smart_nms_from_bboxes(bb, threshold=0.7, method="union", initial_sort=True)
                bb = resize_to_square(bb)
                bb = self.rnet(images_normalized=images, bboxes_batch=bb, threshold_rnet=thresholds[1])
                bb = self.onet(images_normalized=images, bboxes_batch=bb, threshold_onet=thresholds[2])
            except tf.errors.InvalidArgumentError:  # what the package reads as "no faces"
                return empty
        if len(bb) == 0:
            return empty
        oshapes = np.asarray([[h, w, 3]] * n)
        bb = limit_bboxes(np.asarray(bb), images_shapes=oshapes, limit_landmarks=False)
        return [bb[bb[:, 0] == i, 1:16].astype(np.float32) for i in range(n)]


# (x - 127.5) / 128 for every uint8 x: exact in float32, so this table gives the very values
# the package computes in float64, and its AREA resize (which sums in float32) gives the very
# same pyramid; one table lookup per pixel instead of three float64 passes and a 2x copy
_NORMALISE = ((np.arange(256, dtype=np.float64) - 127.5) / 128.0).astype(np.float32)


def normalised(frames: list[np.ndarray]) -> np.ndarray:
    """Same-shaped uint8 RGB frames -> one float32 batch in MTCNN's [-1, 1] scale."""
    import cv2

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
    min_face_size: int = 20,
    scale_factor: float = 0.709,
) -> list[np.ndarray]:
    """Faces in same-shaped ``frames`` as :meth:`PyramidMTCNN.detect` gives them at full
    resolution, for every face at least ``1 / ratio`` the size of the largest: those are
    found at full resolution with the finest levels skipped.  Smaller faces seen by the
    coarse pass are kept with their coarse boxes (scaled back), so counts stay meaningful."""
    import cv2

    h, w = frames[0].shape[:2]
    kw = {"min_face_size": min_face_size, "scale_factor": scale_factor}
    if max(h, w) <= coarse_side:
        return net.detect(frames, **kw)
    s = coarse_side / float(max(h, w))
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    smalls = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    coarse = net.detect(smalls, **kw)
    back = np.ones(15, np.float32)
    back[:4] = back[5:] = 1.0 / s
    coarse = [c * back for c in coarse]

    # Frames grouped by how many levels their largest coarse face lets us skip (0: whole pyramid)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(coarse):
        k = 0
        if len(c):
            largest = float(np.max(np.minimum(c[:, 2] - c[:, 0], c[:, 3] - c[:, 1])))
            k = levels_to_skip(largest, min_face_size, scale_factor, ratio)
        groups.setdefault(k, []).append(i)
    out: list[np.ndarray | None] = [None] * len(frames)
    retry: list[int] = []
    for k, idxs in sorted(groups.items()):
        for i, fine in zip(idxs, net.detect([frames[i] for i in idxs], skip=k, **kw)):
            if k and not len(fine):
                retry.append(i)  # the coarse face did not hold up: look everywhere
            else:
                out[i] = fine
    if retry:
        for i, fine in zip(retry, net.detect([frames[i] for i in retry], **kw)):
            out[i] = fine
    result = []
    for i, fine in enumerate(out):
        extra = [c for c in coarse[i] if all(_iou(c, f) < 0.3 for f in fine)] if len(fine) else []
        result.append(np.concatenate([fine, np.asarray(extra, np.float32)]) if extra else fine)
    return result

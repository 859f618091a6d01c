"""The two TensorFlow image operations MTCNN uses, in NumPy, to the bit.

The ``mtcnn`` package builds its pyramid with ``tf.image.resize(..., AREA)`` and cuts the
RNet/ONet patches with ``tf.image.crop_and_resize`` (bilinear).  With the networks on OpenVINO,
these two are all that needs TensorFlow in a detection, and importing TensorFlow costs a scan
5-6 s of one core before the first frame can be looked at.  Here they are in NumPy with the
very float32 arithmetic of TensorFlow's CPU kernels (``resize_area_op.cc``,
``crop_and_resize_op.cc``): the same operations in the same order, so the same bits; the tests
compare them with TensorFlow on real frames bit for bit.  Their inner loops run compiled by Numba
where it is installed (:mod:`.mtcnn_kernels`, less CPU than TensorFlow's own kernels), else as
NumPy passes.  OpenCV's ``INTER_AREA`` is not the same operation (it weighs in double precision
where TensorFlow's weights carry float32 rounding): up to 1e-4 apart on the pyramid of a 1080p
frame.

:func:`package_bboxes` gives the package's own box arithmetic (``mtcnn.utils.bboxes``, NumPy
only) without importing the package, whose ``__init__`` imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading

import numpy as np

_f32 = np.float32


def _area_table(in_size: int, out_size: int, start: int = 0, stop: int | None = None):
    """For output pixels ``start..stop`` along one axis: the input indices and weights of
    TensorFlow's ResizeArea, shaped ``(k, m)`` (``k`` the widest run of input pixels, zero
    weights past a pixel's run), in float32 as the kernel computes them."""
    stop = out_size if stop is None else stop
    scale = _f32(in_size) / _f32(out_size)
    x = np.arange(start, stop)
    lo = x.astype(_f32) * scale  # in_x, in_x1: float32 products, as in the kernel
    hi = (x + 1).astype(_f32) * scale
    first = np.floor(lo).astype(np.int64)
    end = np.ceil(hi).astype(np.int64)
    k = int(np.max(end - first)) if len(x) else 1
    idx = first[None, :] + np.arange(k)[:, None]
    v = idx.astype(_f32)
    # scale of input pixel v for output pixel x (the kernel's expression, float32 throughout)
    w = np.where(v < lo, np.where(v + 1 > hi, scale, v + 1 - lo), np.where(v + 1 > hi, hi - v, _f32(1.0)))
    w = np.where(idx < end[None, :], w, _f32(0.0)).astype(_f32)
    return np.clip(idx, 0, in_size - 1), w, scale


def resize_area(columns: np.ndarray, out_h: int, out_w: int, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``tf.image.resize(image[None], (out_h, out_w), AREA)[0]`` for one float32 image given
    column-major, as ``columns = image.transpose(1, 0, 2)`` (so that the gathers below copy
    whole contiguous columns, not scattered pixels); the result is row-major ``(h, w, c)``.
    ``window`` (``y0, x0, y1, x1`` of the output) computes only that part, each pixel exactly
    as in the whole."""
    y0, x0, y1, x1 = window if window is not None else (0, 0, out_h, out_w)
    in_w, in_h = columns.shape[:2]
    xi, xw, sx = _area_table(in_w, out_w, x0, x1)
    yi, yw, sy = _area_table(in_h, out_h, y0, y1)
    r0, c0 = int(yi.min()), int(xi.min())
    region = np.ascontiguousarray(columns[c0 : int(xi.max()) + 1, r0 : int(yi.max()) + 1])  # what the window reads
    # per input row, the sum over each output pixel's run of columns (the kernel's sum_y), then
    # per output row the weighted sum of those over its run of rows
    sums = _weighted_runs(region, xi - c0, xw)  # (output columns, input rows, channels)
    rows = _transpose(sums)  # (input rows, output columns, channels)
    out = _weighted_runs(rows, yi - r0, yw)
    out *= _f32(1.0 / float(_f32(sy * sx)))  # float 1.0 / (float * float), as in the kernel
    return out


#: floats gathered at once by :func:`_weighted_runs`: a block that stays in a core's L2 cache
#: (a 1080p pyramid: ~2x faster than whole-level passes, measured)
_BLOCK = 1 << 17


def _weighted_runs(src: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``out[o] = src[idx[0, o]] * w[0, o] + src[idx[1, o]] * w[1, o] + ...`` for each ``o``,
    added in that order in float32 (zero weights pad the shorter runs: adding 0 changes
    nothing).  Compiled by Numba where it is installed (:mod:`.mtcnn_kernels`: one pass, ~2.5x
    faster), else in NumPy: output entries in blocks, each block's ``(o, j)`` products gathered
    in one array, then summed over ``j`` by ``np.add.reduce`` along a middle axis, which numpy
    adds element by element in order (no pairwise summation: that is only along the innermost
    axis).  The same bits either way."""
    k, m = idx.shape
    inner = int(np.prod(src.shape[1:]))
    flat = src.reshape(src.shape[0], inner)
    kernels = loaded_kernels()
    if kernels is not None:
        out = kernels.weighted_runs(np.ascontiguousarray(flat, _f32), np.ascontiguousarray(idx, np.int64), np.ascontiguousarray(w, _f32))
        return out.reshape((m,) + src.shape[1:])
    out = np.empty((m, inner), _f32)
    idx_t = np.ascontiguousarray(idx.T)
    w_t = np.ascontiguousarray(w.T)[:, :, None]
    step = max(1, _BLOCK // max(1, k * inner))
    for a in range(0, m, step):
        b = min(m, a + step)
        block = np.take(flat, idx_t[a:b].ravel(), axis=0).reshape(b - a, k, inner)
        block *= w_t[a:b]
        np.add.reduce(block, axis=1, out=out[a:b])
    return out.reshape((m,) + src.shape[1:])


#: whether the compiled kernels may be used: ``TRUTHNET_NATIVE_KERNELS=0`` turns them off in
#: this process and the decode workers it starts (to measure or check the NumPy passes, or where
#: Numba misbehaves on a platform); the results are the same bits either way
NATIVE = os.environ.get("TRUTHNET_NATIVE_KERNELS", "1").strip() != "0"
_native = None  # the kernel, False where Numba is missing or failed, None before the first try
_native_lock = threading.Lock()


def native_kernels():
    """:mod:`.mtcnn_kernels` with its kernels compiled (or loaded from Numba's cache: ~0.5 CPU-s
    the first time in a process), or ``None`` where :data:`NATIVE` is off or Numba is missing or
    cannot compile them (then the NumPy passes run, and a debug log says why).  From then on
    :func:`resize_area` and :func:`crop_and_resize` use them."""
    global _native
    if not NATIVE:
        return None
    if _native is None:
        with _native_lock:
            if _native is None:
                _native = _compile_native()
    return _native or None


def loaded_kernels():
    """The compiled kernels where :func:`native_kernels` has loaded them (and :data:`NATIVE` is
    on), else ``None``; never loads them."""
    return (_native or None) if NATIVE else None


def _compile_native():
    try:
        from . import mtcnn_kernels  # (compiles, or loads what Numba cached: their types are fixed)

        return mtcnn_kernels
    except Exception as exc:  # ImportError, or Numba's own errors on an unsupported platform
        import logging

        logging.getLogger(__name__).debug("MTCNN's pyramid in NumPy (no compiled kernels): %s: %s", type(exc).__name__, exc)
        return False


def _transpose(a: np.ndarray) -> np.ndarray:
    """``a.transpose(1, 0, 2)`` as a contiguous array (OpenCV's blocked transpose: ~7x faster
    than NumPy's copy for 3-channel float32)."""
    if a.ndim == 3 and 1 <= a.shape[2] <= 4 and a.shape[0] and a.shape[1]:
        import cv2

        t = cv2.transpose(a)
        return t.reshape(a.shape[1], a.shape[0], a.shape[2])
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """The size ``scale_images`` resizes an ``h x w`` image to for a pyramid scale (TensorFlow
    truncates the float size to int32)."""
    return int(np.float64(h) * scale), int(np.float64(w) * scale)


def crop_and_resize(columns: np.ndarray, boxes: np.ndarray, box_index: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``tf.image.crop_and_resize(images, boxes, box_index, size)`` (bilinear, extrapolation 0)
    for a float32 batch given column-major (``columns = images.transpose(0, 2, 1, 3)``);
    ``boxes`` ``y1, x1, y2, x2`` normalised, converted to float32 as TensorFlow converts them."""
    n_img, width, height, depth = columns.shape
    ch, cw = size
    boxes = np.asarray(boxes, np.float64).astype(_f32)
    out = np.zeros((len(boxes), ch, cw, depth), _f32)
    if len(boxes) == 0:
        return out
    y1, x1, y2, x2 = (boxes[:, i : i + 1] for i in range(4))
    hm1, wm1 = _f32(height - 1), _f32(width - 1)
    in_y = _axis(y1, y2, hm1, ch)  # (n, ch)
    in_x = _axis(x1, x2, wm1, cw)  # (n, cw)
    ok_y = (in_y >= 0) & (in_y <= hm1)
    ok_x = (in_x >= 0) & (in_x <= wm1)
    safe_y = np.where(ok_y, in_y, _f32(0.0))
    safe_x = np.where(ok_x, in_x, _f32(0.0))
    top, bottom = np.floor(safe_y).astype(np.int64), np.ceil(safe_y).astype(np.int64)
    left, right = np.floor(safe_x).astype(np.int64), np.ceil(safe_x).astype(np.int64)
    y_lerp = safe_y - top.astype(_f32)
    x_lerp = safe_x - left.astype(_f32)
    kernels = loaded_kernels()
    if kernels is not None:
        return kernels.bilinear_patches(np.ascontiguousarray(columns, _f32), np.asarray(box_index, np.int64),
                                        top, bottom, y_lerp, ok_y, left, right, x_lerp, ok_x)
    y_lerp, x_lerp = y_lerp[:, :, None, None], x_lerp[:, None, :, None]
    b = np.asarray(box_index, np.int64)[:, None, None]
    tl = columns[b, left[:, None, :], top[:, :, None]]
    tr = columns[b, right[:, None, :], top[:, :, None]]
    bl = columns[b, left[:, None, :], bottom[:, :, None]]
    br = columns[b, right[:, None, :], bottom[:, :, None]]
    t = tl + (tr - tl) * x_lerp
    bo = bl + (br - bl) * x_lerp
    val = t + (bo - t) * y_lerp
    inside = (ok_y[:, :, None] & ok_x[:, None, :])[..., None]
    np.copyto(out, val, where=inside)
    return out


def _axis(lo: np.ndarray, hi: np.ndarray, span: np.float32, n: int) -> np.ndarray:
    """The kernel's sample positions along one axis: ``lo * span + i * step`` in float32."""
    if n > 1:
        step = (hi - lo) * span / _f32(n - 1)
        return lo * span + np.arange(n, dtype=_f32)[None, :] * step
    return ((0.5 * (lo + hi).astype(np.float64)) * span).astype(_f32)  # float sum, then double, as in C++


def scale_pyramid(width: int, height: int, min_face_size: int, scale_factor: float, min_size: int = 12) -> np.ndarray:
    """``mtcnn.utils.images.build_scale_pyramid`` (that module imports TensorFlow)."""
    min_dim = min(width, height)
    count = round(-((np.log(min_dim / min_size) / np.log(scale_factor)) + 1))
    return (min_size / min_face_size) * scale_factor ** np.arange(count)


_bboxes = None
_bboxes_lock = threading.Lock()


def package_bboxes():
    """The ``mtcnn`` package's ``utils.bboxes`` and ``utils.landmarks`` modules (pure NumPy),
    as ``(bboxes, landmarks)``, without running the package's ``__init__`` (which imports
    TensorFlow): loaded from the installed files under private names.  Where the package is
    already imported, its own modules."""
    global _bboxes
    with _bboxes_lock:
        if _bboxes is None:
            real = [sys.modules.get(f"mtcnn.utils.{name}") for name in ("bboxes", "landmarks")]
            if all(m is not None and not getattr(getattr(m, "__spec__", None), "_initializing", True) for m in real):
                _bboxes = tuple(real)
            else:  # (also while another thread is importing the package: its modules may be half-run)
                _bboxes = _load_private()
        return _bboxes


def _load_private():
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the mtcnn package is not installed: pip install mtcnn")
    utils = os.path.join(list(spec.submodule_search_locations)[0], "utils")
    landmarks = _load_file("truthnet._mtcnn_landmarks", os.path.join(utils, "landmarks.py"))
    # bboxes.py imports parse_landmarks from "mtcnn.utils.landmarks": its own import function
    # gives it the private copy (sys.modules, which other threads see, is left alone)
    bboxes = _load_file("truthnet._mtcnn_bboxes", os.path.join(utils, "bboxes.py"),
                        {"mtcnn.utils.landmarks": landmarks})
    return bboxes, landmarks


def _load_file(name: str, path: str, imports: dict | None = None):
    import builtins

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if imports:
        def _import(what, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and what in imports:
                return imports[what]
            return builtins.__import__(what, globals, locals, fromlist, level)

        module.__dict__["__builtins__"] = {**vars(builtins), "__import__": _import}
    spec.loader.exec_module(module)
    return module

"""The pyramid's weighted sums compiled by Numba: :func:`.mtcnn_ops._weighted_runs` in one pass.

NumPy can only do ``out[o] = src[idx[0, o]] * w[0, o] + src[idx[1, o]] * w[1, o] + ...`` as
a gather (a copy of every input row each output row reads), a multiply and a reduction: three
passes over the gathered copy.  Compiled, it is one pass that reads each input row where it
lies and adds the products into the output row in the same order, in float32, one rounding
per product and per sum as in TensorFlow's ``resize_area_op.cc``: Numba compiles without
``fastmath``, so LLVM neither reassociates the sums nor fuses a product and a sum into one
FMA (either would change bits).  It may vectorise the loop over a row's floats: each of those
is its own sum.  A 1080p frame's full pyramid, one core: ~30 ms against ~70-90 ms for the
NumPy passes and ~40-50 ms for TensorFlow's own kernel (benchmarks/bench_levers.py,
``native-pyramid``); the tests compare it with both bit for bit.

Importing this module imports Numba (~0.2 s) and compiles nothing; the first call compiles
(~0.6 s of one core) or loads the compiled code that an earlier process cached beside this
file (``cache=True``: ``__pycache__``, or Numba's per-user cache where that is read-only).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit("float32[:, ::1](float32[:, ::1], int64[:, ::1], float32[:, ::1])", cache=True, nogil=True)
def weighted_runs(flat, idx, w):  # pragma: no cover - compiled: coverage cannot see inside
    """``flat`` ``(rows, inner)`` float32, ``idx`` ``(k, m)`` int64 rows in range, ``w``
    ``(k, m)`` float32 -> ``(m, inner)`` float32: output row ``o`` is the products of
    ``flat[idx[j, o]]`` and ``w[j, o]`` added for ``j = 0, 1, ...`` in that order.  Zero weights
    (the padding of runs shorter than ``k``) are skipped: adding them would change nothing."""
    k, m = idx.shape
    inner = flat.shape[1]
    out = np.empty((m, inner), np.float32)
    for o in range(m):
        src = flat[idx[0, o]]
        wo = w[0, o]
        for t in range(inner):
            out[o, t] = src[t] * wo
        for j in range(1, k):
            wj = w[j, o]
            if wj == 0:
                continue
            src = flat[idx[j, o]]
            for t in range(inner):
                out[o, t] += src[t] * wj
    return out


@numba.njit(
    "float32[:, :, :, ::1](float32[:, :, :, ::1], int64[::1], int64[:, ::1], int64[:, ::1], float32[:, ::1],"
    " boolean[:, ::1], int64[:, ::1], int64[:, ::1], float32[:, ::1], boolean[:, ::1])",
    cache=True,
    nogil=True,
)
def bilinear_patches(columns, box_index, top, bottom, y_lerp, ok_y, left, right, x_lerp, ok_x):  # pragma: no cover
    """:func:`.mtcnn_ops.crop_and_resize`'s sampling in one pass: ``columns`` ``(n, w, h, c)``
    float32; per box ``i`` its frame ``box_index[i]``; per patch row ``y`` the rows ``top``,
    ``bottom`` around its sample, ``y_lerp`` and ``ok_y`` (inside the frame), and the same per
    patch column -> ``(boxes, rows, cols, c)`` float32, zero outside the frame.  Each value is
    TensorFlow's ``top + (bottom - top) * y_lerp`` of the two ``x_lerp`` blends, in float32."""
    n, ch = top.shape
    cw = left.shape[1]
    depth = columns.shape[3]
    out = np.zeros((n, ch, cw, depth), np.float32)
    for i in range(n):
        b = box_index[i]
        for y in range(ch):
            if not ok_y[i, y]:
                continue
            ty, by, yl = top[i, y], bottom[i, y], y_lerp[i, y]
            for x in range(cw):
                if not ok_x[i, x]:
                    continue
                lx, rx, xl = left[i, x], right[i, x], x_lerp[i, x]
                for d in range(depth):
                    tl, tr = columns[b, lx, ty, d], columns[b, rx, ty, d]
                    bl, br = columns[b, lx, by, d], columns[b, rx, by, d]
                    t = tl + (tr - tl) * xl
                    bo = bl + (br - bl) * xl
                    out[i, y, x, d] = t + (bo - t) * yl
    return out

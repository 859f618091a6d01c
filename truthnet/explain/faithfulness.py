"""Is an explanation faithful?  Two checks against the model and against ground truth.

* :func:`mass_inside` -- on a fake whose altered region is known (``truthnet synth --masks``
  writes each self-blended fake's blend masks), the share of the heat maps' mass that falls
  inside the altered region, beside that region's share of the crop's area.
* :func:`deletion` -- the *deletion test*: grey out the most salient ``fraction`` of every face
  crop and rescore (log-odds); compare with greying a random ``fraction`` (in blocks of the feature map's
  cell size, the heat map's own resolution).  A faithful heat map lowers a fake's score more.

``benchmarks/bench_explain.py`` reports both over a held-out set; the test suite asserts them.
"""

from __future__ import annotations

import numpy as np


def crop_masks(expl, frame_masks: np.ndarray) -> np.ndarray:
    """The frame-sized masks ``(frames, H, W)`` (uint8 or float) cut to each sampled frame's crop
    box and resized to the crop: ``(frames_used, S, S)`` float32 in [0, 1]."""
    import cv2

    size = expl.crops.shape[1]
    scale = 255.0 if frame_masks.dtype == np.uint8 else 1.0
    out = []
    for i, idx in enumerate(expl.frame_indices):
        box = expl.boxes[i]
        m = frame_masks[idx].astype(np.float32) / scale
        if box is not None:
            x0, y0, x1, y1 = box
            m = m[y0:y1, x0:x1]
        out.append(cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) if m.size else np.zeros((size, size)))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def mass_inside(expl, frame_masks: np.ndarray, level: float = 0.5) -> tuple[float, float]:
    """(share of heat mass inside the altered region, that region's share of the crop area),
    over the sampled frames whose crop is a detected face; the region is ``mask >= level``."""
    if expl.heatmaps is None:
        raise ValueError("this explanation has no heat maps: " + (expl.heatmap_note or "none computed"))
    used = [i for i, f in enumerate(expl.face_used[: len(expl.frame_indices)]) if f]
    inside = crop_masks(expl, frame_masks)[used] >= level
    # the Grad-CAM's own magnitudes: each frame's map times its weight in the video
    heat = expl.heatmaps[used] * np.asarray(expl.heat_weights, np.float32)[used][:, None, None]
    total = float(heat.sum())
    return (float(heat[inside].sum()) / total if total > 0 else 0.0), float(inside.mean())


def deletion(classifier, expl, fraction: float = 0.2, *, draws: int = 5, seed: int = 0) -> tuple[float, float]:
    """(drop of the score's log-odds after greying the most salient ``fraction`` of each crop,
    mean drop after greying a random ``fraction`` over ``draws`` draws).  Log-odds, because a
    confident score (0.98) hardly moves in probability.  Greyed pixels take the crop's mean
    colour; the random region is made of feature-map cells, as coarse as the heat map."""
    if expl.heatmaps is None:
        raise ValueError("this explanation has no heat maps: " + (expl.heatmap_note or "none computed"))
    n = len(expl.frame_indices)
    size = expl.crops.shape[1]
    base = _score(classifier, expl.crops)
    salient = _grey(expl.crops, expl.heatmaps[:n], fraction)
    rng = np.random.default_rng(seed)
    cells = _cells(classifier)
    drops = []
    for _ in range(draws):
        import cv2

        rank = np.stack([cv2.resize(rng.random((cells, cells)).astype(np.float32), (size, size),
                                    interpolation=cv2.INTER_NEAREST) for _ in range(n)])
        drops.append(base - _score(classifier, _grey(expl.crops, rank, fraction)))
    return base - _score(classifier, salient), float(np.mean(drops))


def _cells(classifier) -> int:
    """The side of the backbone's feature map (the heat map's native resolution)."""
    size = classifier.config.image_size
    cnn = classifier.model.get_layer("cnn").layer
    return int(cnn.compute_output_shape((1, size, size, 3))[1])


def _grey(crops: np.ndarray, rank: np.ndarray, fraction: float) -> np.ndarray:
    """``crops`` with the top ``fraction`` of pixels by ``rank`` (per crop) set to the crop's mean
    colour; crops beyond ``len(rank)`` (padding) are left alone."""
    out = crops.copy()
    for i in range(len(rank)):
        flat = rank[i].reshape(-1)
        k = int(round(fraction * flat.size))
        order = np.argsort(-flat, kind="stable")[:k]
        img = out[i].reshape(-1, 3)
        img[order] = np.round(crops[i].reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    return out


def _score(classifier, crops: np.ndarray) -> float:
    """The log-odds of the model's score for these crops."""
    x = classifier.pipeline.normalise(crops)
    s = float(np.clip(classifier.predict_inputs(x[None])[0], 1e-7, 1 - 1e-7))
    return float(np.log(s / (1 - s)))

"""Why a video got its score: which sampled frames drove it, and where in each face.

:func:`explain` (``Classifier.explain``, ``truthnet explain``) scores the file exactly as a scan
does, then decodes the same sampled frames again (checked: same frame indices, same
``frames_sha256``, same file SHA-256) and computes, only when asked:

* **frame contributions** -- for each sampled frame, the score's log-odds minus those with
  that frame's embedding replaced by the mean embedding of the video's frames (occlusion in
  feature space: what the LSTM head made of that frame beyond the average frame).  Positive
  pushes towards *fake*; log-odds, so that a frame's share stays visible when the score is
  near 0 or 1.
* **heat maps** -- Grad-CAM (Selvaraju et al., 2017) on the backbone's last convolutional
  feature map, with the gradient of the *video's* score taken through pooling and the LSTM
  head: per frame, ``relu(sum_c mean_xy(dS/dA_c) * A_c)``, upsampled bilinearly to the face
  crop's size and scaled to its own peak (where in *this* face); ``heat_weights`` keeps each
  frame's peak relative to the video's strongest frame.  Any backbone plugin works: the backbone contract is a Keras model ending in a
  ``(h, w, C)`` feature map; one that is ``1 x 1`` has no spatial map and gets no heat map
  (``heatmap_note`` says so) rather than a uniform picture.

Everything is deterministic on a given machine and device (no sampling) and carries the
model's SHA-256 and the file's, like every verdict.  :mod:`truthnet.explain.figure` draws it
(PNG; the TUI's tiles); :mod:`truthnet.explain.faithfulness` measures it against ground truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import VideoError
from ..record import Result

__all__ = ["Explanation", "explain", "METHOD"]

#: what the numbers mean (stored with every explanation)
METHOD = {
    "contributions": "log-odds of the score minus those with that frame's embedding replaced by the mean "
                     "embedding of the video's sampled frames (positive: towards fake)",
    "heatmaps": "Grad-CAM on the backbone's last feature map, gradient of the video score through "
                "pooling and the LSTM head, bilinear to the crop size, scaled to each frame's peak "
                "(heat_weight: that peak over the video's strongest frame's)",
}


@dataclass
class Explanation:
    """An explained verdict.  ``result`` is the verdict itself (as ``score_video`` gives it);
    everything else is empty when it is not ``ok`` (nothing to explain)."""

    result: Result
    model_sha256: str | None = None
    crops: np.ndarray | None = None  # (T, S, S, 3) uint8, the model's face crops (padding last)
    boxes: list = field(default_factory=list)  # each crop's box in the frame (x0, y0, x1, y1)
    face_used: list[bool] = field(default_factory=list)
    contributions: list[float] = field(default_factory=list)  # one per sampled (not padded) frame
    heatmaps: np.ndarray | None = None  # (T, S, S) float32 in [0, 1] (each frame's own peak = 1), or None
    heat_weights: list[float] = field(default_factory=list)  # each frame's Grad-CAM peak / the video's
    heatmap_layer: str = ""  # the feature map the heat maps come from, e.g. "out_relu 7x7x1280"
    heatmap_note: str = ""  # why there are no heat maps, when there are none
    recomputed_score: float | None = None  # the score of the explained forward pass (== result.score)

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def path(self) -> str:
        return self.result.path

    @property
    def frame_indices(self) -> list[int]:
        return list(self.result.frame_indices)

    def frame_times(self) -> list[float] | None:
        return self.result.frame_times()

    def to_dict(self) -> dict:
        """JSON-ready: the verdict, the model and per-frame numbers (heat maps as their peak
        position and the share of heat in each crop; the pictures are in the PNG)."""
        r = self.result
        frames = []
        times = self.frame_times() or [None] * len(r.frame_indices)
        for i, (idx, t) in enumerate(zip(r.frame_indices, times)):
            f = {"index": idx, "time": t, "contribution": self.contributions[i] if self.contributions else None,
                 "face": self.face_used[i] if self.face_used else None,
                 "box": list(self.boxes[i]) if self.boxes and self.boxes[i] is not None else None}
            if self.heatmaps is not None:
                hm = self.heatmaps[i]
                y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
                f["heat_peak_xy"] = [round(float(x) / hm.shape[1], 3), round(float(y) / hm.shape[0], 3)]
                f["heat_mean"] = round(float(hm.mean()), 4)
                f["heat_weight"] = self.heat_weights[i] if self.heat_weights else None
            frames.append(f)
        return {"path": r.path, "status": r.status, "reason": r.reason, "score": r.score, "label": r.label,
                "threshold": r.threshold, "sha256": r.sha256, "frames_sha256": r.frames_sha256,
                "model_sha256": self.model_sha256, "method": METHOD, "heatmap_layer": self.heatmap_layer,
                "heatmap_note": self.heatmap_note, "frames": frames}


def explain(classifier, path: str | os.PathLike, *, model_sha256: str | None = None) -> Explanation:
    """Score ``path`` and explain the score (see the module docstring).  A file that cannot be
    scored gives an :class:`Explanation` holding just its failed result."""
    from ..filecheck import file_sha256
    from ..scanning import weights_sha256

    path = os.fspath(path)
    sha = file_sha256(path) if os.path.isfile(path) else None
    result = classifier.score_video(path)
    result.sha256 = sha
    if model_sha256 is None:
        src = getattr(classifier, "source", None)
        model_sha256 = file_sha256(src) if src and os.path.isfile(src) else f"weights:{weights_sha256(classifier)}"
    if not result.ok:
        return Explanation(result, model_sha256)
    with classifier.face_pipelines().take() as pipe:  # the detector the verdict's run used
        seq = pipe.prepare(path)
    if file_sha256(path) != sha or seq.info.frames_sha256 != result.frames_sha256 or \
            list(seq.frame_indices) != list(result.frame_indices):
        raise VideoError(path, "the file changed while it was being explained (its bytes or decoded frames "
                               "differ from the verdict's); explain it again")
    x = classifier.pipeline.inputs(seq)
    fmap, emb, score = _forward(classifier, x)
    if abs(score - result.score) > 1e-4:  # the explained pass must be the scored one
        from ..errors import ModelError

        raise ModelError(f"the explained forward pass scores {score:.6f}, the verdict {result.score:.6f}: "
                         "the model does not give the same answer twice; nothing to explain reliably")
    contributions = _contributions(classifier, emb, len(seq.frame_indices), score)
    heat, weights, layer, note = _gradcam(classifier, fmap, classifier.config.image_size, len(seq.frame_indices))
    return Explanation(result, model_sha256, crops=seq.crops, boxes=list(seq.boxes), face_used=list(seq.face_used),
                       contributions=contributions, heatmaps=heat, heat_weights=weights, heatmap_layer=layer, heatmap_note=note,
                       recomputed_score=score)


def _parts(classifier):
    """(backbone, pooling, head) of a TruthNet model, or a clear error for one without them."""
    from ..errors import ModelError

    parts = classifier.keras_parts()  # (Keras's, whatever the scan's run on: gradients need TensorFlow)
    if parts is None:
        raise ModelError("this model cannot be explained: it lacks TruthNet's layer names (cnn, pool, lstm, ...)",
                         hint="explanations need a model saved by TruthNet (truthnet train / new-model)")
    return classifier.model.get_layer("cnn").layer, classifier.model.get_layer("pool").layer, parts.head_model


def _forward(classifier, x: np.ndarray):
    """The backbone's feature maps ``(T, h, w, C)``, the embeddings ``(T, C)`` and the score."""
    cnn, pool, head = _parts(classifier)
    fmap = np.concatenate([np.asarray(cnn(x[i : i + 8], training=False)) for i in range(0, len(x), 8)])
    emb = np.asarray(pool(fmap))
    score = float(np.asarray(head(emb[None], training=False)).reshape(-1)[0])
    return fmap, emb, score


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _contributions(classifier, emb: np.ndarray, used: int, score: float) -> list[float]:
    """Per sampled frame, in log-odds: ``logit(score) - logit(score with the frame's embedding
    := the mean of the sampled frames')``.  Log-odds, because near 0 or 1 the score itself
    hardly moves (0.984 -> 0.9838) while the evidence does."""
    _, _, head = _parts(classifier)
    if used == 0:
        return []
    mean = emb[:used].mean(axis=0)
    batch = np.repeat(emb[None], used, axis=0)
    for i in range(used):
        batch[i, i] = mean
    occluded = np.asarray(head(batch, training=False)).reshape(-1)
    return [round(float(v), 5) for v in _logit(score) - _logit(occluded)]


def _gradcam(classifier, fmap: np.ndarray, size: int, used: int):
    """Grad-CAM heat maps ``(T, size, size)`` in [0, 1], the layer's description, and a note
    (heat maps None) when the feature map has no spatial extent."""
    import cv2
    import tensorflow as tf

    cnn, pool, head = _parts(classifier)
    t, h, w, c = fmap.shape
    layer = f"{cnn.name} output {h}x{w}x{c}"
    if h * w <= 1:
        return None, [], layer, (f"backbone {classifier.config.backbone!r} ends in a {h}x{w} feature map: no spatial "
                             "map to draw a heat map on")
    a = tf.constant(fmap)
    with tf.GradientTape() as tape:
        tape.watch(a)
        s = tf.reshape(head(tf.expand_dims(pool(a), 0), training=False), [-1])[0]
    grads = np.asarray(tape.gradient(s, a))
    weights = grads.mean(axis=(1, 2))  # (T, C): each channel's importance in each frame
    cam = np.maximum(np.einsum("thwc,tc->thw", fmap, weights), 0.0)
    cam[used:] = 0.0  # padded black frames explain nothing
    peaks = cam.reshape(t, -1).max(axis=1)
    top = float(peaks.max())
    cam = cam / np.where(peaks > 0, peaks, 1.0)[:, None, None]  # each face's own map: where in *this* face
    heat = np.stack([cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) for m in cam])
    weights = [round(float(p) / top, 4) if top > 0 else 0.0 for p in peaks[:used]]
    return np.clip(heat, 0.0, 1.0).astype(np.float32), weights, layer, ("" if top > 0 else
                                                                       "Grad-CAM is zero on every frame: no feature "
                                                                       "in the map pushes this score up")

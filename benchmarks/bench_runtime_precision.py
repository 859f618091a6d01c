"""How exact the model's two runtimes are: TensorFlow's float32, OpenVINO's float32, and the same
network in float64 as the judge, on the realistic corpus's face crops.

    python benchmarks/bench_runtime_precision.py [--quick] [--out F.json]

The `paper` stand-in model of ``bench_realistic.py`` (ImageNet MobileNetV2, a head trained
briefly) scores each clip's sampled crops three ways: Keras on TensorFlow (float32), the parts
on OpenVINO (``truthnet.runtime.parts``, float32), and Keras with the ``float64`` dtype policy,
the same weights cast.  Reports each float32 runtime's largest difference from float64 in the
embeddings (relative to their largest magnitude) and in the scores, and the two runtimes'
difference from each other.  Not a speed benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))


def measure(model: str, paths: list[str]) -> dict:
    import truthnet
    from truthnet._lazy import import_keras
    from truthnet.model import build_model
    from truthnet.runtime.parts import KerasParts

    tf_clf = truthnet.load_classifier(model, runtime="tensorflow")
    ov_clf = truthnet.load_classifier(model, runtime="openvino")
    with tf_clf.face_pipelines().take() as pipe:
        x = np.stack([tf_clf.pipeline.inputs(pipe.prepare(p)) for p in paths])
    n, t = x.shape[:2]
    frames = x.reshape((n * t,) + x.shape[2:])
    got = {}
    for name, clf in (("tensorflow", tf_clf), ("openvino", ov_clf)):
        parts = clf._split()
        emb = parts.embed(frames)
        got[name] = (emb, parts.scores(emb.reshape(n, t, -1)))
    keras = import_keras()
    keras.config.set_dtype_policy("float64")
    try:
        m64 = build_model(tf_clf.config, weights=None)
        m64.set_weights([w.astype(np.float64) for w in tf_clf.model.get_weights()])
        p64 = KerasParts.split(m64, tf_clf.config)
        emb64 = np.concatenate([np.asarray(p64.encoder(frames[i : i + 16].astype(np.float64), training=False))
                                for i in range(0, len(frames), 16)])
        s64 = np.asarray(p64.head_model(emb64.reshape(n, t, -1), training=False)).reshape(-1)
    finally:
        keras.config.set_dtype_policy("float32")
    scale = float(np.abs(emb64).max())
    out = {"videos": n, "frames": int(n * t), "float64_scores": [round(float(s), 7) for s in s64]}
    for name, (emb, s) in got.items():
        out[name] = {"embedding_max_rel_diff_vs_float64": float(np.abs(emb - emb64).max()) / scale,
                     "score_max_abs_diff_vs_float64": float(np.abs(s - s64).max())}
    out["openvino_vs_tensorflow"] = {
        "embedding_max_rel_diff": float(np.abs(got["openvino"][0] - got["tensorflow"][0]).max()) / scale,
        "score_max_abs_diff": float(np.abs(got["openvino"][1] - got["tensorflow"][1]).max())}
    return out


def main() -> None:
    import bench_floor
    import bench_realistic as br

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small corpus")
    ap.add_argument("--work", default=os.path.join("/tmp", "truthnet-bench-realistic"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work, env, folder, paths, _, model = bench_floor.prepare(Path(args.work), args.quick)
    os.environ.update(env)
    result = {"machine": br.machine(), **measure(str(model), list(paths))}
    br.emit(result, args.out)


if __name__ == "__main__":
    main()

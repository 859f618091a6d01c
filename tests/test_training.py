import json

import numpy as np
import pytest

from truthnet import PipelineConfig
from truthnet.evaluation import compute_metrics, pick_threshold
from truthnet.training import TrainConfig, fit, train

pytestmark = pytest.mark.slow


def test_cached_embedding_training_equals_end_to_end(media):
    """Same seed, data and initial weights, dropout off: the head ends with the same weights."""
    from truthnet._lazy import import_keras
    from truthnet.model import build_encoder, build_head, build_model, copy_head_weights
    from truthnet.pipeline import FacePipeline

    keras = import_keras()
    cfg = PipelineConfig.preset("tiny", detector="none", image_size=32, num_frames=4, dropout=0.0,
                                trainable_backbone=False)
    pipe = FacePipeline(cfg)
    paths = [media["face"], media["short"], media["face_avi"], media["noface"]] * 2
    x = np.stack([pipe.inputs(pipe.prepare(p)) for p in paths])
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    keras.utils.set_random_seed(0)
    full = build_model(cfg)
    emb = np.asarray(build_encoder(full)(x, training=False))
    head = build_head(cfg, emb.shape[-1])
    copy_head_weights(full, head)
    tcfg = TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2, seed=5, patience=None)
    fit(head, emb, y, tcfg)
    fit(full, x, y, tcfg)
    for name in ("lstm", "dense", "score"):
        for a, b in zip(head.get_layer(name).get_weights(), full.get_layer(name).get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-4)
    # and training actually moved them
    fresh = build_head(cfg, emb.shape[-1])
    assert not np.allclose(fresh.get_layer("score").get_weights()[0], head.get_layer("score").get_weights()[0])


def test_train_on_cached_embeddings_reuses_cache(tmp_path):
    from truthnet.synth import make_dataset

    make_dataset(tmp_path / "data", n_real=8, n_fake=8, n_frames=6, seed=1)
    cfg = PipelineConfig.preset("tiny", image_size=32, trainable_backbone=False)
    tcfg = TrainConfig(epochs=2, batch_size=4, learning_rate=1e-3, patience=None)
    logs = []
    r1 = train(tmp_path / "data", tmp_path / "run1", cfg, tcfg, cache_dir=tmp_path / "cache", progress=logs.append)
    assert r1.model_path.exists() and (tmp_path / "run1" / "manifest.csv").exists()
    assert (tmp_path / "run1" / "training_curves.png").stat().st_size > 1000
    hist = json.loads((tmp_path / "run1" / "history.json").read_text())
    assert len(hist["loss"]) == 2 and "val_loss" in hist
    assert any("cached embeddings" in ev.message for ev in logs)  # progress comes as Events
    assert r1.cache_hits == 0 and r1.cache_misses > 0
    r2 = train(tmp_path / "data", tmp_path / "run2", cfg, tcfg, cache_dir=tmp_path / "cache", progress=None)
    assert r2.cache_misses == 0 and r2.cache_hits >= r1.cache_misses // 2
    import truthnet

    clf = truthnet.load_classifier(r2.model_path)
    assert clf.metadata["trained"] is True and clf.metadata["split_counts"] == r1.counts
    # the model card: what it was trained on travels inside the model file
    import hashlib

    from truthnet.model import read_card

    card = read_card(r2.model_path)
    assert card.trained and card.synthetic and card.synthetic_videos == 16 and card.counts == r1.counts
    assert card.dataset == str(tmp_path / "data") and card.layout == "folder"
    assert card.manifest_sha256 == hashlib.sha256((tmp_path / "run2" / "manifest.csv").read_bytes()).hexdigest()
    assert card.preset == "custom (tiny with image_size, trainable_backbone changed)"
    assert card.train_metrics["epoch"] == 2 and "val_loss" in card.train_metrics
    assert card.truthnet_version == truthnet.__version__ and card.created
    assert [w.split(" ")[2] for w in card.warnings()] == ["synthetic", "only"]


def test_metrics_equal_hand_computation():
    y = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    s = [0.1, 0.6, 0.3, 0.5, 0.9, 0.8, 0.4, 0.7, 0.2, 0.95]
    m = compute_metrics(y, s, 0.5)
    # predictions at >= 0.5: real -> [0,1,0,1], fake -> [1,1,0,1,0,1]
    assert m["confusion_matrix"] == [[2, 2], [2, 4]]
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["report"]["real"]["precision"] == pytest.approx(2 / 4)
    assert m["report"]["real"]["recall"] == pytest.approx(2 / 4)
    assert m["report"]["fake"]["precision"] == pytest.approx(4 / 6)
    assert m["report"]["fake"]["recall"] == pytest.approx(4 / 6)
    f_real, f_fake = 0.5, 2 / 3
    assert m["report"]["macro avg"]["f1-score"] == pytest.approx((f_real + f_fake) / 2)
    assert m["report"]["weighted avg"]["f1-score"] == pytest.approx((4 * f_real + 6 * f_fake) / 10)
    # AUC by pair counting: fraction of (fake, real) pairs where the fake scores higher
    pairs = [(f, r) for f in s[4:] for r in s[:4]]
    assert m["roc_auc"] == pytest.approx(sum(f > r for f, r in pairs) / len(pairs))


def test_pick_threshold_reaches_target_real_recall():
    real = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    t = pick_threshold(real, real_recall=0.8)
    assert sum(s < t for s in real) / len(real) >= 0.8
    assert sum(s < t for s in real) == 8  # lowest such threshold
    assert pick_threshold(real, max_fpr=0.2) == t

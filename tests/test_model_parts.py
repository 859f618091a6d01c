"""A model file's frame encoder and head on OpenVINO (truthnet.runtime.parts): converted once,
cached, checked on every load; scores Keras's within 1e-6; from the cache no TensorFlow at all;
a video's score independent of what it is batched with."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

import truthnet
from truthnet.runtime import ovcache
from truthnet.runtime import parts as model_parts
from truthnet.errors import ConfigError, ModelError
from truthnet.settings import default_cache_dir

pytestmark = [pytest.mark.skipif(not ovcache.available(), reason="OpenVINO is not installed"),
              pytest.mark.allow_untrained, pytest.mark.private_cache]


@pytest.fixture(autouse=True)
def _no_gpu(monkeypatch):
    """On a machine with a GPU, ``auto`` keeps the model on TensorFlow (which can use it): these
    tests are about the CPU, where it runs on OpenVINO."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")


def _inputs(clf, videos) -> np.ndarray:
    """Model inputs ``(N, T, S, S, 3)`` of real decoded videos."""
    with clf.face_pipelines().take() as pipe:
        return np.stack([clf.pipeline.inputs(pipe.prepare(str(v))) for v in videos])


@pytest.fixture
def model_copy(none_model, tmp_path):
    """The tiny model under a path of this test's own (its cache entry is this test's too)."""
    return str(shutil.copy(none_model, tmp_path / "model.keras"))


def test_a_model_file_scores_on_openvino_as_keras_does(model_copy, media):
    ov = truthnet.load_classifier(model_copy)
    tf = truthnet.load_classifier(model_copy, runtime="tensorflow")
    assert (ov.runtime, tf.runtime) == ("openvino", "tensorflow")
    x = _inputs(ov, [media["face"], media["face_avi"], media["short"]])
    got, want = ov.predict_inputs(x), tf.predict_inputs(x)
    assert got.shape == want.shape == (3,) and float(np.max(np.abs(got - want))) <= model_parts.SCORE_TOLERANCE
    assert len(set(np.round(want, 4))) == 3  # (three different scores: the comparison can fail)
    entries = list((default_cache_dir() / "model-openvino").iterdir())
    assert len(entries) == 1 and entries[0].name.endswith(f"-u{os.geteuid()}")  # (this user's own)
    assert sorted(p.name for p in entries[0].iterdir()) == [
        "check.npz", "encoder.bin", "encoder.xml", "head.bin", "head.xml"]


def test_from_the_cache_a_fresh_process_scores_without_tensorflow(model_copy, media, python):
    first = truthnet.load_classifier(model_copy)  # converts and caches
    want = first.score_video(media["face"])
    code = textwrap.dedent(
        f"""
        import json, sys
        import truthnet
        clf = truthnet.load_classifier({model_copy!r})
        r = clf.score_video({str(media["face"])!r})
        print(json.dumps({{"score": r.score, "status": r.status, "runtime": clf.runtime,
                          "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}}))
        """
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"score": want.score, "status": "ok", "runtime": "openvino", "tensorflow": False, "keras": False}


def test_a_videos_score_does_not_depend_on_its_batch(model_copy, media, monkeypatch):
    clf = truthnet.load_classifier(model_copy)
    x = _inputs(clf, [media["face"], media["face_avi"], media["short"]])
    together = clf.predict_inputs(x)
    alone = np.concatenate([clf.predict_inputs(x[i : i + 1]) for i in range(3)])
    assert np.array_equal(together, alone)  # bit for bit
    frames = x.reshape((-1,) + x.shape[2:])
    parts = clf._split()
    assert np.array_equal(parts.embed(frames)[5], parts.embed(frames[5:6])[0])
    monkeypatch.setattr(model_parts, "FRAME_CHUNK", 4)  # chunk boundaries in other places
    assert np.array_equal(parts.embed(frames[1:]), parts.embed(frames)[1:])


def test_a_damaged_or_forged_cache_entry_is_converted_again(model_copy, media, caplog):
    first = truthnet.load_classifier(model_copy).score_video(media["face"]).score
    entry = next((default_cache_dir() / "model-openvino").iterdir())
    size = (entry / "encoder.bin").stat().st_size
    (entry / "encoder.bin").write_bytes((entry / "encoder.bin").read_bytes()[: size // 2])
    with caplog.at_level(logging.WARNING, logger="truthnet.runtime.parts"):
        clf = truthnet.load_classifier(model_copy)
    assert "converting the model's parts again" in caplog.text and (entry / "encoder.bin").stat().st_size == size
    assert clf.runtime == "openvino" and clf.score_video(media["face"]).score == first
    with np.load(entry / "check.npz") as stored:
        forged = {k: stored[k] + (0.01 if k == "scores" else 0.0) for k in stored.files}
    np.savez(entry / "check.npz", **forged)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="truthnet.runtime.parts"):
        truthnet.load_classifier(model_copy)
    assert "the head on OpenVINO differs from Keras" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="truthnet.runtime.parts"):
        clf = truthnet.load_classifier(model_copy)  # repaired: read as it is
    assert caplog.text == "" and clf._model is None  # (and without Keras)
    # an entry others could have written is not trusted, however well it checks out
    for path in (entry, entry / "encoder.bin"):
        path.chmod(path.stat().st_mode | 0o020)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="truthnet.runtime.parts"):
            assert truthnet.load_classifier(model_copy).score_video(media["face"]).score == first
        assert "alone can write" in caplog.text
        assert not any(p.stat().st_mode & 0o022 for p in (entry, *entry.iterdir()))  # replaced


def test_a_killed_writers_leftovers_are_removed_by_the_next_writer(model_copy):
    """A process killed while writing an entry leaves a ``.partial-*`` folder: the next process
    that writes an entry there removes it once it is an hour old (a fresh one may be a live
    writer's and is left alone)."""
    folder = default_cache_dir() / "model-openvino"
    folder.mkdir(parents=True)
    old, fresh = folder / ".partial-killed", folder / ".partial-live"
    for leftover in (old, fresh):
        leftover.mkdir()
        (leftover / "encoder.bin").write_bytes(b"half")
    os.utime(old, (0, 0))
    truthnet.load_classifier(model_copy)  # converts and writes the entry
    assert not old.exists() and fresh.exists()
    assert len([p for p in folder.iterdir() if not p.name.startswith(".")]) == 1  # (and the entry written)


def test_parts_that_differ_from_keras_are_not_used(model_copy, media, monkeypatch, caplog):
    monkeypatch.setattr(model_parts, "SCORE_TOLERANCE", -1.0)  # any difference, even none, is too much
    with caplog.at_level(logging.WARNING, logger="truthnet.runtime.parts"):
        clf = truthnet.load_classifier(model_copy)
    assert clf.runtime == "tensorflow" and "stays on TensorFlow" in caplog.text
    assert clf.score_video(media["face"]).ok
    with pytest.raises(ModelError, match="cannot run on OpenVINO"):
        truthnet.load_classifier(model_copy, runtime="openvino")


def test_the_papers_encoder_on_openvino_scores_within_1e6_of_keras(tmp_path, imagenet_file, media):
    """MobileNetV2 with ImageNet's weights, its 52 batch normalisations' scales kept apart from the
    convolutions' weights (inputs of the compiled encoder, which OpenVINO never folds): scores of
    real frames within 1e-6 of Keras's.  (On 10 realistic clips: 1.4e-6 with the scales folded
    into the weights, 1.8e-7 apart.)"""
    cfg = truthnet.PipelineConfig.preset("paper", backbone_weights=str(imagenet_file), detector="none")
    path = str(truthnet.new_classifier(cfg, seed=0).save(tmp_path / "paper.keras"))
    ov = truthnet.load_classifier(path)
    tf = truthnet.load_classifier(path, runtime="tensorflow")
    assert (ov.runtime, tf.runtime) == ("openvino", "tensorflow")
    assert len(ov._split()._compiled[0].inputs) == 1 + 52
    x = _inputs(ov, [media["face"], media["face_avi"], media["short"]])
    got, want = ov.predict_inputs(x), tf.predict_inputs(x)
    assert float(np.max(np.abs(got - want))) <= model_parts.SCORE_TOLERANCE
    # the scales OpenVINO reads are TensorFlow's bits (its own folding differs in ~a fifth of them)
    import hashlib

    import keras

    with open(path, "rb") as fh:
        folder = model_parts.cache_dir(hashlib.sha256(fh.read()).hexdigest(), ov.config)
    scales = []
    for node in ovcache.read(folder / "encoder.xml").get_ordered_ops():
        if node.get_type_name() == "Multiply":
            a, b = (node.input_value(i).get_node() for i in (0, 1))
            if b.get_type_name() == "Constant" and a.get_type_name() in ("Convolution", "GroupConvolution"):
                scales.append(b.get_data().reshape(-1))
    norms = [layer for layer in tf.keras_parts().encoder._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(scales) == len(norms) == 52
    import tensorflow

    wants = []
    for norm in norms:
        var, gamma = (tensorflow.constant(keras.ops.convert_to_numpy(w)) for w in (norm.moving_variance, norm.gamma))
        wants.append(np.asarray(tensorflow.math.rsqrt(var + norm.epsilon) * gamma))
    # (each scale is one of the layers', bit for bit; the graph's order is not the layers')
    assert all(any(np.array_equal(scale, want) for want in wants) for scale in scales)


def test_an_encoder_whose_scores_drift_is_not_used(model_copy, monkeypatch, caplog):
    """Embeddings within their own tolerance, but scores through the head further than 1e-6 from
    Keras's: the encoder and head are checked together, and the model stays on TensorFlow."""
    embed = model_parts.OpenVINOParts.embed

    def drifting(self, frames):
        emb = embed(self, frames)
        return emb + np.float32(0.5 * model_parts.EMBEDDING_TOLERANCE) * np.abs(emb).max()

    monkeypatch.setattr(model_parts.OpenVINOParts, "embed", drifting)
    with caplog.at_level(logging.WARNING, logger="truthnet.runtime.parts"):
        clf = truthnet.load_classifier(model_copy)
    assert clf.runtime == "tensorflow" and "encoder and head on OpenVINO differ" in caplog.text


def test_the_tiny_encoders_scales_stay_apart(model_copy):
    clf = truthnet.load_classifier(model_copy)
    assert clf.runtime == "openvino"
    assert len(clf._split()._compiled[0].inputs) == 1 + 4  # (its four Conv-BN-ReLU blocks)


def test_weights_only_values_are_computed_by_tensorflow(tmp_path):
    """A batch normalisation's scale and shift, which depend on its weights only, are TensorFlow's
    bits in the graph OpenVINO reads, not OpenVINO's own folding of ``rsqrt``."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    rng = np.random.default_rng(0)
    inp = tf.keras.Input((8, 8, 3))
    bn = tf.keras.layers.BatchNormalization()
    model = tf.keras.Model(inp, bn(tf.keras.layers.Conv2D(16, 3, use_bias=False)(inp)))
    bn.set_weights([rng.uniform(0.5, 2, 16).astype(np.float32), rng.normal(size=16).astype(np.float32),
                    rng.normal(size=16).astype(np.float32), rng.uniform(1e-3, 3, 16).astype(np.float32)])
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, 8, 8, 3])])
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    before = frozen.graph.as_graph_def()
    after = ovcache.folded_by_tensorflow(before, [t.name for t in frozen.outputs])
    assert "Rsqrt" in {n.op for n in before.node} and "Rsqrt" not in {n.op for n in after.node}
    gamma, beta, mean, var = (tf.constant(w) for w in bn.get_weights())
    scale = (tf.math.rsqrt(var + bn.epsilon) * gamma).numpy()
    consts = [tf.make_ndarray(n.attr["value"].tensor) for n in after.node if n.op == "Const"]
    assert any(c.shape == scale.shape and np.array_equal(c, scale) for c in consts)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(after, name="")
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True  # (no fusing by TensorFlow either)
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        got = session.run(frozen.outputs[0].name, {frozen.inputs[0].name: x})
    assert np.array_equal(got, model(x, training=False).numpy())  # (the same network, to the bit)


def test_a_model_file_replaced_before_it_loaded_gives_no_verdict(model_copy, tiny_model, media, tmp_path):
    """The scan cites the model file's SHA-256 taken when it starts; the classifier hashes the
    bytes it loads.  A file replaced in between ends the scan with a ModelError, no verdict."""
    from truthnet.scanning import Scanner
    from truthnet.store import Store

    clf = truthnet.load_classifier(model_copy)
    shutil.copy(tiny_model, model_copy)  # another model under the same name
    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(ModelError, match="changed while the scan was starting"):
        Scanner(clf, store, model_path=model_copy).scan([str(media["face"])])
    assert [r.status for r in store.results(store.scans()[0]["id"])] == []
    ok = Scanner(truthnet.load_classifier(model_copy), store, model_path=model_copy).scan([str(media["face"])])
    assert ok.counts["ok"] == 1


def test_the_ray_engine_ships_only_the_bytes_the_scan_cites(model_copy, tiny_model, tmp_path):
    from truthnet.engine.ray import RayScanner
    from truthnet.store import Store

    scanner = RayScanner(truthnet.load_classifier(model_copy), Store(tmp_path / "db.sqlite"), model_path=model_copy)
    assert scanner._model_bytes()[0] == open(model_copy, "rb").read()
    shutil.copy(tiny_model, model_copy)
    with pytest.raises(ModelError, match="changed while the scan was starting"):
        scanner._model_bytes()


def test_the_runtime_is_chosen_by_name_environment_and_device(model_copy, monkeypatch):
    monkeypatch.setenv("TRUTHNET_MODEL_RUNTIME", "tensorflow")
    assert truthnet.load_classifier(model_copy).runtime == "tensorflow"
    monkeypatch.setenv("TRUTHNET_MODEL_RUNTIME", "onnx")
    with pytest.raises(ConfigError, match="unknown model runtime 'onnx'"):
        truthnet.load_classifier(model_copy)
    monkeypatch.delenv("TRUTHNET_MODEL_RUNTIME")
    assert model_parts.resolve_runtime(None, "gpu:0") == "tensorflow"  # (TensorFlow can use the GPU)
    assert model_parts.resolve_runtime(None, "cpu") == "openvino"
    from truthnet import device
    from truthnet.api import load

    monkeypatch.setattr(device, "_chosen", None)  # (restored after: the device choice is per process)
    assert load(model_copy, device="cpu").runtime == "openvino"  # (the device reaches the choice)
    with pytest.raises(ConfigError, match="runs on the CPU"):
        model_parts.resolve_runtime("openvino", "gpu:1")


def test_keras_loads_on_demand_and_only_from_the_bytes_that_were_scored(model_copy, tiny_model, media):
    truthnet.load_classifier(model_copy)  # (converts and caches)
    clf = truthnet.load_classifier(model_copy)
    assert clf._model is None and clf.runtime == "openvino"  # from the cache: no Keras model
    assert clf.model.get_layer("cnn") is not None  # Keras on demand (an explanation, a save)
    again = truthnet.load_classifier(model_copy)
    shutil.copy(tiny_model, model_copy)  # another model under the same name
    with pytest.raises(ModelError, match="changed since this classifier scored"):
        again.model  # noqa: B018

import numpy as np
import pytest

import truthnet
from truthnet import ModelError, PipelineConfig, UnsafeModelError
from truthnet.model import build_model, load_model, save_model

pytestmark = pytest.mark.allow_untrained  # these tests score with freshly built models


def keras():
    from truthnet._lazy import import_keras

    return import_keras()


@pytest.fixture(scope="module")
def paper_model():
    keras().utils.set_random_seed(0)
    return build_model(PipelineConfig.preset("paper"), weights=None)


def test_paper_model_layers_and_output(paper_model):
    L = keras().layers
    m = paper_model
    assert m.input_shape == (None, 10, 224, 224, 3)
    assert m.output_shape == (None, 1)
    cnn, pool, lstm, drop, dense, score = m.layers[1:]
    assert isinstance(cnn, L.TimeDistributed) and cnn.layer.name.startswith("mobilenetv2")
    assert not cnn.layer.trainable  # frozen backbone
    assert isinstance(pool, L.TimeDistributed) and isinstance(pool.layer, L.GlobalAveragePooling2D)
    assert isinstance(lstm, L.LSTM) and lstm.units == 128
    assert isinstance(drop, L.Dropout) and drop.rate == 0.5
    assert isinstance(dense, L.Dense) and dense.units == 64 and dense.activation.__name__ == "relu"
    assert isinstance(score, L.Dense) and score.units == 1 and score.activation.__name__ == "sigmoid"
    # only the head trains: LSTM (3) + Dense (2) + Dense (2) weight tensors
    assert len(m.trainable_weights) == 7
    assert pool.output.shape[-1] == 1280


@pytest.fixture(scope="module")
def tiny_detector():
    cfg = PipelineConfig.preset("tiny", detector="haar", image_size=48)
    return truthnet.new_classifier(cfg, seed=3)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_load_gives_identical_scores(tmp_path, media, tiny_detector, suffix):
    before = tiny_detector.score_video(media["face"])
    assert before.ok and 0.0 < before.score < 1.0
    path = tiny_detector.save(tmp_path / f"m{suffix}")
    loaded = truthnet.load_classifier(path)
    assert loaded.config == tiny_detector.config  # the pipeline travels with the model
    after = loaded.score_video(media["face"])
    assert after.score == pytest.approx(before.score, abs=1e-6)
    assert after.label == before.label
    assert after.faces_found == before.faces_found


def test_threshold_decides_label(media, tiny_detector):
    v = tiny_detector.score_video(media["face"])
    assert tiny_detector.with_threshold(v.score).score_video(media["face"]).label == "fake"  # >= is fake
    assert tiny_detector.with_threshold(min(1.0, v.score + 1e-3)).score_video(media["face"]).label == "real"


def test_bare_paper_script_h5_loads_with_stated_config(tmp_path, media):
    """A model saved the way the paper's script does (Sequential, .h5, no TruthNet metadata)."""
    k = keras()
    L = k.layers
    k.utils.set_random_seed(1)
    base = k.applications.MobileNetV2(weights=None, include_top=False, input_shape=(224, 224, 3))
    from truthnet.model import recalibrate_batchnorm
    from truthnet.pipeline import FacePipeline

    # without ImageNet weights every frame would embed to ~0 and score 0.5: give BN real statistics
    calib = FacePipeline(PipelineConfig.preset("paper", detector="none"))
    recalibrate_batchnorm(base, calib.inputs(calib.prepare(media["face"])))
    base.trainable = False
    model = k.Sequential(
        [
            k.Input((10, 224, 224, 3)),
            L.TimeDistributed(base),
            L.TimeDistributed(L.GlobalAveragePooling2D()),
            L.LSTM(128),
            L.Dropout(0.5),
            L.Dense(64, activation="relu"),
            L.Dense(1, activation="sigmoid"),
        ]
    )
    path = tmp_path / "deepfake_detector_cnn_lstm.h5"
    model.save(path)
    with pytest.raises(ModelError, match="carries no TruthNet pipeline configuration"):
        truthnet.load_classifier(path)
    cfg = PipelineConfig.preset("paper", detector="none")
    clf = truthnet.load_classifier(path, cfg)
    seq = clf.pipeline.prepare(media["face"])
    x = clf.pipeline.inputs(seq)[None]
    expected = float(np.asarray(model(x, training=False))[0, 0])
    v = clf.score_video(media["face"])
    assert v.ok and v.score == pytest.approx(expected, abs=1e-6)
    other = clf.score_video(media["short"])
    assert abs(other.score - v.score) > 1e-4  # the scores depend on the video


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_is_refused(tmp_path, suffix):
    k = keras()
    inp = k.Input((10, 48, 48, 3))
    x = k.layers.Lambda(lambda t: t * 2.0)(inp)
    x = k.layers.TimeDistributed(k.layers.GlobalAveragePooling2D())(x)
    out = k.layers.Dense(1, activation="sigmoid")(k.layers.LSTM(4)(x))
    path = tmp_path / f"evil{suffix}"
    save_model(k.Model(inp, out), PipelineConfig.preset("tiny", image_size=48), path)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model(path)


@pytest.mark.parametrize(
    "content,match",
    [(b"", "not a Keras model"), (b"hello world\n", "not a Keras model"), (None, "does not exist")],
)
def test_wrong_model_files(tmp_path, content, match):
    path = tmp_path / "model.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        truthnet.load_classifier(path)


def test_zip_that_is_not_a_model(tmp_path):
    import zipfile

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelError, match="not a Keras model"):
        truthnet.load_classifier(path)


def test_config_that_does_not_fit_the_model(tmp_path, tiny_detector):
    path = tiny_detector.save(tmp_path / "m.keras")
    with pytest.raises(ModelError, match="does not match"):
        truthnet.load_classifier(path, tiny_detector.config.replace(image_size=64))


def test_failed_video_gets_no_score(media, tiny_detector):
    for key, status in [("random", "not_a_video"), ("truncated", "decode_error"), ("empty", "not_a_video")]:
        v = tiny_detector.score_video(media[key])
        assert (v.status, v.score, v.label) == (status, None, None)
        assert v.reason


def test_score_videos_streams_in_order(media, tiny_detector):
    paths = [media["face"], media["random"], media["short"], media["face_avi"], media["text"]]
    out = list(tiny_detector.score_videos(paths, batch_size=2))
    assert [v.path for v in out] == [str(p) for p in paths]
    assert [v.status for v in out] == ["ok", "not_a_video", "ok", "ok", "not_a_video"]
    single = tiny_detector.score_video(media["short"])
    assert out[2].score == pytest.approx(single.score, abs=1e-5)


def test_a_failing_detector_costs_one_video_not_the_run(media, tmp_path):
    """A detector plugin that raises: that video gets status detector_error, the others score."""
    from truthnet import plugins
    from truthnet.plugins import hookimpl

    class Flaky:
        finds_faces = True

        def detect(self, frames):
            if frames[0].shape[1] == 320 and len(frames) == 4:  # only the 4-frame clip
                raise ValueError("The convolution operation resulted in an empty output")
            return plugins.create_face_detector("none").detect(frames)

    class P:
        @hookimpl
        def truthnet_register_face_detectors(self, register):
            register("flaky", Flaky)

    try:
        plugins.register_plugin(P(), name="flaky-test", source="test")
        clf = truthnet.new_classifier(PipelineConfig.preset("tiny", detector="flaky", image_size=32), seed=0)
        # a plugin registered at run time exists in this process only: decode in threads here
        out = list(clf.score_videos([media["face"], media["short"], media["face_avi"]], isolation="thread"))
        assert [v.status for v in out] == ["ok", "detector_error", "ok"]
        # by default (isolation="auto") the engine sees the workers could not build this
        # pipeline and decodes in threads: the same statuses and scores
        auto = list(clf.score_videos([media["face"], media["short"], media["face_avi"]]))
        assert [(v.status, v.score) for v in auto] == [(v.status, v.score) for v in out]
        # asking for the isolated decode workers, which do not know it: a configuration error
        # for the whole run, never a per-file status
        with pytest.raises(truthnet.ConfigError, match="flaky"):
            list(clf.score_videos([media["face"]], isolation="process"))
        assert "flaky" in out[1].reason and "empty output" in out[1].reason and out[1].score is None
    finally:
        plugins.reset()

import pytest

from truthnet import ConfigError, PipelineConfig, UnknownNameError


def test_paper_preset_matches_design_table():
    c = PipelineConfig.preset("paper")
    assert (c.sampler, c.num_frames) == ("linspace", 10)
    # MTCNN as the paper called it: one frame at a time, the whole pyramid, no confidence cut
    assert c.detector == "mtcnn"
    assert c.detector_options == {"coarse_side": None, "min_confidence": 0.0, "per_frame": True}
    fast = PipelineConfig.preset("paper-fast")
    assert fast.detector_options["coarse_side"] == 320 and fast.to_json() != c.to_json()
    assert c.image_size == 224
    assert c.normalization == "unit"  # divide by 255 into [0, 1]
    assert (c.backbone, c.backbone_weights, c.trainable_backbone) == ("mobilenetv2", "imagenet", False)
    assert (c.lstm_units, c.dropout, c.dense_units) == (128, 0.5, 64)
    assert c.threshold == 0.5


def test_round_trip_and_unknown_keys():
    c = PipelineConfig.preset("tiny")
    assert PipelineConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown pipeline setting"):
        PipelineConfig.from_dict({**c.to_dict(), "bogus": 1})


def test_unknown_preset_lists_known():
    with pytest.raises(UnknownNameError) as e:
        PipelineConfig.preset("nope")
    assert "paper" in str(e.value) and "tiny" in str(e.value)


@pytest.mark.parametrize(
    "field,value",
    [("num_frames", 0), ("threshold", 1.5), ("normalization", "zscore"), ("no_face_policy", "guess"), ("dropout", 1.0)],
)
def test_invalid_values_rejected(field, value):
    with pytest.raises(ConfigError):
        PipelineConfig.preset("paper", **{field: value})


def test_switching_a_plugin_drops_the_old_plugins_options():
    c = PipelineConfig.preset("tiny", detector_options={"coarse_side": 160})
    assert c.replace(detector="none").detector_options == {}
    assert c.replace(detector="mtcnn").detector_options == {"coarse_side": 160}  # same plugin: kept
    assert PipelineConfig.preset("tiny", detector="haar", detector_options={"min_neighbors": 3}).detector_options == {
        "min_neighbors": 3
    }

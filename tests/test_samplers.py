import numpy as np
import pytest

from truthnet import PipelineConfig, plugins
from truthnet.pipeline import FacePipeline
from truthnet.video import VideoInfo


def info(n):
    return VideoInfo("x.mp4", n, 25.0, 64, 64)


@pytest.mark.parametrize("n", [10, 11, 37, 100, 301, 12345])
def test_linspace_equals_numpy(n):
    s = plugins.create_sampler("linspace")
    assert s.sample(info(n), 10) == np.linspace(0, n - 1, 10).astype(int).tolist()


def test_linspace_short_video_takes_every_frame():
    assert plugins.create_sampler("linspace").sample(info(4), 10) == [0, 1, 2, 3]


def test_stride_and_window():
    assert plugins.create_sampler("stride", step=5).sample(info(100), 10) == list(range(0, 50, 5))
    assert plugins.create_sampler("stride", step=5, start=2).sample(info(20), 10) == [2, 7, 12, 17]
    assert plugins.create_sampler("window").sample(info(100), 10) == list(range(45, 55))
    assert plugins.create_sampler("window", position=0.0).sample(info(100), 10) == list(range(10))


@pytest.mark.parametrize("name", plugins.list_samplers())
@pytest.mark.parametrize("n", [1, 3, 10, 250])
def test_every_sampler_returns_valid_indices(name, n):
    idx = plugins.create_sampler(name).sample(info(n), 10)
    assert idx == sorted(set(idx))
    assert all(0 <= i < n for i in idx)
    assert 0 < len(idx) <= 10


def test_four_frame_video_gives_four_real_and_six_black(media):
    cfg = PipelineConfig.preset("paper", detector="none", image_size=32)
    seq = FacePipeline(cfg).prepare(media["short"])
    assert seq.frame_indices == [0, 1, 2, 3]
    assert seq.padded == 6
    assert seq.crops.shape == (10, 32, 32, 3)
    assert all(seq.crops[i].mean() > 20 for i in range(4))
    assert not seq.crops[4:].any()
    x = seq.inputs()
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0


def test_unknown_sampler_lists_installed():
    with pytest.raises(KeyError) as e:
        plugins.create_sampler("every-7th")
    for name in ("linspace", "stride", "window"):
        assert name in str(e.value)

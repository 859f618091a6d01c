import numpy as np
import pytest

from truthnet.datasets import read_dataset
from truthnet.synth import make_dataset
from truthnet.video import probe, read_frames

pytestmark = pytest.mark.slow


def test_synth_is_deterministic_and_fakes_differ_inside_the_face(tmp_path):
    a = make_dataset(tmp_path / "a", n_real=2, n_fake=2, n_frames=6, seed=5)
    b = make_dataset(tmp_path / "b", n_real=2, n_fake=2, n_frames=6, seed=5)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    name, rows = read_dataset(tmp_path / "a")
    assert name == "folder" and sorted(r.label for r in rows) == [0, 0, 1, 1]
    assert {r.group for r in rows} == {"clip0000", "clip0001"}  # each fake sits with its source
    real, _ = read_frames(tmp_path / "a" / "real" / "clip0000.mp4", [3])
    fake, _ = read_frames(tmp_path / "a" / "fake" / "clip0000__sbi.mp4", [3])
    diff = np.abs(real[0].astype(int) - fake[0].astype(int)).sum(axis=2)
    assert diff.max() > 40  # the blended face region changed
    assert np.median(diff) < 15  # the background did not


def test_face_swap_and_fakes_from_users_own_videos(tmp_path):
    swap = make_dataset(tmp_path / "swap", n_real=1, n_fake=1, n_frames=4, methods=("swap",), seed=1)
    assert any(p.name.endswith("__swap.mp4") for p in swap)
    own = tmp_path / "mine"
    make_dataset(own, n_real=2, n_fake=0, n_frames=5, seed=9)
    out = make_dataset(tmp_path / "from-own", real_videos_dir=own / "real", seed=0)
    names = sorted(p.relative_to(tmp_path / "from-own").as_posix() for p in out)
    assert names == ["fake/user0000__sbi.mp4", "fake/user0001__sbi.mp4", "real/user0000.mp4", "real/user0001.mp4"]
    assert probe(tmp_path / "from-own" / "fake" / "user0000__sbi.mp4").frame_count == 5

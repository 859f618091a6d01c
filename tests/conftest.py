"""Shared fixtures, one per concept: the generated videos and bad files (nothing binary is
committed), the realistic corpus, the tiny models, MTCNN; and the isolation every test gets.

Every test runs with the results store, settings, caches, Keras home and ``HOME`` in its own
temporary folder (``_isolate_user_files``), so no test reads or writes the user's own files and
CLI children inherit the same.  The untrained-model guard is on: a test that scores with an
untrained model says so with ``@pytest.mark.allow_untrained`` (or the module's ``pytestmark``)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# plugins installed in the developer's environment must not change what the suite sees
os.environ.setdefault("TRUTHNET_LOAD_PLUGINS", "")
# the guard is on unless a test asks otherwise (see allow_untrained below)
os.environ.pop("TRUTHNET_ALLOW_UNTRAINED", None)
# matplotlib builds its font cache under $HOME once: one folder for the whole run, not per test
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="truthnet-tests-mpl-"))

ROOT = Path(__file__).resolve().parents[1]

#: the variables through which TruthNet finds the user's own files
USER_FILES = {"TRUTHNET_DB": "results.sqlite", "TRUTHNET_CONFIG": "settings.json", "TRUTHNET_CACHE": "cache",
              "TRUTHNET_REPORTS_DIR": "reports", "KERAS_HOME": "keras", "HOME": "home"}


#: the GPU list a TensorFlow probe gave in this session (the TUI and runners ask for it; each
#: probe is a child process importing TensorFlow): handed to later tests' caches unless a test
#: is marked ``fresh_device_cache``
_DEVICES: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _isolate_user_files(request, tmp_path_factory, monkeypatch):
    """The store, settings, caches, Keras home and HOME in a folder of this test's own (the
    converted networks' caches shared, see below); no default model from the environment; the
    untrained guard off only where marked."""
    base = tmp_path_factory.mktemp("user")
    for var, name in USER_FILES.items():
        monkeypatch.setenv(var, str(base / name))
    (base / "home").mkdir()
    monkeypatch.delenv("TRUTHNET_MODEL", raising=False)
    if request.node.get_closest_marker("allow_untrained"):
        monkeypatch.setenv("TRUTHNET_ALLOW_UNTRAINED", "1")
    else:
        monkeypatch.delenv("TRUTHNET_ALLOW_UNTRAINED", raising=False)
    if request.node.get_closest_marker("private_cache") is None:
        _share_converted_networks(base / "cache", tmp_path_factory)
    devices = base / "cache" / "devices.json"
    fresh = request.node.get_closest_marker("fresh_device_cache") is not None
    if "json" in _DEVICES and not fresh:
        devices.parent.mkdir(parents=True, exist_ok=True)
        devices.write_text(_DEVICES["json"])
    yield base
    if "json" not in _DEVICES and devices.is_file():
        _DEVICES["json"] = devices.read_text()


#: the cache folders of networks converted for OpenVINO (content-addressed: keyed by the weights'
#: or model file's bytes and the versions), shared by every test of a session
SHARED_CACHES = ("mtcnn-openvino", "model-openvino")


def _share_converted_networks(cache: Path, tmp_path_factory) -> None:
    """Link this test's cache folders of converted networks to the session's, so that MTCNN and
    each model file are converted once per session (the conversion imports TensorFlow: ~5 s of
    a CLI child that otherwise needs none).  Safe to share: entries are keyed by content, written
    whole, checked on every load and converted again when they fail.  A test that damages or
    counts entries is marked ``private_cache``."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # an xdist worker's base is inside the session's
        base = base.parent
    shared = base / "truthnet-shared-cache"
    cache.mkdir(parents=True, exist_ok=True)
    for name in SHARED_CACHES:
        (shared / name).mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared / name, target_is_directory=True)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Generated videos: faces moving, short, no face; and one of each kind of bad file."""
    from truthnet.synth import make_face_clip, make_noface_clip

    d = tmp_path_factory.mktemp("media")
    out: dict[str, Path] = {}
    out["face"], out["face_rects"] = make_face_clip(d / "face.mp4", n_frames=30, seed=1)
    out["face_avi"], _ = make_face_clip(d / "face.avi", n_frames=12, seed=2)
    out["short"], _ = make_face_clip(d / "short.mp4", n_frames=4, seed=3)
    out["noface"] = make_noface_clip(d / "noface.mp4", n_frames=12, seed=4)
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    import numpy as np

    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    out["random"] = d / "random.mp4"
    (d / "notes.mp4").write_text("this is a text file, not a video\n" * 50)
    out["text"] = d / "notes.mp4"
    data = out["face"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    out["truncated"] = d / "truncated.mp4"
    return out


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """The realistic corpus at small sizes (truthnet.testing.corpus): H.264 with long GOPs and B-frames,
    portrait, 60 fps, VFR, rotated, with audio; by name (``480p25-long`` ...)."""
    from truthnet.testing.corpus import corpus

    return {c.spec.name: c for c in corpus(tmp_path_factory.mktemp("corpus"), small=True)}


# -- models: built once per session, read-only ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_classifier():
    """The ``tiny`` network at 32 px with MTCNN, seeded, untrained (in memory)."""
    import truthnet

    return truthnet.new_classifier(truthnet.PipelineConfig.preset("tiny", image_size=32), seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_classifier, tmp_path_factory) -> str:
    """:func:`tiny_classifier` saved to a file (its metadata says ``trained: false``)."""
    return str(tiny_classifier.save(tmp_path_factory.mktemp("models") / "tiny-untrained.keras"))


@pytest.fixture(scope="session")
def none_classifier():
    """The tiny network with no face detection (the whole frame): the cheapest real model."""
    import truthnet

    cfg = truthnet.PipelineConfig.preset("tiny", image_size=32, detector="none")
    return truthnet.new_classifier(cfg, seed=0)


@pytest.fixture(scope="session")
def none_model(none_classifier, tmp_path_factory) -> str:
    return str(none_classifier.save(tmp_path_factory.mktemp("models") / "none-untrained.keras"))


@pytest.fixture(scope="session")
def mtcnn_detector():
    """The ``mtcnn`` package's detector (its three networks load once per session)."""
    from mtcnn import MTCNN

    return MTCNN()


@pytest.fixture(scope="session")
def imagenet_file() -> Path:
    """The MobileNetV2 ImageNet weights file the project keeps beside the checkout
    (``../shared/weights``; see its README), or a skip where it is absent (users download Keras's)."""
    here = Path(__file__).resolve()
    for base in (here.parents[2], here.parents[3]):
        p = base / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.h5"
        if p.is_file():
            return p
    pytest.skip("../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.h5 is not here")


@pytest.fixture
def selftest_kind(monkeypatch) -> str:
    """The test-only ``_selftest`` job kind (:mod:`truthnet.testing.jobs`), installed as a
    plugin is: an entry point in ``tests/plugins`` on this process's path and its children's
    ``PYTHONPATH``, loaded by name.  The real queue knows no such kind otherwise."""
    from truthnet import plugins
    from truthnet.testing.jobs import KIND

    where = str(ROOT / "tests" / "plugins")
    monkeypatch.syspath_prepend(where)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("TRUTHNET_LOAD_PLUGINS", "selftest")
    plugins.reset()
    yield KIND
    plugins.reset()

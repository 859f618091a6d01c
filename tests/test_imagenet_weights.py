"""``weights="imagenet"`` goes through Keras' own download cache; offline, from a file we write."""

import json
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.slow

WRITE = textwrap.dedent(
    """
    import os, sys
    import keras
    from keras.src.legacy.saving import legacy_h5_format
    import h5py
    keras.utils.set_random_seed(7)
    m = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(224, 224, 3))
    os.makedirs(sys.argv[1], exist_ok=True)
    path = os.path.join(sys.argv[1], "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, m)
    print(float(m.get_layer("Conv1").get_weights()[0].sum()))
    """
)

LOAD = textwrap.dedent(
    """
    import json, socket
    # no network: any download attempt fails loudly instead of silently succeeding
    socket.socket.connect = lambda *a, **k: (_ for _ in ()).throw(OSError("network disabled in test"))
    from truthnet import PipelineConfig
    from truthnet.model import build_model
    m = build_model(PipelineConfig.preset("paper"))
    cnn = m.get_layer("cnn").layer
    print(json.dumps({"sum": float(cnn.get_layer("Conv1").get_weights()[0].sum()), "trainable": cnn.trainable}))
    """
)


def test_imagenet_weights_load_from_keras_cache(tmp_path, python):
    env = {"KERAS_HOME": str(tmp_path / "keras"), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    w = subprocess.run([python, "-c", WRITE, str(tmp_path / "keras" / "models")], env=env, capture_output=True, text=True)
    assert w.returncode == 0, w.stderr
    expected = float(w.stdout.strip().splitlines()[-1])
    r = subprocess.run([python, "-c", LOAD], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["sum"] == pytest.approx(expected, rel=1e-6)
    assert got["trainable"] is False


def test_missing_imagenet_weights_offline_is_a_clear_model_error(tmp_path, python):
    env = {"KERAS_HOME": str(tmp_path / "empty"), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    code = LOAD.replace("print(json.dumps", "raise SystemExit(0) or print(json.dumps")
    code = code.replace(
        'm = build_model(PipelineConfig.preset("paper"))',
        "from truthnet import ModelError\n"
        "try:\n"
        '    build_model(PipelineConfig.preset("paper"))\n'
        "except ModelError as e:\n"
        "    print('MODEL_ERROR', e); raise SystemExit(0)\n"
        "raise SystemExit(1)",
    )
    r = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MODEL_ERROR" in r.stdout and "KERAS_HOME" in r.stdout


def test_known_imagenet_weights_are_found_by_content_under_any_name(tmp_path, python, imagenet_file):
    """The project's ImageNet file copied into the Keras cache under its own name serves
    ``weights="imagenet"`` offline, and ``--weights PATH`` to it keeps the card's preset ``paper``."""
    import shutil

    from truthnet import PipelineConfig
    from truthnet.modelcard import preset_name

    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    shutil.copy(imagenet_file, models / "whatever-it-is-called.h5")
    env = {"KERAS_HOME": str(tmp_path / "keras"), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    # one process: the network built with "imagenet" (found in the cache by content), then with the file
    both = LOAD + LOAD.split("from truthnet.model import build_model\n", 1)[1].replace(
        'PipelineConfig.preset("paper")', f'PipelineConfig.preset("paper", backbone_weights={str(imagenet_file)!r})')
    r = subprocess.run([python, "-c", both], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    cached, direct = (json.loads(x) for x in r.stdout.splitlines()[-2:])
    assert cached == direct and cached["trainable"] is False
    assert preset_name(PipelineConfig.preset("paper", backbone_weights=str(models / "whatever-it-is-called.h5"))) == "paper"
    other = tmp_path / "other.h5"
    other.write_bytes(b"not these weights")
    assert preset_name(PipelineConfig.preset("paper", backbone_weights=str(other))).startswith("custom (paper with")

"""MTCNN's networks on OpenVINO: used only where they give TensorFlow's outputs, and without
OpenVINO's telemetry. (Their faces against the package's: tests/test_paper_parity.py.)"""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from truthnet import ConfigError, PluginError
from truthnet.plugins import mtcnn_openvino
from truthnet.plugins.face_detectors import MTCNNDetector
from truthnet.synth import astronaut_face

pytestmark = pytest.mark.skipif(not mtcnn_openvino.available(), reason="OpenVINO is not installed")


def _frame():
    frame = np.full((240, 320, 3), 90, np.uint8)
    face = astronaut_face(120)
    frame[60 : 60 + face.shape[0], 100 : 100 + face.shape[1]] = face
    return frame


def test_networks_on_openvino_give_tensorflows_outputs():
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    stages = {"pnet": StagePNet(), "rnet": StageRNet(), "onet": StageONet()}
    nets = mtcnn_openvino.networks()
    rng = np.random.default_rng(1)
    for name, side in (("pnet", 75), ("rnet", 24), ("onet", 48)):  # (PNet: a size the load check did not use)
        x = rng.uniform(-1, 1, (3, side, side, 3)).astype(np.float32)
        want = [np.asarray(t) for t in stages[name]._model(x)]
        got = [np.asarray(t) for t in nets[name](x)]
        assert [a.shape for a in got] == [a.shape for a in want], name
        assert max(float(np.abs(a - b).max()) for a, b in zip(want, got)) <= mtcnn_openvino.TOLERANCE, name
    # the threads running them are not bound to a core: OpenVINO's default bound every detection
    # thread to the same one, so two detections at once shared a core while the other idled
    assert {mtcnn_openvino._compiled[name].get_property("ENABLE_CPU_PINNING") for name in stages} == {False}
    # no boxes left after RNet: empty outputs (TensorFlow raises there, which the driver reads as no faces)
    assert [np.asarray(a).shape for a in nets["onet"](np.zeros((0, 48, 48, 3), np.float32))] == [(0, 4), (0, 10), (0, 2)]


def test_the_same_faces_on_either_runtime():
    frames = [_frame()]
    ov, tf = MTCNNDetector(runtime="openvino"), MTCNNDetector(runtime="tensorflow")
    got_ov, got_tf = ov.detect(frames), tf.detect(frames)
    assert ov._net.runtime == "openvino" and tf._net.runtime == "tensorflow"
    assert len(got_tf[0]) >= 1
    assert [f.box for f in got_ov[0]] == [f.box for f in got_tf[0]]
    assert np.allclose([f.confidence for f in got_ov[0]], [f.confidence for f in got_tf[0]], atol=1e-5)


_DETECT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from truthnet.plugins.face_detectors import MTCNNDetector
    from truthnet.synth import astronaut_face

    frame = np.full((240, 320, 3), 90, np.uint8)
    face = astronaut_face(120)
    frame[60 : 60 + face.shape[0], 100 : 100 + face.shape[1]] = face
    detector = MTCNNDetector(runtime=sys.argv[1])
    if len(sys.argv) > 2:  # imports TensorFlow for its kernels after that many pixels
        import truthnet.plugins.mtcnn_pyramid as pyramid
        pyramid.TENSORFLOW_KERNELS_AFTER = float(sys.argv[2])
        pyramid.NATIVE_AFTER = float(sys.argv[3])  # ... and loads the compiled ones after that many
    faces = detector.detect([frame])[0]
    out = {"faces": [[f.box, f.confidence] for f in faces], "tensorflow": "tensorflow" in sys.modules,
           "numba": "numba" in sys.modules}
    if len(sys.argv) > 2:
        import threading
        for t in threading.enumerate():
            if t.name == "truthnet-import-tensorflow":
                t.join(300)
        out["kernels"] = type(pyramid._ops_for([frame])).__name__
        out["again"] = [[f.box, f.confidence] for f in detector.detect([frame])[0]]
    print(json.dumps(out))
    """
)


def _detect_in_a_fresh_process(runtime: str, cache, *more: str, native: bool = True) -> dict:
    import json

    env = {**os.environ, "TRUTHNET_CACHE": str(cache), "TRUTHNET_NATIVE_KERNELS": "1" if native else "0"}
    r = subprocess.run([sys.executable, "-c", _DETECT, runtime, *more], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_once_cached_a_detection_needs_no_tensorflow(tmp_path, caplog):
    """The first process converts the networks (TensorFlow) and caches them; the next detects
    without importing TensorFlow at all, with the very same faces, as TensorFlow finds them."""
    cache = tmp_path / "cache"
    first = _detect_in_a_fresh_process("openvino", cache)
    assert first["tensorflow"] and len(first["faces"]) == 1
    entry = next((cache / "mtcnn-openvino").iterdir())
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        [f"{n}.{ext}" for n in ("pnet", "rnet", "onet") for ext in ("xml", "bin")] + ["check.npz"])
    # (one small frame: fewer pixels than NATIVE_AFTER, so not even Numba is imported)
    second = _detect_in_a_fresh_process("openvino", cache)
    assert second == {"faces": first["faces"], "tensorflow": False, "numba": False}
    # past NATIVE_AFTER pixels it loads the compiled kernels, the same faces; and since they are
    # faster than TensorFlow's, it never imports TensorFlow for those
    native = _detect_in_a_fresh_process("openvino", cache, "1000", "0")
    assert {k: native[k] for k in ("faces", "tensorflow", "numba", "kernels", "again")} == {
        "faces": first["faces"], "tensorflow": False, "numba": True, "kernels": "_NumpyOps", "again": first["faces"]}
    # without them, a process that has detected enough pixels with the NumPy passes imports
    # TensorFlow for its kernels in the background, and from then on uses them, same faces
    third = _detect_in_a_fresh_process("openvino", cache, "1000", "0", native=False)
    assert {k: third[k] for k in ("faces", "numba", "kernels", "again")} == {
        "faces": first["faces"], "numba": False, "kernels": "_TensorFlowOps", "again": first["faces"]}
    fourth = _detect_in_a_fresh_process("openvino", cache, "1e12", "0", native=False)
    assert fourth["kernels"] == "_NumpyOps" and not fourth["tensorflow"] and not fourth["numba"]


@pytest.mark.private_cache
def test_a_damaged_or_forged_cache_entry_is_converted_again(caplog):
    """TensorFlow judges: an entry that cannot be read, or whose stored outputs the networks no
    longer give, is converted again from TensorFlow and replaced."""
    mtcnn_openvino._load()  # (this test's own, empty cache folder: converts and caches)
    entry = mtcnn_openvino.cache_dir()
    size = (entry / "pnet.bin").stat().st_size
    (entry / "pnet.bin").write_bytes((entry / "pnet.bin").read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="truthnet.plugins.mtcnn_openvino"):
        assert sorted(mtcnn_openvino._load()) == ["onet", "pnet", "rnet"]
    assert "converting MTCNN's networks again" in caplog.text and (entry / "pnet.bin").stat().st_size == size
    with np.load(entry / "check.npz") as stored:
        forged = {k: stored[k] + (0.01 if k == "onet_2" else 0.0) for k in stored.files}
    np.savez(entry / "check.npz", **forged)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="truthnet.plugins.mtcnn_openvino"):
        mtcnn_openvino._load()
    assert "onet on OpenVINO differs from TensorFlow" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="truthnet.plugins.mtcnn_openvino"):
        mtcnn_openvino._load()  # the entry was replaced: read as it is
    assert caplog.text == "" and [p.name for p in entry.parent.iterdir()] == [entry.name]
    # another process converting at the same time keeps the entry it finds (even when it set out
    # to replace a damaged one, if that one has been repaired meanwhile), and leaves nothing behind
    inode = entry.stat().st_ino
    _, models, reference = mtcnn_openvino._convert()
    for replace in (False, True):
        mtcnn_openvino._save(entry, models, reference, replace=replace)
        assert entry.stat().st_ino == inode and [p.name for p in entry.parent.iterdir()] == [entry.name]


def test_networks_that_differ_from_tensorflow_are_not_used(monkeypatch, caplog):
    monkeypatch.setattr(mtcnn_openvino, "TOLERANCE", -1.0)  # any difference, even none, is too much
    monkeypatch.setattr(mtcnn_openvino, "_compiled", {})  # (checked again: not what earlier tests compiled)
    auto = MTCNNDetector()
    with caplog.at_level(logging.WARNING, logger="truthnet.plugins.face_detectors"):
        faces = auto.detect([_frame()])
    assert auto._net.runtime == "tensorflow" and len(faces[0]) >= 1
    assert "stays on TensorFlow" in caplog.text and "differs from TensorFlow" in caplog.text
    with pytest.raises(PluginError, match="OpenVINO"):
        MTCNNDetector(runtime="openvino").detect([_frame()])


def test_an_unknown_runtime_is_refused_and_openvino_is_for_the_cpu():
    with pytest.raises(ConfigError, match="runtime"):
        MTCNNDetector(runtime="onnx")
    with pytest.raises(ConfigError, match="runs on the CPU"):  # (refused before any GPU is touched)
        MTCNNDetector(runtime="openvino", device="GPU:0").ready()


def test_mtcnn_detects_in_the_decode_workers_only_on_openvino_on_the_cpu():
    """Where its networks need TensorFlow (a GPU device, from the options or the classifier;
    ``runtime=tensorflow``) the scanning process detects; on OpenVINO on the CPU the workers do."""
    from truthnet.config import PipelineConfig
    from truthnet.decode import detects_in_decoder

    paper = PipelineConfig.preset("paper")
    assert detects_in_decoder(paper) and detects_in_decoder(paper, "cpu")
    assert not detects_in_decoder(paper, "gpu:0")
    assert not detects_in_decoder(paper.replace(detector_options={"device": "GPU:1"}), "cpu")
    assert not detects_in_decoder(paper.replace(detector_options={"runtime": "tensorflow"}))
    assert detects_in_decoder(paper.replace(detector_options={"runtime": "openvino"}))
    assert detects_in_decoder(paper.replace(detector="haar"), "gpu:0")  # OpenCV's: anywhere


def test_openvinos_telemetry_stays_out(tmp_path):
    """Its import would write an id under ~/intel and its converter reports usage online: the
    way TruthNet imports OpenVINO leaves the telemetry package out (a fresh process: this one
    may have imported OpenVINO already)."""
    code = textwrap.dedent(
        """
        import sys
        from truthnet.plugins.mtcnn_openvino import import_openvino
        ov = import_openvino()
        print(ov.Core().available_devices[:1], sys.modules.get("openvino_telemetry", "absent"))
        """
    )
    # OpenVINO's telemetry stays quiet by itself when it sees a CI job (CI=true, TF_BUILD,
    # JENKINS_URL): both processes run without those, or the check below could not fail in CI.
    ci_markers = ("CI", "TF_BUILD", "JENKINS_URL")
    env = {**{k: v for k, v in os.environ.items() if k not in ci_markers}, "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["['CPU']", "None"]
    assert not (tmp_path / "intel").exists()
    # (and a plain `import openvino` does write there: the test would see it)
    plain = subprocess.run([sys.executable, "-c", "import openvino"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert plain.returncode == 0 and (tmp_path / "intel").exists()

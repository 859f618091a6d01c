"""The ``paper`` preset's faces against the ``mtcnn`` package called as the paper called it:
``MTCNN().detect_faces(frame)``, one frame at a time, on realistic frames with small faces."""

import numpy as np
import pytest

from truthnet import PipelineConfig
from truthnet.pipeline import FacePipeline


@pytest.fixture(scope="module")
def frames(small_corpus):
    """Decoded H.264 frames with 30-50 px faces (occluded, dim, two people) and two full-size
    frames whose faces are 5 % of the width (43 px at 854 x 480, 96 px at 1920 x 1080)."""
    from truthnet.testing.corpus import render, specs
    from truthnet.video import probe, read_frames

    frames = []
    for name in ("480p25-small-face", "720p30-two-faces", "1080p25-tiny-face", "720p60-face-leaves"):
        clip = small_corpus[name]
        info = probe(clip.path)
        frames += read_frames(clip.path, np.linspace(0, info.frame_count - 1, 4).astype(int), info)[0]
    full = {s.name: s for s in specs()}
    frames.append(render(full["480p25-small-face"], 120)[0])
    frames.append(render(full["1080p25-tiny-face"], 200)[0])
    return frames


def _package_faces(mtcnn_detector, frame):
    return sorted((tuple(int(v) for v in d["box"]), float(d["confidence"])) for d in mtcnn_detector.detect_faces(frame))


@pytest.fixture(scope="module", params=["openvino", "tensorflow"])
def paper_faces(frames, request):
    """The paper preset's faces with MTCNN's networks on each runtime (``auto`` picks OpenVINO
    where it is installed: both must be the package's). One call for all frames: the answer
    must not depend on what else is in the batch."""
    cfg = PipelineConfig.preset("paper")
    cfg = cfg.replace(detector_options={**cfg.detector_options, "runtime": request.param})
    detector = FacePipeline(cfg).detector
    faces = detector.detect(frames)
    assert detector._net.runtime == request.param  # (no silent fall-back to TensorFlow)
    return faces


def test_paper_preset_keeps_every_face_the_package_returns_one_frame_at_a_time(frames, paper_faces, mtcnn_detector):
    ours = paper_faces
    weak = 0
    for i, (frame, faces) in enumerate(zip(frames, ours)):
        expected = _package_faces(mtcnn_detector, frame)
        got = sorted((tuple(int(v) for v in f.box), f.confidence) for f in faces)
        assert [b for b, _ in got] == [b for b, _ in expected], i
        assert np.allclose([c for _, c in got], [c for _, c in expected], atol=1e-5), i
        if expected:  # the largest face, the one the paper's crop takes, is the package's
            largest = max(expected, key=lambda e: e[0][2] * e[0][3])[0]
            assert tuple(int(v) for v in max(faces, key=lambda f: f.area).box) == largest
        weak += sum(c < 0.9 for _, c in expected)
    # the frames hold faces MTCNN returns below 0.9: the old extra cut would have dropped them
    assert weak >= 1


def test_the_mtcnn_default_drops_weak_faces_the_paper_keeps(frames, paper_faces):
    default = FacePipeline(PipelineConfig.preset("paper", detector_options={})).detector.detect(frames)
    assert sum(map(len, default)) < sum(map(len, paper_faces))
    assert all(f.confidence >= 0.9 for faces in default for f in faces)

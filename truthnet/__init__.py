"""TruthNet: tell real face videos from deepfakes (MobileNetV2 + LSTM, after the TruthNet paper).

Quick start::

    import truthnet
    clf = truthnet.load_classifier("model.keras")
    verdict = clf.score_video("clip.mp4")
    print(verdict.label, verdict.score, verdict.status)

Importing this package is cheap: TensorFlow, Keras and Textual are imported only by the code
that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import PipelineConfig, list_presets
from .errors import (
    ConfigError,
    DatasetError,
    DecodeError,
    DetectorError,
    EmptyFileError,
    ModelError,
    NoFaceError,
    NotAVideoError,
    PluginError,
    StoreError,
    TooFewFramesError,
    TruthnetError,
    UnknownNameError,
    UnreadableFileError,
    UnsafeModelError,
    VideoError,
)

__version__ = "0.2.0"

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "Classifier": "classifier",
    "load_classifier": "classifier",
    "new_classifier": "classifier",
    "Result": "record",
    "Engine": "engine",
    "FacePipeline": "pipeline",
    "FaceSequence": "pipeline",
    "VideoInfo": "video",
    "probe": "video",
    "read_frames": "video",
    "Face": "faces",
    "build_model": "model",
    "save_model": "model",
    "load_model": "model",
    "create_sampler": "plugins",
    "create_face_detector": "plugins",
    "create_backbone": "plugins",
    "list_samplers": "plugins",
    "list_face_detectors": "plugins",
    "list_backbones": "plugins",
    "hookimpl": "plugins",
}

__all__ = [
    "__version__",
    "PipelineConfig",
    "list_presets",
    "ConfigError",
    "DatasetError",
    "DecodeError",
    "DetectorError",
    "EmptyFileError",
    "ModelError",
    "NoFaceError",
    "NotAVideoError",
    "PluginError",
    "StoreError",
    "TooFewFramesError",
    "TruthnetError",
    "UnknownNameError",
    "UnreadableFileError",
    "UnsafeModelError",
    "VideoError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'truthnet' has no attribute {name!r}")
    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from .classifier import Classifier, load_classifier, new_classifier  # noqa: F401
    from .engine import Engine  # noqa: F401
    from .record import Result  # noqa: F401
    from .faces import Face  # noqa: F401
    from .model import build_model, load_model, save_model  # noqa: F401
    from .pipeline import FacePipeline, FaceSequence  # noqa: F401
    from .plugins import (  # noqa: F401
        create_backbone,
        create_face_detector,
        create_sampler,
        hookimpl,
        list_backbones,
        list_face_detectors,
        list_samplers,
    )
    from .video import VideoInfo, probe, read_frames  # noqa: F401

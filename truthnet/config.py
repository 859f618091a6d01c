"""Pipeline configuration and named presets.

A :class:`PipelineConfig` describes everything between a video file and a verdict: the frame
sampler, the face detector, cropping, the backbone, the temporal head and the threshold.  It is
saved inside every model file so that scoring with a model reproduces its preprocessing without
flags.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, UnknownNameError

NORMALIZATIONS = ("unit", "backbone")
NO_FACE_POLICIES = ("full_frame", "black", "nearest")
FACE_SELECTIONS = ("largest", "confident")


#: the JSON types each setting accepts (bool is never taken for a number)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("num_frames", "min_frames", "min_face_frames", "image_size", "lstm_units", "dense_units"),
                    (numbers.Integral,)),
    **dict.fromkeys(("face_margin", "dropout", "threshold"), (numbers.Real,)),
    **dict.fromkeys(("square_crop", "trainable_backbone"), (bool,)),
    **dict.fromkeys(("sampler", "detector", "face_selection", "no_face_policy", "normalization", "backbone"), (str,)),
    **dict.fromkeys(("sampler_options", "detector_options", "backbone_options"), (dict,)),
    "backbone_weights": (str, type(None)),
}
_TYPE_NAMES = {numbers.Integral: "an integer", numbers.Real: "a number", bool: "true or false", str: "a string",
               dict: "an object", type(None): "null"}


@dataclass(frozen=True)
class PipelineConfig:
    """Video -> face sequence -> score, with the paper's values as defaults.

    Attributes mirror the paper's configuration (docs/presets.md), except
    ``detector_options``: empty means the detector's own defaults (for ``mtcnn``: coarse to
    fine, batched, confidence >= 0.9), and the ``paper`` preset sets :data:`PAPER_MTCNN`
    instead.  ``normalization`` is ``"unit"`` (divide by 255 into [0, 1], as the paper does) or
    ``"backbone"`` (the backbone's own preprocessing, e.g. [-1, 1] for MobileNetV2, which is
    what its ImageNet weights expect).
    """

    # frame sampling (paper 3.5.2: 10 frames, np.linspace over all frames, black padding)
    sampler: str = "linspace"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    num_frames: int = 10
    min_frames: int = 1
    # face detection and cropping (paper 3.2.2: MTCNN, crop the face region)
    detector: str = "mtcnn"
    detector_options: dict[str, Any] = field(default_factory=dict)
    face_selection: str = "largest"
    face_margin: float = 0.0
    square_crop: bool = False
    no_face_policy: str = "full_frame"
    min_face_frames: int = 1
    # model input (paper 3.4.5 / 3.5.3: 224 x 224, BGR -> RGB, / 255)
    image_size: int = 224
    normalization: str = "unit"
    # network (paper 3.4.1-3.4.3)
    backbone: str = "mobilenetv2"
    backbone_options: dict[str, Any] = field(default_factory=dict)
    backbone_weights: str | None = "imagenet"
    trainable_backbone: bool = False
    lstm_units: int = 128
    dropout: float = 0.5
    dense_units: int = 64
    # decision (paper 3.3.3: score >= 0.5 is fake)
    threshold: float = 0.5

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        # types first: a setting read from a file (a model's metadata, a settings file) may be anything
        for f in dataclasses.fields(self):
            value, want = getattr(self, f.name), _FIELD_TYPES.get(f.name)
            if want is None:
                continue
            ok = isinstance(value, want) and not (isinstance(value, bool) and bool not in want)
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in want)
            need(ok, f"{f.name} must be {names}, got {value!r} ({type(value).__name__})")

        need(self.num_frames >= 1, f"num_frames must be >= 1, got {self.num_frames}")
        need(self.min_frames >= 1, f"min_frames must be >= 1, got {self.min_frames}")
        need(self.min_face_frames >= 0, f"min_face_frames must be >= 0, got {self.min_face_frames}")
        need(self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}")
        need(self.face_margin >= 0, f"face_margin must be >= 0, got {self.face_margin}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(0.0 <= self.threshold <= 1.0, f"threshold must be in [0, 1], got {self.threshold}")
        need(self.lstm_units >= 1 and self.dense_units >= 1, "lstm_units and dense_units must be >= 1")
        need(
            self.normalization in NORMALIZATIONS,
            f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {self.normalization!r}",
        )
        need(
            self.no_face_policy in NO_FACE_POLICIES,
            f"no_face_policy must be one of {', '.join(NO_FACE_POLICIES)}; got {self.no_face_policy!r}",
        )
        need(
            self.face_selection in FACE_SELECTIONS,
            f"face_selection must be one of {', '.join(FACE_SELECTIONS)}; got {self.face_selection!r}",
        )

    # -- conversions --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a pipeline configuration must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown pipeline setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with some fields changed (validated like a new config)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown pipeline setting(s): {', '.join(unknown)}")
        # options belong to the plugin they were written for: a new sampler/detector/backbone
        # starts from its own defaults unless options are given with it
        for kind in ("sampler", "detector", "backbone"):
            if kind in changes and changes[kind] != getattr(self, kind) and f"{kind}_options" not in changes:
                changes[f"{kind}_options"] = {}
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PipelineConfig:
        """A named preset (see :func:`list_presets`), optionally with some fields changed."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise UnknownNameError("preset", name, list(PRESETS)) from None
        return base.replace(**overrides) if overrides else base


#: MTCNN as the paper ran it: ``MTCNN().detect_faces(frame)`` one frame at a time (the package
#: is not batch-invariant), the whole pyramid, every face it returns (its own thresholds only)
PAPER_MTCNN: dict[str, Any] = {"coarse_side": None, "min_confidence": 0.0, "per_frame": True}

PRESETS: dict[str, PipelineConfig] = {
    # The paper: 10 linspace frames, MTCNN's single-frame answer at full resolution with no
    # confidence cut of our own, the largest face's raw box resized to 224, [0, 1] input,
    # frozen ImageNet MobileNetV2, LSTM(128)-Dropout(.5)-Dense(64)-Dense(1).  docs/presets.md
    # sets every preset beside the paper's settings.
    "paper": PipelineConfig(detector_options=dict(PAPER_MTCNN)),
    # The paper's network and crops with MTCNN run coarse to fine over batches of frames: a
    # 320-pixel pass finds the faces, a full-resolution pass over the pyramid levels that can
    # hold the largest one gives its box (truthnet.plugins.mtcnn_pyramid).  Faster; the
    # largest box can differ from the single-frame full pyramid's (docs/presets.md).
    "paper-fast": PipelineConfig(detector_options={"coarse_side": 320, "min_confidence": 0.0}),
    # Same network, but the input in the range MobileNetV2's ImageNet weights were trained on
    # ([-1, 1]); the paper's [0, 1] input shifts every activation of the frozen backbone.
    # Faces are cropped square with a margin (no aspect distortion, some context for blending
    # artefacts).
    "paper-imagenet-norm": PipelineConfig(
        normalization="backbone",
        square_crop=True,
        face_margin=0.15,
    ),
    # A small network that trains from scratch on a CPU in seconds: for demos and tests.
    "tiny": PipelineConfig(
        detector="mtcnn",
        square_crop=True,
        face_margin=0.15,
        image_size=96,
        backbone="tiny",
        backbone_weights=None,
        trainable_backbone=True,
        lstm_units=32,
        dropout=0.2,
        dense_units=16,
    ),
}


def list_presets() -> list[str]:
    return sorted(PRESETS)

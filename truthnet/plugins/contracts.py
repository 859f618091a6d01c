"""The typed contracts of TruthNet's plugins, as :class:`typing.Protocol` classes.

A plugin never has to inherit from these: they say, for a type checker and for the reader,
what the objects a factory returns must look like.  ``isinstance`` works on them at run time
(they are ``runtime_checkable``), but only checks that the methods exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # heavy or circular at run time; only the annotations need them
    from pathlib import Path

    import numpy as np

    from ..backbones import Backbone
    from ..datasets.layouts import ManifestRow
    from ..faces import Face
    from ..video import VideoInfo

__all__ = ["Register", "Sampler", "FaceDetector", "DatasetLayout", "BackboneFactory"]


class Register(Protocol):
    """The callback each ``truthnet_register_*`` hook receives.

    ``register(name, factory, description="")``: ``factory(**options)`` builds the thing when a
    configuration names it; ``options`` come from ``PipelineConfig.<part>_options`` (CLI:
    ``--option part.key=value``) and are checked against the factory's signature.
    """

    def __call__(self, name: str, factory: Callable[..., Any], description: str = "") -> None: ...


@runtime_checkable
class Sampler(Protocol):
    """Chooses which frames of a video are decoded.

    ``sample`` returns sorted, unique indices in ``[0, info.frame_count)``; fewer than
    ``num_frames`` is allowed (the pipeline pads with black frames, as the paper does).
    """

    def sample(self, info: VideoInfo, num_frames: int) -> list[int]: ...


@runtime_checkable
class FaceDetector(Protocol):
    """Finds the faces in a batch of RGB ``uint8`` frames: one list of :class:`Face` per frame,
    boxes ``(x, y, w, h)`` in pixels of that frame.

    Optional attributes: ``finds_faces = False`` (the detector does not look for faces: whole
    frames are used) and, on the factory, ``runs_in_decoder = True`` (cheap to create, no
    TensorFlow: ``truthnet scan`` detects in its decode worker processes), or a function
    ``runs_in_decoder(options, device) -> bool`` saying so for some options and devices.
    """

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]: ...


@runtime_checkable
class DatasetLayout(Protocol):
    """Recognises a dataset folder and lists its videos (see ``docs/datasets.md``).

    Both methods get the dataset root as a :class:`pathlib.Path`.  An optional ``expects``
    string says what the layout looks for (shown when no layout matches a folder).
    """

    def detect(self, root: Path) -> bool: ...

    def read(self, root: Path) -> list[ManifestRow]: ...


class BackboneFactory(Protocol):
    """``factory(**options) -> Backbone``.  Cheap: TruthNet calls it before it loads a model
    that uses the backbone, so a backbone with its own Keras layers imports (registers) them
    here."""

    def __call__(self, **options: Any) -> Backbone: ...

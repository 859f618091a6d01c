"""One exception hierarchy for the whole toolkit.

Every message is written to read well both as one CLI line (``error: <message>``) and as the
body of a TUI dialog.  Errors about one input file carry a ``status`` that the scanner records
for that file instead of aborting; ``hint`` says what the user can do about it.
"""

from __future__ import annotations

from pathlib import Path


class TruthnetError(Exception):
    """Base class of every error TruthNet raises on purpose."""

    #: machine-readable status recorded for a file that failed with this error
    status: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


# --- configuration and plugins -------------------------------------------------------------


class ConfigError(TruthnetError, ValueError):
    """A configuration value or preset is invalid."""

    status = "config_error"


class UnknownNameError(ConfigError, KeyError):
    """A sampler / detector / backbone / layout / preset name is not installed."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "(none installed)"
        super().__init__(f"unknown {kind} {name!r}; installed: {listing}")

    # KeyError.__str__ would add quotes around the message
    __str__ = TruthnetError.__str__


class PluginError(TruthnetError):
    """A plugin failed to load or registered something invalid."""

    status = "plugin_error"


# --- input files ---------------------------------------------------------------------------


class VideoError(TruthnetError):
    """A video file could not be used.  ``path`` names it."""

    status = "decode_error"

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint)
        self.reason = message


class UnreadableFileError(VideoError):
    """The file is missing, a directory, or cannot be opened (permissions, I/O error)."""

    status = "unreadable"


class NotAVideoError(VideoError):
    """The file is not a video container OpenCV can open (text, image, random bytes)."""

    status = "not_a_video"


class EmptyFileError(NotAVideoError):
    """The file has zero bytes."""


class FrameTooLargeError(VideoError):
    """The stream's header announces frames above the pixel limit: refused before decoding."""

    status = "too_large"


class DecodeError(VideoError):
    """The file looks like a video but its frames cannot be decoded (truncated, corrupt)."""

    status = "decode_error"


class TooFewFramesError(VideoError):
    """The video has fewer decodable frames than the pipeline's ``min_frames``."""

    status = "too_few_frames"


class NoFaceError(VideoError):
    """No face was found in enough sampled frames to score the video."""

    status = "no_face"


class DetectorError(VideoError):
    """The face detector raised on this video's frames (a plugin bug, or a frame size it cannot
    handle); the video is not scored, the scan goes on."""

    status = "detector_error"


class VideoTimeoutError(VideoError):
    """Processing one file took longer than its time limit."""

    status = "timeout"


# --- models --------------------------------------------------------------------------------


class ModelError(TruthnetError):
    """A model file is missing, of the wrong kind, or does not fit the pipeline."""

    status = "model_error"


class UnsafeModelError(ModelError):
    """A model file would run arbitrary code when loaded (e.g. it holds a Lambda layer)."""


class StoreError(TruthnetError):
    """The results database cannot be opened or written (damaged, locked, disk full); the
    message names the file and a way out.  Results committed before it are kept."""

    status = "store_error"


class DatasetError(TruthnetError):
    """A dataset folder does not match any known layout or is inconsistent."""

    status = "dataset_error"


# --- control flow --------------------------------------------------------------------------


class Cancelled(TruthnetError):
    """Long work (train, evaluate, calibrate) stopped because its ``cancel`` was set."""

    status = "cancelled"

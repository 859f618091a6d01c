"""Progress events: what long work (scan, train, evaluate, calibrate) reports as it goes.

Library code reports progress through a plain ``progress(text)`` callback, so a ``print`` works
as one.  The text it passes is a :class:`ProgressText`: a ``str`` that also carries the stage and
counts, so the API, the job queue and the TUI read structure instead of parsing wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ProgressText(str):
    """A progress line with its structure attached (``stage``, ``done``, ``total``)."""

    stage: str
    done: int
    total: int

    def __new__(cls, stage: str, done: int, total: int, text: str) -> ProgressText:
        obj = super().__new__(cls, text)
        obj.stage, obj.done, obj.total = stage, int(done), int(total)
        return obj


@dataclass(frozen=True)
class Event:
    """One step of long work.

    ``stage``: ``scan``, ``faces``, ``embeddings``, ``epoch``, ``evaluate``, ``calibrate`` or
    ``log`` (a message without counts); ``done``/``total``: units of that stage (files, videos,
    epochs); ``result``: the :class:`~truthnet.record.Result` a scan just finished, if any;
    ``card``: on a scan's ``scoring`` event, the model card stored with the scan (summary and
    warnings, :meth:`truthnet.modelcard.ModelCard.stored`).
    """

    stage: str
    done: int = 0
    total: int = 0
    message: str = ""
    result: Any = None
    card: dict | None = None

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None

    @classmethod
    def from_text(cls, text: str) -> Event:
        if isinstance(text, ProgressText):
            return cls(text.stage, text.done, text.total, str(text))
        return cls("log", message=str(text))

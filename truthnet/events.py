"""Progress events: what long work (scan, train, evaluate, calibrate) reports as it goes.

Library code reports progress as :class:`Event` objects through a ``progress(event)`` callback,
end to end: the API, the job queue and the TUI read the stage and counts, never the wording.
``str(event)`` is its message, so a ``print`` still works as a callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def __str__(self) -> str:
        return self.message

    @classmethod
    def log(cls, message: str) -> Event:
        """A message without counts."""
        return cls("log", message=message)

    @classmethod
    def of(cls, item: Event | str) -> Event:
        """``item`` as an event (a plain string from a third-party callback: a log message)."""
        return item if isinstance(item, Event) else cls.log(str(item))

"""Messages that worker threads post to the app (thread-safe: Textual queues them)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class DevicesFound(Message):
    devices: list[str]

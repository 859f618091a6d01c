"""Messages that the app's background threads post to it (thread-safe: Textual queues them)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class DevicesFound(Message):
    devices: list[str]

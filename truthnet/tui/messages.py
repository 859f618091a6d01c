"""Messages that job workers post to the app (thread-safe: Textual queues them)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class JobProgress(Message):
    job_id: int
    fraction: float
    text: str


@dataclass
class JobLog(Message):
    job_id: int
    line: str


@dataclass
class JobFinished(Message):
    job_id: int
    state: str
    message: str


@dataclass
class DevicesFound(Message):
    devices: list[str]

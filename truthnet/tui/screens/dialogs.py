"""Modal dialogs: errors (same wording as the CLI) and queueing a job."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


class ErrorDialog(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Close"), ("enter", "dismiss", "Close")]

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__()
        self.message = message
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Label(self.title_text, id="dialog-title")
            yield Static(f"error: {self.message}", id="error-message")
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss(self) -> None:
        self.dismiss(None)


class JobDialog(ModalScreen[dict | None]):
    """Choose the model, preset and device for a scan / training / evaluation of a folder."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, kind: str, target: str, model: str | None, devices: list[str], presets: list[str]) -> None:
        super().__init__()
        self.kind, self.target, self.model = kind, target, model
        self.devices, self.presets = devices, presets

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Queue a {self.kind}", id="dialog-title")
            yield Static(f"folder: {self.target}", id="job-target")
            if self.kind != "train":
                yield Label("model")
                yield Input(value=self.model or "", placeholder="path to a .keras model", id="job-model")
            yield Label("preset" + (" (for the new model)" if self.kind == "train" else " (only for bare model files)"))
            options = [(p, p) for p in self.presets]
            default = "tiny" if self.kind == "train" else Select.NULL
            yield Select(options, value=default, allow_blank=self.kind != "train", id="job-preset")
            yield Label("device")
            yield Select([(d, d) for d in self.devices], value=self.devices[0], allow_blank=False, id="job-device")
            with Horizontal(id="dialog-buttons"):
                yield Button("Queue", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()  # Enter in the model field queues, like the Queue button

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "ok":
            self.dismiss(None)
            return
        self.submit()

    def submit(self) -> None:
        preset = self.query_one("#job-preset", Select).value
        model = self.query_one("#job-model", Input).value.strip() if self.kind != "train" else None
        self.dismiss({
            "kind": self.kind,
            "target": self.target,
            "model": model or None,
            "preset": None if preset is Select.NULL else preset,
            "device": self.query_one("#job-device", Select).value,
        })

    def action_cancel(self) -> None:
        self.dismiss(None)

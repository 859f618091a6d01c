"""Modal dialogs: errors (same wording as the CLI) and queueing a job."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


class _Submits:
    """Enter in a field and the ``ok`` button both submit; any other button dismisses."""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "ok":
            self.dismiss(None)
            return
        self.submit()


class ErrorDialog(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Close"), ("enter", "dismiss", "Close")]

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__()
        self.message = message
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Label(self.title_text, id="dialog-title")
            yield Static(f"error: {self.message}", id="error-message", markup=False)
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss(self) -> None:
        self.dismiss(None)


TITLES = {"scan": "Queue a scan", "train": "Queue training", "evaluate": "Queue an evaluation"}

#: the evaluation split choices; None: the same default as `truthnet evaluate`
SPLITS = [("default: test on the model's own dataset, all videos of another", "default"),
          ("test", "test"), ("val", "val"), ("train", "train"), ("all", "all")]


class JobDialog(_Submits, ModalScreen[dict | None]):
    """Choose the model, preset and device for a scan / training / evaluation of a folder
    (and, for an evaluation, the split)."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, kind: str, target: str, model: str | None, devices: list[str], presets: list[str],
                 models: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.kind, self.target, self.model = kind, target, model
        self.devices, self.presets = devices, presets
        # (label, path) of the models to offer: the current one, recent training outputs ...
        self.models = list(models or ([(model, model)] if model else []))

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(TITLES.get(self.kind, f"Queue {self.kind}"), id="dialog-title")
            yield Static(f"folder: {self.target}", id="job-target", markup=False)
            if self.kind != "train":
                yield Label("model")
                paths = [p for _, p in self.models]
                yield Select(self.models, value=self.model if self.model in paths else Select.NULL,
                             allow_blank=not paths, prompt="choose a model", id="job-model")
                yield Input(placeholder="or another model file (.keras / .h5): overrides the list", id="job-model-path")
            yield Label("preset" + (" (for the new model)" if self.kind == "train" else " (only for bare model files)"))
            options = [(p, p) for p in self.presets]
            default = "tiny" if self.kind == "train" else Select.NULL
            yield Select(options, value=default, allow_blank=self.kind != "train", id="job-preset")
            if self.kind == "evaluate":
                yield Label("split (training videos are always left out)")
                yield Select(SPLITS, value="default", allow_blank=False, id="job-split")
            yield Label("device")
            yield Select([(d, d) for d in self.devices], value=self.devices[0], allow_blank=False, id="job-device")
            with Horizontal(id="dialog-buttons"):
                yield Button("Queue", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#ok").focus()  # Enter queues with what the dialog shows; Tab reaches the fields

    def submit(self) -> None:
        preset = self.query_one("#job-preset", Select).value
        model = None
        if self.kind != "train":
            chosen = self.query_one("#job-model", Select).value
            model = self.query_one("#job-model-path", Input).value.strip() or (
                None if chosen is Select.NULL else str(chosen))
        options = {}
        if self.kind == "evaluate":
            split = self.query_one("#job-split", Select).value
            options["split"] = None if split == "default" else split
        self.dismiss({
            "options": options,
            "kind": self.kind,
            "target": self.target,
            "model": model or None,
            "preset": None if preset is Select.NULL else preset,
            "device": self.query_one("#job-device", Select).value,
        })

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuitDialog(ModalScreen[str | None]):
    """Quitting with jobs queued here still running or waiting: stop them, or leave them running."""

    BINDINGS = [("escape", "back", "Back")]

    def __init__(self, jobs: list[dict]) -> None:
        super().__init__()
        self.jobs = jobs

    def compose(self) -> ComposeResult:
        running = sum(j["state"] == "running" for j in self.jobs)
        waiting = len(self.jobs) - running
        ids = ", ".join(str(j["id"]) for j in self.jobs)
        with Vertical(id="dialog"):
            yield Label("Jobs are still running", id="dialog-title")
            yield Static(
                f"{running} running and {waiting} queued job(s) you started here (job {ids}).\n\n"
                "Stop them: they are cancelled (`truthnet jobs retry ID` queues one again).\n"
                "Leave them: they go on in the background; `truthnet jobs list` and the app show them.",
                id="quit-message")
            with Horizontal(id="dialog-buttons"):
                yield Button("Stop them", id="stop", variant="error")
                yield Button("Leave running", id="leave", variant="primary")
                yield Button("Back", id="back")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "back" else event.button.id)

    def action_back(self) -> None:
        self.dismiss(None)


class ExportDialog(_Submits, ModalScreen[str | None]):
    """Ask where to write a report (default: the user's reports folder, never the evidence)."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, default: str, what: str) -> None:
        super().__init__()
        self.default, self.what = default, what

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Export a report", id="dialog-title")
            yield Static(self.what, id="export-what", markup=False)
            yield Label("write to (Enter to confirm)")
            yield Input(value=self.default, id="export-path")
            yield Static("", id="export-error", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("Write", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    def submit(self) -> None:
        from ...errors import ConfigError
        from ...reports.files import check_writable

        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            self.query_one("#export-error", Static).update("error: give a file name")
            return
        try:
            check_writable(path, "report", make_parents=True)  # the reports folder may be new
        except ConfigError as exc:
            self.query_one("#export-error", Static).update(f"error: {exc}")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)

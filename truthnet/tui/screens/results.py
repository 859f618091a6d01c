"""An evaluation's results: confusion matrix, Table I, ROC curve, training curves."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ...reports.plots import table_one
from ..widgets.pictures import line_plot


def confusion_grid(cm: list[list[int]]) -> Table:
    """The 2x2 confusion matrix with counts and row rates, correct cells green, errors red."""
    t = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left", show_lines=True)
    t.add_column("")
    t.add_column("real", justify="center")
    t.add_column("fake", justify="center")
    for i, name in enumerate(("real", "fake")):
        total = max(sum(cm[i]), 1)
        cells = []
        for j in range(2):
            style = "bold white on dark_green" if i == j else "bold white on dark_red"
            cells.append(Text(f" {cm[i][j]:>4d}  {cm[i][j] / total:>4.0%} ", style=style))
        t.add_row(name, *cells)
    return t


def evaluation_title(m: dict) -> str:
    """Which split, how many videos, how many scored: an evaluation never hides them."""
    split = f"{m['split']} split" if m.get("split") else "split not recorded"
    size = m.get("split_videos", m["n"])
    return f"Evaluation: {split}, {size} videos ({m['n']} scored), threshold {m['threshold']:.2f}"


class ResultsScreen(Screen):
    BINDINGS = [("escape", "app.pop_screen", "Back"), ("q", "app.pop_screen", "Back"),
                ("x", "export", "Export report")]

    def __init__(self, metrics_path: str, model_metadata: dict | None = None) -> None:
        super().__init__()
        self.metrics_path = metrics_path
        self.metrics = json.loads(Path(metrics_path).read_text())
        self.meta = model_metadata or {}

    def compose(self) -> ComposeResult:
        m = self.metrics
        yield Header()
        with VerticalScroll(id="results"):
            yield Static(Text(evaluation_title(m), style="bold"), id="results-title")
            if (m.get("selection") or {}).get("summary"):
                yield Static(Text(m["selection"]["summary"], style="dim"), id="results-selection")
            with Horizontal(id="results-top"):
                yield Static(confusion_grid(m["confusion_matrix"]), id="confusion")
                yield Static(Text(table_one(m).split("Confusion matrix")[0]), id="table-one")
            with Grid(id="plots"):
                curve = m.get("roc_curve") or {}
                if curve.get("fpr"):
                    roc = line_plot({f"ROC (AUC {m['roc_auc']:.3f})": (curve["fpr"], curve["tpr"])}, diagonal=True)
                    yield Static(Text.assemble(Text("ROC curve (x: false positive rate, y: true positive rate)\n",
                                                    style="bold"), roc), id="roc")
                hist = self.meta.get("history") or {}
                if hist.get("loss"):
                    n = len(hist["loss"])
                    xs = list(range(1, n + 1))
                    series = {k: (xs, hist[k]) for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in hist}
                    top = max(max(v) for _, v in series.values())
                    curves = line_plot(series, xlim=(1, max(n, 2)), ylim=(0, max(top, 1.0)))
                    yield Static(Text.assemble(Text("Training curves of the model\n", style="bold"), curves),
                                 id="training-curves")
            if m.get("failed"):
                yield Static(f"{len(m['failed'])} video(s) could not be scored and are left out of these numbers.")
            where = Path(self.metrics_path)
            yield Static(Text(f"metrics: {where.parent.name}/{where.name}  (x: export report.md beside it)", style="dim"))
        yield Footer()

    def action_export(self) -> None:
        """A readable report beside metrics.json: what was evaluated, with which model, Table I
        and the confusion matrix, and the videos left out (metrics.json already holds the numbers)."""
        from ...reports.files import write_atomically

        m = self.metrics
        model = m.get("model") or {}
        lines = [f"# {evaluation_title(m)}", ""]
        if (m.get("selection") or {}).get("summary"):
            lines += [m["selection"]["summary"], ""]
        lines += [f"- model: {model.get('path') or '-'}", f"- model SHA-256: {model.get('sha256') or '-'}",
                  f"- metrics: {self.metrics_path}", "", "```", table_one(m).rstrip(), "```", ""]
        if m.get("failed"):
            lines += [f"## Not scored ({len(m['failed'])})", ""] + [f"- {p}: {s}" for p, s in sorted(m["failed"].items())]
        out = write_atomically(Path(self.metrics_path).with_name("report.md"), lambda fh: fh.write("\n".join(lines) + "\n"))
        self.notify(f"exported {out}", markup=False)

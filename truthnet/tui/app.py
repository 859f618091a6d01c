"""``truthnet-tui``: browse folders, queue scans/training/evaluation, read verdicts."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Label, Log, ProgressBar, Static

from ..errors import TruthnetError
from ..store import ResultRow, Store
from ..video import is_video_path
from .messages import DevicesFound, JobFinished, JobLog, JobProgress
from .widgets.model_card import ModelCardBanner, card_warnings
from .widgets.video_tree import VideoTree

FILTERS = ("all", "fake", "real", "failed", "not scanned")
COLUMNS = ("name", "verdict", "score", "status", "scanned")


class TruthnetApp(App):
    """The triage app.  Everything slow (TensorFlow, scans, training) runs in worker threads."""

    CSS_PATH = "app.tcss"
    TITLE = "TruthNet"
    BINDINGS = [
        Binding("b", "browse", "Folders"),
        Binding("s", "queue('scan')", "Scan folder"),
        Binding("t", "queue('train')", "Train"),
        Binding("e", "queue('evaluate')", "Evaluate"),
        Binding("enter", "details", "Details", show=False),
        Binding("d", "details", "Details"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("slash", "search", "Search"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("v", "view_job", "View result"),
        Binding("x", "export", "Export"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, root: str | os.PathLike = ".", *, model: str | None = None, db: str | None = None,
                 start_jobs: bool = True) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        self.store = Store(db)
        from ..settings import default_model

        self.model = model or default_model()
        self.folder = self.root
        self.filter = "all"
        self.search = ""
        self.sort_col = 0
        self.sort_reverse = False
        self.devices = ["cpu"]
        self.cancel_events: dict[int, threading.Event] = {}
        self.busy_devices: set[str] = set()
        self.start_jobs = start_jobs
        self.selected_job: int | None = None
        self._rows: list[tuple[str, ResultRow | None]] = []
        self._cards: dict[str, object] = {}  # model path -> ModelCard (or the error reading it)

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield VideoTree(self.root, id="tree")
            with Vertical(id="right"):
                yield Label("", id="folder-label")
                yield Input(placeholder="search by name (press / ), Esc to leave", id="search")
                yield ModelCardBanner("", id="model-card")
                yield DataTable(id="videos", cursor_type="row", zebra_stripes=True)
                yield Label("Jobs", id="jobs-label")
                yield DataTable(id="jobs", cursor_type="row")
                yield ProgressBar(total=1.0, show_eta=False, id="job-progress")
                yield Static("", id="job-status")
                yield Log(id="job-log", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"model: {self.model or 'none (run truthnet demo)'}"
        table = self.query_one("#videos", DataTable)
        for c in COLUMNS:
            table.add_column(c, key=c)
        jobs = self.query_one("#jobs", DataTable)
        for c in ("id", "kind", "folder", "device", "state", "progress", "message"):
            jobs.add_column(c, key=c)
        abandoned = self.store.mark_abandoned_jobs()
        if abandoned:
            self.notify(f"{abandoned} job(s) were running when the app last closed: marked interrupted")
        self.refresh_videos()
        self.refresh_jobs()
        self.find_devices()
        if self.start_jobs:
            self.kick_jobs()
        table.focus()

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("Scan folder", "Queue a scan of the selected folder", lambda: self.action_queue("scan"))
        yield SystemCommand("Train on folder", "Queue training on the selected folder", lambda: self.action_queue("train"))
        yield SystemCommand("Evaluate folder", "Queue an evaluation of the selected folder",
                            lambda: self.action_queue("evaluate"))
        for f in FILTERS:
            yield SystemCommand(f"Show {f}", f"Filter the video table: {f}", lambda f=f: self.set_filter(f))
        yield SystemCommand("Export folder report", "Write the folder's verdicts as HTML", self.action_export)

    # -- videos table ---------------------------------------------------------------------
    def folder_videos(self) -> list[str]:
        try:
            return sorted(str(p) for p in self.folder.iterdir() if p.is_file() and is_video_path(p.name))
        except OSError:
            return []

    def refresh_videos(self) -> None:
        paths = self.folder_videos()
        latest = self.store.latest_for_paths(paths)
        rows = [(p, latest.get(p)) for p in paths]
        if self.search:
            rows = [(p, r) for p, r in rows if self.search.lower() in Path(p).name.lower()]
        if self.filter == "fake":
            rows = [(p, r) for p, r in rows if r and r.label == "fake"]
        elif self.filter == "real":
            rows = [(p, r) for p, r in rows if r and r.label == "real"]
        elif self.filter == "failed":
            rows = [(p, r) for p, r in rows if r and r.status != "ok"]
        elif self.filter == "not scanned":
            rows = [(p, r) for p, r in rows if r is None]

        def key(item):
            p, r = item
            col = COLUMNS[self.sort_col]
            if col == "name":
                return (0, Path(p).name.lower())
            if r is None:
                return (1, "")
            v = {"verdict": r.label or "", "score": r.score if r.score is not None else -1.0,
                 "status": r.status, "scanned": r.scanned_at or 0.0}[col]
            return (0, v)

        rows.sort(key=key, reverse=self.sort_reverse)
        self._rows = rows
        table = self.query_one("#videos", DataTable)
        table.clear()
        for p, r in rows:
            if r is None:
                cells = (Path(p).name, Text("-", style="dim"), "", Text("not scanned", style="dim"), "")
            else:
                verdict = Text(r.label or "-", style="bold red" if r.label == "fake" else "bold green" if r.label else "")
                status = Text(r.status, style="" if r.status == "ok" else "yellow")
                cells = (Path(p).name, verdict, "" if r.score is None else f"{r.score:.3f}", status,
                         time.strftime("%Y-%m-%d %H:%M", time.localtime(r.scanned_at)) if r.scanned_at else "")
            table.add_row(*cells, key=p)
        arrow = "▼" if self.sort_reverse else "▲"
        n_all = len(self.folder_videos())
        shown = self.shown(self.folder)
        self.query_one("#folder-label", Label).update(
            f"{shown}  —  {len(rows)} of {n_all} videos  —  filter: {self.filter}"
            + (f"  —  search: {self.search!r}" if self.search else "")
            + f"  —  sort: {COLUMNS[self.sort_col]} {arrow}"
        )
        self.update_card()

    def card_warnings(self) -> tuple[str, list[str]]:
        """The current model's card line and the warnings behind the verdicts shown."""
        return card_warnings(self.model, self._cards, self.store, [r for _, r in self._rows if r is not None])

    def update_card(self) -> None:
        self.query_one("#model-card", ModelCardBanner).show(*self.card_warnings())

    def shown(self, path: Path) -> str:
        """A path as the user thinks of it: relative to the folder the app was opened on."""
        try:
            return str(path.relative_to(self.root.parent))
        except ValueError:
            return str(path)

    @on(VideoTree.DirectorySelected)
    def _dir_selected(self, event: VideoTree.DirectorySelected) -> None:
        self.folder = Path(event.path)
        self.refresh_videos()

    @on(VideoTree.NodeHighlighted)
    def _node_highlighted(self, event: VideoTree.NodeHighlighted) -> None:
        """Moving the tree cursor onto a folder shows its videos at once."""
        data = event.node.data
        if data is not None and Path(data.path).is_dir() and Path(data.path) != self.folder:
            self.folder = Path(data.path)
            self.refresh_videos()

    def action_browse(self) -> None:
        self.query_one("#tree", VideoTree).focus()

    @on(VideoTree.FileSelected)
    def _file_selected(self, event: VideoTree.FileSelected) -> None:
        self.folder = Path(event.path).parent
        self.refresh_videos()
        self.show_details(str(event.path))

    @on(DataTable.RowSelected, "#videos")
    def _video_selected(self, event: DataTable.RowSelected) -> None:
        self.show_details(str(event.row_key.value))

    @on(DataTable.HeaderSelected, "#videos")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        idx = COLUMNS.index(str(event.column_key.value))
        self.sort_reverse = not self.sort_reverse if idx == self.sort_col else False
        self.sort_col = idx
        self.refresh_videos()

    def set_filter(self, f: str) -> None:
        self.filter = f
        self.refresh_videos()

    def action_cycle_filter(self) -> None:
        self.set_filter(FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)])

    def action_cycle_sort(self) -> None:
        """name ▲, name ▼, verdict ▲, verdict ▼, ... (a header click sorts by that column)."""
        if self.sort_reverse:
            self.sort_col = (self.sort_col + 1) % len(COLUMNS)
        self.sort_reverse = not self.sort_reverse
        self.refresh_videos()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    @on(Input.Changed, "#search")
    def _search(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        self.refresh_videos()

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#videos", DataTable).focus()

    def action_refresh(self) -> None:
        self.refresh_videos()
        self.refresh_jobs()

    def action_details(self) -> None:
        table = self.query_one("#videos", DataTable)
        if table.row_count:
            self.show_details(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def show_details(self, path: str) -> None:
        from .screens.details import DetailsScreen

        row = self.store.latest_for_paths([path]).get(path)
        self.push_screen(DetailsScreen(path, row, self.store.thumbs(path), self.shown(Path(path))))

    def action_export(self) -> None:
        from ..htmlreport import write_html

        rows = [r for _, r in self._rows if r is not None]
        if not rows:
            self.error("nothing to export: no scanned videos in this view")
            return
        thumbs = {r.path: self.store.thumbs(r.path) for r in rows}
        for r in rows:
            r.thumbs = thumbs[r.path]
        out = self.folder / "truthnet-report.html"
        try:
            line, warnings = self.card_warnings()
            write_html(rows, out, title=f"TruthNet: {self.folder}", card={"summary": line, "warnings": warnings})
        except OSError as exc:
            self.error(f"cannot write {out}: {exc.strerror or exc}")
            return
        self.notify(f"report written to {out}")

    def error(self, message: str) -> None:
        from .screens.dialogs import ErrorDialog

        self.push_screen(ErrorDialog(message))

    # -- jobs -----------------------------------------------------------------------------
    def refresh_jobs(self) -> None:
        table = self.query_one("#jobs", DataTable)
        keep = table.cursor_row
        table.clear()
        for j in self.store.jobs()[-50:]:
            style = {"done": "green", "failed": "red", "running": "bold cyan", "cancelled": "yellow",
                     "interrupted": "yellow"}.get(j["state"], "")
            table.add_row(str(j["id"]), j["kind"], Path(j["target"]).name, j["device"], Text(j["state"], style=style),
                          f"{j['progress']:.0%}", j["message"][:60], key=str(j["id"]))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def action_queue(self, kind: str) -> None:
        from ..config import list_presets
        from .screens.dialogs import JobDialog

        if kind != "train" and not self.model:
            from ..resolve import NO_MODEL_HELP

            self.error(NO_MODEL_HELP)
            return
        target = str(self.folder)

        def queued(choice: dict | None) -> None:
            if not choice:
                return
            jid = self.store.add_job(choice["kind"], choice["target"], model=choice["model"], preset=choice["preset"],
                                     device=choice["device"])
            self.notify(f"job {jid} queued: {kind} {Path(target).name} on {choice['device']}")
            self.refresh_jobs()
            if self.start_jobs:
                self.kick_jobs()

        self.push_screen(JobDialog(kind, target, self.model, self.devices, list_presets()), queued)

    def kick_jobs(self) -> None:
        """Start a runner for each device that has queued jobs and none running."""
        for j in self.store.jobs(("queued",)):
            if j["device"] not in self.busy_devices:
                self.busy_devices.add(j["device"])
                self.run_device_queue(j["device"])

    @work(thread=True, exit_on_error=False, group="jobs")
    def run_device_queue(self, device: str) -> None:
        """One job at a time on ``device``, in queue order, until its queue is empty."""
        from ..jobs import run_job

        store = Store(self.store.path)  # SQLite connections are per thread
        try:
            while True:
                job = store.next_job(device)
                if job is None:
                    return
                jid = job["id"]
                cancel = threading.Event()
                self.cancel_events[jid] = cancel
                self.post_message(JobProgress(jid, 0.0, "started"))
                last = [0.0]

                def report(fraction: float, text: str, jid=jid) -> None:
                    now = time.monotonic()
                    if now - last[0] > 0.2 or fraction >= 1.0:  # keep the UI calm on fast jobs
                        last[0] = now
                        store.update_job(jid, progress=float(fraction), message=text[:200])
                        self.post_message(JobProgress(jid, fraction, text))

                done = run_job(store, job, cancel=cancel, report=report,
                               log=lambda line, jid=jid: self.post_message(JobLog(jid, line)))
                self.cancel_events.pop(jid, None)
                self.post_message(JobFinished(jid, done["state"], done["message"]))
        finally:
            self.busy_devices.discard(device)
            store.close()

    def on_job_progress(self, msg: JobProgress) -> None:
        self.query_one("#job-progress", ProgressBar).update(progress=msg.fraction)
        self.query_one("#job-status", Static).update(f"job {msg.job_id}: {msg.text}")
        self.refresh_jobs()

    def on_job_log(self, msg: JobLog) -> None:
        self.query_one("#job-log", Log).write_line(f"[{msg.job_id}] {msg.line}")

    def on_job_finished(self, msg: JobFinished) -> None:
        severity = "information" if msg.state == "done" else "warning" if msg.state == "cancelled" else "error"
        self.notify(f"job {msg.job_id} {msg.state}: {msg.message}", severity=severity)
        self.query_one("#job-status", Static).update(f"job {msg.job_id} {msg.state}: {msg.message}")
        if msg.state == "failed":
            self.error(msg.message)
        job = self.store.job(msg.job_id)
        if job and job["kind"] == "train" and msg.state == "done" and not self.model:
            self.model = job["result"]["model"]  # for this session only; its card shows above the table
            self.sub_title = f"model: {self.model}"
        self.refresh_jobs()
        self.refresh_videos()

    def selected_job_id(self) -> int | None:
        table = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        return int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_cancel_job(self) -> None:
        jid = self.selected_job_id()
        running = [j for j in self.store.jobs(("running",))]
        if jid is None or jid not in {j["id"] for j in self.store.jobs(("running", "queued"))}:
            jid = running[0]["id"] if running else None
        if jid is None:
            self.notify("no running or queued job to cancel", severity="warning")
            return
        job = self.store.job(jid)
        if job["state"] == "queued":
            self.store.update_job(jid, state="cancelled", message="cancelled before it started", finished=time.time())
            self.notify(f"job {jid} cancelled")
        else:
            ev = self.cancel_events.get(jid)
            if ev:
                ev.set()
                self.notify(f"cancelling job {jid}…")
        self.refresh_jobs()

    def action_view_job(self) -> None:
        jid = self.selected_job_id()
        job = self.store.job(jid) if jid else None
        if not job or job["state"] != "done":
            self.notify("select a finished job in the jobs table", severity="warning")
            return
        res = job["result"] or {}
        if job["kind"] == "evaluate":
            from ..model import read_metadata
            from .screens.results import ResultsScreen

            meta = None
            try:
                meta = read_metadata(res["model"])[0]
            except TruthnetError:
                pass
            self.push_screen(ResultsScreen(res["metrics"], meta))
        elif job["kind"] == "scan":
            self.folder = Path(job["target"])
            self.refresh_videos()
        else:
            self.notify(f"model: {res.get('model')}")

    @on(DataTable.RowHighlighted, "#jobs")
    def _job_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        jid = int(event.row_key.value)
        if jid == self.selected_job:
            return
        self.selected_job = jid
        job = self.store.job(jid)
        log = self.query_one("#job-log", Log)
        log.clear()
        if job:
            log.write_lines(job["log"].splitlines()[-200:])

    # -- devices --------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="devices")
    def find_devices(self) -> None:
        """List the GPUs TensorFlow can see (imports TensorFlow: in a thread, after start-up)."""
        try:
            from .._lazy import import_tensorflow

            tf = import_tensorflow()
            gpus = [f"gpu:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]
        except Exception:
            gpus = []
        self.post_message(DevicesFound(["cpu", *gpus]))

    def on_devices_found(self, msg: DevicesFound) -> None:
        self.devices = msg.devices


def make_app(root: str | os.PathLike = ".", **kw) -> TruthnetApp:
    """The app, for tests and embedding (``start_jobs=False`` keeps queued jobs waiting)."""
    return TruthnetApp(root, **kw)

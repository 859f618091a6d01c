"""``truthnet-tui``: browse folders, queue scans/training/evaluation, read verdicts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Label, Log, ProgressBar, Static

from ..errors import TruthnetError
from ..paths import one_line
from ..store import Result, Store
from ..video import is_video_path
from .jobs_view import _ACTIVE, JobsView
from .messages import DevicesFound
from .widgets.model_card import ModelCardBanner, card_warnings
from .widgets.search import SearchBox
from .widgets.video_tree import VideoTree, videos_below

FILTERS = ("all", "fake", "real", "failed", "not scanned")
COLUMNS = ("name", "verdict", "score", "status", "scanned", "model")


class TruthnetApp(JobsView, App):
    """The triage app.  Everything slow (scans, training, evaluation) runs as a queued job in a
    process of its own (:mod:`truthnet.jobs`); the app itself only asks for the GPU list, in a
    background thread, so the screen never waits on TensorFlow."""

    CSS_PATH = "app.tcss"
    TITLE = "TruthNet"
    # The footer shows the keys a first look needs and fits 120 columns; `?` lists every key
    BINDINGS = [
        Binding("b", "browse", "Folders"),
        Binding("l", "focus_videos", "Videos"),
        Binding("j", "focus_jobs", "Jobs"),
        Binding("s", "queue('scan')", "Scan"),
        Binding("t", "queue('train')", "Train a model", show=False),
        Binding("e", "queue('evaluate')", "Evaluate a model", show=False),
        Binding("enter", "details", "Details", show=False),
        Binding("d", "details", "Details"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("slash", "search", "Search"),
        Binding("o", "cycle_sort", "Sort by the next column", show=False),
        Binding("a", "toggle_below", "List every video below the folder", show=False),
        Binding("c", "cancel_job", "Cancel the selected or running job", show=False),
        Binding("v", "view_job", "View a finished job's result", show=False),
        Binding("x", "export", "Export"),
        Binding("w", "toggle_watch", "Watch the folder (again: stop)", show=False),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("question_mark", "toggle_keys", "Keys"),
        Binding("escape", "hide_keys", "Close the keys panel", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, root: str | os.PathLike = ".", *, model: str | None = None, db: str | None = None,
                 start_jobs: bool = True) -> None:
        super().__init__()
        from ..paths import norm

        self.root = Path(norm(root))  # as scans store paths: absolute, normalised, links kept
        self.store = Store(db)
        from ..settings import default_model

        self.model = model or default_model()
        self.folder = self.root
        self.filter = "all"
        self.search = ""
        self.sort_col = 0
        self.sort_reverse = False
        self.devices = ["cpu"]
        self.below = False  # the table lists every video under the folder, not only its own
        self.init_jobs(start_jobs)
        self._rows: list[tuple[str, Result | None]] = []
        self._cards: dict[str, object] = {}  # model path -> ModelCard (or the error reading it)
        self._scan_models: dict[int | None, str] = {}  # scan id -> its model's file name
        self._model_sha: tuple = (None, None)  # ((path, mtime, size), SHA-256) of the selected model

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield VideoTree(self.root, id="tree")
            with Vertical(id="right"):
                yield Label("", id="folder-label")
                yield SearchBox(placeholder="search by name (press / ), Esc to leave", id="search")
                yield ModelCardBanner("", id="model-card")
                yield DataTable(id="videos", cursor_type="row", zebra_stripes=True)
                yield Label("Jobs", id="jobs-label")
                yield DataTable(id="jobs", cursor_type="row")
                yield ProgressBar(total=1.0, show_eta=False, id="job-progress")
                yield Static("", id="job-status")
                yield Log(id="job-log", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = one_line(f"model: {self.model or 'none (run truthnet demo)'}")
        table = self.query_one("#videos", DataTable)
        for c in COLUMNS:
            table.add_column(c, key=c)
        self.refresh_videos()
        self.setup_jobs()
        self.find_devices()
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
        if self.below:
            return videos_below(self.folder)
        try:
            return sorted(str(p) for p in self.folder.iterdir() if p.is_file() and is_video_path(p.name))
        except OSError:
            return []

    def video_name(self, path: str) -> Text:
        """The name shown in the table: relative to the folder when listing everything below it;
        text, never markup, one line whatever bytes it holds."""
        return Text(one_line(os.path.relpath(path, self.folder) if self.below else Path(path).name))

    def action_toggle_below(self) -> None:
        self.below = not self.below
        self.refresh_videos()

    def refresh_videos(self) -> None:
        paths = self.folder_videos()
        latest = self.store.latest_for_paths(paths, model_sha256=self.model_sha256())
        rows = [(p, latest.get(p)) for p in paths]
        if self.search:
            rows = [(p, r) for p, r in rows if self.search.lower() in self.video_name(p).plain.lower()]
        if self.filter == "fake":
            rows = [(p, r) for p, r in rows if r and r.label == "fake"]
        elif self.filter == "real":
            rows = [(p, r) for p, r in rows if r and r.label == "real"]
        elif self.filter == "failed":
            rows = [(p, r) for p, r in rows if r and r.status != "ok"]
        elif self.filter == "not scanned":
            rows = [(p, r) for p, r in rows if r is None]

        col = COLUMNS[self.sort_col]

        def value(item):
            p, r = item
            if col == "name":
                return Path(p).name.lower()
            if r is None:
                return None
            return {"verdict": r.label, "score": r.score, "status": r.status, "scanned": r.scanned_at,
                    "model": self.verdict_model(r)}[col]

        # rows without a value (not scanned, not scored) stay last in both directions
        known = sorted((x for x in rows if value(x) is not None), key=value, reverse=self.sort_reverse)
        rows = known + sorted((x for x in rows if value(x) is None), key=lambda x: Path(x[0]).name.lower())
        self._rows = rows
        table = self.query_one("#videos", DataTable)
        table.clear()
        for p, r in rows:
            if r is None:
                cells = (self.video_name(p), Text("-", style="dim"), "", Text("not scanned", style="dim"), "", "")
            else:
                verdict = Text(r.label or "-", style="bold red" if r.label == "fake" else "bold green" if r.label else "")
                status = Text(r.status, style="" if r.status == "ok" else "yellow")
                cells = (self.video_name(p), verdict, "" if r.score is None else f"{r.score:.3f}", status,
                         time.strftime("%Y-%m-%d %H:%M", time.localtime(r.scanned_at)) if r.scanned_at else "",
                         Text(one_line(self.verdict_model(r)), style="dim"))
            table.add_row(*cells, key=p)
        arrow = "▼" if self.sort_reverse else "▲"
        shown = self.shown(self.folder)
        hidden = 0 if self.below else self.query_one("#tree", VideoTree).count(self.folder) - len(paths)
        self.query_one("#folder-label", Label).update(Text(
            f"{one_line(shown)}  —  {len(rows)} of {len(paths)} videos" + (" (all below)" if self.below else "")
            + (f" (+{hidden} in sub-folders: a lists them)" if hidden > 0 else "")
            + f"  —  filter: {self.filter}"
            + (f"  —  search: {self.search!r}" if self.search else "")
            + f"  —  sort: {COLUMNS[self.sort_col]} {arrow}"
        ))
        self.update_card()

    def action_toggle_keys(self) -> None:
        """``?``: every key of this screen, with what it does (the footer shows only the main ones)."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_hide_keys(self) -> None:
        self.action_hide_help_panel()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Save a screenshot (Ctrl+P, Screenshot) in the reports folder, created if need be, and say
        where; Textual's default folder may not exist ("Failed to save screenshot")."""
        from ..reports.files import reports_dir

        folder = Path(path) if path else reports_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(folder), time_format)
        except OSError as exc:
            self.notify(one_line(f"cannot save the screenshot in {folder}: {exc.strerror or exc}"), severity="error",
                        markup=False)
            return None
        self.notify(one_line(f"screenshot saved: {saved}"), markup=False)
        return saved

    def verdict_model(self, r: Result) -> str:
        """The file name of the model that gave ``r`` (from its scan; scans are looked up once)."""
        if r.scan_id not in self._scan_models:
            scan = self.store.scan(r.scan_id) if r.scan_id else None
            self._scan_models[r.scan_id] = Path(scan["model"]).name if scan and scan.get("model") else "-"
        return self._scan_models[r.scan_id]

    def model_sha256(self) -> str | None:
        """The SHA-256 of the selected model file (the table shows only its verdicts), read again
        when the file changes; ``None`` without a model (every verdict, each scan's own card)."""
        if not self.model:
            return None
        from ..filecheck import file_sha256

        try:
            st = os.stat(self.model)
            key = (self.model, st.st_mtime_ns, st.st_size)
            if self._model_sha[0] != key:
                self._model_sha = (key, file_sha256(self.model))
            return self._model_sha[1]
        except (OSError, TruthnetError):
            return "unreadable model file"  # matches no scan: nothing is shown under its name

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

    def action_focus_videos(self) -> None:
        self.query_one("#videos", DataTable).focus()

    def action_focus_jobs(self) -> None:
        self.query_one("#jobs", DataTable).focus()

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
        box = self.query_one("#search", SearchBox)
        box.can_focus = True  # only `/` lets typing land in the search box (Tab skips it)
        box.focus()

    @on(Input.Changed, "#search")
    def _search(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        self.refresh_videos()

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#videos", DataTable).focus()

    @on(SearchBox.Left)
    def _search_left(self) -> None:
        self.query_one("#search", SearchBox).can_focus = False

    def action_refresh(self) -> None:
        self.refresh_videos()
        self.refresh_jobs()

    def action_details(self) -> None:
        table = self.query_one("#videos", DataTable)
        if table.row_count:
            self.show_details(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def show_details(self, path: str) -> None:
        from .screens.details import DetailsScreen

        row = self.store.latest_for_paths([path], model_sha256=self.model_sha256()).get(path)
        thumbs = self.store.thumbs(path, scan_id=row.scan_id) if row is not None else None
        scan = self.store.scan(row.scan_id) if row is not None and row.scan_id else None
        self.push_screen(DetailsScreen(path, row, thumbs, self.shown(Path(path)), scan=scan))

    def action_export(self) -> None:
        """Write the view's verdicts as HTML where the user says (default: the reports folder):
        never into the scanned folder unless the user types a path there."""
        from ..reports.files import default_report_path
        from .screens.dialogs import ExportDialog

        rows = [r for _, r in self._rows if r is not None]
        if not rows:
            self.error("nothing to export: no scanned videos in this view")
            return
        what = f"{len(rows)} scanned videos of {self.shown(self.folder)} (filter: {self.filter})"
        self.push_screen(ExportDialog(str(default_report_path(self.folder)), what),
                         lambda out: out and self.write_report(rows, out))

    def write_report(self, rows: list[Result], out: str) -> None:
        from ..reports.html import write_html

        for r in rows:
            r.thumbs = self.store.thumbs(r.path, scan_id=r.scan_id)  # this very result's faces
        scans = sorted({r.scan_id for r in rows if r.scan_id})
        scan = self.store.scan(scans[0]) if len(scans) == 1 else None
        title = f"TruthNet: {self.shown(self.folder)}" + (f" (results of scans {', '.join(f'#{i}' for i in scans)})"
                                                          if len(scans) > 1 else "")
        try:
            card = self.report_card(scans)
            path = write_html(rows, out, title=title, scan=scan, roots=[str(self.root)], card=card, store=self.store)
        except OSError as exc:
            self.error(f"cannot write {out}: {exc.strerror or exc}")
            return
        self.notify(one_line(f"report written to {path}"), timeout=8, markup=False)

    def report_card(self, scans: list[int]) -> dict | None:
        """The model card of the scans whose verdicts are exported: each verdict is the model's
        of its own scan, never the model the app holds now.  Several scans with different cards
        give one line per scan and every warning, each saying which scan it is about."""
        cards = {i: (self.store.scan(i) or {}).get("model_card") for i in scans}
        distinct = {json.dumps(c, sort_keys=True) for c in cards.values()}
        if len(distinct) <= 1:
            return next(iter(cards.values()), None)
        summary = "; ".join(f"scan #{i}: {(c or {}).get('summary') or 'no model card stored'}"
                            for i, c in cards.items())
        warnings = [f"scan #{i}: {w}" for i, c in cards.items() for w in (c or {}).get("warnings") or []]
        return {"summary": f"verdicts of {len(cards)} scans by different models ({summary})", "warnings": warnings}

    def error(self, message: str) -> None:
        from .screens.dialogs import ErrorDialog

        self.push_screen(ErrorDialog(message))

    # -- jobs (the panel itself: jobs_view.py) ---------------------------------------------
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
            try:  # the queue checks target and model now, not when the job starts
                jid = self.queue_job(choice["kind"], choice["target"], model=choice["model"],
                                     preset=choice["preset"], device=choice["device"], options=choice.get("options"))
            except TruthnetError as exc:
                self.error(str(exc))
                return
            self.notify(one_line(f"job {jid} queued: {kind} {Path(target).name} on {choice['device']}"), markup=False)

        from ..settings import default_model

        models = self.queue.known_models(self.model, default_model())
        self.push_screen(JobDialog(kind, target, self.model, self.devices, list_presets(), models), queued)

    def action_toggle_watch(self) -> None:
        """Watch the shown folder (and below) as a job: each complete new or changed video is
        scored once and shows here as it comes; ``w`` again stops that watcher."""
        from ..paths import norm

        target = norm(self.folder)
        mine = [j for j in self.queue.jobs(_ACTIVE) if j["kind"] == "watch" and j["target"] == target]
        if mine:
            for j in mine:
                try:
                    self.queue.cancel(j["id"])
                except TruthnetError:
                    pass  # it ended meanwhile
            self.notify(one_line(f"stopped watching {self.shown(self.folder)}"), markup=False)
            self.poll_jobs()
            return
        if not self.model:
            from ..resolve import NO_MODEL_HELP

            self.error(NO_MODEL_HELP)
            return
        try:
            jid = self.queue_job("watch", target, model=self.model)
        except TruthnetError as exc:
            self.error(str(exc))
            return
        self.notify(one_line(f"job {jid}: watching {self.shown(self.folder)}; w again stops it"), markup=False)

    async def action_quit(self) -> None:
        """Quit; jobs queued here that still run or wait: ask whether to stop them or leave them."""
        mine = self.pending_mine()
        if not mine:
            self.exit()
            return
        from .screens.dialogs import QuitDialog

        def chosen(choice: str | None) -> None:
            if choice == "stop":
                self.stop_mine()
                self.exit()
            elif choice == "leave":
                self.exit()

        self.push_screen(QuitDialog(mine), chosen)

    @on(DataTable.RowHighlighted, "#jobs")
    def _job_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        if not event.data_table.has_focus:
            return  # a refresh of the table moved its cursor, not the user: the log follows the running job
        jid = int(event.row_key.value)
        if jid != self.selected_job:
            self.show_job_log(jid)

    # -- devices --------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="devices")
    def find_devices(self) -> None:
        """List the GPUs TensorFlow sees, asked in a child process (cached): the app never loads
        TensorFlow itself."""
        from ..jobs import discover_devices

        try:
            devices = discover_devices()
        except TruthnetError as exc:
            self.call_from_thread(self.notify, f"{exc}; offering cpu only", severity="warning")
            devices = ["cpu"]
        self.post_message(DevicesFound(devices))

    def on_devices_found(self, msg: DevicesFound) -> None:
        self.devices = msg.devices


def make_app(root: str | os.PathLike = ".", **kw) -> TruthnetApp:
    """The app, for tests and embedding (``start_jobs=False`` keeps queued jobs waiting)."""
    return TruthnetApp(root, **kw)

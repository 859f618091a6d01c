"""One video: verdict, status, the face crops the model looked at, faces per frame, windows, and
its explanation (``e`` queues one; it shows here once the job has kept it in the store)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Sparkline, Static

from ...paths import one_line
from ...store import Result
from ..widgets.pictures import half_block, split_strip


class DetailsScreen(Screen):
    BINDINGS = [("escape", "app.pop_screen", "Back"), ("q", "app.pop_screen", "Back"),
                ("e", "explain", "Explain this verdict")]

    def __init__(self, path: str, row: Result | None, thumbs: bytes | None, shown_path: str | None = None,
                 *, scan: dict | None = None) -> None:
        super().__init__()
        self.path, self.row, self.thumbs = path, row, thumbs
        self.shown_path = shown_path or path
        self.scan = scan or {}  # the scan that made ``row``: its model file and the model's SHA-256
        self.explain_job: int | None = None  # the explain job queued from here, until its result shows
        self._timer = None  # polls that job

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="details"):
            yield Static(self._summary(), id="details-summary")
            crops = split_strip(self.thumbs) if self.thumbs else []
            if crops:
                yield Static(Text("Face crops the model looked at (sampled frames, in order)", style="bold"))
                with Horizontal(id="crops"):
                    faces = (self.row.faces_found if self.row else None) or []
                    for i, c in enumerate(crops):
                        caption = f"#{i + 1}" + (f" {faces[i]}f" if i < len(faces) else "")
                        yield Static(Text.assemble(half_block(c, 12), "\n", caption), classes="crop")
            else:
                yield Static("No face crops stored for this video (not scanned yet, or it failed).", id="no-crops")
            yield from self._explanation()
            if self.row and self.row.window_scores:
                yield Static(Text("Score per window over the video (timeline)", style="bold"))
                yield Sparkline(self.row.window_scores, id="windows")
                yield Static("  ".join(f"{s:.2f}" for s in self.row.window_scores))
        yield Footer()

    def _kept(self):
        return self.app.store.explanation_for(self.row) if self.row is not None else None

    def _explanation(self) -> ComposeResult:
        """The kept explanation of this verdict (same bytes, same model): heat map per face and
        each frame's contribution, cut from the very PNG ``truthnet explain`` wrote."""
        from ...explain.figure import heat_tiles

        kept = self._kept()
        if kept is None:
            if self.row is not None and self.row.ok:
                hint = ("explanation queued (job %d): it shows here when done" % self.explain_job if self.explain_job
                        else "Press e to explain this verdict: which frames drove the score, and where in each face.")
                yield Static(hint, id="explain-hint")
            return
        data, png = kept
        yield Static(Text("Why: heat map over each face (Grad-CAM), and each frame's part in the score", style="bold"))
        with Horizontal(id="explain"):
            for f, tile in zip(data["frames"], heat_tiles(png, len(data["frames"]))):
                c = f["contribution"] or 0.0
                caption = Text(f"{f['time'] or 0:.2f}s ", style="dim")
                caption.append(f"{c:+.4f}", style="red" if c > 0 else "green")
                yield Static(Text.assemble(half_block(tile, 12), "\n", caption), classes="crop")
        yield Static(Text(f"{data.get('heatmap_layer') or data.get('heatmap_note')}; + pushes towards fake",
                          style="dim"), id="explain-note")

    def action_explain(self) -> None:
        r = self.row
        model = self.scan.get("model")
        if r is None or not r.ok or not model:
            self.notify("nothing to explain: this video has no verdict (scan it first)", severity="warning")
            return
        if self._kept() is not None:
            self.notify("this verdict is explained already (below the face crops)")
            return
        if self.explain_job is not None:
            self.notify(f"job {self.explain_job} is explaining it already")
            return
        if (r.window_scores or []) and len(r.window_scores) > 1:
            self.notify("explanations are of one-window verdicts: scan it without --windows to explain it",
                        severity="warning")
            return
        from ...errors import TruthnetError

        try:  # the model that gave this verdict, on this file
            self.explain_job = self.app.queue_job("explain", self.path, model=model)
        except TruthnetError as exc:
            self.notify(one_line(str(exc)), severity="error", markup=False)
            return
        self.notify(f"job {self.explain_job} queued: explain {one_line(Path(self.path).name)}", markup=False)
        self.refresh(recompose=True)
        self._timer = self.set_interval(1.0, self._poll_explanation)

    def _poll_explanation(self) -> None:
        from ...errors import TruthnetError

        try:
            job = self.app.queue.get(self.explain_job) if self.explain_job is not None else None
        except TruthnetError:  # the store is busy or the job is gone: try again, or give up quietly
            job = None
        if job is None or job["state"] not in ("done", "failed", "cancelled", "interrupted"):
            return
        self.explain_job = None
        self._timer.stop()
        if job["state"] != "done":
            self.notify(one_line(f"explain job {job['id']} {job['state']}: {job['message']}"), severity="error",
                        markup=False)
        self.refresh(recompose=True)

    def _summary(self) -> Text:
        t = Text()
        t.append(one_line(Path(self.path).name) + "\n", style="bold")
        t.append(one_line(self.shown_path) + "\n\n", style="dim")
        r = self.row
        if r is None:
            t.append("Not scanned yet. Press s on its folder to queue a scan.")
            return t
        for w in ((self.scan.get("model_card") or {}).get("warnings") or []):  # the model's, as it was at the scan
            t.append(one_line(f"⚠ {w}") + "\n", style="bold yellow")
        if r.status == "ok":
            colour = "bold red" if r.label == "fake" else "bold green"
            t.append(f"{r.label.upper()}", style=colour)
            t.append(f"   score {r.score:.4f}  (threshold {r.threshold:.2f})\n")
        else:
            t.append(f"{r.status}", style="bold yellow")
            t.append(f": {one_line(r.reason or '')}\n")
        if r.faces_found is not None:
            found = sum(1 for f in r.faces_found if f)
            t.append(f"faces found in {found} of {len(r.faces_found)} sampled frames: {r.faces_found}\n")
        if r.duration:
            t.append(f"duration {r.duration:.1f} s, {r.frames_sampled} frames sampled\n")
        if r.scanned_at:
            t.append(f"scanned {time.strftime('%Y-%m-%d %H:%M', time.localtime(r.scanned_at))} (scan #{r.scan_id})\n")
        info = self.scan.get("info") or {}
        t.append(f"file SHA-256    {r.sha256 or '- (scanned before content hashes)'}\n")
        if r.frames_sha256:
            t.append(f"frames SHA-256  {r.frames_sha256}\n")
        t.append(one_line(f"model          {self.scan.get('model') or '-'}") + "\n")
        t.append(f"model SHA-256   {info.get('model_sha256') or '-'}\n")
        if r.timings:
            t.append("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in r.timings.items() if k != "reused") + "\n",
                     style="dim")
        return t

"""The app's jobs panel: the queue in the store, shown live, run by ``truthnet jobs run`` processes.

The app never runs a job itself.  It queues jobs in the store and, when no live runner serves a
queued job's device, starts ``truthnet jobs run --until-empty`` for it as a detached process.
Twice a second it reads the jobs, their progress and the selected job's new log lines from the
store, so jobs queued or run headless (``truthnet jobs``) show here as they happen.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Log, ProgressBar, Static

from ..errors import TruthnetError
from ..jobs import JobQueue, start_runner
from ..jobs.text import eta_text, progress_text
from ..paths import one_line

JOB_COLUMNS = ("id", "kind", "folder", "device", "state", "progress", "ETA", "message")
_STYLES = {"done": "green", "failed": "red", "running": "bold cyan", "cancelled": "yellow", "interrupted": "yellow"}
_ACTIVE = ("queued", "running")


class JobsView:
    """Mixed into the app (which provides ``store``, ``notify``, ``error``, ``query_one`` ...)."""

    def init_jobs(self, start_jobs: bool) -> None:
        self.queue = JobQueue(self.store)
        self.start_jobs = start_jobs
        self.my_jobs: set[int] = set()  # queued from this app: asked about when it quits
        self.my_runners: list[subprocess.Popen] = []
        self.selected_job: int | None = None
        self._job_states: dict[int, str] = {}
        self._jobs_seen: tuple = ()
        self._log_after = 0

    def _main(self, selector: str, kind):
        """A widget of the main screen, also while a dialog is on top (``query_one`` on the app
        searches only the active screen, and the poll runs whatever screen is shown)."""
        return self.screen_stack[0].query_one(selector, kind)

    def setup_jobs(self) -> None:
        table = self._main("#jobs", DataTable)
        for c in JOB_COLUMNS:
            table.add_column(c, key=c)
        recovered = self.queue.recover()  # only jobs whose runner is dead: never a live one
        if recovered:
            self.notify(f"{len(recovered)} job(s) lost their runner while they ran: marked interrupted "
                        "(select one and retry it with `truthnet jobs retry ID`)")
        self.poll_jobs()
        self.set_interval(0.5, self.poll_jobs)

    # -- reading the store ------------------------------------------------------------------
    def poll_jobs(self) -> None:
        if not self.is_running or not self.screen_stack:
            return  # the app is shutting down
        jobs = self.queue.jobs(limit=50)
        seen = tuple((j["id"], j["state"], j["progress"], j["message"], j["eta"]) for j in jobs)
        if seen != self._jobs_seen:
            self._jobs_seen = seen
            self.refresh_jobs(jobs)
            if any(j["kind"] == "watch" and j["state"] == "running" for j in jobs):
                self.refresh_videos()  # a watcher's verdicts show as they come
        for j in jobs:
            before = self._job_states.get(j["id"])
            if before in _ACTIVE and j["state"] not in _ACTIVE:
                self.job_finished(j)
            self._job_states[j["id"]] = j["state"]
        self._show_progress(jobs)
        self._follow_log()
        self.my_runners = [p for p in self.my_runners if p.poll() is None]  # reap the ones that ended
        if self.start_jobs and any(j["state"] == "queued" for j in jobs):
            self.ensure_runners()

    def refresh_jobs(self, jobs: list[dict] | None = None) -> None:
        table = self._main("#jobs", DataTable)
        keep = table.cursor_row
        table.clear()
        for j in jobs if jobs is not None else self.queue.jobs(limit=50):
            table.add_row(str(j["id"]), Text(j["kind"]), Text(one_line(Path(j["target"]).name)), Text(j["device"]),
                          Text(j["state"], style=_STYLES.get(j["state"], "")), Text(one_line(progress_text(j))),
                          eta_text(j), Text(one_line(((j["message"] or "").strip().splitlines() or [""])[0])[:60]),
                          key=str(j["id"]))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def _show_progress(self, jobs: list[dict]) -> None:
        running = [j for j in jobs if j["state"] == "running"]
        if not running:
            return
        job = next((j for j in running if j["id"] == self.selected_job), None)
        if job is None:  # the log follows the running job, unless the user is in the jobs table
            job = running[-1]
            if not self._main("#jobs", DataTable).has_focus:
                self.show_job_log(job["id"])
        bar = self._main("#job-progress", ProgressBar)
        if job["kind"] == "watch":  # a watcher has no end: the bar pulses instead of sitting at 0 %
            bar.update(total=None)
        else:
            bar.update(total=1.0, progress=job["progress"])
        eta = eta_text(job)
        self._main("#job-status", Static).update(Text(one_line(
            f"job {job['id']} ({job['device']}): {progress_text(job)}" + (f", ETA {eta}" if eta else "")
            + f" — {job['message']}")))

    def show_job_log(self, job_id: int) -> None:
        self.selected_job = job_id
        log = self._main("#job-log", Log)
        log.clear()
        lines = self.queue.log(job_id, tail=200)
        log.write_lines([one_line(ln) for _, _, ln in lines])
        self._log_after = lines[-1][0] if lines else 0

    def _follow_log(self) -> None:
        if self.selected_job is None:
            return
        lines = self.queue.log(self.selected_job, after=self._log_after, tail=500)
        if lines:
            self._main("#job-log", Log).write_lines([one_line(ln) for _, _, ln in lines])
            self._log_after = lines[-1][0]

    def job_finished(self, job: dict) -> None:
        state, message = job["state"], job["message"]
        severity = "information" if state == "done" else "warning" if state == "cancelled" else "error"
        if job["id"] == self.selected_job or self.selected_job is None:
            self._main("#job-progress", ProgressBar).update(total=1.0,
                                                            progress=1.0 if state == "done" else job["progress"])
        self.notify(one_line(f"job {job['id']} {state}: {message}"), severity=severity, markup=False)
        self._main("#job-status", Static).update(Text(one_line(f"job {job['id']} {state}: {message}")))
        if state == "failed" and job["id"] in self.my_jobs:
            self.error(message)
        if job["kind"] == "train" and state == "done" and not self.model:
            self.model = (job["result"] or {}).get("model")
            self.sub_title = one_line(f"model: {self.model}")
        self.refresh_videos()

    # -- runners ----------------------------------------------------------------------------
    def ensure_runners(self) -> None:
        """Start a runner for the devices that have queued jobs and no live runner."""
        served = {d for r in self.queue.runners() for d in r["devices"]}
        # ours count from the moment they start, before they have registered in the store
        served |= {d for p in self.my_runners if p.poll() is None for d in p.devices}
        waiting = {j["device"] for j in self.queue.jobs(("queued",))} - served
        if waiting:
            proc = start_runner(self.queue.path, sorted(waiting), owner="tui")
            proc.devices = sorted(waiting)
            self.my_runners.append(proc)

    def queue_job(self, kind: str, target: str, *, model: str | None = None, preset: str | None = None,
                  device: str = "cpu", options: dict | None = None) -> int:
        jid = self.queue.add(kind, target, model=model, preset=preset, device=device, options=options, origin="tui")
        self.my_jobs.add(jid)
        self.poll_jobs()  # shows it, and starts a runner for its device (start_jobs)
        return jid

    def pending_mine(self) -> list[dict]:
        """Jobs queued from this app that are still queued or running."""
        return [j for j in self.queue.jobs(_ACTIVE) if j["id"] in self.my_jobs]

    def stop_mine(self) -> None:
        for j in self.pending_mine():
            try:
                self.queue.cancel(j["id"])
            except TruthnetError:
                pass  # it ended meanwhile

    # -- actions ----------------------------------------------------------------------------
    def selected_job_id(self) -> int | None:
        table = self._main("#jobs", DataTable)
        if not table.row_count:
            return None
        return int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_cancel_job(self) -> None:
        jid = self.selected_job_id()
        active = self.queue.jobs(_ACTIVE)
        if jid not in {j["id"] for j in active}:
            running = [j for j in active if j["state"] == "running"]
            jid = running[0]["id"] if running else None
        if jid is None:
            self.notify("no running or queued job to cancel", severity="warning")
            return
        try:
            how = self.queue.cancel(jid)
        except TruthnetError as exc:
            self.notify(one_line(str(exc)), severity="warning", markup=False)
            return
        self.notify(f"job {jid} cancelled" if how == "cancelled" else f"stopping job {jid}…")
        self.poll_jobs()

    def action_view_job(self) -> None:
        """The job highlighted in the jobs table when that has focus, else the last finished one
        (never whichever job the cursor last sat on)."""
        if self._main("#jobs", DataTable).has_focus:
            jid = self.selected_job_id()
            job = self.queue.get(jid) if jid else None
        else:
            done = [j for j in self.queue.jobs(limit=200) if j["state"] == "done"]
            job = max(done, key=lambda j: j["finished"] or 0) if done else None
        if not job or job["state"] != "done":
            self.notify("no finished job to view (j focuses the jobs table)", severity="warning")
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
        elif job["kind"] == "scan":  # its verdicts: the folder it scanned (and below), with its model
            target = Path(job["target"])
            self.folder = target if target.is_dir() else target.parent
            self.below = target.is_dir()  # scan jobs go into sub-folders
            if res.get("model") and res["model"] != self.model:
                self.model = res["model"]
                self.sub_title = one_line(f"model: {self.model}")
            self.refresh_videos()
            self._main("#videos", DataTable).focus()
            self.notify(one_line(f"job {job['id']}: {job['message']}"), markup=False)
        elif job["kind"] == "explain":  # the explained video's details, with its explanation
            self.show_details(job["target"])
        else:
            self.notify(one_line(f"model: {res.get('model')}"), markup=False)

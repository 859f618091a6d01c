"""The runner: takes queued jobs from the store, one at a time per device, each in its own process.

One thread, one loop: heartbeat, recover the jobs of dead runners, act on cancel requests,
claim a job for each idle device, read the children's pipes (log lines and JSON events) for up
to ``poll`` seconds, write what came in (a transaction per job per pass), and reap children.
A child that dies ends its job alone; the runner goes on with the next.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..procs import python_env
from ..signals import handle
from .devices import child_env
from .queue import JobQueue

HEARTBEAT_SECONDS = 2.0

_SIGNAL_HINTS = {
    "SIGKILL": ": out of memory, or kill -9",
    "SIGABRT": ": a native library aborted, see the job's log",
    "SIGSEGV": ": a crash in native code, see the job's log",
}


@dataclass
class _Child:
    job: dict
    proc: subprocess.Popen
    events_fd: int
    open_fds: set[int]
    bufs: dict[int, bytes] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # log lines not yet written
    pending: dict = field(default_factory=dict)  # job fields not yet written
    outcome: tuple | None = None  # ("done", message, result) | ("failed", message, None)
    stopped_by: str | None = None  # the signal the child says stopped it
    stage: tuple | None = None  # (name, t0, done0): where the current stage's rate is measured from
    stop_why: str | None = None  # "cancel" | "runner"
    term_at: float | None = None
    killed: bool = False
    exited_at: float | None = None


class Runner:
    """``Runner(db, ["cpu", "gpu:0"]).run()``: serve those devices until stopped (SIGTERM,
    SIGINT, or with ``until_empty`` when nothing is queued for them and nothing runs)."""

    def __init__(self, db: str | os.PathLike | None, devices: list[str], *, until_empty: bool = False,
                 grace: float = 10.0, poll: float = 0.5, owner: str = "cli",
                 say: Callable[[str], None] | None = None) -> None:
        self.db, self.devices = db, list(dict.fromkeys(devices))
        self.until_empty, self.grace, self.poll, self.owner = until_empty, grace, poll, owner
        self.say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        #: lane -> its running child; a lane is a device, or ``device#watch<id>`` for a watcher, which
        #: runs until stopped and so never holds its device's lane (other jobs run beside it)
        self.children: dict[str, _Child] = {}
        self.sel = selectors.DefaultSelector()
        self.stop_reason: str | None = None

    def run(self) -> int:
        self.queue = JobQueue(self.db)
        self.id = self.queue.register_runner(self.devices, self.owner)
        self._install_signals()
        self.say(f"runner {self.id} (pid {os.getpid()}) serving {', '.join(self.devices)} from {self.queue.path}")
        try:
            self._loop()
        finally:
            self._shutdown()
            self.queue.unregister_runner(self.id)
        self.say(f"runner {self.id} stopped" + (f": {self.stop_reason}" if self.stop_reason else ""))
        return 0

    def stop(self, reason: str = "stopped") -> None:
        self.stop_reason = reason

    def _install_signals(self) -> None:
        def handler(signum, frame):
            self.stop(f"received {signal.Signals(signum).name}")

        sigs = [signal.SIGTERM, signal.SIGINT]
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # nohup's choice wins
            sigs.append(signal.SIGHUP)
        handle(sigs, handler)  # off the main thread nothing is installed: whoever embeds us calls stop()

    def _loop(self) -> None:
        beat = 0.0
        while self.stop_reason is None:
            if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                if not self.queue.heartbeat(self.id):
                    self.stop("this runner's lease was taken over (its heartbeat stalled)")
                    break
                beat = time.monotonic()
            for jid in self.queue.recover():
                self.say(f"job {jid}: its runner is gone; marked interrupted")
            for jid in self.queue.cancel_requests(self.id):
                self._terminate(jid, "cancel")
            for dev in self.devices:
                if dev not in self.children and self.queue.has_queued([dev]):
                    job = self.queue.claim(dev, self.id)
                    if job is not None:
                        self._start(job)
            self._pump(self.poll)
            self._escalate()
            self._reap()
            if self.until_empty and not self.children and not self.queue.has_queued(self.devices):
                break

    # -- children ---------------------------------------------------------------------------
    def _start(self, job: dict) -> None:
        r, w = os.pipe()
        env = python_env(child_env(job["device"]))  # truthnet importable however we were started
        cmd = [sys.executable, "-m", "truthnet.jobs.child", "--db", str(self.queue.path), "--job", str(job["id"]),
               "--events", str(w)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    pass_fds=(w,), env=env, start_new_session=True)
        except OSError as exc:
            os.close(r)
            os.close(w)
            self.queue.finish(job["id"], self.id, "failed", f"could not start the job's process: {exc}")
            return
        os.close(w)
        out = proc.stdout.fileno()
        child = _Child(job, proc, r, {r, out})
        for fd in (r, out):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, child)
        lane = job["device"] if job["kind"] != "watch" else f"{job['device']}#watch{job['id']}"
        self.children[lane] = child
        self.queue.update_running(job["id"], self.id, pid=proc.pid, message=f"started (pid {proc.pid})")
        self.say(f"job {job['id']}: {job['kind']} {job['target']} on {job['device']}, pid {proc.pid}")

    def _pump(self, timeout: float) -> None:
        """Read the children's pipes for up to ``timeout`` s (less when one closes), then write."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.sel.get_map():
                time.sleep(left)
                break
            closed = False
            ready = self.sel.select(left)
            ready.sort(key=lambda kv: kv[0].fd != kv[0].data.events_fd)  # events before output
            for key, _ in ready:
                closed |= self._read(key.data, key.fd)
            if closed:
                break
        self._flush()

    def _read(self, child: _Child, fd: int) -> bool:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if chunk:
            *lines, child.bufs[fd] = (child.bufs.get(fd, b"") + chunk).split(b"\n")
        else:  # end of file: a last line without a newline still counts
            rest = child.bufs.pop(fd, b"")
            lines = [rest] if rest else []
        for raw in lines:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            if fd == child.events_fd:
                self._event(child, text)
            else:
                child.lines.append(text)
        if chunk:
            return False
        self.sel.unregister(fd)
        child.open_fds.discard(fd)
        if fd == child.events_fd:
            os.close(fd)
        return True

    def _event(self, child: _Child, text: str) -> None:
        try:
            ev = json.loads(text)
            kind = ev["type"]
        except (ValueError, KeyError, TypeError):
            child.lines.append(f"(unreadable event) {text}")
            return
        now = time.time()
        if kind == "env":
            child.pending.update(pid=ev["pid"], env=ev["env"])
            env = " ".join(f"{k}={v}" for k, v in ev["env"].items())
            child.lines.append(f"pid {ev['pid']} on {ev.get('host')}, device {ev.get('device')}: {env}")
        elif kind == "progress":
            child.pending.update(message=str(ev.get("message", ""))[:500], updated=now)
            stage, done, total = ev.get("stage"), ev.get("done"), ev.get("total")
            if stage is not None and done is not None:
                if child.stage is None or child.stage[0] != stage or done < child.stage[2]:
                    child.stage = (stage, now, done)
                _, t0, d0 = child.stage
                rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
                child.pending.update(stage=stage, done=done, total=total,
                                     eta=(total - done) / rate if rate and total else None)
                if total:
                    child.pending["progress"] = min(done / total, 1.0)
        elif kind == "result":
            child.outcome = ("done", ev.get("message", "done"), ev.get("result"))
        elif kind == "error":
            child.outcome = ("failed", ev.get("message", "failed"), None)
        elif kind == "stopped":
            child.stopped_by = ev.get("signal")

    def _flush(self) -> None:
        for child in self.children.values():
            jid = child.job["id"]
            if child.lines:
                self.queue.append_log(jid, child.lines)
                child.lines = []
            if child.pending:
                self.queue.update_running(jid, self.id, **child.pending)
                child.pending = {}

    def _terminate(self, job_id: int, why: str) -> None:
        """SIGTERM to the job's process (it stops cleanly); SIGKILL to its group after the grace."""
        child = next((c for c in self.children.values() if c.job["id"] == job_id), None)
        if child is None or child.term_at is not None:
            return
        child.stop_why, child.term_at = why, time.monotonic()
        self.say(f"job {job_id}: stopping ({why}), SIGTERM to pid {child.proc.pid}")
        try:
            child.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _escalate(self) -> None:
        for child in self.children.values():
            if child.term_at and not child.killed and child.exited_at is None \
                    and time.monotonic() - child.term_at > self.grace:
                self.say(f"job {child.job['id']}: still running {self.grace:.0f} s after SIGTERM: SIGKILL")
                child.killed = True
                _killpg(child.proc.pid)

    def _reap(self) -> None:
        for dev, child in list(self.children.items()):
            if child.proc.poll() is None:
                continue
            if child.exited_at is None:
                child.exited_at = time.monotonic()
                _killpg(child.proc.pid)  # leftovers of the job (decode workers) go with it
            if child.open_fds and time.monotonic() - child.exited_at < 2.0:
                continue  # let the pipes drain
            for fd in list(child.open_fds):
                self.sel.unregister(fd)
                if fd == child.events_fd:
                    os.close(fd)
            child.proc.stdout.close()
            child.proc.stdin.close()
            self._flush()
            del self.children[dev]
            state, message, result = self._outcome(child)
            jid = child.job["id"]
            self.queue.append_log(jid, [f"{state}: {message}"])
            self.queue.finish(jid, self.id, state, message, result)
            self.say(f"job {jid} {state}: {message}")

    def _outcome(self, child: _Child) -> tuple[str, str, dict | None]:
        rc = child.proc.returncode
        retry = f"; `truthnet jobs retry {child.job['id']}` queues it again"
        if child.outcome and child.outcome[0] == "done" and rc == 0:
            return child.outcome
        if child.stop_why == "cancel":
            how = f" (killed with SIGKILL {self.grace:.0f} s after SIGTERM)" if child.killed else ""
            return "cancelled", f"cancelled by the user{how}", None
        if child.stop_why == "runner":
            return "interrupted", f"the runner stopped ({self.stop_reason}){retry}", None
        if rc < 0:
            name = _signame(-rc)
            return "failed", f"the job's process was killed by {name} (signal {-rc}){_SIGNAL_HINTS.get(name, '')}", None
        if child.outcome:
            return child.outcome
        if child.stopped_by:
            return "failed", f"the job's process was stopped by {child.stopped_by} from outside the runner{retry}", None
        return "failed", f"the job's process exited with status {rc} without a result (see `truthnet jobs log " \
                         f"{child.job['id']}`)", None

    def _shutdown(self) -> None:
        """Stop every running child (SIGTERM, SIGKILL after the grace) and record why."""
        for child in list(self.children.values()):
            self._terminate(child.job["id"], "runner")
        while self.children:
            self._pump(0.2)
            self._escalate()
            self._reap()


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the child leads its own session: its pid is the group id
    except (ProcessLookupError, PermissionError):
        pass

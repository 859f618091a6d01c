"""The job queue in the results store: jobs, their logs, and the runners that hold them.

Every state change is one guarded UPDATE, so the parties that share a store (``truthnet jobs``
commands, any number of runners, the TUI) cannot race:

* a runner claims a job with ``UPDATE ... WHERE state = 'queued'`` and a cancel of a queued
  job is ``UPDATE ... WHERE state = 'queued'`` too: exactly one of them wins;
* a claim also requires that no job runs on that device, so a device runs one job at a time
  however many runners serve it;
* a runner leases its jobs: it heartbeats, and a job is only ever marked ``interrupted`` when
  its runner is known dead (its process is gone on this host, or its heartbeat is older than
  :data:`LEASE_SECONDS` on another host).

The log is a table of lines (appending is an INSERT, whatever the log's length).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from .. import procs
from ..errors import ConfigError, ModelError
from ..paths import text
from ..store import Store

#: the kinds ``truthnet jobs add`` and the TUI offer; plugins may add more (``truthnet_register_job_kinds``)
JOB_KINDS = ("scan", "train", "evaluate")
#: every built-in kind: those, ``explain`` (one file; the TUI's details screen queues it) and
#: ``watch`` (a folder, until cancelled; the TUI's ``w`` toggles it)
BUILTIN_KINDS = (*JOB_KINDS, "explain", "watch")
STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
RETRYABLE = ("failed", "cancelled", "interrupted")
#: a runner on another host whose heartbeat is older than this is taken for dead
LEASE_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                          -- scan | train | evaluate
    target TEXT NOT NULL,                        -- the folder it works on
    model TEXT,
    preset TEXT,
    device TEXT NOT NULL DEFAULT 'cpu',
    state TEXT NOT NULL DEFAULT 'queued',        -- queued | running | done | failed | cancelled | interrupted
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    result TEXT                                  -- JSON: scan_id, model path, metrics path ...
);
CREATE TABLE IF NOT EXISTS job_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    t REAL NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_log_job ON job_log (job_id, id);
CREATE TABLE IF NOT EXISTS job_runners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    proc_start TEXT,                             -- the process's start time: a reused pid is not it
    devices TEXT NOT NULL,                       -- JSON list
    owner TEXT,                                  -- cli | tui
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'running',       -- running | stopped | dead
    stopped REAL
);
"""

#: columns added to the jobs table of stores written before the queue had processes
_JOB_COLUMNS = {
    "force": "INTEGER NOT NULL DEFAULT 0",
    "options": "TEXT",             # JSON, kind-specific
    "origin": "TEXT",              # who queued it: cli | tui | api
    "attempt": "INTEGER NOT NULL DEFAULT 0",
    "stage": "TEXT",
    "done": "INTEGER",
    "total": "INTEGER",
    "eta": "REAL",                 # seconds left, as of `updated`
    "updated": "REAL",
    "pid": "INTEGER",
    "env": "TEXT",                 # JSON: the device environment the job's process saw
    "runner_id": "INTEGER",
    "heartbeat": "REAL",
    "cancel_requested": "REAL",
}


#: running jobs whose runner is not (or no longer) registered as running
_ORPHANS = ("SELECT j.id, r.pid FROM jobs j LEFT JOIN job_runners r ON r.id = j.runner_id "
            "WHERE j.state = 'running' AND (r.id IS NULL OR r.state != 'running')")


def _decode(row) -> dict:
    d = dict(row)
    for k in ("result", "env", "options"):
        d[k] = json.loads(d[k]) if d.get(k) else None
    d.pop("log", None)  # the text column of stores written before the log table
    return d


def check_job(kind: str, target: str | os.PathLike, model: str | None) -> tuple[str, str | None]:
    """A job's target and model as the runner will need them, or a clear error now (not when
    the job starts, possibly hours later, in another folder): both absolute and normalised
    (:func:`truthnet.paths.norm`, the way the store names files), the target present and of
    the right kind, the model a file (scan and evaluate) or absent (train)."""
    from ..paths import exact_bytes, norm, one_line

    target = norm(target)
    p = Path(target)
    if not p.exists():
        raise ConfigError(f"{one_line(target)}: no such file or folder")
    if exact_bytes(target) is not None:  # a job is a row of text; its files are scanned whatever their names
        raise ConfigError(f"{one_line(target)}: a job's folder name must be valid UTF-8",
                          hint="queue its parent folder, or scan it directly with `truthnet scan`")
    if kind in ("train", "evaluate") and not (p.is_dir() or p.suffix.lower() == ".csv"):
        raise ConfigError(f"{target}: {kind} needs a dataset folder or a manifest CSV")
    if kind == "explain" and not p.is_file():
        raise ConfigError(f"{one_line(target)}: explain needs one video file")
    if kind == "watch" and not p.is_dir():
        raise ConfigError(f"{one_line(target)}: watch needs a folder")
    if kind == "train":
        if model:
            raise ConfigError("train makes a new model; a model is for scan and evaluate jobs")
        return target, None
    if not model:
        from ..resolve import NO_MODEL_HELP

        raise ModelError(NO_MODEL_HELP)
    model = norm(os.path.expanduser(str(model)))
    if not Path(model).is_file():
        raise ModelError(f"model file not found: {model}")
    return target, model


class JobQueue:
    """Jobs in a results store (``Store`` or a path; None: the default store)."""

    def __init__(self, store: Store | str | os.PathLike | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.host = socket.gethostname()
        if not self.store.readonly:  # a read-only store is listed as it is (its writes fail clearly)
            self._migrate()

    @property
    def path(self) -> Path:
        return self.store.path

    def _migrate(self) -> None:
        self.store.con.executescript(_SCHEMA)
        with self.store._tx() as con:  # read the columns under the write lock: two upgraders do not race
            have = {r["name"] for r in con.execute("PRAGMA table_info(jobs)")}
            for name, decl in _JOB_COLUMNS.items():
                if name not in have:
                    con.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
            if "log" in have:  # move the old text log into the log table, once
                for r in con.execute("SELECT id, log, created FROM jobs WHERE log != ''").fetchall():
                    con.executemany("INSERT INTO job_log (job_id, t, line) VALUES (?, ?, ?)",
                                    [(r["id"], r["created"], ln) for ln in r["log"].splitlines()])
                con.execute("UPDATE jobs SET log = '' WHERE log != ''")
            con.execute("CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, device)")

    # -- reading ----------------------------------------------------------------------------
    def jobs(self, states: Iterable[str] | None = None, *, limit: int | None = None) -> list[dict]:
        """Jobs in id order (``limit``: only the newest so many)."""
        q, args = "SELECT * FROM jobs", ()
        states = tuple(states or ())
        if states:
            q += " WHERE state IN (%s)" % ",".join("?" * len(states))
            args = states
        if limit:
            q = f"SELECT * FROM ({q} ORDER BY id DESC LIMIT {int(limit)})"
        return [_decode(r) for r in self._read(q + " ORDER BY id", args)]

    def _read(self, q: str, args=()) -> list:
        """Rows of a query; none where a read-only store never had the job tables."""
        import sqlite3

        try:
            return self.store.con.execute(q, args).fetchall()
        except sqlite3.OperationalError as exc:
            if self.store.readonly and "no such table" in str(exc):
                return []
            raise

    def get(self, job_id: int) -> dict:
        r = next(iter(self._read("SELECT * FROM jobs WHERE id = ?", (int(job_id),))), None)
        if r is None:
            raise ConfigError(f"no job {job_id} in {self.path} (`truthnet jobs list` shows them)")
        return _decode(r)

    def log(self, job_id: int, *, after: int = 0, tail: int | None = None) -> list[tuple[int, float, str]]:
        """``(line id, time, text)`` of the job's log after line id ``after`` (``tail``: the last N)."""
        con = self.store.con
        if tail is not None:
            rows = con.execute("SELECT id, t, line FROM job_log WHERE job_id = ? AND id > ? ORDER BY id DESC LIMIT ?",
                               (int(job_id), after, int(tail))).fetchall()[::-1]
        else:
            rows = con.execute("SELECT id, t, line FROM job_log WHERE job_id = ? AND id > ? ORDER BY id",
                               (int(job_id), after)).fetchall()
        return [(r["id"], r["t"], r["line"]) for r in rows]

    def runners(self, *, alive: bool = True) -> list[dict]:
        rows = [dict(r) for r in self._read("SELECT * FROM job_runners WHERE state = 'running'")]
        for r in rows:
            r["devices"] = json.loads(r["devices"])
        return [r for r in rows if not alive or self._runner_alive(r)]

    def _runner_alive(self, r, now: float | None = None) -> bool:
        if r["host"] == self.host:
            return procs.alive(r["pid"], r["proc_start"])
        return (now or time.time()) - r["heartbeat"] < LEASE_SECONDS

    # -- the user's side --------------------------------------------------------------------
    def add(self, kind: str, target: str | os.PathLike, *, model: str | None = None, preset: str | None = None,
            device: str = "cpu", force: bool = False, options: dict | None = None, origin: str = "api") -> int:
        from ..device import device_name

        if kind in BUILTIN_KINDS:
            target, model = check_job(kind, target, model)
        else:
            from .. import plugins

            known = plugins.list_names("job_kind")
            if kind not in known:
                raise ConfigError(f"unknown job kind {kind!r}; known: {', '.join((*JOB_KINDS, *known))}")
        with self.store._tx() as con:
            cur = con.execute(
                "INSERT INTO jobs (kind, target, model, preset, device, force, options, origin, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, str(target), model, preset, device_name(device), int(force),
                 json.dumps(options) if options else None, origin, time.time()),
            )
            return int(cur.lastrowid)

    def cancel(self, job_id: int) -> str:
        """Cancel a queued job at once (``"cancelled"``), or ask the runner of a running one to
        stop it (``"requested"``: SIGTERM, then SIGKILL after its grace period)."""
        now = time.time()
        with self.store._tx() as con:
            if con.execute("UPDATE jobs SET state = 'cancelled', finished = ?, message = 'cancelled before it started' "
                           "WHERE id = ? AND state = 'queued'", (now, int(job_id))).rowcount:
                return "cancelled"
            if con.execute("UPDATE jobs SET cancel_requested = ? WHERE id = ? AND state = 'running'",
                           (now, int(job_id))).rowcount:
                return "requested"
        job = self.get(job_id)
        raise ConfigError(f"job {job_id} is already {job['state']}: nothing to cancel")

    def retry(self, job_id: int) -> None:
        """Queue a failed, cancelled or interrupted job again (same id; its log goes on)."""
        with self.store._tx() as con:
            n = con.execute(
                "UPDATE jobs SET state = 'queued', started = NULL, finished = NULL, progress = 0, result = NULL, "
                "message = 'queued again', stage = NULL, done = NULL, total = NULL, eta = NULL, pid = NULL, "
                "runner_id = NULL, cancel_requested = NULL WHERE id = ? AND state IN (%s)"
                % ",".join("?" * len(RETRYABLE)), (int(job_id), *RETRYABLE)).rowcount
            if n:
                con.execute("INSERT INTO job_log (job_id, t, line) VALUES (?, ?, ?)",
                            (int(job_id), time.time(), "--- queued again ---"))
                return
        job = self.get(job_id)
        raise ConfigError(f"job {job_id} is {job['state']}; only {', '.join(RETRYABLE)} jobs can be retried")

    # -- the runner's side ------------------------------------------------------------------
    def register_runner(self, devices: list[str], owner: str = "cli") -> int:
        now = time.time()
        with self.store._tx() as con:
            cur = con.execute(
                "INSERT INTO job_runners (pid, host, proc_start, devices, owner, started, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (os.getpid(), self.host, procs.proc_start(os.getpid()), json.dumps(devices), owner, now, now),
            )
            return int(cur.lastrowid)

    def heartbeat(self, runner_id: int) -> bool:
        """Renew the runner's lease and its jobs'; False when the runner was declared dead."""
        now = time.time()
        with self.store._tx() as con:
            ok = con.execute("UPDATE job_runners SET heartbeat = ? WHERE id = ? AND state = 'running'",
                             (now, runner_id)).rowcount
            con.execute("UPDATE jobs SET heartbeat = ? WHERE runner_id = ? AND state = 'running'", (now, runner_id))
        return bool(ok)

    def unregister_runner(self, runner_id: int) -> None:
        with self.store._tx() as con:
            con.execute("UPDATE job_runners SET state = 'stopped', stopped = ? WHERE id = ? AND state = 'running'",
                        (time.time(), runner_id))

    def recover(self) -> list[int]:
        """Mark the running jobs of dead runners ``interrupted``; returns their ids."""
        now = time.time()
        dead = [r for r in self.runners(alive=False) if not self._runner_alive(r, now)]
        if not dead and self.store.con.execute(_ORPHANS + " LIMIT 1").fetchone() is None:
            return []  # the usual case: no write transaction at all
        out: list[int] = []
        with self.store._tx() as con:
            for r in dead:  # guarded by the heartbeat read: a runner that beat since is not dead
                con.execute("UPDATE job_runners SET state = 'dead', stopped = ? WHERE id = ? AND heartbeat = ?",
                            (now, r["id"], r["heartbeat"]))
            orphans = con.execute(_ORPHANS).fetchall()
            for o in orphans:
                who = f"its runner (pid {o['pid']})" if o["pid"] else "the process that ran it"
                con.execute(
                    "UPDATE jobs SET state = 'interrupted', finished = ?, eta = NULL, message = ? "
                    "WHERE id = ? AND state = 'running'",
                    (now, f"{who} stopped while it ran; `truthnet jobs retry {o['id']}` queues it again", o["id"]))
                con.execute("INSERT INTO job_log (job_id, t, line) VALUES (?, ?, ?)",
                            (o["id"], now, f"interrupted: {who} is gone"))
                out.append(int(o["id"]))
        return out

    def claim(self, device: str, runner_id: int) -> dict | None:
        """Take the oldest queued job for ``device`` if no job runs on it (one UPDATE); a running
        watcher (kind ``watch``, until stopped) does not count."""
        now = time.time()
        with self.store._tx() as con:  # one write transaction: nobody claims between the two
            nxt = con.execute("SELECT id FROM jobs WHERE state = 'queued' AND device = ? ORDER BY id LIMIT 1",
                              (device,)).fetchone()
            if nxt is None:
                return None
            n = con.execute(
                "UPDATE jobs SET state = 'running', started = ?, heartbeat = ?, updated = ?, runner_id = ?, "
                "attempt = attempt + 1, message = 'starting', pid = NULL, env = NULL "
                "WHERE id = ? AND state = 'queued' AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'running' "
                "AND device = ? AND kind != 'watch')",
                (now, now, now, runner_id, nxt["id"], device)).rowcount
            if not n:
                return None
            r = con.execute("SELECT * FROM jobs WHERE id = ?", (nxt["id"],)).fetchone()
        return _decode(r)

    def has_queued(self, devices: list[str]) -> bool:
        q = "SELECT 1 FROM jobs WHERE state = 'queued' AND device IN (%s) LIMIT 1" % ",".join("?" * len(devices))
        return self.store.con.execute(q, devices).fetchone() is not None

    def cancel_requests(self, runner_id: int) -> list[int]:
        return [r[0] for r in self.store.con.execute(
            "SELECT id FROM jobs WHERE runner_id = ? AND state = 'running' AND cancel_requested IS NOT NULL",
            (runner_id,))]

    def update_running(self, job_id: int, runner_id: int, **fields) -> bool:
        """Set fields of a job this runner holds (False: it no longer holds it)."""
        for k in ("env", "result"):
            if k in fields and fields[k] is not None:
                fields[k] = json.dumps(fields[k])
        unknown = set(fields) - {"pid", "env", "stage", "done", "total", "eta", "progress", "message", "updated"}
        if unknown:
            raise ValueError(f"not a running job's field: {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.store._tx() as con:
            return bool(con.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND runner_id = ? AND state = 'running'",
                                    (*fields.values(), job_id, runner_id)).rowcount)

    def finish(self, job_id: int, runner_id: int, state: str, message: str, result: dict | None = None) -> bool:
        now = time.time()
        with self.store._tx() as con:
            return bool(con.execute(
                "UPDATE jobs SET state = ?, message = ?, result = ?, finished = ?, updated = ?, eta = NULL, "
                "progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END "
                "WHERE id = ? AND runner_id = ? AND state = 'running'",
                (state, text(message[:2000]), json.dumps(result) if result is not None else None, now, now, state,
                 job_id, runner_id)).rowcount)

    def append_log(self, job_id: int, lines: Iterable[str], t: float | None = None) -> None:
        """Append lines to a job's log: one INSERT per line in one transaction, O(1) in the log's length."""
        t = time.time() if t is None else t
        rows = [(int(job_id), t, text(ln.rstrip("\n"))) for ln in lines]
        if rows:
            with self.store._tx() as con:
                con.executemany("INSERT INTO job_log (job_id, t, line) VALUES (?, ?, ?)", rows)

    def known_models(self, current: str | None = None, default: str | None = None,
                     limit: int = 10) -> list[tuple[str, str]]:
        """``(label, path)`` of models to offer: ``current``, the ``default`` model, then recent
        training jobs' outputs and recently used models that still exist."""
        out: dict[str, str] = {}
        if current:
            out[str(current)] = f"current: {current}"
        if default and str(default) not in out:
            out[str(default)] = f"default: {default}"
        for j in reversed(self.jobs(("done",), limit=200)):
            path = (j["result"] or {}).get("model") if j["kind"] == "train" else j["model"]
            if path and path not in out and Path(path).is_file():
                out[path] = f"job {j['id']} ({j['kind']}): {path}"
            if len(out) >= limit:
                break
        return [(label, path) for path, label in out.items()]

"""The results store: SQLite, shared by ``truthnet scan``, ``truthnet results`` and the TUI.

Every result is committed as soon as it exists, so a scan killed at any moment (Ctrl-C,
SIGTERM, SIGKILL) keeps everything scored so far.  WAL journaling and a busy timeout let two
scans write the same database at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: version 2 added ``frame_indices`` and ``frames_padded`` (the API's fields) to ``results``;
#: version 3 added ``results.fps`` (frame times in reports), ``scans.info`` (what a report must
#: say about a scan: model file hash, TruthNet version, threshold); version 4 added
#: ``scans.model_card`` (the card and its warnings as they were when the scan ran); version 5
#: added ``results.sha256`` and ``results.frames_sha256`` (content identity: results stored
#: before it carry only a partial fingerprint and are never reused, only shown); the job
#: tables are :mod:`truthnet.jobs.queue`'s; version 6 added ``results.path_bytes`` (the exact
#: bytes of a name that is not valid UTF-8; ``path`` then holds it as readable text)
SCHEMA_VERSION = 6

#: columns added after version 1: (table, column, type), applied by :meth:`Store._migrate`
_ADDED_COLUMNS = [
    ("results", "frame_indices", "TEXT"),     # JSON list of the sampled frame indices
    ("results", "frames_padded", "INTEGER"),
    ("results", "fps", "REAL"),
    ("scans", "info", "TEXT"),                # JSON: model_sha256, truthnet_version, threshold, windows
    ("scans", "model_card", "TEXT"),          # JSON ModelCard.stored(): summary, warnings, card (0.2)
    ("results", "sha256", "TEXT"),            # SHA-256 of the whole file (schema 5)
    ("results", "frames_sha256", "TEXT"),     # SHA-256 of the decoded sampled frames (schema 5)
    ("results", "path_bytes", "BLOB"),        # the name's bytes when not valid UTF-8 (schema 6)
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    state TEXT NOT NULL DEFAULT 'running',      -- running | done | interrupted | failed
    model TEXT,
    model_key TEXT,
    roots TEXT,                                  -- JSON list of the paths given
    options TEXT,                                -- JSON of the command's options
    counts TEXT,                                 -- JSON {status: n, "fake": n, "real": n}
    info TEXT,                                   -- JSON: model_sha256, truthnet_version, threshold
    model_card TEXT                              -- JSON: the model card's summary, warnings and card
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    path TEXT NOT NULL,                          -- paths.text(): undecodable bytes as \\xNN
    path_bytes BLOB,                             -- the exact bytes, only when path is not them
    size INTEGER,
    fingerprint TEXT,                            -- before schema 5: size + first/last MiB (never reused)
    sha256 TEXT,                                 -- SHA-256 of the whole file
    frames_sha256 TEXT,                          -- SHA-256 of the decoded sampled frames
    model_key TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    score REAL,
    label TEXT,
    threshold REAL,
    duration REAL,
    fps REAL,
    frames_sampled INTEGER,
    frames_padded INTEGER,
    frame_indices TEXT,                          -- JSON list of the sampled frame indices
    faces_found TEXT,                            -- JSON list per sampled frame, or null
    window_scores TEXT,                          -- JSON list, or null
    timings TEXT,                                -- JSON
    thumbs BLOB,                                 -- JPEG strip of the face crops
    scanned_at REAL NOT NULL,
    UNIQUE (scan_id, path)
);
CREATE INDEX IF NOT EXISTS results_path ON results (path);
CREATE TABLE IF NOT EXISTS explanations (        -- truthnet explain: one per file content and model
    sha256 TEXT NOT NULL,                        -- SHA-256 of the whole file
    model_key TEXT NOT NULL,                     -- as results.model_key (one window)
    model_sha256 TEXT,
    frames_sha256 TEXT,                          -- the explained frames (one window)
    path TEXT,                                   -- where the file was when explained
    created REAL NOT NULL,
    data TEXT NOT NULL,                          -- JSON: Explanation.to_dict()
    png BLOB NOT NULL,                           -- the picture truthnet explain writes
    PRIMARY KEY (sha256, model_key)
);
"""

from .paths import exact_bytes, stored, text  # noqa: E402
from .record import FINAL_STATUSES, Result  # noqa: E402


def default_db_path() -> Path:
    env = os.environ.get("TRUTHNET_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("truthnet")) / "results.sqlite"


class Store:
    """A connection to the results database (thread-safe: one connection per thread).

    The job queue keeps its tables in the same database: :class:`truthnet.jobs.JobQueue`."""

    #: tries to take the write lock (each waits up to the busy timeout) before giving up
    LOCK_ATTEMPTS = 50

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        self._local = threading.local()
        #: True when the database can be read but not written (a read-only mount, an evidence copy
        #: made immutable): everything reads, and any write is one clear error
        self.readonly = False
        from .errors import StoreError

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # idempotent; executescript manages its own transaction
            self._while_locked(lambda: self.con.executescript(_SCHEMA))
            self._migrate()
        except StoreError as exc:  # the migration's write refused: a read-only database stays readable
            if "attempt to write a readonly database" in str(exc) and self._open_readonly():
                return
            raise
        except OSError as exc:  # a typo or an unwritable place: one line, not a traceback
            if self._open_readonly():
                return
            from .errors import ConfigError

            raise ConfigError(f"cannot open the results database {self.path}: {exc.strerror or exc}",
                              hint="give a writable file with --db") from None
        except sqlite3.Error as exc:  # never replaced or rebuilt behind the user's back
            self.close()
            if ("attempt to write a readonly database" in str(exc) or "unable to open" in str(exc)) \
                    and self._open_readonly():
                return
            if "unable to open" in str(exc):
                from .errors import ConfigError

                raise ConfigError(f"cannot open the results database {self.path}: {exc}",
                                  hint="give a writable file with --db") from None
            raise self._error(exc) from None

    def _open_readonly(self) -> bool:
        """Fall back to reading an existing database that cannot be written."""
        if not self.path.is_file():
            return False
        self.close()
        self.readonly = True
        try:
            self.con.execute("SELECT count(*) FROM results").fetchone()
            return True
        except sqlite3.Error:
            self.close()
            self.readonly = False
            return False

    def _migrate(self) -> None:
        """Bring a database written by an older TruthNet up to :data:`SCHEMA_VERSION`."""
        with self._tx() as con:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row["value"]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                from .errors import ConfigError

                raise ConfigError(f"{self.path} was written by a newer TruthNet (schema {version}, this one "
                                  f"reads up to {SCHEMA_VERSION}); upgrade TruthNet or use another --db")
            for table, column, kind in _ADDED_COLUMNS:
                have = {r["name"] for r in con.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            con.execute("CREATE INDEX IF NOT EXISTS results_sha ON results (sha256, model_key)")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None and self.readonly:
            con = _connect_readonly(self.path)
            self._local.con = con
        if con is None:
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout=60000")
            try:
                self._while_locked(lambda: con.execute("PRAGMA journal_mode=WAL"))
            except BaseException:
                con.close()
                raise
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def _while_locked(self, statement):
        """Run ``statement`` again while SQLite answers "database is locked" without waiting on the
        busy timeout: it does so for a journal-mode change or a schema write racing another
        process that is creating the same database (two scans started together on a new --db)."""
        for attempt in range(self.LOCK_ATTEMPTS):
            try:
                return statement()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == self.LOCK_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _error(self, exc: sqlite3.Error):
        """A :class:`StoreError` naming the database and a way out."""
        from .errors import StoreError

        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return StoreError(
                f"{self.path}: not a TruthNet results database, or a damaged one ({text})",
                hint=f"move it aside (mv '{self.path}' '{self.path}.damaged') and a new one is made on the next "
                "run, or pass --db another file; TruthNet never replaces it on its own")
        if "full" in text or "I/O" in text:
            return StoreError(
                f"{self.path}: cannot write the results database ({text}): the disk or a file-size limit is "
                "full; every result stored before this is kept",
                hint="free some space and run the same command again: finished files are reused")
        return StoreError(f"{self.path}: results database error: {text}")

    def require_writable(self) -> None:
        """Raise a :class:`StoreError` now if nothing could be stored (before a scan loads its model)."""
        from .errors import StoreError

        if self.readonly:
            raise StoreError(f"{self.path}: the results database is read-only here: results can be read, not written",
                             hint="pass --db a writable file (or a copy of this one)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        from .errors import StoreError

        self.require_writable()
        con = self.con
        if con.in_transaction:  # one an interrupt left open on this thread's connection: nothing of
            con.execute("ROLLBACK")  # it was committed, and SQLite cannot nest another in it
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of failing with "database is locked" halfway through a transaction
        for attempt in range(self.LOCK_ATTEMPTS):
            try:
                con.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise self._error(exc) from None
                time.sleep(0.05 * (attempt + 1))
        else:  # never run a statement outside its transaction
            raise StoreError(f"{self.path}: the results database stayed locked by another process; nothing "
                             "was written",
                             hint="wait for the other scan or the TUI to finish, or pass --db another file")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException as exc:
            try:
                if con.in_transaction:  # else SQLite already rolled back (e.g. after a full disk)
                    con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            raise

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- scans ----------------------------------------------------------------------------
    def start_scan(self, model: str | None, model_key: str | None, roots: list[str], options: dict,
                   info: dict | None = None, *, model_card: dict | None = None) -> int:
        with self._tx() as con:
            cur = con.execute(
                "INSERT INTO scans (started, model, model_key, roots, options, info, model_card)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), model, model_key, json.dumps(roots), json.dumps(options, default=str),
                 json.dumps(info or {}, default=str), None if model_card is None else json.dumps(model_card, default=str)),
            )
            return int(cur.lastrowid)

    def finish_scan(self, scan_id: int, state: str, counts: dict) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE scans SET finished = ?, state = ?, counts = ? WHERE id = ?",
                (time.time(), state, json.dumps(counts), scan_id),
            )

    _SCANS = "SELECT s.*, (SELECT COUNT(*) FROM results r WHERE r.scan_id = s.id) AS n FROM scans s"

    def scans(self, limit: int | None = None) -> list[dict]:
        q = self._SCANS + " ORDER BY s.id DESC"
        if limit:
            q += f" LIMIT {int(limit)}"
        return [_scan_dict(r) for r in self.con.execute(q)]

    def scan(self, scan_id: int) -> dict | None:
        r = self.con.execute(self._SCANS + " WHERE s.id = ?", (int(scan_id),)).fetchone()
        return _scan_dict(r) if r else None

    # -- results --------------------------------------------------------------------------
    def add_result(self, scan_id: int, row: Result) -> None:
        with self._tx() as con:
            con.execute(
                """INSERT OR REPLACE INTO results (scan_id, path, path_bytes, size, sha256, frames_sha256, model_key,
                   status, reason, score, label, threshold, duration, fps, frames_sampled, frames_padded, frame_indices,
                   faces_found, window_scores, timings, thumbs, scanned_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    scan_id, stored(row.path), exact_bytes(row.path), row.size, row.sha256, row.frames_sha256,
                    row.model_key, row.status, text(row.reason or ""),
                    row.score, row.label, row.threshold, row.duration, row.fps, row.frames_sampled, row.frames_padded,
                    json.dumps(row.frame_indices or []),
                    None if row.faces_found is None else json.dumps(row.faces_found),
                    None if row.window_scores is None else json.dumps(row.window_scores),
                    json.dumps(row.timings), row.thumbs, row.scanned_at or time.time(),
                ),
            )

    def previous(self, sha256: str, model_key: str) -> Result | None:
        """The latest final result for this file content (SHA-256) and model, from any scan."""
        q = (
            "SELECT * FROM results WHERE sha256 = ? AND model_key = ? AND status IN (%s) "
            "ORDER BY scanned_at DESC LIMIT 1" % ",".join("?" * len(FINAL_STATUSES))
        )
        r = self.con.execute(q, (sha256, model_key, *FINAL_STATUSES)).fetchone()
        return _row(r, with_thumbs=True) if r else None  # its faces too: the same content's

    def results(self, scan_id: int | None = None, *, with_thumbs: bool = False) -> list[Result]:
        cols = "*" if with_thumbs else "*, NULL AS thumbs"
        if scan_id is None:
            q = f"SELECT {cols} FROM results ORDER BY id"
            rows = self.con.execute(q)
        else:
            rows = self.con.execute(f"SELECT {cols} FROM results WHERE scan_id = ? ORDER BY id", (scan_id,))
        return [_row(r, with_thumbs) for r in rows]

    def reported(self, path: str, sha256: str, model_key: str) -> bool:
        """Whether ``path`` already has a final result for these bytes and this model."""
        q = ("SELECT 1 FROM results WHERE path = ? AND sha256 = ? AND model_key = ? AND status IN (%s) LIMIT 1"
             % ",".join("?" * len(FINAL_STATUSES)))
        return self.con.execute(q, (stored(path), sha256, model_key, *FINAL_STATUSES)).fetchone() is not None

    def latest_for_paths(self, paths: list[str], *, model_sha256: str | None = None) -> dict[str, Result]:
        """The most recent result of each path from any scan, or (``model_sha256``) from the
        scans made with the model file of that SHA-256 only: never one model's verdict under
        another model's name."""
        out: dict[str, Result] = {}
        asked = {stored(p): p for p in paths}
        keys = list(asked)
        by_model = "" if model_sha256 is None else \
            " AND scan_id IN (SELECT id FROM scans WHERE json_extract(info, '$.model_sha256') = ?)"
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = (
                "SELECT r.*, NULL AS thumbs FROM results r JOIN (SELECT path, MAX(id) AS id FROM results "
                "WHERE path IN (%s)%s GROUP BY path) m ON r.id = m.id" % (",".join("?" * len(chunk)), by_model)
            )
            for r in self.con.execute(q, chunk if model_sha256 is None else [*chunk, model_sha256]):
                row = _row(r)
                out[asked.get(r["path"], row.path)] = row
        return out

    # -- explanations ---------------------------------------------------------------------
    def save_explanation(self, model_key: str, data: dict, png: bytes) -> None:
        """Keep an explanation (``data``: ``Explanation.to_dict()``) for its file's SHA-256 and
        ``model_key``; a newer one of the same bytes and model replaces it (they are equal:
        explanations are deterministic)."""
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO explanations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (data["sha256"], model_key, data.get("model_sha256"), data.get("frames_sha256"),
                         stored(data["path"]), time.time(), json.dumps(data), png))

    def explanation(self, sha256: str | None, model_key: str | None) -> tuple[dict, bytes] | None:
        """The stored explanation (its JSON and PNG) of these bytes by this model, if any."""
        if not sha256 or not model_key:
            return None
        try:
            r = self.con.execute("SELECT data, png FROM explanations WHERE sha256 = ? AND model_key = ?",
                                 (sha256, model_key)).fetchone()
        except sqlite3.OperationalError:  # a read-only database of an older TruthNet: no such table
            return None
        return (json.loads(r["data"]), bytes(r["png"])) if r else None

    def explanation_for(self, r: Result) -> tuple[dict, bytes] | None:
        """The kept explanation of this very verdict: the same file bytes, the same decoded frames
        (so a one-window verdict: ``--windows`` > 1 decodes more) and the same model file as the
        scan that gave it; None otherwise."""
        if r.status != "ok" or not (r.sha256 and r.frames_sha256 and r.scan_id):
            return None
        scan = self.scan(r.scan_id) or {}
        model_sha = (scan.get("info") or {}).get("model_sha256")
        if not model_sha:
            return None
        try:
            row = self.con.execute(
                "SELECT data, png FROM explanations WHERE sha256 = ? AND frames_sha256 = ? AND model_sha256 = ? "
                "ORDER BY created DESC LIMIT 1", (r.sha256, r.frames_sha256, model_sha)).fetchone()
        except sqlite3.OperationalError:  # a read-only database of an older TruthNet: no such table
            return None
        return (json.loads(row["data"]), bytes(row["png"])) if row else None

    def explanation_pngs(self, rows: list[Result]) -> dict[tuple[str, str], bytes]:
        """The kept explanations' pictures of these verdicts (:meth:`explanation_for`), by
        (file SHA-256, model key)."""
        out = {}
        for r in rows:
            found = self.explanation_for(r)
            if found:
                out[(r.sha256, r.model_key)] = found[1]
        return out

    def thumbs(self, path: str, scan_id: int | None = None) -> bytes | None:
        """The face strip of ``path``'s result in scan ``scan_id`` (None: its latest result):
        the faces of that very result, never another scan's of a file since changed."""
        if scan_id is None:
            q, args = "SELECT thumbs FROM results WHERE path = ? ORDER BY id DESC LIMIT 1", (stored(path),)
        else:
            q, args = "SELECT thumbs FROM results WHERE path = ? AND scan_id = ? ORDER BY id DESC LIMIT 1", (stored(path), scan_id)
        r = self.con.execute(q, args).fetchone()
        return r["thumbs"] if r else None


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection.  A WAL database needs its ``-shm`` file, which cannot be made on a
    read-only mount; there it is opened as immutable (nothing else can be writing it then)."""
    from urllib.parse import quote

    base = "file:" + quote(os.fsencode(os.path.abspath(path)))
    con = None
    # immutable ignores a -wal file: never where one holds results not yet in the database
    wal = os.path.exists(f"{path}-wal") and os.path.getsize(f"{path}-wal") > 0
    for mode in ("?mode=ro",) if wal else ("?mode=ro", "?immutable=1"):
        try:
            con = sqlite3.connect(base + mode, uri=True, timeout=60.0, isolation_level=None)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            break
        except sqlite3.Error:
            if con is not None:
                con.close()
            con = None
    if con is None:
        raise sqlite3.OperationalError("unable to open database file read-only" + (
            f" (its {path}-wal holds results not yet in the database and its folder is read-only: copy the "
            "database with its -wal and -shm files to a writable folder)" if wal else ""))
    con.row_factory = sqlite3.Row
    return con


def _scan_dict(r: sqlite3.Row) -> dict:
    """A scan row; one still ``running`` whose process has ended (killed outright, power loss)
    reads as ``interrupted`` (the row itself is left alone: a read-only store stays readable)."""
    from .procs import gone

    d = dict(r)
    for k in ("roots", "options", "counts", "info", "model_card"):
        d[k] = json.loads(d[k]) if d.get(k) else None
    if d["state"] == "running" and gone((d["info"] or {}).get("process")):
        d["state"] = "interrupted"
    return d


def _row(r: sqlite3.Row, with_thumbs: bool = False) -> Result:
    have = set(r.keys())  # a read-only store of an older schema is read as it is, not migrated

    def get(name: str):
        return r[name] if name in have else None

    return Result(
        path=os.fsdecode(r["path_bytes"]) if get("path_bytes") is not None else r["path"],
        status=r["status"],
        reason=r["reason"] or "",
        score=r["score"],
        label=r["label"],
        threshold=r["threshold"],
        size=r["size"],
        sha256=get("sha256"),
        frames_sha256=get("frames_sha256"),
        duration=r["duration"],
        fps=get("fps"),
        frames_sampled=r["frames_sampled"] or 0,
        frames_padded=get("frames_padded") or 0,
        frame_indices=json.loads(get("frame_indices")) if get("frame_indices") else [],
        faces_found=json.loads(r["faces_found"]) if r["faces_found"] else None,
        window_scores=json.loads(r["window_scores"]) if r["window_scores"] else None,
        timings=json.loads(r["timings"]) if r["timings"] else {},
        thumbs=r["thumbs"] if with_thumbs else None,
        scan_id=r["scan_id"],
        scanned_at=r["scanned_at"],
        model_key=r["model_key"],
    )

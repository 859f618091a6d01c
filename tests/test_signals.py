"""A scan stopped by a signal at any point keeps everything it finished, exits 130, and leaves a
store the next run can use.  The signals are sent on purpose at chosen statements of the real
store (a hook around its connection), not by luck of timing."""

from __future__ import annotations

import json
import os
import signal

import pytest

from truthnet.store import Store

pytestmark = pytest.mark.allow_untrained


class _SignalAt:
    """The store's real connection, sending SIGTERM to this process just before or just after
    the ``nth`` statement that starts with ``prefix`` (``times`` signals: two stop at once)."""

    def __init__(self, con, point):
        self._con, self._point = con, point

    def __getattr__(self, name):
        return getattr(self._con, name)

    def _maybe(self, sql, when):
        prefix, nth, where, times = self._point
        if where == when and sql.lstrip().upper().startswith(prefix):
            _SEEN[prefix] = _SEEN.get(prefix, 0) + 1
            if _SEEN[prefix] == nth:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGTERM)

    def execute(self, sql, *args):
        self._maybe(sql, "before")
        cur = self._con.execute(sql, *args)
        self._maybe(sql, "after")
        return cur


_SEEN: dict[str, int] = {}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from truthnet.synth import make_face_clip

    d = tmp_path_factory.mktemp("clips")
    for i in range(6):
        make_face_clip(d / f"c{i}.mp4", n_frames=6, seed=70 + i, width=96, height=72, face_size=40)
    return d


POINTS = [
    ("BEGIN", 3, "after", 1),  # inside the second result's transaction, before its INSERT
    ("INSERT INTO RESULTS", 2, "after", 1),  # (INSERT OR REPLACE: matched below by its start)
    ("COMMIT", 3, "before", 1),
    ("COMMIT", 3, "after", 1),
    ("BEGIN", 3, "after", 2),  # two signals: the second stops at once, inside a transaction
    ("INSERT", 2, "after", 2),
    ("COMMIT", 4, "before", 2),
    ("UPDATE SCANS", 1, "before", 1),  # while the scan is marked finished
]


@pytest.mark.parametrize("point", POINTS, ids=["-".join(map(str, p)) for p in POINTS])
def test_a_signal_at_any_statement_keeps_what_finished(point, clips, none_model, tmp_path, monkeypatch, capsys):
    from truthnet.cli import main

    prefix = "INSERT" if point[0].startswith("INSERT") else point[0]
    point = (prefix, *point[1:])
    real = Store.con
    monkeypatch.setattr(Store, "con", property(lambda self: _SignalAt(real.fget(self), point)))
    _SEEN.clear()
    db = tmp_path / "r.sqlite"
    args = ["scan", str(clips), "-m", none_model, "--db", str(db), "--json", "--batch-size", "1", "--workers", "1"]
    code = main(args)
    out, err = capsys.readouterr()
    assert _SEEN.get(prefix, 0) >= point[1], "the signal point was never reached"
    assert code == 130, err[-2000:]
    assert "Traceback" not in err and "transaction" not in err
    printed = {json.loads(x)["path"] for x in out.splitlines() if '"path"' in x}
    monkeypatch.setattr(Store, "con", real)
    stored = {r.path for r in Store(db).results()}
    assert printed <= stored  # every verdict shown was kept
    assert len(stored) < 6 or point[0] in ("UPDATE SCANS", "COMMIT")
    # the same command again finishes the rest, reusing what was kept
    assert main(args) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(r["path"] for r in rows[:-1]) == sorted(str(p) for p in clips.iterdir())
    assert rows[-1]["reused"] == len(stored & {str(p) for p in clips.iterdir()})

"""Store and settings faults: never a statement outside its transaction, never a silent
replacement of a damaged file, a full disk ends a scan cleanly (issue #15, item 5)."""

import json
import resource
import signal
import sqlite3

import pytest

from truthnet.cli import main
from truthnet.errors import ConfigError, StoreError
from truthnet.store import Store

from helpers import cli


def test_a_damaged_database_is_reported_and_left_alone(tmp_path, capsys):
    db = tmp_path / "results.sqlite"
    junk = b"this is not an SQLite database, just some bytes\n" * 100
    db.write_bytes(junk)
    with pytest.raises(StoreError, match="not a TruthNet results database") as exc:
        Store(db)
    assert str(db) in str(exc.value) and "mv " in str(exc.value)
    assert main(["results", "--db", str(db)]) == 3
    err = capsys.readouterr().err
    assert str(db) in err.replace("\n", "") and "Traceback" not in err
    assert db.read_bytes() == junk  # never replaced


def test_a_lock_that_never_clears_is_an_error_not_a_write_outside_the_transaction(tmp_path):
    db = tmp_path / "r.sqlite"
    store = Store(db)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        store.LOCK_ATTEMPTS = 2
        store.con.execute("PRAGMA busy_timeout=10")
        with pytest.raises(StoreError, match="stayed locked"):
            store.start_scan(None, None, [], {})
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.scans() == []  # nothing was written without the lock
    assert store.start_scan(None, None, [], {}) == 1


def test_a_damaged_settings_file_is_reported_and_never_overwritten(tmp_path, monkeypatch, capsys):
    settings = tmp_path / "settings.json"
    settings.write_text('{"default_model": "/models/a.keras",')  # cut short
    monkeypatch.setenv("TRUTHNET_CONFIG", str(settings))
    monkeypatch.delenv("TRUTHNET_MODEL", raising=False)
    from truthnet.settings import default_model, set_default_model

    with pytest.raises(ConfigError, match="cannot read the TruthNet settings file"):
        default_model()
    with pytest.raises(ConfigError):
        set_default_model("/models/b.keras")
    assert main(["default-model"]) == 3
    err = capsys.readouterr().err.replace("\n", "")
    assert str(settings) in err and "delete" in err
    assert settings.read_text() == '{"default_model": "/models/a.keras",'
    monkeypatch.setenv("TRUTHNET_MODEL", "/models/env.keras")  # the way out named in the hint
    assert default_model() == "/models/env.keras"
    settings.write_text("[1, 2]")
    monkeypatch.delenv("TRUTHNET_MODEL")
    with pytest.raises(ConfigError, match="holds list"):
        default_model()


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.slow
@pytest.mark.allow_untrained
def test_a_full_disk_ends_the_scan_with_a_clear_error_and_earlier_results_intact(tmp_path):
    import truthnet
    from truthnet.synth import make_face_clip

    folder = tmp_path / "v"
    for i in range(14):
        make_face_clip(folder / f"c{i:02d}.mp4", n_frames=6, seed=300 + i, width=96, height=80, face_size=48)
    cfg = truthnet.PipelineConfig.preset("tiny", detector="none", image_size=32, backbone_options={"filters": [4, 8]},
                                         lstm_units=4, dense_units=4)  # a model file far below the limit
    model = truthnet.new_classifier(cfg, seed=0).save(tmp_path / "m.keras")
    db = tmp_path / "r.sqlite"
    Store(db).close()  # the schema exists; the scan's writes go to the write-ahead log
    r = cli("scan", folder, "--model", model, "--db", db, "--json", "--batch-size", "1", "--workers", "1",
            env={"PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=_limit_file_size(140_000))
    printed = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.returncode == 3, r.stderr[-2000:]
    assert "cannot write the results database" in r.stderr and str(db) in r.stderr.replace("\n", "")
    assert "Traceback" not in r.stderr
    assert 1 <= len(printed) < 14  # some results were stored before the limit, not all
    stored = {x.path: x for x in Store(db).results()}
    assert set(stored) == {x["path"] for x in printed}  # every result reported was committed ...
    for x in printed:  # ... intact
        assert stored[x["path"]].status == "ok" and stored[x["path"]].score == pytest.approx(x["score"])


def test_opening_waits_for_another_writer_on_a_database_being_created(tmp_path):
    """Two scans started together on a new --db: while one holds the write lock of a database
    still in rollback mode, SQLite refuses the other's switch to WAL at once ("database is
    locked", its busy timeout never consulted). Made to happen here: a writer holds the lock and
    lets go after a moment; the store waits for it instead of failing."""
    import threading

    db = tmp_path / "new.sqlite"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE scratch (x)")
    other.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release():
        other.execute("COMMIT")
        released.set()

    timer = threading.Timer(1.0, release)
    timer.start()
    try:
        store = Store(db)
        assert released.is_set()  # it waited for the other writer rather than failing
        store.start_scan("m", "k", [str(tmp_path)], {})
        assert [s["id"] for s in store.scans()] == [1]
        assert store.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        timer.cancel()
        other.close()

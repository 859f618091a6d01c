"""truthnet.api: whole pieces of work with structured events and cancellation; the store's
schema migration."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import truthnet
from truthnet import api
from truthnet.store import SCHEMA_VERSION, Store

pytestmark = pytest.mark.allow_untrained  # these tests score with freshly built models


@pytest.fixture(scope="module")
def folder_and_model(tmp_path_factory, none_model):
    from truthnet.synth import make_face_clip

    d = tmp_path_factory.mktemp("api")
    for i in range(5):
        make_face_clip(d / "clips" / f"c{i}.mp4", n_frames=10, seed=i)
    return d / "clips", Path(none_model)


def test_scan_reports_structured_events_and_stops_on_cancel(folder_and_model, tmp_path):
    from helpers import more_files_than_in_flight
    from truthnet.synth import make_face_clip

    _, model = folder_and_model
    n = more_files_than_in_flight(1)  # more than the scan can have in hand when it sees the cancel
    folder = tmp_path / "clips"
    for i in range(n):
        make_face_clip(folder / f"c{i:02d}.mp4", n_frames=10, seed=i, width=160, height=120, face_size=70)
    events, cancel = [], threading.Event()

    def on_event(ev):
        events.append(ev)
        if ev.result is not None and ev.done == 2:
            cancel.set()

    out = api.scan([folder], model=model, db=tmp_path / "r.sqlite", batch_size=1, workers=1, on_event=on_event,
                   cancel=cancel)
    assert events[0].stage == "scan" and (events[0].done, events[0].total) == (0, n) and events[0].result is None
    stored = Store(out.db).results(out.scan_id)
    assert out.summary.interrupted and 2 <= len(stored) < n  # stopped early, what finished is kept
    assert [e.done for e in events[:2]] == [0, 0]  # counted (before the model loads), then scoring starts
    done = [e for e in events if e.result is not None]
    assert [e.done for e in done] == list(range(1, len(stored) + 1))
    assert {e.result.path for e in done} == {r.path for r in stored}

    # a re-run finishes the rest and reuses what was stored
    again = api.scan([folder], model=model, db=tmp_path / "r.sqlite")
    assert not again.summary.interrupted and again.summary.total == n
    assert again.summary.skipped == len(stored)


def test_a_cancel_before_scoring_scores_nothing(folder_and_model, tmp_path):
    """A cancel that arrives while the files are checked stops there: no file is decoded."""
    folder, model = folder_and_model
    cancel = threading.Event()
    cancel.set()
    out = api.scan([folder], model=model, db=tmp_path / "r.sqlite", cancel=cancel)
    assert out.summary.interrupted and Store(out.db).results(out.scan_id) == []


def test_scan_results_equal_the_classifier_api(folder_and_model, tmp_path):
    folder, model = folder_and_model
    out = api.scan([folder], model=model, db=tmp_path / "r.sqlite")
    stored = {r.path: r for r in Store(out.db).results(out.scan_id)}
    clf = truthnet.load_classifier(model)
    for r in clf.score_videos(sorted(stored)):
        s = stored[r.path]
        assert (r.status, r.label, r.frame_indices, r.frames_sampled) == (s.status, s.label, s.frame_indices,
                                                                           s.frames_sampled)
        assert abs(r.score - s.score) < 1e-6


def test_training_events_carry_stage_and_counts_and_cancel_raises(tmp_path):
    from truthnet.synth import make_dataset
    from truthnet.training import TrainConfig

    make_dataset(tmp_path / "data", n_real=6, n_fake=6, n_frames=6, width=96, height=72, seed=0)
    cfg = truthnet.PipelineConfig.preset("tiny", detector="none", image_size=32)
    events = []
    res = api.train(tmp_path / "data", tmp_path / "run", cfg, TrainConfig(epochs=2, batch_size=4, patience=None),
                    cache_dir=tmp_path / "cache", on_event=events.append)
    stages = {e.stage for e in events}
    assert {"faces", "epoch"} <= stages
    epochs = [e for e in events if e.stage == "epoch"]
    assert [(e.done, e.total) for e in epochs] == [(1, 2), (2, 2)]
    assert res.model_path.exists()

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(truthnet.errors.Cancelled):
        api.evaluate(res.model_path, tmp_path / "data", split="all", cancel=cancel)


def test_a_version_1_store_is_migrated_in_place(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE scans (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,"
        " state TEXT NOT NULL DEFAULT 'running', model TEXT, model_key TEXT, roots TEXT, options TEXT, counts TEXT);"
        "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, scan_id INTEGER NOT NULL, path TEXT NOT NULL,"
        " size INTEGER, fingerprint TEXT, model_key TEXT, status TEXT NOT NULL, reason TEXT, score REAL, label TEXT,"
        " threshold REAL, duration REAL, frames_sampled INTEGER, faces_found TEXT, window_scores TEXT, timings TEXT,"
        " thumbs BLOB, scanned_at REAL NOT NULL, UNIQUE (scan_id, path));"
        "INSERT INTO scans (started) VALUES (1.0);"
        "INSERT INTO results (scan_id, path, status, score, label, frames_sampled, scanned_at)"
        " VALUES (1, '/old.mp4', 'ok', 0.7, 'fake', 10, 2.0);"
    )
    con.commit()
    con.close()
    store = Store(db)
    (row,) = store.results(1)
    assert (row.path, row.score, row.frames_sampled, row.frame_indices) == ("/old.mp4", 0.7, 10, [])
    assert store.scan(1)["model_card"] is None  # version 4's column, added empty
    assert store.con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)

    # a store from a newer TruthNet is refused, not silently rewritten
    store.con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(truthnet.ConfigError, match="newer TruthNet"):
        Store(db)


def test_the_device_is_chosen_once_per_process(python):
    """TensorFlow fixes its devices when it first uses them: the same device again is fine, another
    one is a clear error (not a silent run on the first), in a fresh process."""
    import subprocess

    code = (
        "from truthnet.device import use_device\n"
        "from truthnet.errors import ConfigError\n"
        "use_device('cpu'); use_device('CPU')\n"
        "try:\n"
        "    use_device('gpu:0')\n"
        "except ConfigError as e:\n"
        "    print('refused:', e, '|', e.hint)\n"
    )
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "refused: this process already runs TensorFlow on cpu; it cannot switch to gpu:0" in r.stdout
    assert "one device per process" in r.stdout

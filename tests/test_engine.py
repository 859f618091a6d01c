"""The engine between files: a batch waiting for the model and a cancel are acted on while a
slow file is still decoding; a decode worker that cannot start is a configuration error, never
a per-file status."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from truthnet.engine import Engine
from truthnet.errors import ConfigError
from truthnet.record import Result

TIME_LIMIT = 120.0  # the per-file decode limit here: a regression waits for it, then fails


pytestmark = pytest.mark.allow_untrained


@pytest.fixture(scope="module")
def clf(none_classifier):
    return none_classifier


@pytest.fixture
def good_and_hang(media, tmp_path):
    """A good clip and one whose decoder hangs (``fault_decoders.faulty`` sleeps on "hang*")."""
    hang = tmp_path / "hang.mp4"
    hang.write_bytes(media["face"].read_bytes())
    return media["face"], hang


def _run_until_first(engine: Engine, files) -> tuple[list[Result], float, float]:
    """Run, set cancel at the first result; (results, time of the first, time of the end)."""
    cancel = threading.Event()
    t0 = time.monotonic()
    out, first = [], None
    for row in engine.run([Result(path=str(f), status="ok") for f in files], cancel=cancel):
        out.append(row)
        if first is None:
            first = time.monotonic() - t0
            cancel.set()
    return out, first, time.monotonic() - t0


def test_a_waiting_batch_is_scored_and_a_cancel_stops_while_another_file_hangs(clf, good_and_hang):
    from fault_decoders import faulty

    good, hang = good_and_hang
    engine = Engine(clf, isolation="process", workers=2, timeout=TIME_LIMIT, batch_size=8, max_wait=0.3,
                    decode_fn=faulty)
    out, first, end = _run_until_first(engine, [good, hang])
    # the good clip's batch is not full, and the other file never finishes: max_wait scores it
    # anyway, long before the hanging file's time limit; the cancel then ends the run at once
    assert [(r.path, r.status) for r in out] == [(str(good), "ok")] and out[0].score is not None
    assert first < TIME_LIMIT / 2 and end < TIME_LIMIT / 2


def test_thread_isolation_also_scores_a_waiting_batch_while_a_file_hangs(clf, good_and_hang):
    from fault_decoders import RELEASE, held

    good, hang = good_and_hang
    # threads cannot be killed: the hanging decode goes on in the background, the run does not
    # wait for it after a cancel (released at the end, so the interpreter can exit)
    engine = Engine(clf, isolation="thread", workers=2, batch_size=8, max_wait=0.3, decode_fn=held)
    RELEASE.clear()
    try:
        out, first, end = _run_until_first(engine, [good, hang])
    finally:
        RELEASE.set()
    assert [(r.path, r.status) for r in out] == [(str(good), "ok")] and out[0].score is not None
    assert end < TIME_LIMIT / 2


_WORKER_ONLY_FAILURE = """
import os, sys

_main = sys.modules.get("__main__")
if getattr(getattr(_main, "__spec__", None), "name", "") == "truthnet.decode.worker":
    {action}

from truthnet.decode import default_decode


def decode(config, path, windows):
    return default_decode(config, path, windows)
"""


@pytest.mark.parametrize(("name", "action", "expected"), [
    ("needs_gpu_lib", 'raise ImportError("libcuda.so.1: cannot open shared object file")', "libcuda"),
    ("exits_at_import", "os._exit(3)", "could not start"),
])
def test_a_worker_that_cannot_start_is_a_configuration_error(clf, media, tmp_path, monkeypatch, name, action,
                                                             expected):
    """Before any file: never every file's decode_error."""
    (tmp_path / f"{name}.py").write_text(_WORKER_ONLY_FAILURE.format(action=action))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    engine = Engine(clf, isolation="process", workers=2, decode_fn=module.decode)
    rows = [Result(path=str(media["face"]), status="ok"), Result(path=str(media["short"]), status="ok")]
    with pytest.raises(ConfigError, match=expected):
        list(engine.run(rows))
    sys.modules.pop(name, None)


def test_a_decode_function_in_main_is_decoded_in_threads_unless_processes_are_asked_for(clf, media):
    from truthnet.decode import default_decode

    def decode(config, path, windows):
        return default_decode(config, path, windows)

    decode.__module__, decode.__qualname__ = "__main__", "decode"  # as if defined in a script
    with pytest.raises(ConfigError, match="cannot import the decode function __main__:decode"):
        Engine(clf, isolation="process", decode_fn=decode)
    with pytest.raises(ConfigError, match="unknown decode isolation 'procss'; choose one of: auto, process, thread"):
        Engine(clf, isolation="procss")
    auto = Engine(clf, decode_fn=decode)
    assert auto.isolation == "thread"
    (row,) = auto.run([Result(path=str(media["face"]), status="ok")])
    ref = clf.score_video(media["face"])
    assert row.status == "ok" and row.score == pytest.approx(ref.score, abs=1e-6)


def test_face_pipelines_are_reused_across_runs(clf, media):
    """score_video per file must not build a new face detector each time (MTCNN's networks)."""
    first = clf.score_video(media["face"])
    built = [id(p) for p in clf.face_pipelines().free]
    assert built  # given back after use
    again = clf.score_video(media["face"])
    assert sorted(id(p) for p in clf.face_pipelines().free) == sorted(built)  # no new one built
    assert (again.status, again.score) == (first.status, first.score)


def test_kept_decoders_serve_run_after_run_and_a_cancelled_run_closes_them(clf, media):
    """keep_decoders (a Ray actor's engine): the same decode processes score batch after batch
    with the same results; a run stopped by a cancel closes them (work may be left in them)."""
    import threading

    from truthnet.engine import Engine

    engine = Engine(clf, isolation="process", workers=1, keep_decoders=True)
    try:
        first = [(r.status, r.score) for r in engine.run([Result(path=str(media["face"]), status="ok")])]
        pids = [w.proc.pid for w in engine._decoders.workers]
        again = [(r.status, r.score) for r in engine.run([Result(path=str(media["face"]), status="ok")])]
        assert [w.proc.pid for w in engine._decoders.workers] == pids  # no new process for the second batch
        assert again == first and first[0][0] == "ok"
        cancel = threading.Event()
        cancel.set()
        list(engine.run([Result(path=str(media["face"]), status="ok")] * 3, cancel=cancel))
        assert engine._decoders is None
    finally:
        engine.close()


def test_batches_are_scored_in_a_thread_of_their_own_with_the_same_rows(clf, media, monkeypatch):
    """The model scores each batch in the run's scoring thread (the thread reading the decode
    workers goes on meanwhile), several batches in flight (one sequence each): every file comes
    once, with the status and score it gets when batches are scored in the reading thread; a
    model that raises still ends the run with its error."""
    files = [media[k] for k in ("face", "face_avi", "short", "noface", "random", "truncated", "text")]
    threads: list[str] = []
    predict = clf.predict_sequences

    def traced(*args, **kw):
        threads.append(threading.current_thread().name)
        return predict(*args, **kw)

    monkeypatch.setattr(clf, "predict_sequences", traced)

    def run() -> dict:
        engine = Engine(clf, isolation="process", workers=2, batch_size=1)
        rows = list(engine.run([Result(path=str(f), status="ok") for f in files]))
        assert len(rows) == len(files)
        return {r.path: (r.status, r.score, sorted(r.timings)) for r in rows}

    scored_apart = run()
    assert threads and all(t.startswith("truthnet-score") for t in threads)
    assert sum(s == "ok" for s, _, _ in scored_apart.values()) == len(threads) >= 3
    threads.clear()
    monkeypatch.setattr(Engine, "score_in_thread", False)
    assert run() == scored_apart
    assert threads == [threading.current_thread().name] * len(threads) and threads

    def broken(*args, **kw):
        raise RuntimeError("the model failed")

    monkeypatch.setattr(clf, "predict_sequences", broken)
    monkeypatch.setattr(Engine, "score_in_thread", True)
    with pytest.raises(RuntimeError, match="the model failed"):
        run()

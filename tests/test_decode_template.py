"""The decode workers' template (Linux): a pool's workers are forks of one process that imported
everything once.  They must decode exactly as fresh interpreters do, die, time out and be reported
exactly as they do, and any trouble with the template must cost only its speed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import child_env, parent_pid, process_gone, start_faulty_scan, wait_until
from truthnet.config import PRESETS
from truthnet.decode import isolation
from truthnet.decode.isolation import Decoded, DecodeTask, IsolatedDecoder

pytestmark = pytest.mark.skipif(not isolation.templates_possible(), reason="forked decode workers: Linux only")

PAPER = PRESETS["paper"].to_dict()


def _decode(dec: IsolatedDecoder, paths, config=PAPER, detect=True) -> dict[str, Decoded]:
    tasks = [DecodeTask(i, config, str(p), 1, detect) for i, p in enumerate(paths)]
    out = {}
    for msg in dec.run(tasks):
        if msg is not None:
            assert isinstance(msg, Decoded), msg
            out[str(paths[msg.key])] = msg
    assert len(out) == len(paths)
    return out


def _same(a: Decoded, b: Decoded) -> None:
    """Everything but the timings, arrays bit for bit."""
    assert a.info == b.info and len(a.per_window) == len(b.per_window)
    for x, y in zip(a.per_window, b.per_window):
        assert type(x) is type(y)
        fx, fy = ({k: v for k, v in vars(o).items() if k != "timings"} for o in (x, y))
        assert fx.keys() == fy.keys()
        for k in fx:
            if isinstance(fx[k], np.ndarray):
                assert np.array_equal(fx[k], fy[k]), k
            else:
                assert fx[k] == fy[k], k


@pytest.fixture
def clips(small_corpus):
    return [c.path for name, c in sorted(small_corpus.items())][:4]


@pytest.mark.parametrize("warm", [False, True])
def test_forked_workers_decode_and_detect_exactly_as_fresh_interpreters(clips, monkeypatch, warm):
    """Real footage (long GOPs, B-frames, portrait, rotated), MTCNN in the workers: the same
    frames, faces, boxes and crops, bit for bit; ``warm``: the compiled kernels loaded in the
    template before the first frame (else each worker loads them when it has seen enough pixels)."""
    from truthnet.plugins.mtcnn_ops import native_kernels

    if warm and native_kernels() is None:
        pytest.skip("no compiled kernels here (Numba missing, or TRUTHNET_NATIVE_KERNELS=0)")
    with IsolatedDecoder(2, timeout=120, warm=warm) as dec:
        assert dec.template is not None
        template = dec.template.proc.pid
        assert parent_pid(template) == os.getpid()
        forked = _decode(dec, clips)
        assert all(parent_pid(w.proc.pid) == template for w in dec.workers)  # forks of the template
        maps = Path(f"/proc/{template}/maps").read_text()
        assert ("llvmlite" in maps) == warm  # the kernels (Numba's LLVM) loaded there only when asked
        pids = [w.proc.pid for w in dec.workers]
    wait_until(lambda: process_gone(template) and all(process_gone(p) for p in pids), timeout=10, what="the template and its workers to end")
    monkeypatch.setattr(isolation, "TEMPLATE", False)
    with IsolatedDecoder(2, timeout=120) as dec:
        assert dec.template is None and not any(w.forked for w in dec.workers)
        fresh = _decode(dec, clips)
    for path in clips:
        _same(forked[str(path)], fresh[str(path)])


def test_a_template_that_dies_costs_only_its_speed(clips):
    """Killed before it could fork: each worker's socket closes unanswered, and the pool starts
    plain workers instead, without counting a death against any file."""
    with IsolatedDecoder(2, timeout=120) as dec:
        dec.template.proc.kill()
        got = _decode(dec, clips[:3], detect=False)
        assert not any(w.forked for w in dec.workers) and not dec.template.usable
        assert dec.restarts == 0 and dec.deaths == {}
    assert all(m.per_window for m in got.values())


def test_a_template_that_dies_under_its_workers_costs_no_file_anything(clips, tmp_path):
    """Killed while both its workers are inside a decode (an out-of-memory kill, say): its
    workers end with it, and their files are decoded again by plain workers, no death counted."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fault_decoders import faulty

    slow = []
    for i, clip in enumerate(clips[:2]):
        slow.append(tmp_path / f"slow{i}.mp4")
        slow[-1].write_bytes(Path(clip).read_bytes())
    with IsolatedDecoder(2, timeout=120, decode_fn=faulty) as dec:
        tasks = [DecodeTask(i, PAPER, str(p), 1, False) for i, p in enumerate(slow)]
        got, killed = {}, False
        for msg in dec.run(tasks):
            if not killed and all(Path(f"{p}.decoding").exists() for p in slow):
                os.kill(dec.template.proc.pid, signal.SIGKILL)  # both workers are forks, mid-decode
                killed = True
                for p in slow:
                    Path(f"{p}.decoding").unlink()
            if msg is not None:
                got[msg.key] = msg
        assert killed and not dec.template.usable
        assert dec.deaths == {} and dec.restarts == 0
        assert not any(w.forked for w in dec.workers)
    assert sorted(got) == [0, 1] and all(isinstance(m, Decoded) for m in got.values())


_THREAD_AT_IMPORT = '''
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
from truthnet.decode import default_decode


def decode(config, path, windows):
    return default_decode(config, path, windows)
'''


def test_a_template_with_a_thread_does_not_fork(clips, tmp_path, monkeypatch):
    """A decode function whose import starts a thread: forking that process is unsafe (the
    thread's locks), so the template refuses and the pool starts plain workers."""
    (tmp_path / "threaded_decode.py").write_text(_THREAD_AT_IMPORT)
    monkeypatch.syspath_prepend(str(tmp_path))  # (for the workers: not imported here, its thread not started here)

    def decode(config, path, windows):
        raise AssertionError("runs only in the workers")

    decode.__module__, decode.__qualname__ = "threaded_decode", "decode"
    with IsolatedDecoder(2, timeout=120, decode_fn=decode) as dec:
        got = _decode(dec, clips[:2], detect=None)
        assert not any(w.forked for w in dec.workers)
        t = dec.template
        assert t._pump(lambda: len(t.refused) == 2, 10) and not t.pids  # it refused both, forked none
    assert all(m.per_window for m in got.values())


def test_a_prestarted_template_serves_the_next_pool_or_ends_with_the_process(clips):
    isolation.prestart()
    t = isolation._prestarted
    assert t is not None
    with IsolatedDecoder(1, timeout=120) as dec:  # (one worker: a pool of its own would start none)
        assert dec.template is t and isolation._prestarted is None
        _decode(dec, clips[:2], detect=False)
        assert parent_pid(dec.workers[0].proc.pid) == t.proc.pid
    code = ("import sys, time; from truthnet.decode import isolation; isolation.prestart(); "
            "print(isolation._prestarted.proc.pid, flush=True); time.sleep(0.1)")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert process_gone(int(out.stdout.split()[0]))  # killed and reaped at exit, not left to end by itself


@pytest.mark.slow
@pytest.mark.allow_untrained
def test_no_forked_worker_outlives_a_scan_killed_outright(tiny_model, tmp_path, media):
    """Two workers (a template and its forks) deep in endless decodes; the scan killed with -9:
    the template sees its socket close, kills its workers and exits."""
    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("hang.mp4", "hang2.mp4"):
        (folder / name).write_bytes(media["face"].read_bytes() + name.encode())
    scan = start_faulty_scan(tiny_model, tmp_path / "r.sqlite", folder, workers=2)

    def ours() -> list[int]:
        found, parents = [], {scan.pid}
        for _ in range(2):  # the template, then its forks
            for d in Path("/proc").iterdir():
                try:
                    if d.name.isdigit() and b"truthnet.decode.worker" in (d / "cmdline").read_bytes() \
                            and parent_pid(int(d.name)) in parents and int(d.name) not in found:
                        found.append(int(d.name))
                except OSError:
                    continue
            parents |= set(found)
        return found

    try:
        wait_until(lambda: all((folder / f"{n}.decoding").exists() for n in ("hang.mp4", "hang2.mp4")),
                   what="both workers to be inside their endless decodes")
        pids = ours()
        assert len(pids) == 3  # the template and two workers
        (template,) = [p for p in pids if parent_pid(p) == scan.pid]
        assert sorted(parent_pid(p) for p in pids if p != template) == [template, template]  # its forks
    finally:
        scan.send_signal(signal.SIGKILL)
        scan.wait()
    wait_until(lambda: all(process_gone(p) for p in pids), timeout=60, what="the template and its workers to exit")


@pytest.mark.allow_untrained
def test_a_scan_takes_the_template_it_started_and_leaves_none_behind(tiny_model, tmp_path, media):
    """``api.scan`` starts the template first thing and its pool forks from it; a scan with
    nothing to decode (every file reused) stops the one it started: no process left either way."""
    from truthnet import api

    folder = tmp_path / "v"
    folder.mkdir()
    for i in range(3):
        (folder / f"clip{i}.mp4").write_bytes(media["face"].read_bytes() + bytes([i]))

    def children() -> list[bytes]:
        """The command lines of this process's decode processes still running."""
        out = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and not process_gone(int(d.name)) and parent_pid(int(d.name)) == os.getpid():
                    cmd = (d / "cmdline").read_bytes()
                    out += [cmd] if b"truthnet.decode.worker" in cmd else []
            except OSError:
                continue
        return out

    templates = []

    def during(event) -> None:  # one template while files are scored: the pre-started one, taken by the pool
        if event.result is not None:
            templates.append(sum(b"--template" in cmd for cmd in children()))

    db = tmp_path / "r.sqlite"
    first = api.scan([folder], model=tiny_model, db=db, workers=2, on_event=during)
    assert first.summary.counts.get("ok") == 3, first.summary.to_dict()
    assert templates and set(templates) == {1}
    assert isolation._prestarted is None and children() == []
    again = api.scan([folder], model=tiny_model, db=db, workers=2)
    assert again.summary.to_dict()["reused"] == 3
    assert isolation._prestarted is None and children() == []

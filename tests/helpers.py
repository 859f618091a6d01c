"""Helpers every test module shares: one way to run the CLI, one way to wait for a state.

The CLI runs in a child process with the test's environment (``conftest._isolate_user_files``
has already pointed the store, settings, caches and ``HOME`` at the test's own folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def cli_cmd(*args) -> list[str]:
    """The argv of ``truthnet ARGS`` run by this Python."""
    return [sys.executable, "-m", "truthnet.cli", *map(str, args)]


def child_env(**extra: str) -> dict[str, str]:
    """This test's environment (already isolated) for a child process, TensorFlow quiet."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def cli(*args, cwd=None, env: dict | None = None, timeout: float = 300, child: bool = False,
        **kw) -> subprocess.CompletedProcess:
    """``truthnet ARGS`` with its exit code and text output; ``env`` adds to the test's.

    By default the command runs in this process (``truthnet.cli.main``: the same parser,
    commands, consoles and exit codes, without the five seconds a child spends importing
    TensorFlow again).  ``child=True`` (or any ``subprocess.run`` keyword) runs it as a real
    ``python -m truthnet.cli`` child: for what only a process shows (signals, interpreter exit,
    import-time behaviour, long-lived runners that install their own signal handlers)."""
    if child or kw:
        return subprocess.run(cli_cmd(*args), capture_output=True, text=True, cwd=cwd, env=child_env(**(env or {})),
                              timeout=timeout, **kw)
    return _cli_here([os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args], cwd, env or {})


def _cli_here(argv: list[str], cwd, env: dict) -> subprocess.CompletedProcess:
    """``truthnet.cli.main(argv)`` with stdout/stderr captured as a child's pipes would be
    (UTF-8, strict: text a child could not print fails here too), the environment and the
    working folder restored afterwards, and an escaping exception reported as Python would
    (traceback on stderr, exit 1)."""
    import contextlib
    import io
    import traceback

    from truthnet.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
                for _ in range(2))
    os.environ.update({"TF_CPP_MIN_LOG_LEVEL": "3", **{k: str(v) for k, v in env.items()}})
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    text = [s.buffer.getvalue().decode("utf-8") for s in (out, err)]
    return subprocess.CompletedProcess(["truthnet", *argv], code, text[0], text[1])


def popen_sigterm_blocked(cmd, **kw) -> subprocess.Popen:
    """``subprocess.Popen`` as a parent that blocks SIGTERM spawns (some supervisors do; a CI
    worker once did): the signal mask survives ``exec``, so the child starts with SIGTERM
    blocked and must unblock what it handles.  Blocked in this thread around the spawn only
    (``preexec_fn`` is unsafe with threads)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        return subprocess.Popen(cmd, **kw)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def wait_until(cond, timeout: float = 120.0, what: str = "condition", interval: float = 0.05) -> None:
    """Poll ``cond`` until it holds; the timeout only bounds a hang, it never measures speed."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


async def show_folder(pilot, app, folder, timeout: float = 120.0) -> None:
    """Make the TUI show ``folder``'s videos, once its folder tree has loaded and highlighted its
    root: that first highlight (late on a loaded machine) would move the view back to the root."""
    import asyncio
    import time
    from pathlib import Path

    tree = app.query_one("#tree")
    t0 = time.monotonic()
    while tree.cursor_node is None:
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting for the folder tree")
        await asyncio.sleep(0.05)
    await pilot.pause()  # the highlight's message is handled
    app.folder = Path(folder)
    app.refresh_videos()


async def wait_for(pilot, cond, timeout: float = 240.0) -> None:
    """Let the app run until ``cond()`` holds (``timeout`` only bounds a hang)."""
    import time

    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.1)


def more_files_than_in_flight(batch_size: int) -> int:
    """More files than a scan on this machine can hold between decoding and its verdict (one per
    decode worker, two per detection thread, a batch filling, one being scored), plus two seen
    and two more: a scan stopped after its second verdict cannot have finished them all."""
    from truthnet.engine import plan_threads

    # (detecting in the decode workers or in threads here: the larger of the two)
    held = max(workers + 2 * detect for workers, detect in (plan_threads(False), plan_threads(True)))
    return held + (batch_size - 1) + batch_size + 4


def parent_pid(pid: int) -> int:
    """The parent of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def start_faulty_scan(model, db, folder, workers: int) -> subprocess.Popen:
    """A scan of ``folder`` in a child process, decoding with ``fault_decoders.faulty`` in
    ``workers`` decode workers (hour-long time limit: a "hang*" file stays in its decode)."""
    from pathlib import Path

    code = ("import sys; sys.path.insert(0, sys.argv[3]); import truthnet; from fault_decoders import faulty; "
            "from truthnet.collect import collect_files; from truthnet.scanning import Scanner; from truthnet.store import Store; "
            f"Scanner(truthnet.load_classifier(sys.argv[1]), Store(sys.argv[2]), workers={int(workers)}, timeout=600, "
            "decode_fn=faulty).scan(collect_files([sys.argv[4]]).files)")
    return subprocess.Popen([sys.executable, "-c", code, str(model), str(db), str(Path(__file__).parent), str(folder)],
                            env=child_env(), stderr=subprocess.DEVNULL)

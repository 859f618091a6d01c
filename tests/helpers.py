"""Helpers every test module shares: one way to run the CLI, one way to wait for a state.

The CLI runs in a child process with the test's environment (``conftest._isolate_user_files``
has already pointed the store, settings, caches and ``HOME`` at the test's own folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def cli_cmd(*args) -> list[str]:
    """The argv of ``truthnet ARGS`` run by this Python."""
    return [sys.executable, "-m", "truthnet.cli", *map(str, args)]


def child_env(**extra: str) -> dict[str, str]:
    """This test's environment (already isolated) for a child process, TensorFlow quiet."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def cli(*args, cwd=None, env: dict | None = None, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``truthnet ARGS`` in a child process, text output captured; ``env`` adds to the test's."""
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, cwd=cwd, env=child_env(**(env or {})),
                          timeout=timeout, **kw)


def wait_until(cond, timeout: float = 120.0, what: str = "condition", interval: float = 0.05) -> None:
    """Poll ``cond`` until it holds; the timeout only bounds a hang, it never measures speed."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)

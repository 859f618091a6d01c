"""``truthnet-tui [DIR] [--model M] [--db FILE]``: the triage terminal app."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="truthnet-tui", description="TruthNet triage terminal app")
    parser.add_argument("dir", nargs="?", default=".", help="folder to browse (default: current)")
    parser.add_argument("--model", "-m", help="model file (default: `truthnet default-model`)")
    parser.add_argument("--db", help="results database (default: the same as `truthnet scan`)")
    args = parser.parse_args(argv)
    from pathlib import Path

    if not Path(args.dir).is_dir():
        print(f"error: {args.dir}: not a folder", file=sys.stderr)
        return 3
    from ..errors import TruthnetError
    from .app import make_app

    try:
        app = make_app(args.dir, model=args.model, db=args.db)
    except TruthnetError as exc:  # a damaged results database or settings file: say which, and how out
        print(f"error: {exc}", file=sys.stderr)
        return 3
    log = _divert_native_stderr()
    try:
        app.run()
    finally:
        _restore(log)
    return 0


def _divert_native_stderr():
    """TensorFlow and FFmpeg write straight to file descriptor 2, which would scribble over the
    screen: keep the terminal for Textual on a duplicate descriptor and send fd 2 to a log file."""
    import os

    if not sys.stderr.isatty():
        return None
    from platformdirs import user_log_dir

    log_dir = user_log_dir("truthnet")
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, "truthnet-tui.log")
    saved = os.dup(2)
    term = os.fdopen(os.dup(2), "w", buffering=1)
    logfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(logfd, 2)
    os.close(logfd)
    old = sys.__stderr__, sys.stderr
    sys.__stderr__ = sys.stderr = term  # Textual's driver writes to sys.__stderr__
    return saved, term, old


def _restore(state) -> None:
    import os

    if state is None:
        return
    saved, term, (old_dunder, old) = state
    os.dup2(saved, 2)
    os.close(saved)
    sys.__stderr__, sys.stderr = old_dunder, old
    term.close()

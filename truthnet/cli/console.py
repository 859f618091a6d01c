"""Consoles for the CLI's output (tables on stdout, messages on stderr)."""

from __future__ import annotations

import sys


def stdout_console():
    """A console for tables on stdout: the terminal's width (or ``$COLUMNS``), else 200 columns
    when piped (rich's 80-column default squeezes a wide table into one character per line in a
    log file)."""
    import os

    from rich.console import Console

    return Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=200)


def stderr_console():
    """A console for messages on stderr; ``soft_wrap``: a message is one line however narrow
    the terminal (grep-able logs)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)

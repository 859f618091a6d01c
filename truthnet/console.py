"""Consoles for the CLI's output (tables on stdout)."""

from __future__ import annotations

import sys


def stdout_console():
    """A console for tables on stdout: the terminal's width (or ``$COLUMNS``), else 200 columns
    when piped (rich's 80-column default squeezes a wide table into one character per line in a
    log file)."""
    import os

    from rich.console import Console

    return Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=200)

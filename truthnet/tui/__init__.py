"""``truthnet-tui``: the triage terminal app (placeholder until its issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "truthnet-tui is coming: the Textual triage app is not built yet.\n"
        "Meanwhile use the headless commands: `truthnet --help`.",
        file=sys.stderr,
    )
    return 0

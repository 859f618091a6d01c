"""Process exit codes of every ``truthnet`` command (documented in the README)."""

from __future__ import annotations

import argparse
import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  #: success
    FAKES_FOUND = 1  #: ``scan --fail-on-fake`` found at least one fake
    SOME_FAILED = 2  #: some files could not be scored (each has a status and reason)
    USAGE = 3  #: bad command line, configuration or dataset
    MODEL = 4  #: the model could not be loaded or does not fit
    INTERRUPTED = 130  #: stopped by Ctrl-C / SIGTERM; work done so far is kept


class UsageParser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 is "some files failed" here, usage is 3."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")

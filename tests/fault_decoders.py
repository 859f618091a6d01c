"""Decoders that crash or hang on purpose, run inside the scanner's isolated worker processes."""

import os
import time

from truthnet.scanning import default_decode


def faulty(config, path, windows):
    name = os.path.basename(path)
    if name.startswith("crash"):
        os.abort()  # a native crash: SIGABRT kills the worker process
    if name.startswith("hang"):
        time.sleep(600)
    return default_decode(config, path, windows)

"""Decoders that crash or hang on purpose, run inside the scanner's isolated worker processes."""

import os
import time

from truthnet.scanning import default_decode


def faulty(config, path, windows):
    name = os.path.basename(path)
    if name.startswith("crash"):
        os.abort()  # a native crash: SIGABRT kills the worker process
    if name.startswith("oncecrash"):
        marker = path + ".attempted"  # the first worker to see the file dies; a fresh one decodes it
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), 9)  # like an out-of-memory kill
    if name.startswith("hang"):
        time.sleep(600)
    return default_decode(config, path, windows)

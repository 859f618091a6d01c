"""Decoders that crash or hang on purpose, run inside the scanner's isolated worker processes."""

import os
import threading
import time

from truthnet.decode import default_decode


def faulty(config, path, windows):
    name = os.path.basename(path)
    if name.startswith("crash"):
        os.abort()  # a native crash: SIGABRT kills the worker process
    if name.startswith("oncecrash"):
        marker = path + ".attempted"  # the first worker to see the file dies; a fresh one decodes it
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), 9)  # like an out-of-memory kill
    if name.startswith("slow"):
        open(path + ".decoding", "w").close()
        time.sleep(3)
    if name.startswith("hang"):
        open(path + ".decoding", "w").close()  # a test can wait for the worker to be in here
        time.sleep(600)
    return default_decode(config, path, windows)


#: ``held`` blocks on "hang*" files until a test sets this (a thread cannot be killed, and an
#: endless decode thread would keep the interpreter from exiting after the test)
RELEASE = threading.Event()


def held(config, path, windows):
    if os.path.basename(path).startswith("hang"):
        RELEASE.wait(600)
    return default_decode(config, path, windows)

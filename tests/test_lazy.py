"""TensorFlow's import silences fd 2; from a thread (the scan loads the weights while it decodes)
that must not swallow the program's own messages, nor outlast the imports."""

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import os, sys, threading
    from truthnet._lazy import _quiet_native_stderr

    inside, first_out = threading.Barrier(2), threading.Event()

    def importer(name, leave_first):
        with _quiet_native_stderr():
            inside.wait()  # both threads are inside at once
            os.write(2, f"native {name}\\n".encode())  # what TensorFlow's C++ logging does
            sys.stderr.write(f"python {name}\\n")  # what the program does (one write: two threads print at once)
            if leave_first:
                return
            first_out.wait()  # still inside after the other left
            os.write(2, b"native after the first left\\n")
            sys.stderr.write("python after the first left\\n")

    a = threading.Thread(target=importer, args=("a", True))
    b = threading.Thread(target=importer, args=("b", False))
    a.start(); b.start(); a.join(); first_out.set(); b.join()
    os.write(2, b"native after both\\n")
    sys.stderr.write("python after both\\n")
    """
)


def test_overlapping_quiet_imports_keep_python_messages_and_restore_fd2():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    # the program's own writes show while the imports are silenced, from any thread ...
    for want in ("python a", "python b", "python after the first left", "python after both"):
        assert want in lines, r.stderr
    # ... native writes during the imports do not, even after one of two imports ended ...
    assert not [line for line in lines if line.startswith("native") and line != "native after both"], r.stderr
    # ... and once the last ends, fd 2 is the real stderr again
    assert "native after both" in lines

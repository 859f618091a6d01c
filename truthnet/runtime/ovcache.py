"""OpenVINO for TruthNet: imported without its telemetry, and networks converted from
TensorFlow once and cached on disk, checked on every load.

Two users: MTCNN's three networks (:mod:`truthnet.plugins.mtcnn_openvino`) and a model file's
frame encoder and temporal head (:mod:`truthnet.runtime.parts`).  An entry is a folder holding
the networks in OpenVINO's own format and, in ``check.npz``, TensorFlow's outputs on a fixed
input.  Loading an entry runs the networks on that input and compares; an entry that is
missing, damaged or no longer matches (another CPU, another OpenVINO) is converted again from
TensorFlow, which stays the judge, and replaced.  Since an entry's check outputs vouch for its
networks, only entries this user owns and alone can write are used (:func:`check_owner`).  Caching is best effort: a read-only or full
cache folder means converting every time, never a failed scan.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")

_log = logging.getLogger(__name__)


def available() -> bool:
    """Whether OpenVINO is installed (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def import_openvino():
    """``openvino``, without its telemetry package, which its import would otherwise load (it
    writes an id under ``~/intel`` and its converter reports usage over the network): evidence
    tooling does not phone home."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # its import then falls back to a stub
    import openvino

    return openvino


_core = None
_core_lock = threading.RLock()


def core():
    """The process's one ``ov.Core``, kept for the process's life, every read and compile under
    one lock.  A new Core per load crashed a test worker with a segfault in ``compile_model``
    after many loads in one process (once in a full test run under load); ultralytics met the same
    with repeated Cores (ultralytics/ultralytics#25864: "Reuse one OpenVINO Core to fix segfault
    on repeated model loads")."""
    global _core
    with _core_lock:
        if _core is None:
            _core = import_openvino().Core()
        return _core


def read(path) -> object:
    """``core().read_model(path)``, under the process's OpenVINO lock."""
    with _core_lock:
        return core().read_model(str(path))


def lock() -> threading.RLock:
    """The process's OpenVINO lock (re-entrant): hold it to edit a model and compile it in one go."""
    return _core_lock


def compile(model, config: dict):
    """``core().compile_model(model, "CPU", config)``, under the process's OpenVINO lock."""
    with _core_lock:
        return core().compile_model(model, "CPU", config)


def frozen_graph(fn, signature, name: str, *, fold: bool = False):
    """``fn`` (a Keras model or any callable TensorFlow can trace) read by OpenVINO from
    TensorFlow's frozen graph of it.  Reading the frozen graph takes ~0.1 s a network where
    ``ov.convert_model`` takes 1.5-2 s.  The graph goes through a temporary file, deleted once
    read (OpenVINO's TensorFlow reader takes a path).  ``fold``: what the graph computes from
    its weights alone is computed by TensorFlow first (:func:`folded_by_tensorflow`)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(fn, input_signature=list(signature))
    frozen = convert_variables_to_constants_v2(concrete.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    if fold:
        graph_def = folded_by_tensorflow(graph_def, [t.name for t in frozen.outputs])
    with tempfile.TemporaryDirectory(prefix="truthnet-ov-") as folder:
        path = os.path.join(folder, f"{name}.pb")
        with open(path, "wb") as fh:
            fh.write(graph_def.SerializeToString())
        return read(path)


_CONTROL_FLOW = frozenset({"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "RefEnter",
                           "RefExit", "RefMerge", "RefSwitch", "RefNextIteration"})


_EXPANDING = frozenset({"Fill", "Tile", "BroadcastTo", "ZerosLike", "OnesLike"})


def folded_by_tensorflow(graph_def, outputs: list[str]):
    """``graph_def`` with each value that depends on no input (a batch normalisation's
    ``gamma * rsqrt(variance + epsilon)`` and ``beta - mean * that``) computed by TensorFlow's
    kernels and stored as a constant.  OpenVINO would fold them itself, with its own arithmetic:
    for MobileNetV2 a fifth of the scales and 6 % of the shifts then differ from Keras's in the last bit.
    Folded: single-output values of ops typed by a numeric ``T``, outside loops; the rest (and
    everything, where TensorFlow cannot compute them here) is left to OpenVINO.  ``outputs``:
    the graph's output tensors (what is kept)."""
    nodes = {n.name: n for n in graph_def.node}
    fold = _to_fold(graph_def, nodes, _weights_only(nodes), outputs)
    values = _computed(graph_def, fold) if fold else None
    if values is None:
        return graph_def
    return _with_constants(graph_def, dict(zip(fold, values)), outputs)


def _source(inp: str) -> str:
    """The node an input names (``^control``, ``node:1`` -> ``node``)."""
    return inp.lstrip("^").split(":")[0]


def _weights_only(nodes: dict) -> Callable[[str], bool]:
    """``constant(name)``: whether the node's value depends on no input of the graph."""
    from tensorflow.python.framework import op_def_registry

    memo: dict[str, bool] = {}

    def constant(name: str) -> bool:  # (iterative: a deep network would exhaust the recursion)
        stack, visiting = [name], set()
        while stack:
            n = stack[-1]
            node = nodes[n]
            op_def = op_def_registry.get(node.op)
            if n in memo:
                pass
            elif node.op == "Const":  # (one under a control edge lives in a loop's frame: not folded)
                memo[n] = not node.input
            elif (not node.input or op_def is None or op_def.is_stateful or node.op in _CONTROL_FLOW
                    or node.op.startswith("Placeholder")):
                memo[n] = False
            else:
                pending = [_source(i) for i in node.input if _source(i) not in memo]
                if pending and n not in visiting:
                    visiting.add(n)
                    stack.extend(pending)
                    continue
                # (pending on a second visit: a loop, TensorFlow 1's control flow: never folded)
                memo[n] = not pending and all(memo[_source(i)] for i in node.input)
            stack.pop()
        return memo[name]

    return constant


def _to_fold(graph_def, nodes: dict, constant: Callable[[str], bool], outputs: list[str]) -> list[str]:
    """The weights-only tensors the rest of the graph reads, that TensorFlow should compute."""
    import tensorflow as tf

    wanted: dict[str, None] = {}
    for node in graph_def.node:
        if not constant(node.name):
            for inp in node.input:
                if not inp.startswith("^") and constant(_source(inp)) and nodes[_source(inp)].op != "Const":
                    wanted[inp if ":" in inp else inp + ":0"] = None
    wanted.update((out, None) for out in outputs if constant(_source(out)) and nodes[_source(out)].op != "Const")
    numbers = {tf.float32.as_datatype_enum, tf.float64.as_datatype_enum, tf.float16.as_datatype_enum,
               tf.int32.as_datatype_enum, tf.int64.as_datatype_enum}
    # a node whose other outputs are read stays whole; so does one that makes a larger value
    # than it reads (a constant broadcast: OpenVINO keeps it small); and one typed otherwise than
    # by a numeric "T" (a list, handle or variant)
    read_beyond_0 = {_source(i) for n in graph_def.node for i in n.input
                     if not i.startswith("^") and ":" in i and not i.endswith(":0")}
    return [t for t in wanted if t.endswith(":0") and t[:-2] not in read_beyond_0
            and nodes[t[:-2]].op not in _EXPANDING
            and "T" in nodes[t[:-2]].attr and nodes[t[:-2]].attr["T"].type in numbers]


def _computed(graph_def, tensors: list[str]) -> list | None:
    """The tensors' values by TensorFlow's kernels (the graph's own ops, as written: no grappler),
    or None where TensorFlow cannot compute them (then OpenVINO folds them, as it would have)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    try:
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            return session.run(tensors)
    except Exception as exc:
        _log.debug("TensorFlow could not compute the graph's weights-only values: %s: %s", type(exc).__name__, exc)
        return None


def _with_constants(graph_def, values: dict, outputs: list[str]):
    """``graph_def`` with each ``node:0`` of ``values`` a constant, pruned to what the outputs
    still read (the folded values' own inputs are gone)."""
    from tensorflow.python.framework import tensor_util

    out = type(graph_def)()
    out.CopyFrom(graph_def)
    by_name = {n.name: n for n in out.node}
    for tensor, value in values.items():
        node = by_name[tensor[:-2]]
        proto = tensor_util.make_tensor_proto(value)
        node.Clear()
        node.name = tensor[:-2]
        node.op = "Const"
        node.attr["value"].tensor.CopyFrom(proto)
        node.attr["dtype"].type = proto.dtype
    keep, todo = set(), [_source(o) for o in outputs]
    while todo:
        n = todo.pop()
        if n not in keep:
            keep.add(n)
            todo.extend(_source(i) for i in by_name[n].input)
    pruned = type(graph_def)()
    pruned.versions.CopyFrom(out.versions)
    pruned.library.CopyFrom(out.library)
    pruned.node.extend(n for n in out.node if n.name in keep)
    return pruned


def cached(folder: Path | None, load: Callable[[Path], T], convert: Callable[[], tuple[T, dict, dict]],
           what: str, log: logging.Logger | None = None) -> T:
    """What ``load(folder)`` gives from the cache entry ``folder``; where there is none or it
    fails (any exception: damaged, forged, another CPU), what ``convert()`` gives, whose
    ``(result, {name: ov.Model}, {name: reference array})`` is then saved as the entry
    (:func:`save`).  ``folder`` None: no cache."""
    log = log or _log

    def trusted_load(entry: Path) -> T:
        check_owner(entry)
        return load(entry)

    replace = False
    if folder is not None:
        try:
            present = folder.exists()
        except OSError:  # an unsearchable cache folder: no cache
            present, folder = False, None
        if present:
            try:
                return trusted_load(folder)
            except Exception as exc:  # damaged, not matching or not ours: TensorFlow is the judge
                log.warning("converting %s again: the cached ones in %s could not be used (%s: %s)",
                            what, folder, type(exc).__name__, exc)
                replace = True
    result, models, reference = convert()
    if folder is not None:
        save(folder, models, reference, replace=replace, usable=lambda f: usable(f, load), what=what, log=log)
        try:
            check_owner(folder)
        except Exception as exc:  # e.g. a file system that keeps no permissions: every run converts
            log.info("%s are not cached in %s: %s", what, folder.parent, exc)
    return result


class UntrustedEntry(RuntimeError):
    """A cache entry that another user owns or could have written."""


def check_owner(entry: Path) -> None:
    """An entry is used only when this user owns it and no one else can write to it (the folder
    and each file in it, none a link): its check outputs vouch for its networks, so networks and
    outputs planted together by someone else would pass that check.  (Not checked where the OS
    has no user ids.)"""
    import stat

    if not hasattr(os, "geteuid"):
        return
    uid = os.geteuid()
    for path in (entry, *entry.iterdir()):
        st = path.lstat()
        if st.st_uid != uid or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
            raise UntrustedEntry(f"{path.name} is owned by uid {st.st_uid} with mode {stat.filemode(st.st_mode)}: "
                                 "only entries this user owns and alone can write are used")


def usable(folder: Path, load: Callable[[Path], object]) -> bool:
    """Whether an entry is trusted (:func:`check_owner`), loads and passes its check now
    (another process may have repaired it)."""
    try:
        check_owner(folder)
        load(folder)
        return True
    except Exception:
        return False


def save(folder: Path, models: dict, reference: dict, *, replace: bool = False,
         usable: Callable[[Path], bool] = lambda f: True, what: str = "networks",
         log: logging.Logger | None = None) -> None:
    """The converted networks and TensorFlow's check outputs, written to a fresh folder and
    moved into place whole.  An entry that is there already is kept (another process wrote it
    meanwhile), unless ``replace`` (it failed its check) and it still is not ``usable``: then it
    is set aside and removed.  Nothing here raises: caching never stops the work."""
    ov = import_openvino()
    tmp = old = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(folder.parent)
        tmp = tempfile.mkdtemp(prefix=".partial-", dir=folder.parent)
        for name, model in models.items():
            ov.save_model(model, os.path.join(tmp, f"{name}.xml"), compress_to_fp16=False)
        np.savez(os.path.join(tmp, "check.npz"), **reference)
        umask = _umask()
        # readable as the umask allows (mkdtemp's 0700 would be stricter than the user's other
        # files), writable by this user alone whatever the umask (see check_owner)
        for name in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name), 0o644 & ~umask)
        os.chmod(tmp, 0o755 & ~umask)
        if folder.exists():
            if not replace or usable(folder):
                return
            old = tempfile.mkdtemp(prefix=".stale-", dir=folder.parent)
            os.replace(folder, os.path.join(old, "entry"))
        os.replace(tmp, folder)
        tmp = None
    except Exception as exc:  # read-only or full cache folder, another process in the way: not cached
        (log or _log).debug("%s not cached in %s: %s: %s", what, folder, type(exc).__name__, exc)
    finally:
        for leftover in (tmp, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)


#: a ``.partial-*`` or ``.stale-*`` folder older than this is a killed process's, never read again
LEFTOVER_AGE_S = 3600.0


def _remove_leftovers(parent: Path) -> None:
    """Remove this user's ``.partial-*``/``.stale-*`` folders older than :data:`LEFTOVER_AGE_S`
    (a process killed while writing an entry leaves one; a live writer's is minutes old at most)."""
    import time

    try:
        names = os.listdir(parent)
    except OSError:
        return
    now = time.time()
    for name in names:
        if not name.startswith((".partial-", ".stale-")):
            continue
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if now - st.st_mtime > LEFTOVER_AGE_S and (not hasattr(os, "geteuid") or st.st_uid == os.geteuid()):
            shutil.rmtree(path, ignore_errors=True)


def _umask() -> int:
    """This process's umask, read without setting it (``os.umask`` would change it for every
    thread meanwhile: a file another thread creates then could come out world-writable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def user_entry(folder: Path) -> Path:
    """The entry for ``folder``'s key that belongs to this user (its uid in the name): in a cache
    folder several users share, each converts and trusts their own (:func:`check_owner`)."""
    return folder.with_name(f"{folder.name}-u{os.geteuid()}") if hasattr(os, "geteuid") else folder


def read_reference(folder: Path) -> dict:
    """The check outputs stored in an entry."""
    with np.load(folder / "check.npz") as stored:
        return {key: stored[key] for key in stored.files}

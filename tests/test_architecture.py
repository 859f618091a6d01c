"""The shape of the code: one engine for every entry point, no import cycles, the TUI and the
headless code kept apart, argparse's usage errors on the documented exit code."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from helpers import cli

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "truthnet"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every truthnet module (and top-level third-party package) ``path`` imports, at module
    level or inside functions: a lazy import still couples two modules."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if mod == "truthnet.plugins" and isinstance(node, ast.Constant) and str(node.value).startswith("truthnet."):
            out.add(node.value)  # the registry imports its built-in plugin modules by name
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = set()
            for a in node.names:  # `from . import scan` imports a module (or a package)
                sub = PKG / Path(*(target.split(".")[1:] + [a.name]))
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    subs.add(f"{target}.{a.name}")
            out.update(subs)
            if len(subs) < len(node.names):  # names defined by the package itself
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PKG.rglob("*.py"):
        mod = _module_name(path)
        graph[mod] = {m for m in _imports(path) if m.startswith("truthnet.") or m == "truthnet"}
    # a package's __init__ is imported before any of its modules: edges to it are not cycles
    return {m: {d for d in deps if d != "truthnet" and d in graph and d != m} for m, deps in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_plugin_package(a: str, b: str) -> bool:
    # truthnet.plugins (the registry) and its built-in plugin modules: built-ins register
    # through the registry's hook markers, as third-party plugins do
    return a.startswith("truthnet.plugins") and b.startswith("truthnet.plugins")


def test_no_import_cycles_between_modules():
    graph = _graph()
    assert "truthnet.engine" in graph and "truthnet.api" in graph  # the parser sees the package
    cycles = [c for c in _cycles(graph) if not all(_is_plugin_package(m, c[0]) for m in c)]
    assert cycles == [], f"import cycles: {cycles}"


def test_three_layers_core_cli_and_tui_are_kept_apart():
    """The headless core (everything outside ``truthnet.cli`` and ``truthnet.tui``) imports
    neither of them; the TUI imports no CLI; nothing outside the TUI imports Textual; only the
    CLI starts the TUI (``truthnet tui``) and ``python -m truthnet`` runs the CLI.  Test support
    (``truthnet.testing``) is imported by no runtime module."""
    graph = _graph()
    assert any(m.startswith("truthnet.cli.") for m in graph), "the CLI is a package"
    for mod, deps in graph.items():
        layer = mod.split(".")[1] if "." in mod else ""
        if layer == "tui":
            assert not {d for d in deps if d.startswith("truthnet.cli")}, f"{mod} imports the CLI"
        elif layer not in ("cli", "__main__", "testing"):
            assert not {d for d in deps if d.startswith(("truthnet.cli", "truthnet.tui"))}, f"{mod} imports the CLI or TUI"
        if layer != "testing":
            assert not {d for d in deps if d.startswith("truthnet.testing")}, f"{mod} imports test support"
        if layer == "cli":
            assert not {d for d in deps if d.startswith("truthnet.tui")} or mod == "truthnet.cli", mod
    for path in PKG.rglob("*.py"):
        mod = _module_name(path)
        if not mod.startswith("truthnet.tui"):
            assert not {m for m in _imports(path) if m.split(".")[0] == "textual"}, f"{mod} imports textual"


def test_at_most_30_modules_directly_in_the_package_and_no_function_over_60_lines():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 30, top
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{_module_name(path)}.{node.name}: {lines}")
    assert long == [], long


def test_headless_entry_points_load_without_textual_or_tensorflow_and_leave_the_environment_alone(python):
    code = ("import os, sys; before = dict(os.environ)\n"
            "import truthnet, truthnet.api, truthnet.cli, truthnet.engine, truthnet.scanning, truthnet.jobs\n"
            "truthnet.cli.build_parser()\n"
            "print(sorted(m for m in ('textual', 'tensorflow', 'keras', 'cv2') if m in sys.modules))\n"
            "print(sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k)))")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "[]"]  # nothing heavy imported, no variable set




@pytest.mark.parametrize("args", [["scan", "--no-such-flag", "x"], ["scan"], ["results", "--scan", "seven"],
                                  ["no-such-command"]])
def test_argparse_usage_errors_exit_with_the_usage_code(python, args):
    from truthnet.cli.exitcodes import ExitCode

    r = cli(*args)
    assert r.returncode == ExitCode.USAGE == 3, (r.returncode, r.stderr)
    assert "usage:" in r.stderr and "error:" in r.stderr


# --- one engine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evidence(tmp_path_factory, media, small_corpus):
    """Good, corrupt (bit-flipped), truncated, empty, text and random files in one folder; and
    realistic footage (H.264 with long GOPs and B-frames, VFR) damaged by flipped bits and a
    zeroed range."""
    d = tmp_path_factory.mktemp("evidence")
    for key in ("face", "short", "face_avi", "truncated", "empty", "text", "random", "noface"):
        src = media[key]
        (d / f"{key}{src.suffix}").write_bytes(src.read_bytes())
    data = bytearray(media["face"].read_bytes())
    rng = __import__("numpy").random.default_rng(7)
    for i in rng.integers(len(data) // 4, len(data), 400):  # flip bits in the frame data, not the header
        data[i] ^= 1 << int(rng.integers(0, 8))
    (d / "bitflipped.mp4").write_bytes(bytes(data))
    for name, seed in (("480p25-long", 5), ("vfr-480p", 6)):
        data = bytearray(small_corpus[name].path.read_bytes())
        rng = __import__("numpy").random.default_rng(seed)
        for i in rng.integers(len(data) // 4, 3 * len(data) // 4, 300):
            data[i] ^= 1 << int(rng.integers(0, 8))
        mid = len(data) // 2
        data[mid : mid + 4096] = bytes(4096)
        (d / f"damaged-{name}.mp4").write_bytes(bytes(data))
    return d


@pytest.mark.allow_untrained
def test_api_and_scan_give_the_same_status_and_score_for_every_file(evidence, tmp_path, python, tiny_model):
    """The same bytes give the same status, decoded frames (frames_sha256) and score through every
    entry point, damaged realistic streams included: scan, score_videos in processes and in
    threads, score_video, and a queued scan job (each a run of its own).  (Ray: tests/test_ray.py.)"""
    import truthnet
    from truthnet.store import Store

    model = tiny_model
    clf = truthnet.load_classifier(model)
    files = sorted(str(p) for p in evidence.iterdir())
    api = {r.path: r for r in clf.score_videos(files, isolation="process")}
    threads = {r.path: r for r in clf.score_videos(files, isolation="thread")}
    single = {p: clf.score_video(p) for p in files}
    db = tmp_path / "r.sqlite"
    r = cli("scan", evidence, "--model", model, "--db", db, "--json", timeout=600)
    assert r.returncode == 2, r.stderr[-2000:]  # some files cannot be scored
    scan = {Path(d["path"]).name: d for d in map(json.loads, r.stdout.splitlines()) if "summary" not in d}
    assert cli("jobs", "add", "scan", evidence, "-m", model, "--force", "--db", db).returncode == 0
    ran = cli("jobs", "run", "--device", "cpu", "--until-empty", "--skip-gpu-check", "--db", db, timeout=600, child=True)
    assert ran.returncode == 0, ran.stderr[-2000:]
    job_scan = max(s["id"] for s in Store(db).scans())
    job = {Path(x.path).name: x for x in Store(db).results(job_scan)}
    assert set(scan) == {Path(p).name for p in files} == set(job)
    statuses = set()
    for p in files:
        s = scan[Path(p).name]
        for other in (api[p], threads[p], single[p], job[Path(p).name]):
            assert other.status == s["status"], (p, other.status, s["status"], other.reason, s["reason"])
            assert other.frames_sha256 == s["frames_sha256"], p
            if s["score"] is None:
                assert other.score is None
            else:
                assert abs(other.score - s["score"]) < 1e-6, (p, other.score, s["score"])
        statuses.add(s["status"])
    assert all(scan[f"damaged-{n}.mp4"]["frames_sha256"] for n in ("480p25-long", "vfr-480p"))
    assert {"ok", "not_a_video", "decode_error"} <= statuses

"""Any bytes in a file name, and the faults around a scan: names are stored losslessly and shown
as text (never markup, never a second line, never a spreadsheet formula), every verdict names its
model, a malformed model card is one error line, a read-only store is still readable, and a scan
whose process died is shown ``interrupted``."""

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import zipfile

import pytest
from helpers import cli, wait_until

pytestmark = pytest.mark.allow_untrained

NAMES = [b"bad\xff\xfename.mp4", b"a\nFAKE 0.9999 forged.mp4", b"[bold red]x[@click=app.quit]y.mp4",
         b"\x1b[31mred\x1b[0m.mp4"]


@pytest.fixture
def nasty(media, tmp_path):
    """A case folder whose own name starts like a formula, holding the names above and a
    sub-folder ``mk[/]sub`` (``mk[`` then ``]sub``)."""
    root = os.fsencode(tmp_path) + b"/=case"
    os.makedirs(root + b"/mk[/]sub")
    data = media["short"].read_bytes()
    for name in NAMES:
        with open(root + b"/" + name, "wb") as fh:
            fh.write(data)
    with open(root + b"/mk[/]sub/c.mp4", "wb") as fh:
        fh.write(data)
    return root


def test_names_with_any_bytes_are_scanned_stored_losslessly_and_printed_one_line_each(nasty, none_model, tmp_path):
    from truthnet.store import Store

    db, out = tmp_path / "r.sqlite", tmp_path / "out.csv"
    root = os.fsdecode(nasty)
    r = cli("scan", root, "-r", "-m", none_model, "--db", db, "--csv", out, env={"COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and "\x1b" not in r.stdout  # one line per file, no escape sequence reaches the terminal
    assert all(re.match(r"^(FAKE|REAL) \d\.\d{4} (>=|< ) 0\.50  =case/", ln) for ln in lines), lines
    assert any(ln.endswith(r"=case/a\nFAKE 0.9999 forged.mp4") for ln in lines)
    assert any(ln.endswith(r"=case/bad\xff\xfename.mp4") for ln in lines)
    # the store keeps the exact bytes of every name
    stored = {os.fsencode(x.path) for x in Store(db).results()}
    assert stored == {nasty + b"/" + n for n in NAMES} | {nasty + b"/mk[/]sub/c.mp4"}
    # the CSV: readable text for undecodable bytes, formulas neutralised, the model named on every row
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {row["file"] for row in rows} >= {r"'=case/bad\xff\xfename.mp4", "'=case/mk[/]sub/c.mp4"}
    sha = hashlib.sha256(open(none_model, "rb").read()).hexdigest()
    assert {(row["model"], row["model_sha256"]) for row in rows} == {(none_model, sha)}
    # `results`: the names as typed, never rendered as markup
    shown = cli("results", "--db", db, "--scan", "1", env={"COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert "[bold red]x[@click=app.quit]y.mp4" in shown.stdout and "mk[/]sub/c.mp4" in shown.stdout
    assert r"bad\xff\xfename.mp4" in shown.stdout and "\x1b" not in shown.stdout
    # the JSON summary names the model and its hash; the per-file path keeps the bytes
    again = cli("scan", root, "-r", "-m", none_model, "--db", db, "--json").stdout.splitlines()
    summary = json.loads(again[-1])
    assert (summary["model"], summary["model_sha256"], summary["threshold"]) == (none_model, sha, 0.5)
    assert {os.fsencode(json.loads(x)["path"]) for x in again[:-1]} == stored


def test_a_job_on_a_markup_folder_lists_and_logs_as_text(nasty, none_model, tmp_path):
    db = tmp_path / "r.sqlite"
    target = os.fsdecode(nasty + b"/mk[")
    added = cli("jobs", "add", "scan", target, "-r", "-m", none_model, "--db", db)
    assert added.returncode == 0, added.stderr
    listed = cli("jobs", "list", "--db", db, env={"COLUMNS": "300"})
    assert listed.returncode == 0 and "=case/mk[" in listed.stdout, listed.stderr
    bad = cli("jobs", "add", "scan", os.fsdecode(nasty + b"/bad\xff\xfename.mp4"), "-m", none_model, "--db", db)
    assert bad.returncode == 3 and "valid UTF-8" in bad.stderr and "Traceback" not in bad.stderr


async def test_the_tui_shows_names_as_text_and_details_name_hashes_and_model(nasty, none_model, tmp_path):
    from truthnet import api
    from truthnet.paths import one_line
    from truthnet.tui.app import make_app

    db = tmp_path / "r.sqlite"
    api.scan([os.fsdecode(nasty)], model=none_model, db=db)
    app = make_app(os.fsdecode(nasty), model=none_model, db=str(db), start_jobs=False)
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.pause(0.5)
        table = app.query_one("#videos")
        names = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert sorted(n.plain for n in names) == sorted(one_line(os.fsdecode(n)) for n in NAMES)
        assert all(not n.spans for n in names)  # nothing in a name became a style or an action
        bad = os.fsdecode(nasty + b"/" + NAMES[0])
        app.show_details(bad)
        await pilot.pause(0.5)
        summary = str(app.screen.query_one("#details-summary").render())
        assert r"bad\xff\xfename.mp4" in summary
        assert hashlib.sha256(open(bad, "rb").read()).hexdigest() in summary
        assert hashlib.sha256(open(none_model, "rb").read()).hexdigest() in summary and none_model in summary


async def test_the_tui_never_shows_one_models_verdicts_under_another(media, none_model, none_classifier, tmp_path):
    import truthnet
    from truthnet import api
    from truthnet.tui.app import make_app

    other = str(truthnet.new_classifier(none_classifier.config, seed=7).save(tmp_path / "other.keras"))
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(media["short"].read_bytes())
    db = tmp_path / "r.sqlite"
    api.scan([folder], model=none_model, db=db)
    seen = {}
    for model in (none_model, other):
        app = make_app(folder, model=model, db=str(db), start_jobs=False)
        async with app.run_test(size=(150, 40)) as pilot:
            await pilot.pause(0.3)
            seen[model] = [r for _, r in app._rows]
    assert seen[none_model][0] is not None and seen[none_model][0].status == "ok"
    assert seen[other] == [None]  # "not scanned" with this model, not model A's verdict under B's name


def _chattr(flag: str, *paths) -> bool:
    try:
        return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0
    except OSError:
        return False


def test_a_read_only_store_is_readable_and_a_scan_into_it_stops_before_the_model(media, none_model, tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(media["short"].read_bytes())
    ro = tmp_path / "ro"
    ro.mkdir()
    db = ro / "r.sqlite"
    # a finished scan from another process: no connection of this one keeps a WAL file open beside
    # the database (a live -wal stays writable whatever the database's own flags: the scan below
    # then succeeded now and then, depending on when this process collected a scan's store)
    first = cli("scan", folder, "-m", none_model, "--db", db, child=True)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in ro.iterdir()) == ["r.sqlite"]
    if not _chattr("+i", db, ro):  # immutable: even root cannot write (a read-only evidence copy)
        if os.geteuid() == 0:
            pytest.skip("cannot make a file read-only for root here (chattr unavailable)")
        os.chmod(db, 0o444)
        os.chmod(ro, 0o555)
    try:
        shown = cli("results", "--db", db, "--scan", "1", env={"COLUMNS": "200"})
        assert shown.returncode == 0 and "a.mp4" in shown.stdout, shown.stderr
        scan = cli("scan", folder, "-m", none_model, "--db", db, "--force")
        assert scan.returncode == 3 and "read-only" in scan.stderr and "Traceback" not in scan.stderr
        assert "warning" not in scan.stderr  # stopped before the model (and its card) loaded
    finally:
        if not _chattr("-i", db, ro):
            os.chmod(ro, 0o755)
            os.chmod(db, 0o644)


def test_a_scan_whose_process_died_reads_as_interrupted(media, none_model, tmp_path):
    from truthnet.store import Store

    db = tmp_path / "r.sqlite"
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(media["short"].read_bytes())
    from truthnet import api

    api.scan([folder], model=none_model, db=db)
    assert Store(db).scan(1)["info"]["process"]["pid"] == os.getpid()  # every scan records who runs it
    # a process that starts a scan row the way Scanner does, then is killed outright
    code = ("import sys, time; from truthnet.store import Store; from truthnet.procs import identity; "
            "Store(sys.argv[1]).start_scan(None, 'k', ['/x'], {}, {'process': identity()}); "
            "print('started', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        assert Store(db).scan(2)["state"] == "running"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    wait_until(lambda: Store(db).scan(2)["state"] == "interrupted", what="the dead scan to read as interrupted")
    listed = cli("results", "--db", db, env={"COLUMNS": "200"})
    assert re.search(r"│ 2\s+│[^│]+│ interrupted", listed.stdout), listed.stdout


def _with_metadata(src: str, dst, change) -> str:
    from truthnet.model import META_MEMBER

    with zipfile.ZipFile(src) as zin:
        blobs = {i.filename: zin.read(i.filename) for i in zin.infolist()}
    meta = change(json.loads(blobs[META_MEMBER]))
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in blobs.items():
            zout.writestr(name, json.dumps(meta).encode() if name == META_MEMBER else data)
    return str(dst)


MALFORMED = {
    "a list": lambda m: [1, 2],
    "num_frames as text": lambda m: {**m, "pipeline": {**m["pipeline"], "num_frames": "10"}},
    "threshold as text": lambda m: {**m, "pipeline": {**m["pipeline"], "threshold": "high"}},
    "pipeline a list": lambda m: {**m, "pipeline": [1]},
    "card a list": lambda m: {**m, "card": [1]},
    "counts as text": lambda m: {**m, "card": {"trained": True, "counts": {"train": {"real": "many", "fake": 3}}}},
    "metrics as text": lambda m: {**m, "card": {"trained": True, "train_metrics": {"val_auc": "x"}}},
}


@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_a_malformed_model_card_is_one_error_line_and_exit_4(what, none_model, tmp_path):
    bad = _with_metadata(none_model, tmp_path / "bad.keras", MALFORMED[what])
    r = cli("model-info", bad)
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "malformed TruthNet metadata" in r.stderr and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


def test_scanning_with_a_malformed_model_card_stops_with_exit_4(media, none_model, tmp_path):
    bad = _with_metadata(none_model, tmp_path / "bad.keras", MALFORMED["num_frames as text"])
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(media["short"].read_bytes())
    r = cli("scan", folder, "-m", bad, "--db", tmp_path / "r.sqlite")
    assert r.returncode == 4 and "num_frames must be an integer" in r.stderr and "Traceback" not in r.stderr


def test_a_name_with_a_byte_and_a_name_spelling_that_byte_are_two_files(media, none_model, tmp_path):
    """``a`` + byte 0xFF and a file literally named ``a\\xff`` (valid UTF-8) once shared one row."""
    from truthnet import api
    from truthnet.store import Store

    folder = os.fsencode(tmp_path / "case")
    os.makedirs(folder)
    data = media["short"].read_bytes()
    names = [b"a\xff.mp4", b"a\\xff.mp4", b"b\\\\c.mp4"]
    for i, name in enumerate(names):
        with open(folder + b"/" + name, "wb") as fh:
            fh.write(data + bytes([i]))  # three contents
    db = tmp_path / "r.sqlite"
    out = api.scan([os.fsdecode(folder)], model=none_model, db=db)
    rows = Store(db).results(out.summary.scan_id)
    assert sorted(os.fsencode(r.path) for r in rows) == sorted(folder + b"/" + n for n in names)
    assert len({r.sha256 for r in rows}) == 3
    latest = Store(db).latest_for_paths([os.fsdecode(folder + b"/" + n) for n in names])
    assert len(latest) == 3 and len({r.sha256 for r in latest.values()}) == 3

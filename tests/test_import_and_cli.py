import json
import os
import subprocess

import pytest

from helpers import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def test_import_truthnet_is_light(python):
    code = (
        "import sys, truthnet, truthnet.cli; truthnet.cli.build_parser(); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'textual', 'cv2', 'mtcnn') if m in sys.modules))"
    )
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_lists_exit_codes(python):
    r = cli("--help")
    assert r.returncode == 0
    assert "score" in r.stdout and "plugins" in r.stdout and "model" in r.stdout


def test_probe_json_good_and_bad(python, media):
    r = cli("probe", "--json", media["face"], media["text"], media["empty"])
    assert r.returncode == 2  # some files failed
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["status"] for x in rows] == ["ok", "not_a_video", "not_a_video"]
    assert rows[0]["frame_count"] == 30


def test_a_broken_file_is_one_status_line_without_ffmpeg_or_opencv_noise(media):
    """FFmpeg and OpenCV write to file descriptor 2 themselves; TruthNet silences them when it
    opens a video (not on import) and says what is wrong in its own words."""
    r = cli("probe", media["truncated"], child=True)
    assert r.returncode == 2
    assert "moov atom" not in r.stderr and "WARN" not in r.stderr and "VIDEOIO" not in r.stderr, r.stderr
    assert "decode_error" in r.stdout or "decode_error" in r.stderr, (r.stdout, r.stderr)


def test_presets_json_has_paper(python):
    r = cli("presets", "paper", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["paper"]["lstm_units"] == 128


@pytest.mark.slow
@pytest.mark.allow_untrained
def test_new_model_then_score(python, media, tmp_path):
    model = tmp_path / "tiny.keras"
    r = cli("new-model", "--preset", "tiny", "-o", model)
    assert r.returncode == 0, r.stderr
    r = cli("score", "--model", model, "--json", media["face_avi"], media["random"])
    assert r.returncode == 2, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0]["status"] == "ok" and rows[0]["label"] in ("real", "fake")
    assert rows[1]["status"] == "not_a_video" and rows[1]["score"] is None


def test_model_errors_exit_4_without_traceback(python, media, tmp_path):
    bad = tmp_path / "m.keras"
    bad.write_text("nope")
    r = cli("score", "--model", bad, media["face"])
    assert r.returncode == 4
    assert "not a Keras model" in r.stderr and "Traceback" not in r.stderr


def test_unknown_preset_is_usage_error(python, tmp_path):
    r = cli("new-model", "--preset", "gigantic", "-o", tmp_path / "x.keras")
    assert r.returncode == 3
    assert "installed: paper" in r.stderr

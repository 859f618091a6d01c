import json

import pytest

from truthnet import DatasetError
from truthnet.datasets import detect_layout, read_dataset, split_rows


@pytest.fixture(scope="module")
def clip(media):
    return media["face_avi"].read_bytes()


def put(root, rel, data):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_folder_layout_any_depth_and_groups(tmp_path, clip):
    put(tmp_path, "a/real/id01.mp4", clip)
    put(tmp_path, "a/fake/id01__sbi.mp4", clip)
    put(tmp_path, "b/c/Real/x.avi", clip)
    put(tmp_path, "b/c/FAKE/y.avi", clip)
    put(tmp_path, "b/notes.txt", b"hi")
    name, rows = read_dataset(tmp_path)
    assert name == "folder"
    by = {r.path.split("/")[-1]: r for r in rows}
    assert {k: v.label for k, v in by.items()} == {"id01.mp4": 0, "id01__sbi.mp4": 1, "x.avi": 0, "y.avi": 1}
    assert by["id01.mp4"].group == by["id01__sbi.mp4"].group == "id01"


def test_celebdf_inverts_the_test_list_labels(tmp_path, clip):
    for rel in ["Celeb-real/id0_0000.mp4", "Celeb-real/id1_0000.mp4", "YouTube-real/00000.mp4",
                "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4"]:
        put(tmp_path, rel, clip)
    # Celeb-DF writes 1 for real and 0 for fake
    (tmp_path / "List_of_testing_videos.txt").write_text("1 Celeb-real/id1_0000.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n")
    assert detect_layout(tmp_path) == "celebdf"
    _, rows = read_dataset(tmp_path)
    by = {r.path.split("/")[-1]: r for r in rows}
    assert (by["id1_0000.mp4"].label, by["id1_0000.mp4"].split) == (0, "test")
    assert (by["id1_id0_0000.mp4"].label, by["id1_id0_0000.mp4"].split) == (1, "test")
    assert by["id0_0000.mp4"].split == "train" and by["00000.mp4"].group == "yt00000"
    assert by["id0_id1_0000.mp4"].group == "id0"


def test_celebdf_list_contradicting_folder_is_an_error(tmp_path, clip):
    put(tmp_path, "Celeb-real/id0_0000.mp4", clip)
    put(tmp_path, "Celeb-synthesis/id0_id1_0000.mp4", clip)
    (tmp_path / "List_of_testing_videos.txt").write_text("0 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(DatasetError, match="lists Celeb-real/id0_0000.mp4 as fake"):
        read_dataset(tmp_path)


def test_faceforensics_pairs_and_official_split(tmp_path, clip):
    for rel in ["original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/003.mp4",
                "original_sequences/youtube/c23/videos/005.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/005_000.mp4"]:
        put(tmp_path, rel, clip)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.json").write_text(json.dumps([["000", "003"]]))
    (tmp_path / "splits" / "train.json").write_text(json.dumps([["005", "006"]]))
    assert detect_layout(tmp_path) == "faceforensics"
    _, rows = read_dataset(tmp_path)
    by = {r.path.split("/")[-1]: r for r in rows}
    assert by["000_003.mp4"].label == 1 and by["000_003.mp4"].source == "Deepfakes/c23"
    assert len({r.group for r in rows}) == 1  # 000-003 and 005-000 chain every video together
    assert by["000.mp4"].split == "test" and by["005.mp4"].split == "train"


def test_dfdc_metadata(tmp_path, clip):
    put(tmp_path, "part0/a.mp4", clip)
    put(tmp_path, "part0/b.mp4", clip)
    (tmp_path / "part0" / "metadata.json").write_text(json.dumps(
        {"a.mp4": {"label": "REAL", "split": "train"}, "b.mp4": {"label": "FAKE", "original": "a.mp4", "split": "train"},
         "gone.mp4": {"label": "FAKE", "original": "a.mp4"}}))
    assert detect_layout(tmp_path) == "dfdc"
    _, rows = read_dataset(tmp_path)
    assert [(r.label, r.group) for r in rows] == [(0, "a"), (1, "a")]


def test_folder_matching_nothing_says_what_each_layout_expects(tmp_path, clip):
    put(tmp_path, "videos/x.mp4", clip)
    with pytest.raises(DatasetError) as e:
        read_dataset(tmp_path)
    msg = str(e.value)
    for text in ("folder:", "celebdf:", "Celeb-synthesis", "faceforensics:", "dfdc:", "metadata.json"):
        assert text in msg


def test_single_class_is_an_error(tmp_path, clip):
    put(tmp_path, "real/a.mp4", clip)
    (tmp_path / "fake").mkdir()
    with pytest.raises(DatasetError, match="only real videos"):
        read_dataset(tmp_path)


def _rows(n_groups=30):
    from truthnet.datasets import ManifestRow

    rows = []
    for g in range(n_groups):
        rows.append(ManifestRow(f"real/g{g}.mp4", 0, f"g{g}"))
        for k in range(1 + g % 3):
            rows.append(ManifestRow(f"fake/g{g}__{k}.mp4", 1, f"g{g}"))
    return rows


def test_no_group_crosses_a_split_and_seed_is_reproducible():
    rows = _rows()
    a = split_rows(rows, seed=3)
    splits_of = {}
    for r in a:
        splits_of.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in splits_of.values())
    assert {r.split for r in a} == {"train", "val", "test"}
    assert sorted((r.path, r.split) for r in a) == sorted((r.path, r.split) for r in split_rows(rows, seed=3))
    assert {r.path: r.split for r in a} != {r.path: r.split for r in split_rows(rows, seed=4)}
    n_test = sum(r.split == "test" for r in a)
    assert 0.1 * len(rows) <= n_test <= 0.3 * len(rows)


def test_paper_protocol_splits_single_videos():
    a = split_rows(_rows(), seed=0, protocol="paper")
    crossing = {r.group for r in a if r.split == "test"} & {r.group for r in a if r.split == "train"}
    assert crossing  # the paper's random split ignores groups

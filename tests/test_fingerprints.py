"""Content, not names: each unit carries a fingerprint of the bytes it was computed from, and a
rerun recomputes exactly the units whose inputs changed (same-size edits included)."""
from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from migue.cache import EntryReader, FeatureStore, digest_entry
from migue.cache.files import FingerprintMemo, fingerprint_file
from migue.pipeline.cli import main
from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.extract import ExtractOptions, extract


def _opts():
    return ExtractOptions(modality="pose", frames=16, batch_size=8, workers=0, shard_size=8)


@pytest.fixture(scope="module")
def json_sample(release_layouts):
    """The session's OpenPose JSON layout (as in the issue's stale-features case); read-only."""
    return release_layouts["openpose-json"]


def _two_videos(data: Path):
    manifest = read_dataset(data)
    keep = set(sorted(manifest.videos)[:2])
    return dataclasses.replace(manifest, units=[u for u in manifest.units if u.video_id in keep]), sorted(keep)


def _extracted_copy(json_sample: Path, tmp_path: Path):
    """A copy of the sample, its first two videos' pose extracted once into a fresh cache."""
    data = tmp_path / "data"
    shutil.copytree(json_sample, data, ignore=shutil.ignore_patterns("*.mp4"))  # skeleton-only, as the JSON release
    manifest, videos = _two_videos(data)
    store = FeatureStore(tmp_path / "cache")
    return data, manifest, videos, store, extract(manifest, store, _opts())


def _same_size_edit(path: Path, restore_mtime: bool = True) -> None:
    """Change the first digit of the first pose value to another digit: same size, other numbers."""
    st = path.stat()
    text = path.read_text()
    at = text.index('"pose_keypoints_2d":[') + len('"pose_keypoints_2d":[')
    while not text[at].isdigit() or text[at] == "0":
        at += 1
    text = text[:at] + ("7" if text[at] != "7" else "3") + text[at + 1:]
    path.write_text(text)
    assert path.stat().st_size == st.st_size
    if restore_mtime:  # as rsync -t or a careless copy would: only the content says it changed
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_same_size_json_edit_recomputes_exactly_that_videos_units(json_sample, tmp_path):
    """Old code: 'N already cached' and the old tokens served (the digest hashed names and sizes)."""
    data, manifest, (victim, other), store, first = _extracted_copy(json_sample, tmp_path)
    assert first.extracted == len(manifest.of_kind("mg")) and not first.failures
    before = EntryReader(first.entry)
    assert all(str(fp).startswith("skeleton=b3:") for fp in before.units["fingerprint"])
    folder = manifest.videos[victim].skeleton_path
    for path in sorted(folder.glob("*_keypoints.json")):
        if '"pose_keypoints_2d":[' in path.read_text():
            _same_size_edit(path)

    manifest, _ = _two_videos(data)
    result = CliRunner().invoke(main, ["cache", "verify", str(first.entry), "--data", str(data)])
    assert result.exit_code == 1, result.output
    victims = sorted(u.unit_id for u in manifest.of_kind("mg") if u.video_id == victim)
    for uid in victims:
        assert uid in result.output
    assert not any(u.unit_id in result.output for u in manifest.of_kind("mg") if u.video_id == other)

    second = extract(manifest, store, _opts())
    assert second.entry == first.entry  # same model and preprocessing: the same entry
    assert sorted(second.changed) == victims, second.changed
    assert all("skeleton" in why for why in second.changed.values())
    assert second.extracted == len(victims)
    fresh = extract(manifest, FeatureStore(tmp_path / "fresh"), _opts())
    assert digest_entry(second.entry) == digest_entry(fresh.entry)  # old tokens are gone
    third = extract(manifest, store, _opts())
    assert third.extracted == 0 and not third.changed


def test_a_label_row_edit_recomputes_only_that_unit(json_sample, tmp_path):
    data, manifest, (victim, _), store, first = _extracted_copy(json_sample, tmp_path)
    label_file = next(p for p in data.rglob(f"{victim}_label.csv"))
    rows = label_file.read_text().splitlines()
    cls, rest = rows[0].split(",", 1)
    new_cls = "2" if cls != "2" else "3"
    rows[0] = f"{new_cls},{rest}"
    label_file.write_text("\n".join(rows) + "\n")
    manifest, _ = _two_videos(data)
    second = extract(manifest, store, _opts())
    assert second.extracted == 1 and len(second.changed) == 1, second.changed
    assert "label" in next(iter(second.changed.values()))
    reader = EntryReader(second.entry)
    uid = next(iter(second.changed))
    assert int(reader.units.set_index("unit_id").loc[uid, "mg_label"]) == int(new_cls) - 1


def test_an_unchanged_rerun_reads_no_input_bytes(json_sample, tmp_path):
    _, manifest, _, store, first = _extracted_copy(json_sample, tmp_path)
    assert first.fingerprinted_bytes > 0
    again = extract(manifest, store, _opts())
    assert again.extracted == 0 and again.fingerprinted_bytes == 0


def test_the_memo_sees_an_edit_that_restores_the_mtime(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    memo = FingerprintMemo(tmp_path / "root")
    first = memo.file(path)
    _ = FingerprintMemo(tmp_path / "root")
    st = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    memo.flush()
    again = FingerprintMemo(tmp_path / "root").file(path)
    assert again != first and again == fingerprint_file(path)


def test_pack_rows_of_one_video_are_its_fingerprint(tmp_path):
    """Old code: the digest hashed the reference `train_data.npy#<id>`, not the rows it names."""
    root = tmp_path / "pack"
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.uniform(10, 100, (3, 3, 90, 22, 1)).astype(np.float32)
    data[:, 2] = 0.9
    np.save(root / "train_data.npy", data)
    with open(root / "train_label.pkl", "wb") as f:
        pickle.dump((["1_1", "2_1", "3_1"], [3, 4, 5]), f)
    manifest = read_dataset(root)
    store = FeatureStore(tmp_path / "cache")
    first = extract(manifest, store, _opts())
    assert first.extracted == 3
    array = np.load(root / "train_data.npy", mmap_mode="r+")
    array[1, 0, 50, 3, 0] += 5.0  # one value of video 2's clip, in place: same size
    array.flush()
    del array
    second = extract(read_dataset(root), store, _opts())
    assert sorted(second.changed) == ["2:clip1"], second.changed
    assert second.extracted == 1

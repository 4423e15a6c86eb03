"""Issue 23 case 3: an entry keeps units the data no longer has. Extract counts the manifest's units
only; training without --data refuses an entry holding units of another dataset (or of rows since
removed); with --data, fuse-train / evaluate / predict use exactly that dataset's units and refuse
when some are missing from the entry or were extracted from other inputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import clone

from migue.cache import EntryReader, EntryWriter, FeatureStore
from migue.fusion import config_for, train_run
from migue.pipeline.cli import main
from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.extract import ExtractOptions, extract

HEAD = "probe-linear-pose-joint"
TINY = ["--epochs", "1", "--set", "warmup_epochs=0"]
KEEP = {"0001", "0005", "0002", "0004"}  # two train videos, one validate, one test

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _opts() -> ExtractOptions:
    return ExtractOptions(modality="pose", frames=16, batch_size=8, workers=0, shard_size=8)


def _videos(data: Path) -> dict[str, Path]:
    return {p.name: p for p in data.glob("imigue_data_phase*/**/imigue_skeleton_*/*") if p.is_dir()}


@pytest.fixture(scope="module")
def extracted(sample_dir, tmp_path_factory):
    """A four-video copy of the sample (skeletons only) and its pose entry, extracted once."""
    root = tmp_path_factory.mktemp("scope")
    data = clone(sample_dir, root / "data")
    shutil.rmtree(data / "imigue_rgb_phase1")
    shutil.rmtree(data / "imigue_rgb_phase2")
    for name, folder in _videos(data).items():
        if name not in KEEP:
            shutil.rmtree(folder)
    report = extract(read_dataset(data), FeatureStore(root / "cache"), _opts())
    assert report.extracted > 0 and not report.failures
    return data, root / "cache"


@pytest.fixture
def copy(extracted, tmp_path):
    """A private copy of the data and the cache (tests change both)."""
    data, cache = extracted
    shutil.copytree(data, tmp_path / "data", symlinks=True)
    shutil.copytree(cache, tmp_path / "cache", symlinks=True)
    entry = next(p for p in (tmp_path / "cache").iterdir() if p.name.startswith("pose"))
    return tmp_path / "data", tmp_path / "cache", entry


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _mg_ids(data: Path) -> dict[str, set[str]]:
    units = read_dataset(data).of_kind("mg")
    return {s: {u.unit_id for u in units if u.split == s} for s in ("train", "val", "test")}


def test_removed_rows_are_not_counted_and_not_trained_on(copy, tmp_path):
    data, cache, entry = copy
    before = len(EntryReader(entry))
    shutil.rmtree(_videos(data)["0005"])  # the video's rows (and files) are gone from the dataset
    manifest = read_dataset(data)
    now = len(manifest.of_kind("mg"))
    assert 0 < now < before
    report = extract(manifest, FeatureStore(cache), _opts())
    assert report.done_before == now and report.extracted == 0  # was: `before` already cached

    result = _cli("fuse-train", "--task", "mg", "--cache", cache, "--out", tmp_path / "mixed", "--fusion", HEAD, *TINY)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert entry.name in result.output and f"{before - now} units" in result.output and "--data" in result.output
    with pytest.raises(ValueError, match="not in the dataset"):
        train_run("mg", {"pose": EntryReader(entry)}, tmp_path / "api", config_for("mg", HEAD, {"epochs": 1}))

    run = tmp_path / "run"
    result = _cli("fuse-train", "--task", "mg", "--cache", cache, "--out", run, "--fusion", HEAD, "--data", data, *TINY)
    assert result.exit_code == 0, result.output
    items = json.loads((run / "config.json").read_text())["data"]["items"]
    ids = _mg_ids(data)
    assert items == {s: len(ids[s]) for s in ("train", "val", "test")}

    result = _cli("evaluate", run, "--split", "val", "--data", data)
    assert result.exit_code == 0, result.output
    result = _cli("predict", run, "--split", "train", "--data", data, "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "p.csv", dtype=str)["unit_id"]) == ids["train"]
    assert _cli("evaluate", run, "--split", "train").exit_code == 2  # without --data: the mix is refused


def test_units_of_the_dataset_missing_from_the_entry_are_refused(copy, tmp_path):
    data, cache, entry = copy
    gone = {u for u in EntryReader(entry).units["unit_id"] if u.startswith("0002")}
    assert gone
    config = EntryReader(entry).config
    writer = EntryWriter(entry, config)
    writer.retire(gone)  # as if extraction of that video never happened
    writer.close()
    result = _cli("fuse-train", "--task", "mg", "--cache", cache, "--out", tmp_path / "run", "--fusion", HEAD,
                  "--data", data, *TINY)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert entry.name in result.output and f"{len(gone)} of the" in result.output
    assert sorted(gone)[0] in result.output and "migue extract" in result.output


def test_units_extracted_from_other_inputs_are_refused(copy, tmp_path):
    data, cache, entry = copy
    labels = _videos(data)["0001"] / "0001_label.csv"
    rows = labels.read_text().splitlines()
    first = rows[1].split(",")
    first[0] = str((int(first[0]) % 5) + 10)  # another class for the first clip: its label row changed
    labels.write_text("\n".join([rows[0], ",".join(first), *rows[2:]]) + "\n")
    result = _cli("fuse-train", "--task", "mg", "--cache", cache, "--out", tmp_path / "run", "--fusion", HEAD,
                  "--data", data, *TINY)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert entry.name in result.output and "label row changed" in result.output

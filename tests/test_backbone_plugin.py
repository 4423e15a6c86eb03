"""Backbones anyone can add: a modality row is complete (every registered one, the plugin's too),
the example plugin `rgb-small` extracts beside rgb in one pass and trains a probe from the command
line, and a missing or broken plugin is a clear error.

The plugin runs in subprocesses (`migue ...`, as a user runs it): a registered modality stays
registered in its process, and other test modules must not see `rgb-small` in `--modality all`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migue.cache import FeatureStore
from migue.cache.files import memo_for
from migue.cache.streams import modality_streams, streams
from migue.extractors.weights import describe_formats
from migue.fusion import get_head, head_inputs, resolve_config
from migue.pipeline.extraction.fingerprints import unit_fingerprints
from migue.pipeline.extraction.inputs import InputConfig
from migue.pipeline.extraction.modalities import MODALITIES, Modality, check_streams

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugins" / "backbone.py"
MIGUE = Path(sys.executable).with_name("migue")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# hand-written: what each built-in row must declare
BUILTIN = {"rgb": (("video",), ("rgb",)), "context": (("video",), ("context",)),
           "pose": (("skeleton",), ("joint", "bone")), "face": (("video", "skeleton"), ("face",))}


def assert_row_complete(m: Modality, unit, video, cache: Path) -> None:
    """What every registered row must carry; each assertion can fail on a half-made row."""
    assert m.streams, f"{m.name}: no streams declared"
    table = streams()
    for stream in m.streams:
        assert table[stream.name].modality == m.name and table[stream.name].dataset == stream.dataset
        for kind in ("linear", "mlp"):  # a probe per stream, reading exactly that stream of this modality
            head = get_head(f"probe-{kind}-{stream.probe_name}")
            assert head.source == m.source
    assert [s.name for s in modality_streams(m.name)] == [s.name for s in m.streams]
    for stream in m.streams:  # a pooled stream's default pooling is one it allows
        assert not stream.pool_key or stream.pool in (stream.pools or (stream.pool,))
    check_streams(m)  # the extractor writes each declared stream at the declared dim
    assert m.weight_formats and all(f in describe_formats(m.extractor) for f in m.weight_formats)
    assert m.reads and set(m.reads) <= {"video", "skeleton"}
    assert m.takes is None or "video" in m.reads, f"{m.name} decodes frames but its fingerprint ignores the video"
    assert not m.reads_skeleton or "skeleton" in m.reads, f"{m.name} reads skeletons its fingerprint ignores"
    cfg = m.make_config(m.frames, m.size, type("O", (), {"layout": "imigue22"})())
    assert isinstance(cfg, InputConfig) and cfg.frames == m.frames
    fps, failed = unit_fingerprints([unit], {video.video_id: video}, m, memo_for(cache))
    assert not failed
    assert [p.partition("=")[0] for p in fps[unit.unit_id].split(";")] == [*m.reads, "label"]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_row_is_complete(name, manifest, tmp_path):
    m = MODALITIES[name]
    reads, stream_names = BUILTIN[name]
    assert m.reads == reads and tuple(s.name for s in m.streams) == stream_names and m.source == "built-in"
    unit = manifest.of_kind(m.unit_kind)[0]
    assert_row_complete(m, unit, manifest.videos[unit.video_id], tmp_path)


def test_training_config_pools_are_the_rows():
    """The pooling keys of stage two's config come from the rows' streams (hand-written values: as before)."""
    from migue.fusion.config import CHOICES, DEFAULTS

    assert {k: DEFAULTS[k] for k in ("rgb_pool", "pose_pool", "face_pool", "context_pool")} == {
        "rgb_pool": "time", "pose_pool": "space", "face_pool": "none", "context_pool": "time"}
    assert CHOICES["rgb_pool"] == ("none", "time", "space", "mean", "cls")
    assert CHOICES["context_pool"] == ("none", "time", "mean", "cls") and "cls" not in CHOICES["pose_pool"]


def test_every_registered_row_is_checked():
    """A new built-in row must be added to BUILTIN above (its expected reads and streams)."""
    assert set(MODALITIES) == set(BUILTIN)


def _migue(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(MIGUE), *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def plugin_cache(sample_dir, tmp_path_factory):
    """rgb and the plugin's rgb-small extracted by one `migue extract` (tiny settings)."""
    cache = tmp_path_factory.mktemp("plugin-cache")
    done = _migue("extract", "--plugin", str(PLUGIN), "--modality", "rgb,rgb-small", "--data", str(sample_dir),
                  "--cache", str(cache), "--arch", "tiny", "--frames", "4", "--size", "32", "--workers", "0")
    return cache, done.stdout + done.stderr


def test_plugin_row_is_complete(sample_dir, tmp_path):
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
              "from migue.fusion import load_plugins\n"
              f"load_plugins([{str(PLUGIN)!r}])\n"
              "from migue.pipeline.datasets import read_dataset\n"
              "from migue.pipeline.extraction.modalities import MODALITIES\n"
              "from test_backbone_plugin import assert_row_complete\n"
              f"m = MODALITIES['rgb-small']; assert m.source == {str(PLUGIN)!r}, m.source\n"
              f"manifest = read_dataset([{str(sample_dir)!r}])\n"
              "unit = manifest.of_kind(m.unit_kind)[0]\n"
              f"assert_row_complete(m, unit, manifest.videos[unit.video_id], __import__('pathlib').Path({str(tmp_path)!r}))\n"
              "print('complete', [s.name for s in m.streams], m.weight_formats)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "complete ['rgb-small'] ('torch-state-dict',)" in done.stdout


def test_plugin_extracts_beside_rgb_in_one_pass(plugin_cache, manifest):
    cache, output = plugin_cache
    decoded = re.search(r"decoded (\d+) of (\d+) frames needed", output)  # the one pass's summary line
    assert decoded and int(decoded.group(1)) > 0, output
    mg_units = {u.unit_id for u in manifest.of_kind("mg")}
    entries = {e.modality: e for e in FeatureStore(cache).entries()}
    assert set(entries) == {"rgb", "rgb-small"}
    for modality in ("rgb", "rgb-small"):
        with FeatureStore(cache).reader(entries[modality].name) as reader:
            assert set(reader.units["unit_id"]) == mg_units  # complete: every MG clip, none failed
            assert reader.config["modality"] == modality
    with FeatureStore(cache).reader(entries["rgb-small"].name) as reader:
        assert reader.config["streams"]["tokens"]["dim"] == 32  # 4 frames, 32 px: grid (2, 8, 8)
        assert reader.config["streams"]["tokens"]["tokens"] == 2 * 8 * 8


def _digest(cache: Path, modality: str) -> str:
    """The first line of `migue cache digest` of `modality`'s entry in `cache` (its content hash)."""
    entry = next(e for e in FeatureStore(cache).entries() if e.modality == modality)
    return _migue("cache", "digest", entry.name, "--cache", str(cache)).stdout.splitlines()[0]


def test_plugin_extracts_on_dask_to_the_local_bytes(plugin_cache, sample_dir, tmp_path):
    """A Dask worker (a fresh process) loads the plugin the row came from before its shard runs: the
    rgb-small entry is bit-identical to the local run's (plugin_cache: same options, --workers 0)."""
    local, _ = plugin_cache
    cache = tmp_path / "dask"
    _migue("extract", "--plugin", str(PLUGIN), "--modality", "rgb,rgb-small", "--data", str(sample_dir),
           "--cache", str(cache), "--arch", "tiny", "--frames", "4", "--size", "32", "--scheduler", "local",
           "--workers", "1")
    for modality in ("rgb-small", "rgb"):
        dask, here = _digest(cache, modality), _digest(local, modality)
        assert dask.split()[1].startswith(f"{modality}-") and dask == here, (modality, dask, here)


def test_cache_verify_checks_a_plugin_entry_against_its_inputs_with_plugin(plugin_cache, sample_dir, manifest,
                                                                           tmp_path):
    """`cache verify --data` needs the row of the entry's modality: without --plugin it names the plugin the
    entry was extracted with; with it, the plugin entry's units are checked against their inputs."""
    cache, _ = plugin_cache
    small = next(e.name for e in FeatureStore(cache).entries() if e.modality == "rgb-small")
    # without --plugin every entry is still checked: the built-in ones fully, the plugin's shards (ok) but
    # not its inputs, which is a failure naming the plugin to pass (exit 1, not a stop at that entry)
    refused = _migue("cache", "verify", "--cache", str(cache), "--data", str(sample_dir), check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    others = [e.name for e in FeatureStore(cache).entries() if e.modality != "rgb-small"]
    assert others and all(re.search(rf"^ok +{name}: ", refused.stdout, re.M) for name in others), refused.stdout
    assert re.search(rf"^FAILED {small}: ", refused.stdout, re.M), refused.stdout
    assert f"inputs not checked: modality 'rgb-small' is registered by the plugin {PLUGIN}" in refused.stdout
    assert f"--plugin {PLUGIN}" in refused.stdout
    ok = _migue("cache", "verify", "--plugin", str(PLUGIN), "--cache", str(cache), "--data", str(sample_dir))
    assert re.search(rf"^ok +{small}: \d+ shards, {len(manifest.of_kind('mg'))} units verified$", ok.stdout, re.M), \
        ok.stdout
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    video = manifest.videos["0011"]
    changed = data / Path(video.video_path).relative_to(sample_dir)
    changed.write_bytes(changed.read_bytes() + b"\0")  # one video's bytes change: its clips' inputs changed
    stale = _migue("cache", "verify", small, "--plugin", str(PLUGIN), "--cache", str(cache), "--data", str(data),
                   check=False)
    assert stale.returncode == 1 and f"FAILED {small}" in stale.stdout, stale.stdout + stale.stderr
    listed = set(re.findall(r"input changed: unit (\S+):", stale.stdout))
    assert listed == {u.unit_id for u in manifest.of_kind("mg") if u.video_id == "0011"} and listed, stale.stdout


def test_cache_ls_and_digest_of_a_plugin_entry_need_no_plugin(plugin_cache, manifest):
    """Listing and hashing read the entry alone: no plugin loaded, no error; `ls --long` names the plugin."""
    cache, _ = plugin_cache
    small = next(e.name for e in FeatureStore(cache).entries() if e.modality == "rgb-small")
    listed = _migue("cache", "ls", "--long", "--cache", str(cache)).stdout
    block = listed.split(small, 1)[1]
    assert re.search(r"^  modality: rgb-small$", block, re.M) and f"  plugin:   {PLUGIN}" in block, listed
    listing = json.loads(_migue("cache", "ls", "--json", "--cache", str(cache)).stdout)
    rows = {r["modality"]: r["plugin"] for r in listing}
    assert rows == {"rgb": "", "rgb-small": str(PLUGIN)}
    digest = _migue("cache", "digest", small, "--cache", str(cache)).stdout.splitlines()
    assert re.fullmatch(rf"[0-9a-f]{{64}}  {small}", digest[0])
    assert digest[2].split()[:2] == ["tokens", str(len(manifest.of_kind("mg")))]


def test_plugin_probe_trains_and_its_run_names_the_plugin(plugin_cache, tmp_path):
    cache, _ = plugin_cache
    run = tmp_path / "run"
    _migue("fuse-train", "--plugin", str(PLUGIN), "--task", "mg", "--fusion", "probe-linear-rgb-small",
           "--cache", str(cache), "--out", str(run), "--epochs", "1")
    record = json.loads((run / "config.json").read_text())
    assert record["head"]["plugin"] == str(PLUGIN)
    assert set(record["head"]["inputs"]) == {"rgb-small"}
    refused = _migue("evaluate", str(run), "--split", "test", check=False)
    assert refused.returncode == 2 and f"needs the plugin {PLUGIN}" in refused.stderr
    evaluated = _migue("evaluate", str(run), "--split", "test", "--plugin", str(PLUGIN))
    assert "top1" in evaluated.stdout  # the metrics, recomputed with the plugin's probe


def test_unknown_plugin_and_unknown_modality_are_clear_errors(sample_dir, tmp_path):
    missing = _migue("extract", "--plugin", str(tmp_path / "nosuch.py"), "--modality", "rgb", "--data",
                     str(sample_dir), "--cache", str(tmp_path), check=False)
    assert missing.returncode == 2 and "nosuch.py: cannot import it" in missing.stderr
    unknown = _migue("extract", "--modality", "rgb-small", "--data", str(sample_dir), "--cache", str(tmp_path),
                     check=False)
    assert unknown.returncode == 2 and "unknown modality 'rgb-small'" in unknown.stderr
    assert "needs --plugin" in unknown.stderr


def test_broken_plugin_row_is_refused_naming_what_is_missing(sample_dir, tmp_path):
    bad = tmp_path / "bad_backbone.py"
    bad.write_text(PLUGIN.read_text().replace('streams=(Stream("rgb-small", "tokens", WIDTH),)', "streams=()"))
    done = _migue("extract", "--plugin", str(bad), "--modality", "rgb-small", "--data", str(sample_dir),
                  "--cache", str(tmp_path / "c"), check=False)
    assert done.returncode == 2
    assert "modality 'rgb-small': declares no streams" in done.stderr
    wrong_dim = tmp_path / "wrong_dim.py"
    wrong_dim.write_text(PLUGIN.read_text().replace('Stream("rgb-small", "tokens", WIDTH)',
                                                    'Stream("rgb-small", "tokens", 64)'))
    done = _migue("extract", "--plugin", str(wrong_dim), "--modality", "rgb-small", "--data", str(sample_dir),
                  "--cache", str(tmp_path / "c"), check=False)
    assert done.returncode == 2 and "reads 'tokens' of dim 64" in done.stderr and "{'tokens': 32}" in done.stderr
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # nothing written


def test_resolved_config_and_head_inputs_for_plugin_probe_need_no_builtin_change():
    """The built-in heads' inputs come from the stream table: cmtf reads rgb, joint and bone."""
    cfg = resolve_config("mg", {"head": "cmtf"})
    inputs = head_inputs("cmtf", "mg", cfg)
    assert {n: (i.entry, i.stream) for n, i in inputs.items()} == {"rgb": ("rgb", "tokens"), "joint": ("pose", "joint"),
                                                                   "bone": ("pose", "bone")}

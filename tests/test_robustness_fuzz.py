"""Cache-side parsing under hypothesis: any index.json and any shard file is either read or
rejected with a clear error (IndexFormatError / ShardError naming the file), never a stray
TypeError, AttributeError or IndexError from deep inside."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migue.cache import EntryReader, FeatureStore, IndexFormatError, ShardError, digest_entry, verify_entry
from migue.cache.keys import entry_key
from migue.common.files import file_sha256
from migue.cache.shard import STRING, read_units

CONFIG = {"modality": "rgb", "backbone": "fuzz", "streams": {"tokens": {"tokens": 2, "dim": 3},
                                                            "cls": {"tokens": 1, "dim": 3}}}
CLEAR = (IndexFormatError, ShardError, FileNotFoundError)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
names = st.sampled_from(["../x.h5", "/etc/passwd", "", ".", "..", "a/b.h5", "a\\b.h5", "x\x00.h5",
                         "shard-1.h5", "index.json", "claims"]) | st.text(max_size=10)


@pytest.fixture(scope="module")
def valid_entry():
    """A real two-shard entry and its index, copied afresh for each example."""
    root = Path(tempfile.mkdtemp(prefix="fuzz-entry-"))
    writer = FeatureStore(root).writer(CONFIG)
    rng = np.random.default_rng(0)
    for ids in (["a", "b"], ["c"]):
        writer.write({"unit_id": ids, "kind": ["mg"] * len(ids), "video_id": ids, "split": ["train"] * len(ids),
                      "start": [0] * len(ids), "end": [9] * len(ids)},
                     {"tokens": [rng.standard_normal((2, 3)) for _ in ids],
                      "cls": [rng.standard_normal((1, 3)) for _ in ids]})
    yield writer.dir, json.loads((writer.dir / "index.json").read_text())
    shutil.rmtree(root, ignore_errors=True)


def _named(exc: BaseException, entry_dir: Path) -> str:
    """The message of a clear error: it must name the index, a shard file or the entry."""
    text = str(exc)
    shards = [p.name for p in entry_dir.glob("shard-*")]
    assert "index.json" in text or any(n in text for n in shards) or f"cache entry {entry_dir.name}" in text \
        or str(entry_dir) in text, f"{type(exc).__name__} names no file: {text}"
    return text


def _exercise(entry_dir: Path) -> None:
    """Open and read everything; only the cache's own errors, naming the file, may come out; an
    entry that verifies reads completely."""
    try:
        reader = EntryReader(entry_dir)
    except CLEAR as exc:
        _named(exc, entry_dir)
        assert not verify_entry(entry_dir).ok
        return
    read_all = True
    for stream in ("tokens", "cls", "nope"):
        try:
            x = reader.read(stream)
            assert x.shape[0] == len(reader.units)
            reader.read_ragged(stream, range(len(reader.units)))
        except (ShardError, KeyError, ValueError) as exc:  # the reader's own raises, checked by name
            _named(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc, entry_dir)
            read_all = read_all and stream == "nope"
    reader.close()
    report = verify_entry(entry_dir)
    for problem in report.problems:
        assert problem.startswith(("index", "shard-")) or "units are in more than one shard" in problem, problem
    if report.ok:
        assert read_all, "verify passed an entry whose streams cannot be read"
    try:
        digest_entry(entry_dir)
    except CLEAR as exc:
        _named(exc, entry_dir)


def _copy(valid_entry, tmp: Path) -> Path:
    src, _ = valid_entry
    dst = tmp / src.name
    shutil.copytree(src, dst)
    return dst


def _mutate(index: dict, path: list, value, delete: bool) -> dict:
    """Replace (or delete) the value found by following `path` (indices taken modulo sizes)."""
    node = index
    for step in path[:-1]:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        child = node[keys[step % len(keys)]]
        if not isinstance(child, (dict, list)) or not child:
            break
        node = child
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if keys:
        key = keys[path[-1] % len(keys)]
        if delete:
            del node[key]
        else:
            node[key] = value
    return index


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=5), value=json_values | names,
       delete=st.booleans())
def test_any_mutated_index_is_read_or_refused_clearly(valid_entry, path, value, delete):
    with tempfile.TemporaryDirectory() as tmp:
        entry = _copy(valid_entry, Path(tmp))
        index = _mutate(json.loads(json.dumps(valid_entry[1])), path, value, delete)
        (entry / "index.json").write_text(json.dumps(index))
        _exercise(entry)


@FUZZ
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_index_bytes_are_refused_clearly(valid_entry, raw):
    with tempfile.TemporaryDirectory() as tmp:
        entry = _copy(valid_entry, Path(tmp))
        (entry / "index.json").write_bytes(raw)
        with pytest.raises(IndexFormatError, match="index.json"):
            EntryReader(entry)
        assert not verify_entry(entry).ok


@FUZZ
@given(name=names)
def test_shard_names_never_leave_the_entry(valid_entry, name):
    with tempfile.TemporaryDirectory() as tmp:
        entry = _copy(valid_entry, Path(tmp))
        index = json.loads(json.dumps(valid_entry[1]))
        index["shards"][0]["file"] = name
        (entry / "index.json").write_text(json.dumps(index))
        try:
            reader = EntryReader(entry)
        except CLEAR:
            return
        assert all((entry / s["file"]).resolve().parent == entry.resolve() for s in reader.index["shards"])


# ---- shard files of any structure ---------------------------------------------------------------
@st.composite
def shard_specs(draw):
    n = draw(st.integers(0, 3))
    mostly = lambda good, *bad: st.sampled_from([good] * (4 * len(bad)) + list(bad))  # noqa: E731
    stream = st.fixed_dictionaries({
        "tokens": mostly("ok", "1d", "3d", "int", "missing", "dataset"),
        "dim": mostly(3, 0, 4),
        "lengths": st.lists(st.integers(0, 3), min_size=n, max_size=n),
        "offsets": st.one_of(st.none(), st.none(), st.none(), st.lists(st.integers(-2, 10), max_size=6)),
        "offsets_dtype": mostly("int64", "float32", "uint8"),
    })
    return {
        "n": n,
        "units": draw(mostly("group", "missing", "dataset")),
        "unit_id": draw(mostly("str", "int", "2d", "missing", "short", "dup", "bytes")),
        "extra": draw(mostly("ok", "none", "short", "2d", "compound")),
        "streams": draw(mostly("group", "missing", "dataset")),
        "stream_specs": draw(st.dictionaries(mostly("tokens", "cls", "other"), stream, max_size=3)),
    }


def _write_crafted(path: Path, spec: dict) -> None:
    n = spec["n"]
    ids = [f"u{i}" for i in range(n)]
    with h5py.File(path, "w") as f:
        if spec["units"] == "dataset":
            f.create_dataset("units", data=np.arange(3))
        elif spec["units"] == "group":
            g = f.create_group("units")
            kind = spec["unit_id"]
            if kind == "str":
                g.create_dataset("unit_id", data=ids, dtype=STRING)
            elif kind == "bytes":
                g.create_dataset("unit_id", data=np.array(ids, dtype="S"))
            elif kind == "int":
                g.create_dataset("unit_id", data=np.arange(n))
            elif kind == "2d":
                g.create_dataset("unit_id", data=np.zeros((n, 2)))
            elif kind == "short":
                g.create_dataset("unit_id", data=ids[:-1], dtype=STRING)
            elif kind == "dup":
                g.create_dataset("unit_id", data=["u0"] * n, dtype=STRING)
            extra = spec["extra"]
            if extra == "ok":
                g.create_dataset("split", data=["train"] * n, dtype=STRING)
            elif extra == "short":
                g.create_dataset("split", data=np.arange(n + 1))
            elif extra == "2d":
                g.create_dataset("split", data=np.zeros((n, 3)))
            elif extra == "compound":
                g.create_dataset("split", data=np.zeros(n, dtype=[("a", "i4"), ("b", "f4")]))
        if spec["streams"] == "dataset":
            f.create_dataset("streams", data=np.arange(2))
        elif spec["streams"] == "group":
            s = f.create_group("streams")
            for name, st_spec in spec["stream_specs"].items():
                rows = sum(st_spec["lengths"])
                offsets = (np.concatenate([[0], np.cumsum(st_spec["lengths"])]) if st_spec["offsets"] is None
                           else np.array(st_spec["offsets"]))
                group = s.create_group(name)
                kind = st_spec["tokens"]
                if kind == "ok":
                    group.create_dataset("tokens", data=np.ones((rows, st_spec["dim"]), np.float16))
                elif kind == "1d":
                    group.create_dataset("tokens", data=np.ones(rows, np.float16))
                elif kind == "3d":
                    group.create_dataset("tokens", data=np.ones((rows, 1, 3), np.float16))
                elif kind == "int":
                    group.create_dataset("tokens", data=np.ones((rows, 3), np.int32))
                elif kind == "dataset":
                    s.create_dataset(f"{name}-x", data=np.arange(2))
                group.create_dataset("offsets", data=offsets.astype(st_spec["offsets_dtype"]))


@FUZZ
@given(spec=shard_specs())
def test_any_shard_structure_is_read_or_refused_clearly(spec):
    with tempfile.TemporaryDirectory() as tmp:
        entry = Path(tmp) / "entry"
        entry.mkdir()
        shard = entry / "shard-0000000000000000001-00000001.h5"
        _write_crafted(shard, spec)
        try:
            ids = [str(u) for u in read_units(shard)["unit_id"]]
        except ShardError as exc:
            assert shard.name in str(exc)
            ids = [f"u{i}" for i in range(spec["n"])]
        index = {"key": entry_key(CONFIG), "config": CONFIG, "dtype": "float16", "failures": {},
                 "shards": [{"file": shard.name, "unit_ids": ids, "units": len(ids),
                             "sha256": file_sha256(str(shard)), "bytes": shard.stat().st_size}]}
        (entry / "index.json").write_text(json.dumps(index))
        _exercise(entry)


@FUZZ
@given(raw=st.binary(max_size=2000), keep_signature=st.booleans())
def test_random_bytes_named_h5_are_refused_by_name(raw, keep_signature):
    with tempfile.TemporaryDirectory() as tmp:
        entry = Path(tmp) / "entry"
        entry.mkdir()
        shard = entry / "shard-0000000000000000001-00000001.h5"
        shard.write_bytes((b"\x89HDF\r\n\x1a\n" if keep_signature else b"") + raw)
        with pytest.raises(ShardError, match=shard.name):
            read_units(shard)
        index = {"key": entry_key(CONFIG), "config": CONFIG, "failures": {},
                 "shards": [{"file": shard.name, "unit_ids": ["u0"], "units": 1,
                             "sha256": file_sha256(str(shard)), "bytes": shard.stat().st_size}]}
        (entry / "index.json").write_text(json.dumps(index))
        with pytest.raises(ShardError, match=shard.name):
            EntryReader(entry)
        report = verify_entry(entry)
        assert not report.ok and shard.name in report.problems[0]

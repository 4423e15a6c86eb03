"""Hostile input: tiny files that declare huge extents, and files that are not regular files.

Each reader runs in a child process under an address-space limit (RLIMIT_AS), so a bomb that
the code fails to refuse fails the test (MemoryError or an abort) instead of the machine.
Each case must be one problem naming the file; every other unit still reads.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from migue.synth.sample import _XLSX_PARTS, _XML, _MAIN_NS

LIMIT_EXTRA = 1 << 30  # the child may allocate 1 GiB past what its imports take


def run_bounded(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` in a child whose address space is capped at its size after imports + 1 GiB."""
    prelude = textwrap.dedent(f"""
        import resource, numpy, h5py, migue.pipeline.datasets.skeleton, migue.pipeline.datasets, migue.cache
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (now + {LIMIT_EXTRA}, resource.RLIM_INFINITY))
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def assert_clear(result: subprocess.CompletedProcess, error: str, *needles: str) -> None:
    """The child exited normally and printed `error` (the module's own type) and every needle."""
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"child died (rc {result.returncode}): {out[-2000:]}"
    assert error in out, out[-2000:]
    for needle in needles:
        assert needle in out, f"{needle!r} not in {out[-2000:]}"


def write_sheet(path: Path, sheet_xml: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in {**_XLSX_PARTS, "xl/worksheets/sheet1.xml": sheet_xml}.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text,
                             compress_type=zipfile.ZIP_DEFLATED)
    return path


def _sheet(cells: str, dimension: str = "") -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f'{_XML}<worksheet xmlns="{_MAIN_NS}">{dim}<sheetData>{cells}</sheetData></worksheet>'


READ_SKELETON = """
    from pathlib import Path
    from migue.pipeline.datasets.skeleton import read_skeleton, SkeletonError
    try:
        read_skeleton(Path({path!r}))
        print("READ")
    except SkeletonError as exc:
        print("SkeletonError:", exc)
"""


@pytest.mark.parametrize("case", ["far-cell", "dimension", "row-only"])
def test_a_sheet_declaring_a_huge_area_is_refused_before_parsing(tmp_path, case):
    """Old code: python-calamine asks for 512 GiB and aborts the process (SIGABRT)."""
    cells = {"far-cell": ('<row r="1"><c r="A1"><v>1</v></c></row>'
                          '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', ""),
             "dimension": ('<row r="1"><c r="A1"><v>1</v></c></row>', "A1:XFD1048576"),
             "row-only": ('<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c><v>1</v></c></row>', "")}
    path = write_sheet(tmp_path / "0007_openpose.xlsx", _sheet(*cells[case]))
    assert path.stat().st_size < 5000
    result = run_bounded(READ_SKELETON.format(path=str(path)))
    assert_clear(result, "SkeletonError", str(path))


@pytest.mark.parametrize("cells", [
    '<row r="1"><c s="0" t="n" r="XFD1048576"><v>1</v></c></row>',  # r not the first attribute
    "<row r='1'><c r='XFD1'><v>1</v></c></row>",  # single quotes
    '<row r="1"><c r = "xfd1"><v>1</v></c></row>',  # lowercase, spaces around =
    '<row r="1"><c r="$XFD$1048576"><v>1</v></c></row>',  # absolute reference
    '<row r="1"><c r="AAAA1"><v>1</v></c></row>',  # four letters: past any sheet
    '<row r="1"><c r="A99999999999999999999"><v>1</v></c></row>',  # more digits than int64
    '<row r="1"><c r="A1"><v>1</v></c></row>' + '<row><c/></row>' * 3 + '<row r="1048576"><c/></row>',
])
def test_every_spelling_of_a_far_cell_is_seen(tmp_path, cells):
    """The scan reads bytes, not XML: each way a reader could be told of a far cell is caught."""
    from migue.pipeline.datasets.sheet_bounds import SheetBoundsError, check_workbook_bounds

    path = write_sheet(tmp_path / "1_openpose.xlsx", _sheet(cells))
    with pytest.raises(SheetBoundsError, match="1_openpose.xlsx"):
        check_workbook_bounds(path, max_rows=200_000, max_columns=1000)


def test_a_far_cell_in_prefixed_tags_is_seen(tmp_path):
    from migue.pipeline.datasets.sheet_bounds import SheetBoundsError, check_workbook_bounds

    sheet = (f'{_XML}<x:worksheet xmlns:x="{_MAIN_NS}"><x:sheetData><x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c>'
             '<x:c r="XFD1048576"><x:v>1</x:v></x:c></x:row></x:sheetData></x:worksheet>')
    with pytest.raises(SheetBoundsError, match="XFD"):
        check_workbook_bounds(write_sheet(tmp_path / "1_openpose.xlsx", sheet), 200_000, 1000)


def test_a_far_cell_across_a_chunk_cut_is_seen(tmp_path, monkeypatch):
    """Chunks are cut before a `<`, so a tag split by the read size is still scanned whole."""
    from migue.pipeline.datasets import sheet_bounds

    dense = "".join(f'<row r="{r}">' + "".join(f'<c r="{c}{r}"><v>1</v></c>' for c in "ABC") + "</row>"
                    for r in range(1, 200))
    sheet = _sheet(dense + '<row r="200"><c t="n" r="XFD200"><v>1</v></c></row>')
    path = write_sheet(tmp_path / "1_openpose.xlsx", sheet)
    cut_in_tag = sheet.index('r="XFD200"') - len(_XML) - 3
    for chunk in (7, 64, 1000, cut_in_tag):
        monkeypatch.setattr(sheet_bounds, "CHUNK", chunk)
        with pytest.raises(sheet_bounds.SheetBoundsError, match="XFD"):
            sheet_bounds.check_workbook_bounds(path, 200_000, 1000)
    monkeypatch.setattr(sheet_bounds, "CHUNK", 64)
    write_sheet(path, _sheet(dense))
    sheet_bounds.check_workbook_bounds(path, 200_000, 1000)  # the same sheet without the far cell passes


def test_a_real_sheet_still_reads_after_the_dimension_check(tmp_path):
    from migue.pipeline.datasets.skeleton import read_skeleton
    from migue.synth.sample import _write_xlsx

    values = np.arange(3 * 411, dtype=np.float64).reshape(3, 411) / 7 + 1
    _write_xlsx(tmp_path / "1_openpose.xlsx", values)
    array = read_skeleton(tmp_path / "1_openpose.xlsx")
    assert array.shape == (3, 137, 3)
    assert np.allclose(array.reshape(3, 411), values.astype(np.float32))


def test_an_openpose_frame_number_past_any_video_is_refused(tmp_path):
    """Old code: `5_999999999_keypoints.json` asks np.zeros for 1.5 TiB."""
    folder = tmp_path / "5"
    folder.mkdir()
    (folder / "5_000000000000_keypoints.json").write_text('{"people": []}')
    bomb = folder / "5_999999999_keypoints.json"
    bomb.write_text('{"people": []}')
    result = run_bounded(READ_SKELETON.format(path=str(folder)))
    assert_clear(result, "SkeletonError", str(bomb), "999999999")


def _pack(root: Path, names: list[str], n_frames: int = 90) -> Path:
    data = np.zeros((len(names), 3, n_frames, 22, 1), dtype=np.float32)
    data[:, 2] = 0.9  # confident joints: every frame used
    np.save(root / "train_data.npy", data)
    with open(root / "train_label.pkl", "wb") as f:
        pickle.dump((names, [3] * len(names)), f)
    return root / "train_data.npy"


def _read_every_video(root: Path) -> str:
    """A child-process snippet: read the dataset, print its problems, every video's shape and the units."""
    return f"""
        from pathlib import Path
        from migue.pipeline.datasets import read_dataset
        from migue.pipeline.datasets.skeleton import read_skeleton, SkeletonError
        m = read_dataset(Path({str(root)!r}))
        print("PROBLEMS", m.problems)
        for vid, video in sorted(m.videos.items()):
            try:
                print("VIDEO", vid, read_skeleton(video.skeleton_path).shape)
            except SkeletonError as exc:
                print("SkeletonError:", exc)
        print("UNITS", sorted(u.unit_id for u in m.units))
    """


def test_a_pack_clip_name_past_the_pack_is_one_problem(tmp_path):
    """Old code: clip `1_1000000` places a clip at frame 90 million: np.zeros of 148 GB."""
    root = tmp_path / "pack"
    root.mkdir()
    _pack(root, ["1_1", "1_1000000", "2_1"])
    result = run_bounded(_read_every_video(root))
    assert_clear(result, "PROBLEMS", "train_label.pkl", "1_1000000")
    assert "VIDEO 2 (180, 137, 3)" in result.stdout  # the other video still reads (clip 1 at 90..179)
    assert "VIDEO 1 (180, 137, 3)" in result.stdout  # and clip 1_1 of the same video
    assert "1:clip1000000" not in result.stdout


def test_a_label_end_frame_past_any_video_is_one_problem(tmp_path):
    """A label row ending at frame 10^12 of a skeleton-only video (extent unknown before parsing)."""
    from migue.pipeline.datasets.labels import LabelError, parse_clip

    with pytest.raises(LabelError, match="1000000000000"):
        parse_clip("3", "0", "1000000000000", None)
    assert parse_clip("3", "0", "99", None) == (2, 0, 99)


def test_pack_label_rows_past_any_video_leave_the_clip_virtual(tmp_path):
    """Old code: a `1_label.csv` row ending at frame 10^10 makes video_keypoints allocate 16 TB."""
    root = tmp_path / "pack"
    root.mkdir()
    _pack(root, ["1_1", "2_1"])
    (root / "1_label.csv").write_text("4,0,10000000000\n")
    result = run_bounded(_read_every_video(root))
    assert_clear(result, "PROBLEMS", "1_label.csv")
    assert "VIDEO 1 (180, 137, 3)" in result.stdout and "VIDEO 2 (180, 137, 3)" in result.stdout


# ---- HDF5 shards that declare more than they hold ------------------------------------------------
def _entry_with_bomb(tmp_path: Path, where: str) -> Path:
    """A valid two-shard entry, then one shard replaced by an 8 KB file declaring 2^28 rows."""
    from migue.cache import EntryWriter
    from migue.cache.index import read_index, write_index
    from migue.cache.checksums import file_checksums

    config = {"modality": "pose", "streams": {"pooled": {"tokens": 1, "dim": 8}}}
    writer = EntryWriter(tmp_path / "entry", config)
    for k in range(2):
        writer.write({"unit_id": [f"u{k}"]}, {"pooled": [np.ones((1, 8), dtype=np.float32)]})
    index = read_index(writer.dir)
    victim = writer.dir / index["shards"][0]["file"]
    victim.unlink()
    with h5py.File(victim, "w") as f:
        rows = 2 ** 28
        if where == "tokens":
            f.create_dataset("units/unit_id", data=["u0"], dtype=h5py.string_dtype())
            g = f.create_group("streams/pooled")
            g.create_dataset("tokens", shape=(rows, 8), dtype="f2")  # declared, never written
            g.create_dataset("offsets", data=np.array([0, rows], dtype=np.int64))
        else:
            f.create_dataset("units/unit_id", shape=(rows,), dtype="S8")
            f.create_dataset("streams/pooled/tokens", data=np.ones((1, 8), dtype="f2"))
            f.create_dataset("streams/pooled/offsets", data=np.array([0, 1], dtype=np.int64))
    assert victim.stat().st_size < 16384
    index["shards"][0].update(bytes=victim.stat().st_size, **file_checksums(victim))
    write_index(writer.dir, index)
    return writer.dir


@pytest.mark.parametrize("where", ["tokens", "units"])
def test_a_shard_declaring_2_28_rows_is_refused_by_verify_and_reader(tmp_path, where):
    """Old code: `cache verify` passed it and reading allocated 4 GiB."""
    entry = _entry_with_bomb(tmp_path, where)
    code = f"""
        from migue.cache import EntryReader, ShardError, verify_entry
        report = verify_entry({str(entry)!r})
        print("VERIFY", report.units, report.problems)
        try:
            with EntryReader({str(entry)!r}) as r:
                print("READ", r.read("pooled").shape)
        except ShardError as exc:
            print("ShardError:", exc)
    """
    result = run_bounded(code)
    assert_clear(result, "ShardError", "shard-")
    assert "VERIFY 1 [" in result.stdout  # the other shard still verifies
    verify_line = next(line for line in result.stdout.splitlines() if line.startswith("VERIFY"))
    assert "shard-" in verify_line and "declares" in verify_line


# ---- not regular files ---------------------------------------------------------------------------
def test_a_fifo_is_refused_before_it_is_read_or_hashed(sample_dir, tmp_path):
    """Old code: opening a FIFO named like a label file or skeleton blocks forever."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    labels = sorted(data.rglob("*_label.csv"))
    labels = [p for p in labels if p.name[0].isdigit()]
    sheet = sorted(data.rglob("*_openpose.xlsx"))[-1]
    for victim in (labels[0], sheet):
        victim.unlink()
        os.mkfifo(victim)
    code = f"""
        from pathlib import Path
        from migue.pipeline.datasets import read_dataset
        from migue.cache.files import fingerprint_file, NotARegularFileError
        m = read_dataset(Path({str(data)!r}), read_skeletons=True)
        print("PROBLEMS", m.problems)
        print("UNITS", len(m.units))
        try:
            fingerprint_file(Path({str(sheet)!r}))
        except NotARegularFileError as exc:
            print("NotARegularFileError:", exc)
    """
    result = run_bounded(code, timeout=300)  # a FIFO opened would block forever: a hang fails too
    assert_clear(result, "NotARegularFileError", str(sheet), str(labels[0]))
    problems = next(line for line in result.stdout.splitlines() if line.startswith("PROBLEMS"))
    assert str(labels[0]) in problems and str(sheet) in problems and "not a regular file" in problems
    units = int(next(line for line in result.stdout.splitlines() if line.startswith("UNITS")).split()[1])
    assert units > 20  # the other videos' units are all there

"""The MiGA challenge's submission files, from a run's predictions.

A task names its formats (`Task.submissions`: `--format NAME` -> writer, file name, columns); the
writers are here, found by the writer's name (`WRITERS`), never by the task's name.
Track 1 (`miga-track1`, the `mg` task's `miga`): `Id,Target`, one row per test clip in release order; Id `<video id as
the release spells it>_<k>` (k: the clip's 0-based row in its video's label file), Target the
0-based class index: raw label 1 -> 0, raw 31 -> 30, raw 99 -> 31 (see `track1_target`). In
`prediction.zip` as `prediction.csv`.
Track 3 (`miga-track3`, the `emotion` task's `miga`): `video_id,label`, one row per test video, 1 win, 0 lose.

A file is written only when it is complete: every test clip (or video) expected is predicted
exactly once. The expected set is the dataset's test split when `--data` is given, else the
test units of the run's cache entries plus those that failed extraction there.
"""
from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from migue.cache import EntryReader
from migue.cache.atomic import atomic_write_bytes
from migue.fusion.tasks import SubmissionFormat, get_task

from migue.pipeline.datasets.classes import N_MG_CLASSES
from migue.pipeline.datasets.files import video_key

SHOWN = 5  # missing items named in an error


class SubmissionError(ValueError):
    """A submission file that would be incomplete or ambiguous; the message names what is wrong."""


@dataclass(frozen=True)
class Expected:
    """What a complete file holds: Track 1 clip Ids (or Track 3 video ids), and where they came from."""

    ids: frozenset[str]
    source: str
    failed: dict[str, str]  # expected id -> why it has no features (failed extraction)


def clip_id(video_name: str, label_row: int) -> str:
    return f"{video_name}_{label_row}"


def track1_target(class_index: int) -> int:
    """Track 1's `Target` for a class index: the 0-based index itself (0..31), never the raw id.

    Why (checked against the public record, 2026-12-02): the 2025 winners (momiji-bit/MM-Gesture)
    train mmaction2 heads with `num_classes=32` on clip lists whose labels run 0..31 (label 0 occurs,
    99 never does: `dataset/iMiGUE_train_clips_list.txt`), and `ensemble/ensemble.py` writes
    `Target = argmax` of those 32 scores into the `prediction.csv` that scored 73.21 top-1. Raw 99
    ("illustrative") is index 31, as loaders map it. Their file's first ~900 rows hold no 0 because
    index 0 is rare (one 0 in the first ~1,000 rows of their train list), not because it is 1-based.
    """
    index = int(class_index)
    if not 0 <= index < N_MG_CLASSES:
        raise SubmissionError(f"class index {index} is not a Track 1 class (0..{N_MG_CLASSES - 1})")
    return index


def _track1_rows(predicted: pd.DataFrame) -> pd.DataFrame:
    """Track 1 rows (Id, Target) of a clip task's predictions, in release order."""
    if (predicted["label_row"] < 0).any():
        bad = predicted.loc[predicted["label_row"] < 0, "unit_id"].head(SHOWN).tolist()
        raise SubmissionError(f"{int((predicted['label_row'] < 0).sum())} clip(s) have no label-file row "
                              f"in the cache (e.g. {', '.join(bad)}): the entry was extracted before units "
                              "carried it; extract again to write Track 1 Ids")
    ids = [clip_id(n, int(k)) for n, k in zip(predicted["video_name"], predicted["label_row"])]
    table = pd.DataFrame({"Id": ids, "Target": [track1_target(k) for k in predicted["label"]],
                          "_video": predicted["video_name"].to_numpy(), "_row": predicted["label_row"].to_numpy()})
    return table.sort_values(["_video", "_row"], key=_release_key).drop(columns=["_video", "_row"])


def _track3_rows(predicted: pd.DataFrame) -> pd.DataFrame:
    """Track 3 rows (video_id, label) of a video task's predictions, in release order."""
    table = pd.DataFrame({"video_id": predicted["video_name"].to_numpy(),
                          "label": predicted["label"].astype(int).to_numpy()})
    return table.sort_values("video_id", key=_release_key)


@dataclass(frozen=True)
class Writer:
    """How a format's file is made: its rows from a `predict_run` table (first column: the id), and
    which ids a complete file holds ('clip': `<video>_<row>`, 'video': video names)."""

    rows: Callable[[pd.DataFrame], pd.DataFrame]
    ids: str


WRITERS = {"miga-track1": Writer(_track1_rows, "clip"), "miga-track3": Writer(_track3_rows, "video")}


def track2_gesture_id(layout: str) -> Callable[[int], int]:
    """Track 2's `GestureID` of a 0-based class index, as the release's own label files number it:
    SMG 1..17 (index + 1, `_finelabels.csv`), iMiGUE the raw id (1..31, 99 for index 31)."""
    if layout == "smg":
        return lambda index: int(index) + 1
    from migue.pipeline.datasets.classes import index_to_raw_label

    return index_to_raw_label


def track2_frame_base(layout: str) -> int:
    """What Track 2's first frame is called: 1 for SMG (its `_finelabels.csv` frames are 1-based),
    0 for iMiGUE (its label files are 0-based)."""
    return 1 if layout == "smg" else 0


def _track2_files(table: pd.DataFrame, out: Path, zipped: bool) -> str:
    """The 2023 Track 2 submission: one `<sequence>.csv` per sequence of the split (`table.attrs`
    'sequences'; a header alone where nothing was found), rows GestureID,StartFrame,EndFrame in the
    release's own numbering (`track2_gesture_id`, `track2_frame_base`); a zip at `out` or a folder."""
    from migue.fusion.online import Segment, write_miga

    layout = table.attrs.get("layout", "")
    base = track2_frame_base(layout)
    segments = [Segment(str(v), int(c), int(a) + base, int(b) + base, float(p))
                for v, c, a, b, p in table[["video_id", "label", "start", "end", "score"]].itertuples(index=False)]
    write_miga(segments, out, table.attrs.get("sequences"), track2_gesture_id(layout), zipped)
    return (f"{len(table.attrs.get('sequences') or [])} sequence files (GestureID,StartFrame,EndFrame; frames "
            f"{base}-based, as the {layout or 'dataset'} release numbers them)")


def _segments_csv(table: pd.DataFrame, out: Path, zipped: bool) -> str:
    """One CSV video_id,label,start,end,score (0-based class index and frames), what `migue score
    online --pred` reads; zipped: as segments.csv in a zip."""
    write_submission(table[["video_id", "label", "start", "end", "score"]], out, "segments.csv", zipped)
    return "one CSV video_id,label,start,end,score (0-based classes and frames)"


# writers that make their own files from a table of segments (tasks of sequences), by writer name
FILE_WRITERS: dict[str, Callable[[pd.DataFrame, Path, bool], str]] = {
    "miga-track2": _track2_files, "segments-csv": _segments_csv}


def writer_for(task: str, fmt: str = "miga") -> tuple[SubmissionFormat, Writer]:
    """Task `task`'s format `fmt` and its writer; a LookupError when the task has no such format or
    this version has no writer for it yet."""
    spec = get_task(task).submission(fmt)
    if spec.writer in FILE_WRITERS:
        return spec, Writer(lambda table: table, "file")
    if spec.writer not in WRITERS:
        raise LookupError(f"task {task!r}: format {fmt!r} ({spec.title}, {', '.join(spec.columns)}) is written by "
                          f"{spec.writer!r}, which this version does not have yet (writers: {', '.join(WRITERS)})")
    return spec, WRITERS[spec.writer]


def miga_table(task: str, predicted: pd.DataFrame, expected: Expected, fmt: str = "miga") -> pd.DataFrame:
    """The file of format `fmt` of `task` (mg: Track 1, emotion: Track 3) from `predicted` (a
    `predict_run` table), checked complete against `expected`."""
    spec, writer = writer_for(task, fmt)
    table = writer.rows(predicted)
    if tuple(table.columns) != spec.columns:
        raise SubmissionError(f"writer {spec.writer!r} made columns {list(table.columns)}, task {task!r} declares "
                              f"{list(spec.columns)} for {fmt!r}")
    _check_complete(spec.row, table.iloc[:, 0].tolist(), expected)
    return table.reset_index(drop=True)


def _release_key(column: pd.Series) -> pd.Series:
    """Sort key: numeric video ids by value (zero padding ignored), others after, by text."""
    if column.dtype.kind in "iu":
        return column
    text = column.astype(str)
    numeric = text.str.fullmatch(r"\d+")
    return text.where(~numeric, text.str.lstrip("0").str.zfill(12))


def _check_complete(what: str, ids: list[str], expected: Expected) -> None:
    counts = pd.Series(ids).value_counts()
    twice = counts[counts > 1].index.tolist()
    if twice:
        raise SubmissionError(f"{len(twice)} {what}(s) would be written more than once "
                              f"(e.g. {', '.join(map(str, twice[:SHOWN]))}): two units share a video and label row")
    missing = sorted(expected.ids - set(ids), key=_id_key)
    if missing:
        reasons = [f"{m} ({expected.failed[m]})" if m in expected.failed else m for m in missing[:SHOWN]]
        raise SubmissionError(f"{len(missing)} {what}(s) of {expected.source} have no prediction: "
                              f"{'; '.join(reasons)}{' ...' if len(missing) > SHOWN else ''}; "
                              "refusing to write an incomplete file")
    extra = sorted(set(ids) - expected.ids, key=_id_key)
    if extra:
        raise SubmissionError(f"{len(extra)} predicted {what}(s) are not in {expected.source} "
                              f"(e.g. {', '.join(extra[:SHOWN])}): the run's entries and the dataset differ")


def _id_key(item: str) -> tuple:
    video, _, row = item.rpartition("_") if "_" in item else (item, "", "")
    return (video_key(video).zfill(12), int(row) if row.isdigit() else -1, item)


def expected_from_manifest(task: str, manifest: object, split: str = "test", fmt: str = "miga") -> Expected:
    """Every clip (a Track 1 file) or video with units (Track 3) of the task's unit kind in the
    dataset's split."""
    where = ", ".join(str(r) for r in getattr(manifest, "roots", ()) or (manifest.root,))
    _, writer = writer_for(task, fmt)
    units = [u for u in manifest.of_kind(get_task(task).unit_kind) if u.split == split]
    if writer.ids == "clip":
        ids = {clip_id(u.video_name or u.video_id, u.label_row) for u in units}
    else:
        ids = {u.video_name or u.video_id for u in units}
    return Expected(frozenset(ids), f"the {split} split of {where}", {})


def expected_from_run(task: str, run_dir: Path, split: str = "test", fmt: str = "miga") -> Expected:
    """The split's units of every entry the run read, and those of its videos that failed there."""
    record = json.loads((Path(run_dir) / "config.json").read_text())
    kind = get_task(task).unit_kind
    _, writer = writer_for(task, fmt)
    ids: set[str] = set()
    failed: dict[str, str] = {}
    for role, info in record["entries"].items():
        reader = EntryReader(info["path"])
        units = reader.units
        units = units[(units["kind"] == kind) & (units["split"] == split)]
        names = _column(units, "video_name", units["video_id"])
        if writer.ids == "clip":
            rows = _column(units, "label_row", pd.Series(-1, index=units.index))
            ids |= {clip_id(n, int(k)) for n, k in zip(names, rows)}
        else:
            ids |= set(names)
        spelled = dict(zip(units["video_id"], names))
        for unit_id, reason in reader.index.get("failures", {}).items():
            video = unit_id.split(":")[0]
            if video in spelled and writer.ids == "video":
                continue  # the video keeps its other windows
            if video in spelled:
                failed.setdefault(f"{spelled[video]}:{unit_id}", f"failed in entry {reader.name} ({role}): {reason}")
    ids |= set(failed)
    return Expected(frozenset(ids), f"the {split} units of the run's cache entries", failed)


def _column(units: pd.DataFrame, name: str, default: pd.Series) -> pd.Series:
    if name not in units:
        return default
    values = units[name]
    return values if pd.api.types.is_numeric_dtype(values) else values.where(values.astype(str) != "", default)


def zip_name(task: str, fmt: str) -> str:
    """The CSV's name inside `--zip`: the format's, or for `migue` tables the task's first format's
    (Track 1: prediction.csv), else predictions.csv."""
    formats = get_task(task).submissions
    chosen = formats.get(fmt) or next(iter(formats.values()), None)
    return chosen.file_name if chosen is not None else "predictions.csv"


def write_submission(table: pd.DataFrame, out: Path, file_name: str, zipped: bool) -> Path:
    """The CSV at `out`, or (zipped) a zip at `out` holding it as `file_name`; published atomically
    (a full disk or a kill leaves no half-written file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = table.to_csv(index=False, lineterminator="\n")
    if zipped:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(file_name, text)
        data = buffer.getvalue()
    else:
        data = text.encode()
    atomic_write_bytes(out, data)
    return out

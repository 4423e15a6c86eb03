"""One extraction plan: entries, pending units, one decode pass per video, shared skeleton parses,
shards of videos; the frames a pass needs, hand-worked; the progress line off a terminal."""
from __future__ import annotations

import io
import logging

import pytest

from migue.cache import FeatureStore
from migue.pipeline.extraction.onepass import frames_needed
from migue.pipeline.extraction.options import ExtractOptions
from migue.pipeline.extraction.plan import plan_extraction, request
from migue.pipeline.extraction.summary import ExtractSummary, Progress

ALL = {"rgb": dict(arch="tiny", frames=4, size=32), "context": dict(arch="tiny", frames=4, size=32),
       "pose": dict(frames=8), "face": dict(frames=2)}


def _requests():
    return [request(ExtractOptions(modality=m, workers=0, shard_size=4, **kw)) for m, kw in ALL.items()]


@pytest.fixture()
def two_videos(manifest):
    return sorted(v for v, video in manifest.videos.items() if video.video_path)[:2]


def test_the_plan_names_entries_pending_units_passes_and_shared_parses(manifest, tmp_path, two_videos):
    only = {u.unit_id for u in manifest.units if u.video_id in two_videos}
    plan = plan_extraction(manifest, FeatureStore(tmp_path), _requests(), only)
    mg = [u for u in manifest.of_kind("mg") if u.video_id in two_videos]
    windows = [u for u in manifest.of_kind("window") if u.video_id in two_videos]
    assert [e.name for e in plan.entries] == ["rgb", "context", "pose", "face"]
    assert {e.name: len(e.pending) for e in plan.entries} == {"rgb": len(mg), "context": len(windows),
                                                              "pose": len(mg), "face": len(windows)}
    assert [v.video_id for v in plan.videos] == two_videos  # one pass per video
    for v in plan.videos:
        assert [name for name, _ in v.decoded] == ["rgb", "context", "face"]  # cut from one decode
        assert [name for name, _ in v.computed] == ["pose"]  # from the skeleton, no decoding
    assert plan.skeleton_parses == tuple(two_videos)  # parsed once for pose and face
    assert f"{len(mg) * 2 + len(windows) * 2} units pending over 2 videos" in str(plan)


def test_split_cuts_whole_videos_and_keeps_every_unit(manifest, tmp_path, two_videos):
    only = {u.unit_id for u in manifest.units if u.video_id in two_videos}
    plan = plan_extraction(manifest, FeatureStore(tmp_path), _requests(), only)
    shards = plan.split(2)
    assert [[v.video_id for v in s.videos] for s in shards] == [[two_videos[0]], [two_videos[1]]]
    for e, parts in zip(plan.entries, zip(*(s.entries for s in shards))):
        assert sorted(u.unit_id for p in parts for u in p.pending) == sorted(u.unit_id for u in e.pending)
        for p, s in zip(parts, shards):
            assert {u.video_id for u in p.pending} <= {v.video_id for v in s.videos}
    assert len(plan.split(10)) == 2  # never more shards than videos with work


def test_a_cached_entry_has_nothing_pending_and_no_pass(manifest, tmp_path, two_videos):
    from migue.pipeline.extraction.onepass import execute_plan

    only = {u.unit_id for u in manifest.of_kind("mg") if u.video_id == two_videos[0]}
    store = FeatureStore(tmp_path)
    pose = [request(ExtractOptions(modality="pose", workers=0, shard_size=4, frames=8))]
    run = execute_plan(plan_extraction(manifest, store, pose, only), store)
    assert run.reports["pose"].extracted == len(only) and run.summary.frames_decoded == 0  # pose decodes nothing
    again = plan_extraction(manifest, store, pose, only)
    assert again.pending == 0 and again.entries[0].done_before == len(only) and not again.split(4)


def test_frames_needed_is_the_union_of_the_units_frame_ranges():
    assert frames_needed([(0, 63), (100, 163)]) == 64 + 64  # two clips apart
    assert frames_needed([(0, 63), (32, 95)]) == 96  # 0..95: the overlap counted once
    assert frames_needed([(100, 163), (0, 63), (32, 95)]) == 96 + 64  # in any order
    assert frames_needed([(0, 63), (10, 20)]) == 64  # inside another unit's range
    assert frames_needed([(5, 5)]) == 1 and frames_needed([]) == 0


def test_the_summary_line_says_frames_decoded_of_needed():
    s = ExtractSummary(130, 122, 2, {"rgb": 8, "pose": 8}, {"pose": 1}, 3.44)
    assert s.line() == "decoded 130 of 122 frames needed (1.07x), 2 videos, units: rgb 8, pose 8 (1 failed), 3.4 s"


def test_off_a_terminal_each_published_shard_logs_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="migue.extract")
    progress = Progress(total=10, stream=io.StringIO())  # not a terminal
    progress.forwarded(4)
    progress.published("rgb", 4)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("first batch: ") and "units/s" in lines[0] and "6 units to go" in lines[0]
    assert lines[1].startswith("published a shard of rgb (4 units): 4 of 10 units done") and "ETA" in lines[1]


def test_on_a_terminal_the_bar_shows_progress_and_no_shard_lines(caplog):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    caplog.set_level(logging.INFO, logger="migue.extract")
    progress = Progress(total=10, stream=Tty())
    progress.forwarded(4)
    progress.published("rgb", 4)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["first batch"]


def test_an_entry_planned_but_interrupted_before_its_first_shard_lists_as_incomplete(manifest, tmp_path, two_videos):
    from migue.cache.listing import entry_listing

    only = {u.unit_id for u in manifest.of_kind("mg") if u.video_id == two_videos[0]}
    pose = [request(ExtractOptions(modality="pose", workers=0, shard_size=4, frames=8))]
    plan = plan_extraction(manifest, FeatureStore(tmp_path), pose, only)  # the run dies before executing it
    listing = entry_listing(plan.entries[0].entry)
    assert listing.units == 0 and not listing.complete and listing.why

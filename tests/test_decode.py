"""The decoding engine: seek-or-stream plans, one pass per video, worker processes, shared memory."""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from migue.pipeline.extraction.decode_plan import plan_decode, preceding_keyframe
from migue.pipeline.extraction.decode_pool import DecodePool
from migue.pipeline.extraction.decode_worker import Take, UnitRequest, VideoJob, scan_keyframes
from migue.pipeline.extraction.inputs import InputConfig, clip_takes, face_takes, read_takes


def test_preceding_keyframe():
    keys = np.array([0, 50, 100])
    assert [preceding_keyframe(keys, i) for i in (0, 49, 50, 120)] == [0, 0, 50, 100]
    assert preceding_keyframe(np.array([10]), 5) == 0  # before the first keyframe: the stream start


def test_few_short_units_in_a_long_video_are_sought():
    keys = np.arange(0, 1000, 250)  # GOP 250
    plan = plan_decode([(260, 280), (770, 790)], keys)
    # by hand: (280 - 250 + 1) + (790 - 750 + 1) = 31 + 41 frames, against 791 streamed
    assert (plan.mode, plan.seek_cost, plan.stream_cost) == ("seek", 72, 791)
    assert plan.segments == ((250, 280), (750, 790)) and plan.frames_to_decode == 72


def test_units_tiling_a_video_are_streamed():
    keys = np.arange(0, 1000, 250)
    windows = [(s, s + 63) for s in range(0, 960, 64)]  # 15 windows: 0..959
    plan = plan_decode(windows, keys)
    assert plan.mode == "stream" and plan.segments == ((0, 959),) and plan.stream_cost == 960
    assert plan.seek_cost == 960  # merged segments: a frame is never decoded twice


def test_units_just_after_keyframes_are_sought_even_when_many():
    keys = np.arange(0, 1000, 100)  # GOP 100, 10 units of 20 frames right after each keyframe
    plan = plan_decode([(k, k + 19) for k in keys], keys)
    assert plan.mode == "seek" and plan.seek_cost == 200 and plan.stream_cost == 920


def test_forcing_a_mode():
    keys = np.arange(0, 1000, 250)
    assert plan_decode([(260, 280)], keys, force="stream").segments == ((0, 280),)
    with pytest.raises(ValueError, match="seek or stream"):
        plan_decode([(260, 280)], keys, force="skip")


def _write_video(path: Path, frames: int, gop: int, width: int = 64, height: int = 48) -> Path:
    """Frames that differ (a moving gradient plus noise), with a keyframe every `gop` frames."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "ultrafast"}
        for i in range(frames):
            base = ((xx * 3 + yy * 2 + i * 5) % 256).astype(np.uint8)
            image = np.stack([base, np.roll(base, i, 0), 255 - base], -1)
            image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    return _write_video(tmp_path_factory.mktemp("gop") / "v.mp4", frames=300, gop=50)


def test_keyframes_are_read_from_the_stream(gop_video):
    keys, _, count = scan_keyframes(str(gop_video))
    assert count == 300 and list(keys) == list(range(0, 300, 50))


def _job(path: Path, ranges: list[tuple[int, int]], mode: str | None = None) -> VideoJob:
    requests = []
    for k, (a, b) in enumerate(ranges):
        idx = np.linspace(a, b, 4).astype(int)
        takes = [Take(int(i), (32, 24)) for i in idx] if k % 2 else [Take(int(i), None, (8, 4, 40, 40), 16)
                                                                   for i in idx]
        requests.append(UnitRequest(("m", f"u{k}"), tuple(takes)))
    return VideoJob("v", str(path), 64, 48, tuple(requests), mode)


def _reference(path: Path, job: VideoJob) -> dict:
    """Each unit read on its own by the per-unit reader (its own seek), as before this engine."""
    from types import SimpleNamespace

    video = SimpleNamespace(video_path=path, video_id="v")
    return {r.key: read_takes(video, r.takes) for r in job.requests}


@pytest.mark.parametrize("mode", ["seek", "stream"])
def test_both_modes_give_every_unit_the_frames_a_per_unit_read_gives(gop_video, mode):
    job = _job(gop_video, [(105, 120), (210, 230), (260, 299)], mode)
    pool = DecodePool(workers=0)
    got = {item.key: item.array for item in pool.decode([job])}
    ref = _reference(gop_video, job)
    assert set(got) == set(ref)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])
    stats = pool.totals.videos[0]
    assert stats.mode == mode and stats.frames_in_video == 300
    # by hand: seeking decodes 100..120, 200..230 and 250..299 = 21 + 31 + 50 frames; streaming 0..299
    assert stats.frames_decoded == (102 if mode == "seek" else 300)


def test_the_plan_picks_seeking_for_sparse_units(gop_video):
    pool = DecodePool(workers=0)
    list(pool.decode([_job(gop_video, [(105, 110)])]))
    assert pool.totals.videos[0].mode == "seek" and pool.totals.videos[0].frames_decoded == 11


def _shm_names() -> set[str]:
    """Shared-memory segments (SharedMemory names start with psm_)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")} if os.path.isdir("/dev/shm") else set()


def test_worker_processes_hand_over_through_shared_memory_and_leave_nothing(gop_video, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(gop_video.read_bytes()[:1500])  # truncated: its units fail, the others do not
    jobs = [_job(gop_video, [(5, 40), (120, 160)]), _job(bad, [(5, 40)]), _job(gop_video, [(200, 299)])]
    before = _shm_names()
    with DecodePool(workers=2) as pool:
        items = list(pool.decode(jobs))
        parents = pool.worker_parents
    assert os.getpid() not in parents  # started by the fork server, never forked from this process
    ok = [i for i in items if i.array is not None]
    failed = [i for i in items if i.array is None]
    assert len(ok) == 3 and len(failed) == 1 and "bad.mp4" in failed[0].error
    ref = {**_reference(gop_video, jobs[0]), **_reference(gop_video, jobs[2])}
    by_key: dict = {}
    for item in ok:
        by_key.setdefault(item.key, []).append(item.array)
    assert sorted(len(v) for v in by_key.values()) == [1, 2]  # u0 of jobs 0 and 2, u1 of job 0
    np.testing.assert_array_equal(by_key[("m", "u1")][0], ref[("m", "u1")])
    assert _shm_names() <= before


def test_forking_decode_workers_is_refused():
    with pytest.raises(ValueError, match="must not be forked"):
        DecodePool(workers=2, start_method="fork")


def test_unit_takes_match_the_per_unit_inputs(manifest, tmp_path):
    """The engine's routing of rgb, context and face units gives the per-unit inputs exactly."""
    from migue.pipeline.extraction.inputs import face_crops, rgb_clip

    video = next(v for v in manifest.videos.values() if v.video_path)
    mg = [u for u in manifest.of_kind("mg") if u.video_id == video.video_id][:3]
    win = [u for u in manifest.of_kind("window") if u.video_id == video.video_id][:3]
    rgb, ctx, face = InputConfig(frames=8, size=64), InputConfig(frames=8, size=64, resize="squash"), \
        InputConfig(frames=4)
    parsed = tmp_path / "parsed"
    requests = ([UnitRequest(("rgb", u.unit_id), clip_takes(u, video, rgb)) for u in mg]
                + [UnitRequest(("context", u.unit_id), clip_takes(u, video, ctx)) for u in win]
                + [UnitRequest(("face", u.unit_id), face_takes(u, video, face, parsed)) for u in win])
    job = VideoJob(video.video_id, str(video.video_path), video.width, video.height, tuple(requests))
    pool = DecodePool(workers=0)
    got = {item.key: item.array for item in pool.decode([job])}
    for u in mg:
        np.testing.assert_array_equal(got[("rgb", u.unit_id)], rgb_clip(u, video, rgb))
    for u in win:
        np.testing.assert_array_equal(got[("context", u.unit_id)], rgb_clip(u, video, ctx))
        np.testing.assert_array_equal(got[("face", u.unit_id)], face_crops(u, video, face, parsed))
    assert pool.totals.videos[0].frames_decoded <= pool.totals.videos[0].frames_in_video

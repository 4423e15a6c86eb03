"""One pass per video: rgb, context and face from one decode, equal to separate runs, resumable."""
from __future__ import annotations

import os
import threading

import pytest
import torch

from migue.cache import FeatureStore, digest_entry
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.pipeline.extraction.onepass import extract_videos

FAST = {"rgb": dict(arch="tiny", frames=4, size=32), "context": dict(arch="tiny", frames=4, size=32),
        "face": dict(frames=2)}


def _opts(modality, workers=0, **kw):
    return ExtractOptions(modality=modality, batch_size=3, workers=workers, shard_size=8, **{**FAST[modality], **kw})


def _units_of(manifest, videos):
    return {u.unit_id for u in manifest.units if u.video_id in videos}


@pytest.fixture(scope="module")
def videos(manifest):
    return sorted(v for v, video in manifest.videos.items() if video.video_path)[:3]


def test_one_pass_entries_are_bit_identical_to_separate_runs(manifest, tmp_path, videos):
    only = _units_of(manifest, videos[:2])
    together = extract_videos(manifest, FeatureStore(tmp_path / "one"), [_opts(m) for m in FAST], only=only)
    assert len(together["rgb"].decode.videos) == 2  # each video decoded once for all three
    for modality in FAST:
        alone = extract(manifest, FeatureStore(tmp_path / modality), _opts(modality), only=only)
        assert together[modality].extracted == alone.extracted > 0 and not alone.failures
        assert digest_entry(together[modality].entry) == digest_entry(alone.entry)


def test_resume_decodes_only_videos_with_units_pending_in_some_modality(manifest, tmp_path, videos):
    store = FeatureStore(tmp_path)
    first = extract_videos(manifest, store, [_opts(m) for m in ("rgb", "context")],
                           only=_units_of(manifest, videos[:2]))
    assert len(first["rgb"].decode.videos) == 2
    again = extract_videos(manifest, store, [_opts(m) for m in ("rgb", "context")],
                           only=_units_of(manifest, videos[:2]))
    assert again["rgb"].extracted == again["context"].extracted == 0 and not again["rgb"].decode.videos
    # context of a third video is pending: that video alone is decoded, for context alone
    more = extract_videos(manifest, store, [_opts(m) for m in ("rgb", "context")],
                          only=_units_of(manifest, videos[:2]) | {u.unit_id for u in manifest.of_kind("window")
                                                                   if u.video_id == videos[2]})
    assert [v.video_id for v in more["rgb"].decode.videos] == [videos[2]]
    assert more["rgb"].extracted == 0 and more["context"].extracted > 0


def test_extraction_workers_are_never_forked_from_the_model_process(manifest, tmp_path, videos):
    """The CUDA path's process layout on CPU: decoding workers from the fork server, the model in
    this process with its thread pools live (as CUDA would be), tokens equal to in-process decoding."""
    torch.ones(64, 64) @ torch.ones(64, 64)  # torch's intra-op pool is up in this process
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)  # a live thread, as CUDA's are
    busy.start()
    only = _units_of(manifest, videos[:1])
    try:
        forked = extract(manifest, FeatureStore(tmp_path / "w"), _opts("rgb", workers=2), only=only)
    finally:
        stop.set()
    here = extract(manifest, FeatureStore(tmp_path / "h"), _opts("rgb", workers=0), only=only)
    assert forked.decode.start_method in ("forkserver", "spawn")
    assert forked.decode.worker_parents and os.getpid() not in forked.decode.worker_parents
    assert digest_entry(forked.entry) == digest_entry(here.entry)


def test_stream_and_seek_give_the_same_entry(manifest, tmp_path, videos):
    only = _units_of(manifest, videos[:1])
    runs = {mode: extract_videos(manifest, FeatureStore(tmp_path / mode), [_opts("rgb")], only=only, mode=mode)["rgb"]
            for mode in ("seek", "stream")}
    assert {v.mode for v in runs["seek"].decode.videos} == {"seek"}
    assert {v.mode for v in runs["stream"].decode.videos} == {"stream"}
    assert digest_entry(runs["seek"].entry) == digest_entry(runs["stream"].entry)


def test_modality_lists():
    from migue.pipeline.cli.extract import resolve_modalities

    assert resolve_modalities("rgb,context,face") == ["rgb", "context", "face"]
    assert resolve_modalities("all") == ["context", "face", "pose", "rgb"]
    assert resolve_modalities("rgb, rgb") == ["rgb"]
    with pytest.raises(ValueError, match="unknown modality .depth"):
        resolve_modalities("rgb,depth")


def test_the_one_pass_names_the_units_of_each_chunk_it_claims(manifest, tmp_path, videos, monkeypatch):
    """A reader refusing an entry that extract still writes says which units are claimed (issue 23 case 5):
    the one pass, like the pose loop, writes each chunk's unit ids into its claim."""
    from migue.cache import WorkClaims

    claimed: list[tuple[str, ...]] = []
    real = WorkClaims.try_claim

    def spy(self, name, units=()):
        claimed.append(tuple(units))
        return real(self, name, units)

    monkeypatch.setattr(WorkClaims, "try_claim", spy)
    only = _units_of(manifest, videos[:1])
    report = extract(manifest, FeatureStore(tmp_path / "c"), _opts("context"), only=only)
    assert report.extracted > 0 and claimed
    assert all(claimed) and set().union(*claimed) >= only & {u.unit_id for u in manifest.of_kind("window")}

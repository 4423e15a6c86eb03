"""Decode one video once and cut every unit's input from it, in a decoding worker process.

A job names the frames each unit needs (`Take`s: frame index, the size the decoder scales to, the
box cut from it, an optional square resize). The worker decodes the planned segments
sequentially with PyAV's threading on, scales each needed frame once per distinct output size
(libswscale, through PyAV's reformat), cuts the takes straight into shared memory and reports
the blocks' names: no frame is pickled. This module imports no torch, so workers start light
and never hold CUDA state.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing import resource_tracker, shared_memory
from typing import Callable

import av
import cv2
import numpy as np

from .decode_plan import DecodePlan, plan_decode

BLOCK_BYTES = 256 << 20  # a video's units go out in blocks of at most this much (bounded memory)


@dataclass(frozen=True)
class Take:
    """One frame a unit needs, and how it becomes that unit's slot."""

    index: int  # frame index in the video
    scale: tuple[int, int] | None  # (w, h) the decoder scales the frame to; None: full resolution
    box: tuple[int, int, int, int] | None = None  # (left, top, w, h) cut from the scaled frame
    out: int = 0  # side of the square the cut is resized to (cv2 INTER_AREA); 0: kept as cut

    def shape(self, width: int, height: int) -> tuple[int, int, int]:
        if self.out:
            return self.out, self.out, 3
        if self.box:
            return self.box[3], self.box[2], 3
        w, h = self.scale or (width, height)
        return h, w, 3


@dataclass(frozen=True)
class UnitRequest:
    key: tuple[str, str]  # (modality, unit_id)
    takes: tuple[Take, ...]  # in slot order: the input is (len(takes), H, W, 3) uint8

    def shape(self, width: int, height: int) -> tuple[int, ...]:
        return (len(self.takes), *self.takes[0].shape(width, height))


@dataclass(frozen=True)
class VideoJob:
    video_id: str
    path: str
    width: int
    height: int
    requests: tuple[UnitRequest, ...]
    mode: str | None = None  # force 'seek' or 'stream'; None: the cheaper by the plan


@dataclass
class Block:
    """Finished inputs of some of a job's units, in one shared-memory segment (or in `arrays`)."""

    shm_name: str | None
    layout: list[tuple[tuple[str, str], int, tuple[int, ...]]]  # (key, byte offset, shape)
    arrays: dict[tuple[str, str], np.ndarray] | None = None  # in-process decoding only


@dataclass
class VideoStats:
    video_id: str
    mode: str = ""
    frames_in_video: int = 0
    frames_decoded: int = 0
    seek_cost: int = 0
    stream_cost: int = 0
    seconds: float = 0.0
    failed: dict[tuple[str, str], str] = field(default_factory=dict)


def cut(image: np.ndarray, take: Take) -> np.ndarray:
    """A take's slot from the frame already scaled to `take.scale` (H, W, 3) uint8."""
    if take.box:
        left, top, w, h = take.box
        image = image[top:top + h, left:left + w]
    if take.out:
        image = cv2.resize(image, (take.out, take.out), interpolation=cv2.INTER_AREA)
    return image


def frame_index(pts: int | None, fallback: int, rate: object, time_base: object) -> int:
    """A frame's (or packet's) index from its timestamp; `fallback` when there is none."""
    if pts is None or not rate or not time_base:
        return int(fallback)
    return int(round(float(pts * time_base * rate)))


def scan_keyframes(path: str) -> tuple[np.ndarray, dict[int, int], int]:
    """Keyframe indices, their pts, and the frame count, from one demux pass (no decoding)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        keys: dict[int, int] = {}
        count = 0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.is_keyframe and packet.pts is not None:
                keys[frame_index(packet.pts, count, rate, stream.time_base)] = int(packet.pts)
            count += 1
    return np.array(sorted(keys), dtype=np.int64), keys, count


class _Slots:
    """Where each decoded frame goes: per frame index, the (unit, slot, take) triples needing it,
    and the units grouped into blocks emitted once the decode has passed their last frame."""

    def __init__(self, job: VideoJob, emit: Callable[[Block], None], in_process: bool) -> None:
        self.job, self.emit, self.in_process = job, emit, in_process
        self.needs: dict[int, list[tuple[int, int, Take]]] = defaultdict(list)
        for u, request in enumerate(job.requests):
            for s, take in enumerate(request.takes):
                self.needs[take.index].append((u, s, take))
        self.shapes = [r.shape(job.width, job.height) for r in job.requests]
        self.last = [max(t.index for t in r.takes) for r in job.requests]
        self.groups = self._group()
        self.open: dict[int, tuple[shared_memory.SharedMemory | None, dict[int, np.ndarray], list]] = {}
        self.group_of = {u: g for g, members in enumerate(self.groups) for u in members}
        self.filled = [0] * len(job.requests)
        self.emitted: set[int] = set()

    def _group(self) -> list[list[int]]:
        order = sorted(range(len(self.job.requests)), key=lambda u: self.last[u])
        groups: list[list[int]] = [[]]
        size = 0
        for u in order:
            nbytes = int(np.prod(self.shapes[u]))
            if groups[-1] and size + nbytes > BLOCK_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(u)
            size += nbytes
        return groups

    def _arrays_of(self, g: int) -> dict[int, np.ndarray]:
        if g not in self.open:
            members = self.groups[g]
            total = sum(int(np.prod(self.shapes[u])) for u in members)
            shm = None if self.in_process else _shared_block(max(total, 1))
            if shm is not None:  # the model process attaches, copies and unlinks it: it owns it
                resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
            arrays, layout, offset = {}, [], 0
            for u in members:
                shape = self.shapes[u]
                arrays[u] = (np.empty(shape, np.uint8) if shm is None
                             else np.ndarray(shape, np.uint8, buffer=shm.buf, offset=offset))
                layout.append((self.job.requests[u].key, offset, shape))
                offset += int(np.prod(shape))
            self.open[g] = (shm, arrays, layout)
        return self.open[g][1]

    def put(self, index: int, scaled: dict[tuple[int, int] | None, np.ndarray]) -> None:
        for u, s, take in self.needs.get(index, ()):
            if self.group_of[u] in self.emitted:
                continue
            self._arrays_of(self.group_of[u])[u][s] = cut(scaled[take.scale], take)
            self.filled[u] += 1

    def flush(self, upto: int, stats: VideoStats) -> None:
        """Emit every open block whose units all end at or before frame `upto`."""
        for g in [g for g in self.open if max(self.last[u] for u in self.groups[g]) <= upto]:
            self._emit(g, stats)

    def finish(self, stats: VideoStats) -> None:
        """Emit what is left; units never completed are failures."""
        for g in range(len(self.groups)):
            if g in self.open:
                self._emit(g, stats)
            elif g not in self.emitted:
                self.emitted.add(g)
                self._fail([self.job.requests[u].key for u in self.groups[g]], stats)

    def _emit(self, g: int, stats: VideoStats) -> None:
        shm, arrays, layout = self.open.pop(g)
        self.emitted.add(g)
        done = {u for u in self.groups[g] if self.filled[u] == len(self.job.requests[u].takes)}
        complete = [entry for entry, u in zip(layout, self.groups[g]) if u in done]
        self._fail([self.job.requests[u].key for u in self.groups[g] if u not in done], stats)
        if shm is None:
            self.emit(Block(None, complete, {self.job.requests[u].key: arrays[u] for u in done}))
            return
        del arrays  # drop the views before closing the mapping
        name = shm.name
        shm.close()
        self.emit(Block(name, complete))

    def _fail(self, keys: list[tuple[str, str]], stats: VideoStats) -> None:
        for key in keys:
            stats.failed.setdefault(key, f"{self.job.path}: frames past the end of the video or undecodable")


SHM_DIR = "/dev/shm"
SHM_WAIT_S = 120.0  # how long a worker waits for the model process to free shared memory


def _shared_block(nbytes: int) -> shared_memory.SharedMemory:
    """A new segment once /dev/shm has room for it: writing past a full tmpfs would kill the
    worker (SIGBUS), so wait for the model process to consume blocks, then fail clearly."""
    deadline = time.monotonic() + SHM_WAIT_S
    while os.path.isdir(SHM_DIR):
        stat = os.statvfs(SHM_DIR)
        if stat.f_bavail * stat.f_frsize >= nbytes:
            break
        if time.monotonic() > deadline:
            raise OSError(f"{SHM_DIR} has no room for a {nbytes / 1e6:.0f} MB block of decoded frames "
                          f"after {SHM_WAIT_S:.0f} s: enlarge it (docker --shm-size) or use fewer --workers")
        time.sleep(0.05)
    return shared_memory.SharedMemory(create=True, size=nbytes)


def decode_video(job: VideoJob, emit: Callable[[Block], None], in_process: bool = False) -> VideoStats:
    """Decode `job`'s video along its plan, emitting the units' inputs block by block."""
    t0 = time.perf_counter()
    stats = VideoStats(job.video_id)
    if not job.requests:
        return stats
    slots = _Slots(job, emit, in_process)
    try:
        keyframes, key_pts, stats.frames_in_video = scan_keyframes(job.path)
        plan = plan_decode([(min(t.index for t in r.takes), max(t.index for t in r.takes)) for r in job.requests],
                           keyframes, job.mode)
        stats.mode, stats.seek_cost, stats.stream_cost = plan.mode, plan.seek_cost, plan.stream_cost
        stats.frames_decoded = _decode_segments(job, plan, key_pts, slots, stats)
    except (av.FFmpegError, OSError, IndexError) as exc:
        reason = f"{job.path}: decoding failed ({type(exc).__name__}: {exc})"
        stats.failed.update({r.key: reason for r in job.requests if r.key not in stats.failed})
    slots.finish(stats)
    stats.seconds = time.perf_counter() - t0
    return stats


def _decode_segments(job: VideoJob, plan: DecodePlan, key_pts: dict[int, int], slots: _Slots,
                     stats: VideoStats) -> int:
    decoded = 0
    with av.open(job.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads inside libavcodec
        rate = stream.average_rate or stream.guessed_rate
        scales_at: dict[int, set] = defaultdict(set)
        for index, needs in slots.needs.items():
            scales_at[index].update(take.scale for _, _, take in needs)
        seen: set[int] = set()
        for first, last in plan.segments:
            if first > 0:
                container.seek(key_pts.get(first, int(first / rate / stream.time_base)), stream=stream,
                               backward=True)
            for frame in container.decode(stream):
                decoded += 1
                index = frame_index(frame.pts, first + decoded - 1, rate, stream.time_base)
                if index in scales_at and index not in seen and index <= last:
                    seen.add(index)
                    slots.put(index, {scale: _scaled(frame, scale) for scale in scales_at[index]})
                    slots.flush(index, stats)
                if index >= last:  # the segment's last needed frame: decode nothing past it
                    break
    return decoded


def _scaled(frame: av.VideoFrame, scale: tuple[int, int] | None) -> np.ndarray:
    """(H, W, 3) RGB, scaled by libswscale during the colour conversion (one call per size)."""
    if scale is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=scale[0], height=scale[1])

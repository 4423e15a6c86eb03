"""Decoding worker processes: video jobs in, every unit's input out through shared memory.

Workers start with 'forkserver' (or 'spawn' where there is none), never 'fork': a process that
has initialised CUDA (or an OpenMP pool, or FFmpeg's threads) cannot be forked safely, and the
H200 run hung that way. The same start method and layout run on CPU, so CPU tests cover the
CUDA path's processes. At most `window` videos are in flight, so memory stays bounded.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import shared_memory

import numpy as np

from .decode_worker import Block, VideoJob, VideoStats, decode_video

log = logging.getLogger("migue.decode")

START_METHOD = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
POLL_S = 1.0  # how often a waiting parent checks that its workers are alive
MAX_DEATHS_PER_WORKER = 3  # more deaths than this per worker: something is wrong with all of them


@dataclass
class UnitInput:
    key: tuple[str, str]  # (modality, unit_id)
    array: np.ndarray | None  # (T, H, W, 3) uint8, None when it failed
    error: str | None = None


@dataclass
class DecodeTotals:
    videos: list[VideoStats] = field(default_factory=list)  # one per video decoded
    start_method: str = ""
    worker_parents: set[int] = field(default_factory=set)  # who started the workers

    @property
    def frames_decoded(self) -> int:
        return sum(v.frames_decoded for v in self.videos)

    @property
    def frames_in_videos(self) -> int:
        return sum(v.frames_in_video for v in self.videos)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _worker_main(tasks: mp.Queue, results: mp.Queue, parent: int) -> None:
    """A decoding process: take jobs until None, report blocks and per-video stats. It leaves Ctrl-C
    to its parent (which stops it), and exits by itself once the parent is gone: a forkserver child
    would otherwise wait on the task queue forever after a killed run, and keep the forkserver up."""
    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # the face resizes: one thread per worker, the workers are the parallelism
    while True:
        try:
            item = tasks.get(timeout=POLL_S)
        except queue.Empty:
            if not _alive(parent):
                return
            continue
        if item is None:
            return
        job_id, job = item
        results.put(("start", job_id, (os.getpid(), os.getppid())))
        try:
            stats = decode_video(job, lambda block: results.put(("block", job_id, block)))
        except Exception as exc:  # a bug or a hostile file: fail this video's units, keep going
            reason = f"{job.path}: decoding failed ({type(exc).__name__}: {exc})"
            stats = VideoStats(job.video_id, failed={r.key: reason for r in job.requests})
        results.put(("done", job_id, stats))


class DecodePool:
    """`workers` decoding processes (0: decode in this process, for debugging and tiny runs)."""

    def __init__(self, workers: int, start_method: str = START_METHOD, window: int | None = None) -> None:
        if start_method == "fork":
            raise ValueError("decoding workers must not be forked (CUDA, OpenMP and FFmpeg threads): "
                             "use 'forkserver' or 'spawn'")
        self.workers, self.start_method = max(0, workers), start_method
        self.window = window or 2 * max(1, workers)
        self.totals = DecodeTotals()
        self._procs: list[mp.Process] = []
        self.worker_parents: set[int] = set()  # who started the workers (tests: never this process)
        self._deaths = 0

    def __enter__(self) -> "DecodePool":
        if self.workers:
            ctx = mp.get_context(self.start_method)
            if self.start_method == "forkserver":
                ctx.set_forkserver_preload(["__main__", _worker_main.__module__])
            self._ctx, self._tasks, self._results = ctx, ctx.Queue(), ctx.Queue()
            self._procs = [self._start() for _ in range(self.workers)]
        return self

    def _start(self) -> mp.Process:
        proc = self._ctx.Process(target=_worker_main, args=(self._tasks, self._results, os.getpid()), daemon=True,
                                 name="migue-decode")
        proc.start()
        return proc

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """Finished: let the workers take their None and leave. Interrupted or failed (Ctrl-C, a
        TERM the CLI turned into an exception, an error): stop them now, and the forkserver too."""
        if not self._procs:
            return
        if exc_type is None:
            for _ in self._procs:
                self._tasks.put(None)
        for proc in self._procs:
            if exc_type is None:
                proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._drain()
        for q in (self._tasks, self._results):
            q.cancel_join_thread()  # jobs nobody will take must not hold up the exit
            q.close()
        self._procs = []
        if exc_type is not None and self.start_method == "forkserver":
            _stop_forkserver()

    def _drain(self) -> None:
        """Unlink the blocks nobody will read (an early exit): nothing is left in /dev/shm."""
        while True:
            try:
                kind, _, payload = self._results.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if kind == "block" and payload.shm_name:
                _unlink(payload.shm_name)

    def decode(self, jobs: Iterable[VideoJob]) -> Iterator[UnitInput]:
        """Every requested unit's input (or failure), video by video as they finish."""
        if not self.workers:
            yield from self._decode_here(jobs)
            return
        pending = iter(enumerate(jobs))
        flying: dict[int, VideoJob] = {}
        delivered: dict[int, set] = {}
        running: dict[int, int] = {}  # pid -> job id
        while self._submit(pending, flying, delivered) or flying:
            try:
                kind, job_id, payload = self._results.get(timeout=POLL_S)
            except queue.Empty:
                yield from self._reap(flying, delivered, running)
                continue
            if kind == "start":
                running[payload[0]] = job_id
                self.worker_parents.add(payload[1])
            elif kind == "block":
                for item in _read_block(payload):
                    delivered[job_id].add(item.key)
                    yield item
            else:
                running = {pid: j for pid, j in running.items() if j != job_id}
                yield from self._finish(flying.pop(job_id), delivered.pop(job_id), payload)

    def _submit(self, pending: Iterator, flying: dict, delivered: dict) -> bool:
        """Keep `window` videos in flight; False when every job has been handed out."""
        while len(flying) < self.window:
            nxt = next(pending, None)
            if nxt is None:
                return False
            job_id, job = nxt
            flying[job_id], delivered[job_id] = job, set()
            self._tasks.put((job_id, job))
        return True

    def _finish(self, job: VideoJob, delivered: set, stats: VideoStats) -> Iterator[UnitInput]:
        self.totals.videos.append(stats)
        log.debug("%s: %s, %d of %d frames decoded in %.2f s", job.video_id, stats.mode,
                  stats.frames_decoded, stats.frames_in_video, stats.seconds)
        for request in job.requests:
            if request.key not in delivered:
                yield UnitInput(request.key, None, stats.failed.get(request.key, f"{job.path}: not decoded"))

    def _reap(self, flying: dict, delivered: dict, running: dict) -> Iterator[UnitInput]:
        """A worker that died (a crash inside FFmpeg) fails its video's remaining units only."""
        for i, proc in enumerate(self._procs):
            if proc.is_alive():
                continue
            job_id = running.pop(proc.pid, None)
            log.warning("decoding process %s died (exit code %s)", proc.pid, proc.exitcode)
            self._deaths += 1
            if self._deaths > MAX_DEATHS_PER_WORKER * self.workers:  # they cannot start: stop, do not loop
                raise RuntimeError(f"decoding processes keep dying ({self._deaths} so far, last exit code "
                                   f"{proc.exitcode}); their own error is printed above")
            self._procs[i] = self._start()
            if job_id is not None and job_id in flying:
                job = flying.pop(job_id)
                reason = f"{job.path}: the decoding process died (exit code {proc.exitcode})"
                stats = VideoStats(job.video_id, failed={r.key: reason for r in job.requests})
                yield from self._finish(job, delivered.pop(job_id), stats)

    def _decode_here(self, jobs: Iterable[VideoJob]) -> Iterator[UnitInput]:
        for job in jobs:
            blocks: list[Block] = []
            stats = decode_video(job, blocks.append, in_process=True)
            delivered = set()
            for block in blocks:
                for key, _, _ in block.layout:
                    delivered.add(key)
                    yield UnitInput(key, block.arrays[key])
            yield from self._finish(job, delivered, stats)


def _stop_forkserver() -> None:
    """Stop this process's multiprocessing forkserver (the next pool starts a new one)."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)  # CPython's, 3.8+
    if stop is not None:
        try:
            stop()
        except OSError as exc:
            log.debug("stopping the forkserver: %s", exc)


def _read_block(block: Block) -> list[UnitInput]:
    """Copy a block's units out of its shared memory, then unlink it."""
    shm = shared_memory.SharedMemory(name=block.shm_name)
    try:
        items = []
        for key, offset, shape in block.layout:
            view = np.ndarray(shape, np.uint8, buffer=shm.buf, offset=offset)
            items.append(UnitInput(key, view.copy()))
            del view
        return items
    finally:
        shm.close()
        shm.unlink()


def _unlink(name: str) -> None:
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    shm.close()
    shm.unlink()

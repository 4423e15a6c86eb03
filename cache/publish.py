"""Filling an entry chunk by chunk: claim a chunk, compute it, publish its shard in the background.

Stage one cuts an entry's units into fixed chunks (one shard each, the same in every run).
`ChunkPublisher` holds the claims (`claims.WorkClaims`) of the chunks this run computes,
writes each finished chunk's shard on a background thread (off the critical path), releases its
claim once published, and remembers the chunks another live run held so they can be waited for.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .claims import Claim, WorkClaims, chunk_name
from .writer import DuplicateUnitsError, EntryWriter

log = logging.getLogger("migue.cache")


def publish_claimed(writer: EntryWriter, claim: Claim, units: Mapping[str, Sequence[Any]],
                    streams: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write a claimed chunk's shard (nothing when all its units failed), then release the claim;
    units a concurrent run published first are skipped, not doubled."""
    try:
        if len(units.get("unit_id", ())):
            path: Path = writer.write(units, streams)
            log.debug("published %s: %d units as %s", claim.path.stem, len(units["unit_id"]), path.name)
    except DuplicateUnitsError as exc:  # a concurrent run published them first: nothing lost
        log.info("skipped a shard: %s", exc)
    finally:
        claim.release()


def raise_failed(pending: Iterable[Future]) -> None:
    """Raise the error of the first finished publish that failed (a full disk), at once."""
    for future in pending:
        if future.done() and future.exception() is not None:
            future.result()


class ChunkPublisher:
    """Claims, background publishing and release for the chunks of one entry."""

    def __init__(self, writer: EntryWriter, chunks: Sequence[Sequence[str]]) -> None:
        self.writer, self.chunks = writer, [list(c) for c in chunks]
        self.claims = WorkClaims(writer.dir)
        self.held: dict[int, Claim] = {}
        self.busy: list[int] = []  # chunks another live run held in the last pass
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future] = []

    def claim(self, todo: Iterable[int], wanted: set[str]) -> Iterator[tuple[int, list[str]]]:
        """For each chunk of `todo` holding `wanted` units: claim it and yield (chunk, its wanted
        units not yet published). A chunk another live run holds goes to `busy`."""
        self.busy = []
        for k in todo:
            if not any(u in wanted for u in self.chunks[k]):
                continue
            claim = self.claims.try_claim(chunk_name(self.chunks[k]), self.chunks[k])
            if claim is None:
                self.busy.append(k)
                continue
            done = self.writer.done_units()  # read after claiming: another run may have published it
            left = [u for u in self.chunks[k] if u in wanted and u not in done]
            if not left:
                claim.release()
                continue
            log.debug("claimed %s: %d units to compute", chunk_name(self.chunks[k]), len(left))
            self.held[k] = claim
            yield k, left

    def publish(self, k: int, units: Mapping[str, Sequence[Any]], streams: Mapping[str, Sequence[np.ndarray]]) -> None:
        """Write chunk k's shard in the background, then release its claim. Nothing to write
        (all its units failed) just releases it."""
        self._pending.append(self._pool.submit(self._publish, self.held.pop(k), units, streams))

    def _publish(self, claim: Claim, units: Mapping[str, Sequence[Any]],
                 streams: Mapping[str, Sequence[np.ndarray]]) -> None:
        publish_claimed(self.writer, claim, units, streams)

    def raise_failed(self) -> None:
        """Raise at once when a publish failed (a full disk), not after computing everything."""
        raise_failed(self._pending)

    def finish(self) -> None:
        """Wait for every publish (raising the first failure), then release claims still held."""
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pending = []
            self.release()

    def release(self) -> None:
        """Release the claims of chunks claimed but not handed to `publish`."""
        for claim in self.held.values():
            claim.release()
        self.held = {}

    def wait_for(self, k: int) -> None:
        """Block until no run holds chunk k (its holder published or died)."""
        self.claims.wait(chunk_name(self.chunks[k]))

    def __enter__(self) -> "ChunkPublisher":
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            if kind is None:
                self.finish()
            else:  # already failing: let the publishes end, keep the first error
                for future in self._pending:
                    future.exception()
                self.release()
        finally:
            self._pool.shutdown(wait=True)

"""Kill `migue extract` with SIGKILL at random moments, rerun it until it completes, and show
that nothing was lost or doubled: the cache equals an uninterrupted run's, bit for bit.

    .venv/bin/python scripts/kill_test.py --kills 20

Steps: synth a small sample; run one uninterrupted extraction (the reference); then start
`migue -v extract` on a second cache, SIGKILL its process group at a random moment (during
start-up, mid-batch, mid-publish: anywhere), `migue cache verify` the entry, and start it
again, until it has been killed --kills times and one last run completes. Then compare
`migue cache digest` of both entries and every token byte, and count the units computed
twice: it must be exactly the units of the shards in flight when a run was killed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FORWARDED = re.compile(r"forwarded (\d+) units of (chunk-[0-9a-f]+)")
PUBLISHED = re.compile(r"published (chunk-[0-9a-f]+): (\d+) units")
CLAIMED = "claimed chunk-"


@dataclass
class KillResult:
    kills: int = 0
    runs: int = 0
    units: int = 0
    units_forwarded: int = 0
    units_recomputed: int = 0
    in_flight_bound: int = 0         # units of chunks a killed run was computing and had not published
    bytes_compared: int = 0
    reference_digest: str = ""
    digest: str = ""
    temp_files_seen: int = 0         # left by a killed run, found before the next one started
    gc_output: str = ""
    kill_moments: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def migue_command() -> list[str]:
    exe = Path(sys.executable).with_name("migue")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("migue")
    if not found:
        raise SystemExit("cannot find the `migue` command next to this python or on PATH")
    return [found]


class Run:
    """One `migue -v extract` process (its own process group), its stderr in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.first_claim: float | None = None  # seconds from start to its first claim, when seen
        self.started = time.monotonic()
        self._out = open(log, "w")
        self.proc = subprocess.Popen(migue_command() + args, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def text(self) -> str:
        text = self.log.read_text(errors="replace")
        if self.first_claim is None and CLAIMED in text:
            self.first_claim = time.monotonic() - self.started
        return text

    def wait_for_claim(self, timeout: float) -> float | None:
        """Seconds from start to the first claim (None if the run ended or timed out first)."""
        while time.monotonic() - self.started < timeout and self.proc.poll() is None:
            self.text()
            if self.first_claim is not None:
                return self.first_claim
            time.sleep(0.02)
        return None

    def forwarded(self) -> int:
        return sum(int(n) for n, _ in FORWARDED.findall(self.text()))

    def kill_at(self, moment: float) -> bool:
        """SIGKILL the whole group `moment` s after the start; False if it had finished already."""
        while time.monotonic() - self.started < moment:
            if self.proc.poll() is not None:
                break
            self.text()
            time.sleep(0.02)
        return self._kill()

    def kill_after(self, units: int, fraction: float, batch_time: float, timeout: float) -> float:
        """SIGKILL the group once it has computed `units` units, `fraction` of a batch's time later
        (the time its own batches took, else `batch_time`). Returns that delay, or -1 if it ended first."""
        seen, times = 0, []
        while self.proc.poll() is None and time.monotonic() - self.started < timeout:
            now = self.forwarded()
            if now > seen:
                seen = now
                times.append(time.monotonic())
            if seen >= units:
                break
            time.sleep(0.01)
        if len(times) >= 2:
            batch_time = (times[-1] - times[0]) / (len(times) - 1)
        delay = fraction * batch_time
        time.sleep(delay)
        return delay if self._kill() else -1.0

    def _kill(self) -> bool:
        killed = self.proc.poll() is None
        if killed:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._out.close()
        return killed

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()


def _chunk_counts(text: str) -> tuple[Counter, set[str]]:
    forwarded: Counter = Counter()
    for count, chunk in FORWARDED.findall(text):
        forwarded[chunk] += int(count)
    return forwarded, {chunk for chunk, _ in PUBLISHED.findall(text)}


def _only_entry(cache: Path) -> Path:
    entries = [p.parent for p in cache.glob("*/index.json")]
    if len(entries) != 1:
        raise RuntimeError(f"expected one entry in {cache}, found {len(entries)}")
    return entries[0]


def _digest(cache: Path, entry: Path, env: dict[str, str]) -> str:
    out = subprocess.run(migue_command() + ["cache", "digest", entry.name, "--cache", str(cache)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return out.split()[0]


def _compare_tokens(a: Path, b: Path) -> tuple[int, list[str]]:
    """Every stream of every unit, byte for byte; returns (bytes compared, problems)."""
    import numpy as np

    from migue.cache import EntryReader

    ra, rb = EntryReader(a), EntryReader(b)
    ids_a, ids_b = list(ra.units["unit_id"]), list(rb.units["unit_id"])
    if sorted(ids_a) != sorted(ids_b) or len(set(ids_a)) != len(ids_a):
        return 0, [f"unit ids differ: {len(ids_a)} vs {len(ids_b)} units"]
    row_b = {u: i for i, u in enumerate(ids_b)}
    order = [row_b[u] for u in ids_a]
    compared, problems = 0, []
    for stream in sorted(ra.streams):
        xa, xb = ra.read(stream), rb.read(stream, order)
        compared += xa.nbytes
        if xa.shape != xb.shape or xa.tobytes() != xb.tobytes():
            differ = int((xa.view(np.uint16) != xb.view(np.uint16)).any(axis=(1, 2)).sum()) \
                if xa.shape == xb.shape else len(ids_a)
            problems.append(f"stream {stream}: {differ} units differ from the uninterrupted run")
    return compared, problems


def run_kill_test(workdir: Path, kills: int = 20, seed: int = 0, modality: str = "pose", frames: int = 8,
                  shard_size: int = 8, batch_size: int = 4, workers: int = 2, timeout: float = 1800,
                  say=print, data: Path | None = None) -> KillResult:
    """Everything described in the module doc; returns the figures and any problem found.
    `data`: a dataset to read (only read: caches go under `workdir`); default a sample generated there."""
    from migue.cache import verify_entry
    from migue.synth.sample import write_sample

    rng = random.Random(seed)
    result = KillResult()
    workdir.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = workdir / "data"
        if not (data / ".complete").exists():
            write_sample(data, videos=12, seed=1, frames=260, rgb=modality not in ("pose",))
            (data / ".complete").touch()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["extract", "--modality", modality, "--data", str(data), "--frames", str(frames),
            "--shard-size", str(shard_size), "--batch-size", str(batch_size), "--workers", str(workers),
            "--device", "cpu"]
    if modality in ("rgb", "context"):
        args += ["--arch", "tiny", "--size", "64"]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)

    # The reference: one uninterrupted run. Its log gives start-up time and compute rate.
    reference = workdir / "cache-reference"
    shutil.rmtree(reference, ignore_errors=True)
    run = Run(["-v", *args, "--cache", str(reference)], logs / "reference.log", env)
    startup = run.wait_for_claim(timeout) or 5.0  # until the first claim: imports, model, writer
    if run.finish(timeout) != 0:
        raise RuntimeError(f"the reference run failed: see {run.log}")
    took = time.monotonic() - run.started
    ref_entry = _only_entry(reference)
    result.units = sum(s["units"] for s in json.loads((ref_entry / "index.json").read_text())["shards"])
    batch_time = max(took - startup, 0.1) / max(result.units, 1) * batch_size
    say(f"reference: {result.units} units in {took:.1f}s (start-up {startup:.1f}s, {batch_time:.2f}s a batch)")

    cache = workdir / "cache-killed"
    shutil.rmtree(cache, ignore_errors=True)
    published_before: set[str] = set()
    forwarded_all: Counter = Counter()
    while True:
        entry = next(iter(cache.glob("*/index.json")), None)
        done = 0
        if entry is not None:
            entry = entry.parent
            result.temp_files_seen += len(list(entry.glob(".tmp-*")))
            report = verify_entry(entry)
            if not report.ok:
                result.problems += [f"after kill {result.kills}: {p}" for p in report.problems]
            done = report.units
        last = result.kills >= kills
        run = Run(["-v", *args, "--cache", str(cache)], logs / f"run-{result.runs:03d}.log", env)
        result.runs += 1
        if last:
            code = run.finish(timeout)
            killed = False
        else:
            # A random moment: a quarter of the kills land in start-up (imports, model, writer
            # start, temp-file cleanup); the rest after a random number of computed units plus a
            # random delay (mid-batch, mid-write, mid-rename, mid-index update), spread so that
            # the remaining kills share the remaining work and none comes after the end.
            remaining = result.units - done
            if rng.random() < 0.25 or remaining <= 2 * batch_size:
                moment = rng.uniform(0.0, 0.8 * startup)
                killed = run.kill_at(moment)
                where = f"at {moment:4.1f}s, in start-up"
            else:
                share = remaining / (kills - result.kills + 1)
                target = rng.randint(0, max(0, min(int(2 * share), remaining - 2 * batch_size)))
                delay = run.kill_after(target, rng.uniform(0.0, 1.5), batch_time, timeout)
                killed = delay >= 0
                where = f"{delay:.2f}s after {target} units computed"
            code = run.proc.returncode
            if run.first_claim is not None:
                startup = min(startup, run.first_claim)
            if killed:
                result.kills += 1
                result.kill_moments.append(round(time.monotonic() - run.started, 2))
        forwarded, published = _chunk_counts(run.text())
        again = set(forwarded) & published_before
        if again:
            result.problems.append(f"run {result.runs} recomputed already published chunks {sorted(again)[:3]}")
        forwarded_all.update(forwarded)
        if killed:
            result.in_flight_bound += sum(n for chunk, n in forwarded.items() if chunk not in published)
        published_before |= published
        if not killed:
            if code != 0:
                result.problems.append(f"run {result.runs} exited with {code}: see {run.log}")
            if result.kills < kills:
                result.problems.append(f"the job completed after only {result.kills} of {kills} kills")
            break
        now = sum(s["units"] for s in json.loads((_only_entry(cache) / "index.json").read_text())["shards"]) \
            if list(cache.glob("*/index.json")) else 0
        say(f"kill {result.kills:>2}/{kills} {where}: {now - done:+d} units published, {now} in all")

    entry = _only_entry(cache)
    leftovers = list(entry.glob(".tmp-*"))
    if leftovers:
        result.problems.append(f"{len(leftovers)} temp files left after the completing run")
    report = verify_entry(entry)
    if not report.ok or report.units != result.units:
        result.problems += report.problems or [f"{report.units} units verified, expected {result.units}"]
    result.gc_output = subprocess.run(migue_command() + ["cache", "gc", "--cache", str(cache)], capture_output=True,
                                      text=True, env=env).stdout.strip()
    result.units_forwarded = sum(forwarded_all.values())
    result.units_recomputed = result.units_forwarded - result.units
    if result.units_recomputed > result.in_flight_bound:
        result.problems.append(f"{result.units_recomputed} units computed twice, but only "
                               f"{result.in_flight_bound} were in flight at the kills")
    result.reference_digest = _digest(reference, ref_entry, env)
    result.digest = _digest(cache, entry, env)
    if result.digest != result.reference_digest:
        result.problems.append("`migue cache digest` differs from the uninterrupted run's")
    result.bytes_compared, problems = _compare_tokens(ref_entry, entry)
    result.problems += problems
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs before the run may complete")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--modality", default="pose", choices=["pose", "rgb", "context", "face"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="kept afterwards (default: a temp dir, removed)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="migue-kill-"))
    started = time.monotonic()
    try:
        result = run_kill_test(workdir, args.kills, args.seed, args.modality, args.frames, args.shard_size,
                               args.batch_size, args.workers)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"kills survived:         {result.kills} (in {result.runs} runs, {time.monotonic() - started:.0f}s)")
    print(f"units:                  {result.units}")
    print(f"units computed:         {result.units_forwarded}")
    print(f"units recomputed:       {result.units_recomputed} (in flight at the kills: {result.in_flight_bound})")
    print(f"temp files left by kills, cleaned on the next start: {result.temp_files_seen}")
    print(f"bytes compared:         {result.bytes_compared} (every token of every stream, bit for bit)")
    print(f"digest, uninterrupted:  {result.reference_digest}")
    print(f"digest, killed:         {result.digest}")
    print(f"cache gc afterwards:    {result.gc_output.splitlines()[0] if result.gc_output else '-'}")
    if result.problems:
        print("PROBLEMS:")
        for problem in result.problems:
            print(f"  - {problem}")
        sys.exit(1)
    print("OK: the killed-and-resumed cache equals the uninterrupted one")


if __name__ == "__main__":
    main()

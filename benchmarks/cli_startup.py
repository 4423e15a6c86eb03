"""How long `migue --help` and `migue <command> --help` take, for every command and subcommand
(issue 24 point 7: each under 2 s). Each is run as a fresh process REPEATS times; the median
wall time is shown with the modules that matter that it imported (torch, scikit-learn, ...).

    python benchmarks/cli_startup.py [--repeats 3] [--out table.md]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

TARGET_S = 2.0
HEAVY = ("torch", "sklearn", "matplotlib", "h5py", "pandas", "dask", "cv2", "av")
PROBE = ("import sys; from migue.pipeline.cli import main\n"
         "try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
         "print('HEAVY', ' '.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)")


def commands() -> list[list[str]]:
    """Every command line to time: [], each command, each subcommand of a group."""
    from migue.pipeline.cli import app

    out: list[list[str]] = [[]]
    for name in app.COMMANDS:
        out.append([name])
        command = app.main.get_command(click.Context(app.main), name)
        if isinstance(command, click.Group):
            out += [[name, sub] for sub in command.list_commands(click.Context(command))]
    return out


def time_help(args: list[str], repeats: int) -> tuple[float, str]:
    """(median seconds of `migue ARGS --help` in a fresh process, the heavy modules it imported)."""
    migue = str(Path(sys.executable).with_name("migue"))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([migue, *args, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    probe = subprocess.run([sys.executable, "-c", PROBE.format(args=[*args, "--help"], heavy=HEAVY)],
                           capture_output=True, text=True, check=True)
    heavy = next((line.split(" ", 1)[1] if " " in line else "" for line in probe.stderr.splitlines()
                  if line.startswith("HEAVY")), "?")
    return statistics.median(times), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="Also write the table (Markdown) here.")
    opts = parser.parse_args()
    rows = ["| command | median s | target | imports |", "|---|---:|---|---|"]
    over = 0
    for args in commands():
        seconds, heavy = time_help(args, opts.repeats)
        over += seconds >= TARGET_S
        shown = " ".join(["migue", *args, "--help"])
        rows.append(f"| `{shown}` | {seconds:.2f} | {'ok' if seconds < TARGET_S else 'OVER'} (< {TARGET_S:.0f} s) "
                    f"| {heavy or '-'} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(f"\n{table}\n\n{over} of {len(rows) - 2} over the {TARGET_S:.0f} s target ({opts.repeats} runs each, median)")
    if opts.out:
        opts.out.write_text(table + "\n")


if __name__ == "__main__":
    main()

"""Run the project's test command again and again with a core kept busy, and count failures.

    python dev/flake_check.py                 # 20 runs, one busy process beside them
    python dev/flake_check.py --runs 5 --busy 2

A test command that fails one run in twenty on a loaded machine is broken, whatever
it says on a quiet one. Each run is the README's command (`python -m pytest
--impl=reference -n 2`); meanwhile `--busy` processes spin on pure Python arithmetic,
as another job on a shared machine would. The tally at the end lists every failed
test by name; the exit code is 0 only if every run passed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEPT = Path(tempfile.gettempdir()) / "tinytorch-flake-check"
COMMAND = [sys.executable, "-m", "pytest", "--impl=reference", "-n", "2", "-q", "-p", "no:cacheprovider"]


def spin(stop_at: float) -> None:
    """Keep one core busy until `stop_at` (time.time())."""
    value = 0
    while time.time() < stop_at:
        for i in range(100_000):
            value = (value * 31 + i) % 1_000_003


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="how many times to run the test command (20)")
    parser.add_argument("--busy", type=int, default=1, help="busy processes running alongside (1)")
    args = parser.parse_args(argv)
    failures: Counter = Counter()
    failed_runs, durations = 0, []
    for run in range(1, args.runs + 1):
        started = time.time()
        spinners = [multiprocessing.Process(target=spin, args=(started + 3600,), daemon=True)
                    for _ in range(args.busy)]
        for spinner in spinners:
            spinner.start()
        try:
            done = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        finally:
            for spinner in spinners:
                spinner.terminate()
                spinner.join()
        seconds = time.time() - started
        durations.append(seconds)
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
        summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"run {run:2d}/{args.runs}: exit {done.returncode} in {seconds:5.1f} s  {summary}", flush=True)
        if done.returncode != 0:
            failed_runs += 1
            failures.update(failed or [f"exit code {done.returncode}"])
            kept = KEPT / f"run-{run:02d}.txt"  # the whole output, to read why
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(done.stdout + done.stderr, encoding="utf-8")
            for test in failed or [f"exit code {done.returncode}"]:
                print(f"         {test}", flush=True)
            print(f"         output kept in {kept}", flush=True)
    print(f"\n{args.runs - failed_runs} of {args.runs} runs passed with {args.busy} busy process(es) alongside; "
          f"{min(durations):.0f}-{max(durations):.0f} s per run.")
    for test, count in failures.most_common():
        print(f"  {count:2d}x {test}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())

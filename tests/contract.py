"""Shared machinery for the repository's own tests: run a kata suite in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import manifest as manifest_module
from harness.results import RunResults

ROOT = manifest_module.ROOT
# Variables that would change what a child pytest run does; the children get explicit flags instead.
_DROP = ("TINYTORCH_IMPL", "TINYTORCH_STUDENT_DIR", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
         "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST", "COV_CORE_SOURCE")


def child_environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_suite(target: Path, results_json: Path, flags=(), env=None, timeout=300, prefix=()) -> tuple[RunResults | None, subprocess.CompletedProcess]:
    """Run pytest on `target` in a fresh process; return its results (None if it wrote none)."""
    command = [*(prefix or [sys.executable]), "-m", "pytest", str(target), "-q", "-p", "no:cacheprovider",
               "--results-json", str(results_json), *flags]
    completed = subprocess.run(command, cwd=ROOT, env=env or child_environment(), capture_output=True,
                               text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    results = RunResults.load(results_json) if results_json.exists() else None
    return results, completed


def in_parallel(function, items, workers: int = 2) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def tail(completed: subprocess.CompletedProcess, lines: int = 25) -> str:
    text = (completed.stdout or "") + (completed.stderr or "")
    return "\n".join(text.strip().splitlines()[-lines:])

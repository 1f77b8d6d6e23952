"""Shared machinery for the repository's own tests: run a kata suite in a fresh process."""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import manifest as manifest_module
from harness.results import RunResults

ROOT = manifest_module.ROOT
# Variables that would change what a child pytest run does; the children get explicit flags instead.
_DROP = ("TINYTORCH_IMPL", "TINYTORCH_STUDENT_DIR", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
         "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST", "COV_CORE_SOURCE")


_scratch: list[str] = []


def _scratch_dir() -> str:
    """A folder for what the suites this test run starts may write: progress, bytecode caches."""
    if not _scratch:
        folder = tempfile.mkdtemp(prefix="tinytorch-runs-")
        atexit.register(shutil.rmtree, folder, True)
        _scratch.append(folder)
    return _scratch[0]


def shared_bytecode(env: dict) -> dict:
    """Hundreds of runs import the same files: let them share compiled bytecode (pytest's rewritten
    test modules too), kept in the scratch folder rather than in the repository."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(_scratch_dir(), "pycache"))
    return env


def child_environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.setdefault("TINYTORCH_PROGRESS_DIR", os.path.join(_scratch_dir(), "progress"))
    shared_bytecode(env)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _pytest_arguments(target: Path, results_json: Path, flags) -> list[str]:
    return [str(target), "-q", "-p", "no:cacheprovider", "--results-json", str(results_json), *flags]


def run_suite(target: Path, results_json: Path, flags=(), env=None, timeout=300, prefix=()) -> tuple[RunResults | None, subprocess.CompletedProcess]:
    """Run pytest on `target` in a fresh process; return its results (None if it wrote none).

    Without a `prefix` (such as coverage's), the run is a child forked from a server that has
    imported pytest already (tests/forkserver.py): the same fresh process, started faster.
    """
    arguments = _pytest_arguments(target, results_json, flags)
    if prefix or os.name != "posix":
        command = [*(prefix or [sys.executable]), "-m", "pytest", *arguments]
        completed = subprocess.run(command, cwd=ROOT, env=env or child_environment(), capture_output=True,
                                   text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    else:
        completed = ForkServer.run(arguments, env or child_environment(), timeout, results_json)
    results = RunResults.load(results_json) if results_json.exists() else None
    return results, completed


class ForkServer:
    """A pool of tests/forkserver.py processes; each suite run borrows one for its fork."""

    _idle: "queue.SimpleQueue[ForkServer]" = queue.SimpleQueue()
    _lock = threading.Lock()

    def __init__(self):
        env = child_environment(OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, MKL_NUM_THREADS=1)
        self.process = subprocess.Popen([sys.executable, "-m", "tests.forkserver"], cwd=ROOT, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    cpu_seconds = 0.0  # of every child so far (diagnostics: what the suite runs cost)

    def _run(self, arguments: list[str], env: dict, timeout: float, output: Path) -> int:
        job = {"args": arguments, "env": env, "cwd": str(ROOT), "output": str(output), "timeout": timeout}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("the fork server ended unexpectedly")
        reply = json.loads(answer)
        ForkServer.cpu_seconds += reply.get("cpu_seconds", 0.0)
        return int(reply["returncode"])

    @classmethod
    def run(cls, arguments: list[str], env: dict, timeout: float, results_json: Path) -> subprocess.CompletedProcess:
        try:
            server = cls._idle.get_nowait()
        except queue.Empty:
            server = cls()
        output = Path(results_json).with_suffix(".out")
        try:
            returncode = server._run(arguments, env, timeout, output)
        except BaseException:
            server.process.kill()
            raise
        cls._idle.put(server)
        text = output.read_text(encoding="utf-8", errors="replace") if output.exists() else ""
        return subprocess.CompletedProcess(["pytest", *arguments], returncode, text, "")


def in_parallel(function, items, workers: int = 2) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def tail(completed: subprocess.CompletedProcess, lines: int = 25) -> str:
    text = (completed.stdout or "") + (completed.stderr or "")
    return "\n".join(text.strip().splitlines()[-lines:])

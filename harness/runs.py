"""Run each kata and milestone in its own pytest process, and say what became of it.

A learner's syntax error, infinite loop, `sys.exit()` at import or hard crash
(`os._exit`, a segfault) ends that one process; the kata is reported broken with
the reason, and every other kata is still scored. Each run is

    python -m pytest <test file> -v --tb=line -p no:cacheprovider --results-json <tmp> --impl=<mode>

(`-v` turns the ladder off, so pytest's own output names the file and line of an
import error or a crash; `--tb=line` keeps it to one line per failure) in the repository's root, stdin closed, in a process group of its own. After the
wall-clock limit the group gets SIGINT (pytest then saves what it has), and SIGKILL
a few seconds later if it is still there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness import manifest as manifest_module
from harness.results import NOT_RUN, NOT_STARTED, PASSED, STOPPED_AFTER_TIMEOUT, CheckpointTally, RunResults

MILESTONES = "milestones"  # the results group every milestone test belongs to
KATA, MILESTONE = "kata", "milestone"
GRACE_SECONDS = 5  # between SIGINT and SIGKILL

# What a group can be, as one word (the result file's "state").
DONE, IN_PROGRESS, BLOCKED, NO_TESTS = "done", "in progress", "blocked", "no tests yet"
WRONG, BROKEN = "wrong", "broken"
STATES = (DONE, NOT_STARTED, IN_PROGRESS, WRONG, BROKEN, BLOCKED, NO_TESTS)


@dataclass(frozen=True)
class Target:
    """One thing the scoreboard runs: a kata, or one milestone (a single checkpoint)."""

    id: str
    kind: str  # KATA or MILESTONE
    title: str
    label: str  # how the scoreboard names it: "01 Tensor", "1957 Perceptron"
    test_file: Path
    capability: str
    minutes: int
    checkpoints: tuple  # ((name, goal, hints, lesson, weight), ...) in order

    @property
    def command(self) -> str:
        """The command a learner types to run just this."""
        path = self.test_file.parent if self.kind == KATA else self.test_file
        return f"python -m pytest {path.relative_to(manifest_module.ROOT).as_posix()}"


def targets(manifest) -> list[Target]:
    """Every kata, then every milestone, in manifest order."""
    found = [Target(k.id, KATA, k.title, f"{k.number:02d} {k.title}", k.test_file, k.capability, k.minutes,
                    tuple((c.name, c.goal, c.hints, c.lesson, c.weight) for c in k.checkpoints))
             for k in manifest.katas]
    found += [Target(m.id, MILESTONE, m.title, m.id, m.test_file, m.capability, m.minutes,
                     ((m.id, m.goal, m.hints, m.lesson, m.weight),))
              for m in manifest.milestones]
    return found


def find_target(manifest, name: str) -> Target:
    """A kata by id, number or name (`01_tensor`, `1`, `tensor`), or a milestone by id or its prefix."""
    everything = targets(manifest)
    try:
        kata = manifest.kata(name)
        return next(t for t in everything if t.id == kata.id)
    except KeyError:
        pass
    wanted = str(name).strip().rstrip("/").split("/")[-1].removeprefix("test_").removesuffix(".py")
    for target in everything:
        if target.kind == MILESTONE and (target.id == wanted or target.id.startswith(f"{wanted}_")):
            return target
    known = ", ".join(t.id for t in everything)
    raise KeyError(f"no kata or milestone called {name!r}; there are: {known}")


# -- what happened ----------------------------------------------------------------

@dataclass
class CheckpointRun(CheckpointTally):
    name: str
    goal: str
    hints: tuple
    lesson: str
    weight: float
    tests: list = field(default_factory=list)  # harness.results.TestResult, in run order


@dataclass
class GroupRun:
    target: Target
    checkpoints: list  # CheckpointRun, in manifest order
    broken: str = ""  # why the whole run failed: import error, crash, timeout ("" if it ran)
    seconds: float = 0.0
    ran: bool = True  # False when there was no test file to run

    @property
    def done(self) -> int:
        return sum(c.done for c in self.checkpoints)

    @property
    def total(self) -> int:
        return len(self.checkpoints)

    @property
    def finished(self) -> bool:
        return self.ran and not self.broken and self.done == self.total

    def first_red(self):
        """(checkpoint, test) of the first test that did not pass, or (checkpoint, None)
        for a checkpoint with no tests; (None, None) when everything is done."""
        for checkpoint in self.checkpoints:
            for test in checkpoint.tests:
                if test.outcome != PASSED:
                    return checkpoint, test
            if not checkpoint.tests:
                return checkpoint, None
        return None, None

    @property
    def state(self) -> str:
        if not self.ran:
            return NO_TESTS
        if self.broken:
            return BROKEN
        checkpoint, test = self.first_red()
        if checkpoint is None:
            return DONE
        if test is None or test.outcome in (NOT_STARTED, NOT_RUN):
            if test is not None and test.blocked_by:
                return BLOCKED
            started = any(t.outcome == PASSED for c in self.checkpoints for t in c.tests)
            return IN_PROGRESS if started else NOT_STARTED
        return WRONG if test.outcome == WRONG else BROKEN

    @property
    def summary(self) -> str:
        """The state in a few words, for the scoreboard line."""
        state = self.state
        checkpoint, test = self.first_red()
        if state == BROKEN and self.broken:
            return f"broken: {self.broken.splitlines()[0]}"
        if state == BLOCKED:
            return f"needs {test.blocked_by}"
        if state in (WRONG, BROKEN):
            return f"{state} at {checkpoint.name}"
        if state == IN_PROGRESS:
            return f"next: {checkpoint.name}"
        return state


def group_from_results(target: Target, results: RunResults | None, broken: str = "",
                       seconds: float = 0.0) -> GroupRun:
    """Sort a run's test results into the target's checkpoints."""
    tests = []
    if results is not None:
        group = MILESTONES if target.kind == MILESTONE else target.id
        tests = [t for t in results.tests if t.group == group]
    checkpoints = [CheckpointRun(name, goal, hints, lesson, weight, [t for t in tests if t.checkpoint == name])
                   for name, goal, hints, lesson, weight in target.checkpoints]
    return GroupRun(target, checkpoints, broken=broken, seconds=seconds)


def not_run(target: Target) -> GroupRun:
    run = group_from_results(target, None)
    run.ran = False
    return run


# -- reading a crash --------------------------------------------------------------

_EXCEPTION = re.compile(r"^(?:INTERNALERROR> |E\s+)?\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*"
                        r"(?:Error|Exit|Exception|Interrupt)\b(?::.*)?)$")
_LEARNER_FRAME = re.compile(r'File "(?P<file>[^"]*?(?:tinytorch|katas)[/\\][^"]+)", line (?P<line>\d+)')
_PYTEST_LOCATION = re.compile(r"^(?P<file>\S*(?:tinytorch|katas)[/\\]\S+\.py):(?P<line>\d+):(?: |$)")


def _where(lines: list[str]) -> str:
    """The learner's file and line nearest the failure in pytest's output, if it names one."""
    if any("most recent call first" in line for line in lines):  # faulthandler: innermost frame first
        start = next(i for i, line in enumerate(lines) if "most recent call first" in line)
        for line in lines[start:]:
            found = _LEARNER_FRAME.search(line)
            if found:
                return f"{manifest_module.relative_path(found['file'])}:{found['line']}"
    for line in reversed(lines):
        found = _LEARNER_FRAME.search(line) or _PYTEST_LOCATION.search(line.strip())
        if found:
            return f"{manifest_module.relative_path(found['file'])}:{found['line']}"
    return ""


def _interrupted_at(text: str) -> str:
    """Where a run stood when SIGINT stopped it: pytest prints `<file>:<line>: KeyboardInterrupt`."""
    for line in reversed(text.splitlines()):
        found = _PYTEST_LOCATION.search(line.strip())
        if found and line.rstrip().endswith("KeyboardInterrupt"):
            return f"{manifest_module.relative_path(found['file'])}:{found['line']}"
    return ""


def _doing(lines: list[str]) -> str:
    """What pytest was doing when its process died: `-v` names each test before running it."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("collecting"):
            return " while importing the tests"
        if "::" in text.split()[0]:
            test = text.split()[0].split("::")[-1]
            finished = "%]" in text or text.endswith(("PASSED", "FAILED", "ERROR", "SKIPPED"))
            return f" after {test}" if finished else f" in {test}"
    return ""


def crash_reason(returncode: int, output: str) -> str:
    """Why a pytest process ended without a usable report, from its exit and last output."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    where = _where(lines)
    at = f" at {where}" if where else ""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the test process crashed ({name}){_doing(lines)}{at}"
    for line in reversed(lines):
        found = _EXCEPTION.match(line)
        if found and not found[1].startswith("KeyboardInterrupt"):
            return f"{found[1].strip()[:160]}{at}"
    return (f"the test process ended abruptly (exit code {returncode}){_doing(lines)} without reporting: "
            "an os._exit() call, or an interpreter crash")


# -- running ----------------------------------------------------------------------

_live: set = set()  # running processes, so an interrupted scoreboard can stop them
_live_lock = threading.Lock()


def _signal_group(process, signum) -> None:
    try:
        if os.name == "nt":
            process.kill()
        else:
            os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def stop_all() -> None:
    """Kill every test process still running (the scoreboard itself was interrupted)."""
    with _live_lock:
        for process in list(_live):
            _signal_group(process, signal.SIGKILL if os.name != "nt" else signal.SIGTERM)


def pytest_command(target: Target, mode: str, results_path: Path) -> list[str]:
    # A milestone needs the whole package: in scaffold mode it runs on the learner's own
    # modules, since scaffolding every module from the reference would prove nothing.
    impl = "student" if target.kind == MILESTONE and mode == "scaffold" else mode
    # Kata suites use none of the pytest plugins that other packages may have installed;
    # hypothesis's alone costs about half a second per process.
    return [sys.executable, "-m", "pytest", target.test_file.relative_to(manifest_module.ROOT).as_posix(),
            "-v", "--tb=line", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
            "--results-json", str(results_path), f"--impl={impl}", "--stop-after-timeout"]


def _child_environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TINYTORCH_IMPL" and not k.startswith("PYTEST_XDIST")}
    env["PYTHONUNBUFFERED"] = "1"  # keep whatever was printed before a hard crash
    return env


def run_target(target: Target, mode: str, timeout: float, workdir: Path) -> GroupRun:
    """Run one kata or milestone in a pytest process of its own; never raises for the learner's code."""
    if not target.test_file.exists():
        return not_run(target)
    results_path = workdir / f"{target.id}.json"
    output_path = workdir / f"{target.id}.out"
    started = time.monotonic()
    timed_out = False
    with open(output_path, "wb") as output:
        options = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" \
            else {"start_new_session": True}
        process = subprocess.Popen(pytest_command(target, mode, results_path), cwd=manifest_module.ROOT,
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   env=_child_environment(), **options)
        with _live_lock:
            _live.add(process)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _signal_group(process, signal.SIGINT)  # pytest stops and still saves its results
            try:
                process.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL if os.name != "nt" else signal.SIGTERM)
                process.wait()
        finally:
            with _live_lock:
                _live.discard(process)
    seconds = time.monotonic() - started
    text = output_path.read_text(encoding="utf-8", errors="replace")
    results = None
    if results_path.exists():
        try:
            results = RunResults.load(results_path)
        except (OSError, ValueError, KeyError, TypeError):
            results = None
    run = group_from_results(target, results, seconds=seconds)
    run.broken = _broken_reason(run, results, process.returncode, text, timed_out, timeout)
    return run


def _broken_reason(run: GroupRun, results, returncode: int, text: str, timed_out: bool, timeout: float) -> str:
    group = MILESTONES if run.target.kind == MILESTONE else run.target.id
    if timed_out:
        stuck = next((t for c in run.checkpoints for t in c.tests if t.outcome == NOT_RUN), None)
        where = _interrupted_at(text)
        detail = (f" in {stuck.nodeid.split('::')[-1]}" if stuck else "") + (f" at {where}" if where else "")
        return f"timed out after {timeout:g} s{detail}: an infinite loop, or far too slow"
    if results is not None and results.collection_errors.get(group):
        error = results.collection_errors[group].strip().splitlines()
        # the last lines say what went wrong; the line before may point at the learner's file
        summary = next((line.strip() for line in reversed(error) if _EXCEPTION.match(line.strip())), error[-1])
        where = _where(text.splitlines())
        return f"could not import the tests: {summary}" + (f" at {where}" if where and where not in summary else "")
    has_tests = any(c.tests for c in run.checkpoints)
    stopped = returncode == 2 and STOPPED_AFTER_TIMEOUT in text  # a test timed out and the run ended there
    if results is None or (returncode not in (0, 1) and not stopped) or not has_tests:
        if returncode == 5 and not has_tests:
            return "no tests were collected from " + run.target.test_file.name
        return crash_reason(returncode, text)
    return ""


def run_targets(chosen: list[Target], mode: str, timeout: float = 120, jobs: int = 2,
                progress=None) -> list[GroupRun]:
    """Run every target, `jobs` at a time; the results come back in the order given.

    `progress(done_count, total, target)` is called as each finishes.
    """
    finished = 0
    lock = threading.Lock()

    def one(target: Target, workdir: Path) -> GroupRun:
        nonlocal finished
        run = run_target(target, mode, timeout, workdir)
        with lock:
            finished += 1
            if progress:
                progress(finished, len(chosen), target)
        return run

    with tempfile.TemporaryDirectory(prefix="tinytorch-scoreboard-") as tmp:
        workdir = Path(tmp)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, target, workdir) for target in chosen]
            try:
                return [future.result() for future in futures]
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                stop_all()
                raise

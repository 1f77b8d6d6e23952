"""The pytest plugin behind every kata run (loaded by the repository's conftest.py).

It chooses the implementation (`--impl`, `--scaffold`), ties each kata test to
its checkpoint, runs checkpoints in order, seeds randomness, keeps tests off the
network, and replaces pytest's wall of tracebacks with the ladder report.
"""

from __future__ import annotations

import inspect
import os
import random
import re
import socket
from pathlib import Path

import numpy as np
import pytest

from harness import implementation, ladder, progress
from harness import manifest as manifest_module
from harness.results import (BROKEN, NOT_RUN, PASSED, SKIPPED, STOPPED_AFTER_TIMEOUT, RunResults, TestResult,
                             classify)

ROOT = manifest_module.ROOT
MILESTONES = "milestones"
BUDGET_TIMEOUT = 60  # seconds, for a performance-budget test (the others: pytest.ini's timeout)
_XDIST_GROUP_SUFFIX = re.compile(r"@[\w.-]+$")


def pytest_addoption(parser):
    group = parser.getgroup("tinytorch", "TinyTorch katas")
    group.addoption("--impl", choices=implementation.MODES, default=None,
                    help="whose tinytorch to test: student (yours, the default), reference, or scaffold. "
                         "The environment variable TINYTORCH_IMPL sets the default.")
    group.addoption("--scaffold", action="store_true",
                    help="your modules for the katas being run, the reference for every other module")
    group.addoption("--results-json", default=None, metavar="PATH",
                    help="also write every kata test's outcome to PATH as JSON (used by scoreboard.py)")
    group.addoption("--stop-after-timeout", action="store_true",
                    help="after the first test that times out, run no more (the scoreboard's runs: an infinite "
                         "loop then costs one time limit, not one per test that reaches it)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With pytest-xdist (`-n 2`), hand out tests by group: every budget test goes to one worker,
    which measures them one after another, and each suite-running fixture of tests/ runs once."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None and _whole_reference_run(config):
        config.option.numprocesses = 2  # the project's full run uses both cores, -n 2 given or not
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"
    if workerinput is not None and workerinput.get("tinytorch_loadgroup"):
        # A worker parses the command line again, which has no --dist: without this it would
        # not name each test's group, and the controller would scatter every group's tests.
        config.option.loadgroup = True


def _whole_reference_run(config) -> bool:
    """`python -m pytest --impl=reference` with no paths, no -n and nothing that needs one process."""
    return (config.getoption("impl", None) == "reference" and config.pluginmanager.hasplugin("xdist")
            and getattr(config.option, "numprocesses", 0) is None
            and config.args_source == pytest.Config.ArgsSource.TESTPATHS
            and not (config.option.usepdb or config.option.collectonly) and (os.cpu_count() or 1) >= 2)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell each pytest-xdist worker that the controller hands out tests by group."""
    node.workerinput["tinytorch_loadgroup"] = node.config.getvalue("dist") == "loadgroup"


class _XdistGroups:
    """Marks the tests that must share a pytest-xdist worker. It runs before pytest-xdist's
    worker appends each test's group to its id, which is what the controller hands out by."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items):
        for item in items:
            if item.get_closest_marker("xdist_group"):
                continue
            if item.get_closest_marker("budget"):
                item.add_marker(pytest.mark.xdist_group("budgets"))  # one worker measures budgets, serially
            elif _kata_of_path(item.path) == MILESTONES:
                item.add_marker(pytest.mark.xdist_group(item.path.stem))  # a milestone's models are made once


def _kata_of_path(path: Path):
    """The kata id, MILESTONES, or None for a path outside the katas."""
    try:
        parts = path.resolve().relative_to(manifest_module.KATAS_DIR).parts
    except ValueError:
        return None
    if not parts:
        return None
    if parts[0] == MILESTONES:
        return MILESTONES
    return parts[0] if parts[0] in manifest_module.load().by_id else None


def _requested_paths(config) -> list[Path]:
    paths = []
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        paths.append(path.resolve())
    return paths


def _requested_katas(config) -> list[str]:
    """The katas whose tests this run was asked for (every kata if none was named)."""
    katas = manifest_module.load()
    named = set()
    for path in _requested_paths(config):
        kata = _kata_of_path(path)
        if kata and kata != MILESTONES:
            named.add(kata)
        elif kata == MILESTONES:  # a milestone exercises the whole package: every module stays the learner's
            return [k.id for k in katas.katas]
        elif path == ROOT or manifest_module.KATAS_DIR.is_relative_to(path) or path == manifest_module.KATAS_DIR:
            return [k.id for k in katas.katas]
    return [k.id for k in katas.katas if k.id in named]


class KataSession:
    """State for one pytest run: where each test belongs, and what happened to it."""

    def __init__(self, config):
        self.config = config
        option = config.getoption("impl")
        self.mode = "scaffold" if config.getoption("scaffold") else (option or implementation.mode_from_environment())
        self.manifest = manifest_module.load()
        self.learner_katas = _requested_katas(config) if self.mode == "scaffold" else []
        self.results = RunResults(self.mode)
        self.tests: dict[str, TestResult] = {}
        self.ladder_mode = False
        self.collected_order: list[str] = []  # under pytest-xdist, the order the workers collected
        self.deselected: set[tuple[str, str]] = set()  # (group, checkpoint) with a test left out by -k/-m
        self.progress_error = ""

    # -- collection ------------------------------------------------------------------

    def place(self, item) -> tuple[str, str] | None:
        group = _kata_of_path(Path(item.path))
        if group is None:
            return None
        if group == MILESTONES:
            milestone_id = Path(item.path).stem.removeprefix("test_")
            known = {m.id for m in self.manifest.milestones}
            if milestone_id not in known:
                raise pytest.UsageError(f"{item.path}: no milestone {milestone_id!r} in katas/katas.toml")
            return MILESTONES, milestone_id
        kata = self.manifest.by_id[group]
        marker = item.get_closest_marker("checkpoint")
        if marker is None or len(marker.args) != 1:
            raise pytest.UsageError(f"{item.nodeid}: every kata test needs @pytest.mark.checkpoint(\"<name>\") "
                                    f"with one of {[c.name for c in kata.checkpoints]}")
        kata.checkpoint(marker.args[0])  # raises, naming the known checkpoints, if unknown
        return group, marker.args[0]

    def position(self, group: str, checkpoint: str) -> tuple:
        """Where a checkpoint sits in the run: katas in order, then milestones."""
        if group == MILESTONES:
            return (1, 0, [m.id for m in self.manifest.milestones].index(checkpoint))
        kata = self.manifest.by_id[group]
        return (0, kata.number, [c.name for c in kata.checkpoints].index(checkpoint))

    def order_key(self, item, index):
        place = item.stash.get(PLACE, None)
        return (*self.position(place["group"], place["checkpoint"]), index) if place else (2, 0, 0, index)

    def note(self, nodeid: str, place: dict) -> TestResult:
        if nodeid not in self.tests:
            shown = _XDIST_GROUP_SUFFIX.sub("", nodeid)  # pytest-xdist's "@group" is not part of the test's name
            self.tests[nodeid] = TestResult(shown, place["group"], place["checkpoint"], checks=place["checks"],
                                            hint=place.get("hint", ""))
        return self.tests[nodeid]

    def record(self, nodeid: str, verdict: dict, duration: float) -> None:
        result = self.note(nodeid, verdict)
        result.duration += duration
        if result.outcome in (NOT_RUN, PASSED):  # the first failure (setup, call or teardown) is the one to show
            for key in ("outcome", "message", "location", "blocked_by"):
                if key in verdict:
                    setattr(result, key, verdict[key])

    def ordered_tests(self) -> list:
        run_order = {nodeid: i for i, nodeid in enumerate(self.collected_order)}
        tests = sorted(self.tests.values(), key=lambda t: run_order.get(t.nodeid, len(run_order)))
        return sorted(tests, key=lambda t: self.position(t.group, t.checkpoint))  # stable: file order kept

    def partial_selection(self) -> bool:
        """Whether some of the requested files' tests were left out (`-k`, `-m`, `file::test`)."""
        option = self.config.option
        named_tests = any("::" in arg for arg in self.config.args)
        filtered = bool(getattr(option, "keyword", "") or getattr(option, "markexpr", ""))
        return named_tests or (filtered and bool(getattr(option, "numprocesses", None)))

    def green_checkpoints(self) -> list[tuple[str, str]]:
        """(kata, checkpoint) for each checkpoint whose every test ran and passed in this run.

        A milestone is recorded as (its id, its id). A checkpoint with a test left out by
        `-k`/`-m` is not counted: passing some of its tests is not passing it.
        """
        if self.partial_selection():
            return []
        by_checkpoint: dict[tuple[str, str], list] = {}
        for test in self.tests.values():
            by_checkpoint.setdefault((test.group, test.checkpoint), []).append(test)
        green = []
        for (group, checkpoint), tests in by_checkpoint.items():
            if (group, checkpoint) in self.deselected or group in self.results.collection_errors:
                continue
            if all(t.outcome == PASSED for t in tests):
                green.append((checkpoint, checkpoint) if group == MILESTONES else (group, checkpoint))
        return green

    def record_progress(self) -> None:
        """Stamp the first time each checkpoint went green (the learner's runs only)."""
        if self.mode not in progress.RECORDED_MODES:
            return
        try:
            progress.record_greens(self.green_checkpoints(), self.mode)
        except OSError as error:  # a read-only folder must not fail the learner's run
            self.progress_error = f"could not record progress in {progress.progress_dir()}: {error}"

    def groups(self) -> list:
        found = {t.group for t in self.tests.values()} | set(self.results.collection_errors)
        order = [k.id for k in self.manifest.katas] + [MILESTONES]
        return [g for g in order if g in found]


_current: KataSession | None = None  # pytest_collectreport is not handed the config


def pytest_configure(config):
    global _current
    if getattr(config.option, "loadgroup", False) or hasattr(config, "workerinput"):
        config.pluginmanager.register(_XdistGroups(), "tinytorch-xdist-groups")
    session = _current = KataSession(config)
    config.stash[SESSION] = session
    try:
        implementation.install(session.mode, session.learner_katas)
    except implementation.ImplementationError as error:
        raise pytest.UsageError(str(error)) from None
    if config.getoption("verbose") <= 0 and _only_katas_requested(config) and session.mode != "reference":
        session.ladder_mode = True
        config.option.tbstyle = "no"


SESSION = pytest.StashKey[KataSession]()
PLACE = pytest.StashKey[dict]()  # an item's kata, checkpoint and what it checks
VERDICT = "tinytorch"  # the user_properties key that carries a kata test's classified outcome


def _only_katas_requested(config) -> bool:
    paths = _requested_paths(config)
    if not paths:  # the configured testpaths: katas, plus tests/ only for the reference
        return True
    return all(_kata_of_path(p) is not None or p == manifest_module.KATAS_DIR for p in paths)


def pytest_report_header(config):
    session = config.stash[SESSION]
    if session.mode == "student":
        return "tinytorch: student mode, every module is yours (tinytorch/)"
    if session.mode == "reference":
        return "tinytorch: reference mode, every module is the reference's (reference/tinytorch/)"
    mine = ", ".join(f"tinytorch/{session.manifest.by_id[k].module}.py" for k in session.learner_katas) or "none"
    return f"tinytorch: scaffold mode, yours: {mine}; every other module is the reference's"


def pytest_ignore_collect(collection_path, config):
    """The repository's own tests (tests/) check the reference; learners' runs leave them out."""
    session = config.stash[SESSION]
    tests_dir = ROOT / "tests"
    if Path(collection_path) != tests_dir or session.mode == "reference":
        return None
    explicitly = any(p.is_relative_to(tests_dir) for p in _requested_paths(config))
    return None if explicitly else True


def describe(docstring: str | None, fallback: str) -> tuple[str, str]:
    """(what a test checks, its own hint) from its docstring.

    The first line says what the test checks. A paragraph that starts with "Hint:" is the
    test's own hint, shown with the checkpoint's when this test is the first red one: for a
    mistake the checkpoint's hints do not cover.
    """
    text = inspect.cleandoc(docstring or "")
    if not text:
        return fallback, ""
    checks = text.splitlines()[0].strip()
    hint = ""
    for paragraph in text.split("\n\n")[1:]:
        if paragraph.lstrip().startswith("Hint:"):
            hint = " ".join(paragraph.split()).removeprefix("Hint:").strip()
    return checks, hint


def pytest_collection_modifyitems(session, config, items):
    state = config.stash[SESSION]
    for item in items:
        placed = state.place(item)
        if placed is None:
            continue
        group, checkpoint = placed
        checks, hint = describe(getattr(getattr(item, "obj", None), "__doc__", None), item.name)
        item.stash[PLACE] = {"group": group, "checkpoint": checkpoint, "checks": checks, "hint": hint}
        if item.get_closest_marker("budget") and not item.get_closest_marker("timeout"):
            # A time budget measures rounds, then keeps measuring up to 3 s while over budget: on a
            # busy machine that alone can pass the usual 10 s. A loop that never ends still fails it.
            item.add_marker(pytest.mark.timeout(BUDGET_TIMEOUT))
    positions = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: state.order_key(item, positions[id(item)]))


def pytest_deselected(items):
    if _current is None:
        return
    for item in items:
        try:
            placed = _current.place(item)
        except pytest.UsageError:
            placed = None
        if placed:
            _current.deselected.add(placed)


def pytest_collection_finish(session):
    """Announce every kata test that will run (after -k/-m deselection), so one that never reports is "not run"."""
    state = session.config.stash[SESSION]
    for item in session.items:
        if PLACE in item.stash:
            state.note(item.nodeid, item.stash[PLACE])


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Keep the frames of an import error in a kata test file, even when the ladder hides tracebacks,
    so the ladder can name the learner's file and line."""
    option = collector.config.option
    saved = option.tbstyle
    if saved == "no" and isinstance(collector, pytest.Module):
        option.tbstyle = "short"
    try:
        return (yield)
    finally:
        option.tbstyle = saved


def pytest_collectreport(report):
    if not report.failed or not report.fspath or _current is None:
        return
    group = _kata_of_path(Path(str(report.fspath)))
    if group is not None:
        _current.results.collection_errors.setdefault(group, _collection_error_text(report))


def _learner_dirs() -> list[str]:
    dirs = [manifest_module.STUDENT_DIR, manifest_module.REFERENCE_DIR]
    if os.environ.get("TINYTORCH_STUDENT_DIR"):
        dirs.append(Path(os.environ["TINYTORCH_STUDENT_DIR"]).resolve())
    return [str(d) for d in dirs]


def _collection_error_text(report) -> str:
    """Why a test file could not be imported: the learner's file and line first, the error last.

        tinytorch/tensor.py, line 215
            def broken(:
        SyntaxError: invalid syntax
    """
    text = report.longreprtext or ""
    lines = text.splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    summary = next((e for e in reversed(errors) if re.match(r"^[\w.]+(Error|Exception|Timeout|Exit)\b", e)), "")
    if not summary:
        summary = errors[-1] if errors else (text.strip().splitlines() or ["the import failed"])[-1]
    summary = summary.replace("harness.implementation.", "")
    where, code = "", ""
    frame = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)|^(?P<file2>\S+\.py):(?P<line2>\d+)')
    for index, line in enumerate(lines):
        found = frame.search(line.lstrip("E").strip())
        if not found:
            continue
        file, number = found["file"] or found["file2"], found["line"] or found["line2"]
        if any(str(Path(file).resolve()).startswith(d) for d in _learner_dirs()):
            where = f"{manifest_module.relative_path(file)}, line {number}"
            follow = lines[index + 1] if index + 1 < len(lines) else ""
            code = follow.removeprefix("E").strip() if follow.startswith((" ", "E ")) else ""
    parts = [where] if where else []
    if code and code.strip("^~ "):
        parts.append(f"    {code}")
    parts.append(summary)
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Classify a kata test's failure where the exception lives, and carry it on the report.

    (Reports travel from pytest-xdist workers to the main process; exceptions do not.)
    """
    report = yield
    if (report.failed and call.excinfo is not None and call.excinfo.typename == "Failed"
            and str(call.excinfo.value).startswith("Timeout") and item.config.getoption("stop_after_timeout")):
        item.session.shouldstop = f"{item.name} timed out; {STOPPED_AFTER_TIMEOUT}"
    place = item.stash.get(PLACE, None)
    if place is None:
        return report
    verdict = dict(place)
    if report.skipped:
        verdict["outcome"] = SKIPPED
    elif report.failed:
        if call.excinfo is not None:
            outcome, message, location, blocked_by = classify(call.excinfo.value, place["group"], place["checkpoint"])
        else:
            outcome, message, location, blocked_by = BROKEN, report.longreprtext[-500:], "", ""
        verdict.update(outcome=outcome, message=message, location=location, blocked_by=blocked_by)
    elif report.when == "call":
        verdict["outcome"] = PASSED
    else:
        return report
    report.user_properties.append((VERDICT, verdict))
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    if _current is not None and not _current.collected_order:
        _current.collected_order = [_XDIST_GROUP_SUFFIX.sub("", nodeid) for nodeid in ids]


def pytest_runtest_logreport(report):
    if _current is None:
        return
    for key, verdict in report.user_properties:
        if key == VERDICT:
            _current.record(report.nodeid, verdict, report.duration)


@pytest.fixture(autouse=True)
def _kata_isolation(request, monkeypatch):
    """Seed every random generator and keep kata tests off the network."""
    np.random.seed(0)
    random.seed(0)
    if _kata_of_path(Path(request.node.path)) is not None:
        def refuse(*args, **kwargs):
            raise RuntimeError("kata tests must not use the network")
        monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the main process reports
    state = session.config.stash[SESSION]
    state.results.tests = state.ordered_tests()
    state.results.groups = state.groups()
    path = session.config.getoption("results_json")
    if path:
        state.results.save(Path(path))
    state.record_progress()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash[SESSION]
    if state.results.groups and not hasattr(config, "workerinput"):
        notes = [f"warning: {state.progress_error}"] if state.progress_error else []
        ladder.print_report(terminalreporter, state.results, state.manifest, state.mode,
                            verbose=not state.ladder_mode, notes=notes)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    state = session.config.stash[SESSION]
    if state.ladder_mode:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.reportchars = ""  # the ladder replaces the short summary

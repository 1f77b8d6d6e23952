"""What happened to each kata test, in the learner's terms, and how to save it as JSON.

A test is one of four things:

- ``passed``
- ``not started``: the code it runs raised NotImplementedError (a stub)
- ``wrong``: the code ran and an assertion about its result failed
- ``broken``: an unexpected exception, an import or syntax error, or a timeout
"""

from __future__ import annotations

import json
import os
import re
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import manifest as manifest_module
from harness import progress
from harness.text import plain_numbers

PASSED, NOT_STARTED, WRONG, BROKEN = "passed", "not started", "wrong", "broken"
SKIPPED = "skipped"  # never legitimate in a kata suite; recorded so the contract tests can see it
NOT_RUN = "not run"  # collected, but no result arrived (the run was interrupted)
STUB_MESSAGE = re.compile(r"^(?P<kata>\d\d_\w+) · (?P<checkpoint>\w+): ")
RESULTS_FORMAT = 1
STOPPED_AFTER_TIMEOUT = "--stop-after-timeout runs no more tests"  # said by the plugin; runs.py looks for it


class CheckpointTally:
    """`passed` and `done` for a checkpoint's `tests`: the one rule for when a checkpoint is green."""

    tests: list  # TestResult

    @property
    def passed(self) -> int:
        return sum(t.outcome == PASSED for t in self.tests)

    @property
    def done(self) -> bool:
        """Done means every test tied to the checkpoint passed (and there was one)."""
        return bool(self.tests) and self.passed == len(self.tests)


@dataclass
class TestResult:
    nodeid: str
    group: str  # a kata id, or "milestones"
    checkpoint: str
    outcome: str = NOT_RUN
    checks: str = ""  # what the test checks: the first line of its docstring
    hint: str = ""  # the test's own hint (a "Hint:" paragraph of its docstring), if it has one
    message: str = ""  # the failure, trimmed: expected vs got, or the exception
    location: str = ""  # where it failed: the learner's file and line, or the test's
    blocked_by: str = ""  # a kata whose unfinished stub raised NotImplementedError
    duration: float = 0.0


@dataclass
class RunResults:
    impl: str
    groups: list = field(default_factory=list)  # kata ids (and "milestones") in order
    tests: list = field(default_factory=list)  # TestResult, in run order
    collection_errors: dict = field(default_factory=dict)  # group -> message

    def for_group(self, group: str) -> list:
        return [t for t in self.tests if t.group == group]

    def save(self, path: Path) -> None:
        data = {"format": RESULTS_FORMAT, "impl": self.impl, "groups": self.groups,
                "tests": [asdict(t) for t in self.tests], "collection_errors": self.collection_errors}
        progress.write_atomically(Path(path), json.dumps(data, indent=1))  # never half a file

    @classmethod
    def load(cls, path: Path) -> "RunResults":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        tests = [TestResult(**t) for t in data["tests"]]
        return cls(data["impl"], data["groups"], tests, data["collection_errors"])


def _is_learner_file(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path.is_relative_to(d) for d in (manifest_module.STUDENT_DIR, manifest_module.REFERENCE_DIR)) \
        or os.environ.get("TINYTORCH_STUDENT_DIR", "\0") in filename


def _innermost_location(exc: BaseException, prefer_learner: bool) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if prefer_learner:
        for frame in reversed(frames):
            if _is_learner_file(frame.filename):
                return f"{manifest_module.relative_path(frame.filename)}:{frame.lineno} in {frame.name}"
    in_katas = [f for f in frames if "/katas/" in f.filename.replace(os.sep, "/")]
    # A failure inside a helper of the test file is reported where the test called the helper.
    for frame in reversed([f for f in in_katas if f.name.startswith("test")] or in_katas):
        return f"{manifest_module.relative_path(frame.filename)}:{frame.lineno} in {frame.name}"
    if frames:
        return f"{manifest_module.relative_path(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}"
    return ""


def _trim(text: str, lines: int = 8, width: int = 2000) -> str:
    """At most `lines` lines; lines are wrapped, not cut, when shown (a guard against huge reprs only)."""
    kept = [line if len(line) <= width else line[:width] + " …" for line in text.strip().splitlines()[:lines]]
    return plain_numbers("\n".join(kept))


def _later_checkpoint(group: str, checkpoint: str, stub: re.Match | None) -> str:
    """The stub's checkpoint, when it comes after the test's own one in the same kata ("" otherwise)."""
    if not stub or stub["kata"] != group or not checkpoint or stub["checkpoint"] == checkpoint:
        return ""
    kata = manifest_module.load().by_id.get(group)
    names = [c.name for c in kata.checkpoints] if kata else []
    if checkpoint in names and stub["checkpoint"] in names and names.index(stub["checkpoint"]) > names.index(checkpoint):
        return stub["checkpoint"]
    return ""


def classify(exc: BaseException, group: str, checkpoint: str = "") -> tuple[str, str, str, str]:
    """(outcome, message, location, blocked_by) for an exception raised by a kata test of `checkpoint`."""
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, NotImplementedError):
        stub = STUB_MESSAGE.match(text)
        later = _later_checkpoint(group, checkpoint, stub)
        if later:  # e.g. numpy walked a Tensor with len() and [] because __init__ did not unwrap it
            reached = _innermost_location(exc, True)
            return WRONG, (f"This test of {checkpoint} reached code of the later checkpoint {later} "
                           f"({reached}), which is not written yet; code for {checkpoint} should not need it. "
                           f"Look at what your {checkpoint} code calls (numpy calls len() and [] on an object "
                           "it does not recognise as an array, for example)."), \
                _innermost_location(exc, False), ""
        blocked_by = stub["kata"] if stub and stub["kata"] != group else ""
        return NOT_STARTED, _trim(text, 3), _innermost_location(exc, True), blocked_by
    if isinstance(exc, AssertionError):
        lines = text.splitlines()
        if lines and not lines[0].startswith("assert "):  # the test's own message: drop pytest's re-explanation
            lines = [line for line in lines if not line.startswith(("assert ", " +", "  +"))] or lines
        return WRONG, _trim("\n".join(lines) or "assertion failed"), _innermost_location(exc, False), ""
    if name == "Failed":  # pytest.fail / pytest.raises(...) that saw no exception / a timeout
        if text.startswith("Timeout"):
            return BROKEN, f"timed out ({text}): an infinite loop, or far too slow", _innermost_location(exc, True), ""
        return WRONG, _trim(text), _innermost_location(exc, False), ""
    return BROKEN, _trim(f"{name}: {text}"), _innermost_location(exc, True), ""

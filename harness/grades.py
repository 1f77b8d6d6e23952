"""Result files and grade exports: what a run of the scoreboard leaves for other tools.

The result file ("tinytorch-result", version 1) is what `python scoreboard.py --json`
prints. Workshop tools (a live watch, a leaderboard) read these files; instructors
collect them. docs/result-format.md describes it for people; here it is for code:

    {
      "format": "tinytorch-result",
      "version": 1,
      "participant": "Ada Lovelace",        --name, TINYTORCH_NAME, git user.name, or the OS user
      "created_at": "2025-01-31T10:02:11Z",  ISO-8601 UTC, to the second
      "commit": "3f2c...e1" | null,          git rev-parse HEAD of the repository, when known
      "impl": "student",                     student | scaffold | reference
      "katas": [                             katas, then milestones, in manifest order (those run)
        {
          "id": "01_tensor",
          "kind": "kata",                    kata | milestone (a milestone has one checkpoint)
          "title": "Tensor",
          "state": "in progress",            done | not started | in progress | wrong | broken |
                                             blocked | no tests yet
          "reason": null,                    why it is broken or blocked, else null
          "checkpoints_done": 2,
          "checkpoints_total": 6,
          "started_at": "..." | null,        when `scoreboard.py start <kata>` started its clock
          "elapsed_seconds": 1804.0 | null,  started_at to the latest first-green, when both are known
          "checkpoints": [
            {"name": "creation", "done": true, "tests_passed": 9, "tests_total": 9,
             "weight": 1.0, "first_green_at": "..." | null, "hints_used": 1}
          ]
        }
      ],
      "capabilities": [{"name": "Tensors", "state": "in progress"}],
                                             earned | in progress | not started | not yet available
      "total": {"checkpoints_done": 2, "checkpoints_total": 21, "score": 2.0, "max_score": 21.0}
    }

`first_green_at` comes from the progress history: the first time the checkpoint
passed in a student or scaffold run, which may be earlier than this run (and it
stays even if the checkpoint is red again now). `hints_used` counts the hint
tiers asked for with `scoreboard.py hint` beyond the first, which the ladder shows
free (0 to 2; files from before the free tier may hold 3). Score is the sum of the weights of
the checkpoints done now. Readers must ignore fields they do not know; a change
that removes or redefines a field raises the version.
"""

from __future__ import annotations

import getpass
import os
import subprocess

from harness import manifest as manifest_module
from harness import progress
from harness.runs import DONE, KATA, MILESTONE, NO_TESTS, STATES, targets

FORMAT, VERSION = "tinytorch-result", 1
EARNED, CAP_IN_PROGRESS, CAP_NOT_STARTED, NOT_AVAILABLE = "earned", "in progress", "not started", "not yet available"
CAPABILITY_STATES = (EARNED, CAP_IN_PROGRESS, CAP_NOT_STARTED, NOT_AVAILABLE)


# -- capabilities -----------------------------------------------------------------

def capabilities(runs, manifest) -> list[tuple[str, str, str]]:
    """(name, summary, state) for the capabilities this run can speak about.

    A capability is earned when every kata and milestone feeding it has all its
    checkpoints done, and not yet available while none of them has tests. When only
    some katas were run (--kata), capabilities none of them feeds are left out.
    """
    found = []
    for name, summary in manifest.capabilities:
        feeders = [t.id for t in targets(manifest) if t.capability == name]
        feeding = [run for run in runs if run.target.capability == name]
        if feeders and not feeding:
            continue
        if not any(run.ran for run in feeding):
            state = NOT_AVAILABLE
        elif all(run.finished for run in feeding) and len(feeding) == len(feeders):
            state = EARNED
        elif any(run.done for run in feeding):
            state = CAP_IN_PROGRESS
        else:
            state = CAP_NOT_STARTED
        found.append((name, summary, state))
    return found


# -- who and which code ---------------------------------------------------------------

def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=manifest_module.ROOT, capture_output=True, text=True,
                              timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def participant_name(given: str | None = None) -> str:
    """--name, else TINYTORCH_NAME, else git's user.name, else the OS user."""
    for name in (given, os.environ.get("TINYTORCH_NAME")):
        if name and name.strip():
            return name.strip()
    name = _git("config", "user.name")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "anonymous"


def repository_commit() -> str | None:
    """The commit the repository is at, or None outside git (a copy without history)."""
    if not (manifest_module.ROOT / ".git").exists():
        return None
    return _git("rev-parse", "HEAD")


# -- the result file ----------------------------------------------------------------

def build_result(runs, manifest, impl: str, participant: str, history=None, hints=None,
                 commit: str | None = None, created_at: str | None = None) -> dict:
    """The tinytorch-result dict for a list of GroupRun (see the module docstring).

    `history` is the progress history (a list of events) and `hints` the hint tiers
    shown ({kata: {checkpoint: n}}); both default to none.
    """
    firsts = progress.first_greens(history or [])
    clocks = progress.starts(history or [])
    hints = hints or {}
    katas = []
    for run in runs:
        checkpoints = []
        for checkpoint in run.checkpoints:
            green = firsts.get((run.target.id, checkpoint.name))
            checkpoints.append({
                "name": checkpoint.name,
                "done": checkpoint.done,
                "tests_passed": checkpoint.passed,
                "tests_total": len(checkpoint.tests),
                "weight": checkpoint.weight,
                "first_green_at": green["time"] if green else None,
                "hints_used": min(2, max(0, hints.get(run.target.id, {}).get(checkpoint.name, 0))),
            })
        started_at = clocks[run.target.id]["time"] if run.target.id in clocks else None
        greens = [c["first_green_at"] for c in checkpoints if c["first_green_at"]]
        elapsed = None
        if started_at and greens:
            latest = max(progress.parse_time(t) for t in greens)
            elapsed = max(0.0, (latest - progress.parse_time(started_at)).total_seconds())
        state = run.state
        reason = None
        if run.broken:
            reason = run.broken
        elif state == "blocked":
            reason = run.summary
        katas.append({
            "id": run.target.id,
            "kind": run.target.kind,
            "title": run.target.title,
            "state": state,
            "reason": reason,
            "checkpoints_done": run.done,
            "checkpoints_total": run.total,
            "started_at": started_at,
            "elapsed_seconds": elapsed,
            "checkpoints": checkpoints,
        })
    done = sum(k["checkpoints_done"] for k in katas)
    total = sum(k["checkpoints_total"] for k in katas)
    score = float(sum(c["weight"] for k in katas for c in k["checkpoints"] if c["done"]))
    max_score = float(sum(c["weight"] for k in katas for c in k["checkpoints"]))
    return {
        "format": FORMAT,
        "version": VERSION,
        "participant": participant,
        "created_at": created_at or progress.now(),
        "commit": commit,
        "impl": impl,
        "katas": katas,
        "capabilities": [{"name": name, "state": state} for name, _, state in capabilities(runs, manifest)],
        "total": {"checkpoints_done": done, "checkpoints_total": total, "score": score, "max_score": max_score},
    }


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_result(data) -> list[str]:
    """Everything wrong with a tinytorch-result dict, as sentences; [] when it is valid."""
    problems: list[str] = []

    def need(where: str, container: dict, key: str, check, what: str) -> None:
        if key not in container:
            problems.append(f"{where}: missing {key!r}")
        elif not check(container[key]):
            problems.append(f"{where}: {key!r} should be {what}, got {container[key]!r}")

    if not isinstance(data, dict):
        return [f"a result is a JSON object, got {type(data).__name__}"]
    if data.get("format") != FORMAT:
        return [f"'format' should be {FORMAT!r}, got {data.get('format')!r}"]
    if data.get("version") != VERSION:
        return [f"this reader knows version {VERSION}, the file says {data.get('version')!r}"]
    text = lambda v: isinstance(v, str) and bool(v.strip())  # noqa: E731
    need("result", data, "participant", text, "a non-empty string")
    need("result", data, "created_at", progress.is_time, "an ISO-8601 UTC time ending in Z")
    need("result", data, "commit", lambda v: v is None or text(v), "a string or null")
    need("result", data, "impl", lambda v: v in ("student", "scaffold", "reference"), "student, scaffold or reference")
    need("result", data, "katas", lambda v: isinstance(v, list), "a list")
    need("result", data, "capabilities", lambda v: isinstance(v, list), "a list")
    need("result", data, "total", lambda v: isinstance(v, dict), "an object")
    if problems:
        return problems
    done_sum = total_sum = 0
    score = max_score = 0.0
    for index, kata in enumerate(data["katas"]):
        where = f"katas[{index}]"
        if not isinstance(kata, dict):
            problems.append(f"{where}: should be an object")
            continue
        where = f"katas[{index}] ({kata.get('id', '?')})"
        need(where, kata, "id", text, "a non-empty string")
        need(where, kata, "kind", lambda v: v in (KATA, MILESTONE), "kata or milestone")
        need(where, kata, "title", lambda v: isinstance(v, str), "a string")
        need(where, kata, "state", lambda v: v in STATES, f"one of {', '.join(STATES)}")
        need(where, kata, "reason", lambda v: v is None or isinstance(v, str), "a string or null")
        need(where, kata, "checkpoints_done", lambda v: isinstance(v, int) and v >= 0, "a count")
        need(where, kata, "checkpoints_total", lambda v: isinstance(v, int) and v >= 0, "a count")
        need(where, kata, "started_at", lambda v: v is None or progress.is_time(v), "a time or null")
        need(where, kata, "elapsed_seconds", lambda v: v is None or (_is_number(v) and v >= 0), "seconds or null")
        need(where, kata, "checkpoints", lambda v: isinstance(v, list), "a list")
        checkpoints = kata.get("checkpoints") if isinstance(kata.get("checkpoints"), list) else []
        done_here = 0
        for position, checkpoint in enumerate(checkpoints):
            cp_where = f"{where}.checkpoints[{position}]"
            if not isinstance(checkpoint, dict):
                problems.append(f"{cp_where}: should be an object")
                continue
            need(cp_where, checkpoint, "name", text, "a non-empty string")
            need(cp_where, checkpoint, "done", lambda v: isinstance(v, bool), "true or false")
            need(cp_where, checkpoint, "tests_passed", lambda v: isinstance(v, int) and v >= 0, "a count")
            need(cp_where, checkpoint, "tests_total", lambda v: isinstance(v, int) and v >= 0, "a count")
            need(cp_where, checkpoint, "weight", lambda v: _is_number(v) and v >= 0, "a non-negative number")
            need(cp_where, checkpoint, "first_green_at", lambda v: v is None or progress.is_time(v), "a time or null")
            need(cp_where, checkpoint, "hints_used", lambda v: isinstance(v, int) and 0 <= v <= 3, "0, 1, 2 or 3")
            passed, tests = checkpoint.get("tests_passed"), checkpoint.get("tests_total")
            if isinstance(passed, int) and isinstance(tests, int) and passed > tests:
                problems.append(f"{cp_where}: more tests passed ({passed}) than there are ({tests})")
            if checkpoint.get("done") is True:
                done_here += 1
                if checkpoint.get("tests_passed") != checkpoint.get("tests_total") or not checkpoint.get("tests_total"):
                    problems.append(f"{cp_where}: done, but not every test passed")
                score += checkpoint.get("weight", 0) if _is_number(checkpoint.get("weight")) else 0
            max_score += checkpoint.get("weight", 0) if _is_number(checkpoint.get("weight")) else 0
        if kata.get("checkpoints_done") != done_here:
            problems.append(f"{where}: checkpoints_done is {kata.get('checkpoints_done')!r} "
                            f"but {done_here} checkpoints are done")
        if kata.get("checkpoints_total") != len(checkpoints):
            problems.append(f"{where}: checkpoints_total is {kata.get('checkpoints_total')!r} "
                            f"but {len(checkpoints)} checkpoints are listed")
        if kata.get("state") == DONE and done_here != len(checkpoints):
            problems.append(f"{where}: state is done but not every checkpoint is")
        if kata.get("state") == NO_TESTS and done_here:
            problems.append(f"{where}: has no tests yet, yet checkpoints are done")
        done_sum += done_here
        total_sum += len(checkpoints)
    for index, capability in enumerate(data["capabilities"]):
        if not isinstance(capability, dict):
            problems.append(f"capabilities[{index}]: should be an object")
            continue
        need(f"capabilities[{index}]", capability, "name", text, "a non-empty string")
        need(f"capabilities[{index}]", capability, "state", lambda v: v in CAPABILITY_STATES,
             f"one of {', '.join(CAPABILITY_STATES)}")
    total = data["total"]
    expected = {"checkpoints_done": done_sum, "checkpoints_total": total_sum, "score": score, "max_score": max_score}
    for key, value in expected.items():
        if key not in total:
            problems.append(f"total: missing {key!r}")
        elif not _is_number(total[key]) or abs(total[key] - value) > 1e-9:
            problems.append(f"total: {key!r} is {total[key]!r}, but the katas add up to {value!r}")
    return problems


# -- Gradescope ---------------------------------------------------------------------

def _failure_text(run, checkpoint) -> str:
    if not run.ran:
        return f"{run.target.id} has no tests yet."
    if run.broken:
        return f"{run.target.id} is broken: {run.broken}\nRun it alone to see why: {run.target.command}"
    test = next((t for t in checkpoint.tests if t.outcome != "passed"), None)
    if test is None:
        return "No test of this checkpoint ran."
    lines = [f"{test.nodeid.split('::')[-1]}: {test.outcome}", f"checks: {test.checks}"]
    lines += [f"  {line}" for line in test.message.splitlines()[:8]]
    if test.blocked_by:
        lines.append(f"blocked by kata {test.blocked_by}, which is not finished")
    if test.hint:
        lines.append(f"hint: {test.hint}")
    lines.append(f"hint: {checkpoint.hints[0]}")
    lines.append(f"lesson: {checkpoint.lesson}")
    red = sum(t.outcome != "passed" for t in checkpoint.tests)
    if red > 1:
        lines.append(f"({red} of {len(checkpoint.tests)} tests of this checkpoint are red)")
    return "\n".join(lines)


def gradescope_results(runs, summary: str, seconds: float) -> dict:
    """A Gradescope autograder results.json: one test per checkpoint, scored by its weight."""
    tests = []
    for run in runs:
        for checkpoint in run.checkpoints:
            done = checkpoint.done
            test = {
                "name": f"{run.target.id} · {checkpoint.name}",
                "score": checkpoint.weight if done else 0.0,
                "max_score": checkpoint.weight,
                "status": "passed" if done else "failed",
                "output": checkpoint.goal if done else f"{checkpoint.goal}\n\n{_failure_text(run, checkpoint)}",
            }
            tests.append(test)
    return {
        "score": float(sum(t["score"] for t in tests)),
        "execution_time": int(round(seconds)),
        "output": summary,
        "visibility": "visible",
        "tests": tests,
    }

"""The ladder: each checkpoint's state, then the first red test in full, and little else.

    01_tensor · Tensor                                  1/6 checkpoints
      [x] creation       9/9
      [>] arithmetic     3/10  next
      [ ] shapes         0/8
    ...
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import manifest as manifest_module
from harness import nextstep, progress
from harness.results import BROKEN, NOT_STARTED, PASSED, WRONG, CheckpointTally
from harness.text import plain_numbers, shorten, wrap

MILESTONES = "milestones"


@dataclass
class CheckpointState(CheckpointTally):
    name: str
    goal: str
    hint: str
    lesson: str
    tests: list


def checkpoint_states(results, manifest, group: str) -> list[CheckpointState]:
    """Every checkpoint of `group` (a kata id or "milestones"), in order, with its tests."""
    tests = results.for_group(group)
    if group == MILESTONES:
        entries = [(m.id, m.goal, m.hints[0], m.lesson) for m in manifest.milestones]
    else:
        entries = [(c.name, c.goal, c.hints[0], c.lesson) for c in manifest.by_id[group].checkpoints]
    states = [CheckpointState(name, goal, hint, lesson, [t for t in tests if t.checkpoint == name])
              for name, goal, hint, lesson in entries]
    return [s for s in states if s.tests] if group == MILESTONES else states


def first_red(states):
    for state in states:
        for test in state.tests:
            if test.outcome != PASSED:
                return state, test
    return None, None


def _title(manifest, group: str) -> str:
    return "Milestones" if group == MILESTONES else f"{group} · {manifest.by_id[group].title}"


def _short_name(nodeid: str) -> str:
    return nodeid.split("::")[-1]


def _state_word(test) -> str:
    if test.outcome == NOT_STARTED and test.blocked_by:
        return f"needs {test.blocked_by}"
    return test.outcome


def kata_lines(results, manifest, group: str, width: int = 72) -> list[str]:
    states = checkpoint_states(results, manifest, group)
    done = sum(s.done for s in states)
    title = _title(manifest, group)
    lines = [f"{title}{' ' * max(1, width - len(title) - 20)}{done}/{len(states)} checkpoints"]
    if group in results.collection_errors:
        error = results.collection_errors[group].splitlines()
        if error and ", line " in error[0]:
            lines.append(f"  BROKEN: importing the tests stopped in {error[0]}{_owner(manifest, group, error[0])}:")
            error = error[1:]
        else:
            lines.append("  BROKEN: the test file could not be imported:")
        lines.extend(f"    {line}" for line in error[:4])
        lines.append("  Nothing in this kata can run until that import works; fix it first.")
        return lines
    next_marked = False
    name_width = max((len(s.name) for s in states), default=8) + 2
    for state in states:
        count = f"{state.passed}/{len(state.tests)}"
        if not state.tests:
            mark, count, note = "[-]", "-", "  (no test selected in this run)"
        elif state.done:
            mark, note = "[x]", ""
        elif not next_marked:
            mark, note, next_marked = "[>]", "  next", True
        else:
            mark, note = "[ ]", "" if state.passed == 0 else "  (some pass already)"
        lines.append(f"  {mark} {state.name:<{name_width}}{count:>6}{note}")
    return lines


def _owner(manifest, group: str, where: str) -> str:
    """ " (kata 01_tensor's module)" when the file that failed to import belongs to another kata."""
    module = where.split(",")[0].rsplit("/", 1)[-1].removesuffix(".py")
    kata = manifest.kata_for_module(module)
    return f" (kata {kata.id}'s module)" if kata is not None and kata.id != group else ""


def first_failure_lines(results, manifest, group: str, mode: str, width: int = 80) -> list[str]:
    states = checkpoint_states(results, manifest, group)
    state, test = first_red(states)
    if test is None:
        return []
    where = f"{test.outcome}" + (f" at {test.location}" if test.location else "")
    lines = [""]
    lines += wrap(f"Next: {state.name} -- {state.goal}", width, "", "  ")
    lines.append(f"  {_short_name(test.nodeid)}")
    lines += wrap(f"checks: {test.checks}", width, "  ", "    ")
    lines += wrap(where, width, "  ", "    ")
    for line in plain_numbers(test.message).splitlines():
        lines += wrap(line, width, "    ", "      ")
    if test.blocked_by and mode != "reference":
        module = manifest.by_id[test.blocked_by].module
        notes = [f"This test stops in tinytorch/{module}.py, which belongs to kata {test.blocked_by} "
                 "and is not finished."]
        if group == MILESTONES:
            notes.append("Finish that kata first: a milestone runs on your whole tinytorch.")
        elif not manifest_module.REFERENCE_DIR.is_dir():  # a learner's copy: no reference to lean on
            notes.append("Finish that kata first.")
        else:
            notes.append(f"Finish that kata first, or run this one on the reference's {module}: "
                         f"python -m pytest katas/{group} --scaffold")
        for note in notes:
            lines += wrap(note, width, "  ", "    ")
    if test.hint:
        lines += wrap(f"hint: {test.hint}", width, "  ", "        ")
    lines += wrap(f"hint: {state.hint}", width, "  ", "        ")
    lines += wrap(f"lesson: {state.lesson}", width, "  ", "          ")
    if group != MILESTONES:
        lines.append(f"  stronger hints: python scoreboard.py hint {group}{' --scaffold' if mode == 'scaffold' else ''}")
    rest = [t for t in state.tests if t.outcome != PASSED and t is not test]
    if rest:
        lines.append(f"Also red in {state.name}:")
        shown = rest[:12]
        lines.extend(shorten(f"  [{_state_word(t)}] {_short_name(t.nodeid)}: {t.checks}", width)
                     for t in shown)
        if len(rest) > len(shown):
            lines.append(f"  ... and {len(rest) - len(shown)} more")
    return lines


def print_report(terminalreporter, results, manifest, mode: str, verbose: bool, notes=()) -> None:
    """Write the ladder at the end of a pytest run."""
    write = terminalreporter.write_line
    width = max(60, min(getattr(getattr(terminalreporter, "_tw", None), "fullwidth", 80), 120))
    terminalreporter.section("tinytorch ladder", sep="=")
    shown_first_failure = False
    finished = []
    for group in results.groups:
        if group not in results.collection_errors and not results.for_group(group):
            continue
        states = checkpoint_states(results, manifest, group)
        all_done = bool(states) and all(s.done for s in states) and group not in results.collection_errors
        lines = kata_lines(results, manifest, group)
        if all_done:
            lines = lines[:1]
            finished.append(group)
        for line in lines:
            write(line)
        if not verbose and not shown_first_failure and not all_done:
            for line in first_failure_lines(results, manifest, group, mode, width):
                write(line)
            shown_first_failure = any(t.outcome != PASSED for t in results.for_group(group))
            if shown_first_failure:
                write("")
    if not verbose and finished and not shown_first_failure and mode != "reference":
        write("")
        if len(finished) == 1:
            lines = nextstep.finished_lines(manifest, finished[0], mode)
        else:
            katas = [g for g in finished if g != MILESTONES]
            lines = [f"Everything run here is green: {len(finished)} of {len(finished)}."]
            lines += nextstep.next_lines(manifest, katas, mode, progress.read_history()
                                         if mode in progress.RECORDED_MODES else [])
        for line in lines:
            for wrapped in wrap(line, width, "", "  "):
                write(wrapped)
        write("")
    for note in notes:
        write(note)
    if not verbose:
        write("Plain pytest output, every traceback: add -v.  Everything at once: python scoreboard.py")


STATES = (PASSED, NOT_STARTED, WRONG, BROKEN)

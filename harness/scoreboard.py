"""The scoreboard: every kata and milestone run in its own process, then tallied.

    python scoreboard.py                    run everything; one line per kata, the next step
    python scoreboard.py --scaffold         each kata on your module, the reference for the rest
    python scoreboard.py --impl=reference   check the reference (records nothing)
    python scoreboard.py --json [--out F]   the result file (format: docs/result-format.md)
    python scoreboard.py --format gradescope [--out results.json]
    python scoreboard.py hint 03            the next hint for your first red checkpoint of kata 03
    python scoreboard.py list               every kata and milestone: last state, workshop minutes
    python scoreboard.py start 03           start kata 03's clock (the result file reports elapsed time)
    python scoreboard.py start 03 --restart start it afresh: earlier first greens and hints no longer count
    python scoreboard.py reset 03 [--yes]   put back kata 03's pristine stub (your file is backed up)

A learner's crash, hang, `sys.exit()` or syntax error costs that kata only: it is
shown as broken, with the reason, and the scoreboard still exits 0.

For other tools (a live view, a leaderboard):

    runs = run_targets(targets(manifest), "student")          # harness/runs.py
    result = build_result(runs, manifest, "student", name, history, hints)
    problems = validate_result(result)                        # [] when valid

`build_result` and `validate_result` live in harness/grades.py, where the result
format is defined; docs/result-format.md describes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

from harness import manifest as manifest_module
from harness import nextstep, progress, stubs
from harness.grades import (CAPABILITY_STATES, EARNED, build_result, capabilities,
                            gradescope_results, participant_name, repository_commit, validate_result)
from harness.text import shorten
from harness.runs import BLOCKED, KATA, MILESTONE, NO_TESTS, find_target, run_targets, targets

__all__ = ["main", "build_result", "validate_result", "run_targets", "targets", "render_board"]

COMMANDS = ("run", "hint", "list", "reset", "start")
BAR_WIDTH = 10
DEFAULT_TIMEOUT = 120


# -- drawing --------------------------------------------------------------------------

def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """[####------]: never full before the end, never empty once something is done."""
    filled = done * width // total if total else 0
    if done and not filled:
        filled = 1
    if done < total and filled == width:
        filled = width - 1
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _clip(text: str, width: int) -> str:
    """One line of at most `width` characters, cut at a word with an ellipsis; leading spaces kept."""
    indent = text[: len(text) - len(text.lstrip())]
    return text if len(text) <= width else indent + shorten(text[len(indent):], width - len(indent))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _wrap(text: str, width: int, indent: str) -> list[str]:
    """Wrap at spaces only: hints hold code like `np.asarray(x, dtype=...)` that must stay whole."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _mode_flag(mode: str, target=None) -> str:
    if mode == "scaffold" and (target is None or target.kind == KATA):
        return " --scaffold"
    return " --impl=reference" if mode == "reference" else ""


def group_lines(runs, width: int) -> list[str]:
    lines = []
    label_width = min(24, max((len(r.target.label) for r in runs), default=10) + 2)
    count_width = max((len(f"{r.done}/{r.total}") for r in runs), default=3)
    milestones_shown = False
    for run in runs:
        if run.target.kind == MILESTONE and not milestones_shown:
            lines.append("  Milestones")
            milestones_shown = True
        head = f"  {_clip(run.target.label, label_width - 1):<{label_width}}{bar(run.done, run.total)}  " \
               f"{f'{run.done}/{run.total}':>{count_width}}  "
        if run.broken:
            lines.append(head + "broken")
            lines += _wrap(f"      why: {run.broken.splitlines()[0]}", width, " " * 11)
        else:
            lines.append(_clip(head + run.summary, width))
    return lines


def capability_lines(runs, manifest, width: int) -> list[str]:
    found = capabilities(runs, manifest)
    earned = sum(state == EARNED for _, _, state in found)
    lines = [f"capabilities: {earned} of {len(found)} earned"]
    if len({state for _, _, state in found}) == 1:
        return lines  # all in one state: the count says it all
    for state in CAPABILITY_STATES:
        names = [name for name, _, s in found if s == state]
        if names:
            label = f"  {state + ':':<19}"
            lines += textwrap.wrap(", ".join(names), width, initial_indent=label,
                                   subsequent_indent=" " * len(label), break_on_hyphens=False)
    return lines


def _heading(target, checkpoint) -> str:
    return target.id if target.kind == MILESTONE else f"{target.id} · {checkpoint.name}"


def _blocked_note(target, test, mode: str) -> str:
    note = f"  note    it stops in code of kata {test.blocked_by}, which is not finished; finish that first"
    if target.kind == KATA and mode == "student" and manifest_module.REFERENCE_DIR.is_dir():
        note += ", or add --scaffold to use the reference's version of it"
    elif target.kind == MILESTONE:
        note += " (a milestone always runs on your own modules)"
    return note


def next_step_lines(runs, mode: str, width: int) -> list[str]:
    """Where to go next: the first kata (then milestone) that is not finished."""
    pending = [r for r in runs if r.ran and not r.finished]
    if not pending:
        ran = [r for r in runs if r.ran]
        if not ran:
            return ["Next step: no kata has tests yet."]
        manifest = manifest_module.load()
        if len(ran) == len(runs) == len(targets(manifest)):
            return ["Next step: nothing -- every kata and milestone is green. Well done: you built it."]
        names = ", ".join(r.target.id for r in ran)
        history = progress.read_history() if mode in progress.RECORDED_MODES else []
        lines = [f"Everything run here is green ({names})."]
        lines += nextstep.next_lines(manifest, [r.target.id for r in ran], mode, history)
        return [wrapped for line in lines for wrapped in _wrap(line, width, "  ")]
    run = pending[0]
    target = run.target
    run_command = target.command + _mode_flag(mode, target)
    hint_command = f"python scoreboard.py hint {target.id}{_mode_flag(mode, target)}"
    if run.broken:
        lines = [f"Next step: {target.id} is broken", f"  why     {run.broken.splitlines()[0]}"]
        lines += [f"          {line}" for line in run.broken.splitlines()[1:3]]
        lines.append(f"  run     {run_command}   (shows the whole error)")
        return [wrapped for line in lines for wrapped in _wrap(line, width, " " * 10)]
    checkpoint, test = run.first_red()
    lines = [f"Next step: {_heading(target, checkpoint)}", f"  goal    {checkpoint.goal}"]
    if test is not None:
        lines.append(f"  test    {test.nodeid.split('/')[-1]}")
        lines.append(f"  checks  {test.checks}")
        message = test.message.splitlines() or [""]
        lines.append(f"  result  {test.outcome}" + (f": {message[0]}" if message[0] else ""))
        lines += [f"          {line}" for line in message[1:3]]
        if run.state == BLOCKED:
            lines.append(_blocked_note(target, test, mode))
    if test is not None and test.hint:
        lines.append(f"  hint    {test.hint}")
    lines.append(f"  hint    {checkpoint.hints[0]}")
    lines.append(f"  lesson  {checkpoint.lesson}")
    lines.append(f"  run     {run_command}")
    lines.append(f"  stuck?  {hint_command}   (a more direct hint each time)")
    wrapped = []
    for line in lines:
        wrapped += _wrap(line, width, " " * 10) or [""]
    return wrapped


def render_board(runs, manifest, mode: str, seconds: float, width: int = 78) -> str:
    katas = sum(r.target.kind == KATA and r.ran for r in runs)
    milestones = sum(r.target.kind == MILESTONE and r.ran for r in runs)
    done = sum(r.done for r in runs)
    total = sum(r.total for r in runs)
    percent = f" ({100 * done // total}%)" if total else ""
    lines = [f"TinyTorch Katas · {mode} mode · ran {_count(katas, 'kata')} and "
             f"{_count(milestones, 'milestone')} in {seconds:.1f} s", ""]
    lines += group_lines(runs, width)
    abilities = capability_lines(runs, manifest, width)
    lines += ["", f"Total: {done} of {total} checkpoints{percent} · {abilities[0]}"]
    lines += abilities[1:] + [""]
    lines += next_step_lines(runs, mode, width)
    return "\n".join(lines)


# -- recording ------------------------------------------------------------------------

def record(runs, mode: str) -> None:
    """Write first-greens to the history and each group's state to last_run.json."""
    if mode not in progress.RECORDED_MODES:
        return
    try:
        progress.record_greens([(r.target.id, c.name) for r in runs for c in r.checkpoints if c.done], mode)
        stamp = progress.now()
        progress.update_last_run({r.target.id: {"state": r.state, "summary": r.summary, "done": r.done,
                                                "total": r.total, "impl": mode, "time": stamp}
                                  for r in runs if r.ran})
    except OSError as error:
        print(f"warning: could not record progress in {progress.progress_dir()}: {error}", file=sys.stderr)


def result_for(runs, manifest, mode: str, name: str | None) -> dict:
    recorded = mode in progress.RECORDED_MODES
    return build_result(runs, manifest, mode, participant_name(name),
                        history=progress.read_history() if recorded else [],
                        hints=progress.hints_shown() if recorded else {},
                        commit=repository_commit())


# -- commands -------------------------------------------------------------------------

def _progress_printer():
    if not sys.stderr.isatty():
        return None, lambda: None

    def show(finished, total, target):
        sys.stderr.write(f"\r  ran {finished} of {total}: {target.id:<40}")
        sys.stderr.flush()

    def clear():
        sys.stderr.write("\r" + " " * 60 + "\r")
        sys.stderr.flush()
    return show, clear


def _chosen(manifest, names) -> list:
    if not names:
        return targets(manifest)
    wanted = {find_target(manifest, name).id for item in names for name in item.split(",") if name.strip()}
    return [t for t in targets(manifest) if t.id in wanted]


def _run(chosen, mode, args):
    show, clear = _progress_printer()
    started = time.monotonic()
    try:
        runs = run_targets(chosen, mode, timeout=args.kata_timeout, jobs=args.jobs, progress=show)
    finally:
        clear()
    return runs, time.monotonic() - started


def command_run(manifest, mode: str, args, width: int) -> int:
    chosen = _chosen(manifest, args.kata)
    runs, seconds = _run(chosen, mode, args)
    record(runs, mode)
    board = render_board(runs, manifest, mode, seconds, width)
    fmt = "json" if args.json else args.format
    if fmt == "text":
        print(board)
        if args.out:
            progress.write_json(args.out, result_for(runs, manifest, mode, args.name))
        return 0
    if fmt == "gradescope":
        data = gradescope_results(runs, render_board(runs, manifest, mode, seconds, 78), seconds)
    else:
        data = result_for(runs, manifest, mode, args.name)
    if args.out:
        progress.write_json(args.out, data)
        print(board)
    else:
        print(json.dumps(data, indent=1, ensure_ascii=False))
    return 0


def command_hint(manifest, mode: str, args, width: int) -> int:
    target = find_target(manifest, args.target)
    if not target.test_file.exists():
        print(f"{target.id} has no tests yet, so there is nothing to hint at.")
        return 0
    runs, _ = _run([target], mode, args)
    run = runs[0]
    record(runs, mode)
    if run.broken:
        print(f"{target.id} is broken: {run.broken}")
        print(f"Fix that first; `{target.command}{_mode_flag(mode, target)}` shows the whole error.")
        return 0
    checkpoint, test = run.first_red()
    if checkpoint is None:
        print(f"{target.id}: all {run.total} checkpoints are done. No hint needed.")
        return 0
    asked = progress.hints_shown().get(target.id, {}).get(checkpoint.name, 0)  # tiers 2 and 3 asked for
    extra = len(checkpoint.hints) - 1
    tier = min(asked + 1, extra) + 1  # the tier this call reveals: 2, then 3
    lines = [_heading(target, checkpoint), f"  goal    {checkpoint.goal}"]
    if test is not None:
        lines.append(f"  test    {test.nodeid.split('::')[-1]} ({test.outcome}): {test.checks}")
        if test.hint:
            lines.append(f"  note    {test.hint}")
        if test.blocked_by:
            lines.append(_blocked_note(target, test, mode))
    lines += ["", f"Hint 1 of {len(checkpoint.hints)} (free): {checkpoint.hints[0]}"]
    for shown_tier in range(2, tier + 1):
        lines.append(f"Hint {shown_tier} of {len(checkpoint.hints)}: {checkpoint.hints[shown_tier - 1]}")
    lines += [f"Lesson: {checkpoint.lesson}", ""]
    if asked >= extra:
        lines.append("You have seen every hint for this checkpoint.")
    elif tier == len(checkpoint.hints):
        lines.append("That was the last hint for this checkpoint: the lesson section has the rest.")
    else:
        lines.append(f"Still stuck? `python scoreboard.py hint {target.id}{_mode_flag(mode, target)}` "
                     "again shows the next, more direct hint.")
    for line in lines:
        print("\n".join(_wrap(line, width, " " * 10)) if line else "")
    if mode in progress.RECORDED_MODES and tier - 1 > asked:
        try:
            progress.set_hints_shown(target.id, checkpoint.name, tier - 1)
        except OSError as error:
            print(f"warning: could not remember the hint in {progress.progress_dir()}: {error}", file=sys.stderr)
    return 0


def command_list(manifest, width: int) -> int:
    last = progress.last_run()
    everything = targets(manifest)
    label_width = min(24, max(len(t.label) for t in everything) + 2) if everything else 10
    lines = [f"  {'kata':<{label_width}}{'minutes':>7}  last run"]
    milestones_shown = False
    for target in everything:
        if target.kind == MILESTONE and not milestones_shown:
            lines.append("  Milestones")
            milestones_shown = True
        entry = last.get(target.id)
        if not target.test_file.exists():
            state = NO_TESTS
        elif isinstance(entry, dict):
            state = f"{entry.get('done', 0)}/{entry.get('total', len(target.checkpoints))}  {entry.get('summary', '')}"
        else:
            state = "not run yet"
        lines.append(_clip(f"  {_clip(target.label, label_width - 1):<{label_width}}{target.minutes:>7}  {state}", width))
    minutes = sum(t.minutes for t in everything)
    lines += ["", f"Workshop time for everything: about {minutes // 60} h {minutes % 60} min.",
              "States are from the last scoreboard run; `python scoreboard.py` runs everything again."]
    print("\n".join(lines))
    return 0


def _ask(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        print()
        return ""


def command_reset(manifest, args) -> int:
    target = find_target(manifest, args.target)
    if target.kind != KATA:
        print(f"{target.id} is a milestone; it has no stub of its own to reset.")
        return 2
    confirm = (lambda prompt: "y") if args.yes else _ask
    try:
        stubs.reset_kata(target.id, confirm=confirm)
    except (FileNotFoundError, stubs.RegionError) as error:
        print(error)
        return 1
    return 0


def command_start(manifest, mode: str, args) -> int:
    target = find_target(manifest, args.target)
    if mode not in progress.RECORDED_MODES:
        print("The reference's runs are not recorded, so there is no clock to start.")
        return 2
    known = progress.starts(progress.read_history()).get(target.id)
    event = progress.record_start(target.id, mode, restart=args.restart)
    if known is not None and not args.restart:
        print(f"{target.id}'s clock has been running since {event['time']} (UTC); it keeps counting from then. "
              f"To start it afresh (a workshop after a practice run), with its first greens and hints "
              f"forgotten: python scoreboard.py start {target.id} --restart")
        return 0
    again = "restarted" if args.restart else "started"
    print(f"{target.id}'s clock {again} at {event['time']} (UTC). "
          "The result file (python scoreboard.py --json) reports the time from here to each checkpoint.")
    if args.restart:
        print("Earlier first greens and hints of this kata no longer count; the history keeps them.")
    return 0


# -- the command line -------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python scoreboard.py",
        description="Run every kata and milestone, each in its own process, and show how far you are.",
        epilog="Commands: run (the default), hint KATA, list, start KATA, reset KATA; "
               "watch KATA, leaderboard FILES..., host KATA, release OUTDIR, capstone verify SUBMISSION "
               "(each has its own --help). "
               "The result format is described in docs/result-format.md.")
    parser.add_argument("command", nargs="?", default="run", choices=COMMANDS, help="what to do (default: run)")
    parser.add_argument("target", nargs="?", help="the kata (or milestone) for hint, start and reset")
    parser.add_argument("--impl", choices=("student", "reference", "scaffold"), default=None,
                        help="whose tinytorch to run: yours (student, the default), the reference, or scaffold")
    parser.add_argument("--scaffold", action="store_true",
                        help="each kata on your module, with the reference for every other module")
    parser.add_argument("--json", action="store_true", help="print the result file (JSON) instead of the board")
    parser.add_argument("--format", choices=("text", "json", "gradescope"), default="text",
                        help="text (the board), json (the result file) or gradescope (an autograder results.json)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="write the JSON output to FILE (atomically) and show the board")
    parser.add_argument("--name", default=None, help="participant name for the result file "
                        "(default: TINYTORCH_NAME, git user.name, or your user name)")
    parser.add_argument("--kata", action="append", default=[], metavar="KATA",
                        help="run only this kata or milestone (repeat, or separate with commas)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="katas run at once (default 2)")
    parser.add_argument("--kata-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"wall-clock limit for one kata's run (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--yes", action="store_true", help="reset without asking")
    parser.add_argument("--restart", action="store_true",
                        help="with start: start the kata's clock afresh; its earlier first greens and hints "
                             "no longer count (the history keeps them)")
    args = parser.parse_args(argv)
    if args.command in ("hint", "reset", "start") and not args.target:
        parser.error(f"{args.command} needs a kata, e.g. `python scoreboard.py {args.command} 01_tensor`")
    if args.command in ("run", "list") and args.target:
        parser.error(f"unexpected {args.target!r}; to run one kata use --kata {args.target}")
    if args.restart and args.command != "start":
        parser.error("--restart goes with start: python scoreboard.py start KATA --restart")
    if args.jobs < 1 or args.kata_timeout <= 0:
        parser.error("--jobs and --kata-timeout must be positive")
    return args


# Workshop and instructor commands with arguments of their own: each module has a main(argv).
SUBCOMMAND_MODULES = {"watch": "harness.watch", "leaderboard": "harness.leaderboard", "host": "harness.host",
                      "release": "harness.release", "capstone": "harness.capstone"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMAND_MODULES:
        import importlib

        return importlib.import_module(SUBCOMMAND_MODULES[argv[0]]).main(argv[1:])
    args = parse_args(argv)
    width = max(60, min(100, shutil.get_terminal_size((80, 24)).columns - 2))
    mode = "scaffold" if args.scaffold else (args.impl or os.environ.get("TINYTORCH_IMPL", "").strip() or "student")
    if mode not in ("student", "reference", "scaffold"):
        print(f"unknown implementation {mode!r} (from TINYTORCH_IMPL); use student, reference or scaffold")
        return 2
    try:
        manifest = manifest_module.load()
    except (OSError, manifest_module.ManifestError) as error:
        print(f"cannot read the kata manifest {manifest_module.MANIFEST_PATH}: {error}")
        return 2
    if mode != "student" and not manifest_module.REFERENCE_DIR.is_dir() and args.command in ("run", "hint"):
        print(f"--impl={mode} needs the reference implementation in {manifest_module.REFERENCE_DIR}, "
              "and this copy has none. Run without it to check your own code.")
        return 2
    try:
        if args.command == "list":
            return command_list(manifest, width)
        if args.command == "reset":
            return command_reset(manifest, args)
        if args.command == "start":
            return command_start(manifest, mode, args)
        if args.command == "hint":
            return command_hint(manifest, mode, args, width)
        return command_run(manifest, mode, args, width)
    except KeyError as error:
        print(error.args[0] if error.args else error)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the katas still running were stopped.", file=sys.stderr)
        return 130

"""Watch mode for a timed kata: run it again at every save, with a clock.

    python scoreboard.py watch 01_tensor                 the kata's workshop minutes (from the manifest)
    python scoreboard.py watch 01 --minutes 20 --scaffold
    python scoreboard.py watch 01 --name "Ada" --out results/ada.json
    python scoreboard.py watch 01 --join http://10.0.0.5:8765 --token 7f3a91c204be   (a live workshop)

The kata runs once at the start, then again whenever a `.py` file of the learner's
`tinytorch/` (or TINYTORCH_STUDENT_DIR) is saved. Saves are found by polling each
file's modification time and size, so it works in containers, under WSL and on
network drives. A save during a run starts one more run after it.

The screen shows the time left, the ladder, each checkpoint with the time it
first went green (counted from the kata's clock, which watch starts: the same
`start` event as `python scoreboard.py start`), and the next step. When time is
up, or on Ctrl-C, the running test process is stopped, a summary is printed and
the result file (docs/result-format.md) is written, atomically, to
`.progress/results/<name>-<kata>.json` unless --out says otherwise. It is also
rewritten after every finished run, so a leaderboard can read it live.

With --join and --token (printed by `python scoreboard.py host`), every result is also
sent to the workshop's host, from a thread of its own (harness/join.py): a host that is
down or slow never holds up the watch. The screen shows how the link is doing
("host: connected, last sent 12 s ago", "host unreachable (...) · retry in 8 s"); at the end
watch waits a few seconds at most for the last result to reach the host.

Exit code: 0 when the watch ends by time-up or Ctrl-C (or SIGTERM, SIGHUP) and
the result file is written; 1 when it cannot be written; 2 for a bad request;
130 for a Ctrl-C before the first run started (nothing is written then).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness import join as join_module
from harness import manifest as manifest_module
from harness import progress, runs
from harness.grades import build_result, participant_name, repository_commit
from harness.runs import GroupRun, Target, find_target, group_from_results
from harness.scoreboard import DEFAULT_TIMEOUT, group_lines, next_step_lines, record
from harness.text import shorten

DEFAULT_POLL = 0.3
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


# -- pure pieces ------------------------------------------------------------------------

def format_clock(seconds: float) -> str:
    """Whole seconds as mm:ss, or h:mm:ss from an hour on; never negative."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every .py file under `folder`: a save changes one or the other."""
    found = {}
    for path in folder.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        try:
            info = path.stat()
        except OSError:  # deleted between listing and looking
            continue
        found[path.relative_to(folder).as_posix()] = (info.st_mtime_ns, info.st_size)
    return found


def changed_files(before: dict, after: dict) -> list[str]:
    """Files added, removed or saved between two snapshots, sorted."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def slug(name: str) -> str:
    """A name safe in a file name: `Ada Lovelace` -> `ada-lovelace`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "anonymous"


def default_out(participant: str, target: Target) -> Path:
    return progress.progress_dir() / "results" / f"{slug(participant)}-{target.id}.json"


def _shown(path: Path) -> str:
    """A path as short as it can be said: relative to here when it is below here."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# -- the kata, run in the background -------------------------------------------------------

class KataRunner:
    """Runs the kata in a thread, one run at a time, so the clock keeps ticking meanwhile."""

    def __init__(self, target: Target, mode: str, timeout: float, wake: threading.Event):
        self.target, self.mode, self.timeout, self.wake = target, mode, timeout, wake
        self.thread: threading.Thread | None = None
        self.done = threading.Event()  # set when the current run has ended
        self.outcome: GroupRun | None = None
        self.error = ""

    @property
    def running(self) -> bool:
        return self.thread is not None and not self.done.is_set()

    @property
    def finished(self) -> bool:
        """A run ended and its outcome has not been taken yet."""
        return self.thread is not None and self.done.is_set()

    def start(self) -> None:
        self.outcome, self.error = None, ""
        self.done.clear()
        self.thread = threading.Thread(target=self._run, name=f"watch-{self.target.id}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.outcome = runs.run_targets([self.target], self.mode, timeout=self.timeout, jobs=1)[0]
        except Exception as error:  # the harness itself failed (disk full, no interpreter): say so, keep watching
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.done.set()
            self.wake.set()

    def take(self) -> tuple[GroupRun | None, str]:
        """The finished run's outcome (or None) and the harness error ("" if none)."""
        self.thread.join()
        self.thread = None
        return self.outcome, self.error

    def stop(self, patience: float = 15.0) -> bool:
        """Kill the test process, if any, and wait for the thread. True if a run was cut short."""
        if self.thread is None:
            return False
        cut = not self.done.is_set()
        deadline = time.monotonic() + patience
        # stop_all again and again: the process may be started a moment after the first call
        while self.thread.is_alive() and time.monotonic() < deadline:
            runs.stop_all()
            self.thread.join(0.05)
        self.thread = None
        return cut


# -- what is shown ------------------------------------------------------------------------

@dataclass
class Session:
    """Everything the screen and the result file are drawn from."""

    target: Target
    manifest: object  # harness.manifest's Manifest, for the result file's capabilities
    mode: str
    minutes: float
    participant: str
    out: Path
    student_dir: Path
    launched: float = field(default_factory=time.monotonic)  # time.monotonic() when watch began
    clock_start: str | None = None  # the kata's start event time (UTC), None when not recorded
    clock_started_before: bool = False  # the start event predates this watch
    last: GroupRun | None = None  # the last run that finished
    last_finished: str = ""  # its local wall-clock time, hh:mm:ss
    error: str = ""
    history: list = field(default_factory=list)
    runs_done: int = 0
    link: join_module.HostLink | None = None  # the workshop host results are sent to (--join), if any

    @property
    def deadline(self) -> float:
        return self.launched + self.minutes * 60

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.deadline - (time.monotonic() if now is None else now))

    def first_greens(self) -> dict[str, str]:
        """checkpoint name -> the time it first went green (UTC), from the history."""
        return {checkpoint: event["time"] for (kata, checkpoint), event in progress.first_greens(self.history).items()
                if kata == self.target.id}

    def since_start(self, stamp: str) -> str:
        """`+mm:ss` from the kata's clock start to `stamp`."""
        if not self.clock_start:
            return stamp
        seconds = (progress.parse_time(stamp) - progress.parse_time(self.clock_start)).total_seconds()
        return "before the clock started" if seconds < 0 else f"+{format_clock(seconds)}"


def checkpoint_lines(session: Session, width: int) -> list[str]:
    """One line per checkpoint: tests passed and when it first went green."""
    greens = session.first_greens()
    current = {c.name: c for c in session.last.checkpoints} if session.last else {}
    name_width = max(len(name) for name, *_ in session.target.checkpoints) + 2
    lines = []
    for name, *_ in session.target.checkpoints:
        checkpoint = current.get(name)
        mark = "[x]" if checkpoint is not None and checkpoint.done else "[ ]"
        tests = f"{checkpoint.passed}/{len(checkpoint.tests)} tests" if checkpoint is not None and checkpoint.tests \
            else ("..." if session.last is None else "no tests ran")
        when = ""
        if name in greens:
            when = f"green at {session.since_start(greens[name])}"
            if checkpoint is not None and not checkpoint.done:
                when = f"red again (first {when})"
        elif checkpoint is not None and checkpoint.done:
            when = "green"
        line = f"  {mark} {name:<{name_width}}{tests:<14}{when}".rstrip()
        lines.append(line if len(line) <= width else "  " + shorten(line[2:], width - 2))
    return lines


def render_frame(session: Session, running: bool, queued: bool, width: int, now: float | None = None,
                 height: int | None = None) -> str:
    """The whole screen: header, clock, ladder, checkpoints with first-green times, next step.

    With a `height` (a terminal's rows), the frame is made to fit it: the next step and its
    message come first among what is kept, then the checkpoints, then everything else.
    """
    target = session.target
    left = session.remaining(now)
    clock = f"time left {format_clock(math.ceil(left))} of {format_clock(session.minutes * 60)}" if left > 0 \
        else "time is up"
    title = f"TinyTorch Katas · watch {target.label} · {session.mode} mode"
    gap = max(2, width - len(title) - len(clock))
    head = [title + " " * gap + clock]
    if running:
        status = "running… (saved again meanwhile: one more run after this one)" if queued else "running…"
    elif session.last_finished:
        status = f"idle; last run at {session.last_finished} took {session.last.seconds:.1f} s"
    else:
        status = "idle"
    head.append(f"Status: {status}")
    if session.link is not None:
        head.append(shorten(session.link.status(), width))
    watching = [f"Watching {_shown(session.student_dir)}/: save a file to run again, Ctrl-C to stop."]
    if session.clock_started_before and session.clock_start:
        watching.append(f"(this kata's clock started earlier, at {session.clock_start}; "
                        "checkpoint times count from then)")
    if session.error:
        head.append(f"The harness could not run the kata: {session.error}")
    board = group_lines([session.last], width) if session.last is not None \
        else [f"  {target.label}: the first run is on its way"]
    checkpoints = checkpoint_lines(session, width)
    step = next_step_lines([session.last], session.mode, width) if session.last is not None else []

    def assemble(parts) -> list[str]:
        lines = []
        for part in parts:
            if part:
                lines += ([""] if lines and part is not watching else []) + part
        return lines

    lines = assemble([head, watching, board, checkpoints, step])
    if height is None or len(lines) <= height:
        return "\n".join(lines)
    # Too tall for the terminal: drop what the rest of the screen already says, in this order.
    step = [line for line in step if not line.startswith("  run ")]  # watch runs it on every save
    lines = assemble([head, watching, board, checkpoints, step])
    if len(lines) > height:
        lines = assemble([head, checkpoints, step])  # the bar repeats the checkpoints' count
    if len(lines) > height:
        lines = head + checkpoints + step
    if len(lines) > height:  # keep the next step whole; show as many checkpoints as fit
        room = max(0, height - len(head) - len(step))
        shown = checkpoints[:room]
        lines = (head + shown + step)[:height]
    return "\n".join(lines)


def summary_lines(session: Session, reason: str, cut_short: bool, result: dict | None, written: str) -> list[str]:
    target = session.target
    watched = format_clock(time.monotonic() - session.launched)
    runs_done = f"{session.runs_done} run" + ("" if session.runs_done == 1 else "s")
    lines = ["", f"{reason} Watched {target.label} for {watched} ({runs_done})."]
    if cut_short:
        lines.append("The run in progress was stopped; the result is from the last run that finished.")
    if result is not None:
        (kata,) = result["katas"]
        elapsed = kata["elapsed_seconds"]
        reached = f"{kata['checkpoints_done']} of {kata['checkpoints_total']} checkpoints done"
        lines.append(f"{target.id}: {reached}")
        if elapsed is not None:
            lines.append(f"Elapsed: {format_clock(elapsed)}, from the start to the latest first green")
        name_width = max(len(c["name"]) for c in kata["checkpoints"]) + 2
        for checkpoint in kata["checkpoints"]:
            green = checkpoint["first_green_at"]
            since = session.since_start(green) if green else ""
            if not green:
                when = "not green yet"
            elif since.startswith("+"):
                when = f"green at {since} ({green})"
            else:
                when = f"green {since} ({green})" if since != green else f"green at {green}"
            lines.append(f"  {'[x]' if checkpoint['done'] else '[ ]'} {checkpoint['name']:<{name_width}}{when:<38}"
                         f"  hints used: {checkpoint['hints_used']}")
        lines.append(f"Hints used in all: {sum(c['hints_used'] for c in kata['checkpoints'])}")
    lines.append(written)
    return lines


# -- drawing on a terminal or into a log ---------------------------------------------------

class Screen:
    """Redraws in place on a terminal; prints frames one after another anywhere else."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.started = False
        self.gone = False  # the terminal or pipe went away: keep watching, stop drawing

    def _write(self, text: str) -> None:
        if self.gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            self.gone = True

    @property
    def width(self) -> int:
        return max(60, min(100, shutil.get_terminal_size((80, 24)).columns - 2))

    @property
    def height(self) -> int | None:
        """The rows a frame may use on a terminal (one is left for the cursor); none in a log."""
        return max(10, shutil.get_terminal_size((80, 24)).lines - 1) if self.tty else None

    def show(self, frame: str) -> None:
        if self.tty:
            if not self.started:
                self._write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
                self.started = True
            # a frame taller or wider than the terminal would scroll, and the next would not overwrite it
            columns, rows = shutil.get_terminal_size((80, 24))
            lines = [line[: columns - 1] for line in frame.splitlines()[: max(1, rows - 1)]]
            # home, each line clearing its own tail, then clear below: no flicker
            self._write("\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J")
        else:
            self._write(("" if not self.started else "-" * 40 + "\n") + frame + "\n")
            self.started = True

    def note(self, text: str) -> None:
        """A one-line event in a log (not drawn on a terminal, where the frame says it)."""
        if not self.tty:
            self._write(text + "\n")

    def close(self) -> None:
        if self.tty and self.started:
            self._write("\x1b[?25h")  # the cursor back


# -- signals: finish cleanly, never in the middle of writing a file ---------------------------

class Stop(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP: end the watch. A BaseException, as KeyboardInterrupt is: no
    `except Exception` on the way (a library's or ours) may swallow it."""


class Signals:
    """While `held`, a stop signal is remembered instead of interrupting (see `critical`)."""

    def __init__(self):
        self.held = False
        self.pending: int | None = None
        self.previous = {}

    def handle(self, signum, frame) -> None:
        if self.held:
            self.pending = self.pending or signum
            return
        raise Stop(signal.Signals(signum).name)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            try:
                self.previous[signum] = signal.signal(signum, self.handle)
            except (ValueError, OSError):  # not the main thread: keep the defaults
                pass

    def restore(self) -> None:
        for signum, previous in self.previous.items():
            if previous is not None:
                signal.signal(signum, previous)

    @contextmanager
    def critical(self):
        """Hold stop signals for the duration: a file is written whole, a thread started and known."""
        self.held = True
        try:
            yield
        finally:
            self.held = False
        if self.pending is not None:
            name, self.pending = signal.Signals(self.pending).name, None
            raise Stop(name)


# -- the watch ------------------------------------------------------------------------------

def write_result(session: Session, commit: str | None) -> dict:
    last = session.last or group_from_results(session.target, None)
    recorded = session.mode in progress.RECORDED_MODES
    result = build_result([last], session.manifest, session.mode, session.participant,
                          history=progress.read_history() if recorded else [],
                          hints=progress.hints_shown() if recorded else {}, commit=commit)
    if session.link is not None:
        session.link.submit(result)  # first: a disk that is full must not keep it from the host
    progress.write_json(session.out, result)
    return result


def _after_run(session: Session, runner: KataRunner, commit: str | None, signals: Signals) -> None:
    outcome, error = runner.take()
    session.error = error
    if outcome is None:
        return
    session.last, session.runs_done = outcome, session.runs_done + 1
    session.last_finished = time.strftime("%H:%M:%S")
    with signals.critical():
        record([outcome], session.mode)
        if session.mode in progress.RECORDED_MODES:
            session.history = progress.read_history()
        try:
            write_result(session, commit)
        except OSError as error:
            session.error = f"could not write {session.out}: {error}"


def watch(session: Session, screen: Screen, poll: float, timeout: float, signals: Signals,
          commit: str | None) -> tuple[str, bool]:
    """Run, wait for saves, run again, until time is up or a stop signal. Returns (why, cut_short)."""
    wake = threading.Event()
    runner = KataRunner(session.target, session.mode, timeout, wake)
    files = snapshot(session.student_dir)
    queued: list[str] = []  # files saved since the current run started: they need one more run
    shown_second = None
    link_changes = 0  # the host link's changes already shown
    if session.link is not None:
        session.link.wake = wake

    session.launched = time.monotonic()  # the clock counts from the first run

    def end(reason: str) -> tuple[str, bool]:
        signals.held = True  # a second Ctrl-C must not interrupt the stopping
        return reason, runner.stop()

    try:
        with signals.critical():  # a thread is either started and known, or not started
            runner.start()
        screen.note(f"[{format_clock(math.ceil(session.remaining()))} left] running {session.target.id}…")
        while True:
            wake.clear()
            now = time.monotonic()
            left = session.remaining(now)
            if left <= 0:
                return end("Time is up.")
            ran = runner.finished
            if ran:
                _after_run(session, runner, commit, signals)
            now_files = snapshot(session.student_dir)
            saved = changed_files(files, now_files)
            if saved:
                files, queued = now_files, sorted(set(queued) | set(saved))
            if queued and not runner.running:
                screen.note(f"[{format_clock(math.ceil(left))} left] saved {', '.join(queued)}; "
                            f"running {session.target.id}…")
                queued = []
                with signals.critical():
                    runner.start()
            second = math.ceil(left)
            linked = session.link is not None and session.link.changes != link_changes
            if linked:
                link_changes = session.link.changes
                screen.note(f"[{format_clock(math.ceil(left))} left] {session.link.status()}")
            if ran or (screen.tty and (saved or linked or second != shown_second)):
                screen.show(render_frame(session, runner.running, bool(queued), screen.width, now, screen.height))
                shown_second = second
            # sleep until the next poll, the next tick of the clock or the end of a run, whichever is first
            wake.wait(max(0.01, min(poll, left - (second - 1))))
    except Stop as stop:
        return end("Stopped (Ctrl-C)." if str(stop) == "SIGINT" else f"Stopped ({stop}).")
    except KeyboardInterrupt:  # a SIGINT before the handlers were installed
        return end("Stopped (Ctrl-C).")
    finally:
        signals.held = True
        runner.stop()


def finish(session: Session, reason: str, cut_short: bool, commit: str | None) -> int:
    """Write the result file and print the summary; the result file first, in case output is gone."""
    code, result = 0, None
    try:
        result = write_result(session, commit)
        written = f"Result file: {_shown(session.out)}"
    except OSError as error:
        code, written = 1, f"Could not write the result file {session.out}: {error}"
    _print(summary_lines(session, reason, cut_short, result, written))
    if session.link is not None:
        _print([f"Sending the last result to the workshop host (at most {join_module.SEND_TIMEOUT + 2:g} s)…"])
        _print([_last_sent(session.link)])
    return code


def _print(lines: list[str]) -> None:
    try:
        print("\n".join(lines), flush=True)
    except OSError:  # the terminal went away (SIGHUP): the file is what matters
        pass


def _last_sent(link: join_module.HostLink) -> str:
    """Wait briefly for the last result to reach the host; say whether it did."""
    if link.close():
        return "Sent to the workshop host" + (f" ({link.rank})." if link.rank else ".")
    return (f"The workshop host did not get the last result ({link.status()}); "
            "the result file above has it: hand that in.")


# -- the command line -------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python scoreboard.py watch",
        description="Run one kata again at every save of tinytorch/, with a clock, for a timed kata. "
                    "Ctrl-C (or the end of the time) stops it, prints a summary and writes the result file.",
        epilog="The result file is described in docs/result-format.md; it is written atomically after every "
               "finished run and at the end. Exit code 0 after time-up or Ctrl-C, 1 if the result file "
               "cannot be written, 2 for a bad request.")
    parser.add_argument("kata", help="the kata to watch: id, number or name (01_tensor, 1, tensor); "
                                     "a milestone id works too")
    parser.add_argument("--minutes", type=float, default=None, metavar="M",
                        help="length of the session in minutes, fractions allowed "
                             "(default: the kata's workshop minutes in katas/katas.toml)")
    parser.add_argument("--impl", choices=("student", "reference", "scaffold"), default=None,
                        help="whose tinytorch to run: yours (student, the default), the reference, or scaffold")
    parser.add_argument("--scaffold", action="store_true",
                        help="your module for this kata, the reference for every other module (start cold)")
    parser.add_argument("--name", default=None, help="participant name for the result file "
                        "(default: TINYTORCH_NAME, git user.name, or your user name)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="where to write the result file (default: .progress/results/<name>-<kata>.json)")
    parser.add_argument("--poll", type=float, default=DEFAULT_POLL, metavar="SECONDS",
                        help=f"how often to look for saved files (default {DEFAULT_POLL})")
    parser.add_argument("--kata-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"wall-clock limit for one run of the kata (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--restart", action="store_true",
                        help="start the kata's clock afresh: first greens and hints from before (a practice "
                             "run) no longer count")
    parser.add_argument("--join", default=None, metavar="URL",
                        help="a live workshop: send every result to the host at URL (printed by "
                             "`python scoreboard.py host`), in the background")
    parser.add_argument("--token", default=None, metavar="T", help="the workshop's token, with --join")
    args = parser.parse_args(argv)
    if args.minutes is not None and not (0 < args.minutes <= 24 * 60):
        parser.error(f"--minutes must be more than 0 and at most a day, got {args.minutes:g}")
    if not 0 < args.poll <= 10:
        parser.error(f"--poll must be more than 0 and at most 10 seconds, got {args.poll:g}")
    if args.kata_timeout <= 0:
        parser.error("--kata-timeout must be positive")
    if args.out is not None and args.out.is_dir():
        parser.error(f"--out names a file to write, and {args.out} is a folder")
    if args.scaffold and args.impl not in (None, "scaffold"):
        parser.error(f"--scaffold and --impl={args.impl} contradict each other; choose one")
    if (args.join is None) != (args.token is None):
        parser.error("--join and --token go together: python scoreboard.py watch KATA --join URL --token T "
                     "(the host prints the whole command)")
    if args.join is not None:
        try:
            args.join = join_module.base_url(args.join)
        except ValueError as error:
            parser.error(str(error))
        if not join_module.TOKEN_PATTERN.fullmatch(args.token):
            parser.error(f"--token should be the letters and digits the host printed, got {args.token!r}")
        if args.impl == "reference":
            parser.error("--join sends your own code's results; a host refuses the reference's")
    return args


def _request(args):
    """(message, None) for a request that cannot be served, else (None, (manifest, target, mode, student_dir))."""
    mode = "scaffold" if args.scaffold else (args.impl or os.environ.get("TINYTORCH_IMPL", "").strip() or "student")
    if mode not in ("student", "reference", "scaffold"):
        return f"unknown implementation {mode!r} (from TINYTORCH_IMPL); use student, reference or scaffold", None
    try:
        manifest = manifest_module.load()
    except (OSError, manifest_module.ManifestError) as error:
        return f"cannot read the kata manifest {manifest_module.MANIFEST_PATH}: {error}", None
    try:
        target = find_target(manifest, args.kata)
    except KeyError as error:
        return str(error.args[0] if error.args else error), None
    if not target.test_file.exists():
        return f"{target.id} has no tests yet, so there is nothing to watch.", None
    if mode != "student" and not manifest_module.REFERENCE_DIR.is_dir():
        return (f"--impl={mode} needs the reference implementation in {manifest_module.REFERENCE_DIR}, "
                "and this copy has none. Run without it to watch your own code."), None
    student_dir = Path(os.environ.get("TINYTORCH_STUDENT_DIR") or manifest_module.STUDENT_DIR)
    if not student_dir.is_dir():
        return f"there is no tinytorch folder to watch at {student_dir}", None
    return None, (manifest, target, mode, student_dir)


def _start_clock(session: Session, signals: Signals, restart: bool = False) -> None:
    """Record the kata's start (the first start wins, unless `restart`) and read the history once."""
    if session.mode not in progress.RECORDED_MODES:
        return
    try:
        with signals.critical():
            kata = session.target.id
            session.clock_started_before = kata in progress.starts(progress.read_history()) and not restart
            session.clock_start = progress.record_start(kata, session.mode, restart=restart)["time"]
            session.history = progress.read_history()
    except OSError as error:
        print(f"warning: could not record the start in {progress.progress_dir()}: {error}", file=sys.stderr)


def _watch_and_finish(args, signals: Signals) -> int:
    message, found = _request(args)
    if message:
        print(message, file=sys.stderr)
        return 2
    manifest, target, mode, student_dir = found
    participant = participant_name(args.name)
    problem = join_module.name_problem(participant) if args.join else None
    if problem:
        print(f"The workshop host cannot show the name {participant!r}: {problem}. Choose another with --name.",
              file=sys.stderr)
        return 2
    minutes = args.minutes if args.minutes is not None else float(target.minutes)
    session = Session(target, manifest, mode, minutes, participant,
                      args.out or default_out(participant, target), student_dir)
    commit = repository_commit()
    if args.join:
        try:
            key = join_module.participant_key(args.join, participant)
        except OSError as error:
            print(f"cannot keep the workshop key in {progress.progress_dir()}: {error}", file=sys.stderr)
            return 1
        session.link = join_module.HostLink(args.join, args.token, key)
    _start_clock(session, signals, restart=args.restart)
    screen = Screen()
    try:
        reason, cut_short = watch(session, screen, args.poll, args.kata_timeout, signals, commit)
    finally:
        signals.held = True  # from here on, one more Ctrl-C must not cut the result file in half
        screen.close()
    return finish(session, reason, cut_short, commit)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signals = Signals()
    signals.install()
    try:
        return _watch_and_finish(args, signals)
    except Stop:
        print("Stopped before the watch began; no result file was written.", file=sys.stderr)
        return 130
    finally:
        signals.restore()

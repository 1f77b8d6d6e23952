"""The learner's progress folder: what the scoreboard remembers between runs.

It lives in `.progress/` at the top of the repository (git-ignored, local to each
clone); the environment variable TINYTORCH_PROGRESS_DIR moves it elsewhere.

    history.jsonl   append-only, one JSON object per line:
                      {"event": "green", "kata": "01_tensor", "checkpoint": "creation",
                       "time": "2025-01-31T09:12:03Z", "impl": "student"}
                    the first time a checkpoint went green, and
                      {"event": "start", "kata": "01_tensor", "time": "...", "impl": "student"}
                    when `scoreboard.py start` or `watch` started a kata's clock. For a milestone,
                    "kata" and "checkpoint" are both the milestone's id.
                    (`scoreboard.py start KATA --restart` adds a start event with "restart": true;
                    the kata's earlier events then no longer count.)
    hints.json      {"01_tensor": {"creation": 2}}: hint tiers asked for so far (0 to 2; the
                    first tier is shown free in the ladder and is never counted)
    last_run.json   each kata's and milestone's state at its last scoreboard run
    backups/        learners' files saved by `scoreboard.py reset`
    results/        result files written by `scoreboard.py watch` (unless it was given --out)

Every kata run records its first greens, plain `python -m pytest katas/...` as much as
the scoreboard. Only runs of the learner's own code (student and scaffold modes) are
recorded: a reference run proves nothing about the learner. Old history lines are never
rewritten; a line that cannot be read is skipped with a warning.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: appends of one line are still whole; duplicates are harmless
    fcntl = None

from harness import manifest as manifest_module

RECORDED_MODES = ("student", "scaffold")
_warned: set = set()  # (path, line number) of unreadable history lines already reported
GREEN, START = "green", "start"


def progress_dir() -> Path:
    return Path(os.environ.get("TINYTORCH_PROGRESS_DIR") or manifest_module.ROOT / ".progress")


def now() -> str:
    """The current time as ISO-8601 UTC, to the second: 2025-01-31T09:12:03Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_time(value) -> bool:
    """Whether `value` is a time as now() writes it: ISO 8601, UTC, ending in Z."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value[:-1])
    except ValueError:
        return False
    return True


# -- small JSON files, written whole and atomically ----------------------------------

def read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as error:
        print(f"warning: ignoring {path}: {error}", file=sys.stderr)
        return default


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so no reader sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # only left when the write or the rename failed


def write_json(path: Path, data) -> None:
    """Write `data` to `path` as JSON, atomically."""
    write_atomically(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


# -- history ----------------------------------------------------------------------

def history_path() -> Path:
    return progress_dir() / "history.jsonl"


def read_history(path: Path | None = None) -> list[dict]:
    """Every readable event in the history, oldest first; unreadable lines are skipped."""
    path = path or history_path()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or not isinstance(event.get("kata"), str) \
                    or not isinstance(event.get("time"), str):
                raise ValueError("not a history event")
            parse_time(event["time"])
        except ValueError as error:
            if (str(path), number) not in _warned:
                _warned.add((str(path), number))
                print(f"warning: {path}:{number}: skipping an unreadable line ({error})", file=sys.stderr)
            continue
        events.append(event)
    return events


def since_restart(history: list[dict]) -> list[dict]:
    """The events that still count: for a kata whose clock was restarted, only those from the
    last restart on."""
    last_restart = {event["kata"]: index for index, event in enumerate(history)
                    if event.get("event") == START and event.get("restart") is True}
    return [event for index, event in enumerate(history) if index >= last_restart.get(event["kata"], 0)]


def first_greens(history: list[dict]) -> dict[tuple[str, str], dict]:
    """(kata, checkpoint) -> the event of the first time it went green (since any restart)."""
    firsts: dict[tuple[str, str], dict] = {}
    for event in since_restart(history):
        if event.get("event", GREEN) == GREEN and isinstance(event.get("checkpoint"), str):
            key = (event["kata"], event["checkpoint"])
            if key not in firsts or parse_time(event["time"]) < parse_time(firsts[key]["time"]):
                firsts[key] = event
    return firsts


def starts(history: list[dict]) -> dict[str, dict]:
    """kata -> the event of the first time its clock was started (since any restart)."""
    firsts: dict[str, dict] = {}
    for event in since_restart(history):
        if event.get("event") == START and event["kata"] not in firsts:
            firsts[event["kata"]] = event
    return firsts


@contextmanager
def history_lock():
    """Hold the progress folder's lock: two runs at once (a kata run and the scoreboard, or two
    terminals) each read the history and append to it, and must not both add the same event."""
    folder = progress_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


def append_history(events: list[dict], path: Path | None = None) -> None:
    """Add events at the end of the history in one write; never touch earlier lines."""
    if not events:
        return
    path = path or history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events)
    with open(path, "a", encoding="utf-8") as history:
        history.write(text)


def record_greens(green: list[tuple[str, str]], impl: str, time: str | None = None) -> list[dict]:
    """Append a "green" event for each (kata, checkpoint) that never went green before.

    Returns the events written (none for a reference run).
    """
    if impl not in RECORDED_MODES or not green:
        return []
    with history_lock():
        known = first_greens(read_history())
        time = time or now()
        new = [{"event": GREEN, "kata": kata, "checkpoint": checkpoint, "time": time, "impl": impl}
               for kata, checkpoint in green if (kata, checkpoint) not in known]
        append_history(new)
    return new


def record_start(kata: str, impl: str, time: str | None = None, restart: bool = False) -> dict:
    """Start a kata's clock, once: the first start event since the last restart wins.

    `restart` starts it afresh (a workshop after a practice run): the kata's earlier clock,
    first greens and hints no longer count, though the history keeps every line.
    Returns the start event in force.
    """
    with history_lock():
        known = starts(read_history())
        if kata in known and not restart:
            return known[kata]
        event = {"event": START, "kata": kata, "time": time or now(), "impl": impl}
        if restart:
            event["restart"] = True
        append_history([event])
    if restart:
        forget_hints(kata)
    return event


# -- hints shown ------------------------------------------------------------------

def hints_path() -> Path:
    return progress_dir() / "hints.json"


def hints_shown() -> dict[str, dict[str, int]]:
    """kata -> checkpoint -> how many hint tiers the learner has seen (0 to 3)."""
    data = read_json(hints_path(), {})
    if not isinstance(data, dict):
        return {}
    return {kata: {cp: int(n) for cp, n in cps.items() if isinstance(n, int)}
            for kata, cps in data.items() if isinstance(cps, dict)}


def set_hints_shown(kata: str, checkpoint: str, tiers: int) -> None:
    data = hints_shown()
    data.setdefault(kata, {})[checkpoint] = tiers
    write_json(hints_path(), data)


def forget_hints(kata: str) -> None:
    data = hints_shown()
    if data.pop(kata, None) is not None:
        write_json(hints_path(), data)


# -- the last run -------------------------------------------------------------------

def last_run_path() -> Path:
    return progress_dir() / "last_run.json"


def last_run() -> dict[str, dict]:
    """kata or milestone id -> {"state", "summary", "done", "total", "impl", "time"}."""
    data = read_json(last_run_path(), {})
    return data if isinstance(data, dict) else {}


def update_last_run(entries: dict[str, dict]) -> None:
    data = last_run()
    data.update(entries)
    write_json(last_run_path(), data)

"""The leaderboard: rank a workshop's participants from their result files.

    python scoreboard.py leaderboard FILES... [--kata KATA] [--html OUT [--refresh SECONDS]]
    python scoreboard.py leaderboard FILES... --event digits-cnn [--html OUT [--refresh SECONDS]]

Each FILE is a result file (docs/result-format.md; `python scoreboard.py --json --out
results/ada.json` writes one), or a folder whose `*.json` files are all read. The board
ranks participants by checkpoints done (over every kata in the file, or only KATA's
with --kata), then by the time they took to reach them, then by the order the files
were given (a folder's files in name order): ties keep that order, and share a rank.

With --event, the board is the capstone's instead: the files are the results `python
scoreboard.py capstone verify SUBMISSION --out FILE` writes (tinytorch-capstone-result), and
participants are ranked by the score the verifier measured, highest first, with their
accuracy, bytes and latency ratio beside it (a result over budget scores 0; a rejected one is
skipped with the verifier's reason). Kata results are skipped on that board, and capstone
results on the others, each named with the reason.

The time runs from the earliest clock start (`python scoreboard.py start KATA`) among
those katas to the latest first-green of their done checkpoints. A participant has no
time, and is placed after everyone with the same count who has one, when no clock was
started, when a done checkpoint has no first-green time, or when the clock was started
after the last checkpoint went green. The hints column adds up the hint tiers shown for
those katas' checkpoints.

Every file is checked before it counts. A file that is missing, not a regular file,
larger than MAX_BYTES, not UTF-8, not JSON (truncated, NaN, Infinity, numbers too big
to be real, nesting too deep), or not a valid result (harness.grades.validate_result)
is named with the reason on stderr, and skipped; the page names it too, by its file
name alone and the kind of problem (no folders, no parser's details). A result of the
reference implementation is skipped too: it says nothing about a participant. Nothing
in a file is ever run; names are shown as text (control characters replaced, long
names clipped) and escaped in the HTML. When one participant has several files, the
newest (by `created_at`; the later file on a tie) is ranked and the others are listed
as skipped.

The board is printed as a table. `--html OUT` also writes one self-contained page (no
scripts, no external files) in large type for a projector, written whole through a
temporary file; with more than a dozen participants the first ten keep the large type
and the rest follow in compact columns, so that sixty fit a 1280x800 projector.
`--refresh SECONDS` makes the browser reload it that often. Regenerate
it in a loop while the workshop runs, for example:

    while true; do python scoreboard.py leaderboard results/ --html board.html --refresh 10; sleep 10; done

Exit status: 0 when at least one participant is ranked, 1 when no file was valid (the
page is still written, saying so), 2 for a usage error (an unknown --kata, say).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import stat
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness import manifest as manifest_module
from harness import progress
from harness.grades import validate_result
from harness.runs import find_target

MAX_BYTES = 1_000_000  # a real result file for every kata is a few tens of kilobytes
MAX_DIGITS = 15  # no count in a real result file comes near this many digits
NAME_WIDTH = 40  # characters of a name shown in the text table
PAGE_NAME_WIDTH = 60  # and in the page
REASON_WIDTH = 160
# The page runs nothing and loads nothing: its only style is inline.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


class BadFile(Exception):
    """A file that cannot be ranked; the message says why, `brief` (when given) says it for the room."""

    def __init__(self, reason: str, brief: str = ""):
        super().__init__(reason)
        self.brief = brief


@dataclass
class Entry:
    """One participant's line on the board."""
    participant: str
    source: str  # the file, as shown
    created_at: datetime
    done: int
    total: int | None  # None: the chosen kata is not in this file
    seconds: float | None  # None: no time is known
    hints: int
    score: float | None = None  # a capstone result's score (then done, total and seconds are not used)
    measured: dict | None = None  # and what the verifier measured

    @property
    def key(self) -> tuple:
        """Sort key: more checkpoints first, then a known time, then the shorter time; a capstone's higher score first."""
        if self.score is not None:
            return (-self.score, False, 0.0)
        return (-self.done, self.seconds is None, self.seconds or 0.0)


@dataclass
class Skipped:
    source: str  # the file as given: shown on the terminal, never on the page
    reason: str
    brief: str = ""  # the reason as the room may see it; default: the reason up to its first ": "

    @property
    def for_the_room(self) -> tuple[str, str]:
        """(file name, reason) without the folders the file is in or a parser's details."""
        return Path(self.source).name, self.brief or self.reason.split(": ", 1)[0]


# -- text that is safe to show ------------------------------------------------------

def shown(text: str, width: int | None = None) -> str:
    """`text` on one line, with control, format and unpaired surrogate characters replaced
    (they could move a terminal's cursor, reorder a line or fail to encode), clipped to width."""
    if width is not None:
        text = text[:4 * width]  # a megabyte of name need not all be cleaned to show forty characters
    text = " ".join(text.split())
    text = "".join("\ufffd" if unicodedata.category(c).startswith("C") and c not in "\u200c\u200d" else c
                   for c in text)
    if width is not None and len(text) > width:
        text = text[:width - 1] + "…"
    return text


def _say(text: str, stream) -> None:
    """Print, replacing what the stream's encoding cannot show instead of failing."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    stream.write(text.encode(encoding, "replace").decode(encoding) + "\n")


# -- reading one file ------------------------------------------------------------------

def result_paths(items: list[str]) -> tuple[list[Path], list[Skipped]]:
    """The files to read, in order (each FILE as given, each folder's *.json by name, a
    file named twice once), and the folders that could not be listed."""
    paths, unlisted = [], []
    for item in items:
        path = Path(item)
        if not path.is_dir():
            paths.append(path)
            continue
        try:
            paths.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and not p.name.startswith(".")))
        except OSError as error:
            unlisted.append(Skipped(shown(item), f"a folder that cannot be listed ({error.strerror or error})"))
    once, seen = [], set()
    for path in paths:
        if os.path.abspath(path) not in seen:
            seen.add(os.path.abspath(path))
            once.append(path)
    return once, unlisted


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a result file can hold")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise ValueError(f"an integer of {digits} digits is too large")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(descriptor, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_result(path: Path, event: str | None = None) -> dict:
    """The result in `path`, checked (a capstone result of `event` when one is given); raises BadFile saying why not."""
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer; it is refused below
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BadFile("no such file") from None
    except OSError as error:
        raise BadFile(f"cannot be opened ({error.strerror or error})") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise BadFile("a folder, not a result file" if stat.S_ISDIR(info.st_mode) else "not a regular file")
        if info.st_size > MAX_BYTES:
            raise BadFile(f"too large ({info.st_size} bytes; a result file is at most {MAX_BYTES})")
        raw = _read_at_most(descriptor, MAX_BYTES + 1)  # the file may have grown since fstat
    except OSError as error:
        raise BadFile(f"cannot be read ({error.strerror or error})") from None
    finally:
        os.close(descriptor)
    if len(raw) > MAX_BYTES:
        raise BadFile(f"too large (over {MAX_BYTES} bytes)")
    return check_result(parse_json(raw), event)


def parse_json(raw: bytes):
    """`raw` as JSON that could be a result: UTF-8, no NaN or Infinity, no number too big to be
    real, not nested too deeply. Raises BadFile saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadFile(f"not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except RecursionError:
        raise BadFile("nested too deeply to be a result") from None
    except ValueError as error:
        raise BadFile(f"not valid JSON: {error}") from None


def check_result(data, event: str | None = None) -> dict:
    """`data` if it is a valid result of a participant's code (with `event`, a scored capstone result of that
    event); raises BadFile saying why not."""
    capstone_format = isinstance(data, dict) and data.get("format") == "tinytorch-capstone-result"
    if event is not None or capstone_format:
        return check_capstone_result(data, event)
    problems = validate_result(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadFile(f"not a valid result: {problems[0]}{more}")
    if data["impl"] == "reference":
        raise BadFile("a run of the reference implementation, not of a participant's code")
    return data


def check_capstone_result(data, event: str | None) -> dict:
    """`data` if it is a capstone result of `event` that the verifier did not reject; raises BadFile saying why not."""
    from harness import capstone  # numpy and the event's rules: only when a capstone result is met

    if not isinstance(data, dict) or data.get("format") != capstone.RESULT_FORMAT:
        kind = "a kata result" if isinstance(data, dict) and data.get("format") == "tinytorch-result" else "not a result"
        raise BadFile(f"{kind}, not a capstone result of event {event}")
    if event is None:
        raise BadFile(f"a capstone result (event {shown(str(data.get('event')), 40)}): rank it with --event",
                      "a capstone result")
    problems = capstone.validate_result(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadFile(f"not a valid capstone result: {problems[0]}{more}")
    if data["event"] != event:
        raise BadFile(f"a result of event {shown(data['event'], 40)}, not of {event}")
    if data["status"] == capstone.REJECTED:
        reason = data["reasons"][0] if data["reasons"] else "no reason given"
        raise BadFile(f"rejected by the verifier: {shown(reason, REASON_WIDTH)}", "rejected by the verifier")
    return data


# -- one participant's standing ----------------------------------------------------------

def moment(text: str) -> datetime:
    """A result file's time (validated: ISO-8601 ending in Z) as an aware UTC datetime."""
    try:
        when = datetime.fromisoformat(text[:-1])
    except ValueError:
        raise BadFile(f"unreadable time {text!r}") from None
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _time_taken(katas: list[dict]) -> float | None:
    """Seconds from the earliest clock start to the latest first-green of a done checkpoint."""
    starts = [moment(k["started_at"]) for k in katas if k["started_at"]]
    greens = [c["first_green_at"] for k in katas for c in k["checkpoints"] if c["done"]]
    if not starts or not greens or None in greens:
        return None
    seconds = (max(moment(g) for g in greens) - min(starts)).total_seconds()
    return seconds if seconds >= 0 else None


def entry_for(data: dict, source: str, kata: str | None) -> Entry:
    """The board's line for one valid result; with `kata`, only that kata counts. A capstone result's line holds its score."""
    if data["format"] == "tinytorch-capstone-result":
        return Entry(participant=data["participant"].strip(), source=source, created_at=moment(data["created_at"]),
                     done=0, total=None, seconds=None, hints=0, score=float(data["score"]), measured=data["measured"])
    katas = data["katas"] if kata is None else [k for k in data["katas"] if k["id"] == kata]
    done = sum(k["checkpoints_done"] for k in katas)
    return Entry(
        participant=data["participant"].strip(),
        source=source,
        created_at=moment(data["created_at"]),
        done=done,
        total=sum(k["checkpoints_total"] for k in katas) if katas else None,
        seconds=_time_taken(katas) if done else None,
        hints=sum(c["hints_used"] for k in katas for c in k["checkpoints"]),
    )


def same_person(name: str) -> str:
    """A name as it identifies a person: `Ada  LOVELACE ` and `ada lovelace` are one participant."""
    return " ".join(name.split()).casefold()


def keep_newest(entries: list[Entry]) -> tuple[list[Entry], list[Skipped]]:
    """One entry per participant (names compared ignoring case and spacing): the newest file,
    the later one on a tie; the others are skipped."""
    newest: dict[str, Entry] = {}
    for entry in entries:
        held = newest.get(same_person(entry.participant))
        if held is None or entry.created_at >= held.created_at:
            newest[same_person(entry.participant)] = entry
    kept = [e for e in entries if newest[same_person(e.participant)] is e]
    older = [Skipped(e.source, f"an older result for the same participant ({shown(e.participant, NAME_WIDTH)}); "
                               f"{newest[same_person(e.participant)].source} is ranked",
                     f"an older result for the same participant ({shown(e.participant, NAME_WIDTH)})")
             for e in entries if newest[same_person(e.participant)] is not e]
    return kept, older


def rank(entries: list[Entry]) -> list[tuple[int, Entry]]:
    """(rank, entry), best first; equal standings keep the input order and share a rank."""
    ordered = sorted(entries, key=lambda e: e.key)  # sorted() is stable
    ranked = []
    for index, entry in enumerate(ordered):
        same = ranked and ranked[-1][1].key == entry.key
        ranked.append((ranked[-1][0] if same else index + 1, entry))
    return ranked


def gather(items: list[str], kata: str | None, event: str | None = None) -> tuple[list[tuple[int, Entry]], list[Skipped]]:
    """Read every file (or folder) given, skipping the bad ones; the ranking and the skipped files.

    With `event`, the files must be capstone results of that event, ranked by score.
    """
    paths, skipped = result_paths(items)
    entries = []
    for path in paths:
        source = shown(str(path))
        try:
            entries.append(entry_for(read_result(path, event), source, kata))
        except BadFile as error:
            skipped.append(Skipped(source, shown(str(error), REASON_WIDTH), error.brief))
    kept, older = keep_newest(entries)
    return rank(kept), skipped + older


# -- showing it -------------------------------------------------------------------------

def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def checkpoints(entry: Entry) -> str:
    return "not run" if entry.total is None else f"{entry.done}/{entry.total}"


def summary(kata: str | None, ranked: list, skipped: list, event: str | None = None) -> str:
    scope = f"capstone {event}" if event else f"kata {kata}" if kata else "all katas"
    people = f"{len(ranked)} participant" + ("" if len(ranked) == 1 else "s")
    bad = f", {len(skipped)} file{'' if len(skipped) == 1 else 's'} skipped" if skipped else ""
    return f"{scope}: {people}{bad}"


def standing(entry: Entry) -> str:
    """The main column: checkpoints done, or a capstone's score."""
    return f"{entry.score:.1f}" if entry.score is not None else checkpoints(entry)


def capstone_columns(entry: Entry) -> tuple[str, str, str]:
    """A capstone result's accuracy, bytes and latency ratio, as the board shows them."""
    measured = entry.measured
    ratio = "not timed" if measured["latency_ratio"] is None else f"{measured['latency_ratio']:.2f}x"
    return f"{measured['accuracy']:.2%}", f"{measured['bytes']:,}", ratio


def render_text(ranked: list[tuple[int, Entry]], skipped: list[Skipped], kata: str | None,
                event: str | None = None) -> str:
    lines = [f"Leaderboard, {summary(kata, ranked, skipped, event)}", ""]
    if not ranked:
        lines.append("  No valid result file to rank yet.")
    elif event:
        lines.append(f"  {'rank':>4}  {'participant':<{NAME_WIDTH}}  {'score':>7}  {'accuracy':>8}  {'bytes':>7}  "
                     f"{'latency':>9}")
        for place, entry in ranked:
            accuracy, size, ratio = capstone_columns(entry)
            lines.append(f"  {place:>4}  {shown(entry.participant, NAME_WIDTH):<{NAME_WIDTH}}  {standing(entry):>7}  "
                         f"{accuracy:>8}  {size:>7}  {ratio:>9}")
    else:
        lines.append(f"  {'rank':>4}  {'participant':<{NAME_WIDTH}}  {'checkpoints':>11}  {'time':>9}  {'hints':>5}")
        for place, entry in ranked:
            lines.append(f"  {place:>4}  {shown(entry.participant, NAME_WIDTH):<{NAME_WIDTH}}  "
                         f"{checkpoints(entry):>11}  {clock(entry.seconds):>9}  {entry.hints:>5}")
    return "\n".join(lines)


# Up to ONE_TABLE rows the page is one table in large type. With more participants (a room of 60
# on a 1280x800 projector), the first TOP_ROWS keep the large table and the rest follow in compact
# columns, so that everyone is on the screen at once.
ONE_TABLE, TOP_ROWS, REST_ROWS_PER_COLUMN, MAX_COLUMNS = 12, 10, 13, 5

STYLE = """
body { font-family: system-ui, sans-serif; font-size: clamp(16px, 1.9vw, 40px); margin: 1em 3vw;
       background: #fff; color: #111; }
body.many { font-size: clamp(14px, min(2.3vh, 1.5vw), 40px); margin: .6em 2vw; }
h1 { font-size: 1.6em; margin: 0; }
.meta { color: #555; margin: 0 0 1em; }
body.many .meta { margin: 0 0 .4em; }
.clock { font-weight: 700; margin: .2em 0; }
.join { margin: .2em 0 .4em; font-family: ui-monospace, monospace; font-size: .8em; color: #333;
        overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th { text-align: left; font-size: .7em; text-transform: uppercase; letter-spacing: .05em; color: #555;
     border-bottom: 3px solid #111; padding: .2em .4em; }
td { padding: .25em .4em; border-bottom: 1px solid #ddd; white-space: nowrap; overflow: hidden;
     text-overflow: ellipsis; }
body.many td { padding: .12em .4em; }
tbody tr:nth-child(even) { background: #f4f4f4; }
tr.top td { font-weight: 700; }
col.rank { width: 3.5em; } col.done { width: 10em; } col.time { width: 6.5em; } col.hints { width: 4.5em; }
.rank, .time, .hints { text-align: right; }
.rank, .done, .time, .hints { font-variant-numeric: tabular-nums; }
.bar { display: inline-block; width: 5em; height: .45em; margin-left: .5em; vertical-align: middle;
       background: #ddd; }
.bar span { display: block; height: 100%; background: #1a7f37; }
ol.rest { list-style: none; margin: .5em 0 0; padding: 0; column-gap: 1.2em; font-size: .85em;
          column-rule: 1px solid #ddd; }
ol.rest li { display: flex; gap: .45em; break-inside: avoid; padding: .08em .2em; white-space: nowrap;
             border-bottom: 1px solid #eee; }
ol.rest .rank { min-width: 1.8em; color: #555; }
ol.rest .name { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; }
ol.rest .done, ol.rest .time { font-variant-numeric: tabular-nums; }
ol.rest .time { color: #555; }
.cols-4 { columns: 4; } .cols-5 { columns: 5; }
.empty { font-size: 1.3em; color: #555; }
#skipped { margin-top: 2em; font-size: .6em; color: #555; }
#skipped h2 { font-size: 1.2em; margin: 0 0 .3em; }
#skipped li { overflow-wrap: anywhere; }
"""


TABLE_HEAD = """<colgroup><col class="rank"><col class="name"><col class="done"><col class="time"><col class="hints">\
</colgroup>
<thead><tr><th class="rank">#</th><th class="name">Participant</th><th class="done">Checkpoints</th>\
<th class="time">Time</th><th class="hints">Hints</th></tr></thead>"""
CAPSTONE_HEAD = """<colgroup><col class="rank"><col class="name"><col class="done"><col class="time"><col class="time">\
<col class="time"></colgroup>
<thead><tr><th class="rank">#</th><th class="name">Participant</th><th class="done">Score</th>\
<th class="time">Accuracy</th><th class="time">Bytes</th><th class="time">Latency</th></tr></thead>"""


def _capstone_row(place: int, entry: Entry, best: float) -> str:
    e = html.escape
    share = 0 if best <= 0 else round(100 * max(entry.score, 0.0) / best)
    top = ' class="top"' if place <= 3 and entry.score > 0 else ""
    cells = "".join(f'<td class="time">{e(text)}</td>' for text in capstone_columns(entry))
    return (f'<tr{top}><td class="rank">{place}</td>'
            f'<td class="name">{e(shown(entry.participant, PAGE_NAME_WIDTH))}</td>'
            f'<td class="done">{e(standing(entry))}<span class="bar"><span style="width:{share}%"></span></span></td>'
            f'{cells}</tr>')


def _row(place: int, entry: Entry) -> str:
    e = html.escape
    share = 0 if not entry.total else round(100 * entry.done / entry.total)
    top = ' class="top"' if place <= 3 and entry.done else ""
    return (f'<tr{top}><td class="rank">{place}</td>'
            f'<td class="name">{e(shown(entry.participant, PAGE_NAME_WIDTH))}</td>'
            f'<td class="done">{e(checkpoints(entry))}'
            f'<span class="bar"><span style="width:{share}%"></span></span></td>'
            f'<td class="time">{e(clock(entry.seconds))}</td><td class="hints">{entry.hints}</td></tr>')


def _compact(place: int, entry: Entry) -> str:
    """One participant below the top rows: rank, name, checkpoints and time on one short line."""
    e = html.escape
    return (f'<li><span class="rank">{place}</span><span class="name">{e(shown(entry.participant, PAGE_NAME_WIDTH))}'
            f'</span><span class="done">{e(standing(entry))}</span><span class="time">'
            f'{e(capstone_columns(entry)[0] if entry.score is not None else clock(entry.seconds))}</span></li>')


def ranking_html(ranked: list[tuple[int, Entry]]) -> str:
    """The ranking: one table, or with many participants the top rows and compact columns for the rest."""
    if not ranked:
        return '<p class="empty">No valid result file to rank yet.</p>'
    top, rest = (ranked, []) if len(ranked) <= ONE_TABLE else (ranked[:TOP_ROWS], ranked[TOP_ROWS:])
    if ranked[0][1].score is not None:  # a capstone board: scores, not checkpoints
        best = max(entry.score for _, entry in ranked)
        rows = "\n".join(_capstone_row(place, entry, best) for place, entry in top)
        head = CAPSTONE_HEAD
    else:
        rows = "\n".join(_row(place, entry) for place, entry in top)
        head = TABLE_HEAD
    body = f'<table id="ranking">\n{head}\n<tbody>\n{rows}\n</tbody>\n</table>'
    if rest:
        columns = min(MAX_COLUMNS, max(4, math.ceil(len(rest) / REST_ROWS_PER_COLUMN)))
        items = "\n".join(_compact(place, entry) for place, entry in rest)
        body += f'\n<ol id="rest" class="rest cols-{columns}">\n{items}\n</ol>'
    return body


def render_html(ranked: list[tuple[int, Entry]], skipped: list[Skipped], kata: str | None,
                refresh: int | None = None, now: datetime | None = None, heading: str = "Leaderboard",
                lines: tuple[tuple[str, str], ...] = (), event: str | None = None) -> str:
    """One self-contained page: inline style, no scripts, every text from a file escaped.

    `lines` are (class, text) pairs shown under the heading (a live workshop's clock, how to
    join). A skipped file is named without its folders, with the kind of problem, never a
    parser's details.
    """
    e = html.escape
    now = now or datetime.now(timezone.utc)
    reload = f'<meta http-equiv="refresh" content="{int(refresh)}">\n' if refresh else ""
    many = ' class="many"' if len(ranked) > ONE_TABLE else ""
    extra = "".join(f'<p class="{e(kind)}">{e(text)}</p>\n' for kind, text in lines)
    bad = ""
    if skipped:
        items = "\n".join(f"<li><code>{e(name)}</code>: {e(reason)}</li>"
                          for name, reason in (s.for_the_room for s in skipped))
        bad = f'\n<section id="skipped"><h2>Skipped files</h2>\n<ul>\n{items}\n</ul></section>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
{reload}<title>{e(heading)}</title>
<style>{STYLE}</style>
</head>
<body{many}>
<h1>{e(heading)}</h1>
{extra}<p class="meta">{e(summary(kata, ranked, skipped, event))} · updated {now:%H:%M:%S} UTC</p>
{ranking_html(ranked)}{bad}
</body>
</html>
"""


# -- the command line -------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python scoreboard.py leaderboard",
        description="Rank participants by checkpoints done, then by the time they took. "
                    "Bad files are named and skipped.",
        epilog="The result format is described in docs/result-format.md.")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="result files (python scoreboard.py --json --out FILE), or folders of *.json")
    parser.add_argument("--kata", default=None, metavar="KATA",
                        help="rank by this kata (or milestone) alone, e.g. 03 or 03_autograd")
    parser.add_argument("--event", default=None, metavar="EVENT",
                        help="rank capstone results of this event by score instead (digits-cnn; "
                             "python scoreboard.py capstone verify writes them)")
    parser.add_argument("--html", type=Path, default=None, metavar="OUT",
                        help="also write the board as one self-contained HTML page")
    parser.add_argument("--refresh", type=int, default=None, metavar="SECONDS",
                        help="with --html: the page reloads itself this often (for a projector)")
    args = parser.parse_args(argv)
    if args.refresh is not None and (args.html is None or args.refresh < 1):
        parser.error("--refresh needs --html and a whole number of seconds, at least 1")
    if args.event is not None and args.kata is not None:
        parser.error("--event ranks a capstone event and --kata a kata: give one of them")
    if args.event is not None and args.event != "digits-cnn":
        parser.error(f"unknown event {shown(args.event, 40)!r}; the capstone event is digits-cnn")
    return args


def _kata_id(name: str) -> str:
    """The id of the kata or milestone called `name`; KeyError says which exist."""
    try:
        manifest = manifest_module.load()
    except (OSError, manifest_module.ManifestError) as error:
        raise KeyError(f"cannot read the kata manifest {manifest_module.MANIFEST_PATH}: {error}") from None
    return find_target(manifest, name).id


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        kata = _kata_id(args.kata) if args.kata else None
    except KeyError as error:
        _say(str(error.args[0]), sys.stderr)
        return 2
    ranked, skipped = gather(args.files, kata, args.event)
    for bad in skipped:
        _say(f"skipped {bad.source}: {bad.reason}", sys.stderr)
    _say(render_text(ranked, skipped, kata, args.event), sys.stdout)
    if args.html:
        heading = f"Capstone · {args.event}" if args.event else "Leaderboard"
        try:
            progress.write_atomically(args.html, render_html(ranked, skipped, kata, args.refresh, heading=heading,
                                                             event=args.event))
        except OSError as error:
            _say(f"cannot write {shown(str(args.html))}: {error.strerror or error}", sys.stderr)
            return 1
        _say(f"\nWrote {shown(str(args.html))}.", sys.stdout)
    if not ranked:
        _say("No valid result file among those given.", sys.stderr)
        return 1
    return 0

"""The leaderboard: ranking, and what it does with malformed, oversized and hostile files.

Result files are written into a temporary folder from dicts in the documented
format (each checked with validate_result first). The hostile ones are built to
break a careless reader: markup in a name, NaN, numbers with a hundred thousand
digits, deep nesting, binary bytes, a named pipe. The page is also opened in a real
headless Chromium, which must show the ranking and must not have turned a name
into an element.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import leaderboard
from harness.grades import validate_result
from harness.leaderboard import MAX_BYTES, main, read_result
from tests.contract import ROOT, child_environment

# Some tests run the scoreboard (or a browser) in a fresh process: more than a kata test's 10 s on a busy machine.
pytestmark = pytest.mark.timeout(60)

START = datetime(2025, 1, 31, 9, 0, tzinfo=timezone.utc)
SCRIPT_NAME = "<script>document.title='pwned'</script>"
IMG_NAME = "<img src=x onerror=\"document.title='pwned'\">"


@pytest.fixture(autouse=True)
def _progress_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_PROGRESS_DIR", str(tmp_path / "progress"))


# -- building result files ----------------------------------------------------------------

def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def kata(kata_id: str, greens: list[float], total: int = 6, clock: bool = True, hints: tuple = ()) -> dict:
    """A kata whose first len(greens) checkpoints are done, green `greens` minutes after START."""
    checkpoints = []
    for index in range(total):
        done = index < len(greens)
        checkpoints.append({"name": f"step{index}", "done": done, "tests_passed": 3 if done else 1,
                            "tests_total": 3, "weight": 1.0, "first_green_at": at(greens[index]) if done else None,
                            "hints_used": hints[index] if index < len(hints) else 0})
    state = "done" if len(greens) == total else "in progress" if greens else "not started"
    return {"id": kata_id, "kind": "kata", "title": kata_id.split("_", 1)[1].title(), "state": state,
            "reason": None, "checkpoints_done": len(greens), "checkpoints_total": total,
            "started_at": at(0) if clock else None,
            "elapsed_seconds": 60.0 * max(greens) if clock and greens else None, "checkpoints": checkpoints}


def result(participant: str, *katas: dict, created: float = 60, impl: str = "student") -> dict:
    checkpoints = [c for k in katas for c in k["checkpoints"]]
    data = {"format": "tinytorch-result", "version": 1, "participant": participant, "created_at": at(created),
            "commit": None, "impl": impl, "katas": list(katas), "capabilities": [],
            "total": {"checkpoints_done": sum(k["checkpoints_done"] for k in katas),
                      "checkpoints_total": sum(k["checkpoints_total"] for k in katas),
                      "score": float(sum(c["done"] for c in checkpoints)), "max_score": float(len(checkpoints))}}
    assert validate_result(data) == [], validate_result(data)
    return data


def text_of(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False)


VALID = result("Ada", kata("01_tensor", [5, 10, 15]))


def _with_huge_int() -> str:
    return text_of(VALID).replace('"checkpoints_done": 3', '"checkpoints_done": 1' + "0" * 100_000, 1)


# name -> (contents, the reason it is skipped for)
BAD_FILES = {
    "malformed.json": (b'{"format": "tinytorch-result", version: 1}', "not valid JSON"),
    "truncated.json": (text_of(VALID)[:300].encode(), "not valid JSON"),
    "empty.json": (b"", "not valid JSON"),
    "oversized.json": (text_of(VALID).encode() + b" " * MAX_BYTES, "too large"),
    "wrong_types.json": (text_of(VALID).replace('"checkpoints_done": 3', '"checkpoints_done": "3"').encode(),
                         "'checkpoints_done' should be a count"),
    "huge_int.json": (_with_huge_int().encode(), "100001 digits is too large"),
    "big_int.json": (text_of(VALID).replace('"tests_total": 3', '"tests_total": 3000000000000000000').encode(),
                     "19 digits is too large"),
    "huge_float.json": (text_of(VALID).replace('"elapsed_seconds": 900.0', '"elapsed_seconds": 1e999').encode(),
                        "too large"),
    "nan.json": (text_of(VALID).replace('"elapsed_seconds": 900.0', '"elapsed_seconds": NaN').encode(),
                 "NaN is not a number"),
    "infinity.json": (text_of(VALID).replace('"weight": 1.0', '"weight": -Infinity', 1).encode(),
                      "-Infinity is not a number"),
    "deep.json": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    "binary.json": (bytes(range(256)) * 64, "not UTF-8"),
    "latin1.json": (text_of(result("Jos\u00e9", kata("01_tensor", [5]))).encode("latin-1"), "not UTF-8"),
    "list.json": (b"[1, 2, 3]", "a result is a JSON object"),
    "other_format.json": (b'{"format": "something-else", "version": 1}', "'format' should be"),
    "version_2.json": (text_of(VALID).replace('"version": 1', '"version": 2').encode(), "knows version 1"),
    "lying_total.json": (text_of(VALID | {"total": VALID["total"] | {"checkpoints_done": 30}}).encode(),
                         "the katas add up to"),
    "markup_type.json": (text_of(VALID).replace('"participant": "Ada"', f'"participant": [{json.dumps(SCRIPT_NAME)}]')
                         .encode(), "'participant' should be a non-empty string"),
    "reference.json": (text_of(result("Instructor", kata("01_tensor", [1, 2, 3, 4, 5, 6]), impl="reference")).encode(),
                       "reference implementation"),
}


def write(folder: Path, name: str, data) -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else text_of(data).encode("utf-8"))
    return path


# -- reading one file ---------------------------------------------------------------------

def test_the_fixtures_change_what_they_mean_to():
    """Each bad file differs from the valid one (a replace() that matched nothing would not)."""
    valid = text_of(VALID).encode()
    for name, (contents, _) in BAD_FILES.items():
        assert contents != valid, name


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_refused_with_its_reason(tmp_path, name):
    contents, reason = BAD_FILES[name]
    with pytest.raises(leaderboard.BadFile, match=re.escape(reason)):
        read_result(write(tmp_path, name, contents))


def test_a_valid_file_is_read(tmp_path):
    assert read_result(write(tmp_path, "ada.json", VALID))["participant"] == "Ada"


def test_missing_files_folders_and_pipes_are_refused_without_waiting(tmp_path):
    with pytest.raises(leaderboard.BadFile, match="no such file"):
        read_result(tmp_path / "nobody.json")
    with pytest.raises(leaderboard.BadFile, match="a folder"):
        read_result(tmp_path)
    os.mkfifo(tmp_path / "pipe.json")  # opening it for reading would wait forever for a writer
    with pytest.raises(leaderboard.BadFile, match="not a regular file"):
        read_result(tmp_path / "pipe.json")


# -- ranking ------------------------------------------------------------------------------------

# Twelve participants and everything that decides their order. Listed in input order.
FIELD = [
    ("ada.json", result("Ada Lovelace", kata("01_tensor", [5, 10, 15, 20, 25, 30], hints=(0, 2, 1)))),
    ("barbara.json", result("Barbara Liskov", kata("01_tensor", [3, 6, 9, 12], clock=False))),
    ("alan.json", result("Alan Turing", kata("01_tensor", [4, 8, 12, 16]))),
    ("grace.json", result("Grace Hopper", kata("01_tensor", [4, 8, 12, 16, 20, 25]))),
    ("edsger.json", result("Edsger Dijkstra", kata("01_tensor", [2, 4, 6, 16]))),  # ties Alan: 4 in 16 min
    ("script.json", result(SCRIPT_NAME, kata("01_tensor", [10, 20]))),
    ("img.json", result(IMG_NAME, kata("01_tensor", [30]))),
    ("late_clock.json", result("Ken Thompson", kata("01_tensor", [2, 4, 6, 8, 9]) | {"started_at": at(10)})),
    ("frances.json", result("Frances Allen", kata("01_tensor", [5, 10, 15, 20, 21]))),
    ("katherine.json", result("Katherine Johnson", kata("01_tensor", []))),
    ("linus.json", result("Linus", kata("01_tensor", [1, 2, 3, 4, 5, 6]), created=30)),  # replaced below
    ("margaret.json", result("Margaret Hamilton", kata("01_tensor", [5, 10, 15, 20, 22]))),
    ("linus_again.json", result("linus ", kata("01_tensor", [1, 2]), created=90)),  # newer: this one counts
]

# (rank, participant, checkpoints, time, hints), best first
EXPECTED = [
    (1, "Grace Hopper", "6/6", "0:25:00", 0),
    (2, "Ada Lovelace", "6/6", "0:30:00", 3),
    (3, "Frances Allen", "5/6", "0:21:00", 0),
    (4, "Margaret Hamilton", "5/6", "0:22:00", 0),
    (5, "Ken Thompson", "5/6", "–", 0),  # the clock was started after the last green
    (6, "Alan Turing", "4/6", "0:16:00", 0),
    (6, "Edsger Dijkstra", "4/6", "0:16:00", 0),  # a tie keeps the input order and shares the rank
    (8, "Barbara Liskov", "4/6", "–", 0),  # no clock started: after everyone with 4 and a time
    (9, "linus", "2/6", "0:02:00", 0),
    (10, SCRIPT_NAME, "2/6", "0:20:00", 0),
    (11, IMG_NAME, "1/6", "0:30:00", 0),
    (12, "Katherine Johnson", "0/6", "–", 0),
]
# the text table clips long names
EXPECTED_TEXT = [(place, leaderboard.shown(name, leaderboard.NAME_WIDTH), *rest) for place, name, *rest in EXPECTED]
BAD_NAMES = ["binary.json", "deep.json", "huge_int.json", "malformed.json", "nan.json", "oversized.json",
             "reference.json", "truncated.json", "wrong_types.json"]


@pytest.fixture
def workshop(tmp_path) -> Path:
    """A results folder: the twelve participants (one twice) and the bad files, interleaved."""
    folder = tmp_path / "results"
    folder.mkdir()
    paths = []
    for index, (name, data) in enumerate(FIELD):
        paths.append(write(folder, name, data))
        if index < len(BAD_NAMES):
            paths.append(write(folder, BAD_NAMES[index], BAD_FILES[BAD_NAMES[index]][0]))
    folder.joinpath("order.txt").write_text("\n".join(str(p) for p in paths), encoding="utf-8")
    return folder


def given(folder: Path) -> list[str]:
    return folder.joinpath("order.txt").read_text(encoding="utf-8").splitlines()


def table_rows(text: str) -> list[tuple]:
    """(rank, participant, checkpoints, time, hints) from the printed table."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "participant"])
    rows = []
    for line in lines[header + 1:]:
        if not line.strip():
            break
        place, rest = line.split(None, 1)
        checkpoints, time, hints = rest[leaderboard.NAME_WIDTH:].strip().rsplit(None, 2)  # "not run" has a space
        name = rest[:leaderboard.NAME_WIDTH].strip()
        rows.append((int(place), name, checkpoints, time, int(hints)))
    return rows


def test_the_board_ranks_the_field_and_names_every_bad_file(workshop, tmp_path, capsys):
    page = tmp_path / "board.html"
    assert main([*given(workshop), "--html", str(page)]) == 0
    out, err = capsys.readouterr()
    assert table_rows(out) == EXPECTED_TEXT
    assert "10 files skipped" in out  # the bad ones and Linus's older file
    skipped_lines = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert [Path(line.split()[1].rstrip(":")).name for line in skipped_lines] == BAD_NAMES + ["linus.json"]
    for line in skipped_lines:
        name = Path(line.split()[1].rstrip(":")).name
        if name in BAD_FILES:
            assert BAD_FILES[name][1] in line, line
    assert "linus_again.json is ranked" in err
    assert "Traceback" not in err


def test_a_folder_gives_its_json_files_in_name_order_each_once(workshop):
    ranked, skipped = leaderboard.gather([str(workshop), str(workshop / "alan.json"), str(workshop / "nan.json")], None)
    # by name, alan.json comes before edsger.json: the tie is unchanged
    assert [(place, entry.participant) for place, entry in ranked] == [(r[0], r[1].strip()) for r in EXPECTED]
    assert {Path(s.source).name for s in skipped} == set(BAD_NAMES) | {"linus.json"}


def test_input_order_decides_a_tie(tmp_path):
    first = write(tmp_path, "a.json", result("Edsger", kata("01_tensor", [1, 2])))
    second = write(tmp_path, "b.json", result("Alan", kata("01_tensor", [1, 2])))
    for order in ([first, second], [second, first]):
        ranked, _ = leaderboard.gather([str(p) for p in order], None)
        assert [e.source for _, e in ranked] == [str(p) for p in order]
        assert [place for place, _ in ranked] == [1, 1]


def test_the_newest_file_of_a_participant_counts_even_when_it_is_worse(tmp_path):
    newer = write(tmp_path, "a.json", result("Ada", kata("01_tensor", [1]), created=120))
    older = write(tmp_path, "b.json", result("ADA", kata("01_tensor", [1, 2, 3]), created=60))
    ranked, skipped = leaderboard.gather([str(newer), str(older)], None)
    assert [(e.participant, e.done) for _, e in ranked] == [("Ada", 1)]
    assert [s.source for s in skipped] == [str(older)]


def test_kata_ranks_one_kata_alone(tmp_path, capsys):
    fast = write(tmp_path, "fast.json", result("Fast", kata("01_tensor", [1, 2, 3, 4, 5, 6]),
                                                 kata("02_activations", [10, 20], total=7)))
    keen = write(tmp_path, "keen.json", result("Keen", kata("01_tensor", [5, 6]),
                                                 kata("02_activations", [1, 2, 3], total=7, hints=(3, 3))))
    late = write(tmp_path, "late.json", result("Late", kata("01_tensor", [1, 2, 3])))
    assert [e.participant for _, e in leaderboard.gather([str(fast), str(keen), str(late)], None)[0]] == \
        ["Fast", "Keen", "Late"]
    assert main([str(fast), str(keen), str(late), "--kata", "2"]) == 0
    out = capsys.readouterr().out
    assert "kata 02_activations" in out
    assert table_rows(out) == [(1, "Keen", "3/7", "0:03:00", 6), (2, "Fast", "2/7", "0:20:00", 0),
                               (3, "Late", "not run", "–", 0)]


def test_an_unknown_kata_is_a_usage_error(tmp_path, capsys):
    assert main([str(write(tmp_path, "a.json", VALID)), "--kata", "99_nothing"]) == 2
    assert "no kata or milestone called '99_nothing'" in capsys.readouterr().err


def test_no_valid_file_exits_1_and_still_writes_the_page(tmp_path, capsys):
    page = tmp_path / "board.html"
    bad = write(tmp_path, "bad.json", b"{")
    assert main([str(bad), str(tmp_path / "missing.json"), "--html", str(page)]) == 1
    out, err = capsys.readouterr()
    assert "No valid result file to rank yet." in out
    assert "skipped" in err and "bad.json" in err and "missing.json: no such file" in err
    assert "No valid result file to rank yet." in page.read_text(encoding="utf-8")


def test_control_characters_and_lone_surrogates_cannot_reach_the_terminal(tmp_path, capsys):
    sneaky = result("Eve\x1b[2J\u202e", kata("01_tensor", [1]))
    surrogate = text_of(result("Mallory", kata("01_tensor", [2]))).replace("Mallory", "\\ud800Mallory")
    long_name = result("L" + "o" * 5000 + "ng", kata("01_tensor", [3]))
    files = [write(tmp_path, "eve.json", sneaky), write(tmp_path, "mallory.json", surrogate.encode()),
             write(tmp_path, "long.json", long_name), write(tmp_path, "bad\x1b[31m.json", b"{")]
    assert main([*map(str, files), "--html", str(tmp_path / "page.html")]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\u202e" not in out + err
    names = [row[1] for row in table_rows(out)]
    assert names == ["Eve\ufffd[2J\ufffd", "\ufffdMallory", "L" + "o" * (leaderboard.NAME_WIDTH - 2) + "…"]
    assert "/bad\ufffd[31m.json: not valid JSON" in err
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "\x1b" not in page and "o" * 100 not in page


def test_a_time_with_an_offset_does_not_crash_the_board(tmp_path):
    odd = result("Odd", kata("01_tensor", [1, 2]) | {"started_at": "2025-01-31T10:00:00+01:00Z"})
    ranked, skipped = leaderboard.gather([str(write(tmp_path, "odd.json", odd))], None)
    assert skipped == [] and leaderboard.clock(ranked[0][1].seconds) == "0:02:00"


def test_the_command_line_runs_through_scoreboard_py(workshop, tmp_path):
    page = tmp_path / "out" / "board.html"
    done = subprocess.run([sys.executable, "scoreboard.py", "leaderboard", str(workshop), "--html", str(page),
                           "--refresh", "15"], cwd=ROOT, env=child_environment(), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "skipped" in done.stderr
    assert table_rows(done.stdout) == EXPECTED_TEXT
    assert '<meta http-equiv="refresh" content="15">' in page.read_text(encoding="utf-8")
    assert sorted(p.name for p in page.parent.iterdir()) == ["board.html"]  # no temporary file left


def test_refresh_needs_html_and_a_positive_period(tmp_path, capsys):
    for extra in (["--refresh", "10"], ["--html", str(tmp_path / "p.html"), "--refresh", "0"]):
        with pytest.raises(SystemExit) as stop:
            main([str(tmp_path / "a.json"), *extra])
        assert stop.value.code == 2
    assert "--refresh needs --html" in capsys.readouterr().err


# -- the page -------------------------------------------------------------------------------------

SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "thead", "tbody", "tr",
             "th", "td", "span", "section", "ul", "li", "code", "colgroup", "col"}


class Page(HTMLParser):
    """Every element of a page, and the text of its ranking's cells, row by row."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.rows, self.title, self._cell, self._in_title = [], [], [], "", None, False
        self.compact_names, self._name = [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "span" and ("class", "name") in attrs:  # a participant in the compact columns
            self._name = ""
        self.attributes += [name for name, _ in attrs]
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = ""
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        if tag == "span" and self._name is not None:
            self.compact_names.append(self._name)
            self._name = None
        if tag == "td":
            self.rows[-1].append(self._cell)
            self._cell = None
        self._in_title = False

    def handle_data(self, data):
        if self._name is not None:
            self._name += data
        if self._cell is not None:
            self._cell += data
        if self._in_title:
            self.title += data

    @property
    def ranking(self) -> list[tuple]:
        return [(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in self.rows if r]


def test_the_page_is_self_contained_and_shows_every_name_as_text(workshop, tmp_path):
    page_path = tmp_path / "board.html"
    assert main([*given(workshop), "--html", str(page_path)]) == 0
    text = page_path.read_text(encoding="utf-8")
    page = Page(text)
    assert page.ranking == EXPECTED
    assert set(page.tags) <= SAFE_TAGS  # no script, img, link, iframe: nothing to load or run
    assert not [a for a in page.attributes if a.startswith("on") or a in ("src", "href")]
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    assert "refresh" not in text
    assert 'id="skipped"' in text and all(name in text for name in BAD_NAMES)


def test_the_page_names_a_skipped_file_without_its_folder_or_the_parsers_details(workshop, tmp_path):
    page_path = tmp_path / "board.html"
    assert main([str(workshop), "--html", str(page_path)]) == 0
    text = page_path.read_text(encoding="utf-8")
    assert str(workshop) not in text and str(tmp_path) not in text
    assert "Expecting" not in text and "(char " not in text  # json's own words stay on the terminal
    assert "<code>malformed.json</code>: not valid JSON</li>" in text
    assert "<code>linus.json</code>: an older result for the same participant (Linus)</li>" in text


def test_sixty_participants_are_all_on_the_page_the_first_ten_in_large_type(tmp_path):
    folder = tmp_path / "room"
    folder.mkdir()
    for number in range(60):
        write(folder, f"p{number:02d}.json", result(f"Participant {number:02d}", kata("01_tensor", [1 + number])))
    page_path = tmp_path / "board.html"
    assert main([str(folder), "--html", str(page_path)]) == 0
    page = Page(page_path.read_text(encoding="utf-8"))
    assert [row[1] for row in page.ranking] == [f"Participant {n:02d}" for n in range(leaderboard.TOP_ROWS)]
    rest = [name for name in page.compact_names]
    assert rest == [f"Participant {n:02d}" for n in range(leaderboard.TOP_ROWS, 60)]


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The page's DOM after a headless Chromium has loaded it (and run whatever it would run)."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()]
    env = child_environment(HOME=profile)  # nothing written outside the temporary folder
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True, env=env, start_new_session=True)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("headless Chromium did not finish within 30 s")
    assert process.returncode == 0 and "<html" in out, f"headless Chromium failed:\n{err[-2000:]}"
    return out


@pytest.mark.timeout(60)
def test_headless_chromium_shows_the_ranking_and_runs_nothing(workshop, tmp_path):
    browser = find_chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium not found, and CI needs it for this check: apt-get install chromium")
        pytest.skip("headless Chromium not found: install it (apt-get install chromium) to run this check")
    page_path = tmp_path / "board.html"
    assert main([*given(workshop), "--html", str(page_path), "--refresh", "3600"]) == 0
    dom = Page(dump_dom(browser, page_path, tmp_path / "profile"))
    assert dom.ranking == EXPECTED
    assert "script" not in dom.tags and "img" not in dom.tags  # the hostile names stayed text
    assert dom.title == "Leaderboard"  # had either name run, it would have changed the title

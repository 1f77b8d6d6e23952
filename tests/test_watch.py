"""Watch mode, run for real: `python scoreboard.py watch 01_tensor` on a copy of the stubs.

Each scenario starts the real command in a subprocess, with TINYTORCH_STUDENT_DIR
pointing at a temporary copy of `tinytorch/` (kata 01 back to its pristine stub),
TINYTORCH_PROGRESS_DIR and TMPDIR in the test's own folder. The scenarios start
together, in threads; each test waits only for its own. The pure pieces (the
clock, save detection, the frame) are checked in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

from harness import manifest as manifest_module
from harness import results, stubs, watch
from harness.grades import validate_result
from harness.results import PASSED, RunResults
from harness.runs import find_target, group_from_results
from tests.contract import shared_bytecode

pytestmark = [pytest.mark.timeout(60), pytest.mark.xdist_group("watch")]

ROOT = manifest_module.ROOT
MANIFEST = manifest_module.parse((ROOT / "katas" / "katas.toml").read_text(encoding="utf-8"))
TENSOR = MANIFEST.katas[0]
NAMES = [c.name for c in TENSOR.checkpoints]


@lru_cache(maxsize=None)
def pristine_stub() -> str:
    return stubs.make_stub(TENSOR.reference_module.read_text(encoding="utf-8"), TENSOR.module)


@dataclass
class Watched:
    """A `watch` process and everything it printed, line by line, as it came."""

    folder: Path
    process: subprocess.Popen
    lines: list = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def student(self) -> Path:
        return self.folder / "tinytorch"

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, after: int = 0, seconds: float = 30) -> int:
        """Wait until `text` is printed (at or after line `after`); return that line's index."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"watch never printed {text!r}; it printed:\n{self.out}")

    def end(self, seconds: float = 20) -> int:
        try:
            code = self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"watch did not end within {seconds} s; it printed:\n{self.out}") from None
        self.reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """Kill watch and the test processes it started (only when a test has already failed)."""
        if self.process.poll() is None:
            for pid in children_of(self.process.pid) if sys.platform.startswith("linux") else []:
                try:
                    os.killpg(pid, signal.SIGKILL)  # each kata run has a process group of its own
                except OSError:
                    pass
            self.process.kill()
            self.process.wait()


STARTED: list[Watched] = []  # every watch started, so none outlives the tests


def start_watch(folder: Path, *args: str, tensor: str | None = None) -> Watched:
    """Start watch on a copy of tinytorch/ whose tensor.py is `tensor` (default: the pristine stub)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "tinytorch", folder / "tinytorch", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "tinytorch" / "tensor.py").write_text(tensor or pristine_stub(), encoding="utf-8")
    (folder / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYTORCH_", "PYTEST_"))}
    env.update(TINYTORCH_NAME="Ada Tester", TINYTORCH_STUDENT_DIR=str(folder / "tinytorch"),
               TINYTORCH_PROGRESS_DIR=str(folder / "progress"), TMPDIR=str(folder / "tmp"))
    shared_bytecode(env)
    process = subprocess.Popen([sys.executable, "scoreboard.py", "watch", *args], cwd=ROOT, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, encoding="utf-8")
    watched = Watched(folder, process)
    STARTED.append(watched)

    def read():
        for line in process.stdout:
            watched.lines.append(line)
    watched.reader = threading.Thread(target=read, daemon=True)
    watched.reader.start()
    return watched


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (Linux, from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(command name)": state, ppid, ...
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # it has ended meanwhile
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def leftovers(folder: Path) -> list[str]:
    """Half-written files (write_json's `.NAME.tmpPID`) and the runs' temporary folders left behind."""
    found = [p for p in folder.rglob("*") if ".tmp" in p.name]
    found += list((folder / "tmp").glob("tinytorch-scoreboard-*"))
    return [str(p.relative_to(folder)) for p in found]


# -- the scenarios, started together -----------------------------------------------------------

def scenario_edit(folder):
    """Save the reference's tensor module over the stub while watching; then Ctrl-C."""
    watched = start_watch(folder, "01_tensor", "--minutes", "2", "--poll", "0.1",
                          "--out", str(folder / "handed-in" / "ada.json"))
    first = watched.wait_for("Status: idle")
    assert f"0/{len(NAMES)}" in watched.out
    saved_at = time.monotonic()
    shutil.copyfile(TENSOR.reference_module, watched.student / "tensor.py")
    watched.wait_for(f"{len(NAMES)}/{len(NAMES)}", after=first + 1)
    latency = time.monotonic() - saved_at
    watched.wait_for("Status: idle", after=first + 1)
    watched.process.send_signal(signal.SIGINT)
    return watched, watched.end(), latency


def scenario_ctrl_c_during_a_run(folder):
    """A learner's infinite loop at import: Ctrl-C while the kata's pytest is stuck in it."""
    watched = start_watch(folder, "tensor", "--minutes", "5", "--kata-timeout", "50",
                          tensor=pristine_stub() + "\nwhile True:\n    pass\n")
    deadline = time.monotonic() + 20
    children = []
    while time.monotonic() < deadline and not children:
        children = [pid for pid in children_of(watched.process.pid) if "pytest" in command_line(pid)]
        time.sleep(0.05)
    assert children, f"the kata's pytest process never started:\n{watched.out}"
    time.sleep(0.3)  # let it get into the loop
    watched.process.send_signal(signal.SIGINT)
    stopped_at = time.monotonic()
    code = watched.end()
    return watched, code, children, time.monotonic() - stopped_at


def scenario_time_up(folder):
    watched = start_watch(folder, "01", "--minutes", "0.04", "--scaffold")
    return watched, watched.end()


SCENARIOS = {name.removeprefix("scenario_"): function for name, function in globals().items()
             if name.startswith("scenario_")}
if not sys.platform.startswith("linux"):  # it finds the kata's process through /proc
    del SCENARIOS["ctrl_c_during_a_run"]


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    pristine_stub()  # once, before the threads start
    pool = ThreadPoolExecutor(max_workers=len(SCENARIOS))
    started = {name: (folder, pool.submit(function, folder))
               for name, function in SCENARIOS.items()
               for folder in [tmp_path_factory.mktemp(name)]}
    yield started
    pool.shutdown(wait=True)
    for watched in STARTED:
        watched.kill()


def outcome(scenarios, name):
    folder, future = scenarios[name]
    return folder, future.result()


def history(folder: Path) -> list[dict]:
    text = (folder / "progress" / "history.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# -- the subprocess checks -----------------------------------------------------------------------

def test_a_save_turns_checkpoints_green_within_a_moment(scenarios):
    folder, (watched, code, latency) = outcome(scenarios, "edit")
    assert code == 0, watched.out
    assert latency < 10, f"the ladder took {latency:.1f} s to show the save"
    out = watched.out
    assert "saved tensor.py; running 01_tensor" in out
    assert f"[##########]  {len(NAMES)}/{len(NAMES)}" in out
    assert "time left 01:5" in out and " of 02:00" in out
    for name in NAMES:
        assert f"[x] {name}" in out and "green at +00:" in out
    assert "Stopped (Ctrl-C)." in out and "Result file:" in out and "ada.json" in out


def test_the_result_file_has_every_first_green_and_is_valid(scenarios):
    folder, (watched, code, _) = outcome(scenarios, "edit")
    result = json.loads((folder / "handed-in" / "ada.json").read_text(encoding="utf-8"))
    assert validate_result(result) == []
    assert result["participant"] == "Ada Tester" and result["impl"] == "student"
    (kata,) = result["katas"]
    assert kata["id"] == TENSOR.id and kata["state"] == "done"
    events = history(folder)
    start = next(e for e in events if e["event"] == "start")
    greens = {e["checkpoint"]: e["time"] for e in events if e["event"] == "green"}
    assert sorted(greens) == sorted(NAMES)
    assert kata["started_at"] == start["time"]
    assert {c["name"]: c["first_green_at"] for c in kata["checkpoints"]} == greens
    assert kata["elapsed_seconds"] is not None and 0 <= kata["elapsed_seconds"] < 60
    assert leftovers(folder) == []


def test_ctrl_c_during_a_run_stops_its_process_and_leaves_a_valid_result(scenarios):
    if not sys.platform.startswith("linux"):
        pytest.skip("finds the child process through /proc")
    folder, (watched, code, children, took) = outcome(scenarios, "ctrl_c_during_a_run")
    assert code == 0, watched.out
    assert took < 10, f"watch took {took:.1f} s to stop"
    assert [pid for pid in children if alive(pid)] == [], "the kata's pytest outlived watch"
    assert "The run in progress was stopped" in watched.out
    result = json.loads((folder / "progress" / "results" / "ada-tester-01_tensor.json").read_text(encoding="utf-8"))
    assert validate_result(result) == []
    assert leftovers(folder) == []
    assert "Traceback" not in watched.out


def test_time_up_ends_the_watch_with_a_summary_and_the_result_file(scenarios):
    folder, (watched, code) = outcome(scenarios, "time_up")
    assert code == 0, watched.out
    assert "Time is up." in watched.out  # (on a busy machine the first run may still be going; it is stopped)
    assert f"0 of {len(NAMES)} checkpoints done" in watched.out
    path = folder / "progress" / "results" / "ada-tester-01_tensor.json"
    assert f"Result file: {path}" in watched.out
    result = json.loads(path.read_text(encoding="utf-8"))
    assert validate_result(result) == [] and result["impl"] == "scaffold"
    assert result["katas"][0]["started_at"] is not None
    assert [e["event"] for e in history(folder)] == ["start"]
    assert leftovers(folder) == []


# -- in-process checks ---------------------------------------------------------------------------

def test_an_unknown_kata_is_refused_with_the_list_of_katas(capsys):
    assert watch.main(["99_nothing"]) == 2
    err = capsys.readouterr().err
    assert "no kata or milestone called '99_nothing'" in err and "01_tensor" in err and "02_activations" in err


@pytest.mark.parametrize("args", [["01", "--minutes", "0"], ["01", "--poll", "-1"], ["01", "--out", "."],
                                  ["01", "--scaffold", "--impl", "reference"]])
def test_bad_options_are_refused(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        watch.main(args)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_clock_reads_minutes_and_seconds():
    assert watch.format_clock(0) == "00:00"
    assert watch.format_clock(59.9) == "00:59"
    assert watch.format_clock(61) == "01:01"
    assert watch.format_clock(3599) == "59:59"
    assert watch.format_clock(3600 + 62) == "1:01:02"
    assert watch.format_clock(-3) == "00:00"


def test_a_save_an_addition_and_a_deletion_are_all_seen(tmp_path):
    (tmp_path / "tensor.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not python\n")
    (tmp_path / "__pycache__").mkdir()
    before = watch.snapshot(tmp_path)
    assert list(before) == ["tensor.py"]
    assert watch.changed_files(before, watch.snapshot(tmp_path)) == []
    info = (tmp_path / "tensor.py").stat()
    (tmp_path / "tensor.py").write_text("x = 2\n")  # same size: only the time tells
    os.utime(tmp_path / "tensor.py", ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    (tmp_path / "notes.txt").write_text("still not python\n")
    (tmp_path / "__pycache__" / "tensor.py").write_text("")
    after = watch.snapshot(tmp_path)
    assert watch.changed_files(before, after) == ["tensor.py"]
    (tmp_path / "layers.py").write_text("")
    (tmp_path / "tensor.py").unlink()
    assert watch.changed_files(after, watch.snapshot(tmp_path)) == ["layers.py", "tensor.py"]


def test_a_participant_name_becomes_a_file_name():
    assert watch.slug("Ada Lovelace") == "ada-lovelace"
    assert watch.slug("  ../Bob's laptop!  ") == "bob-s-laptop"
    assert watch.slug("!!!") == "anonymous"


def test_the_frame_shows_the_clock_the_ladder_and_first_green_times(tmp_path):
    target = find_target(MANIFEST, TENSOR.id)
    run = RunResults("student", groups=[TENSOR.id])
    for name, outcome_ in ((NAMES[0], PASSED), (NAMES[1], results.WRONG)):
        run.tests.append(results.TestResult(f"katas/01_tensor/test_tensor.py::T::test_{name}", TENSOR.id, name,
                                            outcome=outcome_, checks=f"checks {name}", message="expected 1, got 2"))
    session = watch.Session(target, MANIFEST, "student", 2.0, "Ada", tmp_path / "out.json", tmp_path,
                            launched=1000.0, clock_start="2025-01-01T10:00:00Z")
    session.history = [{"event": "start", "kata": TENSOR.id, "time": "2025-01-01T10:00:00Z"},
                       {"event": "green", "kata": TENSOR.id, "checkpoint": NAMES[0], "time": "2025-01-01T10:03:12Z"},
                       {"event": "green", "kata": TENSOR.id, "checkpoint": NAMES[1], "time": "2025-01-01T10:04:00Z"}]
    session.last = group_from_results(target, run, seconds=0.4)
    session.last_finished = "10:05:00"
    frame = watch.render_frame(session, running=False, queued=False, width=78, now=1000.0 + 75.5)
    assert "time left 00:45 of 02:00" in frame
    assert "last run at 10:05:00 took 0.4 s" in frame
    assert f"[x] {NAMES[0]}" in frame and "green at +03:12" in frame
    assert "red again (first green at +04:00)" in frame
    assert f"wrong at {NAMES[1]}" in frame and "expected 1, got 2" in frame
    running = watch.render_frame(session, running=True, queued=True, width=78, now=1000.0 + 200)
    assert "time is up" in running and "running…" in running and "one more run" in running


def test_an_80_by_24_terminal_still_shows_the_next_step_and_its_message(tmp_path):
    """A long message and every checkpoint of the kata: the frame fits 23 rows, next step whole."""
    target = find_target(MANIFEST, TENSOR.id)
    run = RunResults("student", groups=[TENSOR.id])
    message = ("add: 12 of 12 values differ; first at index (0, 0): expected 1.5, got 0.5. " * 3).strip()
    for name in NAMES:
        run.tests.append(results.TestResult(f"katas/01_tensor/test_tensor.py::T::test_{name}", TENSOR.id, name,
                                            outcome=results.WRONG, checks=f"checks {name} " * 6,
                                            message=message))
    session = watch.Session(target, MANIFEST, "student", 20.0, "Ada", tmp_path / "out.json", tmp_path,
                            launched=1000.0)
    session.last = group_from_results(target, run, seconds=0.4)
    session.last_finished = "10:05:00"
    frame = watch.render_frame(session, running=False, queued=False, width=78, now=1010.0, height=23)
    lines = frame.splitlines()
    assert len(lines) <= 23 and all(len(line) <= 78 for line in lines), frame
    flat_frame = " ".join(frame.split())
    assert f"Next step: {TENSOR.id} · {NAMES[0]}" in frame, frame
    assert "expected 1.5, got 0.5" in flat_frame and "hint" in frame and "stuck?" in frame, frame


def test_the_summary_keeps_its_columns_apart_for_a_green_before_the_clock(tmp_path):
    target = find_target(MANIFEST, TENSOR.id)
    session = watch.Session(target, MANIFEST, "student", 2.0, "Ada", tmp_path / "out.json", tmp_path,
                            launched=1000.0, clock_start="2025-01-01T10:00:00Z")
    checkpoints = [{"name": name, "done": True, "first_green_at": "2025-01-01T09:00:00Z", "hints_used": 0}
                   for name in NAMES]
    result = {"katas": [{"elapsed_seconds": None, "checkpoints_done": len(NAMES), "checkpoints_total": len(NAMES),
                         "checkpoints": checkpoints}]}
    lines = watch.summary_lines(session, "Time is up.", False, result, "written")
    row = next(line for line in lines if NAMES[0] in line)
    assert "green before the clock started (2025-01-01T09:00:00Z)  hints used: 0" in row, row

"""The scoreboard, run for real against copies of the repository.

Each scenario copies the harness, the reference and the stubs into a temporary
folder, puts a small synthetic suite in place of the katas' own (one test per
checkpoint of katas 01 and 02, so runs are quick and do not depend on how far the
real suites have grown), breaks the learner's code in one way, and runs
`python scoreboard.py` there. Every scenario starts at once, in parallel; each
test waits only for its own. The rest are quick in-process checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from harness import manifest as manifest_module
from harness import progress, stubs
from harness.grades import build_result, gradescope_results, validate_result
from harness import results
from harness.results import NOT_STARTED, PASSED, WRONG, RunResults
from harness.runs import crash_reason, group_from_results, targets
from harness.scoreboard import bar, render_board
from tests.contract import shared_bytecode

pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("scoreboard")]

ROOT = manifest_module.ROOT
MANIFEST = manifest_module.parse((ROOT / "katas" / "katas.toml").read_text(encoding="utf-8"))
TENSOR, ACTIVATIONS = MANIFEST.katas[0], MANIFEST.katas[1]

# One test per checkpoint: each calls a function the kata's stub leaves unwritten.
EXERCISE = {
    "tensor": ("from tinytorch.tensor import Tensor",
               "assert (Tensor([1.0, 2.0]) + Tensor([3.0, 4.0])).data.tolist() == [4.0, 6.0]"),
    "activations": ("from tinytorch.tensor import Tensor\nfrom tinytorch.activations import relu",
                    "assert relu(Tensor([-1.0, 2.0])).data.tolist() == [0.0, 2.0]"),
}


def synthetic_suite(kata) -> str:
    imports, check = EXERCISE[kata.module]
    parts = ["import pytest", imports, ""]
    for checkpoint in kata.checkpoints:
        parts += [f'@pytest.mark.checkpoint("{checkpoint.name}")',
                  f"class Test_{checkpoint.name}:",
                  f"    def test_{checkpoint.name}(self):",
                  f'        """{kata.module} works, for checkpoint {checkpoint.name}."""',
                  f"        {check}", ""]
    return "\n".join(parts)


def make_copy(where: Path) -> Path:
    """A copy of the repository with the synthetic suites for katas 01 and 02 only."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("harness", "reference", "tinytorch"):
        shutil.copytree(ROOT / folder, where / folder, ignore=ignore)
    for name in ("scoreboard.py", "conftest.py", "pytest.ini"):
        shutil.copy2(ROOT / name, where / name)
    (where / "katas").mkdir()
    shutil.copy2(ROOT / "katas" / "katas.toml", where / "katas" / "katas.toml")
    for kata in (TENSOR, ACTIVATIONS):
        (where / "katas" / kata.id).mkdir()
        (where / "katas" / kata.id / f"test_{kata.module}.py").write_text(synthetic_suite(kata), encoding="utf-8")
    # the learner starts from the pristine stubs, whatever state tinytorch/ is in here
    for kata in (TENSOR, ACTIVATIONS):
        (where / "tinytorch" / f"{kata.module}.py").write_text(pristine_stub(kata), encoding="utf-8")
    return where


@lru_cache(maxsize=None)
def pristine_stub(kata) -> str:
    return stubs.make_stub(kata.reference_module.read_text(encoding="utf-8"), kata.module)


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYTORCH_", "PYTEST_"))}
    env["TINYTORCH_NAME"] = "Ada Tester"
    return shared_bytecode(env)


@dataclass
class Ran:
    args: list
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def scoreboard(copy: Path, *args: str) -> Ran:
    done = subprocess.run([sys.executable, "scoreboard.py", *args], cwd=copy, env=environment(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
    return Ran(list(args), done.returncode, done.stdout, done.stderr)


def flat(text: str) -> str:
    return " ".join(text.split())


# -- the scenarios, started together -------------------------------------------------------

def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def scenario_reference(copy):
    return [scoreboard(copy, "--impl=reference", "--json")]


def scenario_fresh(copy):
    return [scoreboard(copy), scoreboard(copy, "list")]


def scenario_syntax_error(copy):
    _append(copy / "tinytorch" / "tensor.py", "\ndef oops(:\n    pass\n")
    return [scoreboard(copy, "--scaffold")]


def scenario_infinite_loop(copy):
    path = copy / "tinytorch" / "activations.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"^(def relu\(.*\n)", r"\1    while True: pass\n", text, flags=re.M), encoding="utf-8")
    return [scoreboard(copy, "--scaffold", "--kata", "02", "--kata-timeout", "1")]


def scenario_sys_exit(copy):
    _append(copy / "tinytorch" / "activations.py", "\nimport sys\nsys.exit(3)\n")
    return [scoreboard(copy, "--json", "--kata", "02")]


def scenario_os_exit(copy):
    _append(copy / "tinytorch" / "activations.py", "\nimport os\nos._exit(1)\n")
    return [scoreboard(copy, "--kata", "02_activations")]


def scenario_progress(copy):
    """Kata 01 solved: the reference's tensor module stands in for the learner's."""
    shutil.copy2(copy / "reference" / "tinytorch" / "tensor.py", copy / "tinytorch" / "tensor.py")
    first = scoreboard(copy, "--format", "gradescope", "--out", "gradescope.json")
    history = copy / ".progress" / "history.jsonl"
    history_after_first = history.read_text(encoding="utf-8")
    _append(history, "this line is not JSON\n")
    second = scoreboard(copy, "--json", "--kata", "01")
    reset = scoreboard(copy, "reset", "01", "--yes")
    return [first, second, reset, history_after_first]


def scenario_hints(copy):
    runs = [scoreboard(copy, "start", "02")]
    runs += [scoreboard(copy, "hint", "02") for _ in range(3)]
    runs.append(scoreboard(copy, "--json", "--kata", "02"))
    return runs


SCENARIOS = {name.removeprefix("scenario_"): function for name, function in globals().items()
             if name.startswith("scenario_")}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    for kata in (TENSOR, ACTIVATIONS):
        pristine_stub(kata)  # once, before the threads start
    pool = ThreadPoolExecutor(max_workers=len(SCENARIOS))
    started = {}
    for name, function in SCENARIOS.items():
        copy = tmp_path_factory.mktemp(name)
        started[name] = (copy, pool.submit(lambda f=function, c=copy: f(make_copy(c))))
    yield started
    pool.shutdown(wait=True)


def outcome(scenarios, name):
    copy, future = scenarios[name]
    return copy, future.result()


def kata_line(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(label))


# -- the subprocess checks -------------------------------------------------------------------

def test_reference_earns_every_checkpoint_and_records_nothing(scenarios):
    copy, (run,) = outcome(scenarios, "reference")
    assert run.code == 0, run.err
    result = run.json()
    assert validate_result(result) == []
    katas = {k["id"]: k for k in result["katas"]}
    for kata in (TENSOR, ACTIVATIONS):
        assert katas[kata.id]["state"] == "done"
        assert katas[kata.id]["checkpoints_done"] == len(kata.checkpoints)
    assert katas[MANIFEST.katas[2].id]["state"] == "no tests yet"
    assert {"name": "Tensors", "state": "earned"} in result["capabilities"]
    assert result["impl"] == "reference" and result["participant"] == "Ada Tester"
    assert result["commit"] is None  # the copy is not a git repository
    assert not (copy / ".progress").exists(), "a reference run must not record progress"


def test_fresh_clone_shows_nothing_done_and_the_next_step_in_kata_01(scenarios):
    copy, (run, listing) = outcome(scenarios, "fresh")
    assert run.code == 0, run.err
    total = sum(len(k.checkpoints) for k in MANIFEST.katas) + len(MANIFEST.milestones)
    assert f"Total: 0 of {total} checkpoints" in run.out
    assert re.search(rf"\[----------\] +0/{len(TENSOR.checkpoints)}\b", kata_line(run.out, "01 ")), run.out
    assert "needs 01_tensor" in kata_line(run.out, "02 ")
    assert "no tests yet" in kata_line(run.out, "03 ")
    first = TENSOR.checkpoints[0]
    assert f"Next step: 01_tensor · {first.name}" in run.out
    assert flat(first.hints[0]) in flat(run.out)
    assert "python -m pytest katas/01_tensor" in run.out
    assert "not yet available" in run.out
    assert len(run.out.splitlines()) <= 50, "the board should fit on one screen"
    assert listing.code == 0
    assert "not started" in kata_line(listing.out, "01 ") and f"{TENSOR.minutes}" in kata_line(listing.out, "01 ")
    assert "no tests yet" in kata_line(listing.out, "03 ")


def test_a_syntax_error_breaks_only_its_kata(scenarios):
    copy, (run,) = outcome(scenarios, "syntax_error")
    assert run.code == 0, run.err
    line = kata_line(run.out, "01 ")
    assert "broken" in line
    assert "SyntaxError" in run.out and "tinytorch/tensor.py" in run.out
    assert "not started" in kata_line(run.out, "02 "), "the other kata is still scored"
    assert "Next step: 01_tensor is broken" in run.out


def test_an_infinite_loop_is_stopped_by_the_kata_timeout(scenarios):
    copy, (run,) = outcome(scenarios, "infinite_loop")
    assert run.code == 0, run.err
    assert "broken" in kata_line(run.out, "02 ")
    assert "timed out after 1 s" in run.out


def test_sys_exit_at_import_breaks_only_its_kata(scenarios):
    copy, (run,) = outcome(scenarios, "sys_exit")
    assert run.code == 0, run.err
    result = run.json()
    assert validate_result(result) == []
    (activations,) = result["katas"]
    assert activations["state"] == "broken"
    assert "sys.exit(3)" in activations["reason"] and "tinytorch/activations.py" in activations["reason"]


def test_os_exit_breaks_only_its_kata(scenarios):
    copy, (run,) = outcome(scenarios, "os_exit")
    assert run.code == 0, run.err
    assert "broken" in kata_line(run.out, "02 ")
    assert "exit code 1" in run.out


def test_gradescope_export_has_the_documented_fields_and_totals(scenarios):
    copy, (first, *_rest) = outcome(scenarios, "progress")
    assert first.code == 0, first.err
    assert "Next step" in first.out, "with --out the board is still shown"
    data = json.loads((copy / "gradescope.json").read_text(encoding="utf-8"))
    assert set(data) == {"score", "execution_time", "output", "visibility", "tests"}
    assert data["visibility"] == "visible" and isinstance(data["execution_time"], int)
    expected = [f"{kata.id} · {c.name}" for kata in MANIFEST.katas for c in kata.checkpoints]
    expected += [f"{m.id} · {m.id}" for m in MANIFEST.milestones]  # a milestone is one checkpoint
    assert [t["name"] for t in data["tests"]] == expected
    for test in data["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output"}
    tensor = [t for t in data["tests"] if t["name"].startswith("01_tensor")]
    assert all(t["status"] == "passed" and t["score"] == t["max_score"] for t in tensor)
    assert data["score"] == sum(c.weight for c in TENSOR.checkpoints)
    relu = next(t for t in data["tests"] if t["name"] == f"02_activations · {ACTIVATIONS.checkpoints[0].name}")
    assert relu["status"] == "failed" and relu["score"] == 0
    assert flat(ACTIVATIONS.checkpoints[0].hints[0]) in flat(relu["output"])


def test_history_records_each_first_green_once_and_survives_a_corrupt_line(scenarios):
    copy, (first, second, reset, history_after_first) = outcome(scenarios, "progress")
    assert second.code == 0, second.err
    events = [json.loads(line) for line in history_after_first.splitlines()]
    assert sorted(e["checkpoint"] for e in events) == sorted(c.name for c in TENSOR.checkpoints)
    assert all(e["kata"] == TENSOR.id and e["impl"] == "student" and e["time"].endswith("Z") for e in events)
    now = (copy / ".progress" / "history.jsonl").read_text(encoding="utf-8")
    assert now == history_after_first + "this line is not JSON\n", "the history is append-only"
    assert "skipping an unreadable line" in second.err
    result = second.json()
    assert validate_result(result) == []
    times = {e["checkpoint"]: e["time"] for e in events}
    tensor = next(k for k in result["katas"] if k["id"] == TENSOR.id)
    assert {c["name"]: c["first_green_at"] for c in tensor["checkpoints"]} == times


def test_reset_restores_the_stub_and_keeps_a_backup(scenarios):
    copy, (_first, _second, reset, _history) = outcome(scenarios, "progress")
    assert reset.code == 0, reset.out + reset.err
    assert "NotImplementedError" in (copy / "tinytorch" / "tensor.py").read_text(encoding="utf-8")
    backups = list((copy / ".progress" / "backups").glob("tensor-*.py"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == (copy / "reference" / "tinytorch" / "tensor.py").read_bytes()


def test_hints_advance_one_tier_at_a_time_and_only_asked_tiers_count(scenarios):
    """Tier 1 and the lesson are free (the ladder shows them); each `hint` reveals one more tier."""
    copy, (start, *hints, final) = outcome(scenarios, "hints")
    assert start.code == 0 and "clock started" in start.out
    checkpoint = ACTIVATIONS.checkpoints[0]
    for asked, run in enumerate(hints, start=1):
        assert run.code == 0, run.err
        assert "Hint 1 of 3 (free)" in run.out and flat(checkpoint.lesson) in flat(run.out)
        revealed = min(asked, 2) + 1
        for tier in range(2, 4):
            assert (flat(f"Hint {tier} of 3: {checkpoint.hints[tier - 1]}") in flat(run.out)) == (tier <= revealed), (
                asked, tier, run.out)
    assert "last hint" in hints[1].out and "every hint" in hints[2].out
    shown = json.loads((copy / ".progress" / "hints.json").read_text(encoding="utf-8"))
    assert shown == {ACTIVATIONS.id: {checkpoint.name: 2}}
    result = final.json()
    assert validate_result(result) == []
    (activations,) = result["katas"]
    assert activations["checkpoints"][0]["hints_used"] == 2
    assert activations["started_at"] is not None and activations["elapsed_seconds"] is None


# -- in-process checks -------------------------------------------------------------------------

def fake_results(outcomes: dict) -> RunResults:
    """RunResults for kata 01 with one test per checkpoint: {checkpoint: outcome}."""
    run = RunResults("student", groups=[TENSOR.id])
    for name, result in outcomes.items():
        run.tests.append(results.TestResult(f"katas/01_tensor/test_tensor.py::T::test_{name}", TENSOR.id, name,
                                        outcome=result, checks=f"checks {name}", message="expected 1, got 2"))
    return run


def tensor_target():
    return next(t for t in targets(MANIFEST) if t.id == TENSOR.id)


def test_progress_bar_is_never_full_early_nor_empty_late():
    assert bar(0, 6) == "[----------]"
    assert bar(6, 6) == "[##########]"
    assert bar(1, 30) == "[#---------]"
    assert bar(29, 30) == "[#########-]"
    assert bar(0, 0) == "[----------]"


def test_states_and_the_next_step_come_from_the_first_red_test():
    names = [c.name for c in TENSOR.checkpoints]
    run = group_from_results(tensor_target(), fake_results({names[0]: PASSED, names[1]: WRONG}))
    assert (run.done, run.state, run.summary) == (1, "wrong", f"wrong at {names[1]}")
    run = group_from_results(tensor_target(), fake_results({names[0]: PASSED, names[1]: NOT_STARTED}))
    assert (run.state, run.summary) == ("in progress", f"next: {names[1]}")
    board = render_board([run], MANIFEST, "student", 1.0)
    assert f"Next step: 01_tensor · {names[1]}" in board and "expected 1, got 2" in board


def test_result_validator_accepts_built_results_and_names_what_is_wrong():
    names = [c.name for c in TENSOR.checkpoints]
    run = group_from_results(tensor_target(), fake_results({names[0]: PASSED, names[1]: WRONG}))
    history = [{"event": "green", "kata": TENSOR.id, "checkpoint": names[0], "time": "2025-01-01T10:30:00Z"},
               {"event": "start", "kata": TENSOR.id, "time": "2025-01-01T10:00:00Z"}]
    result = build_result([run], MANIFEST, "student", "Ada", history=history, hints={TENSOR.id: {names[1]: 2}},
                          commit="abc123", created_at="2025-01-01T11:00:00Z")
    assert validate_result(result) == []
    (kata,) = result["katas"]
    assert kata["elapsed_seconds"] == 1800.0 and kata["checkpoints"][1]["hints_used"] == 2
    assert result["total"] == {"checkpoints_done": 1, "checkpoints_total": len(names),
                               "score": 1.0, "max_score": float(len(names))}
    broken = json.loads(json.dumps(result))
    broken["total"]["checkpoints_done"] = 5
    broken["katas"][0]["state"] = "finished"
    broken["katas"][0]["checkpoints"][0]["first_green_at"] = "yesterday"
    problems = validate_result(broken)
    assert any("checkpoints_done" in p for p in problems)
    assert any("'state'" in p for p in problems)
    assert any("first_green_at" in p for p in problems)
    assert validate_result({"format": "something else"}) != []


def test_gradescope_scores_by_checkpoint_weight():
    names = [c.name for c in TENSOR.checkpoints]
    run = group_from_results(tensor_target(), fake_results({n: PASSED for n in names[:2]}))
    data = gradescope_results([run], "summary", 1.4)
    assert data["score"] == 2.0 and data["execution_time"] == 1
    assert [t["status"] for t in data["tests"]][:3] == ["passed", "passed", "failed"]


def test_history_reader_skips_corrupt_lines_with_a_warning(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    good = {"event": "green", "kata": "01_tensor", "checkpoint": "creation", "time": "2025-01-01T10:00:00Z",
            "impl": "student"}
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"kata": 3}) + "\n", encoding="utf-8")
    assert progress.read_history(path) == [good]
    assert capsys.readouterr().err.count("skipping an unreadable line") == 2


def test_record_greens_writes_only_first_greens(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_PROGRESS_DIR", str(tmp_path))
    assert len(progress.record_greens([("01_tensor", "creation")], "student", "2025-01-01T10:00:00Z")) == 1
    assert progress.record_greens([("01_tensor", "creation"), ("01_tensor", "shapes")], "scaffold") \
        [0]["checkpoint"] == "shapes"
    assert progress.record_greens([("01_tensor", "matmul")], "reference") == []
    assert len(progress.read_history()) == 2


def test_crash_reasons_name_the_cause():
    assert "SIGSEGV" in crash_reason(-11, "Fatal Python error: Segmentation fault\n")
    assert "os._exit" in crash_reason(1, "")
    assert "while importing the tests" in crash_reason(1, "collecting ... \n")
    internal = ('INTERNALERROR>   File "/x/tinytorch/activations.py", line 12, in <module>\n'
                "INTERNALERROR> SystemExit: 3\nmainloop: caught unexpected SystemExit!\n")
    assert crash_reason(3, internal).startswith("SystemExit: 3")

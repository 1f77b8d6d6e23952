"""The harness itself: manifest validation, stub generation, the implementation switch,
outcome classification, budget helpers, and the ladder a learner sees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness import blas, budgets, stubs
from harness import manifest as manifest_module
from harness.results import BROKEN, NOT_STARTED, WRONG, classify
from tests.contract import ROOT, child_environment, run_suite

MANIFEST = manifest_module.load()
# Several tests here run a kata suite in a fresh process: on a busy machine that can take more
# than the 10 s a kata test gets.
pytestmark = pytest.mark.timeout(60)

# -- manifest ---------------------------------------------------------------------------------

GOOD_KATA = """
[[capability]]
name = "Tensors"
summary = "s"

[[kata]]
id = "01_tensor"
title = "Tensor"
module = "tensor"
requires = []
minutes = 10
capability = "Tensors"

[[kata.checkpoint]]
name = "creation"
goal = "g"
lesson = "Lesson 01, section 'x'"
hints = ["a", "b", "c"]
"""


def test_manifest_parses_the_real_file_in_order():
    ids = [k.id for k in MANIFEST.katas]
    assert ids and ids == sorted(ids)
    assert all(k.number == int(k.id[:2]) for k in MANIFEST.katas)


def test_manifest_accepts_a_minimal_kata():
    assert manifest_module.parse(GOOD_KATA).kata("1").module == "tensor"


@pytest.mark.parametrize("change,message", [
    (('id = "01_tensor"', 'id = "00_tensor"'), "in order"),
    (('id = "01_tensor"', 'id = "1_tensor"'), "two digits"),
    (("lesson = \"Lesson 01, section 'x'\"", 'lesson = "the lesson"'), "section"),
    (('requires = []', 'requires = ["00_nothing"]'), "not an earlier kata"),
    (('capability = "Tensors"\n\n[[kata.checkpoint]]', 'capability = "Magic"\n\n[[kata.checkpoint]]'), "unknown capability"),
    (('hints = ["a", "b", "c"]', 'hints = ["a"]'), "three non-empty tiers"),
    (('hints = ["a", "b", "c"]', 'hints = ["a", "b", "b"]'), "must differ"),
    (('minutes = 10', 'minutes = "ten"'), "'minutes' should be int"),
])
def test_manifest_errors_name_the_entry_and_field(change, message):
    with pytest.raises(manifest_module.ManifestError, match=message):
        manifest_module.parse(GOOD_KATA.replace(*change))


def test_kata_lookup_by_number_name_or_id():
    first = MANIFEST.katas[0]
    assert MANIFEST.kata("1") is first and MANIFEST.kata(first.id) is first
    assert MANIFEST.kata(first.module) is first
    with pytest.raises(KeyError, match="the katas are"):
        MANIFEST.kata("99_nothing")


# -- stub generator -----------------------------------------------------------------------------

REFERENCE = '''"""Doc."""

def double(x):
    """Twice x."""
    # BEGIN SOLUTION creation: return twice `x`
    y = x * 2
    return y
    # END SOLUTION
'''


def test_stub_replaces_each_region_with_a_named_not_implemented_error():
    stub = stubs.make_stub(REFERENCE, "tensor")
    assert 'raise NotImplementedError("01_tensor · creation: return twice `x`")' in stub
    assert "x * 2" not in stub and '"""Twice x."""' in stub and "def double(x):" in stub
    namespace = {}
    exec(compile(stub, "stub", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="01_tensor · creation"):
        namespace["double"](3)


@pytest.mark.parametrize("broken,message", [
    (REFERENCE.replace("    # END SOLUTION\n", ""), "never closed"),
    (REFERENCE.replace("# BEGIN SOLUTION creation: return twice `x`", "# BEGIN SOLUTION creation"), "write markers as"),
    (REFERENCE.replace("creation:", "nosuchcheckpoint:"), "not one of kata 01_tensor's checkpoints"),
    (REFERENCE + "# END SOLUTION\n", "END SOLUTION without a BEGIN"),
])
def test_malformed_regions_are_reported_with_file_and_line(broken, message):
    with pytest.raises(stubs.RegionError, match=message):
        stubs.make_stub(broken, "tensor")


def test_reset_keeps_a_backup_and_asks_first(tmp_path, monkeypatch):
    kata = MANIFEST.katas[0]
    student = tmp_path / "tinytorch"
    student.mkdir()
    (student / f"{kata.module}.py").write_text("# my work\n")
    monkeypatch.setattr(manifest_module, "STUDENT_DIR", student)
    monkeypatch.setenv("TINYTORCH_PROGRESS_DIR", str(tmp_path / "progress"))
    monkeypatch.setattr(manifest_module, "ROOT", tmp_path)
    said = []
    assert stubs.reset_kata(kata.id, confirm=lambda _: "n", out=said.append) is None
    assert (student / f"{kata.module}.py").read_text() == "# my work\n"
    backup = stubs.reset_kata(kata.id, confirm=lambda _: "y", out=said.append)
    assert backup.read_text() == "# my work\n"
    assert "raise NotImplementedError" in (student / f"{kata.module}.py").read_text()


# -- implementation switch ------------------------------------------------------------------------

WHICH_FILES = "import tinytorch.tensor, tinytorch.activations; print(tinytorch.tensor.__file__); print(tinytorch.activations.__file__)"


def _files_served(mode, learner_katas=""):
    code = ("import sys; from harness import implementation; "
            f"implementation.install({mode!r}, [k for k in {learner_katas!r}.split(',') if k]); " + WHICH_FILES)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_environment(), capture_output=True,
                         text=True, check=True).stdout.split()
    return [str(__import__("pathlib").Path(p).relative_to(ROOT)) for p in out]


def test_student_mode_serves_the_learners_files():
    assert _files_served("student") == ["tinytorch/tensor.py", "tinytorch/activations.py"]


def test_reference_mode_serves_the_reference():
    assert _files_served("reference") == ["reference/tinytorch/tensor.py", "reference/tinytorch/activations.py"]


def test_scaffold_serves_the_kata_under_way_from_the_learner_and_the_rest_from_the_reference():
    assert _files_served("scaffold", "02_activations") == ["reference/tinytorch/tensor.py", "tinytorch/activations.py"]


def test_reference_mode_without_a_reference_says_so(tmp_path):
    code = ("from harness import implementation, manifest; from pathlib import Path; "
            f"manifest.REFERENCE_DIR = Path({str(tmp_path / 'none')!r}); implementation.install('reference')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "has none" in done.stderr


# -- outcome classification -------------------------------------------------------------------------


def _raised(error):
    try:
        raise error
    except BaseException as caught:  # noqa: BLE001 - the point is to classify anything
        return caught


def test_a_stub_is_not_started_and_a_prerequisite_stub_says_which_kata():
    outcome, message, _, blocked = classify(_raised(NotImplementedError("01_tensor · creation: x")), "01_tensor")
    assert (outcome, blocked) == (NOT_STARTED, "")
    outcome, _, _, blocked = classify(_raised(NotImplementedError("01_tensor · creation: x")), "03_autograd")
    assert (outcome, blocked) == (NOT_STARTED, "01_tensor")


def test_a_failed_assertion_is_wrong_and_an_exception_is_broken():
    assert classify(_raised(AssertionError("expected 1, got 2")), "01_tensor")[0] == WRONG
    outcome, message, _, _ = classify(_raised(ZeroDivisionError("division by zero")), "01_tensor")
    assert outcome == BROKEN and "ZeroDivisionError" in message


# -- budget helpers ------------------------------------------------------------------------------------


def test_peak_bytes_sees_numpy_allocations():
    peak, result = budgets.peak_bytes(lambda: np.ones(1_000_000))
    assert 8_000_000 <= peak < 8_500_000 and result.size == 1_000_000


def test_time_ratio_tells_a_slower_function_from_its_baseline():
    data = np.ones(100_000)
    # Rounds of about 2 ms each; fifteen of them, so that on a busy machine each side has some
    # rounds that were not interrupted (the minimum is taken from those).
    ratio, _, _ = budgets.time_ratio(lambda: [data.sum() for _ in range(8)], lambda: data.sum(), rounds=15)
    assert ratio > 3, ratio  # eight sums cost clearly more than one


def test_count_calls_counts_and_restores():
    class Box:
        @staticmethod
        def f(x):
            return x

    with budgets.count_calls(Box, "f") as counter:
        Box.f(1), Box.f(2)
    assert counter.calls == 2 and Box.f(3) == 3 and not hasattr(Box.f, "calls")


def test_stop_after_timeout_ends_the_run_at_the_first_infinite_loop(tmp_path):
    """The scoreboard's runs pass --stop-after-timeout: one time limit per kata, not one per looping test."""
    kata = manifest_module.load().kata("02_activations")
    student = tmp_path / "tinytorch"
    student.mkdir()
    text = (manifest_module.STUDENT_DIR / "activations.py").read_text(encoding="utf-8")
    looping = text.replace("def relu(x: Tensor) -> Tensor:\n", "def relu(x: Tensor) -> Tensor:\n    while True: pass\n", 1)
    assert looping != text
    (student / "activations.py").write_text(looping, encoding="utf-8")
    results, completed = run_suite(kata.folder, tmp_path / "results.json",
                                   ["--scaffold", "--stop-after-timeout", "-o", "timeout=1"],
                                   env=child_environment(TINYTORCH_STUDENT_DIR=student), timeout=60)
    assert results is not None, completed.stdout[-2000:]
    outcomes = [t.outcome for t in results.tests]
    assert outcomes[0] == BROKEN and "timed out" in results.tests[0].message
    assert set(outcomes[1:]) == {"not run"}, outcomes
    assert "no more tests" in completed.stdout


# -- the learner's loop: imports that hang, first greens, finishing, locations -----------------------


def _learner_copy(tmp_path, **edits) -> Path:
    """A tinytorch folder of pristine stubs, with `module=(find, replace)` or `module=text` edits."""
    student = tmp_path / "tinytorch"
    stubs.write_stubs(student)
    for module, edit in edits.items():
        path = student / f"{module}.py"
        if isinstance(edit, tuple):
            text = path.read_text(encoding="utf-8")
            assert edit[0] in text, edit[0]
            path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
        else:
            path.write_text(edit, encoding="utf-8")
    return student


def _ladder_run(tmp_path, student, target, *flags, progress=None, timeout=60):
    """A learner's plain pytest run (the ladder, not -v) of `target`, in a fresh process."""
    env = child_environment(TINYTORCH_STUDENT_DIR=student, TINYTORCH_IMPORT_TIMEOUT=2,
                            TINYTORCH_PROGRESS_DIR=progress or tmp_path / "progress")
    return subprocess.run([sys.executable, "-m", "pytest", str(target), "-p", "no:cacheprovider", *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_a_loop_at_module_level_costs_the_kata_one_time_limit_and_names_the_line(tmp_path):
    reference_tensor = (manifest_module.REFERENCE_DIR / "tensor.py").read_text(encoding="utf-8")
    student = _learner_copy(tmp_path, tensor=reference_tensor + "\nwhile True:\n    pass\n")
    lines = reference_tensor.count("\n")
    started = time.monotonic()
    done = _ladder_run(tmp_path, student, ROOT / "katas" / "02_activations")
    assert time.monotonic() - started < 30, "the run should stop after the import time limit"
    assert "BROKEN" in done.stdout and "did not finish in 2 s" in done.stdout, done.stdout[-2000:]
    assert f"tensor.py, line {lines + 2}" in done.stdout and "kata 01_tensor's module" in done.stdout, done.stdout[-2000:]


def test_a_syntax_error_names_the_learners_file_and_line(tmp_path):
    student = _learner_copy(tmp_path, activations=("def relu(x: Tensor) -> Tensor:", "def relu(x: Tensor) -> Tensor"))
    done = _ladder_run(tmp_path, student, ROOT / "katas" / "02_activations")
    assert "BROKEN: importing the tests stopped in" in done.stdout and "activations.py, line" in done.stdout, done.stdout
    assert "SyntaxError" in done.stdout and "could not even be imported" not in done.stdout


def test_plain_pytest_records_first_greens_and_finishing_names_the_next_kata(tmp_path):
    reference = (manifest_module.REFERENCE_DIR / "activations.py").read_text(encoding="utf-8")
    student = _learner_copy(tmp_path, activations=reference)
    progress_dir = tmp_path / "progress"
    done = _ladder_run(tmp_path, student, ROOT / "katas" / "02_activations", "--scaffold", progress=progress_dir)
    assert done.returncode == 0, done.stdout[-2000:]
    events = [json.loads(line) for line in (progress_dir / "history.jsonl").read_text().splitlines()]
    kata = MANIFEST.kata("02_activations")
    assert sorted(e["checkpoint"] for e in events) == sorted(c.name for c in kata.checkpoints)
    assert {e["impl"] for e in events} == {"scaffold"}
    assert f"Kata {kata.id} is done: all {len(kata.checkpoints)} checkpoints are green" in done.stdout
    following = MANIFEST.katas[MANIFEST.katas.index(kata) + 1]
    assert f"Next: kata {following.id}" in done.stdout and f"katas/{following.id} --scaffold" in done.stdout
    again = _ladder_run(tmp_path, student, ROOT / "katas" / "02_activations", "--scaffold", progress=progress_dir)
    assert again.returncode == 0
    assert len((progress_dir / "history.jsonl").read_text().splitlines()) == len(events), "a first green is once"


def test_a_selection_with_k_records_nothing_and_marks_unselected_checkpoints(tmp_path):
    reference = (manifest_module.REFERENCE_DIR / "activations.py").read_text(encoding="utf-8")
    student = _learner_copy(tmp_path, activations=reference)
    progress_dir = tmp_path / "progress"
    done = _ladder_run(tmp_path, student, ROOT / "katas" / "02_activations", "--scaffold", "-k", "sigmoid",
                       progress=progress_dir)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "(no test selected in this run)" in done.stdout and " next" not in done.stdout
    history = progress_dir / "history.jsonl"
    recorded = {json.loads(line)["checkpoint"] for line in history.read_text().splitlines()} if history.exists() else set()
    assert recorded <= {"sigmoid"}, recorded


def test_two_runs_at_once_record_each_first_green_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_PROGRESS_DIR", str(tmp_path / "progress"))
    from concurrent.futures import ThreadPoolExecutor

    from harness import progress

    greens = [("01_tensor", c.name) for c in MANIFEST.katas[0].checkpoints]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: progress.record_greens(greens, "student"), range(16)))
    events = progress.read_history()
    assert sorted((e["kata"], e["checkpoint"]) for e in events) == sorted(greens)


def test_a_later_checkpoints_stub_reached_from_an_earlier_one_is_reported_at_the_test(tmp_path):
    """__init__ that does not unwrap a Tensor sends numpy through __len__/__getitem__ (a later checkpoint)."""
    text = (manifest_module.STUDENT_DIR / "tensor.py").read_text(encoding="utf-8")
    creation = re.findall(r'raise NotImplementedError\("01_tensor · creation: [^"]*"\)', text)
    first, properties = creation[0], creation[1:]
    text = text.replace(first, "self.data = np.asarray(data, dtype=np.float32 if dtype is None else dtype)", 1)
    for line, value in zip(properties, ("shape", "ndim", "size", "dtype", "nbytes")):
        text = text.replace(line, f"return self.data.{value}", 1)
    student = _learner_copy(tmp_path, tensor=text)
    done = _ladder_run(tmp_path, student, ROOT / "katas" / "01_tensor")
    flat = " ".join(done.stdout.split())
    assert "reached code of the later checkpoint shapes" in flat, done.stdout[-3000:]
    assert "wrong at katas/01_tensor/test_tensor.py" in flat


def test_messages_wrap_and_numpy_scalars_read_as_numbers():
    from harness.text import plain_numbers, shorten, wrap

    long = "expected np.float32(1.5), got np.float64(-2.25); " + "rearrange the formula so it never overflows " * 4
    lines = wrap(plain_numbers(long), 60, "    ")
    assert all(len(line) <= 60 for line in lines)
    assert " ".join(" ".join(lines).split()) == " ".join(plain_numbers(long).split())
    assert "expected 1.5, got -2.25" in lines[0]
    short = shorten("test_relu: relu keeps the input's shape and float32 and float64 stay", 40)
    assert len(short) <= 40 and short.endswith("…") and short[:-1] in "test_relu: relu keeps the input's shape and"


def _config(impl="reference", numprocesses=None, source=pytest.Config.ArgsSource.TESTPATHS, xdist=True,
            pdb=False, collect=False):
    from types import SimpleNamespace
    options = {"impl": impl}
    return SimpleNamespace(getoption=lambda name, default=None: options.get(name, default),
                           pluginmanager=SimpleNamespace(hasplugin=lambda name: xdist and name == "xdist"),
                           option=SimpleNamespace(numprocesses=numprocesses, usepdb=pdb, collectonly=collect),
                           args_source=source)


def test_only_the_whole_reference_run_takes_both_cores_by_itself():
    from harness.plugin import _whole_reference_run
    assert _whole_reference_run(_config()) is True
    assert not _whole_reference_run(_config(impl=None))  # a learner's plain `pytest`: one process, the ladder
    assert not _whole_reference_run(_config(impl="scaffold"))
    assert not _whole_reference_run(_config(numprocesses=0))  # -n 0 asks for one process
    assert not _whole_reference_run(_config(numprocesses=4))  # -n given: left as it is
    assert not _whole_reference_run(_config(source=pytest.Config.ArgsSource.ARGS))  # a kata, a file
    assert not _whole_reference_run(_config(xdist=False))  # -p no:xdist
    assert not _whole_reference_run(_config(pdb=True))
    assert not _whole_reference_run(_config(collect=True))


def spin(seconds: float) -> None:
    """Work for `seconds` of this thread's CPU time (budgets time CPU, so a sleep costs them nothing)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_budgets_time_the_threads_cpu_not_the_wall_clock():
    """A function that waits (as a preempted one does) costs a budget nothing; one that works costs its work."""
    if not blas.on_one_thread():
        assert budgets.CLOCK is time.perf_counter  # BLAS was given threads of its own: their work is off this thread
        return
    assert budgets.CLOCK is time.thread_time  # conftest.py gives BLAS one thread
    waiting, working = budgets._best_time(lambda: time.sleep(0.01), 3), budgets._best_time(lambda: spin(0.01), 3)
    assert waiting < 0.005 <= working, f"a 10 ms sleep measured {waiting * 1e3:.2f} ms, 10 ms of work {working * 1e3:.2f} ms"


def test_budget_candidates_loop_their_own_number_of_calls():
    calls = {"slow": 0, "fast": 0}

    def slow():
        calls["slow"] += 1
        spin(0.003)

    def fast():
        calls["fast"] += 1

    timing = budgets.Interleaved(slow, fast, min_seconds=0.002)
    assert timing.candidate_number == 1 and timing.number > 1
    before = dict(calls)
    timing.measure(2)
    assert calls["slow"] - before["slow"] == 2 and calls["fast"] - before["fast"] == 2 * timing.number


def test_budget_patience_is_capped_only_by_a_number(monkeypatch):
    monkeypatch.setenv("TINYTORCH_BUDGET_PATIENCE", "soon")
    with pytest.raises(ValueError, match="TINYTORCH_BUDGET_PATIENCE='soon'"):
        budgets.assert_time_ratio(lambda: None, lambda: None, 1e9, "nothing")
    monkeypatch.setenv("TINYTORCH_BUDGET_PATIENCE", "0")
    started = time.perf_counter()
    with pytest.raises(AssertionError):
        budgets.assert_time_ratio(lambda: spin(0.002), lambda: None, 1.0, "a spin against nothing", rounds=2)
    assert time.perf_counter() - started < 1.0  # no three seconds of patience

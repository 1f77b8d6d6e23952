"""Learners' typical mistakes, each of which some kata test must catch.

`tests/mutants/<module>.toml` lists mistakes as text replacements in the reference
module. Each mutant is applied to a copy of the module, which then stands in for
the learner's file (scaffold mode); the kata's suite must go red.

Each mutant costs a run of its kata's suite in a fresh process. The project's test
command runs a sample, SAMPLE mutants of each kata spread evenly over its file (which
follows the checkpoints), so it stays fast; TINYTORCH_MUTANTS=all runs every one, and
TINYTORCH_MUTANTS=rest the ones the sample leaves out (what `.ci/run` adds).
"""

from __future__ import annotations

import os
import tomllib

import pytest

from harness import manifest as manifest_module
from tests.contract import ROOT, child_environment, in_parallel, run_suite, tail

MANIFEST = manifest_module.load()
# The first test of a kata runs all its mutants (in fresh processes): a longer limit than a kata
# test's. Each kata's mutants share one pytest-xdist worker, so they run once; katas spread over workers.
pytestmark = pytest.mark.timeout(600)
MUTANT_DIR = ROOT / "tests" / "mutants"


def _mutants():
    found = []
    for path in sorted(MUTANT_DIR.glob("*.toml")):
        kata = MANIFEST.kata_for_module(path.stem)
        if kata is None:
            raise ValueError(f"{path.relative_to(ROOT)}: no kata owns module {path.stem!r}")
        for number, mutant in enumerate(tomllib.loads(path.read_text(encoding="utf-8"))["mutant"], start=1):
            found.append((kata, number, mutant))
    return found


SAMPLE = 6


def _chosen(found: list) -> list:
    """The mutants this run checks (TINYTORCH_MUTANTS: sample, the default; all; rest)."""
    which = os.environ.get("TINYTORCH_MUTANTS", "sample").strip() or "sample"
    if which not in ("sample", "all", "rest"):
        raise ValueError(f"TINYTORCH_MUTANTS={which!r}: use sample, all or rest")
    if which == "all":
        return found
    sampled = []
    for kata in dict.fromkeys(k for k, _, _ in found):
        mine = [entry for entry in found if entry[0] == kata]
        picks = {round(i * (len(mine) - 1) / (SAMPLE - 1)) for i in range(SAMPLE)} if len(mine) > SAMPLE \
            else set(range(len(mine)))
        sampled += [entry for index, entry in enumerate(mine) if (index in picks) == (which == "sample")]
    return sampled


ALL_MUTANTS = _mutants()
MUTANTS = _chosen(ALL_MUTANTS)
_runs: dict = {}  # kata id -> {number: (verdict, detail)}, filled once per process


def _run_mutant(entry, folder_root):
    kata, number, mutant = entry
    source = kata.reference_module.read_text(encoding="utf-8")
    if source.count(mutant["find"]) != 1:
        return "bad", f"`find` occurs {source.count(mutant['find'])} times in {kata.reference_module.name}, not once"
    folder = folder_root / f"{kata.module}-{number}"
    folder.mkdir()
    (folder / f"{kata.module}.py").write_text(source.replace(mutant["find"], mutant["replace"]), encoding="utf-8")
    # Every mutant is wrong code: a slow one is failed after half a second over budget, not three.
    env = child_environment(TINYTORCH_STUDENT_DIR=folder, TINYTORCH_BUDGET_PATIENCE="0.5")
    results, completed = run_suite(kata.folder, folder / "results.json", ["--scaffold", "-x"], env=env)
    caught = results is not None and any(t.outcome not in ("passed", "not run") for t in results.tests)
    return ("caught" if caught and completed.returncode != 0 else "missed"), tail(completed, 8)


@pytest.fixture
def kata_mutant_runs(tmp_path_factory, request):
    """The selected mutants of one kata, run once per process (its tests share one xdist worker)."""
    kata = request.node.callspec.params["kata"]
    if kata.id not in _runs:
        root = tmp_path_factory.mktemp(f"mutants-{kata.module}")
        selected = {item.callspec.params["number"] for item in request.session.items
                    if item.originalname == "test_mistake_is_caught" and item.callspec.params["kata"].id == kata.id}
        entries = [entry for entry in MUTANTS if entry[0].id == kata.id and entry[1] in selected]
        verdicts = in_parallel(lambda entry: _run_mutant(entry, root), entries)
        _runs[kata.id] = {number: verdict for (_, number, _), verdict in zip(entries, verdicts)}
    return _runs[kata.id]


def test_every_mutant_still_applies_to_the_reference():
    """Each mistake's `find` occurs exactly once in its module, sampled this run or not (a stale one proves nothing)."""
    stale = []
    for kata, number, mutant in ALL_MUTANTS:
        count = kata.reference_module.read_text(encoding="utf-8").count(mutant["find"])
        if count != 1:
            stale.append(f"{kata.module}.toml #{number} ({mutant['mistake'][:60]}): `find` occurs {count} times")
    assert not stale, "mutants that no longer match the reference:\n" + "\n".join(stale)


def test_every_kata_has_mutants():
    covered = {kata.id for kata, _, _ in ALL_MUTANTS}
    missing = [k.id for k in MANIFEST.katas if k.id not in covered]
    assert not missing, f"katas without a tests/mutants/<module>.toml of typical mistakes: {missing}"


@pytest.mark.parametrize("kata,number,mutant", [
    pytest.param(k, n, m, id=f"{k.id}-{n}", marks=pytest.mark.xdist_group(f"mutants-{k.id}")) for k, n, m in MUTANTS])
def test_mistake_is_caught(kata_mutant_runs, kata, number, mutant):
    verdict, detail = kata_mutant_runs[number]
    assert verdict == "caught", f"{kata.id}: no test catches the mistake {mutant['mistake']!r} ({verdict}):\n{detail}"

"""Learners' typical mistakes, each of which some kata test must catch.

`tests/mutants/<module>.toml` lists mistakes as text replacements in the reference
module. Each mutant is applied to a copy of the module, which then stands in for
the learner's file (scaffold mode); the kata's suite must go red.
"""

from __future__ import annotations

import tomllib

import pytest

from harness import manifest as manifest_module
from tests.contract import ROOT, child_environment, in_parallel, run_suite, tail

MANIFEST = manifest_module.load()
# Their session fixture runs many kata suites in subprocesses: a longer limit than a kata test's,
# and one pytest-xdist worker for the whole module, so the fixture runs once.
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("mutants")]
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


MUTANTS = _mutants()


@pytest.fixture(scope="session")
def mutant_runs(tmp_path_factory):
    def run(entry):
        kata, number, mutant = entry
        source = kata.reference_module.read_text(encoding="utf-8")
        if source.count(mutant["find"]) != 1:
            return "bad", f"`find` occurs {source.count(mutant['find'])} times in {kata.reference_module.name}, not once"
        folder = tmp_path_factory.mktemp(f"{kata.module}-{number}")
        (folder / f"{kata.module}.py").write_text(source.replace(mutant["find"], mutant["replace"]), encoding="utf-8")
        env = child_environment(TINYTORCH_STUDENT_DIR=folder)
        results, completed = run_suite(kata.folder, folder / "results.json", ["--scaffold", "-x"], env=env)
        caught = results is not None and any(t.outcome not in ("passed", "not run") for t in results.tests)
        return ("caught" if caught and completed.returncode != 0 else "missed"), tail(completed, 8)

    return dict(zip([(k.id, n) for k, n, _ in MUTANTS], in_parallel(run, MUTANTS)))


def test_every_kata_has_mutants():
    covered = {kata.id for kata, _, _ in MUTANTS}
    missing = [k.id for k in MANIFEST.katas if k.id not in covered]
    assert not missing, f"katas without a tests/mutants/<module>.toml of typical mistakes: {missing}"


@pytest.mark.parametrize("kata,number,mutant", MUTANTS, ids=[f"{k.id}-{n}" for k, n, _ in MUTANTS])
def test_mistake_is_caught(mutant_runs, kata, number, mutant):
    verdict, detail = mutant_runs[(kata.id, number)]
    assert verdict == "caught", f"{kata.id}: no test catches the mistake {mutant['mistake']!r} ({verdict}):\n{detail}"

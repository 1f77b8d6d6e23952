"""The kata contract (KATA_SPEC.md, "The contract CI enforces"), checked on every run.

1. Every kata and milestone test passes on the reference: that is the rest of this
   same run (`python -m pytest --impl=reference`); here we check it is complete.
2. With pristine stubs for a kata and the reference under it, every test of that
   kata fails, and fails because of the stub (NotImplementedError).
3. The stubs in tinytorch/ are what the generator makes, and hold no solution code.
4. Each kata's own tests cover at least 95% of its module's solution-region lines.
5. A kata's tests import only its own module and its prerequisites' modules.
6. Randomness is seeded, and a run writes nothing inside the repository.
"""

from __future__ import annotations

import ast
import os
import sys
import re

import pytest

from harness import manifest as manifest_module
from harness import stubs
from harness.results import NOT_STARTED
from tests.contract import ROOT, child_environment, in_parallel, run_suite, tail

MANIFEST = manifest_module.load()
# Their session fixtures run many kata suites in subprocesses: a longer limit than a kata test's,
# and one pytest-xdist worker for the whole module, so the fixtures run once.
pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("contract")]
KATAS = list(MANIFEST.katas)
KATA_IDS = [k.id for k in KATAS]
MIN_REGION_COVERAGE = 0.95


def _snapshot(root):
    """Every file in the repository that is not a cache, with its size and mtime."""
    skip = {".git", "__pycache__", ".pytest_cache", ".progress"}
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session")
def repository_before():
    return _snapshot(ROOT)


@pytest.fixture(scope="session")
def pristine_runs(tmp_path_factory, repository_before):
    """Each kata run in scaffold mode on freshly generated stubs (the reference for the rest)."""
    stub_dir = tmp_path_factory.mktemp("pristine") / "tinytorch"
    stubs.write_stubs(stub_dir)
    out_dir = tmp_path_factory.mktemp("red")

    def run(kata):
        env = child_environment(TINYTORCH_STUDENT_DIR=stub_dir)
        return run_suite(kata.folder, out_dir / f"{kata.id}.json", ["--scaffold"], env=env)

    runs = dict(zip(KATA_IDS, in_parallel(run, KATAS)))
    milestones = MANIFEST.milestones
    if milestones:
        env = child_environment(TINYTORCH_STUDENT_DIR=stub_dir)
        runs["milestones"] = run_suite(ROOT / "katas" / "milestones", out_dir / "milestones.json", env=env)
    return runs


@pytest.fixture(scope="session")
def coverage_runs(tmp_path_factory, repository_before):
    """Each kata's suite on the reference, under coverage of its own module only.

    Budget tests are left out: a time budget measured under a tracer measures the tracer
    (it slows the Python side and not numpy's), so every solution line must be reached by
    an ordinary test as well.
    """
    out_dir = tmp_path_factory.mktemp("coverage")

    def run(kata):
        data_file = out_dir / f".coverage.{kata.id}"
        prefix = [sys.executable, "-m", "coverage", "run", f"--data-file={data_file}",
                  f"--include={kata.reference_module}"]
        # A tracer slows every line: a time limit meant for learners' infinite loops must not end these runs.
        results, completed = run_suite(kata.folder, out_dir / f"{kata.id}.json",
                                       ["--impl=reference", "-m", "not budget", "-o", "timeout=120"], prefix=prefix)
        return data_file, results, completed

    return dict(zip(KATA_IDS, in_parallel(run, KATAS)))


# -- the manifest and the files it promises ------------------------------------------------


@pytest.mark.parametrize("kata", KATAS, ids=KATA_IDS)
def test_kata_has_its_files(kata):
    """Each kata has a lesson, a test file, a reference module and a stub, named by the one rule."""
    for path in (kata.lesson, kata.test_file, kata.reference_module, kata.student_module):
        assert path.exists(), f"{kata.id}: missing {path.relative_to(ROOT)}"


@pytest.mark.parametrize("kata", KATAS, ids=KATA_IDS)
def test_lesson_has_every_section_the_hints_point_to(kata):
    """Each checkpoint's `lesson` pointer names a section of the kata's lesson that exists."""
    headings = [line.lstrip("#").strip() for line in kata.lesson.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    for checkpoint in kata.checkpoints:
        pointer = manifest_module.LESSON_POINTER.search(checkpoint.lesson)
        assert any(pointer[1] in heading for heading in headings), (
            f"{kata.id} · {checkpoint.name}: the lesson has no section titled {pointer[1]!r}")


def test_milestones_have_a_test_and_a_script():
    for milestone in MANIFEST.milestones:
        assert milestone.test_file.exists(), f"milestone {milestone.id}: missing {milestone.test_file.relative_to(ROOT)}"
        assert milestone.script.exists(), f"milestone {milestone.id}: missing {milestone.script.relative_to(ROOT)}"


# -- 2. red on the pristine stub ---------------------------------------------------------------


@pytest.mark.parametrize("kata_id", KATA_IDS)
def test_every_test_is_red_on_the_pristine_stub(pristine_runs, kata_id):
    results, completed = pristine_runs[kata_id]
    assert results is not None, f"{kata_id}: the stub run wrote no results:\n{tail(completed)}"
    assert not results.collection_errors, f"{kata_id}: the tests do not import on the stub: {results.collection_errors}"
    tests = results.for_group(kata_id)
    kata = MANIFEST.by_id[kata_id]
    untested = {c.name for c in kata.checkpoints} - {t.checkpoint for t in tests}
    assert not untested, f"{kata_id}: checkpoints with no tests: {sorted(untested)}"
    green = [t.nodeid for t in tests if t.outcome != NOT_STARTED]
    assert not green, (
        f"{kata_id}: {len(green)} of {len(tests)} tests do not fail with the stub's NotImplementedError "
        f"(they pass, are skipped, or fail for another reason): {green[:5]}\n"
        + "\n".join(f"  {t.nodeid}: {t.outcome} {t.message[:120]}" for t in tests if t.outcome != NOT_STARTED)[:2000])


def test_milestones_are_red_on_the_pristine_stubs(pristine_runs):
    if not MANIFEST.milestones:
        pytest.fail("the manifest lists no milestones")
    results, completed = pristine_runs["milestones"]
    assert results is not None, f"milestones: the stub run wrote no results:\n{tail(completed)}"
    tests = results.for_group("milestones")
    assert tests, "no milestone tests were collected"
    passing = [t.nodeid for t in tests if t.outcome == "passed" or t.outcome == "skipped"]
    assert not passing, f"milestone tests pass or skip on pristine stubs: {passing}"


# -- 3. stubs in sync, free of solutions ---------------------------------------------------------


def test_stubs_equal_what_the_generator_makes():
    stale = stubs.out_of_sync()
    assert not stale, f"regenerate with `python -m harness.stubs`: out of date: {stale}"


@pytest.mark.parametrize("kata", KATAS, ids=KATA_IDS)
def test_stub_holds_no_solution_line(kata):
    reference = kata.reference_module.read_text(encoding="utf-8")
    lines = reference.splitlines()
    regions = stubs.find_regions(reference, str(kata.reference_module))
    assert regions, f"{kata.reference_module.relative_to(ROOT)} has no solution regions"
    inside = set()
    for region in regions:
        inside.update(range(region.begin + 1, region.end))
    outside = {lines[i].strip() for i in range(len(lines)) if i not in inside}
    solution = {lines[i].strip() for i in inside} - outside
    solution = {line for line in solution if line and not line.startswith("#")}
    stub_lines = {line.strip() for line in kata.student_module.read_text(encoding="utf-8").splitlines()}
    leaked = sorted(solution & stub_lines)
    assert not leaked, f"{kata.student_module.relative_to(ROOT)} contains solution lines: {leaked[:5]}"


# -- 4. coverage of solution regions -------------------------------------------------------------


@pytest.mark.parametrize("kata", KATAS, ids=KATA_IDS)
def test_own_tests_cover_the_solution_regions(coverage_runs, kata):
    import coverage

    data_file, results, completed = coverage_runs[kata.id]
    assert completed.returncode == 0, f"{kata.id} is not green on the reference under coverage:\n{tail(completed)}"
    cov = coverage.Coverage(data_file=str(data_file))
    cov.load()
    _, statements, _, missing, _ = cov.analysis2(str(kata.reference_module))
    regions = stubs.find_regions(kata.reference_module.read_text(encoding="utf-8"))
    in_regions = {line for r in regions for line in range(r.begin + 2, r.end + 1)}  # 1-based, markers excluded
    counted = in_regions & set(statements)
    missed = sorted(in_regions & set(missing))
    assert counted, f"{kata.id}: no executable lines in solution regions"
    share = 1 - len(missed) / len(counted)
    assert share >= MIN_REGION_COVERAGE, (
        f"{kata.id}: its tests cover {share:.0%} of solution-region lines (need {MIN_REGION_COVERAGE:.0%}); "
        f"never run: lines {missed} of {kata.reference_module.relative_to(ROOT)}")


# -- 5. import isolation ---------------------------------------------------------------------------


def _tinytorch_imports(path):
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tinytorch" and len(parts) > 1 and (MANIFEST.kata_for_module(parts[1]) or len(parts) == 2):
                modules.add(parts[1])
            if parts[0] == "reference":
                modules.add("<reference>")
    return modules


@pytest.mark.parametrize("kata", KATAS, ids=KATA_IDS)
def test_tests_import_only_their_kata_and_its_prerequisites(kata):
    allowed = {kata.module} | {k.module for k in MANIFEST.prerequisites(kata.id)}
    imported = _tinytorch_imports(kata.test_file)
    assert "<reference>" not in imported, f"{kata.test_file.name} imports the reference directly"
    extra = sorted(imported - allowed)
    assert not extra, (f"{kata.id}'s tests import tinytorch modules of katas it does not require: {extra} "
                       f"(allowed: {sorted(allowed)}); add the kata to `requires` or drop the import")


@pytest.mark.parametrize("kata", KATAS, ids=KATA_IDS)
def test_reference_module_imports_only_prerequisites_at_top_level(kata):
    allowed = {kata.module} | {k.module for k in MANIFEST.prerequisites(kata.id)}
    tree = ast.parse(kata.reference_module.read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    imported = set()
    for node in top:
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        if module and module.startswith("tinytorch."):
            imported.add(module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and module == "tinytorch":
            imported.update(alias.name for alias in node.names)
    extra = sorted(imported - allowed)
    assert not extra, f"{kata.reference_module.name} imports {extra} at module level, outside its prerequisites"


# -- 6. determinism -----------------------------------------------------------------------------------


def _test_files():
    files = [k.test_file for k in KATAS]
    files += [m.test_file for m in MANIFEST.milestones if m.test_file.exists()]
    return files


@pytest.mark.parametrize("path", _test_files(), ids=lambda p: p.parent.name)
def test_random_generators_are_seeded(path):
    """Every generator a test makes is given a seed: default_rng(seed), RandomState(seed), Random(seed)."""
    unseeded = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("default_rng", "RandomState", "Random") and not node.args and not node.keywords:
                unseeded.append(node.lineno)
    assert not unseeded, f"{path.relative_to(ROOT)}: unseeded random generator at lines {unseeded}"


def test_runs_write_nothing_inside_the_repository(pristine_runs, coverage_runs, repository_before):
    after = _snapshot(ROOT)
    changed = sorted(path for path in set(repository_before) | set(after)
                     if repository_before.get(path) != after.get(path))
    assert not changed, f"running the katas changed files in the repository: {changed[:10]}"


# -- 7. no text sends a learner to a kata that does not exist yet --------------------------------------

_KATA_MENTION = re.compile(r"\b(?:katas?|--kata)[ /](\d{2})(?:[-–](\d{2}))?(?!\d)")


def _learner_texts():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted(p for p in (ROOT / "katas").rglob("*") if p.suffix in (".md", ".py", ".toml"))
    return [p for p in files if p.is_file()]


def test_no_text_names_a_kata_that_is_not_in_the_manifest():
    """A lesson, doc or message may point only at katas the manifest lists: "kata 14", "katas/18_x", "--kata 12"."""
    known = {kata.number for kata in MANIFEST.katas}
    found = []
    for path in _learner_texts():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in _KATA_MENTION.finditer(line):
                numbers = [int(n) for n in match.groups() if n]
                if any(n not in known for n in numbers):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {match[0]!r} in: {line.strip()[:100]}")
    assert not found, "texts name katas that do not exist (yet):\n" + "\n".join(found)


def _readme_table_ids(heading_cell: str) -> list[str]:
    """The first column of the README table whose header row starts with `| heading_cell |`."""
    ids, inside = [], False
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {heading_cell} |"):
            inside = True
        elif inside and line.startswith("|") and not line.startswith("|---"):
            ids.append(line.split("|")[1].strip())
        elif inside and not line.startswith("|"):
            break
    return ids


def test_the_readme_lists_every_kata_and_milestone_in_order():
    """The README's tables of katas and milestones name exactly what the manifest lists, in its order."""
    assert _readme_table_ids("kata") == [k.id for k in MANIFEST.katas]
    assert _readme_table_ids("milestone") == [m.id for m in MANIFEST.milestones]

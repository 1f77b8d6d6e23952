"""`python scoreboard.py release OUTDIR`: the learner's copy, checked for real.

The release is made once into a temporary folder, and the copy's own commands
(its README's, the katas, the scoreboard, the modes that need the reference) all
start at once in that copy, each with its own progress folder; each test waits
only for the commands it reads. The copy is searched for solution text by a scan
written here, independently of the one in harness/release.py. Fake repositories
with a leak in them check that the release refuses.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import manifest as manifest_module
from harness import release, stubs
from tests.contract import shared_bytecode

pytestmark = [pytest.mark.timeout(360), pytest.mark.xdist_group("release")]  # one copy, made once

ROOT = manifest_module.ROOT
REFERENCE_DIR = manifest_module.REFERENCE_DIR
FORBIDDEN_IN_README = ("--impl=reference", "--impl reference", "--scaffold", "harness.stubs", "tests/",
                       "reference/", ".ci/", "dev/")

# The copy's commands: those the README of the copy shows are added when the copy exists.
COMMANDS = {
    "kata": ["-m", "pytest", "katas/01_tensor", "-q", "-p", "no:cacheprovider"],
    "plain pytest": ["-m", "pytest", "-p", "no:cacheprovider"],
    "pytest reference": ["-m", "pytest", "katas/01_tensor", "--impl=reference", "-p", "no:cacheprovider"],
    "board one kata": ["scoreboard.py", "--kata", "01_tensor"],
    "board reference": ["scoreboard.py", "--impl=reference"],
    "board scaffold": ["scoreboard.py", "--scaffold"],
    "hint": ["scoreboard.py", "hint", "01"],
    "release again": ["scoreboard.py", "release", "elsewhere"],
}


def environment(progress: Path) -> dict:
    """The caller's environment without anything that would steer a run, and a private progress folder."""
    dropped = ("TINYTORCH_", "PYTEST_", "COV_CORE_", "COVERAGE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k != "PYTHONPATH"}
    env["TINYTORCH_PROGRESS_DIR"] = str(progress)
    return shared_bytecode(env)


def run(args: list[str], cwd: Path, progress: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment(progress), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def readme_commands(readme: str) -> list[str]:
    """Every `python ...` line in the README's code blocks but the install (it needs the network)."""
    commands, fenced = [], False
    for line in readme.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced and line.startswith("python ") and "pip install" not in line:
            commands.append(line.split("#", 1)[0].strip())
    return commands


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(the copy, what release printed, the futures of the copy's commands by name)."""
    base = tmp_path_factory.mktemp("release")
    copy = base / "learner-copy"
    done = run(["scoreboard.py", "release", str(copy)], ROOT, base / "progress-release")
    assert done.returncode == 0, done.stdout + done.stderr
    commands = dict(COMMANDS)
    for line in readme_commands((copy / "README.md").read_text(encoding="utf-8")):
        args = line.split()[1:]
        if args[1:2] == ["host"] or "--join" in args:  # a server, and a watch that reaches one over the
            continue  # network: tests/test_host.py runs both on the loopback
        if "watch" in args:  # a watch runs until its clock ends: give it a clock of about a second
            args += ["--minutes", "0.02"]
        commands[f"README: {line}"] = args
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, args, copy, base / f"progress-{index}")
                   for index, (name, args) in enumerate(commands.items())}
        yield copy, done.stdout, futures
        for future in futures.values():
            future.cancel()


def ran(made, name: str) -> subprocess.CompletedProcess:
    return made[2][name].result()


def said(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


# -- what is in the copy ---------------------------------------------------------------

def test_the_copy_has_no_reference_and_no_repository_tests(made):
    copy = made[0]
    for folder in ("reference", "tests", ".ci", "dev", ".git", ".progress"):
        assert not (copy / folder).exists(), f"{folder}/ should not be in the learner's copy"
    assert "Wrote the learner's copy" in made[1]
    for needed in ("README.md", "pytest.ini", "conftest.py", "scoreboard.py", "requirements.txt", ".gitignore",
                   "harness/scoreboard.py", "katas/katas.toml"):
        assert (copy / needed).is_file(), f"{needed} is missing from the copy"
    for kata in manifest_module.load().katas:
        if kata.test_file.exists():
            assert (copy / kata.test_file.relative_to(ROOT)).read_bytes() == kata.test_file.read_bytes()


def test_every_other_project_file_is_copied_as_it_is_but_for_reference_only_blocks(made):
    copy = made[0]
    for relative in release.project_files():
        if relative in ("README.md", "pytest.ini"):
            continue
        original = (ROOT / relative).read_bytes()
        if relative.endswith((".md", ".py")):
            original = release.without_reference_only(original.decode("utf-8"), relative).encode("utf-8")
        assert (copy / relative).read_bytes() == original, relative


def test_no_file_of_the_copy_offers_a_mode_the_copy_lacks(made):
    """Lessons, milestone scripts, docs: outside the mode-aware harness, nothing says --scaffold or --impl=."""
    copy = made[0]
    found = []
    for path in sorted(p for p in copy.rglob("*") if p.is_file() and p.suffix in (".md", ".py", ".toml", ".txt")):
        relative = path.relative_to(copy).as_posix()
        if relative.startswith("harness/"):
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{relative}:{n}" for n, line in enumerate(text.splitlines(), 1)
                  if re.search(r"--scaffold|--impl[= ](reference|scaffold)|reference-only", line)
                  and not (relative == "README.md" and line.startswith(">"))]
    assert not found, f"the copy still offers modes it has not: {found[:10]}"


def test_a_lesson_line_offering_scaffold_outside_a_block_stops_the_release(tmp_path, monkeypatch, capsys):
    lesson = ("# Kata 02\n\n<!-- reference-only -->\n```bash\npython -m pytest katas/02_activations --scaffold\n```\n"
              "<!-- /reference-only -->\n\nIf kata 01 is not done, `--scaffold` starts you here.\n")
    fake_repository(tmp_path / "repo", monkeypatch, README, lesson)
    assert release.main([str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"katas/02_activations/README\.md:9: names the scaffold mode", err), err
    assert "README.md:5" not in err and not (tmp_path / "out").exists()


def test_reference_only_blocks_are_dropped_and_unbalanced_ones_refused():
    text = "keep\n<!-- reference-only -->\ndrop --scaffold\n<!-- /reference-only -->\nkeep too\n"
    assert release.without_reference_only(text) == "keep\nkeep too\n"
    python = "x = 1\n# reference-only\ny = '--impl=reference'\n# /reference-only\n"
    assert release.without_reference_only(python) == "x = 1\n"
    for broken in ("<!-- reference-only -->\nnever closed\n", "<!-- /reference-only -->\n",
                   "<!-- reference-only -->\n<!-- reference-only -->\n"):
        with pytest.raises(release.ReleaseError, match="reference-only block"):
            release.without_reference_only(broken, "lesson.md")


def test_the_stubs_are_the_pristine_stubs(made):
    tinytorch = made[0] / "tinytorch"
    expected = stubs.expected_stubs()
    assert sorted(p.name for p in tinytorch.iterdir()) == sorted(expected)
    for name, text in expected.items():
        assert (tinytorch / name).read_text(encoding="utf-8") == text, f"tinytorch/{name} is not the pristine stub"


def test_pytest_ini_collects_only_the_katas(made):
    ini = (made[0] / "pytest.ini").read_text(encoding="utf-8")
    assert re.search(r"^testpaths = katas$", ini, flags=re.M), ini


# -- no solution text: a scan of its own -------------------------------------------------

def _squash(text: str) -> str:
    return "".join(text.split())


def reference_regions() -> tuple[list[tuple[str, int, list[str]]], set[str]]:
    """(file, line, code lines) of every solution region, and the code outside them (tokenize drops comments)."""
    regions, outside = [], set()
    for path in sorted(REFERENCE_DIR.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        comment_at = {t.start[0]: t.start[1] for t in tokenize.generate_tokens(io.StringIO(source).readline)
                      if t.type == tokenize.COMMENT}
        current = None
        for number, line in enumerate(source.splitlines(), start=1):
            code = _squash(line[:comment_at.get(number, len(line))])
            if re.match(r"\s*# BEGIN SOLUTION \w+: ", line):
                current = (path.name, number, [])
            elif re.match(r"\s*# END SOLUTION", line):
                regions.append(current)
                current = None
            elif current is not None:
                if code:
                    current[2].append(code)
            else:  # a docstring's `# ...` is no comment to tokenize, but is one to a reader
                outside.update((code, _squash(re.split(r"(?:^|\s)#", line, maxsplit=1)[0])))
    return regions, outside


REGIONS, OUTSIDE = reference_regions()


def _telling(code: str) -> bool:
    return len(code) >= release.MIN_CHARS and code not in OUTSIDE


def file_lines(path: Path) -> list[str]:
    """The file's non-empty lines, each without a trailing `# comment` and without whitespace."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    squashed = (_squash(re.split(r"(?:^|\s)#", line, maxsplit=1)[0]) for line in text.splitlines())
    return [line for line in squashed if line]


def solution_text_in(folder: Path) -> list[str]:
    """What of the solutions a folder holds: markers; passages (release.RUN lines) anywhere; any line in tinytorch/."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [f"{name}: marker" for line in text.splitlines() if re.search(r"#\s*BEGIN SOLUTION \w+:", line)]
        lines = file_lines(path)
        joined = "\n" + "\n".join(lines) + "\n"
        for module, number, code in REGIONS:
            size = min(release.RUN, len(code))
            windows = (code[i:i + size] for i in range(len(code) - size + 1))
            if any(any(map(_telling, w)) and "\n" + "\n".join(w) + "\n" in joined for w in windows):
                found.append(f"{name}: a passage of {module}:{number}")
        if name.startswith("tinytorch/"):
            present = set(lines)
            found += [f"{name}: the line {c!r}" for _, _, code in REGIONS for c in code if _telling(c) and c in present]
    return found


def test_the_scan_here_finds_every_region_in_the_reference_itself():
    found = solution_text_in(REFERENCE_DIR)
    expected = sum(1 for _, _, code in REGIONS if any(map(_telling, code)))
    assert expected > 50
    assert sum(": a passage of " in f for f in found) >= expected
    assert len(REGIONS) == sum(len(stubs.find_regions(p.read_text(encoding="utf-8"))) for p in REFERENCE_DIR.glob("*.py"))


def test_the_copy_holds_no_solution_text(made):
    assert solution_text_in(made[0]) == []


def test_no_single_solution_line_is_in_the_stubs(made):
    lines = {line for path in (made[0] / "tinytorch").glob("*.py") for line in file_lines(path)}
    leaked = [c for _, _, code in REGIONS for c in code if _telling(c) and c in lines]
    assert leaked == []


# -- the README of the copy ----------------------------------------------------------------

def test_the_readme_has_the_notice_and_names_nothing_the_copy_lacks(made):
    readme = (made[0] / "README.md").read_text(encoding="utf-8")
    notice = release.NOTICE.splitlines()
    assert notice[0] in readme.splitlines()[:4], "the notice belongs right under the title"
    wrong = [(n, line) for n, line in enumerate(readme.splitlines(), start=1)
             if line not in notice and any(bad in line for bad in FORBIDDEN_IN_README)]
    assert wrong == []
    assert "## For maintainers" not in readme and "## The project's test command" not in readme


def test_the_readme_commands_work_in_the_copy(made):
    commands = [name for name in made[2] if name.startswith("README: ")]
    assert any("scoreboard.py" in c for c in commands) and any("pytest" in c for c in commands), commands
    for name in commands:
        done = ran(made, name)
        # pytest exits 1 when tests fail (they do: nothing is written yet); a milestone script
        # exits 1 saying the learner's tinytorch is unfinished. 2 or more is a usage error or a crash.
        assert done.returncode in (0, 1), f"{name} exited {done.returncode}:\n{said(done)[-2000:]}"
        assert "Traceback" not in said(done) and "ERROR:" not in said(done), f"{name}:\n{said(done)[-2000:]}"
        if "scoreboard.py" in name:
            assert done.returncode == 0, f"{name}:\n{said(done)[-2000:]}"


# -- the copy at work ----------------------------------------------------------------------

def test_a_kata_is_red_in_the_copy(made):
    done = ran(made, "kata")
    assert done.returncode == 1, said(done)
    assert re.search(r"\d+ failed", done.stdout) and not re.search(r"[1-9]\d* passed", done.stdout), done.stdout
    assert "01_tensor" in done.stdout and "not started" in done.stdout


def test_plain_pytest_in_the_copy_is_the_ladder_of_every_kata(made):
    done = ran(made, "plain pytest")
    assert done.returncode == 1, said(done)[-2000:]
    assert "tinytorch ladder" in done.stdout and "Milestones" in done.stdout
    assert not re.search(r"[1-9]\d* passed", done.stdout)
    assert "no tests ran" not in done.stdout and "not found" not in said(done)


def test_the_scoreboard_runs_in_the_copy(made):
    done = ran(made, "board one kata")
    assert done.returncode == 0, said(done)
    assert "01_tensor" in done.stdout and "0/6" in done.stdout


def test_hints_work_in_the_copy(made):
    done = ran(made, "hint")
    assert done.returncode == 0, said(done)
    assert "Hint 1 of 3" in done.stdout


def test_reset_puts_back_the_pristine_stub_in_the_copy(made, tmp_path):
    copy, _, futures = made
    for future in futures.values():  # nothing else may be running in the copy while its stub changes
        future.result()
    stub = copy / "tinytorch" / "tensor.py"
    pristine = stub.read_text(encoding="utf-8")
    stub.write_text(pristine + "\n# a learner's edit\n", encoding="utf-8")
    done = run(["scoreboard.py", "reset", "01", "--yes"], copy, tmp_path / "progress")
    assert done.returncode == 0, said(done)
    assert stub.read_text(encoding="utf-8") == pristine
    (backup,) = (tmp_path / "progress" / "backups").glob("tensor-*.py")
    assert backup.read_text(encoding="utf-8").endswith("# a learner's edit\n")


@pytest.mark.parametrize("name", ["board reference", "board scaffold", "pytest reference", "release again"])
def test_what_needs_the_reference_says_this_copy_has_none(made, name):
    done = ran(made, name)
    assert done.returncode != 0, said(done)
    assert re.search(r"this copy (of the repository )?has (none|no reference)", said(done)), said(done)
    assert "Traceback" not in said(done)
    assert not (made[0] / "elsewhere").exists()


# -- the release refuses ---------------------------------------------------------------------

def fake_repository(where: Path, monkeypatch, readme: str, lesson: str) -> Path:
    """A small project (a README and one lesson) that the release reads instead of the real one."""
    (where / "katas" / "02_activations").mkdir(parents=True)
    (where / "README.md").write_text(readme, encoding="utf-8")
    (where / "katas" / "02_activations" / "README.md").write_text(lesson, encoding="utf-8")
    monkeypatch.setattr(manifest_module, "ROOT", where)
    return where


README = "# Project\n\n## Start\n\n```bash\npython -m pytest katas/01_tensor\n```\n"


def _passage() -> str:
    """Four lines of a real solution region, as they stand in the reference (indented, with comments)."""
    for path in sorted(REFERENCE_DIR.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for region in stubs.find_regions(text):
            body = [line for line in lines[region.begin + 1:region.end] if line.strip()]
            if len(body) >= 6 and not any(line.strip().startswith("#") for line in body[:4]):
                return "\n".join(body[:4])
    raise AssertionError("no solution region of six lines in the reference")


def test_a_solution_passage_in_a_lesson_stops_the_release(tmp_path, monkeypatch):
    lesson = "# Kata 02\n\nHere is how:\n\n```python\n" + _passage() + "\n```\n"
    fake_repository(tmp_path / "repo", monkeypatch, README, lesson)
    out = tmp_path / "out"
    with pytest.raises(release.ReleaseError, match=r"katas/02_activations/README\.md:6: 4 lines of the solution"):
        release.release(out, out=lambda *_: None)
    assert not out.exists()


def test_a_solution_marker_stops_the_release_and_an_empty_outdir_stays_empty(tmp_path, monkeypatch):
    lesson = "# Kata 02\n\n    # BEGIN SOLUTION relu: forward\n"
    fake_repository(tmp_path / "repo", monkeypatch, README, lesson)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(release.ReleaseError, match=r"katas/02_activations/README\.md:3: a solution marker"):
        release.release(out, out=lambda *_: None)
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_readme_command_that_needs_the_reference_stops_the_release(tmp_path, monkeypatch, capsys):
    readme = README + "\n## Workshops\n\nRun `python -m pytest katas/03_autograd --scaffold` to start cold.\n"
    fake_repository(tmp_path / "repo", monkeypatch, readme, "# Kata 02\n")
    assert release.main([str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"README\.md:\d+: names the scaffold mode", err) and "katas/03_autograd --scaffold" in err
    assert not (tmp_path / "out").exists()


def test_single_solution_lines_are_leaks_in_the_stubs_only(tmp_path):
    regions, outside = release.solution_regions()
    line = next(code for region in regions if len(region.lines) > release.RUN
                for _, code in region.lines if release.telling(code, outside))
    (tmp_path / "tinytorch").mkdir()
    (tmp_path / "tinytorch" / "tensor.py").write_text(f"def f():\n    {line}\n", encoding="utf-8")
    (tmp_path / "lesson.md").write_text(f"For instance:\n\n    {line}\n", encoding="utf-8")
    leaks, shared = release.scan(tmp_path, regions, outside)
    assert [(f.file, f.line) for f in leaks] == [("tinytorch/tensor.py", 2)]
    assert [(f.file, f.line) for f in shared] == [("lesson.md", 3)]


def test_the_outdir_must_be_outside_the_repository_and_empty(tmp_path, capsys):
    inside = ROOT / "katas" / "learner-copy-test"
    assert release.main([str(inside)]) == 1
    assert "inside the repository" in capsys.readouterr().err and not inside.exists()
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    assert release.main([str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# -- the README rewrite ----------------------------------------------------------------------

def test_the_readme_rewrite_drops_whole_sections_and_survives_missing_ones():
    text = ("# T\n\nIntro.\n\n## For maintainers\n\n```bash\n## not a heading\npython -m harness.stubs\n```\n"
            "### Details\n\nMore.\n\n## Start\n\nGo.\n")
    out = release.learner_readme(text)
    assert out.startswith("# T\n\n" + release.NOTICE)
    assert "maintainers" not in out and "harness.stubs" not in out and "Details" not in out
    assert out.endswith("Intro.\n\n## Start\n\nGo.\n")
    assert release.learner_readme("No title, no sections.\n") == release.NOTICE + "\nNo title, no sections.\n"


def test_the_readme_rewrite_replaces_the_modes_section_and_keeps_reset():
    text = "# T\n\n## Three modes: whose code runs\n\n`--scaffold` etc.\n\n## Resetting a kata\n\n`reset`\n"
    out = release.learner_readme(text)
    assert "## Whose code runs" in out and "--scaffold` etc" not in out
    assert out.endswith("## Resetting a kata\n\n`reset`\n"), "reset works in the copy, so its section stays"
    assert release.readme_problems(out) == []

"""Write the learner's copy of the repository: everything but the solutions.

    python scoreboard.py release OUTDIR             write the copy into OUTDIR (new, or empty)
    python scoreboard.py release OUTDIR --verbose   also list lines the copy shares with a solution

The copy holds every project file (those git tracks, plus new ones it does not
ignore; without git, every file outside caches and the progress folder) except:

- `reference/`: the solutions;
- `tests/`: the repository's own tests check the reference and the harness, so
  they cannot run without it (every kata's suite, in `katas/`, is there);
- `.ci/` and `dev/`: they run those tests, or compare the reference with PyTorch;

with `tinytorch/` written fresh as the pristine stubs (and the same stubs in
`harness/pristine/`, where `python scoreboard.py reset` finds them), `pytest.ini` collecting
only `katas/`, and every text told the truth about the copy:

- the README gets a notice under its title, and the sections that need the
  reference are taken out or rewritten (see README_SECTIONS);
- in every Markdown file, a block between the lines `<!-- reference-only -->` and
  `<!-- /reference-only -->` is left out (in a Python file, between the comment lines
  `# reference-only` and `# /reference-only`): lessons keep their `--scaffold`
  advice there.

If any line of any file outside `harness/` (whose messages already depend on whether
a reference is present) still names something the copy does not have (FORBIDDEN),
nothing is released and each such line is named.

Before it finishes, it reads every file it wrote and looks for solution text:

- a solution marker (`# BEGIN SOLUTION <checkpoint>: ...`);
- a passage of a solution region: RUN consecutive code lines of it (or all of it,
  if it is shorter), compared without comments, indentation or blank lines;
- in `tinytorch/`, any single telling line of a solution (see MIN_CHARS).

Single lines elsewhere may equal a solution line on purpose (a lesson shows
`loss.backward()`, a test computes its expected value as the solution does);
`--verbose` lists them. If it finds solution text, it deletes what it wrote,
names each file and line, and exits 1. OUTDIR must not exist yet, or be empty,
and must be outside the repository.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import manifest as manifest_module
from harness import stubs

# Top-level folders the copy leaves out (tinytorch/ is written fresh from the generator).
LEFT_OUT = ("reference", "tests", ".ci", "dev", "tinytorch")
SKIPPED_PARTS = {".git", ".progress", "__pycache__", ".pytest_cache", "htmlcov", ".mypy_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# A solution line shorter than this (`return out`, `except ValueError:`) is too common to tell anything.
MIN_CHARS = 20
# This many consecutive code lines of one solution region make a passage: a leak wherever it is.
RUN = 4


class ReleaseError(RuntimeError):
    """The release cannot be made; the message says why."""


# -- which files ------------------------------------------------------------------

def _skipped(relative: str) -> bool:
    parts = relative.split("/")
    return (parts[0] in LEFT_OUT or any(p in SKIPPED_PARTS for p in parts)
            or relative.endswith(SKIPPED_SUFFIXES) or parts[-1].startswith(".coverage"))


def _git_files(root: Path) -> list[str] | None:
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              cwd=root, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [p for p in done.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def project_files(root: Path | None = None) -> list[str]:
    """Relative paths (POSIX) of the files to copy: git's view when there is one, else a walk."""
    root = root or manifest_module.ROOT
    listed = _git_files(root)
    if listed is None:
        listed = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_PARTS)
            listed += [(Path(folder) / name).relative_to(root).as_posix() for name in sorted(files)]
    # a file git still tracks but that was deleted from the working tree is not copied
    return sorted({p for p in listed if not _skipped(p) and (root / p).is_file()})


# -- the README of the copy ---------------------------------------------------------

NOTICE = """\
> **This is the learner's copy: it has no solutions.** The reference
> implementation is not included, so what needs it is not available here: the
> reference and scaffold modes (`--impl=reference`, `--scaffold`) say so and
> stop. Work through the katas in order, starting with kata 01. The
> repository's own tests are not included either; every kata's suite is in
> `katas/`.
"""

MODES_NOTE = """\
In this copy every `import tinytorch.x` is answered by your own file,
`tinytorch/x.py`. Katas build on each other (kata 03's tests need a working
`Tensor` from kata 01), so work through them in order: when a red test stops in
the code of an earlier kata you have not finished, the report names that kata.
"""

# README sections, by the start of their `## ` heading (case does not matter), that need
# the reference: None drops the section; (heading, body) replaces it.
README_SECTIONS = {
    "the project's test command": None,
    "for maintainers": None,
    "for instructors": None,
    "the reference against pytorch": None,
    "three modes": ("Whose code runs", MODES_NOTE),
}

# What a README line of the copy must not name: commands and folders that need the reference.
FORBIDDEN = (
    (re.compile(r"--impl[= ]+(reference|scaffold)"), "a reference mode (--impl=...)"),
    (re.compile(r"--scaffold"), "the scaffold mode (--scaffold)"),
    (re.compile(r"TINYTORCH_IMPL"), "a reference mode (TINYTORCH_IMPL)"),
    (re.compile(r"harness\.stubs|harness/stubs"), "the stub generator"),
    (re.compile(r"(?<![\w/.-])(tests|reference|\.ci|dev)/"), "a folder the copy does not have"),
    (re.compile(r"BEGIN SOLUTION"), "the solution markers"),
)

_FENCE = re.compile(r"^\s*(```|~~~)")


def _section_rule(heading: str):
    """The README_SECTIONS entry for this `## ` heading, or False if the section is kept."""
    wanted = " ".join(heading.split()).lower().replace("\u2019", "'")  # a typographic apostrophe too
    for start, rule in README_SECTIONS.items():
        if wanted.startswith(start):
            return rule
    return False


def learner_readme(text: str) -> str:
    """The README with the notice under its title and the sections that need the reference changed."""
    lines = text.splitlines()
    notice = NOTICE.rstrip("\n").splitlines()
    if lines and lines[0].startswith("# "):
        out, rest = [lines[0], "", *notice], lines[1:]
    else:
        out, rest = [*notice, ""], lines
    dropping, in_fence = False, False
    for line in rest:
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            rule = _section_rule(line[3:])
            dropping = rule is not False
            if isinstance(rule, tuple):
                heading, body = rule
                out += [f"## {heading}", "", *body.rstrip("\n").splitlines(), ""]
            if dropping:
                continue
        elif not in_fence and line.startswith("# "):
            dropping = False  # a new top-level part: whatever was being dropped has ended
        if not dropping:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n"


def readme_problems(text: str) -> list[str]:
    """`README.md:<line>: ...` for each line outside the notice that names what the copy lacks."""
    return text_problems("README.md", text)


_BLOCK_OPEN = re.compile(r"^\s*(<!--\s*reference-only\s*-->|#\s*reference-only)\s*$")
_BLOCK_CLOSE = re.compile(r"^\s*(<!--\s*/reference-only\s*-->|#\s*/reference-only)\s*$")


def kept_lines(text: str, where: str = "") -> list[tuple[int, str]]:
    """(line number, line with its end) of every line outside the reference-only blocks."""
    kept, inside = [], False
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _BLOCK_OPEN.match(line):
            if inside:
                raise ReleaseError(f"{where}:{number}: a reference-only block opens inside another")
            inside = True
        elif _BLOCK_CLOSE.match(line):
            if not inside:
                raise ReleaseError(f"{where}:{number}: a reference-only block closes without being opened")
            inside = False
        elif not inside:
            kept.append((number, line))
    if inside:
        raise ReleaseError(f"{where}: a reference-only block is never closed")
    return kept


def without_reference_only(text: str, where: str = "") -> str:
    """`text` without its reference-only blocks (markers included)."""
    return "".join(line for _, line in kept_lines(text, where))


def text_problems(relative: str, text: str, numbered=None) -> list[str]:
    """`<file>:<line>: ...` for each line that names what the copy lacks (outside the README's notice).

    `numbered` gives (line number, line) pairs to check, numbered as in the project's file.
    """
    notice = set(NOTICE.splitlines()) if relative == "README.md" else set()
    problems = []
    for number, line in numbered if numbered is not None else enumerate(text.splitlines(), start=1):
        line = line.rstrip("\n")
        if line in notice:
            continue
        for pattern, what in FORBIDDEN:
            if pattern.search(line):
                problems.append(f"{relative}:{number}: names {what}, which the copy does not have: {line.strip()}")
                break
    return problems


def learner_pytest_ini(text: str) -> str:
    """Collect only `katas/`: the copy has no `tests/`."""
    if re.search(r"^testpaths\s*=", text, flags=re.M):
        return re.sub(r"^(testpaths\s*=).*$", r"\1 katas", text, count=1, flags=re.M)
    return re.sub(r"^\[pytest\][ \t]*$", "[pytest]\ntestpaths = katas", text, count=1, flags=re.M)


TRANSFORMS = {"README.md": learner_readme, "pytest.ini": learner_pytest_ini}


# -- the scan ---------------------------------------------------------------------

_MARKER = re.compile(r"BEGIN SOLUTION\s+\w+\s*:")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


def code_of(line: str) -> str:
    """A line as compared: no comment, no indentation, runs of spaces as one."""
    quote = None
    for at, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            line = line[:at]
            break
    return " ".join(line.split())


@dataclass(frozen=True)
class Region:
    """The code lines of one solution region, as compared (comment-only and blank lines left out)."""

    source: str  # reference/tinytorch/<module>.py
    checkpoint: str
    lines: tuple[tuple[int, str], ...]  # (line number in the source, code)


def solution_regions(reference_dir: Path | None = None) -> tuple[list[Region], set[str]]:
    """Every solution region of the reference, and the code lines that occur outside them."""
    reference_dir = reference_dir or manifest_module.REFERENCE_DIR
    regions, outside = [], set()
    for path in sorted(reference_dir.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        where = f"reference/tinytorch/{path.name}"
        inside: set[int] = set()
        for region in stubs.find_regions(text, where):
            inside.update(range(region.begin, region.end + 1))
            code = tuple((i + 1, code_of(lines[i])) for i in range(region.begin + 1, region.end))
            regions.append(Region(where, region.checkpoint, tuple(c for c in code if c[1])))
        outside.update(code_of(line) for i, line in enumerate(lines) if i not in inside)
    return regions, outside


def telling(code: str, outside: set[str]) -> bool:
    """A solution line that says something: long enough, and not also ordinary code of the reference."""
    return len(code) >= MIN_CHARS and code not in outside


@dataclass(frozen=True)
class Finding:
    file: str  # relative to OUTDIR
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def _passages(region: Region, outside: set[str]):
    """Each run of RUN consecutive code lines of the region (all of it if shorter) with a telling line in it."""
    codes = [code for _, code in region.lines]
    size = min(RUN, len(codes))
    for start in range(len(codes) - size + 1):
        run = codes[start:start + size]
        if any(telling(code, outside) for code in run):
            yield region.lines[start][0], run


def scan_text(relative: str, text: str, regions: list[Region], outside: set[str]) -> tuple[list[Finding], list[Finding]]:
    """(leaks, shared lines) in one file of the copy; see the module docstring for what counts."""
    raw = text.splitlines()
    leaks = [Finding(relative, n, "a solution marker") for n, line in enumerate(raw, 1) if _MARKER.search(line)]
    numbered = [(n, code) for n, code in ((n, code_of(line)) for n, line in enumerate(raw, 1)) if code]
    codes = [code for _, code in numbered]
    first_line: dict[str, int] = {}  # each code line (or `inline code`, in markdown) -> where it first occurs
    for n, code in numbered:
        first_line.setdefault(code, n)
    if relative.endswith(".md"):
        for n, line in enumerate(raw, 1):
            for span in _INLINE_CODE.findall(line):
                first_line.setdefault(code_of(span), n)

    def where(run: list[str]) -> int | None:
        if run[0] not in first_line:
            return None
        if len(run) == 1:
            return first_line[run[0]]
        return next((numbered[i][0] for i in range(len(codes) - len(run) + 1)
                     if codes[i] == run[0] and codes[i:i + len(run)] == run), None)

    for region in regions:  # one finding per region and file: the first passage of it found
        for source_line, run in _passages(region, outside):
            at = where(run)
            if at is not None:
                count = "1 line" if len(run) == 1 else f"{len(run)} lines"
                leaks.append(Finding(relative, at, f"{count} of the solution at {region.source}:{source_line} "
                                                   f"({region.checkpoint}): {run[0]}"))
                break
    shared = [Finding(relative, first_line[code], f"the solution line at {region.source}:{source_line}: {code}")
              for region in regions for source_line, code in region.lines
              if code in first_line and telling(code, outside)]
    if relative.startswith("tinytorch/"):  # the stubs: not even one line of a solution belongs here
        return leaks + shared, []
    return leaks, shared


def scan(out_dir: Path, regions: list[Region], outside: set[str]) -> tuple[list[Finding], list[Finding]]:
    """(leaks, shared lines) in every file under `out_dir`; binary files are read as text too."""
    leaks, shared = [], []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found, same = scan_text(path.relative_to(out_dir).as_posix(), text, regions, outside)
        leaks += found
        shared += same
    unique = {(f.file, f.line): f for f in reversed(shared)}  # one per line of the copy, its first source
    return sorted(set(leaks), key=lambda f: (f.file, f.line)), sorted(unique.values(), key=lambda f: (f.file, f.line))


# -- writing ----------------------------------------------------------------------

def check_out_dir(out_dir: Path, root: Path | None = None) -> bool:
    """True when OUTDIR already exists (and is empty); raises ReleaseError if it cannot be used."""
    root = (root or manifest_module.ROOT).resolve()
    resolved = out_dir.resolve()
    if resolved == root or root in resolved.parents:
        raise ReleaseError(f"{out_dir} is inside the repository ({root}); write the copy somewhere else.")
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise ReleaseError(f"{out_dir} exists and is not a folder; give a new or empty folder.")
    if any(out_dir.iterdir()):
        raise ReleaseError(f"{out_dir} is not empty; give a new or empty folder.")
    return True


def _remove_written(out_dir: Path, existed: bool) -> None:
    if not existed:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    for child in list(out_dir.iterdir()):  # it was empty before: everything in it is ours
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _listing(findings: list[Finding], limit: int = 20) -> str:
    shown = [f"  {finding}" for finding in findings[:limit]]
    if len(findings) > limit:
        shown.append(f"  ... and {len(findings) - limit} more")
    return "\n".join(shown)


MODE_AWARE = ("harness/",)  # code that checks for the reference itself before it mentions a mode
TEXT_SUFFIXES = (".md", ".py", ".toml", ".ini", ".txt", ".cfg", ".json", ".yml", ".yaml")


def _write_files(root: Path, out_dir: Path) -> list[str]:
    """Copy the project's files, transformed for the copy; return the problems found in their text."""
    problems = []
    for relative in project_files(root):
        source, target = root / relative, out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not relative.endswith(TEXT_SUFFIXES):
            shutil.copy2(source, target)
            continue
        text = source.read_text(encoding="utf-8")
        numbered = kept_lines(text, relative) if relative.endswith((".md", ".py")) else None
        if numbered is not None:
            text = "".join(line for _, line in numbered)
        if relative in TRANSFORMS:  # the README is checked as rewritten: its numbers are the copy's
            text = TRANSFORMS[relative](text)
            numbered = None
        target.write_text(text, encoding="utf-8")
        shutil.copystat(source, target)
        if not relative.startswith(MODE_AWARE):
            problems += text_problems(relative, text, numbered)
    stubs.write_stubs(out_dir / "tinytorch")
    stubs.write_stubs(out_dir / "harness" / "pristine")  # what `scoreboard.py reset` puts back in the copy
    return problems
    stubs.write_stubs(out_dir / "tinytorch")
    stubs.write_stubs(out_dir / "harness" / "pristine")  # what `scoreboard.py reset` puts back in the copy


def release(out_dir: Path, out=print, verbose: bool = False) -> None:
    """Write the learner's copy into `out_dir`. Raises ReleaseError (leaving nothing) if it cannot."""
    root = manifest_module.ROOT
    if not manifest_module.REFERENCE_DIR.is_dir():
        raise ReleaseError(f"release needs the reference implementation in {manifest_module.REFERENCE_DIR}, "
                           "and this copy has none (it is already a learner's copy).")
    regions, outside = solution_regions()
    existed = check_out_dir(out_dir, root)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        problems = _write_files(root, out_dir)
        leaks, shared = scan(out_dir, regions, outside)
    except BaseException:
        _remove_written(out_dir, existed)
        raise
    if problems or leaks:
        _remove_written(out_dir, existed)
        parts = ["refusing to release; nothing was left in " + str(out_dir) + "."]
        if leaks:
            parts.append("Solution text would be in the copy:\n" + _listing(leaks))
        if problems:
            parts.append("The copy would name what it does not have (reword the line, or put it inside a "
                         "<!-- reference-only --> ... <!-- /reference-only --> block):\n" + _listing(problems))
        raise ReleaseError("\n".join(parts))
    files = sum(1 for p in out_dir.rglob("*") if p.is_file())
    lines = sum(len(r.lines) for r in regions)
    out(f"Wrote the learner's copy to {out_dir}: {files} files, the pristine stubs in tinytorch/, "
        f"no {', no '.join(f + '/' for f in LEFT_OUT if f != 'tinytorch')}.")
    out(f"Checked every file for the {len(regions)} solution regions ({lines} code lines): none found.")
    if shared:
        out(f"{len(shared)} line(s) elsewhere equal a single solution line (a lesson's example, a test's "
            "expected value); that is allowed" + (":" if verbose else "; --verbose lists them."))
        if verbose:
            out(_listing(shared, limit=len(shared)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scoreboard.py release",
        description="Write the learner's copy of the repository: the pristine stubs, no reference, "
                    "no repository tests, and a README that fits. Checked for solution text before it is kept.")
    parser.add_argument("outdir", type=Path, help="a folder outside the repository that does not exist yet, or is empty")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="list every line of the copy that equals a single solution line (allowed)")
    args = parser.parse_args(argv)
    try:
        release(args.outdir, verbose=args.verbose)
    except (ReleaseError, stubs.RegionError, OSError) as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nrelease: interrupted; nothing was left in {args.outdir}.", file=sys.stderr)
        return 130
    return 0

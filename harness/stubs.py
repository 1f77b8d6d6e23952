"""Make the learner's stubs from the reference, and reset one kata's stub.

In `reference/tinytorch/<module>.py` a solution region is marked like this:

    # BEGIN SOLUTION <checkpoint>: <what the learner should write>
    ...solution lines...
    # END SOLUTION

The generator replaces every region with one line,

    raise NotImplementedError("<kata> · <checkpoint>: <what the learner should write>")

at the region's indentation, and keeps everything else (signatures, docstrings,
the scaffolding around the regions) as it is.

    python -m harness.stubs            regenerate every stub in tinytorch/
    python -m harness.stubs --check    exit 1 if any stub differs from what it should be
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import manifest as manifest_module

BEGIN = re.compile(r"^(?P<indent>[ ]*)# BEGIN SOLUTION (?P<checkpoint>\w+): (?P<message>\S.*?)\s*$")
END = re.compile(r"^[ ]*# END SOLUTION\s*$")


class RegionError(ValueError):
    """A solution region is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Region:
    begin: int  # 0-based line index of the BEGIN marker
    end: int  # 0-based line index of the END marker
    checkpoint: str
    message: str
    indent: str


def find_regions(text: str, where: str = "<reference>") -> list[Region]:
    regions, open_region = [], None
    for index, line in enumerate(text.splitlines()):
        if "SOLUTION" not in line:
            continue
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_region:
                raise RegionError(f"{where}:{index + 1}: a solution region starts inside the one opened at line {opened_at + 1}")
            open_region, opened_at = begin, index
        elif end:
            if not open_region:
                raise RegionError(f"{where}:{index + 1}: END SOLUTION without a BEGIN")
            regions.append(Region(opened_at, index, open_region["checkpoint"], open_region["message"], open_region["indent"]))
            open_region = None
        elif line.strip().startswith("# BEGIN SOLUTION"):
            raise RegionError(f"{where}:{index + 1}: write markers as '# BEGIN SOLUTION <checkpoint>: <message>'")
    if open_region:
        raise RegionError(f"{where}:{opened_at + 1}: solution region is never closed with '# END SOLUTION'")
    return regions


def _string_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header_position(lines: list[str], text: str) -> int:
    """The line index just after the module docstring (0 if there is none)."""
    tree = ast.parse(text)
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None), ast.Constant):
        return tree.body[0].end_lineno
    return 0


def make_stub(text: str, module: str) -> str:
    """The learner's version of reference module `module` (its source is `text`)."""
    manifest = manifest_module.load()
    where = f"reference/tinytorch/{module}.py"
    regions = find_regions(text, where)
    if not regions:
        return text
    kata = manifest.kata_for_module(module)
    if kata is None:
        raise RegionError(f"{where}: has solution regions but no kata in the manifest owns module {module!r}")
    names = {c.name for c in kata.checkpoints}
    lines = text.splitlines()
    out: list[str] = []
    position = 0
    for region in regions:
        if region.checkpoint not in names:
            raise RegionError(f"{where}:{region.begin + 1}: checkpoint {region.checkpoint!r} is not one of "
                              f"kata {kata.id}'s checkpoints ({', '.join(sorted(names))})")
        out.extend(lines[position:region.begin])
        message = f"{kata.id} · {region.checkpoint}: {region.message}"
        out.append(f"{region.indent}raise NotImplementedError({_string_literal(message)})")
        position = region.end + 1
    out.extend(lines[position:])
    header_at = _header_position(lines, text)
    header = [
        "",
        f"# Kata {kata.id}: each `raise NotImplementedError(...)` below marks code for you to write.",
        f"# Lesson: katas/{kata.id}/README.md    Tests: python -m pytest katas/{kata.id}",
    ]
    out[header_at:header_at] = header
    stub = "\n".join(out) + "\n"
    compile(stub, f"tinytorch/{module}.py", "exec")  # a generator bug must never ship a broken stub
    return stub


def expected_stubs(reference_dir: Path | None = None) -> dict[str, str]:
    """File name -> the stub text every reference module should produce."""
    reference_dir = reference_dir or manifest_module.REFERENCE_DIR
    return {path.name: make_stub(path.read_text(encoding="utf-8"), path.stem)
            for path in sorted(reference_dir.glob("*.py"))}


def write_stubs(target_dir: Path) -> list[Path]:
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_stubs().items():
        path = target_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def out_of_sync(student_dir: Path | None = None) -> list[str]:
    """Names of stubs in `student_dir` that differ from what the generator makes."""
    student_dir = student_dir or manifest_module.STUDENT_DIR
    stale = []
    for name, text in expected_stubs().items():
        path = student_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def pristine_dir() -> Path:
    """Where a learner's copy (made by `python scoreboard.py release`) keeps the pristine stubs."""
    return manifest_module.ROOT / "harness" / "pristine"


def pristine_stub(kata) -> str:
    """The pristine stub of a kata's module: made from the reference, or read from a learner's copy's store."""
    if kata.reference_module.exists():
        return make_stub(kata.reference_module.read_text(encoding="utf-8"), kata.module)
    kept = pristine_dir() / f"{kata.module}.py"
    if kept.exists():
        return kept.read_text(encoding="utf-8")
    raise FileNotFoundError(f"reset needs {kata.reference_module} or {kept} to put back the stub, "
                            f"and this copy has neither. Ask for a fresh copy of tinytorch/{kata.module}.py instead.")


def reset_kata(kata_id: str, confirm=input, out=print) -> Path | None:
    """Put back the pristine stub of one kata's module, keeping a backup of the learner's file.

    Returns the backup's path (None if nothing needed saving or the learner said no).
    """
    manifest = manifest_module.load()
    kata = manifest.kata(kata_id)
    stub = pristine_stub(kata)
    target = kata.student_module
    if target.exists() and target.read_text(encoding="utf-8") == stub:
        out(f"{manifest_module.relative_path(target)} is already the pristine stub; nothing to do.")
        return None
    answer = confirm(f"Replace {manifest_module.relative_path(target)} with the pristine stub of "
                     f"{kata.id}? Your file is backed up first. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        out("Left as it was.")
        return None
    backup = None
    if target.exists():
        from harness import progress

        backup_dir = progress.progress_dir() / "backups"
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / f"{kata.module}-{time.strftime('%Y%m%d-%H%M%S')}.py"
        shutil.copy2(target, backup)
        out(f"Backed up your file to {manifest_module.relative_path(backup)}")
    target.write_text(stub, encoding="utf-8")
    out(f"Reset {manifest_module.relative_path(target)} to the pristine stub of {kata.id}.")
    return backup


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.stubs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report stubs that differ; change nothing")
    args = parser.parse_args(argv)
    if not manifest_module.REFERENCE_DIR.is_dir():
        print(f"there is no reference implementation in {manifest_module.REFERENCE_DIR} (a learner's copy), "
              "so there is nothing to make stubs from")
        return 2
    if args.check:
        stale = out_of_sync()
        for name in stale:
            print(f"tinytorch/{name} differs from the stub generated from reference/tinytorch/{name}")
        return 1 if stale else 0
    for path in write_stubs(manifest_module.STUDENT_DIR):
        print(f"wrote {path.relative_to(manifest_module.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Read `katas/katas.toml`, the single list of katas, checkpoints and capabilities."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

if sys.version_info < (3, 11):  # tomllib, which reads the manifest, arrived in Python 3.11
    raise RuntimeError(f"TinyTorch Katas needs Python 3.11 or newer; this is Python {sys.version.split()[0]}. "
                       "Install a newer Python and run `python -m pip install -r requirements.txt` with it.")

import tomllib  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KATAS_DIR = ROOT / "katas"
# TINYTORCH_MANIFEST points at another manifest: for drafting a new kata before it is listed.
MANIFEST_PATH = Path(os.environ.get("TINYTORCH_MANIFEST") or KATAS_DIR / "katas.toml")
STUDENT_DIR = ROOT / "tinytorch"
REFERENCE_DIR = ROOT / "reference" / "tinytorch"


def relative_path(path) -> str:
    """A path as the learner knows it: relative to the repository (with /) when inside it, else as given."""
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except (ValueError, OSError):
        return str(path)


class ManifestError(ValueError):
    """The manifest is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    goal: str
    hints: tuple[str, ...]  # three tiers: a nudge (free, in the ladder), a concrete approach, the near-answer
    lesson: str  # where the lesson explains it: "Lesson 01, section '...'" (always shown, never counted)
    weight: float = 1.0


@dataclass(frozen=True)
class Kata:
    id: str
    title: str
    module: str
    requires: tuple[str, ...]
    minutes: int
    capability: str
    checkpoints: tuple[Checkpoint, ...]
    number: int = 0

    @property
    def folder(self) -> Path:
        return KATAS_DIR / self.id

    @property
    def test_file(self) -> Path:
        return self.folder / f"test_{self.module}.py"

    @property
    def lesson(self) -> Path:
        return self.folder / "README.md"

    @property
    def student_module(self) -> Path:
        return STUDENT_DIR / f"{self.module}.py"

    @property
    def reference_module(self) -> Path:
        return REFERENCE_DIR / f"{self.module}.py"

    def checkpoint(self, name: str) -> Checkpoint:
        for checkpoint in self.checkpoints:
            if checkpoint.name == name:
                return checkpoint
        known = ", ".join(c.name for c in self.checkpoints)
        raise KeyError(f"kata {self.id} has no checkpoint {name!r} (it has: {known})")


@dataclass(frozen=True)
class Milestone:
    """An end-to-end run of the whole package; one checkpoint on the scoreboard."""

    id: str
    title: str
    requires: tuple[str, ...]
    capability: str
    goal: str
    hints: tuple[str, ...]
    lesson: str
    minutes: int
    weight: float = 1.0

    @property
    def test_file(self) -> Path:
        return KATAS_DIR / "milestones" / f"test_{self.id}.py"

    @property
    def script(self) -> Path:
        return KATAS_DIR / "milestones" / f"{self.id}.py"


@dataclass(frozen=True)
class Manifest:
    katas: tuple[Kata, ...]
    milestones: tuple[Milestone, ...]
    capabilities: tuple[tuple[str, str], ...]
    by_id: dict = field(default_factory=dict, compare=False)

    def kata(self, kata_id: str) -> Kata:
        """Find a kata by its id (`03_autograd`), number (`3`, `03`) or name (`autograd`)."""
        wanted = str(kata_id).strip().rstrip("/").split("/")[-1]
        for kata in self.katas:
            if wanted in (kata.id, kata.module, kata.id.split("_", 1)[1]):
                return kata
            if wanted.isdigit() and int(wanted) == kata.number:
                return kata
        known = ", ".join(k.id for k in self.katas)
        raise KeyError(f"no kata called {kata_id!r}; the katas are: {known}")

    def kata_for_module(self, module: str) -> Kata | None:
        for kata in self.katas:
            if kata.module == module:
                return kata
        return None

    def prerequisites(self, kata_id: str) -> list[Kata]:
        """Every kata `kata_id` builds on, directly or not, in manifest order."""
        needed: set[str] = set()
        stack = list(self.by_id[kata_id].requires) if kata_id in self.by_id else []
        while stack:
            current = stack.pop()
            if current not in needed:
                needed.add(current)
                stack.extend(self.by_id[current].requires)
        return [k for k in self.katas if k.id in needed]


def _require(entry: dict, key: str, kind: type, where: str):
    if key not in entry:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: field {key!r} should be {kind.__name__}, got {value!r}")
    return value


def _hints(entry: dict, where: str) -> tuple[str, ...]:
    hints = _require(entry, "hints", list, where)
    if len(hints) != 3 or not all(isinstance(h, str) and h.strip() for h in hints):
        raise ManifestError(f"{where}: 'hints' needs three non-empty tiers (a nudge, a concrete approach, "
                            "the near-answer)")
    if len(set(hints)) != 3:
        raise ManifestError(f"{where}: the three hint tiers must differ: each one says more than the last")
    return tuple(hints)


def _lesson(entry: dict, where: str) -> str:
    lesson = _require(entry, "lesson", str, where)
    if not LESSON_POINTER.search(lesson):
        raise ManifestError(f"{where}: 'lesson' should read \"Lesson NN, section '<a heading of the lesson>'\", "
                            f"got {lesson!r}")
    return lesson


LESSON_POINTER = re.compile(r"section '([^']+)'")


def parse(text: str) -> Manifest:
    data = tomllib.loads(text)
    capabilities = tuple(
        (_require(c, "name", str, "capability"), _require(c, "summary", str, "capability"))
        for c in data.get("capability", [])
    )
    capability_names = {name for name, _ in capabilities}
    katas: list[Kata] = []
    seen: set[str] = set()
    previous = 0
    for position, entry in enumerate(data.get("kata", []), start=1):
        where = f"kata #{position}"
        kata_id = _require(entry, "id", str, where)
        where = f"kata {kata_id}"
        match = re.fullmatch(r"(\d\d)_[a-z][a-z0-9_]*", kata_id)
        if not match:
            raise ManifestError(f"{where}: a kata id is two digits, an underscore and a lower-case name")
        number = int(match[1])
        if number <= previous:
            raise ManifestError(f"{where}: katas must be listed in order of their numbers; it comes after "
                                f"{previous:02d}")
        previous = number
        for required in _require(entry, "requires", list, where):
            if required not in seen:
                raise ManifestError(f"{where}: requires {required!r}, which is not an earlier kata")
        capability = _require(entry, "capability", str, where)
        if capability not in capability_names:
            raise ManifestError(f"{where}: unknown capability {capability!r}")
        checkpoints = []
        for position, cp in enumerate(_require(entry, "checkpoint", list, where), start=1):
            cp_where = f"{where}, checkpoint #{position}"
            checkpoints.append(Checkpoint(
                name=_require(cp, "name", str, cp_where),
                goal=_require(cp, "goal", str, cp_where),
                hints=_hints(cp, cp_where),
                lesson=_lesson(cp, cp_where),
                weight=float(cp.get("weight", 1.0)),
            ))
        names = [c.name for c in checkpoints]
        if len(set(names)) != len(names):
            raise ManifestError(f"{where}: checkpoint names repeat: {names}")
        katas.append(Kata(
            id=kata_id,
            title=_require(entry, "title", str, where),
            module=_require(entry, "module", str, where),
            requires=tuple(entry["requires"]),
            minutes=_require(entry, "minutes", int, where),
            capability=capability,
            checkpoints=tuple(checkpoints),
            number=number,
        ))
        seen.add(kata_id)
    milestones = []
    for entry in data.get("milestone", []):
        where = f"milestone {entry.get('id', '?')}"
        for required in _require(entry, "requires", list, where):
            if required not in seen:
                raise ManifestError(f"{where}: requires unknown kata {required!r}")
        capability = _require(entry, "capability", str, where)
        if capability not in capability_names:
            raise ManifestError(f"{where}: unknown capability {capability!r}")
        milestones.append(Milestone(
            id=_require(entry, "id", str, where),
            title=_require(entry, "title", str, where),
            requires=tuple(entry["requires"]),
            capability=capability,
            goal=_require(entry, "goal", str, where),
            hints=_hints(entry, where),
            lesson=_lesson(entry, where),
            minutes=_require(entry, "minutes", int, where),
            weight=float(entry.get("weight", 1.0)),
        ))
    manifest = Manifest(tuple(katas), tuple(milestones), capabilities)
    manifest.by_id.update({k.id: k for k in katas})
    return manifest


@lru_cache(maxsize=1)
def load() -> Manifest:
    return parse(MANIFEST_PATH.read_text(encoding="utf-8"))

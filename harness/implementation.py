"""Decide which file answers `import tinytorch.<module>`: the learner's or the reference's.

Three modes:

- ``student``: every module is the learner's file in `tinytorch/`.
- ``reference``: every module is the reference's, in `reference/tinytorch/`.
- ``scaffold``: the modules of the katas being run are the learner's; all others
  come from the reference, so a kata can be started cold.

The choice is made once per process by putting a finder at the front of
`sys.meta_path`. Tests, milestones and scripts all go through it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import threading
from pathlib import Path

from harness import manifest as manifest_module

MODES = ("student", "reference", "scaffold")


class ImplementationError(RuntimeError):
    """The requested implementation cannot be served (for example, no reference here)."""


IMPORT_SECONDS = float(os.environ.get("TINYTORCH_IMPORT_TIMEOUT") or 10)  # the same limit as one test


class ImportTimeout(ImportError):
    """Importing a learner's module did not finish in time: a loop at module level."""


class TinytorchLoader(importlib.machinery.SourceFileLoader):
    """Load a tinytorch module; a `sys.exit()` or an endless loop while importing becomes an ImportError."""

    def exec_module(self, module):
        try:
            with _time_limit(self.path, IMPORT_SECONDS):
                super().exec_module(module)
        except SystemExit as exit_:
            raise ImportError(f"{self.path} called sys.exit({exit_.code}) while being imported; "
                              "a module must define things, not end the program") from None


@contextlib.contextmanager
def _time_limit(path: str, seconds: float):
    """Stop an import that runs longer than `seconds`, naming the line it was stuck on.

    Test files import the learner's modules while pytest collects them, before any test's own
    time limit runs, so a `while True:` at module level would hang the whole run. Only the main
    thread can take a signal, and a timer already running (a test's time limit) is left alone.
    """
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def stop(signum, frame):
        where = ""
        while frame is not None:  # the innermost frame in the module being imported
            if frame.f_code.co_filename == path:
                where = f" (it was at line {frame.f_lineno})"
                break
            frame = frame.f_back
        raise ImportTimeout(f"importing {manifest_module.relative_path(path)} did not finish in {seconds:g} s"
                            f"{where}: a loop at module level never ends. Code that runs when the file "
                            "is imported should only define functions and classes.")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class TinytorchFinder(importlib.abc.MetaPathFinder):
    """Serve each `tinytorch.<module>` from the directory the mode chooses."""

    def __init__(self, mode: str, learner_modules: frozenset[str], student_dir: Path, reference_dir: Path):
        self.mode = mode
        self.learner_modules = learner_modules
        self.student_dir = student_dir
        self.reference_dir = reference_dir

    def source_for(self, module: str) -> Path:
        if self.mode == "reference" or (self.mode == "scaffold" and module not in self.learner_modules):
            return self.reference_dir / f"{module}.py"
        return self.student_dir / f"{module}.py"

    def find_spec(self, fullname, path=None, target=None):
        package, _, module = fullname.partition(".")
        if package != "tinytorch" or not module or "." in module:
            return None
        source = self.source_for(module)
        if not source.exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source, loader=TinytorchLoader(fullname, str(source)))


_installed: TinytorchFinder | None = None


def install(mode: str = "student", learner_katas=(), student_dir: Path | None = None) -> TinytorchFinder:
    """Route `tinytorch.*` imports for this process. Call before anything imports tinytorch."""
    global _installed
    if mode not in MODES:
        raise ImplementationError(f"unknown implementation {mode!r}; choose one of {', '.join(MODES)}")
    reference_dir = manifest_module.REFERENCE_DIR
    if mode != "student" and not reference_dir.is_dir():
        raise ImplementationError(
            f"--impl={mode} needs the reference implementation in {reference_dir}, "
            "and this copy of the repository has none (it is a learner's copy without solutions)."
        )
    student_dir = Path(student_dir or os.environ.get("TINYTORCH_STUDENT_DIR") or manifest_module.STUDENT_DIR)
    katas = manifest_module.load()
    learner_modules = frozenset(katas.kata(k).module for k in learner_katas)
    already = [name for name in sys.modules if name.startswith("tinytorch.")]
    if already:
        raise ImplementationError(f"tinytorch modules were imported before the implementation was chosen: {already}")
    if _installed is not None:
        sys.meta_path.remove(_installed)
    _installed = TinytorchFinder(mode, learner_modules, student_dir, reference_dir)
    sys.meta_path.insert(0, _installed)
    root = str(manifest_module.ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    return _installed


def current() -> TinytorchFinder | None:
    return _installed


def mode_from_environment() -> str:
    return os.environ.get("TINYTORCH_IMPL", "student").strip() or "student"


def install_from_argv(argv: list[str] | None = None) -> TinytorchFinder:
    """For runnable scripts: honour `--impl=reference`, `--scaffold` and TINYTORCH_IMPL.

    The options are removed from `argv` so the script's own parser never sees them.
    With `--scaffold` the katas the script names in `SCAFFOLD_KATAS` (or none) stay
    the learner's.
    """
    argv = sys.argv if argv is None else argv
    mode = mode_from_environment()
    for arg in list(argv[1:]):
        if arg.startswith("--impl="):
            mode = arg.split("=", 1)[1]
            argv.remove(arg)
        elif arg == "--scaffold":
            mode = "scaffold"
            argv.remove(arg)
    return install(mode)


# -- for the milestone scripts -------------------------------------------------------------


def script_usage(script: str) -> str:
    """A milestone script's usage line; a copy without the reference has no option to offer."""
    if manifest_module.REFERENCE_DIR.is_dir():
        return f"usage: python {script} [--impl=reference]   (without options: your own tinytorch/)"
    return f"usage: python {script}   (it runs your own tinytorch/)"


def choose_for_script(argv: list[str]) -> None:
    """A milestone script's command line: `--impl=student|reference` (or TINYTORCH_IMPL); no scaffold,
    since a milestone runs the whole package. Exits with a usage message for anything else."""
    script = argv[0]
    if "-h" in argv[1:] or "--help" in argv[1:]:
        print(script_usage(script))
        raise SystemExit(0)
    if "--scaffold" in argv[1:] or "--impl=scaffold" in argv[1:]:
        raise SystemExit("a milestone runs the whole package, so --scaffold has no meaning here: run it on your "
                         "own tinytorch.\n" + script_usage(script))
    try:
        install_from_argv(argv)
    except ImplementationError as error:
        raise SystemExit(f"{error}\n{script_usage(script)}") from None
    if argv[1:]:
        raise SystemExit(f"unknown option(s) {' '.join(argv[1:])}\n{script_usage(script)}")


def not_finished_message(script: str, error: BaseException) -> str:
    compare = (f", or watch the reference with `python {script} --impl=reference`"
               if manifest_module.REFERENCE_DIR.is_dir() else "")
    return (f"\nYour tinytorch is not finished yet: {error}\n"
            f"Run `python -m pytest katas` to see the next step{compare}.")

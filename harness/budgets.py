"""Performance budgets that do not flake on a noisy machine.

Prefer the deterministic measures: `peak_bytes` (tracemalloc sees numpy's
allocations) and `count_calls`. When time is the measure, `time_ratio` times the
candidate and a baseline in the same process, interleaved, and keeps the minimum
of several rounds of each: noise only ever adds time, so the minimum is the
honest cost. The time is the thread's CPU time (see CLOCK), which other
processes on the machine do not inflate. A budget sits at least 2x above what
the reference achieves.

Budget tests are marked `@pytest.mark.budget`.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from contextlib import contextmanager

from harness import blas


# Budgets time the CPU this thread spends, not the wall clock. On a busy machine the wall clock
# also counts the slices other processes run in while this one waits, and a round of 15 ms is
# rarely left alone when ten processes share two cores: the minimum over rounds then measures the
# load. The thread's CPU time counts only its own work, kernel time for its page faults included.
# It is the whole cost only while numpy's BLAS runs on this thread, as conftest.py asks; if the
# environment gave BLAS more threads, their work is not on this thread, and the wall clock is used.
CLOCK = time.thread_time if blas.on_one_thread() else time.perf_counter


def _best_time(fn, number: int) -> float:
    start = CLOCK()
    for _ in range(number):
        fn()
    return (CLOCK() - start) / number


def _calls_for(fn, min_seconds: float) -> int:
    number = 1
    while _best_time(fn, number) * number < min_seconds and number < 10_000:
        number *= 2
    return number


class Interleaved:
    """Times `candidate` and `baseline` in alternating rounds and keeps the best of each.

    Noise (another process, a cache flushed, a page fault) only ever adds time, so the
    minimum over rounds approaches each function's real cost, and more rounds only get closer.
    """

    def __init__(self, candidate, baseline, min_seconds: float = 0.002):
        self.candidate, self.baseline = candidate, baseline
        candidate()
        baseline()  # warm up both: imports, caches, first-touch page faults
        # Each side loops enough calls that the timer's resolution does not matter, counted for
        # itself: a candidate 100x slower than its baseline is not also called 100x too often.
        self.number = _calls_for(baseline, min_seconds)
        self.candidate_number = _calls_for(candidate, min_seconds)
        self.best_candidate = self.best_baseline = float("inf")
        self.rounds = 0

    def measure(self, rounds: int) -> None:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(rounds):
                self.best_baseline = min(self.best_baseline, _best_time(self.baseline, self.number))
                self.best_candidate = min(self.best_candidate, _best_time(self.candidate, self.candidate_number))
                self.rounds += 1
        finally:
            if was_enabled:
                gc.enable()

    @property
    def ratio(self) -> float:
        return self.best_candidate / self.best_baseline


def time_ratio(candidate, baseline, rounds: int = 7, min_seconds: float = 0.002) -> tuple[float, float, float]:
    """(candidate / baseline, candidate seconds, baseline seconds), each the min over interleaved rounds."""
    timing = Interleaved(candidate, baseline, min_seconds)
    timing.measure(rounds)
    return timing.ratio, timing.best_candidate, timing.best_baseline


def _patience_cap() -> float:
    """TINYTORCH_BUDGET_PATIENCE, in seconds, caps the patience. Only the mistake checks
    (tests/test_mutants.py) set it: they run nothing but wrong code, a slow mistake is over its
    budget by far, and three seconds of patience for each of them would be most of the check's
    time. A learner's run never has it, so no learner's budget is judged more hastily."""
    value = os.environ.get("TINYTORCH_BUDGET_PATIENCE", "").strip()
    if not value:
        return float("inf")
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ValueError(f"TINYTORCH_BUDGET_PATIENCE={value!r}: give a number of seconds") from None


def assert_time_ratio(candidate, baseline, budget: float, what: str, rounds: int = 7,
                      patience: float = 3.0, min_seconds: float = 0.002, advice: str = "") -> float:
    """Fail unless candidate/baseline, as the best of interleaved rounds, is at most `budget`.

    After the first `rounds`, a ratio over budget is measured further, a round at a time for up
    to `patience` seconds: on a busy machine a burst of load can spoil every early round of one
    side, and a later quiet moment shows the real cost. A ratio over budget for real stays over
    it however long it is measured, so this only ever removes false failures.
    """
    timing = Interleaved(candidate, baseline, min_seconds)
    timing.measure(rounds)
    deadline = time.perf_counter() + min(patience, _patience_cap())
    while timing.ratio > budget and time.perf_counter() < deadline:
        timing.measure(1)
    ratio = timing.ratio
    assert ratio <= budget, (
        f"{what}: took {ratio:.2f}x the baseline ({timing.best_candidate * 1e3:.3f} ms vs "
        f"{timing.best_baseline * 1e3:.3f} ms, best of {timing.rounds} interleaved rounds); the budget is "
        f"{budget:g}x" + (f". {advice}" if advice else ""))
    return ratio


def peak_bytes(fn) -> tuple[int, object]:
    """(peak bytes allocated while `fn()` runs, above what was allocated before; fn's result)."""
    gc.collect()
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started_here:
            tracemalloc.stop()
    return peak - before, result


def assert_peak_bytes(fn, budget_bytes: int, what: str):
    peak, result = peak_bytes(fn)
    assert peak <= budget_bytes, (
        f"{what}: peak memory {peak / 2**20:.2f} MiB; the budget is {budget_bytes / 2**20:.2f} MiB")
    return result


@contextmanager
def count_calls(owner, name: str):
    """Count calls of `owner.name` (a function or method) inside the with-block: `counter.calls`."""
    original = getattr(owner, name)

    class Counter:
        calls = 0

    def counting(*args, **kwargs):
        Counter.calls += 1
        return original(*args, **kwargs)

    setattr(owner, name, counting)
    try:
        yield Counter
    finally:
        setattr(owner, name, original)

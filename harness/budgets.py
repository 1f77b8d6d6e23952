"""Performance budgets that do not flake on a noisy machine.

Prefer the deterministic measures: `peak_bytes` (tracemalloc sees numpy's
allocations) and `count_calls`. When time is the measure, `time_ratio` times the
candidate and a baseline in the same process, interleaved, and keeps the minimum
of several rounds of each: noise only ever adds time, so the minimum is the
honest cost. A budget sits at least 2x above what the reference achieves.

Budget tests are marked `@pytest.mark.budget`.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from contextlib import contextmanager


def _best_time(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def time_ratio(candidate, baseline, rounds: int = 7, min_seconds: float = 0.002) -> tuple[float, float, float]:
    """(candidate / baseline, candidate seconds, baseline seconds), each the min over interleaved rounds."""
    candidate()
    baseline()  # warm up both: imports, caches, first-touch page faults
    number = 1
    while _best_time(baseline, number) * number < min_seconds and number < 10_000:
        number *= 2  # loop enough calls that the timer's resolution does not matter
    best_candidate = best_baseline = float("inf")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            best_baseline = min(best_baseline, _best_time(baseline, number))
            best_candidate = min(best_candidate, _best_time(candidate, number))
    finally:
        if was_enabled:
            gc.enable()
    return best_candidate / best_baseline, best_candidate, best_baseline


def assert_time_ratio(candidate, baseline, budget: float, what: str, rounds: int = 7) -> float:
    ratio, cand, base = time_ratio(candidate, baseline, rounds)
    assert ratio <= budget, (
        f"{what}: took {ratio:.2f}x the baseline ({cand * 1e3:.3f} ms vs {base * 1e3:.3f} ms, "
        f"best of {rounds} interleaved rounds); the budget is {budget:.1f}x")
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

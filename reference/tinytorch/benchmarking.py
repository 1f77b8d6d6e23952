"""Kata 19 · Benchmarking: how fast is it, how sure are we, and is it still right?

A benchmark answers three questions, in this order:

1. Is the model still right? With an accuracy check, a model below its target is
   reported and never timed: a fast wrong answer is not a result.
2. How long does one call take? Warm-up calls first, untimed; then timed calls, each
   on its own, until BOTH at least `min_count` calls are timed AND at least
   `min_seconds` have passed (MLPerf's rules: a minimum number of queries and a
   minimum duration). The clock is a callable you can replace, so the statistics
   can be tested with scripted times.
3. How sure are we? The samples are summarised by order statistics (median, p90,
   p99, one stated percentile rule), the sample standard deviation, Tukey's outlier
   fences and a Student t interval for the mean, which stays honest at ten samples
   where the normal 1.96 does not.

    result = single_stream(model, queries, accuracy=lambda: evaluate(model), target=0.95,
                           warmup=10, min_count=1024, min_seconds=10.0)
    result.summary.p90          # seconds per query: MLPerf Inference's single-stream metric
    offline(model, batch).throughput                # items per second
    compare(before.samples, after.samples, paired=False).verdict   # "faster", "slower", "no difference"
    print(to_markdown([result])); open("bench.json", "w").write(to_json([result]))

Everything takes plain callables and lists of seconds; no other kata is needed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

REPORT_FORMAT = "tinytorch-benchmark"
REPORT_VERSION = 1
FASTER, SLOWER, NO_DIFFERENCE = "faster", "slower", "no difference"
# The variables that set how many threads numpy's BLAS (and OpenMP code) may use.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def as_samples(samples, who: str, minimum: int) -> np.ndarray:
    """`samples` (a sequence or array of seconds) as a 1-D float64 array of at least `minimum` finite values.

    An array that is already float64 is returned as it is, not copied: never change it in place.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{who}: samples should be one-dimensional (one time per call), got shape {x.shape}")
    if x.size < minimum:
        raise ValueError(f"{who}: needs at least {minimum} sample(s), got {x.size}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"{who}: sample {bad} is {x[bad]}; a time is a finite number of seconds")
    return x


def check_confidence(confidence: float, who: str) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"{who}: confidence must be between 0 and 1 (0.95 for 95%), got {confidence}")


# -- percentiles ---------------------------------------------------------------------------------


def percentile(samples, q):
    """The q-th percentile (0 <= q <= 100) of `samples`, by linear interpolation between order statistics.

    Sort the n samples, x[0] <= x[1] <= ... <= x[n-1]. The q-th percentile sits at the
    fractional rank h = (n - 1) * q / 100, between x[floor(h)] and the next sample:

        x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])

    This is numpy's default (`np.percentile(x, q)`, method "linear", Hyndman and Fan's
    type 7): p0 is the minimum, p100 the maximum, p50 the median; with one sample every
    percentile is that sample.

    `q` is a number (the result is a Python float) or a sequence of numbers (the result is a
    float64 array, one value per q, from ONE sort). The samples themselves are not changed.
    """
    x = as_samples(samples, "percentile", minimum=1)
    q = np.asarray(q, dtype=np.float64)
    if np.isnan(q).any() or (q < 0).any() or (q > 100).any():
        raise ValueError(f"percentile: q must be between 0 and 100 (a percentage), got {q.tolist()}")
    # BEGIN SOLUTION percentile: sort a copy once; h = (n - 1) * q / 100; interpolate between x[floor(h)] and the next sample; a float for one q, an array for several
    x = np.sort(x)  # a sorted copy: the caller's samples keep their run order
    rank = (x.size - 1) * q / 100  # fractional 0-based rank, q's shape
    below = np.floor(rank).astype(np.intp)
    above = np.minimum(below + 1, x.size - 1)  # q = 100 sits on the last sample, which has no next
    values = x[below] + (rank - below) * (x[above] - x[below])
    return float(values) if values.ndim == 0 else values
    # END SOLUTION


# -- spread and outliers -------------------------------------------------------------------------


def sample_std(samples) -> float:
    """The sample standard deviation, sqrt(sum((x - mean)^2) / (n - 1)), of at least two samples.

    n - 1 (Bessel's correction, numpy's ddof=1), not n: the deviations are measured from
    the samples' own mean, which sits closer to them than the true mean does, so dividing
    by n underestimates the spread; with 5 samples by about 11%.
    """
    x = as_samples(samples, "sample_std", minimum=2)
    # BEGIN SOLUTION spread: sum the squared deviations from the mean, divide by n - 1, take the square root
    return float(np.sqrt(np.sum((x - x.mean()) ** 2) / (x.size - 1)))
    # END SOLUTION


def tukey_fences(samples, k: float = 1.5) -> tuple[float, float]:
    """Tukey's fences (Q1 - k * IQR, Q3 + k * IQR), with Q1 and Q3 the 25th and 75th percentiles and IQR = Q3 - Q1.

    The quartiles follow `percentile`'s rule. k = 1.5 marks outliers, k = 3 "far out" ones.
    """
    x = as_samples(samples, "tukey_fences", minimum=1)
    # BEGIN SOLUTION spread: Q1 and Q3 from one percentile call; the fences sit k interquartile ranges outside them
    q1, q3 = percentile(x, [25, 75])
    spread = q3 - q1
    return float(q1 - k * spread), float(q3 + k * spread)
    # END SOLUTION


def outliers(samples, k: float = 1.5) -> np.ndarray:
    """One bool per sample, in the samples' own order: True where it lies strictly outside Tukey's fences."""
    x = as_samples(samples, "outliers", minimum=1)
    # BEGIN SOLUTION spread: compare every sample (unsorted, in run order) with the two fences
    low, high = tukey_fences(x, k)
    return (x < low) | (x > high)
    # END SOLUTION


# -- Student's t distribution --------------------------------------------------------------------


def regularized_beta(x: float, a: float, b: float, one_minus_x: float | None = None) -> float:
    """The regularized incomplete beta function I_x(a, b), for 0 <= x <= 1 and a, b > 0 (given).

    I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) * 1 / (1 + d1 / (1 + d2 / (1 + ...))), where
    d(2m + 1) = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) and d(2m) = m (b - m) x / ((a + 2m - 1)(a + 2m)).
    The continued fraction converges fast for x < (a + 1) / (a + b + 2); above that,
    I_x(a, b) = 1 - I_(1-x)(b, a). It is evaluated front to back by Lentz's method.
    `one_minus_x`, when the caller knows it more precisely than 1 - x rounds, keeps x near 1 exact.
    """
    y = 1.0 - x if one_minus_x is None else one_minus_x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - regularized_beta(y, b, a, x)
    log_front = a * math.log(x) + b * math.log(y) - math.log(a) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    tiny = 1e-300  # stands in for a zero denominator
    fraction, c, d = 1.0, 1.0, 0.0  # fraction = 1 + d1 / (1 + d2 / (1 + ...)), grown one term at a time
    for step in range(1, 1000):
        m = step // 2
        if step % 2:
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + term * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + term / c
        c = c if abs(c) > tiny else tiny
        fraction *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return math.exp(log_front) / fraction


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with `df` degrees of freedom (df > 0; it need not be whole).

    The mass in both tails beyond |t| is I_x(df / 2, 1 / 2) at x = df / (df + t^2).
    """
    # BEGIN SOLUTION t_distribution: the tail P(T > |t|) is half of regularized_beta(x, df / 2, 0.5) at x = df / (df + t*t) (pass 1 - x as t*t / (df + t*t)); mirror it for t > 0
    x, one_minus_x = df / (df + t * t), t * t / (df + t * t)
    tail = 0.5 * regularized_beta(x, df / 2, 0.5, one_minus_x)  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail
    # END SOLUTION


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, for 0 < p < 1 and df > 0: t_quantile(0.975, 9) = 2.2622.

    Found by bisection on `t_cdf`, which rises steadily from 0 to 1: no tables, no scipy.
    As df grows it tends to the normal quantile (1.95996 for p = 0.975).
    """
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: p must be strictly between 0 and 1, got {p}")
    if not df > 0:
        raise ValueError(f"t_quantile: df (degrees of freedom) must be positive, got {df}")
    # BEGIN SOLUTION t_distribution: mirror p < 0.5 (t is symmetric); double an upper bound until t_cdf reaches p; then halve the bracket [low, high] 60 times
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    for _ in range(60):  # each step halves the bracket: 60 leave it below float precision
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2
    # END SOLUTION


# -- the interval and the summary ----------------------------------------------------------------


def confidence_interval(samples, confidence: float = 0.95) -> tuple[float, float]:
    """The Student t interval for the mean of at least two samples: mean -/+ t * s / sqrt(n).

    t = t_quantile((1 + confidence) / 2, n - 1) and s = sample_std(samples). At n = 10 and 95%,
    t = 2.262: the normal 1.960 would make the interval 13% too narrow, and claim more
    certainty than ten samples hold. Returns (low, high) as Python floats.
    """
    x = as_samples(samples, "confidence_interval", minimum=2)
    check_confidence(confidence, "confidence_interval")
    # BEGIN SOLUTION confidence_interval: t for (1 + confidence) / 2 with n - 1 degrees of freedom, times the standard error s / sqrt(n), on both sides of the mean
    t = t_quantile((1 + confidence) / 2, x.size - 1)
    half_width = t * sample_std(x) / math.sqrt(x.size)
    mean = float(x.mean())
    return mean - half_width, mean + half_width
    # END SOLUTION


@dataclass(frozen=True)
class Summary:
    """The statistics of one run's samples. Every field is in seconds except count, confidence and outliers."""

    count: int  # how many timed samples
    mean: float
    std: float  # sample standard deviation (n - 1)
    median: float  # the 50th percentile (p50)
    p90: float
    p99: float
    min: float
    max: float
    confidence: float  # of the interval: 0.95 for 95%
    ci_low: float  # the Student t interval for the mean
    ci_high: float
    fence_low: float  # Tukey's fences, 1.5 interquartile ranges outside the quartiles
    fence_high: float
    outliers: tuple[int, ...]  # positions (in run order) of the samples outside the fences


def summarize(samples, confidence: float = 0.95) -> Summary:
    """Every statistic of `Summary` for at least two samples; percentiles by `percentile`'s rule."""
    x = as_samples(samples, "summarize", minimum=2)
    check_confidence(confidence, "summarize")
    # BEGIN SOLUTION summary: median, p90 and p99 from one percentile call; the interval, the fences and the outliers' positions (np.flatnonzero) from the functions above; Python floats and ints
    median, p90, p99 = percentile(x, [50, 90, 99])
    ci_low, ci_high = confidence_interval(x, confidence)
    fence_low, fence_high = tukey_fences(x)
    flagged = np.flatnonzero((x < fence_low) | (x > fence_high))
    return Summary(count=int(x.size), mean=float(x.mean()), std=sample_std(x), median=float(median),
                   p90=float(p90), p99=float(p99), min=float(x.min()), max=float(x.max()),
                   confidence=float(confidence), ci_low=ci_low, ci_high=ci_high,
                   fence_low=fence_low, fence_high=fence_high, outliers=tuple(int(i) for i in flagged))
    # END SOLUTION


# -- the benchmark -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What one benchmark run measured. When the model was not timed, `samples` is () and `summary` None."""

    name: str
    scenario: str  # "single-stream", "offline" or "custom"
    items: int  # items each timed call processes: 1 per single-stream query, the batch size offline
    warmup: int  # untimed calls before the first timed one
    min_count: int  # the rules the run followed
    min_seconds: float
    accuracy: float | None  # what the accuracy check returned (None: no check)
    target: float | None
    samples: tuple[float, ...]  # seconds of each timed call, in run order
    duration: float  # seconds from the start of the first timed call to the end of the last; 0 if not timed
    summary: Summary | None

    @property
    def timed(self) -> bool:
        return bool(self.samples)

    @property
    def status(self) -> str:
        return "timed" if self.timed else "below target"

    @property
    def throughput(self) -> float | None:
        """Items per second over the timed calls: items x calls / their total seconds (None when not timed)."""
        if not self.timed:
            return None
        # BEGIN SOLUTION scenarios: every timed call processed `items` items; divide all the items by all the timed seconds
        return self.items * len(self.samples) / math.fsum(self.samples)
        # END SOLUTION


class Benchmark:
    """Times `fn()` by MLPerf-style rules, after checking accuracy.

        Benchmark(fn, name="mlp", warmup=10, min_count=100, min_seconds=1.0,
                  accuracy=lambda: evaluate(model), target=0.95).run()   # a Result

    - `accuracy` (a callable returning a number, given with `target`) runs once, before
      anything else. Below target (nan included), the Result has no samples: fn is never called.
    - `warmup` calls of fn are not timed: the first calls pay for caches, allocations and setup.
    - then each call is timed on its own, `clock()` just before and just after it, until BOTH
      `min_count` calls are timed AND `min_seconds` have passed since the first timed call began.
    - `clock` is any callable returning seconds (time.perf_counter by default).
    - `scenario` and `items` (items per call) are labels for reports and throughput; the
      `single_stream` and `offline` functions set them.
    """

    def __init__(self, fn, *, name: str = "benchmark", warmup: int = 10, min_count: int = 100,
                 min_seconds: float = 1.0, accuracy=None, target: float | None = None, clock=time.perf_counter,
                 confidence: float = 0.95, scenario: str = "custom", items: int = 1):
        for label, value in (("fn", fn), ("clock", clock)):
            if not callable(value):
                raise TypeError(f"Benchmark: {label} must be callable, got {type(value).__name__}")
        for label, value, least in (("warmup", warmup, 0), ("min_count", min_count, 2), ("items", items, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"Benchmark: {label} must be an int of at least {least}, got {value!r}")
        if not 0 <= min_seconds < math.inf:
            raise ValueError(f"Benchmark: min_seconds must be a finite number of seconds >= 0, got {min_seconds!r}")
        if (accuracy is None) != (target is None):
            raise ValueError("Benchmark: give accuracy (a callable returning a number) and target together, "
                             f"or neither; got accuracy={accuracy!r}, target={target!r}")
        if accuracy is not None and not callable(accuracy):
            raise TypeError(f"Benchmark: accuracy must be callable (it is run before timing), got {type(accuracy).__name__}")
        check_confidence(confidence, "Benchmark")
        self.fn, self.name, self.warmup, self.min_count, self.min_seconds = fn, name, warmup, min_count, min_seconds
        self.accuracy, self.target, self.clock, self.confidence = accuracy, target, clock, confidence
        self.scenario, self.items = scenario, items

    def measure(self) -> tuple[list[float], float]:
        """Warm up, then time calls by the rules: (seconds of each timed call, seconds of the whole timed run).

        No accuracy check: `run` is the way in.
        """
        # BEGIN SOLUTION benchmark: call fn warmup times untimed; then read the clock, and time each call on its own (clock, fn, clock) until len(samples) >= min_count and the run has lasted min_seconds
        for _ in range(self.warmup):
            self.fn()
        samples = []
        run_start = self.clock()
        while True:
            start = self.clock()
            self.fn()
            end = self.clock()
            samples.append(end - start)
            if len(samples) >= self.min_count and end - run_start >= self.min_seconds:
                return samples, end - run_start
        # END SOLUTION

    def run(self) -> Result:
        """Check accuracy first; below target, a Result with no timing; otherwise `measure` and summarise."""
        # BEGIN SOLUTION accuracy_first: call the accuracy check (if any) before anything else, as a float; below target (nan too: `not accuracy >= target`), return self.result(accuracy, [], 0.0) untimed
        accuracy = None if self.accuracy is None else float(self.accuracy())
        if accuracy is not None and not accuracy >= self.target:
            return self.result(accuracy, [], 0.0)
        # END SOLUTION
        samples, duration = self.measure()
        return self.result(accuracy, samples, duration)

    def result(self, accuracy: float | None, samples: list[float], duration: float) -> Result:
        """The Result of this benchmark for these numbers, summarised when there are samples."""
        return Result(name=self.name, scenario=self.scenario, items=self.items, warmup=self.warmup,
                      min_count=self.min_count, min_seconds=float(self.min_seconds), accuracy=accuracy,
                      target=None if self.target is None else float(self.target),
                      samples=tuple(float(s) for s in samples), duration=float(duration),
                      summary=summarize(samples, self.confidence) if samples else None)


# -- comparing two implementations ---------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """How much faster the candidate is than the baseline: speedup > 1 means faster."""

    speedup: float
    low: float  # the interval of the speed-up
    high: float
    confidence: float
    paired: bool
    verdict: str  # FASTER, SLOWER or NO_DIFFERENCE

    def __str__(self) -> str:
        return (f"{self.speedup:.2f}x: {self.verdict} ({self.confidence:.0%} interval {self.low:.2f}x to "
                f"{self.high:.2f}x, {'paired' if self.paired else 'independent'} samples)")


def compare(baseline, candidate, *, paired: bool, confidence: float = 0.95) -> Comparison:
    """The speed-up of `candidate` over `baseline` (two lists of seconds per call), with its interval and a verdict.

    paired=False (independent runs): the speed-up is the ratio of the means,
    mean(baseline) / mean(candidate). Its interval comes from the two means' t intervals,
    [max(b_low, 0) / c_high, b_high / c_low] (infinite when c_low <= 0); it holds 1
    exactly when the two intervals overlap.
    paired=True (samples[i] of both taken back to back, as `interleaved` does; equal lengths,
    every time > 0): the speed-up is the geometric mean of the per-pair ratios, exp(mean(log(b / c))),
    and its interval is exp of the t interval of those log-ratios: a slow spell of the machine
    slows both halves of a pair, and cancels in their ratio.

    The verdict is FASTER when the whole interval lies above 1, SLOWER when below, and
    NO_DIFFERENCE when it holds 1: then the data cannot tell the two apart.
    """
    if not isinstance(paired, bool):
        raise TypeError(f"compare: paired must be True or False, got {paired!r}")
    b = as_samples(baseline, "compare (baseline)", minimum=2)
    c = as_samples(candidate, "compare (candidate)", minimum=2)
    check_confidence(confidence, "compare")
    if paired and b.size != c.size:
        raise ValueError(f"compare: paired samples need equal lengths; baseline has {b.size}, candidate {c.size}")
    if paired and ((b <= 0).any() or (c <= 0).any()):
        raise ValueError("compare: paired ratios need every time > 0; a time of 0 means the clock did not "
                         "advance: time more work per call")
    # BEGIN SOLUTION compare: paired: t interval of the log-ratios log(b / c), exponentiated; independent: ratio of means, interval from the two t intervals; then the verdict from where 1 lies
    if paired:
        log_ratios = np.log(b) - np.log(c)  # (n,)
        low, high = confidence_interval(log_ratios, confidence)
        speedup, low, high = math.exp(log_ratios.mean()), math.exp(low), math.exp(high)
    else:
        b_low, b_high = confidence_interval(b, confidence)
        c_low, c_high = confidence_interval(c, confidence)
        speedup = float(b.mean() / c.mean())
        low = max(b_low, 0.0) / c_high
        high = b_high / c_low if c_low > 0 else math.inf
    verdict = FASTER if low > 1 else SLOWER if high < 1 else NO_DIFFERENCE
    return Comparison(speedup=speedup, low=low, high=high, confidence=confidence, paired=paired, verdict=verdict)
    # END SOLUTION


def interleaved(baseline, candidate, *, count: int, warmup: int = 1, clock=time.perf_counter) -> tuple[list[float], list[float]]:
    """Time two callables in alternation: `warmup` untimed rounds, then `count` rounds of baseline, candidate.

    Returns (baseline seconds, candidate seconds), pair i measured back to back: what
    compare(..., paired=True) expects.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise ValueError(f"interleaved: count must be an int of at least 2, got {count!r}")
    # BEGIN SOLUTION compare: warm both up untimed; then each round time baseline, then candidate, each call between two clock reads
    for _ in range(warmup):
        baseline()
        candidate()
    times = ([], [])
    for _ in range(count):
        for fn, seconds in zip((baseline, candidate), times):
            start = clock()
            fn()
            seconds.append(clock() - start)
    return times
    # END SOLUTION


# -- the two MLPerf scenarios --------------------------------------------------------------------


def single_stream(model, queries, **options) -> Result:
    """MLPerf's single-stream scenario: one query at a time, `model(query)` timed per query.

    `queries` (a list of single inputs) are used in turn, round and round, warm-up
    included. Read `result.summary.p90` (MLPerf Inference's metric, over at least 1,024
    queries) or `result.summary.median` (MLPerf Tiny's). `options` are Benchmark's:
    name, warmup, min_count, min_seconds, accuracy, target, clock, confidence.
    """
    queries = list(queries)
    if not queries:
        raise ValueError("single_stream: no queries; give at least one input")
    # BEGIN SOLUTION scenarios: itertools.cycle the queries; benchmark a callable that runs model on the next one, scenario "single-stream", 1 item per call
    next_query = itertools.cycle(queries).__next__
    return Benchmark(lambda: model(next_query()), scenario="single-stream", items=1, **options).run()
    # END SOLUTION


def offline(model, batch, **options) -> Result:
    """MLPerf's offline scenario: the whole `batch` in each call; `result.throughput` is items per second.

    Each timed call is `model(batch)` and counts len(batch) items. `options` are Benchmark's.
    """
    if len(batch) == 0:
        raise ValueError("offline: the batch is empty; give at least one item")
    # BEGIN SOLUTION scenarios: benchmark model(batch), scenario "offline", len(batch) items per call
    return Benchmark(lambda: model(batch), scenario="offline", items=len(batch), **options).run()
    # END SOLUTION


# -- reports -------------------------------------------------------------------------------------


def blas_info() -> str | None:
    """numpy's BLAS as "name version" from np.show_config(mode="dicts"); None when numpy cannot say."""
    # BEGIN SOLUTION reports: read ["Build Dependencies"]["blas"] of np.show_config(mode="dicts"), inside try: any failure gives None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # an older numpy, another build layout: the report goes on without it
        return None
    # END SOLUTION


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The CPU's name: the first "model name" line of `cpuinfo` (Linux), else platform.processor(), else None."""
    # BEGIN SOLUTION reports: read the file inside try (OSError: not Linux); the text after ':' on the first "model name" line; fall back on platform.processor() or None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
    # END SOLUTION


def environment(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """Where the numbers were measured. A probe that cannot answer gives None; none raises.

    Keys: python, implementation, numpy, blas, threads (each of THREAD_VARIABLES -> its value
    or None when unset), cpu_model, cpu_count (logical CPUs), cpus_usable (those this process
    may run on), platform.
    """
    # BEGIN SOLUTION reports: the versions (platform.python_version, np.__version__), blas_info(), each THREAD_VARIABLES value from os.environ, cpu_model(cpuinfo), os.cpu_count(), len(os.sched_getaffinity(0)) where it exists, platform.platform()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_model": cpu_model(cpuinfo),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
    }
    # END SOLUTION


def result_record(result: Result) -> dict:
    """One result as the JSON report writes it (every field is described in the lesson)."""
    # BEGIN SOLUTION reports: the Result's fields with units in their names (duration_s, samples_s, ...), status, throughput, and the summary as a dict (dataclasses.asdict) or None; lists, not tuples
    statistics = None
    if result.summary is not None:
        statistics = dataclasses.asdict(result.summary)
        statistics["outliers"] = list(result.summary.outliers)
    return {
        "name": result.name,
        "scenario": result.scenario,
        "status": result.status,
        "accuracy": result.accuracy,
        "target": result.target,
        "warmup": result.warmup,
        "min_count": result.min_count,
        "min_seconds": result.min_seconds,
        "items_per_call": result.items,
        "duration_s": result.duration,
        "throughput_per_s": result.throughput,
        "statistics_s": statistics,
        "samples_s": list(result.samples),
    }
    # END SOLUTION


def to_json(results, env: dict | None = None) -> str:
    """The versioned JSON report of `results`: format, version, environment (env, or `environment()`), results."""
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "environment": environment() if env is None else env,
        "results": [result_record(result) for result in results],
    }
    return json.dumps(report, indent=2, allow_nan=False)  # strict JSON: a nan would be a bug, not a number


def milliseconds(seconds: float) -> str:
    """Seconds as milliseconds to 4 significant digits: 1.000, 0.003435, 80.33."""
    return f"{seconds * 1e3:#.4g}"


def to_markdown(results, env: dict | None = None) -> str:
    """A Markdown table of `results`, one row each, times in milliseconds; then the environment, one line."""
    env = environment() if env is None else env
    lines = ["| benchmark | scenario | accuracy | timed calls | median ms | p90 ms | p99 ms | mean ms (interval) "
             "| items/s | outliers |", "|---|---|---|---|---|---|---|---|---|---|"]
    # BEGIN SOLUTION reports: one row per result: accuracy against its target (or "-"); an untimed result says "not timed: below target" and leaves the time cells empty; times through milliseconds()
    for result in results:
        accuracy = "-" if result.accuracy is None else f"{result.accuracy:.4g} (target {result.target:.4g})"
        if not result.timed:
            cells = [result.name, result.scenario, accuracy, "not timed: below target", "", "", "", "", "", ""]
        else:
            s = result.summary
            cells = [result.name, result.scenario, accuracy, str(s.count), milliseconds(s.median),
                     milliseconds(s.p90), milliseconds(s.p99),
                     f"{milliseconds(s.mean)} ({milliseconds(s.ci_low)} to {milliseconds(s.ci_high)}, "
                     f"{s.confidence:.0%})", f"{result.throughput:,.1f}", str(len(s.outliers))]
        lines.append("| " + " | ".join(cells) + " |")
    # END SOLUTION
    threads = ", ".join(f"{name}={value}" for name, value in env.get("threads", {}).items() if value is not None)
    lines += ["", f"Measured with Python {env.get('python')} ({env.get('implementation')}), numpy {env.get('numpy')}, "
              f"BLAS {env.get('blas') or 'unknown'}, threads {threads or 'not set'}, CPU {env.get('cpu_model') or 'unknown'} "
              f"({env.get('cpus_usable')} of {env.get('cpu_count')} usable), {env.get('platform')}."]
    return "\n".join(lines) + "\n"

"""Kata 19 · Benchmarking: the ordered suite. Run it with `python -m pytest katas/19_benchmarking`.

Checkpoints, in order: percentile, spread, t_distribution, confidence_interval, summary,
benchmark, accuracy_first, compare, scenarios, reports, optimize. The lesson is
katas/19_benchmarking/README.md.

Most tests time a made-up workload with a made-up clock (`Scripted`): the clock stands still
until the workload runs, so every sample is known exactly and every statistic can be checked
against a value worked out by hand.
"""

import json
import math
import os
import platform

import numpy as np
import pytest

from harness.budgets import assert_time_ratio
from harness.checks import assert_close
from tinytorch.benchmarking import (FASTER, NO_DIFFERENCE, REPORT_FORMAT, REPORT_VERSION, SLOWER,
                                    THREAD_VARIABLES, Benchmark, Comparison, Result, Summary, blas_info,
                                    compare, confidence_interval, cpu_model, environment, interleaved,
                                    offline, outliers, percentile, result_record, sample_std, single_stream,
                                    summarize, t_cdf, t_quantile, to_json, to_markdown, tukey_fences)

# Student t quantiles as printed in statistics tables (and by scipy.stats.t.ppf).
T_TABLE = {  # (p, df) -> t
    (0.975, 1): 12.706205, (0.975, 2): 4.302653, (0.975, 4): 2.776445, (0.975, 9): 2.262157,
    (0.975, 30): 2.042272, (0.975, 120): 1.979930, (0.95, 4): 2.131847, (0.995, 9): 3.249836,
    (0.9, 5): 1.475884, (0.95, 9): 1.833113,
}
Z_975 = 1.959964  # the normal quantile, t's limit as df grows


class Scripted:
    """A made-up world with exact times: the clock stands still until the workload runs.

    Each call of `work` moves the clock on by the next of `durations` (the last repeats for
    ever). The clock starts at 1000 s, as a real clock starts anywhere. `log` records, in order,
    every clock read ("clock"), workload call ("work") and accuracy check ("accuracy").
    """

    def __init__(self, *durations):
        self.durations = list(durations)
        self.now = 1000.0
        self.log = []
        self.calls = 0
        self.inputs = []

    def clock(self):
        self.log.append("clock")
        return self.now

    def work(self, *inputs):
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1
        self.inputs.extend(inputs)
        self.log.append("work")

    def accuracy(self, value, seconds=0.0):
        """An accuracy check that returns `value` and takes `seconds` of the made-up clock."""
        def check():
            self.log.append("accuracy")
            self.now += seconds
            return value
        return check

    @property
    def reads(self) -> int:
        return self.log.count("clock")


class Overhead(Scripted):
    """A Scripted world in which reading the clock costs `gap` seconds too: time passes between calls."""

    def __init__(self, gap, *durations):
        super().__init__(*durations)
        self.gap = gap

    def clock(self):
        now = super().clock()
        self.now += self.gap
        return now


def close(got, expected, what: str, rtol: float = 1e-9, atol: float = 0.0) -> None:
    assert_close(got, expected, what, rtol=rtol, atol=atol)


def assert_float(value, what: str) -> None:
    assert type(value) is float, f"{what}: expected a Python float, got {type(value).__name__} ({value!r})"


# -- percentile -----------------------------------------------------------------------------------


@pytest.mark.checkpoint("percentile")
class TestPercentile:
    def test_samples_keep_their_order(self):
        """percentile sorts a copy: the caller's list and numpy array keep their run order.

        Hint: `x.sort()` sorts in place, and np.asarray hands back the caller's own float64
        array; np.sort(x) returns a sorted copy.
        """
        samples = np.array([0.4, 0.1, 0.3, 0.2])
        as_list = [0.4, 0.1, 0.3, 0.2]
        percentile(samples, 50)
        percentile(as_list, [10, 90])
        assert samples.tolist() == [0.4, 0.1, 0.3, 0.2], f"the numpy samples were changed to {samples.tolist()}"
        assert as_list == [0.4, 0.1, 0.3, 0.2], f"the list of samples was changed to {as_list}"

    def test_one_sample_is_every_percentile(self):
        """With one sample, p0, p37.5, p50, p90, p99 and p100 all equal it, as Python floats."""
        for q in (0, 37.5, 50, 90, 99, 100):
            got = percentile([0.004], q)
            assert_float(got, f"percentile([0.004], {q})")
            assert got == 0.004, f"percentile([0.004], {q}): expected 0.004, got {got}"

    def test_interpolates_between_order_statistics(self):
        """On [4, 1, 3, 2]: p0 = 1, p25 = 1.75, p50 = 2.5, p90 = 3.7, p99 = 3.97, p100 = 4 (rank h = 3q/100).

        Hint: sort, then the fractional rank is h = (n - 1) * q / 100 counted from 0; interpolate
        between x[floor(h)] and x[floor(h) + 1]. n * q / 100 is off by one; rounding h instead
        of interpolating is the nearest-rank rule, another definition.
        """
        for q, expected in ((0, 1.0), (25, 1.75), (50, 2.5), (90, 3.7), (99, 3.97), (100, 4.0)):
            close(percentile([4.0, 1.0, 3.0, 2.0], q), expected, f"percentile([4, 1, 3, 2], {q})")

    def test_ten_samples(self):
        """On ten samples 1..10 (shuffled): p50 = 5.5, p90 = 9.1, p99 = 9.91; the nearest-rank rule would say 5, 9 and 10."""
        samples = [7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0]
        for q, expected in ((50, 5.5), (90, 9.1), (99, 9.91), (10, 1.9)):
            close(percentile(samples, q), expected, f"percentile(1..10, {q})")

    def test_ties(self):
        """Tied samples: [5, 5, 5, 7] gives p25 = p50 = 5, p90 = 6.4, p100 = 7; [2, 2, 2] gives 2 everywhere."""
        for q, expected in ((25, 5.0), (50, 5.0), (90, 6.4), (100, 7.0)):
            close(percentile([5.0, 7.0, 5.0, 5.0], q), expected, f"percentile([5, 7, 5, 5], {q})")
        for q in (0, 50, 99):
            close(percentile([2.0, 2.0, 2.0], q), 2.0, f"percentile([2, 2, 2], {q})")

    def test_several_percentiles_at_once(self):
        """A sequence of q gives a float64 array, one value per q, equal to asking for each alone."""
        samples = [7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0]
        for qs in ([0, 50, 90, 99, 100], (25, 75), np.array([90.0])):
            got = percentile(samples, qs)
            assert isinstance(got, np.ndarray), f"percentile(samples, {qs!r}): expected a numpy array, got {type(got).__name__}"
            assert got.dtype == np.float64 and got.shape == (len(qs),), (
                f"percentile(samples, {qs!r}): expected float64 of shape ({len(qs)},), got {got.dtype} {got.shape}")
            close(got, [percentile(samples, float(q)) for q in qs], f"percentile(samples, {qs!r})")

    def test_integer_samples_give_floats(self):
        """Integer samples interpolate as floats: percentile([1, 2], 50) is 1.5, a Python float."""
        got = percentile([1, 2], 50)
        assert_float(got, "percentile([1, 2], 50)")
        assert got == 1.5, f"percentile([1, 2], 50): expected 1.5, got {got}"

    @pytest.mark.parametrize("n", [2, 3, 7, 100, 1001])
    def test_agrees_with_numpy_default(self, n):
        """On seeded random samples of several sizes, every q agrees with np.percentile's default (linear) rule."""
        seed = 1900 + n
        samples = np.random.default_rng(seed).lognormal(-6, 0.5, n)
        qs = [0, 1, 12.5, 25, 50, 75, 90, 95, 99, 99.9, 100]
        close(percentile(samples, qs), np.percentile(samples, qs), f"percentile of {n} samples (seed {seed})", rtol=1e-12)

    def test_q_must_be_a_percentage(self):
        """q is a percentage: 50 works; 101, -1, nan, or a list holding 120 is a ValueError naming q."""
        assert percentile([1.0, 2.0, 3.0], 50) == 2.0, "percentile([1, 2, 3], 50): expected 2.0"
        for bad in (101, -1, float("nan"), [50, 120]):
            with pytest.raises(ValueError, match="q"):
                percentile([1.0, 2.0, 3.0], bad)

    def test_no_samples_is_an_error(self):
        """Percentiles of [] are a ValueError that says a sample is needed, of a 2-D array one naming its shape; of [1.0] they work."""
        assert percentile([1.0], 90) == 1.0, "percentile([1.0], 90): expected 1.0"
        with pytest.raises(ValueError, match="at least 1"):
            percentile([], 50)
        with pytest.raises(ValueError, match=r"\(2, 2\)"):
            percentile([[1.0, 2.0], [3.0, 4.0]], 50)


# -- spread ---------------------------------------------------------------------------------------


@pytest.mark.checkpoint("spread")
class TestSpread:
    def test_samples_keep_their_order(self):
        """sample_std, tukey_fences and outliers leave the caller's samples as they were."""
        samples = np.array([32.0, 1.0, 2.0, 4.0, 8.0, 16.0])
        sample_std(samples)
        tukey_fences(samples)
        outliers(samples)
        assert samples.tolist() == [32.0, 1.0, 2.0, 4.0, 8.0, 16.0], f"the samples were changed to {samples.tolist()}"

    def test_sample_std_divides_by_n_minus_1(self):
        """sample_std([2, 4, 4, 4, 5, 5, 7, 9]) = sqrt(32 / 7) = 2.13809 (the population formula gives 2).

        Hint: divide the sum of squared deviations by n - 1, not n (np.std's default ddof=0 is n).
        """
        got = sample_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
        assert_float(got, "sample_std")
        close(got, math.sqrt(32 / 7), "sample_std([2, 4, 4, 4, 5, 5, 7, 9])")

    def test_sample_std_small_and_flat(self):
        """sample_std([1, 3]) = sqrt(2); equal samples have a spread of exactly 0."""
        close(sample_std([1.0, 3.0]), math.sqrt(2), "sample_std([1, 3])")
        got = sample_std([0.25] * 5)
        assert got == 0.0, f"sample_std of five equal samples: expected 0.0, got {got}"

    def test_sample_std_needs_two_samples(self):
        """One sample has no sample standard deviation: a ValueError (two samples work)."""
        sample_std([1.0, 2.0])
        with pytest.raises(ValueError, match="at least 2"):
            sample_std([1.0])

    def test_tukey_fences_on_whole_quartiles(self):
        """[1, 2, ..., 8, 100]: Q1 = 3, Q3 = 7, IQR = 4, so the fences are (3 - 6, 7 + 6) = (-3, 13)."""
        got = tukey_fences([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 100.0])
        assert isinstance(got, tuple) and len(got) == 2, f"tukey_fences: expected a (low, high) tuple, got {got!r}"
        assert_float(got[0], "tukey_fences low")
        assert_float(got[1], "tukey_fences high")
        close(got, (-3.0, 13.0), "tukey_fences([1..8, 100])")

    def test_tukey_fences_use_interpolated_quartiles(self):
        """[1, 2, 4, 8, 16, 32]: Q1 = 2.5 and Q3 = 14 by the percentile rule, so the fences are (-14.75, 31.25).

        Hint: Q1 and Q3 are percentile(x, 25) and percentile(x, 75), the same rule as every
        other percentile here; the medians of the lower and upper halves give (2, 16), another rule.
        """
        close(tukey_fences([16.0, 1.0, 32.0, 2.0, 8.0, 4.0]), (-14.75, 31.25), "tukey_fences([1, 2, 4, 8, 16, 32])")

    def test_tukey_fences_k(self):
        """k widens the fences: k = 3 on [1, 2, 4, 8, 16, 32] gives (2.5 - 34.5, 14 + 34.5) = (-32, 48.5)."""
        close(tukey_fences([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], k=3), (-32.0, 48.5), "tukey_fences(k=3)")

    def test_outliers_are_flagged_in_run_order(self):
        """outliers([32, 1, 2, 4, 8, 16]) flags the first sample only: one bool per sample, in the samples' order.

        Hint: compare the samples as given, not a sorted copy: the flags must line up with the runs.
        """
        got = outliers([32.0, 1.0, 2.0, 4.0, 8.0, 16.0])
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_, (
            f"outliers: expected a numpy array of bools, got {type(got).__name__} {getattr(got, 'dtype', '')}")
        assert got.tolist() == [True, False, False, False, False, False], (
            f"outliers([32, 1, 2, 4, 8, 16]): expected only the first flagged, got {got.tolist()}")

    def test_a_sample_on_a_fence_is_not_an_outlier(self):
        """[8, 11, 12, 13, 16] has fences (8, 16): samples exactly on them are not outliers; 7.5 and 16.5 are."""
        got = outliers([8.0, 11.0, 12.0, 13.0, 16.0])
        assert not got.any(), f"outliers([8, 11, 12, 13, 16]) with fences (8, 16): expected none, got {got.tolist()}"
        got = outliers([16.5, 11.0, 12.0, 13.0, 7.5])
        assert got.tolist() == [True, False, False, False, True], (
            f"outliers([16.5, 11, 12, 13, 7.5]) with fences (8, 16): expected [True, False, False, False, True], "
            f"got {got.tolist()}")

    def test_outliers_k(self):
        """With k = 3, 16.5 is inside the fences (5, 19) of [11, 12, 13, 7.5, 16.5]."""
        got = outliers([11.0, 12.0, 13.0, 7.5, 16.5], k=3)
        assert not got.any(), f"outliers(k=3): expected none inside fences (5, 19), got {got.tolist()}"


# -- t_distribution -------------------------------------------------------------------------------


@pytest.mark.checkpoint("t_distribution")
class TestTDistribution:
    def test_cdf_with_one_degree_of_freedom(self):
        """With df = 1, t is the Cauchy distribution: P(T <= t) = 1/2 + atan(t) / pi, as a Python float."""
        for t in (-30.0, -3.0, -0.5, 0.0, 0.7, 12.706205):
            got = t_cdf(t, 1)
            assert_float(got, f"t_cdf({t}, 1)")
            close(got, 0.5 + math.atan(t) / math.pi, f"t_cdf({t}, df=1)", rtol=1e-10)

    def test_cdf_with_two_degrees_of_freedom(self):
        """With df = 2: P(T <= t) = 1/2 + t / (2 sqrt(2 + t^2))."""
        for t in (-4.0, -1.0, 0.25, 2.0, 9.0):
            close(t_cdf(t, 2), 0.5 + t / (2 * math.sqrt(2 + t * t)), f"t_cdf({t}, df=2)", rtol=1e-10)

    def test_cdf_keeps_its_digits_near_zero(self):
        """Within 1e-6 of t = 0, t_cdf still matches the closed forms for df = 1 and 2 to 1e-13.

        Hint: near t = 0, x = df / (df + t^2) rounds to (almost) 1, and 1 - x computed by
        subtraction keeps few or none of the digits of t^2 / (df + t^2). Pass that second
        form to regularized_beta as one_minus_x.
        """
        for t in (1e-9, -1e-9, 1e-6, -1e-6):
            close(t_cdf(t, 1), 0.5 + math.atan(t) / math.pi, f"t_cdf({t}, df=1)", rtol=1e-13)
            close(t_cdf(t, 2), 0.5 + t / (2 * math.sqrt(2 + t * t)), f"t_cdf({t}, df=2)", rtol=1e-13)

    def test_cdf_is_symmetric_and_tabulated(self):
        """P(T <= -t) = 1 - P(T <= t); t_cdf(2.262157, 9) = 0.975; t_cdf(0, df) = 0.5.

        Hint: the tail beyond |t| is the same on both sides; only t > 0 needs 1 - tail.
        """
        close(t_cdf(2.262157, 9), 0.975, "t_cdf(2.262157, 9)", rtol=1e-6)
        close(t_cdf(-2.262157, 9), 0.025, "t_cdf(-2.262157, 9)", rtol=1e-5)
        for df in (3, 4.5, 30):
            close(t_cdf(0.0, df), 0.5, f"t_cdf(0, {df})")
            close(t_cdf(-1.3, df) + t_cdf(1.3, df), 1.0, f"t_cdf(-1.3, {df}) + t_cdf(1.3, {df})")

    @pytest.mark.parametrize("p, df", list(T_TABLE), ids=[f"p{p}-df{df}" for p, df in T_TABLE])
    def test_quantile_matches_the_table(self, p, df):
        """t_quantile(p, df) matches the printed table to 6 digits: t(0.975, 9) = 2.262157, t(0.975, 1) = 12.706205, ..."""
        got = t_quantile(p, df)
        assert_float(got, f"t_quantile({p}, {df})")
        close(got, T_TABLE[p, df], f"t_quantile({p}, {df})", rtol=1e-6)

    def test_lower_quantiles_are_negative(self):
        """t_quantile(0.025, 9) = -2.262157 and t_quantile(0.05, 4) = -2.131847; the median is 0."""
        close(t_quantile(0.025, 9), -2.262157, "t_quantile(0.025, 9)", rtol=1e-6)
        close(t_quantile(0.05, 4), -2.131847, "t_quantile(0.05, 4)", rtol=1e-6)
        close(t_quantile(0.5, 7), 0.0, "t_quantile(0.5, 7)", atol=1e-12)

    def test_fractional_degrees_of_freedom(self):
        """df need not be whole: t_quantile(0.975, 4.5) = 2.658912, between df = 4 (2.776) and df = 5 (2.571)."""
        close(t_quantile(0.975, 4.5), 2.658912, "t_quantile(0.975, 4.5)", rtol=1e-6)

    def test_quantile_inverts_the_cdf(self):
        """t_cdf(t_quantile(p, df), df) == p across tails and degrees of freedom, far out in the tails too."""
        for df in (1, 3, 9, 50):
            for p in (0.001, 0.2, 0.6, 0.9, 0.999, 0.99999):
                close(t_cdf(t_quantile(p, df), df), p, f"t_cdf(t_quantile({p}, {df}), {df})", rtol=1e-9)

    def test_tends_to_the_normal_quantile(self):
        """t(0.975, df) falls steadily towards 1.959964 as df grows, and is within 1e-5 of it at df = 1e6."""
        values = [t_quantile(0.975, df) for df in (1, 2, 5, 10, 30, 100, 1000)]
        assert all(a > b for a, b in zip(values, values[1:])) and values[-1] > Z_975, (
            f"t(0.975, df) for df = 1, 2, 5, 10, 30, 100, 1000 should fall towards {Z_975}; got {values}")
        close(t_quantile(0.975, 1_000_000), Z_975, "t_quantile(0.975, 1e6)", rtol=1e-5)

    def test_arguments_are_checked(self):
        """p must lie strictly between 0 and 1 and df must be positive: ValueErrors naming p or df."""
        close(t_quantile(0.975, 9), 2.262157, "t_quantile(0.975, 9)", rtol=1e-6)
        for p in (0.0, 1.0, 1.2):
            with pytest.raises(ValueError, match="p"):
                t_quantile(p, 9)
        for df in (0, -1):
            with pytest.raises(ValueError, match="df"):
                t_quantile(0.975, df)


# -- confidence_interval --------------------------------------------------------------------------


TEN = [0.010, 0.012, 0.011, 0.013, 0.009, 0.010, 0.014, 0.011, 0.012, 0.010]  # mean 0.0112, s 0.00154919


@pytest.mark.checkpoint("confidence_interval")
class TestConfidenceInterval:
    def test_samples_keep_their_order(self):
        """confidence_interval leaves the caller's samples as they were."""
        samples = np.array(TEN)
        confidence_interval(samples)
        assert samples.tolist() == TEN, f"the samples were changed to {samples.tolist()}"

    def test_ten_samples_use_t_not_z(self):
        """Ten samples at 95%: mean -/+ 2.262157 * s / sqrt(10) = (0.0100918, 0.0123082), not 1.96's (0.0102398, ...).

        Hint: the half-width is t_quantile(0.975, n - 1) * s / sqrt(n). 1.96 is the normal
        quantile, right only for many samples; at n = 10 it makes the interval 13% too narrow.
        """
        got = confidence_interval(TEN)
        assert isinstance(got, tuple) and len(got) == 2, f"confidence_interval: expected a (low, high) tuple, got {got!r}"
        assert_float(got[0], "confidence_interval low")
        assert_float(got[1], "confidence_interval high")
        close(got, (0.010091773846632459, 0.012308226153367538), "confidence_interval(ten samples)", rtol=1e-7)

    def test_two_samples(self):
        """[1, 3]: mean 2, s = sqrt(2), t(0.975, 1) = 12.706: the interval is (-10.706, 14.706).

        Hint: the degrees of freedom are n - 1 (here 1), and the standard error divides s by sqrt(n).
        """
        close(confidence_interval([1.0, 3.0]), (-10.706204736174694, 14.706204736174694),
              "confidence_interval([1, 3])", rtol=1e-7)

    def test_confidence_option(self):
        """At 90% the ten samples give (0.0103020, 0.0120980), at 99% (0.0096079, 0.0127921)."""
        close(confidence_interval(TEN, 0.90), (0.010301961734819069, 0.012098038265180928),
              "confidence_interval(ten samples, 0.90)", rtol=1e-7)
        close(confidence_interval(TEN, confidence=0.99), (0.009607912235027573, 0.012792087764972423),
              "confidence_interval(ten samples, 0.99)", rtol=1e-7)

    def test_equal_samples_have_no_width(self):
        """Five equal samples: the interval is the mean on both sides."""
        close(confidence_interval([0.5] * 5), (0.5, 0.5), "confidence_interval of five 0.5s")

    def test_arguments_are_checked(self):
        """One sample, or a confidence of 0, 1 or 95 (a percentage) is a ValueError."""
        confidence_interval([1.0, 2.0])
        with pytest.raises(ValueError, match="at least 2"):
            confidence_interval([1.0])
        for bad in (0.0, 1.0, 95):
            with pytest.raises(ValueError, match="confidence"):
                confidence_interval(TEN, bad)


# -- summary --------------------------------------------------------------------------------------


SPIKY = [0.010, 0.011, 0.012, 0.011, 0.010, 0.013, 0.012, 0.011, 0.040, 0.012]  # one slow call, at position 8


@pytest.mark.checkpoint("summary")
class TestSummary:
    def test_every_statistic(self):
        """summarize of ten samples with one slow call: mean 0.0142, median 0.0115, p90 0.0157, p99 0.03757, ...

        Hint: one percentile call for [50, 90, 99]; the interval, fences and outliers from the
        functions you wrote; `outliers` is the tuple of the flagged samples' positions.
        """
        got = summarize(SPIKY)
        assert isinstance(got, Summary), f"summarize: expected a Summary, got {type(got).__name__}"
        expected = dict(count=10, mean=0.0142, std=0.009114091653405, median=0.0115, p90=0.0157, p99=0.03757,
                        min=0.010, max=0.040, confidence=0.95, ci_low=0.00768017159408714,
                        ci_high=0.02071982840591286, fence_low=0.0095, fence_high=0.0135)
        for field, value in expected.items():
            close(getattr(got, field), value, f"summarize(...).{field}", rtol=1e-7)
        assert got.outliers == (8,), f"summarize(...).outliers: expected (8,), the slow call's position, got {got.outliers!r}"

    def test_types(self):
        """count is an int, outliers a tuple of ints, every other field a Python float."""
        got = summarize(np.array(SPIKY))
        assert type(got.count) is int, f"Summary.count: expected an int, got {type(got.count).__name__}"
        assert type(got.outliers) is tuple and all(type(i) is int for i in got.outliers), (
            f"Summary.outliers: expected a tuple of ints, got {got.outliers!r}")
        for field in ("mean", "std", "median", "p90", "p99", "min", "max", "confidence", "ci_low", "ci_high",
                      "fence_low", "fence_high"):
            assert_float(getattr(got, field), f"Summary.{field}")

    def test_agrees_with_the_parts(self):
        """On seeded random samples, each field equals the function that defines it (percentile, sample_std, ...)."""
        seed = 19
        samples = np.random.default_rng(seed).lognormal(-6, 0.4, 57)
        got = summarize(samples)
        what = f"summarize (seed {seed})"
        close([got.median, got.p90, got.p99], percentile(samples, [50, 90, 99]), f"{what}: median, p90, p99")
        close(got.std, sample_std(samples), f"{what}: std")
        close((got.ci_low, got.ci_high), confidence_interval(samples), f"{what}: interval")
        close((got.fence_low, got.fence_high), tukey_fences(samples), f"{what}: fences")
        assert got.outliers == tuple(np.flatnonzero(outliers(samples)).tolist()), f"{what}: outliers"
        close((got.mean, got.min, got.max), (samples.mean(), samples.min(), samples.max()), f"{what}: mean, min, max")

    def test_confidence_option(self):
        """summarize(samples, 0.9) records 0.9 and gives the 90% interval."""
        got = summarize(TEN, 0.9)
        assert got.confidence == 0.9, f"Summary.confidence: expected 0.9, got {got.confidence}"
        close((got.ci_low, got.ci_high), (0.010301961734819069, 0.012098038265180928), "summarize(TEN, 0.9) interval",
              rtol=1e-7)

    def test_bad_samples_are_errors(self):
        """One sample, or a nan among them, is a ValueError; a nan's message names its position."""
        summarize([1.0, 2.0])
        with pytest.raises(ValueError, match="at least 2"):
            summarize([1.0])
        with pytest.raises(ValueError, match="sample 2"):
            summarize([1.0, 2.0, float("nan"), 3.0])


# -- benchmark ------------------------------------------------------------------------------------


@pytest.mark.checkpoint("benchmark")
class TestBenchmark:
    def test_warmup_is_not_timed(self):
        """warmup=3 slow calls (1 s, 0.5 s, 0.5 s) are run and left out: the samples are exactly the timed calls.

        Hint: call fn `warmup` times before the timing loop and do not record those calls; the
        first calls of real code are slow (caches, allocation, lazy setup) and would bias every statistic.
        """
        world = Scripted(1.0, 0.5, 0.5, 0.25, 0.125, 0.25, 0.375)
        samples, duration = Benchmark(world.work, warmup=3, min_count=4, min_seconds=0.0, clock=world.clock).measure()
        assert samples == [0.25, 0.125, 0.25, 0.375], (
            f"samples: expected the four timed calls [0.25, 0.125, 0.25, 0.375], got {samples}")
        assert world.calls == 7, f"fn should run 3 warm-up + 4 timed times, ran {world.calls}"
        assert duration == 1.0, f"duration: expected 1.0 s of timed calls, got {duration}"

    def test_types(self):
        """measure returns (a list of Python floats, a Python float)."""
        world = Scripted(0.25)
        samples, duration = Benchmark(world.work, warmup=0, min_count=3, min_seconds=0.0, clock=world.clock).measure()
        assert type(samples) is list and all(type(s) is float for s in samples), (
            f"samples: expected a list of floats, got {type(samples).__name__} {samples!r}")
        assert_float(duration, "duration")

    def test_each_call_is_timed_on_its_own(self):
        """Every timed call has a clock read just before it and just after it; each sample is that call alone.

        Hint: read the clock, call fn, read the clock: one sample per call, end - start. Reading
        the clock once before the loop and appending `end - start_of_run` records running totals.
        """
        world = Scripted(0.5, 0.25, 0.125, 0.25)
        samples, _ = Benchmark(world.work, warmup=1, min_count=3, min_seconds=0.0, clock=world.clock).measure()
        assert samples == [0.25, 0.125, 0.25], f"samples: expected [0.25, 0.125, 0.25], got {samples}"
        timed = [i for i, event in enumerate(world.log) if event == "work"][1:]
        for i in timed:
            assert world.log[i - 1] == "clock" and i + 1 < len(world.log) and world.log[i + 1] == "clock", (
                f"timed call at log position {i} is not between two clock reads: {world.log}")

    def test_min_count_is_reached(self):
        """min_count=5 with min_seconds=1.5 and 1 s calls: 5 calls, because both rules must hold.

        Hint: keep timing while len(samples) < min_count OR the run is shorter than min_seconds.
        """
        world = Scripted(1.0)
        samples, duration = Benchmark(world.work, warmup=0, min_count=5, min_seconds=1.5, clock=world.clock).measure()
        assert len(samples) == 5, f"min_count=5: expected 5 timed calls, got {len(samples)}"
        assert duration == 5.0, f"duration: expected 5.0 s, got {duration}"

    def test_min_seconds_keeps_the_run_going(self):
        """min_count=2 with min_seconds=2 and 0.25 s calls: 8 calls, since 2 calls last only 0.5 s.

        Hint: the run lasts from the start of the first timed call to the end of the latest; stop
        only when it is at least min_seconds AND min_count calls are done.
        """
        world = Scripted(0.25)
        samples, duration = Benchmark(world.work, warmup=0, min_count=2, min_seconds=2.0, clock=world.clock).measure()
        assert len(samples) == 8, f"min_seconds=2.0 with 0.25 s calls: expected 8 timed calls, got {len(samples)}"
        assert duration == 2.0, f"duration: expected 2.0 s, got {duration}"

    def test_reaching_min_seconds_exactly_is_enough(self):
        """0.5 s calls, min_count=2, min_seconds=1.0: the run stops at 2 calls, exactly 1 s long."""
        world = Scripted(0.5)
        samples, _ = Benchmark(world.work, warmup=0, min_count=2, min_seconds=1.0, clock=world.clock).measure()
        assert len(samples) == 2, f"a run of exactly min_seconds is long enough: expected 2 calls, got {len(samples)}"

    def test_warmup_does_not_count_towards_min_seconds(self):
        """Four 1 s warm-up calls, then 0.25 s calls with min_seconds=1.0: 4 timed calls, not 2.

        Hint: start the run's clock after the warm-up: min_seconds is the length of the timed run.
        """
        world = Scripted(1.0, 1.0, 1.0, 1.0, 0.25)
        samples, duration = Benchmark(world.work, warmup=4, min_count=2, min_seconds=1.0, clock=world.clock).measure()
        assert len(samples) == 4, f"min_seconds counts timed calls only: expected 4, got {len(samples)}"
        assert duration == 1.0, f"duration: expected 1.0 s (the warm-up excluded), got {duration}"

    def test_duration_includes_the_time_between_calls(self):
        """When time passes between the calls too, the duration runs from the run's start to the last call's end, not sum(samples).

        Hint: the run's duration is `end - run_start` (first clock read of the run to the last
        one), the time min_seconds is compared with; the sum of the samples leaves out what
        happens between the calls.
        """
        world = Overhead(0.0625, 0.25)  # each clock read costs 1/16 s, each call 1/4 s
        samples, duration = Benchmark(world.work, warmup=0, min_count=3, min_seconds=0.0, clock=world.clock).measure()
        assert samples == [0.3125] * 3, f"samples: expected three of 0.3125 s (call and one read), got {samples}"
        assert duration == 1.125, (
            f"duration: expected 1.125 s from the run's start to the last call's end, got {duration} "
            f"(the sum of the samples is {sum(samples)})")

    def test_defaults(self):
        """The defaults are warmup=10, min_count=100, min_seconds=1.0: with 1/128 s calls, 10 + 128 calls."""
        world = Scripted(1 / 128)
        samples, duration = Benchmark(world.work, clock=world.clock).measure()
        assert len(samples) == 128 and world.calls == 138, (
            f"defaults: expected 128 timed calls after 10 warm-up calls, got {len(samples)} of {world.calls}")
        assert duration == 1.0, f"duration: expected 1.0 s, got {duration}"

    def test_real_clock(self):
        """Without a clock, time.perf_counter times real calls: 3 positive samples within the run's duration."""
        samples, duration = Benchmark(lambda: sum(range(200)), warmup=1, min_count=3, min_seconds=0.0).measure()
        assert len(samples) == 3 and all(s > 0 for s in samples), f"expected 3 positive samples, got {samples}"
        assert duration >= sum(samples), f"the run ({duration} s) cannot be shorter than its calls ({sum(samples)} s)"

    def test_settings_are_checked(self):
        """warmup < 0, min_count < 2, min_seconds < 0, a fn or clock that is not callable: errors naming the setting."""
        world = Scripted(0.25)
        Benchmark(world.work, warmup=0, min_count=2, min_seconds=0.0, clock=world.clock).measure()
        for setting, bad in (("warmup", -1), ("min_count", 1), ("min_count", 2.5), ("min_seconds", -0.5),
                             ("items", 0), ("confidence", 1.5)):
            with pytest.raises(ValueError, match=setting):
                Benchmark(world.work, clock=world.clock, **{setting: bad})
        with pytest.raises(TypeError, match="fn"):
            Benchmark(42)
        with pytest.raises(TypeError, match="clock"):
            Benchmark(world.work, clock=1000.0)
        with pytest.raises(TypeError, match="accuracy"):
            Benchmark(world.work, accuracy=0.97, target=0.95)


# -- accuracy_first -------------------------------------------------------------------------------


@pytest.mark.checkpoint("accuracy_first")
class TestAccuracyFirst:
    def test_below_target_is_not_timed(self):
        """Accuracy 0.90 against a target of 0.95: fn never runs, the clock is never read, and the result says so.

        Hint: run the accuracy check before the warm-up and the timing; below target, return
        self.result(accuracy, [], 0.0) at once. A fast wrong model is not a result.
        """
        world = Scripted(0.25)
        result = Benchmark(world.work, warmup=2, min_count=3, min_seconds=0.0, clock=world.clock,
                           accuracy=world.accuracy(0.90), target=0.95).run()
        assert world.calls == 0, f"a model below its accuracy target must not run at all; fn ran {world.calls} times"
        assert world.reads == 0, f"a model below its target is not timed; the clock was read {world.reads} times"
        assert isinstance(result, Result), f"run: expected a Result, got {type(result).__name__}"
        assert result.samples == () and result.summary is None and not result.timed, (
            f"an untimed result has samples () and summary None; got {result.samples!r}, {result.summary!r}")
        assert result.status == "below target", f"status: expected 'below target', got {result.status!r}"
        assert result.accuracy == 0.90 and result.target == 0.95, (
            f"the result should record accuracy 0.9 and target 0.95, got {result.accuracy}, {result.target}")

    def test_nan_accuracy_is_below_every_target(self):
        """An accuracy of nan (a broken evaluation) is below target: not timed.

        Hint: `accuracy < target` is False for nan; ask whether it is NOT at least the target.
        """
        world = Scripted(0.25)
        result = Benchmark(world.work, warmup=0, min_count=2, clock=world.clock,
                           accuracy=world.accuracy(float("nan")), target=0.5).run()
        assert world.calls == 0 and not result.timed, f"a nan accuracy was timed: fn ran {world.calls} times"

    def test_accuracy_at_target_is_timed(self):
        """Accuracy exactly at its target passes: the model is warmed up and timed."""
        world = Scripted(0.25)
        result = Benchmark(world.work, warmup=1, min_count=3, min_seconds=0.0, clock=world.clock,
                           accuracy=world.accuracy(0.95), target=0.95).run()
        assert result.timed and result.samples == (0.25, 0.25, 0.25), (
            f"accuracy == target should be timed: expected samples (0.25, 0.25, 0.25), got {result.samples!r}")
        assert result.status == "timed", f"status: expected 'timed', got {result.status!r}"

    def test_accuracy_is_checked_once_before_anything_else(self):
        """The accuracy check runs exactly once, and before any call of fn or read of the clock.

        Hint: a benchmark that times first and checks after has already spent the time, and a
        check between warm-up and timing lets a wrong model warm up.
        """
        world = Scripted(0.25)
        Benchmark(world.work, warmup=2, min_count=2, min_seconds=0.0, clock=world.clock,
                  accuracy=world.accuracy(0.99), target=0.9).run()
        assert world.log.count("accuracy") == 1, f"the accuracy check ran {world.log.count('accuracy')} times, not once"
        assert world.log[0] == "accuracy", f"the first event should be the accuracy check; the run went {world.log}"

    def test_accuracy_check_is_outside_the_timed_run(self):
        """An accuracy check that takes 100 s adds nothing to the samples or to the run's duration."""
        world = Scripted(0.25)
        result = Benchmark(world.work, warmup=1, min_count=2, min_seconds=1.0, clock=world.clock,
                           accuracy=world.accuracy(0.99, seconds=100.0), target=0.9).run()
        assert result.samples == (0.25, 0.25, 0.25, 0.25), (
            f"samples: expected four 0.25 s calls (min_seconds=1.0), got {result.samples!r}")
        assert result.duration == 1.0, f"duration: expected 1.0 s, the accuracy check excluded; got {result.duration}"

    def test_the_result(self):
        """run() returns a Result with the benchmark's settings, the accuracy as a float, samples as a tuple and their summary."""
        world = Scripted(0.5, 0.25, 0.125, 0.375, 0.25)
        result = Benchmark(world.work, name="toy", warmup=1, min_count=4, min_seconds=0.5, clock=world.clock,
                           accuracy=world.accuracy(np.float64(0.97)), target=0.9, confidence=0.9).run()
        assert_float(result.accuracy, "Result.accuracy")
        assert (result.name, result.scenario, result.items, result.warmup, result.min_count, result.min_seconds,
                result.target) == ("toy", "custom", 1, 1, 4, 0.5, 0.9), f"the Result's settings are wrong: {result}"
        assert result.samples == (0.25, 0.125, 0.375, 0.25), f"samples: expected (0.25, 0.125, 0.375, 0.25), got {result.samples!r}"
        assert result.duration == 1.0, f"duration: expected 1.0, got {result.duration}"
        assert result.summary == summarize([0.25, 0.125, 0.375, 0.25], 0.9), (
            f"summary: expected summarize(samples, 0.9), got {result.summary}")

    def test_without_an_accuracy_check(self):
        """No accuracy check: the run is timed, and accuracy and target are None."""
        world = Scripted(0.25)
        result = Benchmark(world.work, warmup=0, min_count=2, min_seconds=0.0, clock=world.clock).run()
        assert result.timed and result.accuracy is None and result.target is None, (
            f"without a check: expected a timed result with accuracy None, got {result}")

    def test_accuracy_and_target_go_together(self):
        """An accuracy check without a target, or a target without a check, is a ValueError."""
        world = Scripted(0.25)
        Benchmark(world.work, warmup=0, min_count=2, clock=world.clock, accuracy=world.accuracy(1.0), target=1.0).run()
        with pytest.raises(ValueError, match="target"):
            Benchmark(world.work, accuracy=world.accuracy(1.0))
        with pytest.raises(ValueError, match="accuracy"):
            Benchmark(world.work, target=0.9)


# -- compare --------------------------------------------------------------------------------------

BASE = [1.0, 1.2, 1.1, 1.3, 0.9]  # mean 1.1, 95% interval (0.903676, 1.296324)
FAST = [0.50, 0.52, 0.48, 0.51, 0.49]  # mean 0.5, 95% interval (0.480368, 0.519632)
DRIFT = [1.0, 2.0, 3.0, 4.0, 5.0]  # the machine slows down during the run...
DRIFT_FAST = [0.80, 1.62, 2.38, 3.21, 3.99]  # ...and every paired call is about 1.25x faster


@pytest.mark.checkpoint("compare")
class TestCompare:
    def test_independent_speedup_and_interval(self):
        """Independent runs: speed-up = 1.1 / 0.5 = 2.2, interval (0.903676 / 0.519632, 1.296324 / 0.480368) = (1.739, 2.699): faster."""
        got = compare(BASE, FAST, paired=False)
        assert isinstance(got, Comparison), f"compare: expected a Comparison, got {type(got).__name__}"
        close((got.speedup, got.low, got.high), (2.2, 1.7390671345205326, 2.6986091515407753),
              "compare(BASE, FAST, paired=False): (speedup, low, high)", rtol=1e-7)
        assert got.verdict == FASTER, f"verdict: expected {FASTER!r}, got {got.verdict!r}"
        assert got.paired is False and got.confidence == 0.95, f"the Comparison should record paired=False and 0.95: {got}"
        for field in ("speedup", "low", "high"):
            assert_float(getattr(got, field), f"Comparison.{field}")

    def test_overlapping_intervals_are_no_difference(self):
        """Means 1.2 and 1.03 (speed-up 1.165) with overlapping intervals: the verdict is "no difference".

        Hint: a speed-up above 1 is not "faster" until its whole interval is above 1; with
        independent runs that is when the two means' intervals do not overlap.
        """
        got = compare([1.0, 1.4, 1.2, 0.9, 1.5], [1.0, 1.1, 0.9, 1.2, 0.95], paired=False)
        close((got.speedup, got.low, got.high), (1.1650485436893203, 0.748982162020739, 1.7224205062592164),
              "compare(overlapping, paired=False): (speedup, low, high)", rtol=1e-7)
        assert got.verdict == NO_DIFFERENCE, f"overlapping intervals: expected {NO_DIFFERENCE!r}, got {got.verdict!r}"

    def test_slower(self):
        """The other way round, the candidate is slower: speed-up 1 / 2.2 with the interval inverted."""
        got = compare(FAST, BASE, paired=False)
        close((got.speedup, got.low, got.high), (1 / 2.2, 1 / 2.6986091515407753, 1 / 1.7390671345205326),
              "compare(FAST, BASE, paired=False)", rtol=1e-7)
        assert got.verdict == SLOWER, f"verdict: expected {SLOWER!r}, got {got.verdict!r}"

    def test_paired_runs_cancel_the_drift(self):
        """Paired, DRIFT vs DRIFT_FAST is 1.2488x faster (1.2370 to 1.2608); as independent runs the drift hides it.

        Hint: paired=True works on the per-pair log-ratios log(b / c): their t interval,
        exponentiated. Each pair ran at the same moment, so the machine's drift cancels in it;
        the means of the two whole runs carry the drift, and their intervals overlap.
        """
        got = compare(DRIFT, DRIFT_FAST, paired=True)
        close((got.speedup, got.low, got.high), (1.2488327284871028, 1.2369791436869628, 1.2607999024882663),
              "compare(DRIFT, DRIFT_FAST, paired=True)", rtol=1e-7)
        assert got.verdict == FASTER and got.paired is True, f"paired: expected {FASTER!r}, paired=True; got {got}"
        for field in ("speedup", "low", "high"):
            assert_float(getattr(got, field), f"paired Comparison.{field}")
        got = compare(DRIFT, DRIFT_FAST, paired=False)
        close((got.speedup, got.low, got.high), (1.25, 0.261489211505639, 5.942700487486972),
              "compare(DRIFT, DRIFT_FAST, paired=False)", rtol=1e-7)
        assert got.verdict == NO_DIFFERENCE, f"independent: expected {NO_DIFFERENCE!r}, got {got.verdict!r}"

    def test_paired_interval_can_hold_one(self):
        """Paired samples whose ratios scatter widely around 1.15 (0.80 to 1.65): "no difference"."""
        got = compare([1.0, 1.4, 1.2, 0.9, 1.5], [1.0, 1.1, 0.9, 1.2, 0.95], paired=True)
        close((got.speedup, got.low, got.high), (1.1497954900971008, 0.8027677784354043, 1.646839477817944),
              "compare(scattered pairs, paired=True)", rtol=1e-7)
        assert got.verdict == NO_DIFFERENCE, f"verdict: expected {NO_DIFFERENCE!r}, got {got.verdict!r}"

    def test_intervals_reaching_below_zero(self):
        """An interval of a mean time that reaches below 0: the speed-up's ends are 0 or infinite, never negative.

        Hint: a time is never negative, so a baseline interval below 0 counts from 0 (low = 0 / c_high),
        and a candidate interval reaching 0 allows any speed-up (high = inf).
        """
        got = compare([1.0, 1.1, 0.9], [0.1, 5.0], paired=False)
        assert got.high == math.inf, f"upper end with the candidate's interval below 0: expected inf, got {got.high}"
        assert got.verdict == NO_DIFFERENCE, f"verdict: expected {NO_DIFFERENCE!r}, got {got.verdict!r}"
        got = compare([0.1, 5.0], [1.0, 1.1, 0.9], paired=False)
        assert got.low == 0.0, f"lower end with the baseline's interval below 0: expected 0.0, got {got.low}"
        assert got.verdict == NO_DIFFERENCE, f"verdict: expected {NO_DIFFERENCE!r}, got {got.verdict!r}"

    def test_confidence_option(self):
        """At 99% the independent interval widens and records 0.99."""
        got = compare(BASE, FAST, paired=False, confidence=0.99)
        low_b, high_b = confidence_interval(BASE, 0.99)
        low_c, high_c = confidence_interval(FAST, 0.99)
        close((got.low, got.high), (low_b / high_c, high_b / low_c), "compare(..., confidence=0.99)", rtol=1e-9)
        assert got.confidence == 0.99, f"Comparison.confidence: expected 0.99, got {got.confidence}"
        got = compare(DRIFT, DRIFT_FAST, paired=True, confidence=0.99)
        low, high = confidence_interval(np.log(DRIFT) - np.log(DRIFT_FAST), 0.99)
        close((got.low, got.high), (math.exp(low), math.exp(high)),
              "compare(DRIFT, DRIFT_FAST, paired=True, confidence=0.99): the log-ratios' 99% interval, exponentiated",
              rtol=1e-9)
        assert got.confidence == 0.99, f"paired Comparison.confidence: expected 0.99, got {got.confidence}"

    def test_paired_needs_equal_lengths(self):
        """paired=True with 5 and 4 samples is a ValueError naming both lengths; paired=False accepts them."""
        compare(BASE, FAST[:4], paired=False)
        with pytest.raises(ValueError, match="5.*4"):
            compare(BASE, FAST[:4], paired=True)
        with pytest.raises(TypeError):
            compare(BASE, FAST)  # paired is required: the caller must say which design the samples come from
        with pytest.raises(TypeError, match="paired"):
            compare(BASE, FAST, paired="yes")

    def test_paired_needs_positive_times(self):
        """paired=True with a time of 0 (a clock that did not advance) is a ValueError, not a log(0)."""
        compare(BASE, FAST, paired=True)
        with pytest.raises(ValueError, match="> 0"):
            compare(BASE, [0.5, 0.5, 0.0, 0.5, 0.5], paired=True)

    def test_str(self):
        """str(comparison) states the speed-up, the verdict, the interval and the design."""
        text = str(compare(BASE, FAST, paired=False))
        for part in ("2.20x", "faster", "1.74x", "2.70x", "independent"):
            assert part in text, f"str(Comparison) should contain {part!r}: {text!r}"

    def test_interleaved_pairs(self):
        """interleaved times baseline and candidate in turn, after untimed warm-up rounds: pair i back to back."""
        world = Scripted(9.0, 9.0, 1.0, 0.5, 2.0, 1.0, 4.0, 2.0)
        baseline_log = []

        def baseline():
            baseline_log.append(world.calls)
            world.work()

        base, cand = interleaved(baseline, world.work, count=3, warmup=1, clock=world.clock)
        assert base == [1.0, 2.0, 4.0] and cand == [0.5, 1.0, 2.0], (
            f"interleaved: expected baseline [1, 2, 4] and candidate [0.5, 1, 2], got {base} and {cand}")
        assert baseline_log == [0, 2, 4, 6], f"the calls should alternate baseline, candidate; baseline ran as call {baseline_log}"
        got = compare(base, cand, paired=True)
        close((got.speedup, got.low, got.high), (2.0, 2.0, 2.0), "compare of interleaved pairs, each exactly 2x")
        with pytest.raises(ValueError, match="count"):
            interleaved(baseline, world.work, count=1, clock=world.clock)


# -- scenarios ------------------------------------------------------------------------------------


@pytest.mark.checkpoint("scenarios")
class TestScenarios:
    def test_single_stream_goes_through_the_queries(self):
        """single_stream calls model(query) one query at a time, in order and round again: warm-up a, b; timed c, a, b, c.

        Hint: itertools.cycle(queries) gives the next query for ever; each call of the
        benchmarked function takes the next one.
        """
        world = Scripted(0.25)
        result = single_stream(world.work, ["a", "b", "c"], warmup=2, min_count=4, min_seconds=0.0, clock=world.clock)
        assert world.inputs == ["a", "b", "c", "a", "b", "c"], (
            f"the model should see a, b, c, a, b, c (one query per call), saw {world.inputs}")
        assert isinstance(result, Result) and len(result.samples) == 4, f"expected a Result of 4 timed queries, got {result}"

    def test_single_stream_result(self):
        """The result is labelled "single-stream", 1 item per call, and its p90 is the 90th percentile of the query latencies."""
        world = Scripted(0.25, 0.125, 0.5, 0.25, 0.375, 0.25)
        result = single_stream(world.work, [1, 2], name="mlp", warmup=0, min_count=6, min_seconds=0.0, clock=world.clock)
        assert (result.name, result.scenario, result.items) == ("mlp", "single-stream", 1), (
            f"expected name 'mlp', scenario 'single-stream', items 1; got {result.name!r}, {result.scenario!r}, {result.items}")
        close(result.summary.p90, percentile([0.25, 0.125, 0.5, 0.25, 0.375, 0.25], 90), "single-stream p90")
        close(result.throughput, 6 / 1.75, "single-stream throughput: queries per second")

    def test_single_stream_checks_accuracy_first(self):
        """single_stream with an accuracy below target never calls the model."""
        world = Scripted(0.25)
        result = single_stream(world.work, [1], warmup=1, min_count=2, clock=world.clock,
                               accuracy=world.accuracy(0.5), target=0.9)
        assert world.calls == 0 and not result.timed, f"below target, the model ran {world.calls} times"

    def test_offline_runs_the_whole_batch(self):
        """offline calls model(batch) with the batch itself; items per call = len(batch); scenario "offline"."""
        batch = np.zeros((32, 4), dtype=np.float32)
        seen = []
        world = Scripted(0.25)

        def model(x):
            seen.append(x)
            world.work()

        result = offline(model, batch, warmup=1, min_count=2, min_seconds=0.0, clock=world.clock)
        assert seen and all(x is batch for x in seen), "offline should pass the whole batch, the same object, to every call"
        assert (result.scenario, result.items) == ("offline", 32), (
            f"expected scenario 'offline' with 32 items per call, got {result.scenario!r}, {result.items}")

    def test_offline_throughput_is_items_over_total_time(self):
        """Batches of 32 timed at 0.25, 0.25 and 1.0 s: 96 items in 1.5 s = 64 items/s (not 32 / median = 128).

        Hint: throughput is all the items over all the timed seconds: items * calls / sum(samples).
        """
        world = Scripted(0.25, 0.25, 1.0)
        result = offline(lambda batch: world.work(), list(range(32)), warmup=0, min_count=3, min_seconds=0.0,
                         clock=world.clock)
        assert_float(result.throughput, "Result.throughput")
        close(result.throughput, 64.0, "offline throughput")

    def test_throughput_counts_the_timed_seconds_only(self):
        """With time passing between calls, throughput is items over the timed calls' seconds, not over the run's duration."""
        world = Overhead(0.0625, 0.25)
        result = offline(lambda batch: world.work(), list(range(32)), warmup=0, min_count=3, min_seconds=0.0,
                         clock=world.clock)
        close(result.duration, 1.125, "offline duration (the run, from its start to the last call's end)")
        close(result.throughput, 96 / 0.9375, "offline throughput: 96 items over the 0.9375 timed seconds, not the "
              "1.125 s run (items * calls / sum(samples))")

    def test_untimed_results_have_no_throughput(self):
        """A result below its accuracy target has throughput None."""
        world = Scripted(0.25)
        result = offline(lambda batch: world.work(), [1, 2, 3], min_count=2, clock=world.clock,
                         accuracy=world.accuracy(0.1), target=0.9)
        assert result.throughput is None, f"throughput of an untimed result: expected None, got {result.throughput}"

    def test_empty_inputs_are_errors(self):
        """No queries, or an empty batch, is a ValueError."""
        world = Scripted(0.25)
        single_stream(world.work, [1], warmup=0, min_count=2, min_seconds=0.0, clock=world.clock)
        with pytest.raises(ValueError, match="queries"):
            single_stream(world.work, [], clock=world.clock)
        with pytest.raises(ValueError, match="batch"):
            offline(world.work, [], clock=world.clock)


# -- reports --------------------------------------------------------------------------------------

ENV = {"python": "3.11.7", "implementation": "CPython", "numpy": "2.0.0", "blas": "openblas 0.3.27",
       "threads": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": None}, "cpu_model": "Test CPU 9000",
       "cpu_count": 8, "cpus_usable": 2, "platform": "Linux-test"}
RECORD_FIELDS = {"name", "scenario", "status", "accuracy", "target", "warmup", "min_count", "min_seconds",
                 "items_per_call", "duration_s", "throughput_per_s", "statistics_s", "samples_s"}
SUMMARY_FIELDS = {"count", "mean", "std", "median", "p90", "p99", "min", "max", "confidence", "ci_low", "ci_high",
                  "fence_low", "fence_high", "outliers"}


def two_results():
    """A timed single-stream result (accuracy 0.97, target 0.95) and an offline one below its target."""
    world = Scripted(0.5, 0.001, 0.002, 0.001, 0.005, 0.001)
    timed = single_stream(world.work, [0], name="mlp", warmup=1, min_count=5, min_seconds=0.0, clock=world.clock,
                          accuracy=world.accuracy(0.97), target=0.95)
    untimed = offline(world.work, [0] * 8, name="pruned", clock=world.clock, accuracy=world.accuracy(0.91), target=0.95)
    return timed, untimed


@pytest.mark.checkpoint("reports")
class TestReports:
    def test_environment(self, monkeypatch):
        """environment() names the Python, numpy, BLAS, thread settings and CPU, and is plain JSON."""
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        env = environment()
        expected = {"python", "implementation", "numpy", "blas", "threads", "cpu_model", "cpu_count", "cpus_usable",
                    "platform"}
        assert set(env) == expected, f"environment keys: expected {sorted(expected)}, got {sorted(env)}"
        assert env["python"] == platform.python_version() and env["numpy"] == np.__version__, (
            f"environment: python {env['python']!r} and numpy {env['numpy']!r} should be this interpreter's and numpy's")
        assert set(env["threads"]) == set(THREAD_VARIABLES), f"threads: one entry per THREAD_VARIABLES, got {env['threads']}"
        assert env["threads"]["OMP_NUM_THREADS"] == "3" and env["threads"]["MKL_NUM_THREADS"] is None, (
            f"threads: expected OMP_NUM_THREADS '3' (set) and MKL_NUM_THREADS None (unset), got {env['threads']}")
        assert env["cpu_count"] == os.cpu_count(), f"cpu_count: expected os.cpu_count() = {os.cpu_count()}, got {env['cpu_count']}"
        json.dumps(env, allow_nan=False)

    def test_usable_cpus(self, monkeypatch):
        """cpus_usable counts the CPUs this process may run on (os.sched_getaffinity), None where that does not exist."""
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: 8)
        env = environment()
        assert env["cpus_usable"] == 3, f"cpus_usable: expected len(os.sched_getaffinity(0)) = 3, got {env['cpus_usable']}"
        assert env["cpu_count"] == 8, f"cpu_count: expected os.cpu_count() = 8 (all CPUs), got {env['cpu_count']}"
        monkeypatch.delattr(os, "sched_getaffinity", raising=False)
        assert environment()["cpus_usable"] is None, "cpus_usable without os.sched_getaffinity: expected None"

    def test_cpu_model_from_cpuinfo(self, tmp_path):
        """cpu_model reads the first "model name" line of a cpuinfo file (not the "model" number line before it).

        Hint: Linux lists "model\t\t: 85" (a number) before "model name\t: ..."; match the whole
        key "model name", and strip the spaces around the text after the colon.
        """
        path = tmp_path / "cpuinfo"
        path.write_text("processor\t: 0\nvendor_id\t: Test\nmodel\t\t: 85\nmodel name\t: Test CPU 9000 @ 3.0GHz\n\n"
                        "processor\t: 1\nmodel name\t: Another CPU\n", encoding="utf-8")
        got = cpu_model(str(path))
        assert got == "Test CPU 9000 @ 3.0GHz", f"cpu_model: expected 'Test CPU 9000 @ 3.0GHz', got {got!r}"
        assert environment(str(path))["cpu_model"] == "Test CPU 9000 @ 3.0GHz", "environment(cpuinfo) should use that file"

    def test_probes_never_fail(self, monkeypatch, tmp_path):
        """No cpuinfo file, no platform.processor(), a numpy that cannot describe its BLAS: None each, no error.

        Hint: a report is still worth writing on a machine that hides something; catch the
        probe's failure (OSError for a missing file, any error from show_config) and answer None.
        """
        monkeypatch.setattr(platform, "processor", lambda: "")

        def no_config(*args, **kwargs):
            raise RuntimeError("no build information")

        monkeypatch.setattr(np, "show_config", no_config)
        missing = str(tmp_path / "no-such-file")
        assert cpu_model(missing) is None, f"cpu_model of a missing file and no processor name: expected None"
        assert blas_info() is None, "blas_info when np.show_config fails: expected None"
        env = environment(missing)
        assert env["cpu_model"] is None and env["blas"] is None, f"environment on a secretive machine: {env}"
        monkeypatch.setattr(platform, "processor", lambda: "x86_64")
        assert cpu_model(missing) == "x86_64", "cpu_model without cpuinfo: expected platform.processor()"

    def test_blas_info(self, monkeypatch):
        """blas_info reads numpy's build configuration: "name version"."""
        monkeypatch.setattr(np, "show_config", lambda mode="stdout": {
            "Build Dependencies": {"blas": {"name": "openblas", "version": "0.3.27", "found": True}}})
        assert blas_info() == "openblas 0.3.27", f"blas_info: expected 'openblas 0.3.27', got {blas_info()!r}"
        monkeypatch.setattr(np, "show_config", lambda mode="stdout": {
            "Build Dependencies": {"blas": {"name": "accelerate", "found": True}}})
        assert blas_info() == "accelerate", (
            f"blas_info of a build that names its BLAS but no version: expected 'accelerate', got {blas_info()!r}")

    def test_json_report(self):
        """to_json: format, version, the environment, and one record per result with every documented field."""
        timed, untimed = two_results()
        report = json.loads(to_json([timed, untimed], ENV))
        assert report["format"] == REPORT_FORMAT and report["version"] == REPORT_VERSION == 1, (
            f"the report should start with format {REPORT_FORMAT!r} and version 1, got {report.get('format')!r}, "
            f"{report.get('version')!r}")
        assert report["environment"] == ENV, "the report's environment should be the one given"
        records = report["results"]
        assert len(records) == 2, f"expected one record per result (2), got {len(records)}"
        for record in records:
            assert set(record) == RECORD_FIELDS, (
                f"record fields: missing {sorted(RECORD_FIELDS - set(record))}, extra {sorted(set(record) - RECORD_FIELDS)}")

    def test_json_timed_record(self):
        """A timed record holds the samples in run order, the statistics, duration and throughput, in seconds."""
        timed, _ = two_results()
        record = json.loads(to_json([timed], ENV))["results"][0]
        close(record["samples_s"], [0.001, 0.002, 0.001, 0.005, 0.001], "samples_s, in run order")
        assert (record["name"], record["scenario"], record["status"], record["accuracy"], record["target"]) == (
            "mlp", "single-stream", "timed", 0.97, 0.95), f"record: {record}"
        assert (record["warmup"], record["min_count"], record["min_seconds"], record["items_per_call"]) == (1, 5, 0.0, 1), (
            f"record settings: {record}")
        statistics = record["statistics_s"]
        assert set(statistics) == SUMMARY_FIELDS, f"statistics_s fields: got {sorted(statistics)}"
        close(statistics["median"], 0.001, "statistics_s.median")
        close(statistics["p90"], timed.summary.p90, "statistics_s.p90")
        assert statistics["outliers"] == [3] and statistics["count"] == 5, f"statistics_s: {statistics}"
        close(record["duration_s"], 0.010, "duration_s")
        close(record["throughput_per_s"], 500.0, "throughput_per_s")

    def test_record_holds_lists_not_tuples(self):
        """result_record gives the samples and the outliers' positions as lists: the record is what the JSON holds."""
        timed, _ = two_results()
        record = result_record(timed)
        assert type(record["samples_s"]) is list, f"samples_s: expected a list, got {type(record['samples_s']).__name__}"
        outliers_ = record["statistics_s"]["outliers"]
        assert type(outliers_) is list and outliers_ == [3], (
            f"statistics_s.outliers: expected the list [3], got {type(outliers_).__name__} {outliers_!r}")
        assert record == json.loads(to_json([timed], ENV))["results"][0], "result_record should be the record to_json writes"

    def test_json_untimed_record(self):
        """An untimed record says "below target" and holds no times: statistics null, samples [], throughput null."""
        _, untimed = two_results()
        record = json.loads(to_json([untimed], ENV))["results"][0]
        assert record["status"] == "below target" and record["accuracy"] == 0.91, f"record: {record}"
        assert record["statistics_s"] is None and record["samples_s"] == [] and record["throughput_per_s"] is None, (
            f"an untimed record has no statistics, samples or throughput: {record}")
        assert record["items_per_call"] == 8 and record["duration_s"] == 0.0, f"record: {record}"

    def test_json_measures_the_environment_itself(self):
        """Without an environment, to_json records environment() of this machine."""
        timed, _ = two_results()
        report = json.loads(to_json([timed]))
        assert report["environment"]["numpy"] == np.__version__, f"environment: {report['environment']}"

    def test_markdown_table(self):
        """to_markdown: a header, one row per result (times in ms), an untimed row that says so, then the environment."""
        timed, untimed = two_results()
        text = to_markdown([timed, untimed], ENV)
        lines = text.splitlines()
        assert lines[0].startswith("| benchmark |") and lines[1].startswith("|---"), f"the table's header: {lines[:2]}"
        rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:4]]
        assert rows[0][:7] == ["mlp", "single-stream", "0.97 (target 0.95)", "5", "1.000", "3.800", "4.880"], (
            f"the timed row: got {rows[0]}")
        assert rows[0][7:] == ["2.000 (-0.1506 to 4.151, 95%)", "500.0", "1"], (
            "the timed row's mean and its 95% interval in ms ('2.000 (-0.1506 to 4.151, 95%)'), items/s (500.0) "
            f"and outlier count (1): got {rows[0][7:]}")
        assert rows[1][2] == "0.91 (target 0.95)", (
            f"the untimed row's accuracy cell should still show why: expected '0.91 (target 0.95)', got {rows[1][2]!r}")
        assert rows[1][0] == "pruned" and "below target" in rows[1][3] and rows[1][4] == "", (
            f"the untimed row should say 'below target' and show no times: {rows[1]}")
        rest = "\n".join(lines[4:])
        for part in ("3.11.7", "2.0.0", "openblas 0.3.27", "OMP_NUM_THREADS=1", "Test CPU 9000"):
            assert part in rest, f"the environment line should mention {part!r}: {rest!r}"


# -- optimize -------------------------------------------------------------------------------------

PERCENTILE_BUDGET = 2.5  # x the time of one np.sort of the samples; the reference takes about 1.1x
MEASURE_BUDGET = 3.5  # x a bare timing loop; the reference takes about 1.5x


class Ticker:
    """A clock that only a workload moves, by 1 microsecond a call: the run's length depends on calls, not on speed."""

    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def work(self):
        self.now += 1e-6


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    def test_percentiles_sort_once(self):
        """Five percentiles of 200,000 samples take at most 2.5x the time of one np.sort of them.

        Hint: sort once (np.sort, in C) and index the sorted copy for every q at once; a Python
        sorted(), or a sort for each q, costs many sorts' time.
        """
        samples = np.random.default_rng(190).lognormal(-6, 0.5, 200_000)
        qs = [25, 50, 75, 90, 99]
        close(percentile(samples, qs), np.percentile(samples, qs), "percentile of 200,000 samples (seed 190)", rtol=1e-12)
        assert_time_ratio(lambda: percentile(samples, qs), lambda: np.sort(samples), PERCENTILE_BUDGET,
                          "five percentiles of 200,000 samples against one np.sort of them",
                          advice="Sort once with np.sort and read every percentile from that one sorted copy")

    def test_the_harness_does_not_measure_itself(self):
        """Timing 2,000 calls (min_seconds decides) costs at most 3.5x a bare loop of clock, call, clock, append.

        Hint: the loop's bookkeeping must cost the same on call 2,000 as on call 1: keep the
        run's start in a variable and compare `end - run_start` with min_seconds. sum(samples) on
        every call, or np.append, makes the loop quadratic, and slows the very thing being measured.
        """
        calls = 2_000

        def harness():
            ticker = Ticker()
            samples, _ = Benchmark(ticker.work, warmup=0, min_count=2, min_seconds=(calls - 0.5) * 1e-6,
                                   clock=ticker.clock).measure()
            return samples

        def bare():
            ticker = Ticker()
            clock, work, samples = ticker.clock, ticker.work, []
            for _ in range(calls):
                start = clock()
                work()
                samples.append(clock() - start)
            return samples

        got = len(harness())
        assert got == calls, f"min_seconds of {calls} ticks: expected {calls} timed calls, got {got}"
        assert_time_ratio(harness, bare, MEASURE_BUDGET, f"Benchmark.measure of {calls:,} calls against a bare timing loop",
                          rounds=5, advice="Keep the per-call bookkeeping constant: no sum(samples), no np.append")

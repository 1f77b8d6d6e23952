"""Milestone 2018: your benchmark harness measures your models honestly, MLPerf-style, and finds real gains."""

import copy

import numpy as np
import pytest

from katas.milestones.common import load_script


@pytest.fixture(scope="module")
def run():
    script = load_script("2018_mlperf")
    return script, script.main(verbose=False, rules=script.QUICK)


def rows_by_name(results) -> dict:
    return {row.entry.name: row for row in results["rows"]}


class Counting:
    """Stands in for a model and counts the calls that reach it."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x):
        self.calls += 1
        return self.model(x)


def counted(entry):
    """The entry with its timed callables counted: (entry, counter)."""
    counter = Counting(entry.predict)
    entry.predict = entry.predict_batch = counter
    return entry, counter


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_every_model_reaches_its_target_and_is_timed(run):
    """Every baseline reaches its own target and every optimised model 99% of its baseline's, and all are timed."""
    script, results = run
    rows = rows_by_name(results)
    expected = ["mlp", "mlp int8", "mlp pruned", "cnn", "cnn int8", "gpt", "gpt cached"]
    assert list(rows) == expected, f"the table's rows are {list(rows)}, expected {expected}"
    for row in rows.values():
        if row.baseline is not None:
            assert row.target == pytest.approx(script.KEEP_FRACTION * row.baseline.score), (
                f"{row.entry.name}: target {row.target:.4f}, expected 99% of its baseline's {row.baseline.score:.4f}")
        assert row.score >= row.target, (
            f"{row.entry.name} scores {row.score:.2%}, below its target {row.target:.2%}; run "
            "`python katas/milestones/2018_mlperf.py` to see the table (is the kata behind it green?)")
        assert row.status == "timed" and row.single.summary.count >= script.QUICK.min_count, (
            f"{row.entry.name} reached its target but was not timed by the rules: {row.status}")
        assert row.offline.timed and row.offline.items == len(row.entry.batch), (
            f"{row.entry.name}: the offline run should time batches of {len(row.entry.batch)}")


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_the_bytes_are_measured_from_the_arrays_each_model_keeps(run):
    """Each row's bytes are the nbytes of every array the model keeps: parameters, int8 values and scales, the cache."""
    from tinytorch.quantization import QuantizedLayer

    script, results = run

    class Holder:  # an array under any name, in a list or a dict, a view, a cycle: each array counted once
        pass

    weights = np.zeros((10, 10), dtype=np.float32)  # 400 bytes
    holder = Holder()
    holder.anything, holder.view, holder.again = weights, weights[:5], [weights, {"key": weights.T}]
    holder.other, holder.me = (np.zeros(3, dtype=np.int8), None, 4), holder
    assert script.kept_bytes(holder) == 403, f"kept_bytes counted {script.kept_bytes(holder)}, expected 400 + 3"
    rows = rows_by_name(results)
    for name in ("mlp", "mlp pruned", "cnn", "gpt"):
        model = rows[name].entry.keeps[0]
        expected = sum(p.data.nbytes for p in model.parameters()) + sum(b.nbytes for _, b in model.named_buffers())
        assert rows[name].bytes == expected, (
            f"{name}: the table says {rows[name].bytes:,} bytes, its parameters and buffers hold {expected:,}; a "
            "float32 model keeps no gradients (zero_grad sets them to None) and nothing else")
    for name in ("mlp int8", "cnn int8"):
        model = rows[name].entry.keeps[0]
        layers = [m for m in model.modules() if isinstance(m, QuantizedLayer)]
        assert layers and all(layer.weight.values.dtype == np.int8 for layer in layers), (
            f"{name}: expected quantized layers holding int8 weights")
        expected = sum(layer.nbytes for layer in layers)
        assert rows[name].bytes == expected, (
            f"{name}: the model keeps {rows[name].bytes:,} bytes of arrays, its quantized layers account for "
            f"{expected:,}: does a quantized layer still hold the float weight?")
    cached = rows["gpt cached"]
    config = rows["gpt"].entry.keeps[0].config
    cache = 2 * config.n_layer * 1 * config.n_head * (script.LENGTH - 1) * (config.n_embd // config.n_head) * 4
    assert cached.bytes == rows["gpt"].bytes + cache, (
        f"gpt cached: {cached.bytes:,} bytes; expected the model's {rows['gpt'].bytes:,} plus a float32 cache of "
        f"2 x layers x 1 x heads x {script.LENGTH - 1} x head_dim = {cache:,}")


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_every_optimised_model_is_checked_against_its_baseline(run):
    """int8 and pruning match their baseline within their stated tolerance; the cache writes exactly the same tokens."""
    script, results = run
    rows = rows_by_name(results)
    tolerances = {"mlp int8": script.INT8, "cnn int8": script.INT8, "mlp pruned": script.PRUNED,
                  "gpt cached": script.CACHED}
    for name, tolerance in tolerances.items():
        check = rows[name].check
        assert check is not None and check.tolerance == tolerance and check.passed, (
            f"{name}: expected a passed check with tolerance {tolerance.why!r}, got {check}")
    assert rows["gpt cached"].check.agreement == 1.0, (
        "the cached GPT wrote other tokens than the uncached one for some prompt: the cache must change nothing")


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_a_model_below_its_target_is_reported_and_never_timed(run):
    """A deliberately broken MLP is reported with its accuracy and bytes; the harness never calls it to time it."""
    script, results = run
    mlp = rows_by_name(results)["mlp"].entry.keeps[0]
    broken = copy.deepcopy(mlp)
    last = broken.layers[-1]
    last.weight.data = np.ascontiguousarray(last.weight.data[:, ::-1])  # every class's weights given to another
    _, x_test, _, y_test = script.digits_split()
    entry, counter = counted(script.digits_entry("broken", "float32", broken, x_test.reshape(len(x_test), -1),
                                                 y_test, target=0.97))
    row = script.measure(entry, script.QUICK)
    assert row.score < 0.5, f"the broken model scored {row.score:.2%}; it should be far below target"
    assert counter.calls == 0, (
        f"the harness called a model below its target {counter.calls} times: it must check accuracy first "
        "(Benchmark.run, kata 19) and never time it")
    assert not row.single.timed and not row.offline.timed and row.status == "below target: not timed", (
        f"a model below target must be reported untimed, got status {row.status!r}")
    assert row.bytes == mlp.parameter_bytes(), "a model not timed still has its bytes measured and reported"
    line = script.table_row(row)
    assert "below target" in line and f"{row.score:.2%}" in line, f"the table row should say why: {line!r}"


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_an_optimised_model_whose_outputs_differ_is_not_timed(run):
    """A model that reaches the accuracy but is not its baseline within its tolerance is never timed."""
    script, results = run
    rows = rows_by_name(results)
    impostor = rows["mlp pruned"].entry.keeps[0]  # accurate enough, but its logits are not the baseline's
    _, x_test, _, y_test = script.digits_split()
    entry, counter = counted(script.digits_entry("mlp int8", "int8", impostor, x_test.reshape(len(x_test), -1),
                                                 y_test, tolerance=script.INT8))
    row = script.measure(entry, script.QUICK, baseline=rows["mlp"])
    assert row.score >= row.target and not row.check.passed, (
        f"the impostor should reach the target and fail the int8 check, got {row.score:.2%} and {row.check}")
    assert counter.calls == 0 and row.single is None and row.status == "differs from its baseline: not timed", (
        f"a model whose outputs differ from its baseline's must not be timed: {counter.calls} calls, {row.status!r}")


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_int8_keeps_each_model_in_under_a_third_of_the_bytes(run):
    """The int8 MLP and CNN keep at most a third of their float32 bytes, measured."""
    script, results = run
    for name in ("mlp int8", "cnn int8"):
        row = rows_by_name(results)[name]
        assert row.baseline.bytes >= script.INT8_MIN_REDUCTION * row.bytes, (
            f"{name} keeps {row.bytes:,} bytes against float32's {row.baseline.bytes:,}: "
            f"{row.baseline.bytes / row.bytes:.2f}x, expected at least {script.INT8_MIN_REDUCTION:g}x")


@pytest.mark.milestone
@pytest.mark.timeout(300)
def test_the_kv_cache_makes_generation_measurably_faster(run):
    """Interleaved pairs of queries: the cached GPT is faster, its whole 95% interval above 1x."""
    _, results = run
    comparison = rows_by_name(results)["gpt cached"].comparison
    assert comparison is not None and comparison.paired, "the cached GPT should be compared with the uncached one"
    assert comparison.verdict == "faster" and comparison.low > 1, (
        f"cached against uncached generation: {comparison}; expected the whole interval above 1x (kata 17's "
        "optimize checkpoint measures the same)")

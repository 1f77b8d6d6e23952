"""Kata 02 · Activations: the ordered suite. Run `python -m pytest katas/02_activations`."""

import numpy as np
import pytest

from harness import checks
from harness.budgets import assert_time_ratio, count_calls, peak_bytes
from harness.checks import assert_close, assert_finite, assert_shape
from tinytorch.activations import (
    GELU, ReLU, Sigmoid, Softmax, LogSoftmax, Tanh,
    gelu, log_softmax, relu, sigmoid, softmax, tanh,
)
from tinytorch.tensor import Tensor


def no_overflow(what: str):
    """harness.checks.no_overflow, with this kata's advice for a formula that overflows."""
    return checks.no_overflow(what, "In float32, exp overflows above about 88.7 and log(0) is -inf: "
                                    "rearrange the formula so neither can happen")


def tensor(values, dtype=np.float32) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), dtype=dtype)


def random_tensor(shape, seed: int, scale: float = 3.0, dtype=np.float32) -> Tensor:
    return tensor(np.random.default_rng(seed).standard_normal(shape) * scale, dtype)


def check_shape_and_dtype(fn, name: str) -> None:
    """The output has the input's shape, float32 stays float32 and float64 stays float64."""
    for dtype in (np.float32, np.float64):
        x = random_tensor((2, 3, 4), seed=7, dtype=dtype)
        out = fn(x)
        assert isinstance(out, Tensor), f"{name} should return a Tensor, got {type(out).__name__}"
        assert_shape(out, (2, 3, 4), f"{name} of a (2, 3, 4) {np.dtype(dtype).name} tensor")
        assert out.dtype == dtype, (
            f"{name} of a {np.dtype(dtype).name} tensor: expected a {np.dtype(dtype).name} result, got {out.dtype}. "
            "Look for a float64 constant or array (np.float64 scalars count) mixed into the computation")


# -- relu -----------------------------------------------------------------------------


@pytest.mark.checkpoint("relu")
class TestReLU:
    def test_known_values(self):
        """relu([-2, -0.5, 0, 0.5, 3]) is [0, 0, 0, 0.5, 3]."""
        assert_close(relu(tensor([-2, -0.5, 0, 0.5, 3])), [0, 0, 0, 0.5, 3], "relu([-2, -0.5, 0, 0.5, 3])")

    def test_negatives_become_zero_not_positive(self):
        """Every negative input maps to 0 (not to its absolute value); positives pass unchanged."""
        x = random_tensor((50,), seed=1)
        expected = np.where(x.data > 0, x.data, 0)
        assert_close(relu(x), expected, "relu of 50 random values (seed 1)")

    def test_shape_and_dtype_preserved(self):
        """relu keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(relu, "relu")

    def test_does_not_modify_its_input(self):
        """relu returns a new tensor and leaves the input's values alone."""
        x = tensor([-1.0, 2.0])
        relu(x)
        assert_close(x, [-1.0, 2.0], "the input of relu after the call")

    def test_layer_calls_the_function(self):
        """ReLU() is a layer object whose call gives relu(x)."""
        x = random_tensor((3, 4), seed=2)
        assert_close(ReLU()(x), relu(x), "ReLU()(x) compared with relu(x)")


# -- sigmoid --------------------------------------------------------------------------


@pytest.mark.checkpoint("sigmoid")
class TestSigmoid:
    def test_known_values(self):
        """sigmoid(0) = 0.5, sigmoid(2) = 0.8808, sigmoid(-2) = 0.1192, sigmoid(4) = 0.9820."""
        assert_close(sigmoid(tensor([0, 2, -2, 4])), [0.5, 0.8807970779778823, 0.11920292202211755, 0.9820137900379085],
                     "sigmoid([0, 2, -2, 4])")

    def test_symmetry(self):
        """sigmoid(-x) = 1 - sigmoid(x) for random x."""
        x = random_tensor((40,), seed=3)
        assert_close(sigmoid(tensor(-x.data)), 1 - sigmoid(x).data, "sigmoid(-x) against 1 - sigmoid(x) (seed 3)")

    def test_stable_at_plus_minus_1000(self):
        """sigmoid(+-1000) is exactly 1 and 0, with no overflow warning and no nan."""
        with no_overflow("sigmoid([-1000, 1000])"):
            out = sigmoid(tensor([-1000.0, 1000.0]))
        assert_finite(out, "sigmoid([-1000, 1000])")
        assert_close(out, [0.0, 1.0], "sigmoid([-1000, 1000])", atol=0)

    def test_just_past_the_float32_exp_limit(self):
        """sigmoid(-89) in float32 (where exp(89) overflows) is a tiny positive number, not a warning."""
        with no_overflow("sigmoid(-89) in float32"):
            out = sigmoid(tensor([-89.0, -95.0]))
        assert_finite(out, "sigmoid([-89, -95])")
        assert np.all(out.data >= 0) and np.all(out.data < 1e-38), (
            f"sigmoid([-89, -95]): expected tiny non-negative values (about 2.2e-39 and 5.5e-42), got {out.data}")

    def test_shape_and_dtype_preserved(self):
        """sigmoid keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(sigmoid, "sigmoid")

    def test_layer_calls_the_function(self):
        """Sigmoid() is a layer object whose call gives sigmoid(x)."""
        x = random_tensor((3, 4), seed=4)
        assert_close(Sigmoid()(x), sigmoid(x), "Sigmoid()(x) compared with sigmoid(x)")


# -- tanh -----------------------------------------------------------------------------


@pytest.mark.checkpoint("tanh")
class TestTanh:
    def test_known_values(self):
        """tanh(0) = 0, tanh(1) = 0.7616, tanh(-0.5) = -0.4621, tanh(2) = 0.9640."""
        assert_close(tanh(tensor([0, 1, -0.5, 2])), [0, 0.7615941559557649, -0.46211715726000974, 0.9640275800758169],
                     "tanh([0, 1, -0.5, 2])")

    def test_saturates_at_plus_minus_1000(self):
        """tanh(+-1000) is exactly -1 and 1, with no overflow warning and no nan."""
        with no_overflow("tanh([-1000, 1000])"):
            out = tanh(tensor([-1000.0, 1000.0]))
        assert_finite(out, "tanh([-1000, 1000])")
        assert_close(out, [-1.0, 1.0], "tanh([-1000, 1000])", atol=0)

    def test_odd_function(self):
        """tanh(-x) = -tanh(x) for random x."""
        x = random_tensor((40,), seed=5)
        assert_close(tanh(tensor(-x.data)), -tanh(x).data, "tanh(-x) against -tanh(x) (seed 5)")

    def test_shape_and_dtype_preserved(self):
        """tanh keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(tanh, "tanh")

    def test_layer_calls_the_function(self):
        """Tanh() is a layer object whose call gives tanh(x)."""
        x = random_tensor((3, 4), seed=6)
        assert_close(Tanh()(x), tanh(x), "Tanh()(x) compared with tanh(x)")


# -- gelu -----------------------------------------------------------------------------


@pytest.mark.checkpoint("gelu")
class TestGELU:
    def test_zero(self):
        """gelu(0) = 0."""
        assert_close(gelu(tensor([0.0])), [0.0], "gelu(0)", atol=0)

    def test_known_values_of_the_tanh_approximation(self):
        """gelu(1) = 0.84119, gelu(-1) = -0.15881, gelu(2) = 1.95460, gelu(-3) = -0.00364 (tanh form)."""
        assert_close(gelu(tensor([1, -1, 2, -3, 0.5])),
                     [0.8411919906082768, -0.1588080093917233, 1.954597694087775, -0.0036373920817729943,
                      0.34571400982514394],
                     "gelu([1, -1, 2, -3, 0.5]) with the tanh approximation")

    def test_large_inputs(self):
        """gelu(1000) = 1000 and gelu(-1000) = 0, with no overflow warning and no nan."""
        with no_overflow("gelu([-1000, 1000])"):
            out = gelu(tensor([-1000.0, 1000.0]))
        assert_finite(out, "gelu([-1000, 1000])")
        assert_close(out, [0.0, 1000.0], "gelu([-1000, 1000])")

    def test_shape_and_dtype_preserved(self):
        """gelu keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(gelu, "gelu")

    def test_layer_calls_the_function(self):
        """GELU() is a layer object whose call gives gelu(x)."""
        x = random_tensor((3, 4), seed=8)
        assert_close(GELU()(x), gelu(x), "GELU()(x) compared with gelu(x)")


# -- softmax --------------------------------------------------------------------------


@pytest.mark.checkpoint("softmax")
class TestSoftmax:
    def test_known_values(self):
        """softmax([1, 2, 3]) = [0.0900, 0.2447, 0.6652]."""
        assert_close(softmax(tensor([1, 2, 3])), [0.09003057, 0.24472847, 0.66524096], "softmax([1, 2, 3])")

    def test_default_axis_is_the_last(self):
        """Without an axis, each row of a 2-D input sums to 1."""
        out = softmax(random_tensor((4, 6), seed=9))
        assert_close(out.data.sum(axis=-1), np.ones(4), "row sums of softmax(x) for x of shape (4, 6) (seed 9)")

    @pytest.mark.parametrize("axis", [0, 1, 2, -1])
    def test_sums_to_one_along_any_axis(self, axis):
        """softmax(x, axis) sums to 1 along that axis of a (3, 4, 5) input, and is positive."""
        out = softmax(random_tensor((3, 4, 5), seed=10), axis=axis)
        assert_shape(out, (3, 4, 5), f"softmax(x, axis={axis}) of shape (3, 4, 5)")
        sums = out.data.sum(axis=axis)
        assert_close(sums, np.ones_like(sums), f"sums along axis {axis} of softmax(x, axis={axis}) (seed 10)")
        assert np.all(out.data > 0), f"softmax(x, axis={axis}) has values <= 0: min {out.data.min()}"

    def test_adding_a_constant_changes_nothing(self):
        """softmax(x + 50) equals softmax(x): only differences between logits matter."""
        x = random_tensor((3, 5), seed=11)
        assert_close(softmax(tensor(x.data + 50)), softmax(x), "softmax(x + 50) against softmax(x) (seed 11)")

    def test_stable_at_plus_minus_1000(self):
        """softmax([1000, 0, -1000]) is [1, 0, 0] and softmax([1000, 1000]) is [0.5, 0.5], with no overflow."""
        with no_overflow("softmax of logits +-1000"):
            peaked = softmax(tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, 1000.0]]))
            even = softmax(tensor([1000.0, 1000.0]))
        assert_finite(peaked, "softmax([[1000, 0, -1000], [-1000, -1000, 1000]])")
        assert_close(peaked, [[1, 0, 0], [0, 0, 1]], "softmax([[1000, 0, -1000], [-1000, -1000, 1000]])")
        assert_close(even, [0.5, 0.5], "softmax([1000, 1000])")

    def test_each_row_shifted_by_its_own_maximum(self):
        """softmax([[1000, 999], [-1000, -1001]]) is [0.731, 0.269] in both rows: shift each row by its own max."""
        with no_overflow("softmax([[1000, 999], [-1000, -1001]])"):
            out = softmax(tensor([[1000.0, 999.0], [-1000.0, -1001.0]]))
        assert_finite(out, "softmax([[1000, 999], [-1000, -1001]]) (a maximum over the whole array leaves row 2 as 0/0)")
        assert_close(out, [[0.7310586, 0.26894143]] * 2, "softmax([[1000, 999], [-1000, -1001]])")

    def test_shape_and_dtype_preserved(self):
        """softmax keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(softmax, "softmax")

    def test_layer_carries_its_axis(self):
        """Softmax(axis=0) keeps its axis and gives softmax(x, axis=0); Softmax() uses the last axis."""
        x = random_tensor((3, 4), seed=12)
        assert_close(Softmax(axis=0)(x), softmax(x, axis=0), "Softmax(axis=0)(x) compared with softmax(x, axis=0)")
        assert_close(Softmax()(x), softmax(x, axis=-1), "Softmax()(x) compared with softmax(x, axis=-1)")
        assert Softmax(axis=0).axis == 0 and Softmax().axis == -1, "Softmax should keep its axis in .axis (default -1)"


# -- log_softmax ----------------------------------------------------------------------


@pytest.mark.checkpoint("log_softmax")
class TestLogSoftmax:
    def test_equals_log_of_softmax_where_finite(self):
        """For moderate logits, log_softmax(x) equals log(softmax(x)) computed in float64."""
        x = random_tensor((4, 7), seed=13)
        x64 = x.data.astype(np.float64)
        expected = np.log(np.exp(x64) / np.exp(x64).sum(axis=-1, keepdims=True))
        assert_close(log_softmax(x), expected, "log_softmax(x) against log(softmax(x)) in float64 (seed 13)")

    def test_finite_where_softmax_underflows(self):
        """log_softmax([0, -1000]) is [0, -1000]: finite, though softmax's second value underflows to 0."""
        with no_overflow("log_softmax([0, -1000])"):
            out = log_softmax(tensor([0.0, -1000.0]))
        assert_finite(out, "log_softmax([0, -1000])")
        assert_close(out, [0.0, -1000.0], "log_softmax([0, -1000])")

    def test_stable_at_plus_minus_1000(self):
        """log_softmax([[1000, 0, -1000]]) is [0, -1000, -2000] in float32, with no overflow."""
        with no_overflow("log_softmax([1000, 0, -1000])"):
            out = log_softmax(tensor([[1000.0, 0.0, -1000.0]]))
        assert_finite(out, "log_softmax([1000, 0, -1000])")
        assert_close(out, [[0.0, -1000.0, -2000.0]], "log_softmax([1000, 0, -1000])")

    def test_each_row_shifted_by_its_own_maximum(self):
        """log_softmax([[1000, 999], [-1000, -1001]]) is [-0.313, -1.313] in both rows."""
        with no_overflow("log_softmax([[1000, 999], [-1000, -1001]])"):
            out = log_softmax(tensor([[1000.0, 999.0], [-1000.0, -1001.0]]))
        assert_finite(out, "log_softmax([[1000, 999], [-1000, -1001]])")
        assert_close(out, [[-0.31326169, -1.31326169]] * 2, "log_softmax([[1000, 999], [-1000, -1001]])")

    @pytest.mark.parametrize("axis", [0, 1, -1])
    def test_exp_sums_to_one_along_any_axis(self, axis):
        """exp(log_softmax(x, axis)) sums to 1 along that axis, and every value is <= 0."""
        out = log_softmax(random_tensor((3, 5), seed=14), axis=axis)
        sums = np.exp(out.data).sum(axis=axis)
        assert_close(sums, np.ones_like(sums), f"sums of exp(log_softmax(x, axis={axis})) (seed 14)")
        assert np.all(out.data <= 0), f"log_softmax(x, axis={axis}) has positive values: max {out.data.max()}"

    def test_adding_a_constant_changes_nothing(self):
        """log_softmax(x - 200) equals log_softmax(x)."""
        x = random_tensor((3, 5), seed=15)
        assert_close(log_softmax(tensor(x.data - 200)), log_softmax(x),
                     "log_softmax(x - 200) against log_softmax(x) (seed 15)", atol=1e-4)

    def test_shape_and_dtype_preserved(self):
        """log_softmax keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(log_softmax, "log_softmax")

    def test_layer_carries_its_axis(self):
        """LogSoftmax(axis=0) keeps its axis and gives log_softmax(x, axis=0)."""
        x = random_tensor((3, 4), seed=16)
        assert_close(LogSoftmax(axis=0)(x), log_softmax(x, axis=0), "LogSoftmax(axis=0)(x) against log_softmax(x, axis=0)")
        assert_close(LogSoftmax()(x), log_softmax(x, axis=-1), "LogSoftmax()(x) against log_softmax(x, axis=-1)")
        assert LogSoftmax(axis=0).axis == 0 and LogSoftmax().axis == -1, \
            "LogSoftmax should keep its axis in .axis (default -1)"


# -- optimize -------------------------------------------------------------------------

BIG = (1024, 1024)
TIME_BUDGET = 2.5  # the reference measures about 0.95x the baseline below; a loop over rows about 4x
MEMORY_BUDGET = 1.5  # in units of the output's bytes; the reference needs about 1.0


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    """The baseline: a plain vectorised numpy softmax over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    def test_exp_is_called_once_not_once_per_row(self):
        """softmax of a (256, 64) tensor calls np.exp at most twice, whatever the number of rows."""
        t = random_tensor((256, 64), seed=19)
        with count_calls(np, "exp") as exp:
            out = softmax(t)
        assert_close(out.data.sum(axis=-1), np.ones(256), "row sums of softmax of a (256, 64) tensor (seed 19)")
        assert exp.calls <= 2, (
            f"softmax of a (256, 64) tensor called np.exp {exp.calls} times; expected 1 (at most 2). "
            "One numpy call over the whole array replaces a Python loop over the rows")

    def test_time_within_budget_of_numpy(self):
        """softmax of a 1024x1024 float32 tensor takes at most 2.5x a vectorised numpy softmax."""
        x = np.random.default_rng(17).standard_normal(BIG).astype(np.float32)
        t = Tensor(x)
        assert_close(softmax(t).data[:2], numpy_softmax(x[:2]), "softmax of the first rows of the big input")
        for attempt in range(3):  # a busy machine can slow a whole measurement; noise only ever adds time
            try:
                assert_time_ratio(lambda: softmax(t), lambda: numpy_softmax(x), TIME_BUDGET,
                                  "softmax of a (1024, 1024) float32 tensor against numpy (a Python loop over "
                                  "rows takes about 4x)")
                break
            except AssertionError:
                if attempt == 2:
                    raise

    def test_peak_memory_is_about_one_output(self):
        """softmax of a 1024x1024 float32 tensor allocates at most 1.5x its output (no extra full-size temporaries)."""
        t = Tensor(np.random.default_rng(18).standard_normal(BIG).astype(np.float32))
        peak, out = peak_bytes(lambda: softmax(t))
        assert_close(out.data.sum(axis=-1)[:4], np.ones(4), "row sums of softmax of the big input")
        budget = MEMORY_BUDGET * out.data.nbytes
        assert peak <= budget, (
            f"softmax of a (1024, 1024) float32 tensor: peak memory {peak / 2**20:.1f} MiB; the budget is "
            f"{budget / 2**20:.1f} MiB ({MEMORY_BUDGET}x the {out.data.nbytes / 2**20:.0f} MiB output). Each "
            "full-size temporary (x - max, exp(...), the division) costs 4 MiB: reuse one buffer with out= or /=")

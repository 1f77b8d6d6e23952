"""Kata 02 · Activations: the ordered suite. Run `python -m pytest katas/02_activations`."""

import numpy as np
import pytest

from harness import checks
from harness.budgets import assert_time_ratio, count_calls, peak_bytes
from harness.checks import assert_close, assert_finite, assert_made_by_op, assert_shape
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


# Moderate values, a zero among them: no formula overflows here, so only a write into the input can fail.
MODERATE = [[-3.0, -0.5, 0.0, 1.5], [0.5, 2.0, -1.0, 3.0]]


def check_leaves_input_alone(fn, name: str) -> None:
    """fn(x) leaves x's values alone and returns an array of its own, in float32 and float64."""
    for dtype in (np.float32, np.float64):
        before = np.array(MODERATE, dtype=dtype)
        x = tensor(before, dtype)
        out = fn(x)
        changed = x.data != before
        if changed.any():
            index = tuple(int(i) for i in np.argwhere(changed)[0])
            raise AssertionError(
                f"{name}(x) wrote into its input ({np.dtype(dtype).name}): x.data{list(index)} was {before[index]!r}, "
                f"is now {x.data[index]!r} ({int(changed.sum())} of {changed.size} values changed).\n"
                "Compute the result "
                "in a new array: the caller still holds x, and kata 03's backward reads it again")
        result = out.data if isinstance(out, Tensor) else np.asarray(out)
        assert not np.shares_memory(result, x.data), (
            f"{name}(x).data shares memory with x.data: a later write to one would change the other;\n"
            "the result needs an array of its own")


def check_made_by_op(fn, name: str, op: str) -> Tensor:
    """fn(x) is a Tensor made by Tensor.from_op, recorded as `op` with x as its parent."""
    x = random_tensor((2, 3), seed=0)
    return assert_made_by_op(lambda: fn(x), f"{name}(x)", op, (x,))


def recorded_axis(action, what: str):
    """Run `action()` while watching Tensor.from_op; the `axis` its result was recorded with."""
    original = Tensor.__dict__["from_op"]
    made = []

    def watching(data, op, parents, **saved):
        out = original.__func__(data, op, parents, **saved)
        made.append((out, saved))
        return out

    Tensor.from_op = staticmethod(watching)
    try:
        result = action()
    finally:
        Tensor.from_op = original
    for out, saved in made:
        if out is result:
            assert "axis" in saved, f"{what}: recorded without `axis`; keep the recording line's axis=axis"
            return saved["axis"]
    raise AssertionError(f"{what}: the result was not made by Tensor.from_op(data, op, parents, ...)")


def assert_close_with_nan(got, expected, what: str, **tolerances) -> None:
    """Like assert_close, but nan is expected exactly where `expected` has nan (and nowhere else)."""
    got_array, expected_array = np.asarray(getattr(got, "data", got)), np.asarray(expected)
    assert got_array.shape == expected_array.shape, (
        f"{what}: expected shape {expected_array.shape}, got {got_array.shape}")
    wrong_nan = np.isnan(got_array) != np.isnan(expected_array)
    if wrong_nan.any():
        index = tuple(int(i) for i in np.argwhere(wrong_nan)[0])
        raise AssertionError(f"{what}: at index {index} expected {expected_array[index]!r}, got {got_array[index]!r}.\n"
                             "nan in, nan out (as in PyTorch): a nan hidden as a number makes the bug upstream "
                             "invisible; a nan appearing from numbers means the formula broke")
    keep = ~np.isnan(expected_array)
    assert_close(got_array[keep], expected_array[keep], f"{what} (the entries that are not nan)", **tolerances)


def check_shape_and_dtype(fn, name: str) -> None:
    """The output has the input's shape, float32 stays float32 and float64 stays float64."""
    for dtype in (np.float32, np.float64):
        x = random_tensor((2, 3, 4), seed=7, dtype=dtype)
        out = fn(x)
        assert isinstance(out, Tensor), f"{name} should return a Tensor, got {type(out).__name__}"
        assert_shape(out, (2, 3, 4), f"{name} of a (2, 3, 4) {np.dtype(dtype).name} tensor")
        assert out.dtype == dtype, (
            f"{name} of a {np.dtype(dtype).name} tensor: expected a {np.dtype(dtype).name} result, got {out.dtype}.\n"
            "Look for a float64 constant or array (np.float64 scalars count) mixed into the computation")


# -- relu -----------------------------------------------------------------------------


@pytest.mark.checkpoint("relu")
class TestReLU:
    def test_does_not_modify_its_input(self):
        """relu(x) returns a new array and leaves the input's values alone."""
        check_leaves_input_alone(relu, "relu")

    def test_made_by_from_op(self):
        """relu(x) is a Tensor made by Tensor.from_op, recorded as 'relu' with x as its parent."""
        check_made_by_op(relu, "relu", "relu")

    def test_known_values(self):
        """relu([-2, -0.5, 0, 0.5, 3]) is [0, 0, 0, 0.5, 3]."""
        assert_close(relu(tensor([-2, -0.5, 0, 0.5, 3])), [0, 0, 0, 0.5, 3], "relu([-2, -0.5, 0, 0.5, 3])")

    def test_exactly_at_the_kink(self):
        """relu(0) is exactly 0, relu(-1e-30) is 0 and relu(1e-30) is 1e-30: the cut is at 0, not near it."""
        out = relu(tensor([0.0, -1e-30, 1e-30]))
        expected = np.array([0.0, 0.0, 1e-30], dtype=np.float32)
        assert np.array_equal(out.data, expected), f"relu([0, -1e-30, 1e-30]): expected {expected}, got {out.data}"

    def test_negatives_become_zero_not_positive(self):
        """Every negative input maps to 0 (not to its absolute value); positives pass unchanged."""
        x = random_tensor((50,), seed=1)
        expected = np.where(x.data > 0, x.data, 0)
        assert_close(relu(x), expected, "relu of 50 random values (seed 1)")

    def test_nan_and_infinities(self):
        """relu([nan, inf, -inf, 3e38, -3e38]) is [nan, inf, 0, 3e38, 0], with no warning (PyTorch agrees).

        Hint: `np.where(x > 0, x, 0)` turns nan into 0 (nan > 0 is False) and `x * (x > 0)` makes
        -inf * 0 = nan; `np.maximum` keeps nan and handles both infinities.
        """
        with checks.no_overflow("relu([nan, inf, -inf, 3e38, -3e38])",
                                "ReLU needs no arithmetic, only a choice between x and 0 for each element"):
            out = relu(tensor([np.nan, np.inf, -np.inf, 3e38, -3e38]))
        assert_close_with_nan(out, np.array([np.nan, np.inf, 0, 3e38, 0], dtype=np.float32),
                              "relu([nan, inf, -inf, 3e38, -3e38])")

    def test_shape_and_dtype_preserved(self):
        """relu keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(relu, "relu")

    def test_layer_calls_the_function(self):
        """ReLU() is a layer object whose call gives relu(x)."""
        x = random_tensor((3, 4), seed=2)
        assert_close(ReLU()(x), relu(x), "ReLU()(x) compared with relu(x)")


# -- sigmoid --------------------------------------------------------------------------


@pytest.mark.checkpoint("sigmoid")
class TestSigmoid:
    def test_does_not_modify_its_input(self):
        """sigmoid(x) returns a new array and leaves the input's values alone."""
        check_leaves_input_alone(sigmoid, "sigmoid")

    def test_made_by_from_op(self):
        """sigmoid(x) is a Tensor made by Tensor.from_op, recorded as 'sigmoid' with x as its parent."""
        check_made_by_op(sigmoid, "sigmoid", "sigmoid")

    def test_known_values(self):
        """sigmoid(0) = 0.5, sigmoid(2) = 0.8808, sigmoid(-2) = 0.1192, sigmoid(4) = 0.9820."""
        assert_close(sigmoid(tensor([0, 2, -2, 4])), [0.5, 0.8807970779778823, 0.11920292202211755, 0.9820137900379085],
                     "sigmoid([0, 2, -2, 4])")

    def test_symmetry(self):
        """sigmoid(-x) = 1 - sigmoid(x) for random x."""
        x = random_tensor((40,), seed=3)
        assert_close(sigmoid(tensor(-x.data)), 1 - sigmoid(x).data, "sigmoid(-x) against 1 - sigmoid(x) (seed 3)")

    def test_small_values_keep_their_precision(self):
        """sigmoid(-20), sigmoid(-40) and sigmoid(-80) in float32 are 2.06e-9, 4.25e-18 and 1.80e-35 to 5 digits.

        Hint: `1 - 1 / (1 + e)` and `0.5 * (1 + tanh(x / 2))` subtract two numbers that are both
        almost 1; in float32 the difference is 0. Compute the small value directly: e / (1 + e).
        """
        with no_overflow("sigmoid([-20, -40, -80])"):
            out = sigmoid(tensor([-20.0, -40.0, -80.0]))
        assert_close(out, [2.0611536181902037e-09, 4.248354255291589e-18, 1.8048513878454153e-35],
                     "sigmoid([-20, -40, -80]) in float32, relative error at most 1e-5", atol=0)

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

    def test_nan_and_infinities(self):
        """sigmoid([nan, inf, -inf, 3e38, -3e38]) is [nan, 1, 0, 1, 0], with no warning (PyTorch agrees)."""
        with no_overflow("sigmoid([nan, inf, -inf, 3e38, -3e38])"):
            out = sigmoid(tensor([np.nan, np.inf, -np.inf, 3e38, -3e38]))
        assert_close_with_nan(out, np.array([np.nan, 1, 0, 1, 0], dtype=np.float32),
                              "sigmoid([nan, inf, -inf, 3e38, -3e38])", atol=0)

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
    def test_does_not_modify_its_input(self):
        """tanh(x) returns a new array and leaves the input's values alone."""
        check_leaves_input_alone(tanh, "tanh")

    def test_made_by_from_op(self):
        """tanh(x) is a Tensor made by Tensor.from_op, recorded as 'tanh' with x as its parent."""
        check_made_by_op(tanh, "tanh", "tanh")

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

    def test_near_zero_keeps_its_precision(self):
        """tanh(1e-4), tanh(-3e-6) and tanh(1e-10) in float32 equal x to 5 digits (tanh(x) ~ x near 0).

        Hint: `2 * sigmoid(2x) - 1` and `(1 - exp(-2x)) / (1 + exp(-2x))` subtract two numbers
        close to 1 and keep only a few digits of a small answer; np.tanh does not.
        """
        x = [1e-4, -3e-6, 1e-10]
        assert_close(tanh(tensor(x)), np.tanh(np.array(x)), "tanh([1e-4, -3e-6, 1e-10]) in float32, relative error "
                     "at most 1e-5", atol=0)

    def test_odd_function(self):
        """tanh(-x) = -tanh(x) for random x."""
        x = random_tensor((40,), seed=5)
        assert_close(tanh(tensor(-x.data)), -tanh(x).data, "tanh(-x) against -tanh(x) (seed 5)")

    def test_nan_and_infinities(self):
        """tanh([nan, inf, -inf]) is [nan, 1, -1], with no warning (PyTorch agrees)."""
        with no_overflow("tanh([nan, inf, -inf])"):
            out = tanh(tensor([np.nan, np.inf, -np.inf]))
        assert_close_with_nan(out, np.array([np.nan, 1, -1], dtype=np.float32), "tanh([nan, inf, -inf])", atol=0)

    def test_shape_and_dtype_preserved(self):
        """tanh keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(tanh, "tanh")

    def test_layer_calls_the_function(self):
        """Tanh() is a layer object whose call gives tanh(x)."""
        x = random_tensor((3, 4), seed=6)
        assert_close(Tanh()(x), tanh(x), "Tanh()(x) compared with tanh(x)")


# -- gelu -----------------------------------------------------------------------------


def gelu64(values) -> np.ndarray:
    """The tanh form of GELU in float64, straight from its docstring."""
    x = np.asarray(values, dtype=np.float64)
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


@pytest.mark.checkpoint("gelu")
class TestGELU:
    def test_does_not_modify_its_input(self):
        """gelu(x) returns a new array and leaves the input's values alone."""
        check_leaves_input_alone(gelu, "gelu")

    def test_made_by_from_op(self):
        """gelu(x) is a Tensor made by Tensor.from_op, recorded as 'gelu' with x as its parent."""
        check_made_by_op(gelu, "gelu", "gelu")

    def test_zero(self):
        """gelu(0) = 0."""
        assert_close(gelu(tensor([0.0])), [0.0], "gelu(0)", atol=0)

    def test_known_values_of_the_tanh_approximation(self):
        """gelu(1) = 0.84119, gelu(-1) = -0.15881, gelu(2) = 1.95460, gelu(-3) = -0.00364 (tanh form).

        Hint: PyTorch's default GELU uses erf (gelu(1) = 0.84134); this one is the tanh
        approximation GPT-2 uses, PyTorch's `gelu(x, approximate="tanh")`.
        """
        assert_close(gelu(tensor([1, -1, 2, -3, 0.5])),
                     [0.8411919906082768, -0.1588080093917233, 1.954597694087775, -0.0036373920817729943,
                      0.34571400982514394],
                     "gelu([1, -1, 2, -3, 0.5]) with the tanh approximation")

    def test_random_values(self):
        """gelu of 60 random values in [-6, 6] matches the tanh form computed in float64."""
        x = np.random.default_rng(20).uniform(-6, 6, size=60)
        assert_close(gelu(tensor(x)), gelu64(x.astype(np.float32)), "gelu of 60 random values (seed 20)", atol=1e-6)

    def test_large_inputs(self):
        """gelu(+-1000) is 1000 and 0 and gelu(+-1e4) is 1e4 and 0, with no overflow warning and no nan."""
        with no_overflow("gelu([-1000, 1000, -1e4, 1e4])"):
            out = gelu(tensor([-1000.0, 1000.0, -1e4, 1e4]))
        assert_finite(out, "gelu([-1000, 1000, -1e4, 1e4])")
        assert_close(out, [0.0, 1000.0, 0.0, 1e4], "gelu([-1000, 1000, -1e4, 1e4])")

    def test_nan_and_infinity(self):
        """gelu([nan, inf]) is [nan, inf], with no warning (PyTorch agrees)."""
        with no_overflow("gelu([nan, inf])"):
            out = gelu(tensor([np.nan, np.inf]))
        assert_close_with_nan(out, np.array([np.nan, np.inf], dtype=np.float32), "gelu([nan, inf])")

    def test_shape_and_dtype_preserved(self):
        """gelu keeps the input's shape, and float32 and float64 stay as they are."""
        check_shape_and_dtype(gelu, "gelu")

    def test_layer_calls_the_function(self):
        """GELU() is a layer object whose call gives gelu(x)."""
        x = random_tensor((3, 4), seed=8)
        assert_close(GELU()(x), gelu(x), "GELU()(x) compared with gelu(x)")


# -- softmax --------------------------------------------------------------------------


def softmax64(x: np.ndarray, axis: int) -> np.ndarray:
    """softmax straight from its definition, in float64 (fine for the moderate inputs it is used on)."""
    e = np.exp(np.asarray(x, dtype=np.float64))
    return e / e.sum(axis=axis, keepdims=True)


# Rows of very different scale in one batch: a shift by anything but each row's own maximum
# leaves some row as exp(-2000) / exp(-2000) = 0 / 0.
SCALES = [[[1000.0, 999.0], [-1000.0, -1001.0]], [[3.0, 1.0], [-2.0, 0.0]]]
SCALES_SOFTMAX = [[[0.7310585786300049, 0.2689414213699951]] * 2, [[0.8807970779778823, 0.11920292202211755],
                                                                  [0.11920292202211755, 0.8807970779778823]]]


@pytest.mark.checkpoint("softmax")
class TestSoftmax:
    def test_does_not_modify_its_input(self):
        """softmax(x) returns a new array and leaves the input's values alone (no x.data -= max).

        Hint: in-place steps are welcome on the new array you made (`np.exp(z, out=z)`), never
        on x.data: the caller still holds x.
        """
        check_leaves_input_alone(softmax, "softmax")
        check_leaves_input_alone(lambda x: softmax(x, axis=0), "softmax(axis=0)")

    def test_made_by_from_op_with_its_axis(self):
        """softmax(x, axis) is a Tensor made by Tensor.from_op as 'softmax' with x as its parent, recording the axis."""
        check_made_by_op(softmax, "softmax", "softmax")
        x = random_tensor((2, 3), seed=0)
        axis = recorded_axis(lambda: softmax(x, axis=0), "softmax(x, axis=0)")
        assert axis in (0, -2), f"softmax(x, axis=0): recorded axis={axis!r}; kata 03's rule needs the axis used"

    def test_known_values(self):
        """softmax([1, 2, 3]) = [0.0900, 0.2447, 0.6652]."""
        assert_close(softmax(tensor([1, 2, 3])), [0.09003057, 0.24472847, 0.66524096], "softmax([1, 2, 3])")

    @pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
    def test_values_along_every_axis(self, axis):
        """softmax(x, axis) of a (3, 4, 5) input equals exp(x) / sum(exp(x)) along that axis, computed in float64.

        Hint: take the maximum and the sum along `axis`, both with keepdims=True, so that they
        line up with x; the maximum along another axis is not a constant of the slice.
        """
        x = random_tensor((3, 4, 5), seed=10)
        assert_close(softmax(x, axis=axis), softmax64(x.data, axis), f"softmax(x, axis={axis}) of shape (3, 4, 5) "
                     "(seed 10)")

    @pytest.mark.parametrize("axis", [0, -1])
    def test_square_input(self, axis):
        """softmax(x, axis) of a square (4, 4) input matches float64 (a missing keepdims broadcasts wrongly here).

        Hint: x.max(axis=-1) of a (4, 4) x has shape (4,), which numpy lines up with the LAST
        axis: it subtracts column maxima from rows, with no error. keepdims=True gives (4, 1).
        """
        x = random_tensor((4, 4), seed=21)
        assert_close(softmax(x, axis=axis), softmax64(x.data, axis), f"softmax(x, axis={axis}) of a (4, 4) x (seed 21)")

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

    def test_rows_of_very_different_scale_in_a_batch(self):
        """A (2, 2, 2) batch whose first item has rows near +1000 and -1000: every row is shifted by its own maximum.

        Hint: the maximum of each batch item (over its last two axes) is still too coarse: the
        row near -1000 in the first item becomes 0 / 0. Reduce along `axis` only.
        """
        with no_overflow("softmax of a batch with rows near +1000 and -1000"):
            out = softmax(tensor(SCALES))
        assert_finite(out, "softmax of a batch with rows near +1000 and -1000")
        assert_close(out, SCALES_SOFTMAX, "softmax([[[1000, 999], [-1000, -1001]], [[3, 1], [-2, 0]]])")
        with no_overflow("softmax(x, axis=1) of the same batch with its last two axes swapped"):
            along_1 = softmax(tensor(np.swapaxes(np.array(SCALES), 1, 2)), axis=1)
        assert_close(along_1, np.swapaxes(np.array(SCALES_SOFTMAX), 1, 2),
                     "softmax(x, axis=1) of the batch with its last two axes swapped")

    def test_minus_infinity_masks_an_entry(self):
        """softmax([[0, -inf, 1], [2, -inf, -inf]]) gives -inf entries probability 0, with no warning.

        Hint: this is how attention masks work (kata 12): exp(-inf) is exactly 0, and the row's
        finite maximum keeps everything else finite.
        """
        with no_overflow("softmax([[0, -inf, 1], [2, -inf, -inf]])"):
            out = softmax(tensor([[0.0, -np.inf, 1.0], [2.0, -np.inf, -np.inf]]))
        assert_close(out, [[0.2689414213699951, 0.0, 0.7310585786300049], [1.0, 0.0, 0.0]],
                     "softmax([[0, -inf, 1], [2, -inf, -inf]])")

    def test_nan_stays_in_its_row(self):
        """A nan in row 0 makes row 0 all nan (as in PyTorch) and leaves row 1 exactly as without it."""
        x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], dtype=np.float32)
        with no_overflow("softmax([[1, nan, 2], [1, 2, 3]])"):
            out = softmax(tensor(x))
        expected = np.array([[np.nan] * 3, [0.09003057, 0.24472847, 0.66524096]])
        assert_close_with_nan(out, expected, "softmax([[1, nan, 2], [1, 2, 3]])")

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
    def test_does_not_modify_its_input(self):
        """log_softmax(x) returns a new array and leaves the input's values alone (no x.data -= max)."""
        check_leaves_input_alone(log_softmax, "log_softmax")
        check_leaves_input_alone(lambda x: log_softmax(x, axis=0), "log_softmax(axis=0)")

    def test_made_by_from_op_with_its_axis(self):
        """log_softmax(x, axis) is a Tensor made by from_op as 'log_softmax' of x, recording the axis."""
        check_made_by_op(log_softmax, "log_softmax", "log_softmax")
        x = random_tensor((2, 3), seed=0)
        axis = recorded_axis(lambda: log_softmax(x, axis=0), "log_softmax(x, axis=0)")
        assert axis in (0, -2), f"log_softmax(x, axis=0): recorded axis={axis!r}; kata 03's rule needs the axis used"

    def test_equals_log_of_softmax_where_finite(self):
        """For moderate logits, log_softmax(x) equals log(softmax(x)) computed in float64."""
        x = random_tensor((4, 7), seed=13)
        assert_close(log_softmax(x), np.log(softmax64(x.data, -1)),
                     "log_softmax(x) against log(softmax(x)) in float64 (seed 13)")

    @pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
    def test_values_along_every_axis(self, axis):
        """log_softmax(x, axis) of a (3, 4, 5) input equals log(softmax(x, axis)) computed in float64.

        Hint: the maximum and the log of the sum are taken along `axis`, with keepdims=True.
        """
        x = random_tensor((3, 4, 5), seed=14)
        assert_close(log_softmax(x, axis=axis), np.log(softmax64(x.data, axis)),
                     f"log_softmax(x, axis={axis}) of shape (3, 4, 5) (seed 14)", atol=1e-5)

    @pytest.mark.parametrize("axis", [0, -1])
    def test_square_input(self, axis):
        """log_softmax(x, axis) of a square (4, 4) input matches float64 (a missing keepdims broadcasts wrongly here)."""
        x = random_tensor((4, 4), seed=22)
        assert_close(log_softmax(x, axis=axis), np.log(softmax64(x.data, axis)),
                     f"log_softmax(x, axis={axis}) of a (4, 4) x (seed 22)", atol=1e-5)

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

    def test_rows_of_very_different_scale_in_a_batch(self):
        """A (2, 2, 2) batch whose first item has rows near +1000 and -1000: every row is shifted by its own maximum."""
        with no_overflow("log_softmax of a batch with rows near +1000 and -1000"):
            out = log_softmax(tensor(SCALES))
        assert_finite(out, "log_softmax of a batch with rows near +1000 and -1000")
        assert_close(out, np.log(SCALES_SOFTMAX), "log_softmax([[[1000, 999], [-1000, -1001]], [[3, 1], [-2, 0]]])")
        with no_overflow("log_softmax(x, axis=1) of the same batch with its last two axes swapped"):
            along_1 = log_softmax(tensor(np.swapaxes(np.array(SCALES), 1, 2)), axis=1)
        assert_close(along_1, np.swapaxes(np.log(SCALES_SOFTMAX), 1, 2),
                     "log_softmax(x, axis=1) of the batch with its last two axes swapped")

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

    def test_minus_infinity_masks_an_entry(self):
        """log_softmax([[0, -inf, 1], [2, -inf, -inf]]) is -inf exactly where the mask is, with no warning."""
        with no_overflow("log_softmax([[0, -inf, 1], [2, -inf, -inf]])"):
            out = log_softmax(tensor([[0.0, -np.inf, 1.0], [2.0, -np.inf, -np.inf]]))
        assert_close(out, [[-1.3132616875182228, -np.inf, -0.3132616875182228], [0.0, -np.inf, -np.inf]],
                     "log_softmax([[0, -inf, 1], [2, -inf, -inf]])")

    def test_nan_stays_in_its_row(self):
        """A nan in row 0 makes row 0 all nan (as in PyTorch) and leaves row 1 exactly as without it."""
        x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], dtype=np.float32)
        with no_overflow("log_softmax([[1, nan, 2], [1, 2, 3]])"):
            out = log_softmax(tensor(x))
        expected = np.array([[np.nan] * 3, np.log([0.09003057, 0.24472847, 0.66524096])])
        assert_close_with_nan(out, expected, "log_softmax([[1, nan, 2], [1, 2, 3]])")

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
        assert_time_ratio(lambda: softmax(t), lambda: numpy_softmax(x), TIME_BUDGET,
                          "softmax of a (1024, 1024) float32 tensor against numpy (a Python loop over rows takes "
                          "about 4x)")

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

"""Kata 05 · Losses: the ordered suite. Run `python -m pytest katas/05_losses`."""

import functools

import numpy as np
import pytest

from harness import checks
from harness.budgets import assert_time_ratio, peak_bytes
from harness.checks import (assert_close, assert_finite, assert_made_by_op, assert_shape, assert_tensor, gradcheck,
                            raises_naming)
from tinytorch.autograd import BACKWARD_RULES
from tinytorch.losses import (
    BCEWithLogitsLoss, CrossEntropyLoss, MSELoss,
    binary_cross_entropy_with_logits, binary_targets, class_indices, cross_entropy, mse_loss,
)
from tinytorch.tensor import Tensor


def no_overflow(what: str):
    """harness.checks.no_overflow, with this kata's advice for a formula that overflows."""
    return checks.no_overflow(what, "In float32, exp overflows above about 88.7 and log(0) is -inf: shift by "
                                    "the row maximum (logsumexp) and never take the log of a probability")


def tensor(values, dtype=np.float32, requires_grad=False) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def random_array(shape, seed: int, scale: float = 2.0, dtype=np.float64) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def random_classes(n: int, classes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, size=n)


def soft_targets(shape, seed: int) -> np.ndarray:
    """Probabilities in [0.1, 0.9]: far enough from 0 and 1 for central differences on the targets."""
    return np.random.default_rng(seed).uniform(0.1, 0.9, shape)


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_cross_entropy(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy in float64, the slow obvious way (each row shifted by its own maximum)."""
    return -np.log(numpy_softmax(x.astype(np.float64))[np.arange(len(targets)), targets])


def one_hot(targets: np.ndarray, classes: int) -> np.ndarray:
    """Only the tests build one-hot matrices, and only small ones."""
    return np.eye(classes)[targets]


def numpy_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def numpy_bce(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise binary cross-entropy in float64, the textbook way (fine for moderate logits)."""
    s = numpy_sigmoid(x.astype(np.float64))
    return -(y * np.log(s) + (1 - y) * np.log(1 - s))


def assert_value_error_names(call, fragments, what: str, errors=(ValueError,)) -> None:
    """call() raises one of `errors` (ValueError unless told), and its message mentions every fragment."""
    raises_naming(call, errors, fragments, what)


def assert_unchanged(array: np.ndarray, before: np.ndarray, what: str, fix: str) -> None:
    """`array` still holds exactly `before`: nothing wrote into it."""
    if not np.array_equal(array, before, equal_nan=True):
        changed = int(np.sum(~((array == before) | (np.isnan(array) & np.isnan(before)))))
        raise AssertionError(f"{what} changed: {changed} of {array.size} values were overwritten. {fix}")


INPUT_FIX = ("A loss reads its inputs and never writes into them: the caller still uses them. "
             "Work in arrays you made (`x - m` is new; `x -= m` is the caller's).")


def backward_rule_gradients(loss: Tensor, upstream) -> tuple:
    """Call the registered backward rule of `loss` directly with `upstream`, as the engine would."""
    upstream = np.asarray(upstream, dtype=loss.dtype)
    return BACKWARD_RULES[loss.op](loss, upstream)


# -- mse ---------------------------------------------------------------------------------


@pytest.mark.checkpoint("mse")
class TestMSE:
    def test_inputs_are_left_alone(self):
        """mse_loss and its backward leave the prediction's and the target's data unchanged.

        Hint: compute the differences as a new Tensor, `prediction - target`; `prediction.data -= ...`
        overwrites the model's output, which the caller (and autograd) still reads.
        """
        p, t = random_array((3, 4), 90), random_array((3, 4), 91)
        prediction, target = tensor(p.copy(), np.float64, requires_grad=True), tensor(t.copy(), np.float64)
        loss = mse_loss(prediction, target)
        assert_unchanged(prediction.data, p, "the prediction after mse_loss(prediction, target)", INPUT_FIX)
        assert_unchanged(target.data, t, "the target after mse_loss(prediction, target)", INPUT_FIX)
        if getattr(loss, "requires_grad", False):  # (a loss outside the graph is the next test's diagnosis)
            loss.backward()
            assert_unchanged(prediction.data, p, "the prediction after mse_loss(...).backward()", INPUT_FIX)

    def test_result_is_a_tensor_in_the_graph(self):
        """The loss is a Tensor of shape (), made by Tensor ops, so backward() can reach the prediction.

        Hint: a loss computed in numpy and wrapped at the end (`Tensor(np.mean(...))`) has the right value
        but no history: backward() stops at it. Subtract and square the Tensors themselves.
        """
        prediction = tensor(random_array((4, 2), 92), requires_grad=True)
        loss = mse_loss(prediction, random_array((4, 2), 93))
        assert_tensor(loss, "mse_loss(prediction, target)", shape=())
        assert loss.requires_grad and loss.op is not None, (
            "mse_loss(prediction that requires grad, target): the loss records no op, so backward() cannot reach "
            "the prediction; build it from Tensor ops (`(prediction - target) ** 2`), not from numpy arrays")

    def test_known_value(self):
        """mse_loss([1, 2, 3], [1, 0, 5]) is (0 + 4 + 4) / 3 = 2.6667."""
        loss = mse_loss(tensor([1, 2, 3]), tensor([1, 0, 5]))
        assert isinstance(loss, Tensor), f"mse_loss should return a Tensor, got {type(loss).__name__}"
        assert_close(loss, np.float32(8 / 3), "mse_loss([1, 2, 3], [1, 0, 5])")

    def test_scalar_result_keeps_dtype(self):
        """The loss is a single number (shape ()), float32 for float32 inputs and float64 for float64."""
        for dtype in (np.float32, np.float64):
            loss = mse_loss(tensor(random_array((4, 3), 1), dtype), tensor(random_array((4, 3), 2), dtype))
            assert_shape(loss, (), f"mse_loss of two (4, 3) {np.dtype(dtype).name} tensors")
            assert loss.dtype == dtype, f"mse_loss of {np.dtype(dtype).name} tensors gave dtype {loss.dtype}"
        loss = mse_loss(tensor(random_array((4, 3), 1)), random_array((4, 3), 2))  # a float64 numpy target
        assert loss.dtype == np.float32, f"mse_loss of a float32 prediction and a float64 array gave {loss.dtype}"

    def test_target_may_be_array_or_tensor(self):
        """The target may be a Tensor, a numpy array or a list; the loss is the same."""
        prediction, target = tensor([[0.5, -1.0], [2.0, 0.0]]), [[1.0, -1.0], [0.0, 0.5]]
        expected = np.mean((np.array([[0.5, -1.0], [2.0, 0.0]]) - np.array(target)) ** 2)
        for given in (Tensor(target), np.array(target), target):
            assert_close(mse_loss(prediction, given), expected, f"mse_loss with a {type(given).__name__} target")

    def test_gradient_is_two_errors_over_n(self):
        """The gradient of the mean squared error with respect to the prediction is 2 (p - t) / N."""
        p, t = random_array((4, 3), 3), random_array((4, 3), 4)
        prediction = tensor(p, np.float64, requires_grad=True)
        mse_loss(prediction, t).backward()
        assert_close(prediction.grad, 2 * (p - t) / p.size, "d mse/d prediction (seeds 3, 4)")

    def test_gradcheck(self):
        """The gradient matches float64 central differences on every element (random upstream gradient)."""
        target = random_array((3, 5), 6)
        gradcheck(lambda p: mse_loss(p, target), random_array((3, 5), 5), name="mse_loss")

    def test_target_that_requires_grad_gets_its_gradient(self):
        """A target Tensor that requires grad receives -2 (p - t) / N, as in PyTorch (checked by central differences).

        Hint: the target is an input of the graph like the prediction: use the Tensor itself, not `target.data`.
        """
        p, t = random_array((2, 3), 7), random_array((2, 3), 8)
        gradcheck(lambda prediction, target: mse_loss(prediction, target), p, t, name="mse_loss(p, t)")

    def test_transposed_prediction(self):
        """A transposed view as the prediction (non-contiguous, (4, 3) from (3, 4)) gives the same loss and gradient."""
        p, t = random_array((3, 4), 9), random_array((4, 3), 10)
        assert_close(mse_loss(tensor(p, np.float64).T, t), np.mean((p.T - t) ** 2), "mse_loss(p.T, t)")
        gradcheck(lambda q: mse_loss(q.T, t), p, name="mse_loss(p.T, t)")

    def test_shapes_that_differ_are_an_error(self):
        """A (4, 1) prediction against a (4,) target is a ValueError naming both shapes, not a (4, 4) broadcast."""
        assert_value_error_names(lambda: mse_loss(tensor(np.zeros((4, 1))), tensor(np.zeros(4))),
                                 ["(4, 1)", "(4,)"], "mse_loss of a (4, 1) prediction and a (4,) target")

    def test_same_size_other_shape_is_an_error(self):
        """A (4, 1) prediction against a (1, 4) target (same size, same ndim) is a ValueError naming both, not (4, 4).

        Hint: compare the shapes themselves; equal sizes or equal numbers of dimensions do not make the
        elements line up, and numpy broadcasts (4, 1) against (1, 4) to (4, 4) without a word.
        """
        assert_value_error_names(lambda: mse_loss(tensor(np.zeros((4, 1))), tensor(np.zeros((1, 4)))),
                                 ["(4, 1)", "(1, 4)"], "mse_loss of a (4, 1) prediction and a (1, 4) target")

    def test_loss_object(self):
        """MSELoss()(prediction, target) gives mse_loss(prediction, target)."""
        p, t = tensor(random_array((5, 2), 7)), tensor(random_array((5, 2), 8))
        assert_close(MSELoss()(p, t), mse_loss(p, t), "MSELoss()(p, t)")


# -- validation --------------------------------------------------------------------------


def logits_4x3() -> Tensor:
    return tensor(random_array((4, 3), 11))


@pytest.mark.checkpoint("validation")
class TestValidation:
    def test_targets_are_left_alone(self):
        """class_indices and binary_targets leave the caller's target arrays unchanged.

        Hint: check with comparisons (`targets < 0`) and convert with `astype`, which makes a new array;
        rounding or clipping with `out=targets` rewrites the caller's labels.
        """
        floats, ints = np.array([0.0, 2.0, 1.0, 2.0]), np.array([2, 0, 1, 1])
        class_indices(floats, logits_4x3())
        class_indices(ints, logits_4x3())
        assert_unchanged(floats, np.array([0.0, 2.0, 1.0, 2.0]), "float targets after class_indices", INPUT_FIX)
        assert_unchanged(ints, np.array([2, 0, 1, 1]), "integer targets after class_indices", INPUT_FIX)
        soft = np.array([[0.0, 0.25], [1.0, 0.5]])
        binary_targets(soft, tensor(np.zeros((2, 2)), np.float64))
        assert_unchanged(soft, np.array([[0.0, 0.25], [1.0, 0.5]]), "targets after binary_targets", INPUT_FIX)

    def test_targets_become_arrays_to_compute_with(self):
        """class_indices turns whole-number floats into integer indices; binary_targets takes the logits' dtype."""
        indices = class_indices(Tensor([0.0, 2.0, 1.0, 2.0]), logits_4x3())
        assert isinstance(indices, np.ndarray) and np.issubdtype(indices.dtype, np.integer), (
            f"class_indices(Tensor([0., 2., 1., 2.]), ...) should return an integer numpy array, got "
            f"{type(indices).__name__} of dtype {getattr(indices, 'dtype', None)}")
        assert np.array_equal(indices, [0, 2, 1, 2]), f"class_indices of [0., 2., 1., 2.]: got {indices}"
        for given in (np.array([1.0, 0.0, 2.0, 2.0]), np.array([1, 0, 2, 2], dtype=np.int32)):
            indices = class_indices(given, logits_4x3())
            assert np.issubdtype(indices.dtype, np.integer) and np.array_equal(indices, [1, 0, 2, 2]), (
                f"class_indices of {given!r}: expected the integer indices [1, 0, 2, 2], got {indices!r}")
        targets = binary_targets(np.array([[0, 1], [1, 0]]), tensor(np.zeros((2, 2)), np.float64))
        assert targets.dtype == np.float64 and np.array_equal(targets, [[0, 1], [1, 0]]), (
            f"binary_targets of integer [[0, 1], [1, 0]] for float64 logits: expected float64 values, "
            f"got {targets!r}")
        targets = binary_targets(Tensor(np.array([0.5, 1.0]), dtype=np.float64), tensor(np.zeros(2)))
        assert targets.dtype == np.float32, (
            f"binary_targets of float64 targets for float32 logits: expected float32, got {targets.dtype}")

    def test_an_empty_batch_is_valid(self):
        """Zero targets for logits of shape (0, 3) are valid: class_indices returns an empty integer array.

        Hint: `targets.max()` and `targets.min()` fail on an empty array; a boolean mask such as
        `(targets < 0) | (targets >= C)` and `mask.any()` work for any length.
        """
        indices = class_indices(np.zeros(0, dtype=np.int64), tensor(np.zeros((0, 3))))
        assert isinstance(indices, np.ndarray) and indices.shape == (0,), (
            f"class_indices of no targets: expected an empty array, got {indices!r}")

    def test_class_index_too_large(self):
        """A target >= C (7, and exactly C = 3) is a ValueError naming the target and the class count."""
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.array([0, 7, 1, 2])), ["7", "3"],
                                 "cross_entropy with target 7 for 3 classes")
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.array([0, 1, 2, 3])), ["3"],
                                 "cross_entropy with target 3 for 3 classes (indices are 0, 1, 2)")

    def test_negative_class_index(self):
        """A target of -1 is a ValueError naming it (numpy would silently read the last class instead)."""
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.array([0, -1, 1, 2])), ["-1"],
                                 "cross_entropy with target -1")

    def test_fractional_targets(self):
        """Targets such as 0.5 are not class indices: a ValueError naming the value, not a silent round-down."""
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.array([0.0, 0.5, 1.0, 2.0])), ["0.5"],
                                 "cross_entropy with target 0.5")

    def test_nan_and_infinite_targets(self):
        """A NaN or infinite class target (a broken label file) is a ValueError naming it, not a crash in the cast."""
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.array([0.0, 1.0, np.nan, 2.0])), ["nan"],
                                 "cross_entropy with target nan")
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.array([0.0, np.inf, 1.0, 2.0])), ["inf"],
                                 "cross_entropy with target inf")

    def test_targets_with_an_extra_axis(self):
        """Targets of shape (4, 1) for logits (4, 3) are a ValueError naming both shapes."""
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.zeros((4, 1), dtype=int)),
                                 ["(4, 1)", "(4, 3)"], "cross_entropy with targets (4, 1) and logits (4, 3)")

    def test_targets_of_the_wrong_length(self):
        """Five targets for four rows of logits are a ValueError naming both shapes."""
        assert_value_error_names(lambda: cross_entropy(logits_4x3(), np.zeros(5, dtype=int)),
                                 ["(5,)", "(4, 3)"], "cross_entropy with targets (5,) and logits (4, 3)")

    def test_logits_must_be_a_matrix(self):
        """Logits of shape (3,) or (2, 3, 4) are an error naming the shape: cross_entropy wants (N, C)."""
        assert_value_error_names(lambda: cross_entropy(tensor([0.1, 0.2, 0.3]), np.array([1])), ["(3,)"],
                                 "cross_entropy of 1-D logits", errors=(ValueError, TypeError))
        assert_value_error_names(lambda: cross_entropy(tensor(np.zeros((2, 3, 4))), np.zeros(2, dtype=int)),
                                 ["(2, 3, 4)"], "cross_entropy of 3-D logits", errors=(ValueError, TypeError))

    def test_binary_targets_outside_zero_one(self):
        """Binary targets of 1.5 or -0.1 are a ValueError naming the bad value."""
        logits = tensor(np.zeros((2, 2)))
        assert_value_error_names(lambda: binary_cross_entropy_with_logits(logits, np.array([[0, 1.5], [1, 0]])),
                                 ["1.5"], "binary_cross_entropy_with_logits with target 1.5")
        assert_value_error_names(lambda: binary_cross_entropy_with_logits(logits, np.array([[0, 1], [-0.1, 0]])),
                                 ["-0.1"], "binary_cross_entropy_with_logits with target -0.1")

    def test_binary_target_error_names_the_first_bad_target(self):
        """With several bad binary targets, the error names the first one (row-major) and its index.

        Hint: np.argwhere(bad) lists the bad positions in row-major order; report its first row,
        so the message points at the same entry a reader finds first when scanning the targets.
        """
        targets = np.array([[0.0, 1.5], [-0.3, 1.0]])
        assert_value_error_names(lambda: binary_cross_entropy_with_logits(tensor(np.zeros((2, 2))), targets),
                                 ["1.5", "(0, 1)"],
                                 "binary_cross_entropy_with_logits with bad targets 1.5 at (0, 1) and -0.3 at (1, 0)")

    def test_nan_binary_target(self):
        """A NaN binary target is a ValueError naming it, not a NaN loss that surfaces steps later.

        Hint: every comparison with NaN is False, so `(t < 0) | (t > 1)` lets NaN through; ask for the
        good values instead, `(t >= 0) & (t <= 1)`, and refuse whatever is not good.
        """
        assert_value_error_names(
            lambda: binary_cross_entropy_with_logits(tensor(np.zeros((2, 2))), np.array([[0, 1], [np.nan, 0]])),
            ["nan"], "binary_cross_entropy_with_logits with target nan")

    def test_binary_targets_of_another_shape(self):
        """Binary targets (4,) for logits (4, 1), or (1, 4) for (4, 1), are a ValueError naming both shapes."""
        assert_value_error_names(
            lambda: binary_cross_entropy_with_logits(tensor(np.zeros((4, 1))), np.zeros(4)),
            ["(4,)", "(4, 1)"], "binary_cross_entropy_with_logits with targets (4,) and logits (4, 1)")
        assert_value_error_names(
            lambda: binary_cross_entropy_with_logits(tensor(np.zeros((4, 1))), np.zeros((1, 4))),
            ["(1, 4)", "(4, 1)"], "binary_cross_entropy_with_logits with targets (1, 4) and logits (4, 1)")


# -- cross_entropy ---------------------------------------------------------------------------


@pytest.mark.checkpoint("cross_entropy")
class TestCrossEntropy:
    def test_logits_are_left_alone(self):
        """cross_entropy leaves the caller's logits (float32 and float64) and targets unchanged.

        Hint: `shifted = logits.data - row_max` is a new array, yours to exponentiate in place;
        `logits.data -= row_max` shifts the caller's tensor under them.
        """
        for dtype in (np.float32, np.float64):
            x, t = random_array((4, 5), 80, dtype=dtype), np.array([0, 4, 2, 1])
            logits = Tensor(x.copy(), dtype=dtype)
            cross_entropy(logits, t)
            assert_unchanged(logits.data, x, f"{np.dtype(dtype).name} logits after cross_entropy", INPUT_FIX)
            assert_unchanged(t, np.array([0, 4, 2, 1]), "the targets after cross_entropy", INPUT_FIX)

    def test_result_is_made_by_the_fused_op(self):
        """The loss is ONE node: a Tensor of shape () made by Tensor.from_op as op "cross_entropy", the logits its only parent."""
        logits = tensor(random_array((3, 4), 81), requires_grad=True)
        loss = assert_made_by_op(lambda: cross_entropy(logits, np.array([0, 3, 1])), "cross_entropy(logits, t)",
                                 op="cross_entropy", parents=(logits,))
        assert_shape(loss, (), "cross_entropy(logits, t) with the default reduction 'mean'")
        assert len(loss.parents) == 1 and loss.parents[0] is logits, (
            f"the loss should be ONE node whose only parent is the logits; got {len(loss.parents)} parents")

    def test_known_value(self):
        """Logits [[2, 1, 0.1], [0.5, 2.5, 0.3]] with targets [0, 1] give a mean loss of 0.31854 (0.41703 and 0.22005)."""
        loss = cross_entropy(tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), np.array([0, 1]))
        assert isinstance(loss, Tensor), f"cross_entropy should return a Tensor, got {type(loss).__name__}"
        assert_close(loss, np.float32(0.3185398), "cross_entropy of the (2, 3) example")

    def test_uniform_logits_give_log_of_class_count(self):
        """Equal logits over 10 classes mean a uniform guess: the loss is log(10) = 2.302585, whatever the targets."""
        loss = cross_entropy(tensor(np.zeros((3, 10))), np.array([0, 4, 9]))
        assert_close(loss, np.float32(np.log(10)), "cross_entropy of zero logits (3, 10)")

    def test_matches_numpy_on_random_logits(self):
        """On random (8, 5) logits the loss equals the float64 mean of -log softmax at the targets."""
        x, t = random_array((8, 5), 12, scale=3.0), random_classes(8, 5, 13)
        assert_close(cross_entropy(tensor(x), t), np.float32(numpy_cross_entropy(x, t).mean()),
                     "cross_entropy, random (8, 5) (seeds 12, 13)")

    def test_scalar_result_keeps_dtype(self):
        """The loss has shape (); float32 logits give float32 and float64 give float64."""
        for dtype in (np.float32, np.float64):
            loss = cross_entropy(tensor(random_array((4, 3), 14), dtype), np.array([0, 1, 2, 0]))
            assert_shape(loss, (), f"cross_entropy of (4, 3) {np.dtype(dtype).name} logits")
            assert loss.dtype == dtype, f"cross_entropy of {np.dtype(dtype).name} logits gave dtype {loss.dtype}"

    def test_huge_logits_are_exact(self):
        """Logits [1e4, 0, -1e4] give losses 0, 1e4 and 2e4 for targets 0, 1, 2: no overflow, no log(0)."""
        logits = tensor([[1e4, 0.0, -1e4]])
        for target, expected in ((0, 0.0), (1, 1e4), (2, 2e4)):
            with no_overflow(f"cross_entropy([[1e4, 0, -1e4]], [{target}])"):
                loss = cross_entropy(logits, np.array([target]))
            assert_finite(loss, f"cross_entropy([[1e4, 0, -1e4]], [{target}])")
            assert_close(loss, np.float32(expected), f"cross_entropy([[1e4, 0, -1e4]], [{target}])")

    def test_rows_of_very_different_scale(self):
        """Rows near 1000, near 0 and near -2000 in one batch: each row is shifted by its OWN maximum, so all are exact.

        Hint: `logits.max()` (one number for the whole batch) shifts the row near 0 down by 1000, and
        exp(-1000) is 0: take the maximum of each row, `max(axis=1, keepdims=True)`.
        """
        x = np.array([[1000.0, 1001.0, 999.0], [0.5, -0.3, 0.1], [-2000.0, -2001.0, -1999.0]])
        t = np.array([1, 0, 2])
        with no_overflow("cross_entropy of rows near 1000, 0 and -2000"):
            loss = cross_entropy(tensor(x), t)
        assert_close(loss, np.float32(numpy_cross_entropy(x, t).mean()),
                     "cross_entropy of rows near 1000, 0 and -2000 (each row's loss is about 0.4)")

    def test_minus_infinity_masks_a_class(self):
        """A logit of -inf masks its class (probability 0): the loss of [[0, -inf, 1]] with target 2 is log(1 + e^-1).

        Hint: the masked class's log-probability is -inf, and 0 * -inf is NaN: pick the target's entry with
        `shifted[rows, targets]` instead of multiplying a one-hot matrix into every entry.
        """
        with no_overflow("cross_entropy([[0, -inf, 1]], [2])"):
            loss = cross_entropy(tensor([[0.0, -np.inf, 1.0]]), np.array([2]))
        assert_close(loss, np.float32(np.log1p(np.exp(-1.0))), "cross_entropy([[0, -inf, 1]], [2])")

    def test_batch_of_one(self):
        """One row of logits (1, 4) with target [3] gives that row's loss."""
        x = random_array((1, 4), 82)
        assert_close(cross_entropy(tensor(x, np.float64), np.array([3])), numpy_cross_entropy(x, np.array([3]))[0],
                     "cross_entropy of (1, 4) logits")

    def test_non_contiguous_logits(self):
        """A transposed view (5, 3) and a strided slice (3, 4) as logits give the same loss as contiguous copies."""
        x, t = random_array((3, 5), 83), np.array([0, 2, 1, 1, 0])
        assert_close(cross_entropy(tensor(x, np.float64).T, t), numpy_cross_entropy(x.T, t).mean(),
                     "cross_entropy of a transposed (5, 3) view")
        y = random_array((6, 4), 84)
        sliced = Tensor(y, dtype=np.float64)[::2]
        t = np.array([3, 0, 2])
        assert_close(cross_entropy(sliced, t), numpy_cross_entropy(y[::2], t).mean(),
                     "cross_entropy of every other row of a (6, 4) tensor")

    def test_targets_as_tensor_array_or_list(self):
        """Targets may be an integer array, a list, a float64 array of whole numbers, or a Tensor (float32)."""
        x = tensor(random_array((4, 3), 15))
        expected = cross_entropy(x, np.array([2, 0, 1, 1])).item()
        for given in ([2, 0, 1, 1], np.array([2.0, 0.0, 1.0, 1.0]), Tensor([2, 0, 1, 1]),
                      Tensor(np.array([2, 0, 1, 1]), dtype=np.int64)):
            assert_close(cross_entropy(x, given), np.float32(expected), f"cross_entropy with targets {given!r}")

    def test_loss_object(self):
        """CrossEntropyLoss()(logits, targets) gives cross_entropy(logits, targets)."""
        x, t = tensor(random_array((6, 4), 16)), random_classes(6, 4, 17)
        assert_close(CrossEntropyLoss()(x, t), cross_entropy(x, t), "CrossEntropyLoss()(x, t)")


# -- cross_entropy_gradient ------------------------------------------------------------------


@pytest.mark.checkpoint("cross_entropy_gradient")
class TestCrossEntropyGradient:
    def test_backward_leaves_logits_and_upstream_gradient_alone(self):
        """The backward rule writes into its own saved buffer only: the logits and the upstream gradient are unchanged.

        Hint: the engine may hand the same upstream array to several rules (for `loss_a + loss_b` both get
        one array). Scale your own buffer, `grad_logits *= grad / N`, never the upstream one (`grad /= N`).
        """
        x = random_array((4, 3), 85)
        logits = tensor(x.copy(), np.float64, requires_grad=True)
        loss = cross_entropy(logits, np.array([2, 0, 1, 1]))
        upstream = np.array(3.0)
        backward_rule_gradients(loss, upstream)
        assert upstream == 3.0, f"the backward rule changed the upstream gradient 3.0 it was given to {upstream}"
        assert_unchanged(logits.data, x, "the logits after the cross_entropy backward rule", INPUT_FIX)

    def test_gradient_is_softmax_minus_one_hot_over_n(self):
        """d(mean loss)/d logits = (softmax(logits) - one_hot(targets)) / N on random (5, 4) logits."""
        x, t = random_array((5, 4), 21), random_classes(5, 4, 22)
        logits = tensor(x, np.float64, requires_grad=True)
        cross_entropy(logits, t).backward()
        assert_close(logits.grad, (numpy_softmax(x) - one_hot(t, 4)) / 5,
                     "d loss/d logits (seeds 21, 22)")

    def test_upstream_gradient_scales_it(self):
        """For 3 * loss the gradient is three times (softmax - one_hot) / N: the rule multiplies by the upstream grad."""
        x, t = random_array((4, 3), 25), random_classes(4, 3, 26)
        logits = tensor(x, np.float64, requires_grad=True)
        (cross_entropy(logits, t) * 3).backward()
        assert_close(logits.grad, 3 * (numpy_softmax(x) - one_hot(t, 3)) / 4,
                     "d (3 * loss)/d logits (seeds 25, 26)")

    def test_gradient_keeps_dtype(self):
        """For float32 logits the rule returns a float32 (N, C) gradient; for float64, float64."""
        for dtype in (np.float32, np.float64):
            logits = tensor(random_array((3, 4), 86), dtype, requires_grad=True)
            (grad,) = backward_rule_gradients(cross_entropy(logits, np.array([1, 0, 3])), 1.0)
            assert isinstance(grad, np.ndarray) and grad.shape == (3, 4) and grad.dtype == dtype, (
                f"the cross_entropy rule for (3, 4) {np.dtype(dtype).name} logits returned "
                f"{type(grad).__name__} of shape {np.shape(grad)} and dtype {getattr(grad, 'dtype', None)}")

    def test_gradcheck(self):
        """The gradient matches float64 central differences on every logit (targets are not differentiated)."""
        targets = random_classes(4, 5, 24)
        gradcheck(lambda logits: cross_entropy(logits, targets), random_array((4, 5), 23), name="cross_entropy")

    def test_gradient_at_huge_logits(self):
        """Logits [[1e4, 0, -1e4], [0, 1e4, 0]] with targets [1, 1] have gradient [[0.5, -0.5, 0], [0, 0, 0]]."""
        logits = tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], requires_grad=True)
        with no_overflow("cross_entropy([[1e4, 0, -1e4], [0, 1e4, 0]], [1, 1]).backward()"):
            cross_entropy(logits, np.array([1, 1])).backward()
        assert_finite(logits.grad, "d loss/d logits at 1e4")
        assert_close(logits.grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], "d loss/d logits at 1e4")

    def test_rows_of_very_different_scale(self):
        """Rows near 1000, near 0 and near -2000 in one batch: every row's gradient is its own softmax - one_hot, / 3."""
        x = np.array([[1000.0, 1001.0, 999.0], [0.5, -0.3, 0.1], [-2000.0, -2001.0, -1999.0]])
        t = np.array([1, 0, 2])
        logits = tensor(x, requires_grad=True)
        with no_overflow("cross_entropy(rows near 1000, 0 and -2000).backward()"):
            cross_entropy(logits, t).backward()
        assert_close(logits.grad, (numpy_softmax(x) - one_hot(t, 3)) / 3, "d loss/d logits, rows of different scale")

    def test_masked_class_gets_no_gradient(self):
        """A class masked with a -inf logit gets gradient 0: [[0, -inf, 1]] with target 2 gives [s0, 0, s2 - 1]."""
        logits = tensor([[0.0, -np.inf, 1.0]], np.float64, requires_grad=True)
        with no_overflow("cross_entropy([[0, -inf, 1]], [2]).backward()"):
            cross_entropy(logits, np.array([2])).backward()
        s = numpy_softmax(np.array([[0.0, 1.0]]))[0]
        assert_close(logits.grad, [[s[0], 0.0, s[1] - 1]], "d loss/d logits with a masked class")

    def test_two_losses_of_the_same_logits_add_up(self):
        """cross_entropy(z, t1) + cross_entropy(z, t2): the gradient is the sum of both, softmax counted twice."""
        x, t1, t2 = random_array((3, 4), 87), np.array([0, 3, 1]), np.array([2, 3, 0])
        logits = tensor(x, np.float64, requires_grad=True)
        (cross_entropy(logits, t1) + cross_entropy(logits, t2)).backward()
        expected = (2 * numpy_softmax(x) - one_hot(t1, 4) - one_hot(t2, 4)) / 3
        assert_close(logits.grad, expected, "d (loss(t1) + loss(t2))/d logits")

    def test_batch_of_one(self):
        """One row (1, 4) with target [2]: the gradient is softmax - one_hot itself (N = 1)."""
        x = random_array((1, 4), 88)
        logits = tensor(x, np.float64, requires_grad=True)
        cross_entropy(logits, np.array([2])).backward()
        assert_close(logits.grad, numpy_softmax(x) - one_hot(np.array([2]), 4), "d loss/d logits for (1, 4)")

    def test_gradient_through_a_transposed_view(self):
        """Logits that are a transposed view (5, 3) of a (3, 5) tensor: the gradient matches central differences."""
        t = np.array([0, 2, 1, 1, 0])
        gradcheck(lambda z: cross_entropy(z.T, t), random_array((3, 5), 89), name="cross_entropy(z.T, t)")

    def test_gradient_flows_through_a_linear_layer(self):
        """cross_entropy(x @ W, t): the gradient reaching W matches central differences."""
        x, t = random_array((6, 4), 27), random_classes(6, 3, 28)
        gradcheck(lambda w: cross_entropy(Tensor(x, dtype=np.float64) @ w, t), random_array((4, 3), 29),
                  name="cross_entropy(x @ W, t) with respect to W")


# -- bce_with_logits -------------------------------------------------------------------------


@pytest.mark.checkpoint("bce_with_logits")
class TestBCEWithLogits:
    def test_inputs_are_left_alone(self):
        """The loss and its backward rule leave the logits, the targets and the upstream gradient unchanged.

        Hint: `np.abs(x, out=x)` or `x *= -1` on `x = logits.data` rewrites the caller's logits; compute
        into new arrays, and scale the gradient you return, not the upstream `grad`.
        """
        x, y = random_array((3, 4), 94), soft_targets((3, 4), 95)
        logits, targets = tensor(x.copy(), np.float64, requires_grad=True), y.copy()
        loss = binary_cross_entropy_with_logits(logits, targets)
        upstream = np.array(2.0)
        backward_rule_gradients(loss, upstream)
        assert_unchanged(logits.data, x, "the logits after binary_cross_entropy_with_logits and its rule", INPUT_FIX)
        assert_unchanged(targets, y, "the targets after binary_cross_entropy_with_logits", INPUT_FIX)
        assert upstream == 2.0, f"the backward rule changed the upstream gradient 2.0 it was given to {upstream}"

    def test_result_is_made_by_the_fused_op(self):
        """The loss is a Tensor made by Tensor.from_op as op "binary_cross_entropy_with_logits", reading the logits."""
        logits = tensor(random_array((2, 3), 96), requires_grad=True)
        assert_made_by_op(lambda: binary_cross_entropy_with_logits(logits, soft_targets((2, 3), 97)),
                          "binary_cross_entropy_with_logits(logits, y)", op="binary_cross_entropy_with_logits",
                          parents=(logits,))

    def test_matches_the_textbook_formula(self):
        """For moderate logits and soft targets the loss is the mean of -(y log s + (1 - y) log(1 - s))."""
        x = random_array((4, 3), 30)
        y = np.random.default_rng(31).uniform(0, 1, (4, 3))
        loss = binary_cross_entropy_with_logits(tensor(x, np.float64), y)
        assert isinstance(loss, Tensor), f"binary_cross_entropy_with_logits should return a Tensor, got {type(loss)}"
        assert_close(loss, numpy_bce(x, y).mean(), "BCE, random (4, 3) (seeds 30, 31)")

    def test_keeps_the_logits_dtype(self):
        """float32 logits give a float32 loss and gradient even with float64 targets; float64 logits give float64."""
        for dtype, other in ((np.float32, np.float64), (np.float64, np.float32)):
            logits = tensor(random_array((2, 3), 98), dtype, requires_grad=True)
            targets = Tensor(soft_targets((2, 3), 99), dtype=other)
            loss = binary_cross_entropy_with_logits(logits, targets)
            assert loss.dtype == dtype, (
                f"BCE of {np.dtype(dtype).name} logits and {np.dtype(other).name} targets gave a {loss.dtype} loss: "
                "compute with the targets in the logits' dtype (binary_targets returns them so)")
            grad = backward_rule_gradients(loss, 1.0)[0]
            assert grad.dtype == dtype, (
                f"the BCE rule for {np.dtype(dtype).name} logits returned a {grad.dtype} gradient")

    def test_huge_logits_are_exact(self):
        """Logits [1e4, 1e4, -1e4, -1e4] with targets [1, 0, 0, 1] lose [0, 1e4, 0, 1e4]: mean 5000, no overflow."""
        with no_overflow("binary_cross_entropy_with_logits([1e4, 1e4, -1e4, -1e4], [1, 0, 0, 1])"):
            loss = binary_cross_entropy_with_logits(tensor([1e4, 1e4, -1e4, -1e4]), np.array([1.0, 0.0, 0.0, 1.0]))
        assert_finite(loss, "binary_cross_entropy_with_logits at logits of +-1e4")
        assert_close(loss, np.float32(5000.0), "BCE at logits of +-1e4")

    def test_huge_logits_with_soft_targets(self):
        """Logits [1e4, -1e4] with soft targets [0.25, 0.25] lose [7500, 2500]: mean 5000, exact."""
        with no_overflow("binary_cross_entropy_with_logits([1e4, -1e4], [0.25, 0.25])"):
            loss = binary_cross_entropy_with_logits(tensor([1e4, -1e4]), np.array([0.25, 0.25]))
        assert_close(loss, np.float32(5000.0), "BCE at logits of +-1e4 with targets 0.25")

    def test_confident_and_right_loses_almost_nothing(self):
        """Logit 30 with target 1 (or -30 with 0) loses log(1 + e^-30) = 9.3576e-14, not 0: use np.log1p.

        Hint: 1 + e^-30 rounds to exactly 1 in float64, so np.log(1 + e^-30) is 0; np.log1p(e^-30) keeps
        the digits, and so keeps the gradient's story consistent with the loss.
        """
        loss = binary_cross_entropy_with_logits(tensor([30.0, -30.0], np.float64), np.array([1.0, 0.0]))
        assert_close(loss, np.log1p(np.exp(-30.0)), "BCE of logits [30, -30] with targets [1, 0]", rtol=1e-6, atol=0)

    def test_gradient_is_sigmoid_minus_target_over_n(self):
        """d(mean loss)/d logits = (sigmoid(x) - y) / (number of elements)."""
        x, y = random_array((3, 4), 32), (random_array((3, 4), 33) > 0).astype(np.float64)
        logits = tensor(x, np.float64, requires_grad=True)
        binary_cross_entropy_with_logits(logits, y).backward()
        assert_close(logits.grad, (numpy_sigmoid(x) - y) / 12, "d BCE/d logits (seeds 32, 33)")

    def test_gradcheck(self):
        """The gradient matches float64 central differences on every logit (random upstream gradient)."""
        y = np.random.default_rng(35).uniform(0, 1, (2, 5))
        gradcheck(lambda logits: binary_cross_entropy_with_logits(logits, y), random_array((2, 5), 34),
                  name="binary_cross_entropy_with_logits")

    def test_soft_targets_get_their_gradient(self):
        """Soft targets that require grad receive d loss/d y = -x / N, as in PyTorch (and match central differences).

        Hint: the loss is max(x, 0) - x*y + log(1 + exp(-|x|)): only the middle term holds y. Return a
        second gradient, for the targets, when `targets.requires_grad`; None otherwise.
        """
        x, y = random_array((2, 3), 100), soft_targets((2, 3), 101)
        logits, targets = tensor(x, np.float64, requires_grad=True), tensor(y, np.float64, requires_grad=True)
        binary_cross_entropy_with_logits(logits, targets).backward()
        assert targets.grad is not None, "targets that require grad got no gradient (targets.grad is None)"
        assert_close(targets.grad, -x / 6, "d BCE/d targets (seeds 100, 101)")
        gradcheck(lambda z, t: binary_cross_entropy_with_logits(z, t), x, y,
                  name="binary_cross_entropy_with_logits(logits, soft targets)")

    def test_gradient_at_huge_logits(self):
        """Logits [1e4, -1e4] with targets [0, 1] have gradient [0.5, -0.5]: finite, no overflow."""
        logits = tensor([1e4, -1e4], requires_grad=True)
        with no_overflow("binary_cross_entropy_with_logits([1e4, -1e4], [0, 1]).backward()"):
            binary_cross_entropy_with_logits(logits, np.array([0.0, 1.0])).backward()
        assert_finite(logits.grad, "gradient of BCE with logits at +-1e4")
        assert_close(logits.grad, [0.5, -0.5], "d BCE/d logits at +-1e4")

    def test_any_shape_including_one_number(self):
        """Logits of shape () (one question), (2, 3, 4) and a transposed (4, 2) view all work, with their gradients."""
        loss = binary_cross_entropy_with_logits(tensor(0.5, np.float64), 1.0)
        assert_close(loss, numpy_bce(np.array(0.5), 1.0), "BCE of the single logit 0.5 with target 1")
        gradcheck(lambda z: binary_cross_entropy_with_logits(z, np.array(0.0)), np.array(-1.5),
                  name="BCE of a 0-d logit")
        y = soft_targets((2, 3, 4), 102)
        gradcheck(lambda z: binary_cross_entropy_with_logits(z, y), random_array((2, 3, 4), 103), name="BCE (2, 3, 4)")
        y = soft_targets((4, 2), 104)
        gradcheck(lambda z: binary_cross_entropy_with_logits(z.T, y), random_array((2, 4), 105), name="BCE of z.T")

    def test_loss_object_takes_any_shape(self):
        """BCEWithLogitsLoss()(logits, targets) on (2, 3, 4) gives the function's scalar loss."""
        x, y = tensor(random_array((2, 3, 4), 36)), np.random.default_rng(37).uniform(0, 1, (2, 3, 4))
        loss = BCEWithLogitsLoss()(x, y)
        assert_shape(loss, (), "BCEWithLogitsLoss()(x, y) for (2, 3, 4) inputs")
        assert_close(loss, binary_cross_entropy_with_logits(x, y), "BCEWithLogitsLoss()(x, y)")


# -- reductions ------------------------------------------------------------------------------


def all_losses(x: np.ndarray, seed: int):
    """name -> loss(prediction, reduction) for each of the three losses, with fixed targets for `x`'s shape."""
    n, c = x.shape
    t, y = random_classes(n, c, seed), soft_targets(x.shape, seed + 1)
    return {"mse_loss": lambda p, r: mse_loss(p, y, reduction=r),
            "cross_entropy": lambda p, r: cross_entropy(p, t, reduction=r),
            "binary_cross_entropy_with_logits": lambda p, r: binary_cross_entropy_with_logits(p, y, reduction=r)}


@pytest.mark.checkpoint("reductions")
class TestReductions:
    def test_results_are_tensors_of_the_right_shape_and_dtype(self):
        """'sum' gives a () Tensor; 'none' gives (N,) for cross_entropy and the input's shape for the others; dtype kept."""
        for dtype in (np.float32, np.float64):
            x = random_array((4, 3), 39, dtype=dtype)
            for name, loss in all_losses(x, 38).items():
                logits = Tensor(x, dtype=dtype, requires_grad=True)
                per_sample = (4,) if name == "cross_entropy" else (4, 3)
                for reduction, shape in (("sum", ()), ("none", per_sample)):
                    what = f"{name}(<(4, 3) {np.dtype(dtype).name}>, reduction={reduction!r})"
                    assert_tensor(loss(logits, reduction), what, shape=shape, dtype=dtype)

    def test_mse_sum_and_none(self):
        """mse_loss with 'sum' adds the squared errors; with 'none' returns them, shaped like the prediction."""
        p, t = random_array((3, 2), 40), random_array((3, 2), 41)
        assert_close(mse_loss(tensor(p, np.float64), t, reduction="sum"), np.sum((p - t) ** 2), "mse_loss 'sum'")
        assert_close(mse_loss(tensor(p, np.float64), t, reduction="none"), (p - t) ** 2, "mse_loss 'none'")

    def test_mse_sum_and_none_gradients(self):
        """mse_loss 'sum' and 'none': gradients of prediction and target match central differences (random upstream)."""
        p, t = random_array((3, 2), 53), random_array((3, 2), 54)
        for reduction in ("sum", "none"):
            gradcheck(lambda a, b: mse_loss(a, b, reduction=reduction), p, t, name=f"mse_loss(reduction={reduction!r})")

    def test_cross_entropy_sum_and_none(self):
        """cross_entropy with 'none' gives the N per-sample losses; with 'sum', their total."""
        x, t = random_array((6, 4), 42), random_classes(6, 4, 43)
        per_sample = numpy_cross_entropy(x, t)
        assert_close(cross_entropy(tensor(x, np.float64), t, reduction="none"), per_sample, "cross_entropy 'none'")
        assert_close(cross_entropy(tensor(x, np.float64), t, reduction="sum"), per_sample.sum(), "cross_entropy 'sum'")

    def test_cross_entropy_sum_gradient_is_not_divided(self):
        """With 'sum' the gradient is softmax - one_hot itself: N times the gradient of the mean."""
        x, t = random_array((5, 3), 44), random_classes(5, 3, 45)
        logits = tensor(x, np.float64, requires_grad=True)
        cross_entropy(logits, t, reduction="sum").backward()
        assert_close(logits.grad, numpy_softmax(x) - one_hot(t, 3), "d sum loss/d logits (seeds 44, 45)")

    def test_cross_entropy_sum_gradient_follows_the_upstream_gradient(self):
        """For 2.5 * (sum loss) the gradient is 2.5 (softmax - one_hot); gradcheck agrees with a random upstream."""
        x, t = random_array((4, 3), 55), random_classes(4, 3, 56)
        logits = tensor(x, np.float64, requires_grad=True)
        (cross_entropy(logits, t, reduction="sum") * 2.5).backward()
        assert_close(logits.grad, 2.5 * (numpy_softmax(x) - one_hot(t, 3)), "d (2.5 * sum loss)/d logits")
        gradcheck(lambda z: cross_entropy(z, t, reduction="sum"), x, name="cross_entropy(reduction='sum')")

    def test_cross_entropy_none_scales_each_row_by_its_own_upstream_gradient(self):
        """With 'none' and upstream [1, 0, 2, -1], row i of the gradient is grad[i] * (softmax - one_hot)[i]."""
        x, t = random_array((4, 3), 57), random_classes(4, 3, 58)
        logits = tensor(x, np.float64, requires_grad=True)
        upstream = np.array([1.0, 0.0, 2.0, -1.0])
        cross_entropy(logits, t, reduction="none").backward(upstream)
        assert_close(logits.grad, upstream[:, None] * (numpy_softmax(x) - one_hot(t, 3)),
                     "d (per-sample losses . [1, 0, 2, -1])/d logits")

    def test_cross_entropy_none_gradcheck(self):
        """With 'none' each row's gradient is scaled by its own upstream gradient (checked by central differences)."""
        targets = random_classes(4, 3, 47)
        gradcheck(lambda logits: cross_entropy(logits, targets, reduction="none"), random_array((4, 3), 46),
                  name="cross_entropy(reduction='none')")

    def test_bce_sum_and_none(self):
        """binary_cross_entropy_with_logits: 'none' returns each element's loss and 'sum' their total, with gradients."""
        x, y = random_array((3, 2), 48), np.random.default_rng(49).uniform(0, 1, (3, 2))
        each = numpy_bce(x, y)
        assert_close(binary_cross_entropy_with_logits(tensor(x, np.float64), y, reduction="none"), each, "BCE 'none'")
        assert_close(binary_cross_entropy_with_logits(tensor(x, np.float64), y, reduction="sum"), each.sum(), "BCE 'sum'")
        for reduction in ("sum", "none"):
            gradcheck(lambda logits: binary_cross_entropy_with_logits(logits, y, reduction=reduction), x,
                      name=f"binary_cross_entropy_with_logits(reduction={reduction!r})")

    def test_bce_soft_target_gradients_for_sum_and_none(self):
        """Soft targets' gradient follows the reduction: -x for 'sum', -x * upstream for 'none' (central differences)."""
        x, y = random_array((2, 3), 59), soft_targets((2, 3), 60)
        for reduction in ("sum", "none"):
            gradcheck(lambda z, t: binary_cross_entropy_with_logits(z, t, reduction=reduction), x, y,
                      name=f"binary_cross_entropy_with_logits(logits, soft targets, reduction={reduction!r})")

    def test_mean_gradient_is_sum_gradient_over_n(self):
        """For every loss the gradient of the mean is the gradient of the sum divided by the element count."""
        x = random_array((4, 3), 50)
        for name, loss in all_losses(x, 51).items():
            grads = {}
            for reduction in ("mean", "sum"):
                logits = tensor(x, np.float64, requires_grad=True)
                loss(logits, reduction).backward()
                grads[reduction] = logits.grad
            count = 4 if name == "cross_entropy" else 12  # cross-entropy averages over samples, the others over elements
            assert_close(grads["mean"] * count, grads["sum"], f"{name}: {count} x mean grad vs sum grad")

    def test_a_single_sample_seeded_by_backward(self):
        """Per-sample losses of one sample ((1,), (1, 1) or ()) take backward() with no argument, like a scalar loss."""
        x = random_array((1, 3), 61)
        logits = tensor(x, np.float64, requires_grad=True)
        loss = cross_entropy(logits, np.array([2]), reduction="none")
        assert_shape(loss, (1,), "cross_entropy of (1, 3) logits with reduction='none'")
        loss.backward()
        assert_close(logits.grad, numpy_softmax(x) - one_hot(np.array([2]), 3), "d loss/d logits, (1, 3), 'none'")
        prediction = tensor([[2.0]], np.float64, requires_grad=True)
        loss = mse_loss(prediction, np.array([[0.5]]), reduction="none")
        assert_shape(loss, (1, 1), "mse_loss of (1, 1) tensors with reduction='none'")
        loss.backward()
        assert_close(prediction.grad, [[3.0]], "d mse/d prediction for (1, 1) 'none': 2 (2 - 0.5)")
        for shape in ((1, 1), ()):
            logit = tensor(np.full(shape, 0.25), np.float64, requires_grad=True)
            loss = binary_cross_entropy_with_logits(logit, np.ones(shape), reduction="none")
            assert_shape(loss, shape, f"BCE of a {shape} logit with reduction='none'")
            loss.backward()
            assert_close(logit.grad, np.full(shape, numpy_sigmoid(0.25) - 1), f"d BCE/d logit, shape {shape}")

    def test_nan_logit_stays_in_its_row(self):
        """A NaN logit makes its own row's loss NaN (as in PyTorch) and leaves every other row's loss and gradient exact.

        Hint: a shift by the batch's maximum (one number) is NaN for every row once any logit is NaN;
        shift each row by its own maximum.
        """
        x = random_array((3, 4), 62)
        x[1, 2] = np.nan
        t = np.array([0, 1, 3])
        logits = tensor(x, np.float64, requires_grad=True)
        losses = cross_entropy(logits, t, reduction="none")
        assert np.isnan(losses.data[1]), f"the row with a NaN logit should lose NaN, got {losses.data[1]!r}"
        good = [0, 2]
        assert_close(losses.data[good], numpy_cross_entropy(x[good], t[good]), "losses of the rows without NaN")
        losses.backward(np.ones(3))
        assert_close(logits.grad[good], numpy_softmax(x[good]) - one_hot(t[good], 4),
                     "gradient of the rows without NaN")

    def test_empty_batch(self):
        """An empty batch (all of it masked out, say) loses 0 with 'sum' and nothing with 'none', for every loss."""
        empty = np.zeros((0, 3))
        for name, loss in all_losses(empty, 63).items():
            logits = tensor(empty, np.float64, requires_grad=True)
            total = loss(logits, "sum")
            assert_close(total, 0.0, f"{name} of an empty batch, 'sum'")
            total.backward()
            assert_shape(logits.grad, (0, 3), f"the gradient of {name} of an empty batch")
            assert_shape(loss(logits, "none"), (0,) if name == "cross_entropy" else (0, 3),
                         f"{name} of an empty batch, 'none'")

    def test_unknown_reduction_is_an_error(self):
        """reduction='avg' is a ValueError that names 'avg' and lists the choices 'mean', 'sum' and 'none', for every loss."""
        x, t = tensor(np.zeros((2, 3))), np.array([0, 1])
        calls = {"mse_loss": lambda: mse_loss(x, np.zeros((2, 3)), reduction="avg"),
                 "cross_entropy": lambda: cross_entropy(x, t, reduction="avg"),
                 "binary_cross_entropy_with_logits": lambda: binary_cross_entropy_with_logits(x, np.zeros((2, 3)),
                                                                                              reduction="avg"),
                 "MSELoss": lambda: MSELoss(reduction="avg")(x, np.zeros((2, 3))),
                 "CrossEntropyLoss": lambda: CrossEntropyLoss(reduction="avg")(x, t),
                 "BCEWithLogitsLoss": lambda: BCEWithLogitsLoss(reduction="avg")(x, np.zeros((2, 3)))}
        for name, call in calls.items():
            assert_value_error_names(call, ["avg", "mean", "sum", "none"], f"{name} with reduction='avg'")


# -- optimize --------------------------------------------------------------------------------

BATCH, CLASSES = 4096, 1000
# The reference measures 0.6-1.4x the baseline below (about 1.0 on a quiet machine); log-softmax
# plus a one-hot about 3.5x; a Python loop over the rows about 4.5x.
TIME_BUDGET = 3.0
MEMORY_BUDGET = 1.5  # in units of the logits' bytes; the reference needs about 1.0, a one-hot adds 1.0 more


@functools.lru_cache(maxsize=1)
def big_batch(seed: int = 60):
    """(4096, 1000) float32 logits and their targets, made once for both budget tests (nothing writes to them)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, CLASSES), dtype=np.float32)
    x *= 3
    return x, rng.integers(0, CLASSES, size=BATCH)


def numpy_cross_entropy_step(x: np.ndarray, targets: np.ndarray):
    """Plain numpy: the mean loss and its gradient, with one working buffer."""
    rows = np.arange(len(targets))
    work = x - x.max(axis=1, keepdims=True)
    picked = work[rows, targets]
    np.exp(work, out=work)
    sums = work.sum(axis=1)
    loss = np.mean(np.log(sums) - picked)
    work /= sums[:, None]
    work[rows, targets] -= 1
    work *= 1 / len(targets)
    return loss, work


def forward_and_backward(logits: Tensor, targets: np.ndarray):
    """The loss, and the gradient the cross_entropy backward rule returns for it."""
    loss = cross_entropy(logits, targets)
    (grad,) = BACKWARD_RULES["cross_entropy"](loss, np.ones((), dtype=loss.dtype))
    return loss, grad


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    def test_logits_are_left_alone(self):
        """Working in place means in YOUR buffers: forward and backward leave the caller's logits unchanged."""
        x = random_array((4, 5), 62, dtype=np.float32)
        logits = Tensor(x.copy(), requires_grad=True)
        forward_and_backward(logits, np.array([0, 4, 2, 1]))
        assert_close(logits.data, x, "the logits after cross_entropy and its backward rule", atol=0, rtol=0)

    def test_time_within_budget_of_numpy(self):
        """Forward and backward over (4096, 1000) float32 logits take at most 3x plain numpy doing the same math."""
        x, t = big_batch()
        logits = Tensor(x, requires_grad=True)
        _, grad = forward_and_backward(logits, t)
        _, expected_grad = numpy_cross_entropy_step(x[:8], t[:8])
        assert_close(grad[:8] * (BATCH / 8), expected_grad, "grad rows 0-7 of the big batch", rtol=1e-4)
        assert_time_ratio(lambda: forward_and_backward(logits, t), lambda: numpy_cross_entropy_step(x, t),
                          TIME_BUDGET, "cross_entropy forward+backward, (4096, 1000)", rounds=5)

    def test_peak_memory_is_one_logits_buffer(self):
        """Forward and backward over (4096, 1000) logits allocate at most 1.5x the logits' 16 MB: no one-hot."""
        x, t = big_batch()
        logits = Tensor(x, requires_grad=True)
        peak, (_, grad) = peak_bytes(lambda: forward_and_backward(logits, t))
        _, expected_grad = numpy_cross_entropy_step(x[:8], t[:8])
        assert_close(grad[:8] * (BATCH / 8), expected_grad, "grad rows 0-7 of the big batch", rtol=1e-4)
        budget = MEMORY_BUDGET * x.nbytes
        assert peak <= budget, (
            f"cross_entropy forward+backward, (4096, 1000) float32: peak memory {peak / 2**20:.1f} MiB; the budget "
            f"is {budget / 2**20:.1f} MiB ({MEMORY_BUDGET}x the {x.nbytes / 2**20:.1f} MiB logits).\n"
            "Each N x C array (shifted logits, exp, softmax, one-hot, gradient) costs as much as the logits:\n"
            "exponentiate and divide in place, keep softmax for backward, turn it into the gradient in place")

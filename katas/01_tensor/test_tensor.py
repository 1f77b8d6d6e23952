"""Kata 01 · Tensor: the ordered suite. Run it with `python -m pytest katas/01_tensor`.

Checkpoints, in order: creation, arithmetic, shapes, reductions, matmul, optimize.
The lesson is katas/01_tensor/README.md.
"""

import numpy as np
import pytest

from harness.budgets import assert_peak_bytes, assert_time_ratio, time_ratio
from harness.checks import assert_close, assert_shape
from tinytorch.tensor import Tensor


def assert_value_error_names(what: str, action, *parts) -> None:
    """`action()` raises ValueError whose message names every part (an op or a shape; spaces ignored)."""
    try:
        action()
    except ValueError as error:
        message = str(error)
    except NotImplementedError:
        raise  # a stub: not started, rather than wrong
    except Exception as error:  # the wrong kind of error is a wrong answer, not a crash
        raise AssertionError(f"{what}: expected a ValueError, got {type(error).__name__}: {error}") from None
    else:
        raise AssertionError(f"{what}: expected a ValueError, but nothing was raised")
    for part in parts:
        if str(part).replace(" ", "") not in message.replace(" ", ""):
            raise AssertionError(f"{what}: the ValueError should name {part!r}; its message was: {message!r}")


def assert_shares_memory(got: np.ndarray, base: np.ndarray, expected: bool, message: str) -> None:
    """np.shares_memory(got, base) is `expected`; otherwise fail with `message` alone."""
    if np.shares_memory(got, base) != expected:
        raise AssertionError(message)


def random_array(seed: int, shape: tuple, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """Seeded float32 values, uniform in [low, high)."""
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("creation")
class TestCreation:
    def test_list_is_float32_by_default(self):
        """Tensor([1, 2, 3]) keeps a numpy array of float32 in .data."""
        t = Tensor([1, 2, 3])
        assert isinstance(t.data, np.ndarray), f".data should be a numpy array, got {type(t.data).__name__}"
        assert t.data.dtype == np.float32, f"default dtype: expected float32, got {t.data.dtype}"
        assert t.dtype == np.float32, f".dtype: expected float32, got {t.dtype}"
        assert_close(t.data, np.array([1.0, 2.0, 3.0], dtype=np.float32), "Tensor([1, 2, 3]).data")

    def test_nested_list_shape_ndim_size(self):
        """A nested list gives shape (2, 3), ndim 2 and size 6."""
        t = Tensor([[1, 2, 3], [4, 5, 6]])
        assert t.shape == (2, 3), f".shape: expected (2, 3), got {t.shape!r}"
        assert isinstance(t.shape, tuple), f".shape should be a tuple, got {type(t.shape).__name__}"
        assert t.ndim == 2, f".ndim: expected 2, got {t.ndim!r}"
        assert t.size == 6, f".size: expected 6, got {t.size!r}"
        assert_close(t.data, np.arange(1, 7, dtype=np.float32).reshape(2, 3), "Tensor([[1, 2, 3], [4, 5, 6]])")

    def test_scalar_has_empty_shape(self):
        """Tensor(3.5) is a 0-d tensor: shape (), ndim 0, size 1."""
        t = Tensor(3.5)
        assert t.shape == (), f".shape of a scalar: expected (), got {t.shape!r}"
        assert t.ndim == 0, f".ndim of a scalar: expected 0, got {t.ndim!r}"
        assert t.size == 1, f".size of a scalar: expected 1, got {t.size!r}"
        assert t.dtype == np.float32, f"dtype of Tensor(3.5): expected float32, got {t.dtype}"
        assert t.item() == 3.5, f"Tensor(3.5).item(): expected 3.5, got {t.item()!r}"

    def test_arrays_of_other_dtypes_become_float32(self):
        """A float64 or int64 numpy array becomes float32 when no dtype is given."""
        for array in (np.array([[0.5, 1.5], [2.5, 3.5]], dtype=np.float64), np.arange(6).reshape(2, 3)):
            t = Tensor(array)
            assert t.dtype == np.float32, f"Tensor(array of {array.dtype}): expected dtype float32, got {t.dtype}"
            assert_shape(t, array.shape, f"Tensor(array of {array.dtype})")
            assert_close(t, array.astype(np.float32), f"Tensor(array of {array.dtype})")

    def test_explicit_dtype_is_kept(self):
        """dtype=np.float64 is honoured for lists and for float64 arrays."""
        from_list = Tensor([1, 2, 3], dtype=np.float64)
        assert from_list.dtype == np.float64, f"Tensor([1, 2, 3], dtype=np.float64): got dtype {from_list.dtype}"
        from_array = Tensor(np.ones((2, 2)), dtype=np.float64)
        assert from_array.dtype == np.float64, f"Tensor(float64 array, dtype=np.float64): got dtype {from_array.dtype}"

    def test_array_of_right_dtype_is_not_copied(self):
        """An array that already has the wanted dtype is wrapped, not copied (shares memory)."""
        array32 = np.zeros((3, 4), dtype=np.float32)
        assert_shares_memory(Tensor(array32).data, array32, True,
                             "Tensor(float32 array) copied the array; wrap it instead "
                             "(np.asarray copies only when it must)")
        array64 = np.zeros((3, 4), dtype=np.float64)
        assert_shares_memory(Tensor(array64, dtype=np.float64).data, array64, True,
                             "Tensor(float64 array, dtype=np.float64) copied the array; wrap it instead")

    def test_tensor_from_tensor(self):
        """Tensor(t) of a Tensor gives a new Tensor whose .data is a plain array of the same values."""
        t = Tensor([[1.0, 2.0], [3.0, 4.0]])
        u = Tensor(t)
        assert u is not t, "Tensor(t) should build a new Tensor object"
        assert isinstance(u.data, np.ndarray), f"Tensor(t).data should be a numpy array, got {type(u.data).__name__}"
        assert u.dtype == np.float32, f"Tensor(t).dtype: expected float32, got {u.dtype}"
        assert_close(u, t.data, "Tensor(t)")

    def test_nbytes_is_size_times_itemsize(self):
        """nbytes of a (3, 4) tensor: 48 in float32, 96 in float64."""
        t32 = Tensor(np.zeros((3, 4)))
        t64 = Tensor(np.zeros((3, 4)), dtype=np.float64)
        assert t32.nbytes == 48, f"nbytes of a (3, 4) float32 tensor: expected 12 * 4 = 48, got {t32.nbytes!r}"
        assert t64.nbytes == 96, f"nbytes of a (3, 4) float64 tensor: expected 12 * 8 = 96, got {t64.nbytes!r}"


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("arithmetic")
class TestArithmetic:
    def test_add(self):
        """a + b matches numpy on random (3, 4) inputs."""
        a, b = random_array(10, (3, 4)), random_array(11, (3, 4))
        assert_close(Tensor(a) + Tensor(b), a + b, "a + b")

    def test_sub(self):
        """a - b matches numpy on random (3, 4) inputs."""
        a, b = random_array(12, (3, 4)), random_array(13, (3, 4))
        assert_close(Tensor(a) - Tensor(b), a - b, "a - b")

    def test_mul(self):
        """a * b matches numpy on random (3, 4) inputs."""
        a, b = random_array(14, (3, 4)), random_array(15, (3, 4))
        assert_close(Tensor(a) * Tensor(b), a * b, "a * b")

    def test_div(self):
        """a / b matches numpy on random (3, 4) inputs."""
        a, b = random_array(16, (3, 4)), random_array(17, (3, 4), 0.5, 2.0)
        assert_close(Tensor(a) / Tensor(b), a / b, "a / b")

    def test_pow(self):
        """a ** b matches numpy for positive a and random exponents."""
        a, b = random_array(18, (3, 4), 0.5, 2.0), random_array(19, (3, 4))
        assert_close(Tensor(a) ** Tensor(b), a ** b, "a ** b")

    def test_neg(self):
        """-a matches numpy."""
        a = random_array(20, (3, 4))
        assert_close(-Tensor(a), -a, "-a")

    def test_exp_and_log(self):
        """a.exp() and a.log() match np.exp and np.log."""
        a = random_array(21, (3, 4), 0.1, 3.0)
        assert_close(Tensor(a).exp(), np.exp(a), "a.exp()")
        assert_close(Tensor(a).log(), np.log(a), "a.log()")

    def test_broadcast_column_and_row(self):
        """(3, 1) + (1, 4) broadcasts to (3, 4)."""
        a, b = random_array(22, (3, 1)), random_array(23, (1, 4))
        out = Tensor(a) + Tensor(b)
        assert_shape(out, (3, 4), "(3, 1) + (1, 4)")
        assert_close(out, a + b, "(3, 1) + (1, 4)")

    def test_broadcast_trailing_axes(self):
        """(2, 3) * (3,) and (2, 3) - (3,) broadcast the row over both rows."""
        a, b = random_array(24, (2, 3)), random_array(25, (3,))
        assert_close(Tensor(a) * Tensor(b), a * b, "(2, 3) * (3,)")
        assert_close(Tensor(a) - Tensor(b), a - b, "(2, 3) - (3,)")

    def test_python_scalars_keep_the_dtype(self):
        """x + 1.5, x * 2, x / 4, x ** 2 stay float32 for a float32 x, and float64 stays float64."""
        x = random_array(26, (2, 3), 0.5, 2.0)
        for name, got, expected in [("x + 1.5", Tensor(x) + 1.5, x + 1.5), ("x * 2", Tensor(x) * 2, x * 2),
                                    ("x / 4", Tensor(x) / 4, x / 4), ("x ** 2", Tensor(x) ** 2, x ** 2)]:
            assert got.dtype == np.float32, f"{name} with x float32: expected dtype float32, got {got.dtype}"
            assert_close(got, expected, name)
        x64 = Tensor(x, dtype=np.float64)
        for name, got in [("x64 + x64", x64 + x64), ("x64 * 3", x64 * 3), ("x64.exp()", x64.exp())]:
            assert got.dtype == np.float64, f"{name}: expected dtype float64, got {got.dtype}"

    def test_scalars_and_arrays_on_the_left(self):
        """2 - x, 2 / x, 2 ** x, 3 * x and np.ones(3) + x compute the right values and return Tensors."""
        x = random_array(27, (3,), 0.5, 2.0)
        t = Tensor(x)
        for name, got, expected in [("2 - x", 2 - t, 2 - x), ("2 / x", 2 / t, 2 / x),
                                    ("2 ** x", 2 ** t, 2 ** x), ("3 * x", 3 * t, 3 * x), ("1 + x", 1 + t, 1 + x)]:
            assert isinstance(got, Tensor), f"{name}: expected a Tensor, got {type(got).__name__}"
            assert_close(got, expected, name)
        got = np.ones(3) + t
        assert isinstance(got, Tensor), f"np.ones(3) + x: expected a Tensor, got {type(got).__name__}"
        assert_close(got, 1 + x, "np.ones(3) + x")

    def test_shape_mismatch_names_op_and_shapes(self):
        """(2, 3) with (4,) raises ValueError naming the op and both shapes, for + - * / **."""
        a, b = Tensor(np.ones((2, 3))), Tensor(np.ones(4))
        for op, symbol, apply in [("add", "+", lambda: a + b), ("sub", "-", lambda: a - b), ("mul", "*", lambda: a * b),
                                  ("div", "/", lambda: a / b), ("pow", "**", lambda: a ** b)]:
            assert_value_error_names(f"(2, 3) {symbol} (4,)", apply, op, (2, 3), (4,))

    def test_results_are_new_tensors(self):
        """a + b and a * b return new tensors and leave a and b unchanged."""
        a, b = random_array(28, (2, 3)), random_array(29, (2, 3))
        ta, tb = Tensor(a.copy()), Tensor(b.copy())
        for name, out in [("a + b", ta + tb), ("a * b", ta * tb), ("a - b", ta - tb), ("a / 2", ta / 2)]:
            assert out is not ta and out is not tb, f"{name} returned one of its inputs; return a new Tensor"
            assert_shares_memory(out.data, ta.data, False, f"{name} wrote its result into a's memory")
            assert_close(ta, a, f"a after {name} (inputs must not change)")
            assert_close(tb, b, f"b after {name} (inputs must not change)")


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("shapes")
class TestShapes:
    def test_reshape_tuple_varargs_and_minus_one(self):
        """reshape((3, 4)), reshape(3, 4) and reshape(-1, 6) give numpy's values."""
        x = np.arange(12, dtype=np.float32)
        t = Tensor(x)
        assert_close(t.reshape((3, 4)), x.reshape(3, 4), "reshape((3, 4))")
        assert_close(t.reshape(3, 4), x.reshape(3, 4), "reshape(3, 4)")
        assert_close(t.reshape(-1, 6), x.reshape(2, 6), "reshape(-1, 6) (-1 is inferred as 2)")
        assert_close(t.reshape(2, 3, 2).reshape(-1), x, "reshape(2, 3, 2).reshape(-1)")

    def test_reshape_bad_size_names_shapes(self):
        """reshape of 6 elements into (4,) raises ValueError naming (2, 3) and (4,)."""
        t = Tensor(np.ones((2, 3)))
        assert_value_error_names("(2, 3).reshape(4)", lambda: t.reshape(4), "reshape", (2, 3), (4,))

    def test_reshape_is_a_view(self):
        """reshape of a contiguous tensor shares memory: writing through the view changes the original."""
        t = Tensor(np.zeros((2, 3)))
        view = t.reshape(6)
        assert_shares_memory(view.data, t.data, True, "reshape copied a contiguous tensor; it should return a view")
        view.data[4] = 7.0
        assert t.data[1, 1] == 7.0, "writing view.data[4] should change t.data[1, 1] (same memory)"

    def test_transpose_swaps_last_two_axes_by_default(self):
        """transpose() of (2, 3, 4) gives (2, 4, 3) with numpy's values."""
        x = random_array(30, (2, 3, 4))
        out = Tensor(x).transpose()
        assert_shape(out, (2, 4, 3), "transpose() of (2, 3, 4)")
        assert_close(out, np.swapaxes(x, -1, -2), "transpose() of (2, 3, 4)")

    def test_transpose_explicit_axes(self):
        """transpose(0, 2) of (2, 3, 4) gives (4, 3, 2); transpose(-3, -2) gives (3, 2, 4)."""
        x = random_array(31, (2, 3, 4))
        assert_close(Tensor(x).transpose(0, 2), np.swapaxes(x, 0, 2), "transpose(0, 2) of (2, 3, 4)")
        assert_close(Tensor(x).transpose(-3, -2), np.swapaxes(x, 0, 1), "transpose(-3, -2) of (2, 3, 4)")

    def test_matrix_T_and_permute(self):
        """m.T is the matrix transpose; permute(2, 0, 1) reorders all axes."""
        m, x = random_array(32, (2, 5)), random_array(33, (2, 3, 4))
        assert_close(Tensor(m).T, m.T, "m.T of a (2, 5) matrix")
        assert_close(Tensor(x).permute(2, 0, 1), x.transpose(2, 0, 1), "permute(2, 0, 1) of (2, 3, 4)")
        assert_close(Tensor(x).permute((1, 2, 0)), x.transpose(1, 2, 0), "permute((1, 2, 0)) of (2, 3, 4)")

    def test_bad_axes_name_the_shape(self):
        """permute(0, 0, 1) of (2, 3, 4) and transpose() of a 1-D tensor raise ValueError naming the shape."""
        t, v = Tensor(np.ones((2, 3, 4))), Tensor(np.ones(3))
        assert_value_error_names("(2, 3, 4).permute(0, 0, 1)", lambda: t.permute(0, 0, 1), "permute", (2, 3, 4))
        assert_value_error_names("(3,).transpose()", lambda: v.transpose(), "transpose", (3,))

    def test_transpose_is_a_view(self):
        """transpose and .T share memory with the original, as numpy does."""
        t = Tensor(np.zeros((2, 3)))
        view = t.transpose()
        assert_shares_memory(view.data, t.data, True, "transpose copied the data; numpy's transpose is a view")
        view.data[2, 0] = 5.0
        assert t.data[0, 2] == 5.0, "writing transpose().data[2, 0] should change t.data[0, 2]"
        assert_shares_memory(t.T.data, t.data, True, ".T copied the data; it should be a view")

    def test_index_ints_negative_and_slices(self):
        """x[1], x[-1, 2], x[:, 1:3] and x[::2] give numpy's values and shapes."""
        x = random_array(34, (4, 5))
        t = Tensor(x)
        for name, got, expected in [("x[1]", t[1], x[1]), ("x[-1, 2]", t[-1, 2], x[-1, 2]),
                                    ("x[:, 1:3]", t[:, 1:3], x[:, 1:3]), ("x[::2]", t[::2], x[::2])]:
            assert isinstance(got, Tensor), f"{name}: expected a Tensor, got {type(got).__name__}"
            assert_close(got, expected, name)

    def test_basic_slice_is_a_view(self):
        """x[1:, ::2] shares memory with x: writing through it changes x."""
        t = Tensor(np.zeros((3, 4)))
        view = t[1:, ::2]
        assert_shares_memory(view.data, t.data, True, "slicing copied the data; a basic slice is a view in numpy")
        view.data[0, 1] = 3.0
        assert t.data[1, 2] == 3.0, "writing x[1:, ::2].data[0, 1] should change x.data[1, 2]"

    def test_fancy_index_lists_and_arrays(self):
        """x[[2, 0, 2]] and x[np.array([0, 3]), np.array([1, 4])] pick numpy's elements."""
        x = random_array(35, (4, 5))
        t = Tensor(x)
        assert_close(t[[2, 0, 2]], x[[2, 0, 2]], "x[[2, 0, 2]]")
        rows, cols = np.array([0, 3]), np.array([1, 4])
        assert_close(t[rows, cols], x[rows, cols], "x[[0, 3], [1, 4]]")

    def test_fancy_index_is_a_copy(self):
        """x[[0, 1]] does not share memory with x, exactly as in numpy."""
        t = Tensor(np.zeros((3, 4)))
        picked = t[[0, 1]]
        assert_shares_memory(picked.data, t.data, False, "a fancy (list) index gave a view; numpy makes a copy")

    def test_boolean_mask(self):
        """x[mask] with a boolean numpy array keeps the elements where mask is True."""
        x = random_array(36, (3, 4))
        mask = x > 0
        assert_close(Tensor(x)[mask], x[mask], "x[x > 0]")

    def test_tensor_as_index(self):
        """A Tensor of whole numbers works as an index: x[Tensor([2, 0])], x[Tensor(r), Tensor(c)]."""
        x = random_array(37, (4, 5))
        t = Tensor(x)
        assert_close(t[Tensor([2, 0])], x[[2, 0]], "x[Tensor([2, 0])]")
        assert_close(t[Tensor([0, 3]), Tensor([1, 4])], x[[0, 3], [1, 4]], "x[Tensor([0, 3]), Tensor([1, 4])]")


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("reductions")
class TestReductions:
    def test_sum_of_everything_has_empty_shape(self):
        """x.sum() of a (3, 4) tensor is a 0-d tensor holding the total."""
        x = random_array(40, (3, 4))
        out = Tensor(x).sum()
        assert isinstance(out, Tensor), f"x.sum(): expected a Tensor, got {type(out).__name__}"
        assert_shape(out, (), "x.sum()")
        assert_close(out, np.asarray(x.sum()), "x.sum()")

    def test_sum_along_an_axis(self):
        """x.sum(axis=0), x.sum(axis=1) and x.sum(axis=-1) of (2, 3, 4) match numpy."""
        x = random_array(41, (2, 3, 4))
        for axis in (0, 1, -1):
            assert_close(Tensor(x).sum(axis=axis), x.sum(axis=axis), f"x.sum(axis={axis})")

    def test_sum_keepdims(self):
        """x.sum(axis=1, keepdims=True) of (2, 3, 4) has shape (2, 1, 4)."""
        x = random_array(42, (2, 3, 4))
        out = Tensor(x).sum(axis=1, keepdims=True)
        assert_shape(out, (2, 1, 4), "x.sum(axis=1, keepdims=True)")
        assert_close(out, x.sum(axis=1, keepdims=True), "x.sum(axis=1, keepdims=True)")
        assert_shape(Tensor(x).sum(keepdims=True), (1, 1, 1), "x.sum(keepdims=True)")

    def test_sum_over_a_tuple_of_axes(self):
        """x.sum(axis=(0, 2)) of (2, 3, 4) has shape (3,)."""
        x = random_array(43, (2, 3, 4))
        assert_close(Tensor(x).sum(axis=(0, 2)), x.sum(axis=(0, 2)), "x.sum(axis=(0, 2))")

    def test_mean(self):
        """x.mean(), x.mean(axis=0) and x.mean(axis=-1, keepdims=True) match numpy."""
        x = random_array(44, (3, 4))
        assert_close(Tensor(x).mean(), np.asarray(x.mean()), "x.mean()")
        assert_close(Tensor(x).mean(axis=0), x.mean(axis=0), "x.mean(axis=0)")
        assert_close(Tensor(x).mean(axis=-1, keepdims=True), x.mean(axis=-1, keepdims=True),
                     "x.mean(axis=-1, keepdims=True)")

    def test_max(self):
        """x.max() and x.max(axis=1) of (3, 4) match numpy."""
        x = random_array(45, (3, 4))
        assert_close(Tensor(x).max(), np.asarray(x.max()), "x.max()")
        assert_close(Tensor(x).max(axis=1), x.max(axis=1), "x.max(axis=1)")

    def test_max_negative_axis_keepdims(self):
        """x.max(axis=-2, keepdims=True) of (2, 3, 4) has shape (2, 1, 4) and numpy's values."""
        x = random_array(46, (2, 3, 4))
        out = Tensor(x).max(axis=-2, keepdims=True)
        assert_shape(out, (2, 1, 4), "x.max(axis=-2, keepdims=True)")
        assert_close(out, x.max(axis=-2, keepdims=True), "x.max(axis=-2, keepdims=True)")


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("matmul")
class TestMatmul:
    def test_matmul_2d(self):
        """(3, 4) @ (4, 5) matches numpy."""
        a, b = random_array(50, (3, 4)), random_array(51, (4, 5))
        out = Tensor(a) @ Tensor(b)
        assert_shape(out, (3, 5), "(3, 4) @ (4, 5)")
        assert_close(out, a @ b, "(3, 4) @ (4, 5)")

    def test_batched_times_matrix(self):
        """(2, 3, 4) @ (4, 5) multiplies every matrix of the batch by the same (4, 5)."""
        a, b = random_array(52, (2, 3, 4)), random_array(53, (4, 5))
        out = Tensor(a) @ Tensor(b)
        assert_shape(out, (2, 3, 5), "(2, 3, 4) @ (4, 5)")
        assert_close(out, a @ b, "(2, 3, 4) @ (4, 5)")

    def test_batched_times_batched(self):
        """(2, 3, 4) @ (2, 4, 5) multiplies the batch pairwise."""
        a, b = random_array(54, (2, 3, 4)), random_array(55, (2, 4, 5))
        out = Tensor(a) @ Tensor(b)
        assert_shape(out, (2, 3, 5), "(2, 3, 4) @ (2, 4, 5)")
        assert_close(out, a @ b, "(2, 3, 4) @ (2, 4, 5)")

    def test_mismatch_names_both_shapes(self):
        """(3, 4) @ (5, 2) and (2, 3, 4) @ (5, 4, 2) raise ValueError naming both shapes."""
        a, b = Tensor(np.ones((3, 4))), Tensor(np.ones((5, 2)))
        assert_value_error_names("(3, 4) @ (5, 2)", lambda: a @ b, "matmul", (3, 4), (5, 2))
        a, b = Tensor(np.ones((2, 3, 4))), Tensor(np.ones((5, 4, 2)))
        assert_value_error_names("(2, 3, 4) @ (5, 4, 2)", lambda: a @ b, "matmul", (2, 3, 4), (5, 4, 2))

    def test_one_dimensional_operand_is_rejected(self):
        """(3, 4) @ (4,) raises ValueError naming matmul and the 1-D shape."""
        matrix, vector = Tensor(np.ones((3, 4))), Tensor(np.ones(4))
        assert_value_error_names("(3, 4) @ (4,)", lambda: matrix @ vector, "matmul", (4,))
        vector, matrix = Tensor(np.ones(3)), Tensor(np.ones((3, 2)))
        assert_value_error_names("(3,) @ (3, 2)", lambda: vector @ matrix, "matmul", (3,))


# ---------------------------------------------------------------------------------------
# Budgets. The reference measures 1.0-1.16x numpy for elementwise ops and matmul (best of 7
# interleaved rounds), and allocates nothing but the result.
TIME_BUDGET = 2.5  # times raw numpy
SMALL = 64 * 1024  # bytes of slack for the Tensor object and bookkeeping


def result_only_budget(result_bytes: int) -> int:
    return int(result_bytes * 1.05) + SMALL


def assert_near_numpy(candidate, baseline, what: str) -> None:
    """assert_time_ratio with up to three tries: noise only ever adds time, so the best try counts."""
    for _ in range(2):
        if time_ratio(candidate, baseline)[0] <= TIME_BUDGET:
            return
    assert_time_ratio(candidate, baseline, TIME_BUDGET, what)


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    def test_add_time_near_numpy(self):
        """a + b of two 1000x1000 float32 tensors takes at most 2.5x numpy's a + b."""
        rng = np.random.default_rng(60)
        x, y = rng.standard_normal((1000, 1000), dtype=np.float32), rng.standard_normal((1000, 1000), dtype=np.float32)
        a, b = Tensor(x), Tensor(y)
        assert_near_numpy(lambda: a + b, lambda: np.add(x, y), "a + b, 1000x1000 float32, vs numpy")

    def test_mul_time_near_numpy(self):
        """a * b of two 1000x1000 float32 tensors takes at most 2.5x numpy's a * b."""
        rng = np.random.default_rng(61)
        x, y = rng.standard_normal((1000, 1000), dtype=np.float32), rng.standard_normal((1000, 1000), dtype=np.float32)
        a, b = Tensor(x), Tensor(y)
        assert_near_numpy(lambda: a * b, lambda: np.multiply(x, y), "a * b, 1000x1000 float32, vs numpy")

    def test_matmul_time_near_numpy(self):
        """a @ b of two 256x256 float32 tensors takes at most 2.5x numpy's a @ b."""
        rng = np.random.default_rng(62)
        x, y = rng.standard_normal((256, 256), dtype=np.float32), rng.standard_normal((256, 256), dtype=np.float32)
        a, b = Tensor(x), Tensor(y)
        assert_near_numpy(lambda: a @ b, lambda: np.matmul(x, y), "a @ b, 256x256 float32, vs numpy")

    def test_add_allocates_only_the_result(self):
        """a + b of two 1000x1000 float32 tensors allocates one 4 MB result and nothing else large."""
        a = Tensor(np.full((1000, 1000), 1.5, dtype=np.float32))
        b = Tensor(np.full((1000, 1000), 2.5, dtype=np.float32))
        out = assert_peak_bytes(lambda: a + b, result_only_budget(a.nbytes),
                                "a + b, 1000x1000 float32 (the result alone is 3.8 MiB: no copies, no float64)")
        assert out.dtype == np.float32, f"a + b of float32 tensors: expected dtype float32, got {out.dtype}"

    def test_mul_by_scalar_allocates_only_the_result(self):
        """a * 0.5 of a 1000x1000 float32 tensor allocates one 4 MB result and nothing else large."""
        a = Tensor(np.full((1000, 1000), 1.5, dtype=np.float32))
        out = assert_peak_bytes(lambda: a * 0.5, result_only_budget(a.nbytes),
                                "a * 0.5, 1000x1000 float32 (the result alone is 3.8 MiB: no copies, no float64)")
        assert out.dtype == np.float32, f"a * 0.5 of a float32 tensor: expected dtype float32, got {out.dtype}"

    def test_matmul_allocates_only_the_result(self):
        """a @ b of two 512x512 float32 tensors allocates one 1 MB result and nothing else large."""
        rng = np.random.default_rng(64)
        a = Tensor(rng.standard_normal((512, 512), dtype=np.float32))
        b = Tensor(rng.standard_normal((512, 512), dtype=np.float32))
        out = assert_peak_bytes(lambda: a @ b, result_only_budget(a.nbytes),
                                "a @ b, 512x512 float32 (the result alone is 1 MiB: no copies, no float64)")
        assert out.dtype == np.float32, f"a @ b of float32 tensors: expected dtype float32, got {out.dtype}"

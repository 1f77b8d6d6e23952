"""Kata 01 · Tensor: the ordered suite. Run it with `python -m pytest katas/01_tensor`.

Checkpoints, in order: creation, arithmetic, shapes, reductions, matmul, optimize.
The lesson is katas/01_tensor/README.md.
"""

import numpy as np
import pytest

from harness.budgets import assert_peak_bytes, assert_time_ratio
from harness.checks import assert_close, assert_made_by_op, assert_shape, no_overflow
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


def random_array(seed: int, shape: tuple, low: float = -2.0, high: float = 2.0, dtype=np.float32) -> np.ndarray:
    """Seeded values, uniform in [low, high), float32 unless `dtype` says otherwise."""
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def check_op(action, what: str, op: str, inputs: tuple, expected, new_memory: bool = False) -> Tensor:
    """Run `action()` and check everything an op promises; return its result.

    The result is a Tensor made by `Tensor.from_op`, recorded as `op` with every tensor of
    `inputs` among its parents; the inputs keep their shape and values; the result has
    numpy's values, shape and dtype (`expected`); with `new_memory`, it shares no memory
    with any input.
    """
    before = [(t.data.shape, t.data.copy()) for t in inputs]
    out = assert_made_by_op(action, what, op, inputs)
    for position, (tensor, (shape, values)) in enumerate(zip(inputs, before)):
        assert_unchanged(tensor, shape, values, f"{what}: input {position}")
        if new_memory:
            assert_shares_memory(out.data, tensor.data, False,
                                 f"{what} wrote its result into the memory of input {position}; "
                                 "compute a new array and leave the inputs' arrays alone")
    expected = np.asarray(expected)
    assert_close(out, expected, what)
    assert out.dtype == expected.dtype, (
        f"{what}: expected dtype {expected.dtype} (as numpy gives), got {out.dtype}")
    return out


def assert_unchanged(tensor: Tensor, shape: tuple, values: np.ndarray, what: str) -> None:
    """`tensor` still has the `shape` and `values` it had before an op read it."""
    advice = ("An op returns a new Tensor and leaves its inputs alone (kata 03 reads them again to compute "
              "gradients).")
    if tensor.data.shape != shape:
        raise AssertionError(f"{what} changed shape from {shape} to {tensor.data.shape}.\n{advice}")
    changed = ~((tensor.data == values) | (np.isnan(tensor.data) & np.isnan(values)))
    if changed.any():
        index = tuple(int(i) for i in np.argwhere(changed)[0])
        raise AssertionError(f"{what} was written into: {int(changed.sum())} of {changed.size} values changed, first "
                             f"at index {index}: was {values[index]!r}, now {tensor.data[index]!r}.\n{advice}")


def saved_by_from_op(action, what: str) -> dict:
    """Run `action()` while watching Tensor.from_op; the keywords its result was recorded with (axes, index, ...)."""
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
            return saved
    raise AssertionError(f"{what}: the result was not made by Tensor.from_op(data, op, parents, ...)")


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("creation")
class TestCreation:
    def test_list_is_float32_by_default(self):
        """Tensor([1, 2, 3]) keeps a numpy array of float32 in .data."""
        t = Tensor([1, 2, 3])
        assert isinstance(t.data, np.ndarray), f".data should be a numpy array, got {type(t.data).__name__}"
        assert t.data.dtype == np.float32, f"default dtype: expected float32, got {t.data.dtype}"
        assert t.dtype == np.float32, f".dtype: expected np.dtype('float32'), got {t.dtype!r}"
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

    def test_properties_are_python_ints_and_a_numpy_dtype(self):
        """ndim, size and nbytes are Python ints and dtype is a numpy dtype, for a scalar, a matrix and an empty tensor.

        Hint: numpy's own attributes (`.ndim`, `.size`, `.nbytes`, `.dtype`) already have these types;
        `np.prod(shape)` does not (it is a numpy integer, and 1.0, a float, for the shape ()).
        """
        for name, t, ndim, size, nbytes in [("Tensor(3.5)", Tensor(3.5), 0, 1, 4),
                                            ("Tensor of shape (2, 3)", Tensor(np.ones((2, 3))), 2, 6, 24),
                                            ("Tensor([])", Tensor([]), 1, 0, 0)]:
            for attribute, expected in [("ndim", ndim), ("size", size), ("nbytes", nbytes)]:
                got = getattr(t, attribute)
                assert isinstance(got, int) and not isinstance(got, bool), (
                    f"{name}.{attribute}: expected the Python int {expected}, got {got!r} of type {type(got).__name__}")
                assert got == expected, f"{name}.{attribute}: expected {expected}, got {got!r}"
            assert isinstance(t.dtype, np.dtype), (
                f"{name}.dtype: expected a numpy dtype (np.dtype('float32')), got {t.dtype!r} of type "
                f"{type(t.dtype).__name__}")

    def test_empty_list_gives_an_empty_float32_tensor(self):
        """Tensor([]) has shape (0,), size 0 and dtype float32."""
        t = Tensor([])
        assert t.shape == (0,), f"Tensor([]).shape: expected (0,), got {t.shape!r}"
        assert t.dtype == np.float32, f"Tensor([]).dtype: expected float32, got {t.dtype}"

    def test_arrays_of_other_dtypes_become_float32(self):
        """A float64, int64 or bool numpy array becomes float32 when no dtype is given."""
        for array in (np.array([[0.5, 1.5], [2.5, 3.5]], dtype=np.float64), np.arange(6).reshape(2, 3),
                      np.array([True, False, True])):
            t = Tensor(array)
            assert t.dtype == np.float32, f"Tensor(array of {array.dtype}): expected dtype float32, got {t.dtype}"
            assert_shape(t, array.shape, f"Tensor(array of {array.dtype})")
            assert_close(t, array.astype(np.float32), f"Tensor(array of {array.dtype})")

    def test_explicit_dtype_is_kept(self):
        """dtype=np.float64 is honoured for lists and float32 arrays, dtype=np.int64 for lists."""
        from_list = Tensor([1, 2, 3], dtype=np.float64)
        assert from_list.dtype == np.float64, f"Tensor([1, 2, 3], dtype=np.float64): got dtype {from_list.dtype}"
        from_array = Tensor(np.ones((2, 2), dtype=np.float32), dtype=np.float64)
        assert from_array.dtype == np.float64, f"Tensor(float32 array, dtype=np.float64): got dtype {from_array.dtype}"
        integers = Tensor([1, 2, 3], dtype=np.int64)
        assert integers.dtype == np.int64, f"Tensor([1, 2, 3], dtype=np.int64): got dtype {integers.dtype}"

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
        """Tensor(t) gives a new Tensor around t's array (no copy), converted when the dtype differs."""
        t = Tensor([[1.0, 2.0], [3.0, 4.0]])
        u = Tensor(t)
        assert u is not t, "Tensor(t) should build a new Tensor object"
        assert isinstance(u.data, np.ndarray), f"Tensor(t).data should be a numpy array, got {type(u.data).__name__}"
        assert u.dtype == np.float32, f"Tensor(t).dtype: expected float32, got {u.dtype}"
        assert_close(u, t.data, "Tensor(t)")
        assert_shares_memory(u.data, t.data, True, "Tensor(t) of a float32 t copied t's array; wrap it, "
                                                   "as for a numpy array of the right dtype")
        t64 = Tensor([0.5, 1.5], dtype=np.float64)
        assert Tensor(t64).dtype == np.float32, (
            f"Tensor(t) of a float64 t, no dtype given: expected float32, got {Tensor(t64).dtype}")
        assert Tensor(t, dtype=np.float64).dtype == np.float64, (
            f"Tensor(t, dtype=np.float64) of a float32 t: expected float64, got {Tensor(t, dtype=np.float64).dtype}")

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
        """a + b: a new Tensor made by from_op as 'add', inputs unchanged, numpy's values."""
        a, b = random_array(10, (3, 4)), random_array(11, (3, 4))
        ta, tb = Tensor(a), Tensor(b)
        check_op(lambda: ta + tb, "a + b", "add", (ta, tb), a + b, new_memory=True)

    def test_sub(self):
        """a - b: a new Tensor made by from_op as 'sub', inputs unchanged, numpy's values.

        Hint: `self + (-other)` gives the right numbers but records 'add' and 'neg': compute the
        difference with numpy, so the result is recorded as one 'sub' of the two inputs.
        """
        a, b = random_array(12, (3, 4)), random_array(13, (3, 4))
        ta, tb = Tensor(a), Tensor(b)
        check_op(lambda: ta - tb, "a - b", "sub", (ta, tb), a - b, new_memory=True)

    def test_mul(self):
        """a * b: a new Tensor made by from_op as 'mul', inputs unchanged, numpy's values."""
        a, b = random_array(14, (3, 4)), random_array(15, (3, 4))
        ta, tb = Tensor(a), Tensor(b)
        check_op(lambda: ta * tb, "a * b", "mul", (ta, tb), a * b, new_memory=True)

    def test_div(self):
        """a / b: a new Tensor made by from_op as 'div', inputs unchanged, numpy's values (true division)."""
        a, b = random_array(16, (3, 4)), random_array(17, (3, 4), 0.5, 2.0)
        ta, tb = Tensor(a), Tensor(b)
        check_op(lambda: ta / tb, "a / b", "div", (ta, tb), a / b, new_memory=True)

    def test_pow(self):
        """a ** b: a new Tensor made by from_op as 'pow', numpy's values for positive a and random exponents."""
        a, b = random_array(18, (3, 4), 0.5, 2.0), random_array(19, (3, 4))
        ta, tb = Tensor(a), Tensor(b)
        check_op(lambda: ta ** tb, "a ** b", "pow", (ta, tb), a ** b, new_memory=True)

    def test_pow_with_zero_and_negative_bases(self):
        """[0, 0, -2, -1.5, 3, 4] ** [2, 0, 3, 2, 0.5, -1] is [0, 1, -8, 2.25, 1.732, 0.25], with no warning.

        Hint: numpy's `**` handles a zero or negative base with a whole-number exponent;
        exp(b * log(a)) does not (log(0) is -inf, and the log of a negative number is nan).
        """
        a = np.array([0, 0, -2, -1.5, 3, 4], dtype=np.float32)
        b = np.array([2, 0, 3, 2, 0.5, -1], dtype=np.float32)
        ta, tb = Tensor(a), Tensor(b)
        with no_overflow("[0, 0, -2, -1.5, 3, 4] ** [2, 0, 3, 2, 0.5, -1]",
                         "Raise the base to the power with numpy's ** itself"):
            check_op(lambda: ta ** tb, "[0, 0, -2, -1.5, 3, 4] ** [2, 0, 3, 2, 0.5, -1]", "pow", (ta, tb), a ** b)
            check_op(lambda: ta ** 2, "[0, 0, -2, -1.5, 3, 4] ** 2", "pow", (ta,), a ** 2)

    def test_neg(self):
        """-a: a new Tensor made by from_op as 'neg', input unchanged, numpy's values."""
        a = random_array(20, (3, 4))
        ta = Tensor(a)
        check_op(lambda: -ta, "-a", "neg", (ta,), -a, new_memory=True)

    def test_exp(self):
        """a.exp(): a new Tensor made by from_op as 'exp', input unchanged, np.exp's values."""
        a = random_array(21, (3, 4), -3.0, 3.0)
        ta = Tensor(a)
        check_op(lambda: ta.exp(), "a.exp()", "exp", (ta,), np.exp(a), new_memory=True)

    def test_log(self):
        """a.log(): a new Tensor made by from_op as 'log', input unchanged, np.log's values (natural log)."""
        a = random_array(22, (3, 4), 0.1, 3.0)
        ta = Tensor(a)
        check_op(lambda: ta.log(), "a.log()", "log", (ta,), np.log(a), new_memory=True)

    def test_log_at_zero_and_below(self):
        """Tensor([0, -1, 1]).log() is [-inf, nan, 0], as in numpy and PyTorch: no clamping, no absolute value.

        Hint: `np.log(np.maximum(x, 1e-12))` or `np.log(np.abs(x))` hide a log of 0 or of a
        negative number behind an ordinary-looking value; the caller must be able to see it.
        """
        with np.errstate(divide="ignore", invalid="ignore"):  # numpy warns here, as it should; the test looks at values
            got = Tensor([0.0, -1.0, 1.0]).log().data
        assert np.isneginf(got[0]) and np.isnan(got[1]) and got[2] == 0, (
            f"Tensor([0, -1, 1]).log(): expected [-inf, nan, 0], got {got}")

    def test_broadcast_column_and_row(self):
        """(3, 1) + (1, 4) broadcasts to (3, 4)."""
        a, b = random_array(23, (3, 1)), random_array(24, (1, 4))
        out = Tensor(a) + Tensor(b)
        assert_shape(out, (3, 4), "(3, 1) + (1, 4)")
        assert_close(out, a + b, "(3, 1) + (1, 4)")

    def test_broadcast_trailing_axes(self):
        """(2, 3) * (3,) and (2, 3) - (3,) broadcast the row over both rows."""
        a, b = random_array(25, (2, 3)), random_array(26, (3,))
        assert_close(Tensor(a) * Tensor(b), a * b, "(2, 3) * (3,)")
        assert_close(Tensor(a) - Tensor(b), a - b, "(2, 3) - (3,)")

    def test_broadcast_ones_on_both_sides_and_fewer_axes(self):
        """(2, 1, 4) / (3, 1) gives (2, 3, 4) and (1, 3, 1) ** (2, 1, 4) gives (2, 3, 4), numpy's values."""
        a, b = random_array(27, (2, 1, 4)), random_array(28, (3, 1), 0.5, 2.0)
        out = Tensor(a) / Tensor(b)
        assert_shape(out, (2, 3, 4), "(2, 1, 4) / (3, 1)")
        assert_close(out, a / b, "(2, 1, 4) / (3, 1)")
        base, exponent = random_array(29, (1, 3, 1), 0.5, 2.0), random_array(30, (2, 1, 4))
        assert_close(Tensor(base) ** Tensor(exponent), base ** exponent, "(1, 3, 1) ** (2, 1, 4)")

    def test_every_op_keeps_the_dtype(self):
        """Every op keeps float32 and float64 (Python scalars too); float32 with float64 gives float64, as in numpy."""
        for dtype in (np.float32, np.float64):
            name = np.dtype(dtype).name
            x = Tensor(random_array(31, (2, 3), 0.5, 2.0, dtype), dtype=dtype)
            y = Tensor(random_array(32, (2, 3), 0.5, 2.0, dtype), dtype=dtype)
            for what, action in [("x + y", lambda: x + y), ("x - y", lambda: x - y), ("x * y", lambda: x * y),
                                 ("x / y", lambda: x / y), ("x ** y", lambda: x ** y), ("-x", lambda: -x),
                                 ("x.exp()", lambda: x.exp()), ("x.log()", lambda: x.log()),
                                 ("x + 1.5", lambda: x + 1.5), ("x * 2", lambda: x * 2), ("x / 4", lambda: x / 4),
                                 ("x ** 2", lambda: x ** 2), ("2 - x", lambda: 2 - x), ("2 ** x", lambda: 2 ** x)]:
                got = action()
                assert got.dtype == dtype, (
                    f"{what} with {name} x and y: expected dtype {name}, got {got.dtype}.\nLook for a float64 array "
                    "or numpy float64 scalar mixed into the computation")
        mixed = Tensor(np.ones(3, dtype=np.float32)) + Tensor(np.ones(3), dtype=np.float64)
        assert mixed.dtype == np.float64, (
            f"float32 + float64 tensors: expected float64 (numpy's rule), got {mixed.dtype}")

    def test_a_python_scalar_keeps_its_precision_in_float64(self):
        """x * 0.1, x + 0.1 and 0.1 - x for a float64 x give exactly numpy's float64 values (0.1 not rounded to float32).

        Hint: a scalar operand becomes a Tensor of the other tensor's dtype; made float32, 0.1 is
        0.10000000149..., and every float64 result is off in its eighth digit.
        """
        x = random_array(34, (4,), 0.5, 2.0, np.float64)
        t = Tensor(x, dtype=np.float64)
        for what, action, expected in [("x * 0.1", lambda: t * 0.1, x * 0.1), ("x + 0.1", lambda: t + 0.1, x + 0.1),
                                       ("0.1 - x", lambda: 0.1 - t, 0.1 - x)]:
            got = action()
            assert isinstance(got, Tensor), f"{what}: expected a Tensor, got {type(got).__name__}"
            worst = float(np.max(np.abs(np.asarray(got.data, dtype=np.float64) - expected)))
            assert worst == 0.0, (
                f"{what} for float64 x: expected exactly numpy's float64 result, got values off by up to {worst:.3g}.\n"
                "The scalar was rounded to float32 before the op: give it the tensor's dtype")

    def test_scalars_and_arrays_on_the_left(self):
        """2 - x, 2 / x, 2 ** x, 3 * x, 1 + x and np.ones(3) + x: Tensors made by from_op, with the right values."""
        x = random_array(33, (3,), 0.5, 2.0)
        t = Tensor(x)
        for what, op, action, expected in [("2 - x", "sub", lambda: 2 - t, 2 - x),
                                           ("2 / x", "div", lambda: 2 / t, 2 / x),
                                           ("2 ** x", "pow", lambda: 2 ** t, 2 ** x),
                                           ("3 * x", "mul", lambda: 3 * t, 3 * x),
                                           ("1 + x", "add", lambda: 1 + t, 1 + x),
                                           ("np.ones(3) + x", "add", lambda: np.ones(3) + t, 1 + x)]:
            check_op(action, what, op, (t,), expected)

    def test_shape_mismatch_names_op_and_shapes(self):
        """(2, 3) with (4,) raises ValueError naming the op and both shapes, for + - * / **."""
        a, b = Tensor(np.ones((2, 3))), Tensor(np.ones(4))
        for op, symbol, apply in [("add", "+", lambda: a + b), ("sub", "-", lambda: a - b), ("mul", "*", lambda: a * b),
                                  ("div", "/", lambda: a / b), ("pow", "**", lambda: a ** b)]:
            assert_value_error_names(f"(2, 3) {symbol} (4,)", apply, op, (2, 3), (4,))

    def test_empty_axes_follow_the_same_rule(self):
        """(0,) with (1,) and (0, 3) with (3,) broadcast to empty results; (0,) with (3,) raises ValueError naming both shapes.

        Hint: a size of 0 is not 1: it can only meet 0 or 1. The test is "equal, or one of them is 1",
        not "one of them is at most 1".
        """
        for shape_a, shape_b, shape in [((0,), (1,), (0,)), ((0, 3), (3,), (0, 3))]:
            out = Tensor(np.ones(shape_a)) + Tensor(np.ones(shape_b))
            assert_shape(out, shape, f"{shape_a} + {shape_b}")
        a, b = Tensor(np.ones(0)), Tensor(np.ones(3))
        for op, symbol, apply in [("add", "+", lambda: a + b), ("mul", "*", lambda: a * b)]:
            assert_value_error_names(f"(0,) {symbol} (3,)", apply, op, (0,), (3,))

    def test_mismatch_on_a_leading_axis_is_refused(self):
        """(2, 3) with (4, 3), and (5, 2, 3) with (4, 1, 3): the last axes fit, an earlier one does not; ValueError.

        Hint: check every pair of sizes, lined up from the right, not only the last pair.
        """
        for shape_a, shape_b in [((2, 3), (4, 3)), ((5, 2, 3), (4, 1, 3))]:
            a, b = Tensor(np.ones(shape_a)), Tensor(np.ones(shape_b))
            for op, symbol, apply in [("add", "+", lambda: a + b), ("sub", "-", lambda: a - b),
                                      ("mul", "*", lambda: a * b), ("div", "/", lambda: a / b),
                                      ("pow", "**", lambda: a ** b)]:
                assert_value_error_names(f"{shape_a} {symbol} {shape_b}", apply, op, shape_a, shape_b)


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("shapes")
class TestShapes:
    def test_reshape_tuple_varargs_and_minus_one(self):
        """reshape((3, 4)), reshape(3, 4) and reshape(-1, 6): Tensors made by from_op as 'reshape', numpy's values."""
        x = np.arange(12, dtype=np.float32)
        t = Tensor(x)
        check_op(lambda: t.reshape((3, 4)), "reshape((3, 4))", "reshape", (t,), x.reshape(3, 4))
        check_op(lambda: t.reshape(3, 4), "reshape(3, 4)", "reshape", (t,), x.reshape(3, 4))
        check_op(lambda: t.reshape(-1, 6), "reshape(-1, 6) (-1 is inferred as 2)", "reshape", (t,), x.reshape(2, 6))
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

    def test_reshape_of_non_contiguous_tensors(self):
        """Reshaping a transposed or sliced tensor gives numpy's values, and a view exactly where numpy makes one.

        Hint: `self.data.reshape(shape)` reads the elements in row order whatever the memory
        layout, copies only when no view can do, and never changes `self.data`.
        """
        matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
        for name, array, shape in [("x.T of a (3, 4) x", matrix.T, (12,)), ("x.T of a (3, 4) x", matrix.T, (2, 6)),
                                   ("x.T of a (3, 4) x", matrix.T, (4, 1, 3)), ("x[:, :2]", matrix[:, :2], (6,)),
                                   ("x[:, :2]", matrix[:, :2], (3, 1, 2)), ("x[:, ::2]", matrix[:, ::2], (6,))]:
            t = Tensor(array)  # wraps the non-contiguous array as it is
            what = f"({name}).reshape{shape}"
            out = check_op(lambda: t.reshape(shape), what, "reshape", (t,), array.reshape(shape))
            numpy_views = np.shares_memory(array.reshape(shape), array)
            assert_shares_memory(out.data, t.data, numpy_views,
                                 f"{what}: numpy " + ("returns a view here; yours copied" if numpy_views else
                                                      "must copy here; yours shares memory"))

    def test_transpose_swaps_last_two_axes_by_default(self):
        """transpose() of (2, 3, 4): a Tensor made by from_op as 'transpose', shape (2, 4, 3), numpy's values."""
        x = random_array(34, (2, 3, 4))
        t = Tensor(x)
        out = check_op(lambda: t.transpose(), "transpose() of (2, 3, 4)", "transpose", (t,), np.swapaxes(x, -1, -2))
        assert_shape(out, (2, 4, 3), "transpose() of (2, 3, 4)")

    def test_transpose_explicit_axes(self):
        """transpose(0, 2) of (2, 3, 4) is (4, 3, 2), transpose(-3, -2) is (3, 2, 4), transpose(2, -1) is x."""
        x = random_array(35, (2, 3, 4))
        assert_close(Tensor(x).transpose(0, 2), np.swapaxes(x, 0, 2), "transpose(0, 2) of (2, 3, 4)")
        assert_close(Tensor(x).transpose(-3, -2), np.swapaxes(x, 0, 1), "transpose(-3, -2) of (2, 3, 4)")
        assert_close(Tensor(x).transpose(2, -1), x, "transpose(2, -1) of (2, 3, 4) (the same axis twice)")

    def test_matrix_T_and_permute(self):
        """m.T transposes a matrix, x.T reverses all axes, permute reorders them: all from_op as 'transpose'."""
        m, x = random_array(36, (2, 5)), random_array(37, (2, 3, 4))
        tm, tx = Tensor(m), Tensor(x)
        check_op(lambda: tm.T, "m.T of a (2, 5) matrix", "transpose", (tm,), m.T)
        check_op(lambda: tx.T, "x.T of a (2, 3, 4) tensor (every axis reversed)", "transpose", (tx,), x.T)
        check_op(lambda: tx.permute(2, 0, 1), "permute(2, 0, 1) of (2, 3, 4)", "transpose", (tx,), x.transpose(2, 0, 1))
        check_op(lambda: tx.permute((1, 2, 0)), "permute((1, 2, 0)) of (2, 3, 4)", "transpose", (tx,),
                 x.transpose(1, 2, 0))

    def test_permute_negative_axes(self):
        """permute(-1, 0, 1) of (2, 3, 4) gives (4, 2, 3) and records the axes as (2, 0, 1), with no negatives.

        Hint: kata 03 sends the gradient back by inverting the recorded order with np.argsort,
        which needs the actual positions: turn each negative axis `a` into `a + ndim` first.
        """
        x = random_array(38, (2, 3, 4))
        t = Tensor(x)
        check_op(lambda: t.permute(-1, 0, 1), "permute(-1, 0, 1) of (2, 3, 4)", "transpose", (t,),
                 x.transpose(2, 0, 1))
        saved = saved_by_from_op(lambda: t.permute(-1, 0, -2), "permute(-1, 0, -2)")
        axes = tuple(int(a) for a in saved.get("axes", ()))
        assert axes == (2, 0, 1), (
            f"permute(-1, 0, -2) of (2, 3, 4): recorded axes={saved.get('axes')!r}; expected (2, 0, 1),\nthe full "
            "order with negative axes counted from the end")

    def test_transpose_records_the_full_axis_order(self):
        """transpose(0, 2), transpose(-1, -3), transpose() and .T of (2, 3, 4) record `axes` as the whole new order.

        Hint: build the full order `list(range(ndim))` with two entries swapped and hand it to
        permute: kata 03 inverts that order, and a pair of axes is not an order.
        """
        t = Tensor(random_array(47, (2, 3, 4)))
        for name, action, expected in [("transpose(0, 2)", lambda: t.transpose(0, 2), (2, 1, 0)),
                                       ("transpose(-1, -3)", lambda: t.transpose(-1, -3), (2, 1, 0)),
                                       ("transpose()", lambda: t.transpose(), (0, 2, 1)),
                                       (".T", lambda: t.T, (2, 1, 0))]:
            saved = saved_by_from_op(action, f"{name} of (2, 3, 4)")
            axes = tuple(int(a) for a in saved.get("axes", ()))
            assert axes == expected, (
                f"{name} of (2, 3, 4): recorded axes={saved.get('axes')!r}; expected {expected},\nthe full order of "
                "all three axes with no negatives")

    def test_bad_axes_name_the_shape(self):
        """permute with a repeated, missing or out-of-range axis, and 1-D transpose(): ValueError naming the shape.

        Hint: an axis `a` of an n-D tensor is valid for -n <= a < n; `a % n` would quietly turn
        axis 5 of a 3-D tensor into axis 2. The axes must be each of 0 .. n-1 exactly once.
        """
        t, v = Tensor(np.ones((2, 3, 4))), Tensor(np.ones(3))
        for axes in [(0, 0, 1), (0, 1), (0, 1, 2, 3), (0, 1, 3), (0, 1, 5), (0, 1, -4)]:
            assert_value_error_names(f"(2, 3, 4).permute{axes}", lambda: t.permute(*axes), "permute", (2, 3, 4))
        assert_value_error_names("(3,).transpose()", lambda: v.transpose(), "transpose", (3,))

    def test_transpose_is_a_view(self):
        """transpose, permute and .T share memory with the original, as numpy does."""
        t = Tensor(np.zeros((2, 3)))
        view = t.transpose()
        assert_shares_memory(view.data, t.data, True, "transpose copied the data; numpy's transpose is a view")
        view.data[2, 0] = 5.0
        assert t.data[0, 2] == 5.0, "writing transpose().data[2, 0] should change t.data[0, 2]"
        assert_shares_memory(t.T.data, t.data, True, ".T copied the data; it should be a view")
        assert_shares_memory(t.permute(1, 0).data, t.data, True, "permute copied the data; it should be a view")

    def test_index_ints_negative_and_slices(self):
        """x[1], x[-1, 2], x[:, 1:3], x[::2], x[..., 1], x[None]: Tensors recorded as 'getitem', numpy's values."""
        x = random_array(39, (4, 5))
        t = Tensor(x)
        for name, action, expected in [("x[1]", lambda: t[1], x[1]), ("x[-1, 2]", lambda: t[-1, 2], x[-1, 2]),
                                       ("x[:, 1:3]", lambda: t[:, 1:3], x[:, 1:3]), ("x[::2]", lambda: t[::2], x[::2]),
                                       ("x[..., 1]", lambda: t[..., 1], x[..., 1]),
                                       ("x[None]", lambda: t[None], x[None])]:
            check_op(action, name, "getitem", (t,), expected)

    def test_one_element_is_a_0d_tensor(self):
        """v[2] of a 1-D tensor is a Tensor of shape () (not a Python or numpy float), made by from_op."""
        v = random_array(40, (5,))
        t = Tensor(v)
        out = check_op(lambda: t[2], "v[2]", "getitem", (t,), np.asarray(v[2]))
        assert_shape(out, (), "v[2] of a (5,) tensor")

    def test_basic_slice_is_a_view(self):
        """x[1:, ::2] shares memory with x: writing through it changes x."""
        t = Tensor(np.zeros((3, 4)))
        view = t[1:, ::2]
        assert_shares_memory(view.data, t.data, True, "slicing copied the data; a basic slice is a view in numpy")
        view.data[0, 1] = 3.0
        assert t.data[1, 2] == 3.0, "writing x[1:, ::2].data[0, 1] should change x.data[1, 2]"

    def test_fancy_index_lists_and_arrays(self):
        """x[[2, 0, 2]] and x[np.array([0, 3]), np.array([1, 4])] pick numpy's elements."""
        x = random_array(41, (4, 5))
        t = Tensor(x)
        check_op(lambda: t[[2, 0, 2]], "x[[2, 0, 2]]", "getitem", (t,), x[[2, 0, 2]])
        rows, cols = np.array([0, 3]), np.array([1, 4])
        check_op(lambda: t[rows, cols], "x[[0, 3], [1, 4]]", "getitem", (t,), x[rows, cols])

    def test_fancy_index_is_a_copy(self):
        """x[[0, 1]] does not share memory with x, exactly as in numpy."""
        t = Tensor(np.zeros((3, 4)))
        picked = t[[0, 1]]
        assert_shares_memory(picked.data, t.data, False, "a fancy (list) index gave a view; numpy makes a copy")

    def test_boolean_mask(self):
        """x[mask] with a boolean numpy array keeps the elements where mask is True."""
        x = random_array(42, (3, 4))
        t = Tensor(x)
        mask = x > 0
        check_op(lambda: t[mask], "x[x > 0]", "getitem", (t,), x[mask])

    def test_tensor_as_index(self):
        """A Tensor of whole numbers works as an index: x[Tensor([2, 0])], x[Tensor(r), Tensor(c)], an int64 Tensor."""
        x = random_array(43, (4, 5))
        t = Tensor(x)
        check_op(lambda: t[Tensor([2, 0])], "x[Tensor([2, 0])]", "getitem", (t,), x[[2, 0]])
        check_op(lambda: t[Tensor([0, 3]), Tensor([1, 4])], "x[Tensor([0, 3]), Tensor([1, 4])]", "getitem", (t,),
                 x[[0, 3], [1, 4]])
        check_op(lambda: t[Tensor([3, 1], dtype=np.int64)], "x[Tensor([3, 1], dtype=np.int64)]", "getitem", (t,),
                 x[[3, 1]])

    def test_tensor_index_beside_slices(self):
        """x[Tensor([2, 0]), 1:4] and x[:, Tensor([4, 0])] mix a Tensor index with slices, as numpy does.

        Hint: in a tuple index, replace only the Tensors; slices, ints and Ellipsis go to numpy as they are.
        """
        x = random_array(44, (4, 5))
        t = Tensor(x)
        check_op(lambda: t[Tensor([2, 0]), 1:4], "x[Tensor([2, 0]), 1:4]", "getitem", (t,), x[[2, 0], 1:4])
        check_op(lambda: t[:, Tensor([4, 0])], "x[:, Tensor([4, 0])]", "getitem", (t,), x[:, [4, 0]])

    def test_boolean_tensor_mask_selects(self):
        """x[Tensor(mask, dtype=bool)] keeps the elements where the mask is True, like a numpy mask (not rows 0 and 1).

        Hint: only a float Tensor needs converting to integer positions; a boolean Tensor's array
        is already a mask numpy understands. Converting it to integers turns True/False into rows 1/0.
        """
        x = random_array(45, (3, 4))
        t = Tensor(x)
        mask = x > 0
        check_op(lambda: t[Tensor(mask, dtype=bool)], "x[Tensor(x > 0, dtype=bool)]", "getitem", (t,), x[mask])
        rows = np.array([True, False, True])
        check_op(lambda: t[Tensor(rows, dtype=bool)], "x[Tensor([True, False, True], dtype=bool)]", "getitem",
                 (t,), x[rows])

    def test_records_an_index_numpy_can_reuse(self):
        """getitem records, as `index`, the index it gave numpy (Tensors replaced by arrays): kata 03 reuses it.

        Hint: reassign `index` itself before the recording line (it saves `index=index`), rather
        than indexing with a new variable and leaving the Tensors in `index`.
        """
        x = random_array(46, (4, 5))
        t = Tensor(x)
        for name, action, expected in [("x[Tensor([2, 0])]", lambda: t[Tensor([2, 0])], x[[2, 0]]),
                                       ("x[Tensor([0, 3]), 1:4]", lambda: t[Tensor([0, 3]), 1:4], x[[0, 3], 1:4]),
                                       ("x[Tensor(x > 0, dtype=bool)]", lambda: t[Tensor(x > 0, dtype=bool)],
                                        x[x > 0])]:
            saved = saved_by_from_op(action, name)
            assert "index" in saved, f"{name}: recorded without `index`; keep the recording line's index=index"
            index = saved["index"]
            parts = index if isinstance(index, tuple) else (index,)
            assert not any(isinstance(part, Tensor) for part in parts), (
                f"{name}: the recorded index still holds a Tensor; replace it by a numpy array in `index` itself")
            assert_close(x[index], expected, f"{name}: x.data indexed again by the recorded index")


# ---------------------------------------------------------------------------------------
AXIS_OPTIONS = [None, 0, 1, -1, (0, 2), (-1, 0)]


def check_reduction(name: str, numpy_reduce, x: np.ndarray) -> None:
    """x.<name>(axis, keepdims) for every axis option and both keepdims, as numpy gives it, made by from_op."""
    t = Tensor(x, dtype=x.dtype)
    for axis in AXIS_OPTIONS:
        for keepdims in (False, True):
            what = f"x.{name}(axis={axis}, keepdims={keepdims}) of a {x.dtype} x of shape {x.shape}"
            expected = np.asarray(numpy_reduce(x, axis=axis, keepdims=keepdims))
            check_op(lambda: getattr(t, name)(axis=axis, keepdims=keepdims), what, name, (t,), expected)


@pytest.mark.checkpoint("reductions")
class TestReductions:
    def test_sum_of_everything_has_empty_shape(self):
        """x.sum() of a (3, 4) tensor is a 0-d float32 Tensor holding the total, made by from_op as 'sum'."""
        x = random_array(50, (3, 4))
        t = Tensor(x)
        out = check_op(lambda: t.sum(), "x.sum()", "sum", (t,), np.asarray(x.sum()))
        assert_shape(out, (), "x.sum()")

    def test_sum_along_an_axis(self):
        """x.sum(axis=0), x.sum(axis=1) and x.sum(axis=-1) of (2, 3, 4) match numpy."""
        x = random_array(51, (2, 3, 4))
        for axis in (0, 1, -1):
            assert_close(Tensor(x).sum(axis=axis), x.sum(axis=axis), f"x.sum(axis={axis})")

    def test_sum_keepdims(self):
        """x.sum(axis=1, keepdims=True) of (2, 3, 4) has shape (2, 1, 4)."""
        x = random_array(52, (2, 3, 4))
        out = Tensor(x).sum(axis=1, keepdims=True)
        assert_shape(out, (2, 1, 4), "x.sum(axis=1, keepdims=True)")
        assert_close(out, x.sum(axis=1, keepdims=True), "x.sum(axis=1, keepdims=True)")
        assert_shape(Tensor(x).sum(keepdims=True), (1, 1, 1), "x.sum(keepdims=True)")

    def test_sum_every_option(self):
        """x.sum(axis, keepdims) for axis None, 0, 1, -1, (0, 2), (-1, 0), keepdims False/True, float32 and float64."""
        for dtype in (np.float32, np.float64):
            check_reduction("sum", np.sum, random_array(53, (2, 3, 4), dtype=dtype))

    def test_mean(self):
        """x.mean(), x.mean(axis=0) and x.mean(axis=-1, keepdims=True) match numpy."""
        x = random_array(54, (3, 4))
        assert_close(Tensor(x).mean(), np.asarray(x.mean()), "x.mean()")
        assert_close(Tensor(x).mean(axis=0), x.mean(axis=0), "x.mean(axis=0)")
        assert_close(Tensor(x).mean(axis=-1, keepdims=True), x.mean(axis=-1, keepdims=True),
                     "x.mean(axis=-1, keepdims=True)")

    def test_mean_every_option(self):
        """x.mean(axis, keepdims) for axis None, 0, 1, -1, (0, 2), (-1, 0), keepdims False/True, float32 and float64.

        Hint: a mean divides by the number of elements reduced: for axis (0, 2) of (2, 3, 4) that
        is 8, not shape[0]. `np.mean` takes `axis` and `keepdims` just as `np.sum` does.
        """
        for dtype in (np.float32, np.float64):
            check_reduction("mean", np.mean, random_array(55, (2, 3, 4), dtype=dtype))

    def test_max(self):
        """x.max() and x.max(axis=1) of (3, 4) match numpy."""
        x = random_array(56, (3, 4))
        assert_close(Tensor(x).max(), np.asarray(x.max()), "x.max()")
        assert_close(Tensor(x).max(axis=1), x.max(axis=1), "x.max(axis=1)")

    def test_max_negative_axis_keepdims(self):
        """x.max(axis=-2, keepdims=True) of (2, 3, 4) has shape (2, 1, 4) and numpy's values."""
        x = random_array(57, (2, 3, 4))
        out = Tensor(x).max(axis=-2, keepdims=True)
        assert_shape(out, (2, 1, 4), "x.max(axis=-2, keepdims=True)")
        assert_close(out, x.max(axis=-2, keepdims=True), "x.max(axis=-2, keepdims=True)")

    def test_max_every_option(self):
        """x.max(axis, keepdims) for axis None, 0, 1, -1, (0, 2), (-1, 0), both keepdims; some rows all negative."""
        for dtype in (np.float32, np.float64):
            x = random_array(58, (2, 3, 4), dtype=dtype)
            x[0] -= 3  # the whole first block is negative: a maximum that starts from 0 is wrong there
            check_reduction("max", np.max, x)

    def test_nan_propagates(self):
        """A nan in a row makes that row's sum, mean and max nan (as numpy and PyTorch do); other rows are unaffected.

        Hint: np.nanmax and np.fmax skip nan; a nan usually means a bug upstream, and hiding it
        makes that bug much harder to find.
        """
        x = random_array(59, (2, 3))
        x[0, 1] = np.nan
        t = Tensor(x)
        for name in ("sum", "mean", "max"):
            got = getattr(t, name)(axis=1).data
            assert np.isnan(got[0]), f"x.{name}(axis=1) with a nan in row 0: expected nan for row 0, got {got[0]!r}"
            expected = getattr(np, name)(x[1])
            assert np.isclose(got[1], expected, rtol=1e-5), (
                f"x.{name}(axis=1): row 1 has no nan; expected {expected!r}, got {got[1]!r}")
            everything = getattr(t, name)().data
            assert np.isnan(everything), f"x.{name}() with a nan inside: expected nan, got {everything!r}"


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("matmul")
class TestMatmul:
    def test_matmul_2d(self):
        """(3, 4) @ (4, 5): a Tensor made by from_op as 'matmul', shape (3, 5), numpy's values."""
        a, b = random_array(60, (3, 4)), random_array(61, (4, 5))
        ta, tb = Tensor(a), Tensor(b)
        out = check_op(lambda: ta @ tb, "(3, 4) @ (4, 5)", "matmul", (ta, tb), a @ b, new_memory=True)
        assert_shape(out, (3, 5), "(3, 4) @ (4, 5)")

    def test_batched_times_matrix(self):
        """(2, 3, 4) @ (4, 5) multiplies every matrix of the batch by the same (4, 5)."""
        a, b = random_array(62, (2, 3, 4)), random_array(63, (4, 5))
        ta, tb = Tensor(a), Tensor(b)
        out = check_op(lambda: ta @ tb, "(2, 3, 4) @ (4, 5)", "matmul", (ta, tb), a @ b)
        assert_shape(out, (2, 3, 5), "(2, 3, 4) @ (4, 5)")

    def test_batched_times_batched(self):
        """(2, 3, 4) @ (2, 4, 5) multiplies the batch pairwise."""
        a, b = random_array(64, (2, 3, 4)), random_array(65, (2, 4, 5))
        ta, tb = Tensor(a), Tensor(b)
        out = check_op(lambda: ta @ tb, "(2, 3, 4) @ (2, 4, 5)", "matmul", (ta, tb), a @ b)
        assert_shape(out, (2, 3, 5), "(2, 3, 4) @ (2, 4, 5)")

    def test_batch_axes_broadcast(self):
        """(2, 1, 3, 4) @ (5, 4, 2) broadcasts the batch axes to (2, 5) and gives (2, 5, 3, 2)."""
        a, b = random_array(66, (2, 1, 3, 4)), random_array(67, (5, 4, 2))
        ta, tb = Tensor(a), Tensor(b)
        out = check_op(lambda: ta @ tb, "(2, 1, 3, 4) @ (5, 4, 2)", "matmul", (ta, tb), a @ b)
        assert_shape(out, (2, 5, 3, 2), "(2, 1, 3, 4) @ (5, 4, 2)")

    def test_array_on_the_left_and_float64(self):
        """numpy array @ Tensor gives a Tensor made by from_op as 'matmul'; float64 @ float64 stays float64."""
        a, b = random_array(68, (2, 3)), random_array(69, (3, 4))
        tb = Tensor(b)
        check_op(lambda: a @ tb, "array (2, 3) @ Tensor (3, 4)", "matmul", (tb,), a @ b)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        ta64, tb64 = Tensor(a64, dtype=np.float64), Tensor(b64, dtype=np.float64)
        check_op(lambda: ta64 @ tb64, "(2, 3) @ (3, 4) in float64", "matmul", (ta64, tb64), a64 @ b64)

    def test_mismatch_names_both_shapes(self):
        """(3, 4) @ (5, 2), (2, 3, 4) @ (2, 5, 6) and (2, 3, 4) @ (5, 4, 2) raise ValueError naming both shapes."""
        for shape_a, shape_b in [((3, 4), (5, 2)), ((2, 3, 4), (2, 5, 6)), ((2, 3, 4), (5, 4, 2))]:
            a, b = Tensor(np.ones(shape_a)), Tensor(np.ones(shape_b))
            assert_value_error_names(f"{shape_a} @ {shape_b}", lambda: a @ b, "matmul", shape_a, shape_b)

    def test_one_dimensional_operand_is_rejected(self):
        """(3, 4) @ (4,) and (3,) @ (3, 2) raise ValueError naming matmul and the 1-D shape."""
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
    """The op's time within TIME_BUDGET of numpy's (measured on while over budget: noise only adds time)."""
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

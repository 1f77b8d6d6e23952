"""Assertions for kata tests whose failure messages teach: what, where, expected, got.

    from harness.checks import assert_close, assert_shape, assert_finite, gradcheck, no_overflow
    from harness.checks import assert_tensor, assert_made_by_op, raises_naming
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np


def _as_array(value) -> np.ndarray:
    return np.asarray(getattr(value, "data", value))


def assert_shape(got, expected: tuple, what: str) -> None:
    shape = tuple(np.shape(_as_array(got)))
    assert shape == tuple(expected), f"{what}: expected shape {tuple(expected)}, got {shape}"


def assert_finite(got, what: str) -> None:
    """Every value of `got` (a Tensor or an array) is finite; otherwise name how many are not, and the first."""
    values = _as_array(got)
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {int(bad.sum())} values are nan or inf, first at index {first}: "
                             f"{values[first]!r}")


@contextmanager
def no_overflow(what: str, advice: str):
    """Fail as a wrong answer (not a crash) if numpy overflows, divides by zero or makes a nan inside.

    Underflow is allowed: exp(-1000) quietly becoming 0 is exactly what a stable formula relies on.
    `advice` ends the message: how to rearrange the formula.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            try:
                yield
            except (FloatingPointError, RuntimeWarning) as problem:
                raise AssertionError(f"{what}: numpy reported '{problem}'. {advice}") from None


def assert_tensor(got, what: str, shape: tuple | None = None, dtype=None) -> None:
    """`got` is a tinytorch Tensor (not a numpy array or a number), of `shape` and `dtype` if given."""
    from tinytorch.tensor import Tensor

    if not isinstance(got, Tensor):
        raise AssertionError(f"{what}: expected a Tensor, got {type(got).__name__}"
                             + (" (wrap the numpy result: return Tensor.from_op(data, ...))"
                                if isinstance(got, (np.ndarray, np.generic, float, int)) else ""))
    if not isinstance(got.data, np.ndarray):
        raise AssertionError(f"{what}: .data should be a numpy array, got {type(got.data).__name__}")
    if shape is not None:
        assert_shape(got, shape, what)
    if dtype is not None and got.dtype != np.dtype(dtype):
        raise AssertionError(f"{what}: expected dtype {np.dtype(dtype)}, got {got.dtype}")


def assert_made_by_op(action, what: str, op: str | None = None, parents: tuple | None = None):
    """Run `action()`; its result must be a Tensor made by `Tensor.from_op` (naming `op`, reading `parents`).

    Every op result goes through `Tensor.from_op`, which is how autograd (kata 03) learns the
    op and its inputs; a Tensor built any other way is invisible to backward(). Returns the result.
    """
    from tinytorch.tensor import Tensor

    original = Tensor.__dict__["from_op"]
    made = []

    def watching(data, op_name, op_parents, **saved):
        out = original.__func__(data, op_name, op_parents, **saved)
        made.append((op_name, tuple(op_parents), out))
        return out

    Tensor.from_op = staticmethod(watching)
    try:
        result = action()
    finally:
        Tensor.from_op = original
    assert_tensor(result, what)
    mine = [entry for entry in made if entry[2] is result]
    if not mine:
        raise AssertionError(f"{what}: the result was not made by Tensor.from_op(data, op, parents); build "
                             "op results with from_op so backward() can find how they were made")
    op_name, op_parents, _ = mine[-1]
    if op is not None and op_name != op:
        raise AssertionError(f"{what}: recorded as op {op_name!r}; expected {op!r} (the name its backward "
                             "rule is registered under)")
    if parents is not None:
        expected_ids, got_ids = [id(p) for p in parents], [id(p) for p in op_parents]
        if not all(i in got_ids for i in expected_ids):
            raise AssertionError(f"{what}: recorded with {len(op_parents)} parent(s) that do not include every "
                                 f"input tensor; pass the input Tensors themselves as parents")
    return result


def raises_naming(call, errors, fragments, what: str) -> str:
    """call() raises one of `errors` (a class or a tuple), and its message mentions every fragment.
    Returns the message."""
    errors = errors if isinstance(errors, tuple) else (errors,)
    try:
        call()
    except errors as error:
        message = str(error)
    else:
        raise AssertionError(f"{what}: expected {' or '.join(e.__name__ for e in errors)}, but nothing was raised")
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{what}: the error message should mention {missing}; it was: {message!r}"
    return message


def assert_close(got, expected, what: str, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Compare values (Tensors or arrays); on failure name the first bad index and both values."""
    got_array, expected_array = _as_array(got), _as_array(expected)
    assert got_array.shape == expected_array.shape, (
        f"{what}: expected shape {expected_array.shape}, got {got_array.shape}")
    bad = ~np.isclose(got_array, expected_array, rtol=rtol, atol=atol, equal_nan=False)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} values differ; first at index {index}: "
            f"expected {expected_array[index]!r}, got {got_array[index]!r}")


def numerical_gradient(f, arrays: list, index_of_input: int, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f(*arrays) with respect to arrays[index_of_input], in float64."""
    x = arrays[index_of_input]
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + eps
        plus = f(*arrays)
        x[i] = original - eps
        minus = f(*arrays)
        x[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, *inputs, seed: int = 0, rtol: float = 1e-5, atol: float = 1e-7, name: str = "") -> None:
    """Check every element of the gradient of `fn` against float64 central differences.

    `inputs` are numpy arrays; each becomes a float64 Tensor that requires grad.
    The output is weighted by a seeded random gradient, so non-scalar outputs and
    every output element are covered: loss = sum(fn(*inputs) * weight).
    """
    from tinytorch.tensor import Tensor

    label = name or getattr(fn, "__name__", "fn")
    arrays = [np.array(x, dtype=np.float64) for x in inputs]
    tensors = [Tensor(a.copy(), dtype=np.float64, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weight = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(weight)

    def weighted(*values):
        return float(np.sum(_as_array(fn(*[Tensor(v, dtype=np.float64) for v in values])) * weight))

    for position, tensor in enumerate(tensors):
        expected = numerical_gradient(weighted, arrays, position)
        got = tensor.grad
        where = f"{label}: gradient of input {position} (shape {arrays[position].shape}, seed {seed})"
        assert got is not None, f"{where}: .grad is None; backward() never reached this input"
        assert_close(got, expected, where, rtol=rtol, atol=atol)

"""Kata 15 · Quantization: the ordered suite. Run it with `python -m pytest katas/15_quantization`."""

import numpy as np
import pytest

import tinytorch.quantization as quantization_module
from harness.budgets import count_calls
from harness.checks import assert_close, assert_made_by_op, assert_shape, assert_tensor, raises_naming
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch.activations import ReLU
from tinytorch.convolutions import Conv2d, Flatten, MaxPool2d
from tinytorch.dataloader import load_digits, train_test_split
from tinytorch.layers import Dropout, Linear, Module, Sequential
from tinytorch.losses import CrossEntropyLoss
from tinytorch.optimizers import Adam
from tinytorch.quantization import (
    MinMaxObserver, PercentileObserver, Quantized, QuantizedConv2d, QuantizedLinear, choose_qparams, dequantize, integer_matmul,
    quant_range, quantize, quantize_model, quantize_with,
)
from tinytorch.tensor import Tensor
from tinytorch.training import accuracy, make_batches, train_epoch

F32_EPS = float(np.finfo(np.float32).eps)


def random_array(shape, seed: int, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def per_channel(values, axis, ndim: int) -> np.ndarray:
    """(C,) values reshaped to broadcast along `axis` of an ndim-D array (the tests' own, independent copy)."""
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def expected_levels(x, scale, zero_point, qmin: int, qmax: int, axis=None) -> np.ndarray:
    """The formula, in float64: clip(round(x / scale) + zero_point, qmin, qmax)."""
    x = np.asarray(x, dtype=np.float64)
    levels = np.round(x / per_channel(scale, axis, x.ndim)) + per_channel(zero_point, axis, x.ndim)
    return np.clip(levels, qmin, qmax)


def assert_within_half_a_step(x, q, what: str) -> None:
    """Every element of dequantize(q) lies within scale/2 of x (its channel's scale), up to float32 rounding."""
    x = np.asarray(x, dtype=np.float64)
    got = dequantize(q)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32, (
        f"{what}: dequantize should return a float32 numpy array, got {type(got).__name__} of dtype "
        f"{getattr(got, 'dtype', None)}")
    assert_shape(got, x.shape, f"{what}: dequantize")
    half_step = np.broadcast_to(per_channel(q.scale, q.axis, x.ndim) / 2, x.shape)
    error = np.abs(got.astype(np.float64) - x)
    # The float32 scale and the float32 result each round by a few parts in 10^8: allow for exactly that.
    allowed = half_step * (1 + 1e-4) + 2 * F32_EPS * np.abs(x)
    bad = error > allowed
    if bad.any():
        worst = np.unravel_index(np.argmax(error - allowed), x.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {x.size} elements come back further than scale/2 from where they started; "
            f"the worst at index {tuple(int(i) for i in worst)}: x = {x[worst]!r}, dequantized {got[worst]!r}, "
            f"error {error[worst]:.4g} > scale/2 = {half_step[worst]:.4g} (the max over every element is what counts)")


def kept_bytes(obj, seen=None) -> int:
    """Bytes of every array reachable from obj's attributes (modules, lists, dicts, Quantized ...), each counted once.

    A view counts as the whole array it looks into, which it keeps alive.
    """
    seen = set() if seen is None else seen
    if isinstance(obj, np.ndarray):
        while isinstance(obj.base, np.ndarray):
            obj = obj.base
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool, type)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, (np.ndarray, np.generic)):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(kept_bytes(value, seen) for value in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(kept_bytes(value, seen) for value in obj)
    if hasattr(obj, "__dict__"):
        return sum(kept_bytes(value, seen) for value in vars(obj).values())
    return 0


def float_bytes(model: Module) -> int:
    """The float32 model's bytes: its parameters."""
    return sum(parameter.data.nbytes for parameter in model.parameters())


# -- qparams ------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("qparams")
class TestQparams:
    def test_the_callers_range_is_left_alone(self):
        """choose_qparams(low, high) on float64 arrays (2,) leaves both arrays as they were (widening makes new ones)."""
        low, high = np.array([1.0, -2.0]), np.array([3.0, -1.0])
        choose_qparams(low, high)
        assert low.tolist() == [1.0, -2.0] and high.tolist() == [3.0, -1.0], (
            f"choose_qparams changed the caller's low/high to {low.tolist()} / {high.tolist()}: widen with "
            "np.minimum(low, 0) into a new array, not in place")

    def test_eight_bit_ranges(self):
        """quant_range(8) is (-128, 127) for affine and (-127, 127) for symmetric, as Python ints.

        Hint: symmetric quantization drops -128 so that the grid is symmetric: -q is a level whenever q is.
        """
        for symmetric, expected in ((False, (-128, 127)), (True, (-127, 127))):
            got = quant_range(8, symmetric=symmetric)
            assert tuple(got) == expected, f"quant_range(8, symmetric={symmetric}): expected {expected}, got {got}"
            assert all(isinstance(v, int) for v in got), (
                f"quant_range(8, symmetric={symmetric}) should give Python ints, got {[type(v).__name__ for v in got]}")

    def test_every_width_from_2_to_8(self):
        """quant_range(4) is (-8, 7) affine and (-7, 7) symmetric; quant_range(2) is (-2, 1) and (-1, 1)."""
        for bits, affine, symmetric in ((4, (-8, 7), (-7, 7)), (2, (-2, 1), (-1, 1)), (6, (-32, 31), (-31, 31))):
            assert tuple(quant_range(bits)) == affine, f"quant_range({bits}): expected {affine}, got {quant_range(bits)}"
            assert tuple(quant_range(bits, symmetric=True)) == symmetric, (
                f"quant_range({bits}, symmetric=True): expected {symmetric}, got {quant_range(bits, symmetric=True)}")

    def test_bits_are_checked(self):
        """bits of 1, 9 or 4.5 are ValueErrors naming the value (levels are stored in int8; 1 bit leaves no symmetric level)."""
        for bits in (1, 9, 4.5):
            raises_naming(lambda: quant_range(bits), ValueError, [str(bits)], f"quant_range({bits})")

    def test_affine_scale_and_zero_point(self):
        """choose_qparams(-1.0, 3.0): scale 4/255 (float32), zero point round(-128 + 1 / scale) = -64 (int32)."""
        scale, zero_point = choose_qparams(-1.0, 3.0)
        assert np.shape(scale) == () and np.asarray(scale).dtype == np.float32, (
            f"the scale of a per-tensor range should be a float32 number (shape ()), got {np.asarray(scale).dtype} "
            f"of shape {np.shape(scale)}")
        assert np.shape(zero_point) == () and np.asarray(zero_point).dtype == np.int32, (
            f"the zero point should be an int32 number (shape ()), got {np.asarray(zero_point).dtype} of shape "
            f"{np.shape(zero_point)}")
        assert_close(scale, np.float32(4 / 255), "choose_qparams(-1, 3): scale = (high - low) / 255", rtol=1e-6)
        assert int(zero_point) == -64, f"choose_qparams(-1, 3): zero point expected -64, got {zero_point}"

    def test_symmetric_scale(self):
        """choose_qparams(-1.0, 3.0, symmetric=True): scale 3/127 (the larger magnitude over qmax), zero point 0."""
        scale, zero_point = choose_qparams(-1.0, 3.0, symmetric=True)
        assert_close(scale, np.float32(3 / 127), "symmetric scale = max(|low|, |high|) / 127", rtol=1e-6)
        assert int(zero_point) == 0, f"a symmetric zero point is 0, got {zero_point}"

    def test_an_all_positive_range_is_widened_to_zero(self):
        """choose_qparams(1.0, 6.0) lays the levels over [0, 6]: scale 6/255, zero point -128 (0.0 is the lowest level).

        Hint: a zero point computed from [1, 6] would be round(-128 - 1 / scale) = -179, not a level. Clamping it to
        -128 without changing the scale shifts every value (6 comes back as 5). Widen the range to contain 0 first.
        """
        scale, zero_point = choose_qparams(1.0, 6.0)
        assert_close(scale, np.float32(6 / 255), "choose_qparams(1, 6): scale over the widened range [0, 6]", rtol=1e-6)
        assert int(zero_point) == -128, f"choose_qparams(1, 6): zero point expected -128, got {zero_point}"

    def test_an_all_negative_range_is_widened_to_zero(self):
        """choose_qparams(-6.0, -1.0): scale 6/255, zero point 127 (0.0 is the highest level)."""
        scale, zero_point = choose_qparams(-6.0, -1.0)
        assert_close(scale, np.float32(6 / 255), "choose_qparams(-6, -1): scale over [-6, 0]", rtol=1e-6)
        assert int(zero_point) == 127, f"choose_qparams(-6, -1): zero point expected 127, got {zero_point}"

    def test_a_constant_range(self):
        """choose_qparams(2.5, 2.5) covers [0, 2.5]: scale 2.5/255, zero point -128; symmetric: 2.5/127, 0."""
        scale, zero_point = choose_qparams(2.5, 2.5)
        assert_close(scale, np.float32(2.5 / 255), "choose_qparams(2.5, 2.5): scale", rtol=1e-6)
        assert int(zero_point) == -128, f"choose_qparams(2.5, 2.5): zero point expected -128, got {zero_point}"
        scale, zero_point = choose_qparams(2.5, 2.5, symmetric=True)
        assert_close(scale, np.float32(2.5 / 127), "choose_qparams(2.5, 2.5, symmetric=True): scale", rtol=1e-6)

    def test_a_zero_range_never_gets_scale_zero(self):
        """choose_qparams(0, 0), affine and symmetric: a positive, finite scale (dividing by 0 gives nan) and a zero point in range."""
        for symmetric in (False, True):
            scale, zero_point = choose_qparams(0.0, 0.0, symmetric=symmetric)
            assert np.isfinite(scale) and scale > 0, (
                f"choose_qparams(0, 0, symmetric={symmetric}): the scale must be positive, got {scale}; an all-zero "
                "tensor is represented exactly by the zero point with any scale, so use 1")
            qmin, qmax = (-127, 127) if symmetric else (-128, 127)
            assert qmin <= int(zero_point) <= qmax, f"choose_qparams(0, 0): zero point {zero_point} is not a level"

    def test_a_tiny_range_keeps_its_scale(self):
        """choose_qparams(-1e-6, 1e-6) gives scale 2e-6/255 exactly: no minimum scale that would blur tiny tensors."""
        scale, _ = choose_qparams(-1e-6, 1e-6)
        assert_close(scale, np.float32(2e-6 / 255), "choose_qparams(-1e-6, 1e-6): scale", rtol=1e-6, atol=0)
        scale, _ = choose_qparams(-1e-30, 3e-30, symmetric=True)
        assert_close(scale, np.float32(3e-30 / 127), "choose_qparams(-1e-30, 3e-30, symmetric=True): scale",
                     rtol=1e-6, atol=0)

    def test_a_huge_range_does_not_overflow(self):
        """choose_qparams(-3e38, 3e38) gives scale 6e38/255, finite: high - low overflows in float32, not in float64.

        Hint: 3e38 - (-3e38) is beyond float32's largest number (3.4e38) and becomes inf; compute the range in float64.
        """
        scale, zero_point = choose_qparams(np.float32(-3e38), np.float32(3e38))
        assert np.isfinite(scale), f"choose_qparams(-3e38, 3e38): the scale overflowed to {scale}"
        assert_close(scale, np.float32(np.float64(np.float32(3e38)) * 2 / 255), "choose_qparams(-3e38, 3e38)", rtol=1e-6)
        assert int(zero_point) in (-1, 0), f"choose_qparams(-3e38, 3e38): zero point expected 0 or -1, got {zero_point}"

    def test_per_channel_ranges(self):
        """Arrays low (3,) and high (3,) give three scales and zero points, each what its own range gives."""
        low, high = np.array([-1.0, 0.5, -8.0]), np.array([3.0, 2.0, -4.0])
        scale, zero_point = choose_qparams(low, high)
        assert np.shape(scale) == (3,) and np.shape(zero_point) == (3,), (
            f"per-channel ranges of shape (3,) should give scale and zero point of shape (3,), got "
            f"{np.shape(scale)} and {np.shape(zero_point)}")
        assert_close(scale, np.array([4 / 255, 2 / 255, 8 / 255], dtype=np.float32), "per-channel scales", rtol=1e-6)
        assert np.asarray(zero_point).tolist() == [-64, -128, 127], f"per-channel zero points: got {zero_point}"
        scale, zero_point = choose_qparams(low, high, symmetric=True)
        assert_close(scale, np.array([3 / 127, 2 / 127, 8 / 127], dtype=np.float32), "symmetric per-channel scales",
                     rtol=1e-6)
        assert np.asarray(zero_point).tolist() == [0, 0, 0], f"symmetric per-channel zero points: got {zero_point}"

    def test_fewer_bits(self):
        """choose_qparams(-1.0, 3.0, bits=4): scale 4/15, zero point round(-8 + 3.75) = -4; symmetric: 3/7 and 0."""
        scale, zero_point = choose_qparams(-1.0, 3.0, bits=4)
        assert_close(scale, np.float32(4 / 15), "choose_qparams(-1, 3, bits=4): scale", rtol=1e-6)
        assert int(zero_point) == -4, f"choose_qparams(-1, 3, bits=4): zero point expected -4, got {zero_point}"
        scale, _ = choose_qparams(-1.0, 3.0, bits=4, symmetric=True)
        assert_close(scale, np.float32(3 / 7), "choose_qparams(-1, 3, bits=4, symmetric=True): scale", rtol=1e-6)

    def test_the_zero_point_comes_from_the_stored_scale(self):
        """choose_qparams(-0.03, 0.07): zero point round(-128 + 0.03 / s) = -51 with s the float32 scale returned, not -52.

        Hint: dequantize reads (q - zero_point) * scale with the float32 scale it stores. Computed from the float64
        scale, -128 + 0.03 / scale is -51.50000000000001 and rounds to -52; from the stored float32 scale it is
        -51.4999988 and rounds to -51. Store the scale as float32 first, then compute the zero point from it.
        """
        scale, zero_point = choose_qparams(-0.03, 0.07)
        expected = int(np.round(-128 + 0.03 / np.float64(np.float32(scale))))
        assert expected == -51  # the test's own premise: the float32 scale rounds the other way
        assert int(zero_point) == expected, (
            f"choose_qparams(-0.03, 0.07): zero point expected {expected} (from the stored float32 scale {scale!r}), "
            f"got {zero_point}")

    def test_bad_ranges(self):
        """low > high (in the second channel), nan or inf are ValueErrors naming what was wrong."""
        raises_naming(lambda: choose_qparams(np.array([0.0, 2.0]), np.array([1.0, 1.0])), ValueError, ["low"],
                      "choose_qparams with low [0, 2] above high [1, 1] in channel 1")
        raises_naming(lambda: choose_qparams(0.0, float("nan")), ValueError, ["finite"], "choose_qparams(0, nan)")
        raises_naming(lambda: choose_qparams(-float("inf"), 1.0), ValueError, ["finite"], "choose_qparams(-inf, 1)")


# -- quantize and dequantize ---------------------------------------------------------------------------------

EDGE_TENSORS = {
    "normal": random_array((6, 7), 1),
    "all positive [1, 6]": np.linspace(1.0, 6.0, 101, dtype=np.float32),
    "all negative [-6, -1]": np.linspace(-6.0, -1.0, 101, dtype=np.float32),
    "constant 2.5": np.full((4, 5), 2.5, dtype=np.float32),
    "constant -0.3": np.full((3,), -0.3, dtype=np.float32),
    "zeros": np.zeros((3, 4), dtype=np.float32),
    "tiny range (1e-6)": random_array((50,), 2, scale=1e-6),
    "huge range (3e38)": np.random.default_rng(3).uniform(-3e38, 3e38, 64).astype(np.float32),
    "magnitudes 1e-3 to 1e3": (np.logspace(-3, 3, 40) * np.resize([1, -1], 40)).astype(np.float32),
    "float64 input": random_array((5, 3), 4, dtype=np.float64),
}


@pytest.mark.checkpoint("quantize")
class TestQuantize:
    def test_the_input_is_left_alone(self):
        """quantize, quantize_with and dequantize never write into their inputs (float32 and float64 x)."""
        for dtype in (np.float32, np.float64):
            x = random_array((4, 3), 10, dtype=dtype)
            before = x.copy()
            q = quantize(x)
            quantize(x, axis=1, symmetric=True)
            quantize_with(x, 0.01, 3)
            assert np.array_equal(x, before), f"quantize changed its {np.dtype(dtype)} input: divide into a new array"
            values = q.values.copy()
            dequantize(q)
            assert np.array_equal(q.values, values), "dequantize changed q.values"

    def test_result_types(self):
        """quantize(x (4, 3)) is a Quantized: int8 values (4, 3), float32 scale and int32 zero point of shape (), axis None."""
        x = random_array((4, 3), 11)
        q = quantize(x, bits=8)
        assert isinstance(q, Quantized), f"quantize should return a Quantized, got {type(q).__name__}"
        assert isinstance(q.values, np.ndarray) and q.values.dtype == np.int8, (
            f"Quantized.values should be an int8 numpy array, got {type(q.values).__name__} of dtype "
            f"{getattr(q.values, 'dtype', None)}")
        assert_shape(q.values, (4, 3), "quantize(x (4, 3)).values")
        assert np.shape(q.scale) == () and np.asarray(q.scale).dtype == np.float32, (
            f"per tensor, the scale is one float32 number, got dtype {np.asarray(q.scale).dtype} shape {np.shape(q.scale)}")
        assert np.shape(q.zero_point) == () and np.asarray(q.zero_point).dtype == np.int32, (
            f"per tensor, the zero point is one int32 number, got {np.asarray(q.zero_point).dtype} {np.shape(q.zero_point)}")
        assert q.axis is None and q.bits == 8 and q.symmetric is False, (
            f"expected axis None, bits 8, symmetric False; got {q.axis}, {q.bits}, {q.symmetric}")

    def test_round_to_the_nearest_level(self):
        """quantize_with([0, 0.26, -0.27, 0.84, -0.3], scale 0.1, zero point 3) is [3, 6, 0, 11, 0]: rounded, not truncated.

        Hint: `astype(np.int8)` cuts 2.6 down to 2 and -2.7 up to -2 (toward zero): round first, with np.round.
        """
        x = np.array([0.0, 0.26, -0.27, 0.84, -0.3], dtype=np.float32)
        q = quantize_with(x, 0.1, 3)
        assert q.values.dtype == np.int8, f"quantize_with should store int8 values, got {q.values.dtype}"
        assert q.values.tolist() == [3, 6, 0, 11, 0], f"quantize_with(x, 0.1, 3): expected [3, 6, 0, 11, 0], got {q.values.tolist()}"

    def test_values_beyond_the_range_saturate(self):
        """With scale 0.1: -1000 and -12.9 clip to -128 (affine) or -127 (symmetric), 1000 and 12.8 to 127; nothing wraps.

        Hint: clip to [qmin, qmax] after rounding and before the int8 conversion, which would wrap 10000 around to 16.
        """
        x = np.array([-1000.0, 1000.0, -12.9, 12.8, 5.0], dtype=np.float32)
        affine = quantize_with(x, 0.1, 0)
        assert affine.values.tolist() == [-128, 127, -128, 127, 50], (
            f"affine quantize_with(x, 0.1, 0): expected [-128, 127, -128, 127, 50], got {affine.values.tolist()}")
        symmetric = quantize_with(x, 0.1, 0, symmetric=True)
        assert symmetric.values.tolist() == [-127, 127, -127, 127, 50], (
            f"symmetric quantize_with(x, 0.1, 0): expected [-127, 127, -127, 127, 50] (symmetric mode never uses "
            f"-128), got {symmetric.values.tolist()}")
        shifted = quantize_with(np.array([1000.0, -1000.0]), 0.1, 100)
        assert shifted.values.tolist() == [127, -128], f"zero point 100: expected [127, -128], got {shifted.values.tolist()}"

    @pytest.mark.parametrize("name", list(EDGE_TENSORS))
    def test_every_element_comes_back_within_half_a_step(self, name):
        """On every edge tensor, affine and symmetric, the error of EVERY element of dequantize(quantize(x)) is at most scale/2.

        Hint: check the mean? No: one element off by a whole step is a bug; the test takes the max over all elements.
        """
        x = EDGE_TENSORS[name]
        for symmetric in (False, True):
            assert_within_half_a_step(x, quantize(x, symmetric=symmetric),
                                      f"{name}, {'symmetric' if symmetric else 'affine'}")

    def test_zero_comes_back_exactly(self):
        """Zeros inside any tensor (affine, symmetric, per channel) dequantize to exactly 0.0: 0 is the zero point's level."""
        x = random_array((5, 4), 12) + 1.5
        x[1, 2] = x[3, 0] = x[4, 3] = 0.0
        for symmetric in (False, True):
            for axis in (None, 0, 1):
                got = dequantize(quantize(x, symmetric=symmetric, axis=axis))
                zeros = got[x == 0]
                assert np.all(zeros == 0.0), (
                    f"quantize(symmetric={symmetric}, axis={axis}): the zeros of x came back as {zeros.tolist()}")

    def test_the_formula_per_tensor(self):
        """quantize(x) equals clip(round(x / scale) + zero_point) with choose_qparams(min, max), affine and symmetric."""
        x = random_array((3, 8), 13, scale=2.0) + 0.7
        for symmetric in (False, True):
            q = quantize(x, symmetric=symmetric)
            scale, zero_point = choose_qparams(x.min(), x.max(), symmetric=symmetric)
            assert_close(q.scale, scale, f"quantize(symmetric={symmetric}).scale", rtol=1e-6)
            assert int(q.zero_point) == int(zero_point), (
                f"quantize(symmetric={symmetric}).zero_point: expected {zero_point}, got {q.zero_point}")
            qmin, qmax = (-127, 127) if symmetric else (-128, 127)
            expected = expected_levels(x, scale, zero_point, qmin, qmax)
            assert np.array_equal(q.values, expected), (
                f"quantize(symmetric={symmetric}): {int(np.sum(q.values != expected))} values differ from "
                "clip(round(x / scale) + zero_point)")

    def test_per_channel_along_the_middle_axis(self):
        """quantize(x (3, 4, 5), axis=1): 4 scales, channel c's from the min and max of x[:, c, :] alone.

        Hint: per channel means one range per index of `axis`: reduce over every OTHER axis, giving shape (C,).
        """
        x = random_array((3, 4, 5), 14) * np.array([1e-3, 1.0, 30.0, 0.2], dtype=np.float32).reshape(1, 4, 1)
        for symmetric in (False, True):
            q = quantize(x, symmetric=symmetric, axis=1)
            assert np.shape(q.scale) == (4,) and np.shape(q.zero_point) == (4,), (
                f"quantize(x (3, 4, 5), axis=1): expected 4 scales and zero points, got shapes {np.shape(q.scale)} "
                f"and {np.shape(q.zero_point)}")
            assert q.axis == 1, f"quantize(..., axis=1).axis should be 1, got {q.axis}"
            for c in range(4):
                scale, zero_point = choose_qparams(x[:, c].min(), x[:, c].max(), symmetric=symmetric)
                assert_close(q.scale[c], scale, f"axis=1, symmetric={symmetric}: the scale of channel {c}", rtol=1e-6)
                assert int(q.zero_point[c]) == int(zero_point), (
                    f"axis=1, symmetric={symmetric}: the zero point of channel {c}: expected {zero_point}, "
                    f"got {q.zero_point[c]}")
            assert_within_half_a_step(x, q, f"quantize(x (3, 4, 5), axis=1, symmetric={symmetric})")

    def test_per_channel_along_the_first_and_last_axes(self):
        """axis=0 of a (3, 6) array gives 3 scales (one per row), axis=-1 gives 6 (one per column) and q.axis = 1."""
        x = random_array((3, 6), 15) * np.array([[0.01], [1.0], [100.0]], dtype=np.float32)
        rows = quantize(x, axis=0, symmetric=True)
        assert_close(rows.scale, np.abs(x).max(axis=1) / 127, "axis=0: scale of each row = max|row| / 127", rtol=1e-6)
        assert_within_half_a_step(x, rows, "quantize(x (3, 6), axis=0)")
        columns = quantize(x, axis=-1, symmetric=True)
        assert columns.axis == 1, f"axis=-1 of a 2-D array is axis 1; Quantized.axis should say 1, got {columns.axis}"
        assert_close(columns.scale, np.abs(x).max(axis=0) / 127, "axis=-1: scale of each column", rtol=1e-6)
        assert_within_half_a_step(x, columns, "quantize(x (3, 6), axis=-1)")

    def test_views_are_quantized_like_copies(self):
        """A transposed (non-contiguous) view and a strided slice quantize exactly like their contiguous copies, per tensor and per channel."""
        base = random_array((6, 10), 18)
        for name, view in (("x.T", base.T), ("x[:, ::3]", base[:, ::3])):
            for axis in (None, 0, 1):
                a, b = quantize(view, axis=axis), quantize(np.ascontiguousarray(view), axis=axis)
                assert np.array_equal(a.values, b.values) and np.array_equal(a.scale, b.scale), (
                    f"quantize({name}, axis={axis}) differs from quantize of its contiguous copy")

    def test_the_axis_is_checked(self):
        """axis=3, axis=-4, axis=True or axis=1.0 of a 3-D tensor is a ValueError naming the axis."""
        x = np.zeros((2, 3, 4), dtype=np.float32)
        raises_naming(lambda: quantize(x, axis=3), ValueError, ["3"], "quantize(x (2, 3, 4), axis=3)")
        raises_naming(lambda: quantize(x, axis=-4), ValueError, ["-4"], "quantize(x (2, 3, 4), axis=-4)")
        raises_naming(lambda: quantize(x, axis=True), ValueError, ["True"],
                      "quantize(x (2, 3, 4), axis=True) (a bool is not an axis, though True == 1)")
        raises_naming(lambda: quantize(x, axis=1.0), ValueError, ["1.0"], "quantize(x (2, 3, 4), axis=1.0)")

    def test_quantize_with_per_channel(self):
        """quantize_with(x (2, 3), scales [0.1, 1, 10], zero points [0, 5, -5], axis=1) follows the formula column by column."""
        x = np.array([[0.34, 2.6, -36.0], [-0.2, -7.0, 1000.0]], dtype=np.float32)
        q = quantize_with(x, np.array([0.1, 1.0, 10.0]), np.array([0, 5, -5]), axis=1)
        assert q.values.tolist() == [[3, 8, -9], [-2, -2, 95]], f"got {q.values.tolist()}"

    def test_quantize_with_checks_its_parameters(self):
        """A scale of 0, -1, nan or inf, a zero point of 200 (not an int8 level), or 2 scales for 3 channels are ValueErrors naming them."""
        x = np.ones((2, 3), dtype=np.float32)
        raises_naming(lambda: quantize_with(x, 0.0, 0), ValueError, ["scale"], "quantize_with(x, scale=0)")
        raises_naming(lambda: quantize_with(x, -1.0, 0), ValueError, ["scale"], "quantize_with(x, scale=-1)")
        raises_naming(lambda: quantize_with(x, np.array([0.1, np.nan, 0.1]), np.zeros(3, dtype=np.int32), axis=1),
                      ValueError, ["scale"], "quantize_with(x, scales [0.1, nan, 0.1], axis=1)")
        raises_naming(lambda: quantize_with(x, np.array([0.1, 0.1, np.inf]), np.zeros(3, dtype=np.int32), axis=1),
                      ValueError, ["scale"], "quantize_with(x, scales [0.1, 0.1, inf], axis=1) (every level would be 0)")
        raises_naming(lambda: quantize_with(x, 0.1, 200), ValueError, ["200"], "quantize_with(x, 0.1, zero_point=200)")
        raises_naming(lambda: quantize_with(x, 0.1, -128, symmetric=True), ValueError, ["-128"],
                      "quantize_with(x, 0.1, zero_point=-128, symmetric=True)")
        raises_naming(lambda: quantize_with(x, np.array([0.1, 0.2]), np.array([0, 0]), axis=1), ValueError,
                      ["(2,)", "(3,)"], "quantize_with(x (2, 3), two scales, axis=1)")

    def test_dequantize_subtracts_the_zero_point(self):
        """dequantize(Quantized([-128, -100, 0, 127], scale 0.5, zero point -128)) is [0, 14, 64, 127.5] in float32."""
        q = Quantized(np.array([-128, -100, 0, 127], dtype=np.int8), np.array(0.5, dtype=np.float32),
                      np.array(-128, dtype=np.int32), None)
        got = dequantize(q)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32, (
            f"dequantize should return float32, got {type(got).__name__} {getattr(got, 'dtype', None)}")
        assert got.tolist() == [0.0, 14.0, 64.0, 127.5], (
            f"(values - zero_point) * scale: expected [0, 14, 64, 127.5], got {got.tolist()}")

    def test_dequantize_per_channel(self):
        """Values (2, 3) with axis=0, scales [1, 0.25], zero points [0, 100]: row r uses its own scale and zero point."""
        q = Quantized(np.array([[1, -2, 3], [100, 104, -100]], dtype=np.int8), np.array([1.0, 0.25], dtype=np.float32),
                      np.array([0, 100], dtype=np.int32), 0)
        assert dequantize(q).tolist() == [[1.0, -2.0, 3.0], [0.0, 1.0, -50.0]], f"got {dequantize(q).tolist()}"

    def test_empty_tensors(self):
        """quantize of a (0, 3) array, per tensor or per channel, gives (0, 3) int8 values that dequantize to (0, 3)."""
        x = np.zeros((0, 3), dtype=np.float32)
        for axis in (None, 1):
            q = quantize(x, axis=axis)
            assert_shape(q.values, (0, 3), f"quantize(empty (0, 3), axis={axis}).values")
            assert np.all(np.asarray(q.scale) > 0), f"an empty tensor still needs a positive scale, got {q.scale}"
            assert_shape(dequantize(q), (0, 3), f"dequantize(quantize(empty, axis={axis}))")

    def test_a_tensor_is_quantized_like_its_array(self):
        """quantize(Tensor(x)) gives the same values and scale as quantize(x)."""
        x = random_array((3, 4), 16)
        a, b = quantize(Tensor(x)), quantize(x)
        assert np.array_equal(a.values, b.values) and np.array_equal(a.scale, b.scale), (
            "quantize(Tensor(x)) differs from quantize(x)")

    def test_other_widths_use_the_same_code(self):
        """quantize(x, bits=4) uses levels -8..7 (symmetric -7..7) with scale range/15, every element within scale/2."""
        x = random_array((200,), 17)
        q = quantize(x, bits=4)
        assert q.bits == 4 and q.values.min() >= -8 and q.values.max() <= 7, (
            f"bits=4: values must lie in [-8, 7], got [{q.values.min()}, {q.values.max()}] (bits recorded {q.bits})")
        assert_close(q.scale, np.float32((max(x.max(), 0) - min(x.min(), 0)) / 15), "bits=4: scale", rtol=1e-6)
        assert_within_half_a_step(x, q, "quantize(x, bits=4)")
        symmetric = quantize(x, bits=4, symmetric=True)
        assert symmetric.values.min() >= -7, f"bits=4 symmetric: -8 is not a level, got {symmetric.values.min()}"
        assert_within_half_a_step(x, symmetric, "quantize(x, bits=4, symmetric=True)")

    def test_nan_is_refused(self):
        """quantize of a tensor holding nan is a ValueError (its range is not finite)."""
        x = np.array([0.0, np.nan, 1.0], dtype=np.float32)
        raises_naming(lambda: quantize(x), ValueError, ["finite"], "quantize([0, nan, 1])")


# -- precision: channels and bits -------------------------------------------------------------------------------


def outlier_weight(seed: int = 20) -> np.ndarray:
    """A (32, 8) weight with small values, except output channel 5 (a column), 100x larger."""
    weight = random_array((32, 8), seed, scale=0.05)
    weight[:, 5] *= 100.0
    return weight


@pytest.mark.checkpoint("precision")
class TestPrecision:
    def test_per_channel_beats_per_tensor_on_an_outlier_channel(self):
        """Weight (32, 8) with one 100x column: the ordinary columns' max error is at least 10x smaller per channel (axis=1).

        Hint: per tensor, the outlier sets one scale for every column, and the small columns fall into a handful of levels.
        """
        weight = outlier_weight()
        ordinary = np.arange(8) != 5
        errors = {}
        for axis in (None, 1):
            q = quantize(weight, symmetric=True, axis=axis)
            errors[axis] = float(np.abs(dequantize(q) - weight)[:, ordinary].max())
        ratio = errors[None] / errors[1]
        assert ratio >= 10, (
            f"max error on the 7 ordinary columns: per tensor {errors[None]:.3g}, per channel {errors[1]:.3g}, a ratio "
            f"of {ratio:.1f}; expected at least 10 (one scale per output column)")

    def test_every_bit_removed_doubles_the_error(self):
        """Uniform x, 8 down to 2 bits: RMS error = scale/sqrt(12) (within 15%); each bit removed multiplies it by the ratio of the level counts, about 2.

        Hint: the step is the range over (qmax - qmin): removing a bit halves the number of levels, doubling the step.
        """
        x = np.random.default_rng(21).uniform(-1.0, 1.0, 20_000).astype(np.float32)
        for symmetric in (False, True):
            rms, steps = {}, {}
            for bits in range(8, 1, -1):
                q = quantize(x, bits=bits, symmetric=symmetric)
                qmin, qmax = quant_range(bits, symmetric)
                assert q.values.min() >= qmin and q.values.max() <= qmax, (
                    f"bits={bits}: values outside [{qmin}, {qmax}]: [{q.values.min()}, {q.values.max()}]")
                rms[bits] = float(np.sqrt(np.mean((dequantize(q).astype(np.float64) - x) ** 2)))
                steps[bits] = qmax - qmin  # the number of steps the range is cut into
                predicted = float(q.scale) / np.sqrt(12)  # rounding error spread evenly over [-scale/2, scale/2]
                assert abs(rms[bits] / predicted - 1) < 0.15, (
                    f"bits={bits}, symmetric={symmetric}: RMS error {rms[bits]:.4g}, expected about scale/sqrt(12) = "
                    f"{predicted:.4g}")
            ratios = {bits: rms[bits - 1] / rms[bits] for bits in range(8, 2, -1)}
            print(f"symmetric={symmetric}: RMS error per bit width {rms}")
            for bits, ratio in ratios.items():
                predicted = steps[bits] / steps[bits - 1]  # 255/127 = 2.01 from 8 to 7 bits; 3/1 from 3 to 2 symmetric
                assert abs(ratio / predicted - 1) < 0.1, (
                    f"symmetric={symmetric}: from {bits} to {bits - 1} bits the RMS error grew {ratio:.2f}x; the level "
                    f"counts predict {predicted:.2f}x")
                if bits > 4:
                    assert 1.9 <= ratio <= 2.2, (
                        f"symmetric={symmetric}: from {bits} to {bits - 1} bits the error should double, got {ratio:.2f}x")

    def test_a_quarter_of_the_bytes(self):
        """A (256, 64) float32 weight, 65536 bytes, quantized: 16384 bytes of int8 plus its scales and zero points."""
        weight = random_array((256, 64), 22)
        q = quantize(weight, symmetric=True)
        assert q.nbytes == 256 * 64 + 4 + 4, f"per tensor: expected 16392 bytes, got {q.nbytes}"
        q = quantize(weight, symmetric=True, axis=1)
        assert q.nbytes == 256 * 64 + 64 * (4 + 4), f"per channel: expected {256 * 64 + 64 * 8} bytes, got {q.nbytes}"
        assert q.nbytes / weight.nbytes < 0.27, f"{q.nbytes} bytes is {q.nbytes / weight.nbytes:.3f}x the float32 weight"


# -- observers ---------------------------------------------------------------------------------------------------


def batches_with_different_ranges():
    """Three batches: the minimum is in the first, the maximum in the second, the last has the smallest range."""
    rng = np.random.default_rng(30)
    first = rng.uniform(-3.0, 1.0, (8, 5)).astype(np.float32)
    second = rng.uniform(-1.0, 2.0, (8, 5)).astype(np.float32)
    last = rng.uniform(-0.5, 0.5, (3, 5)).astype(np.float32)
    first[2, 3], second[4, 1] = -3.0, 2.0
    return [first, second, last]


@pytest.mark.checkpoint("observers")
class TestObservers:
    def test_observing_leaves_the_batch_alone(self):
        """Neither observer writes into the batch it is shown; the percentile observer keeps a copy, not the caller's array.

        Hint: the caller may reuse its array for the next batch; keep np.array(values) (a copy), not a view of it.
        """
        batch = random_array((4, 3), 31)
        before = batch.copy()
        minmax, percentile = MinMaxObserver(), PercentileObserver(100)
        minmax.observe(batch)
        percentile.observe(batch)
        assert np.array_equal(batch, before), "an observer changed the batch it was shown"
        batch[...] = 1000.0  # the caller reuses its buffer
        assert percentile.range()[1] == pytest.approx(float(before.max())), (
            f"after the caller overwrote its array, PercentileObserver's range became {percentile.range()}: keep a copy")

    def test_min_max_over_every_batch(self):
        """MinMaxObserver over three batches: the range is (-3, 2), the min of the first and the max of the second, as Python floats; count 95 values.

        Hint: each observe() widens the range it already has; it does not start again from the batch.
        """
        observer = MinMaxObserver()
        for batch in batches_with_different_ranges():
            observer.observe(batch)
        low, high = observer.range()
        assert isinstance(low, float) and isinstance(high, float), (
            f"range() should give Python floats, got {type(low).__name__} and {type(high).__name__}")
        assert (low, high) == (-3.0, 2.0), f"MinMaxObserver over three batches: expected (-3.0, 2.0), got {(low, high)}"
        assert observer.count == 95, (
            f"MinMaxObserver.count after batches of 40, 40 and 15 values: expected 95 (values observed), got {observer.count}")

    def test_min_max_qparams(self):
        """MinMaxObserver.qparams(bits, symmetric) equals choose_qparams of its range."""
        observer = MinMaxObserver()
        for batch in batches_with_different_ranges():
            observer.observe(Tensor(batch))
        for bits, symmetric in ((8, False), (8, True), (4, False)):
            scale, zero_point = observer.qparams(bits, symmetric)
            expected_scale, expected_zero_point = choose_qparams(-3.0, 2.0, bits, symmetric)
            assert_close(scale, expected_scale, f"qparams({bits}, {symmetric}): scale", rtol=1e-6)
            assert int(zero_point) == int(expected_zero_point), f"qparams({bits}, {symmetric}): zero point"

    def test_empty_batches_change_nothing(self):
        """An empty (0, 5) batch between two others is skipped: the range is that of the other two."""
        observer = MinMaxObserver()
        observer.observe(np.array([[1.0, -2.0]]))
        observer.observe(np.zeros((0, 5), dtype=np.float32))
        observer.observe(np.array([0.5]))
        assert observer.range() == (-2.0, 1.0), f"expected (-2.0, 1.0), got {observer.range()}"
        percentile = PercentileObserver(100)
        percentile.observe(np.zeros((0, 5), dtype=np.float32))
        percentile.observe(np.array([3.0, -1.0]))
        assert percentile.range() == (-1.0, 3.0), f"PercentileObserver(100): expected (-1.0, 3.0), got {percentile.range()}"

    def test_nothing_observed(self):
        """range() of an observer that saw nothing (or only empty batches) is a ValueError for both observers."""
        for make in (MinMaxObserver, PercentileObserver):
            observer = make()
            observer.observe(np.zeros((0,), dtype=np.float32))
            raises_naming(observer.range, ValueError, [], f"{make.__name__}.range() with nothing observed")

    def test_nan_is_refused(self):
        """A batch holding nan or inf is a ValueError naming nan, for both observers (it would poison the range)."""
        for make in (MinMaxObserver, PercentileObserver):
            observer = make()
            observer.observe(np.array([1.0, 2.0]))
            raises_naming(lambda: observer.observe(np.array([0.5, np.nan])), ValueError, ["nan"],
                          f"{make.__name__}.observe([0.5, nan])")
            raises_naming(lambda: observer.observe(np.array([np.inf])), ValueError, ["nan"],
                          f"{make.__name__}.observe([inf])")

    def test_percentiles_of_all_batches(self):
        """PercentileObserver(99) over two batches holding 0..9999 between them: range = the 1st and 99th percentiles of all.

        Hint: p = 99 cuts the top 1% AND the bottom 1%: the low end is the (100 - p)-th percentile. np.percentile takes
        percents (99), not fractions (0.99).
        """
        values = np.random.default_rng(32).permutation(10_000).astype(np.float64)
        observer = PercentileObserver(99)
        observer.observe(values[:7000].reshape(70, 100))
        observer.observe(values[7000:])
        low, high = observer.range()
        assert isinstance(low, float) and isinstance(high, float), "range() should give Python floats"
        assert observer.count == 10_000, (
            f"PercentileObserver.count after batches of 7000 and 3000 values: expected 10000, got {observer.count}")
        expected = (np.percentile(values, 1), np.percentile(values, 99))
        assert_close(np.array([low, high]), np.array(expected), "PercentileObserver(99) over 0..9999", rtol=1e-9)

    def test_percentile_100_is_min_max(self):
        """PercentileObserver(100) gives the same range as MinMaxObserver over the same batches."""
        minmax, percentile = MinMaxObserver(), PercentileObserver(100)
        for batch in batches_with_different_ranges():
            minmax.observe(batch)
            percentile.observe(batch)
        assert percentile.range() == pytest.approx(minmax.range()), (
            f"PercentileObserver(100) {percentile.range()} vs MinMaxObserver {minmax.range()}")

    def test_the_percentile_is_checked(self):
        """PercentileObserver(50), (100.5) and (0.999) are ValueErrors naming the value (it is in percent, above 50)."""
        for bad in (50, 100.5, 0.999):
            raises_naming(lambda: PercentileObserver(bad), ValueError, [str(bad)], f"PercentileObserver({bad})")

    def test_clipping_outliers_buys_resolution(self):
        """Activations N(0, 1) plus one value of 1000: with PercentileObserver(99.9) the round-trip RMS error of the rest is 10x smaller.

        Hint: min/max lets the single 1000 stretch the scale to 1000/127 and the ordinary values share a few levels.
        """
        rng = np.random.default_rng(33)
        batches = [rng.standard_normal((50, 40)).astype(np.float32) for _ in range(4)]
        batches[1][7, 3] = 1000.0
        ordinary = np.concatenate([b.reshape(-1) for b in batches])
        ordinary = ordinary[ordinary < 100]
        errors = {}
        for name, observer in (("min/max", MinMaxObserver()), ("percentile", PercentileObserver(99.9))):
            for batch in batches:
                observer.observe(batch)
            scale, zero_point = observer.qparams(8)
            q = quantize_with(ordinary, scale, zero_point)
            errors[name] = float(np.sqrt(np.mean((dequantize(q) - ordinary) ** 2)))
        assert errors["min/max"] >= 10 * errors["percentile"], (
            f"RMS error of the ordinary values: min/max {errors['min/max']:.4g}, percentile {errors['percentile']:.4g}; "
            "expected the percentile observer to be at least 10x better")


# -- integer matmul ---------------------------------------------------------------------------------------------


def int8_array(shape, seed: int, low: int = -127, high: int = 127) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high + 1, size=shape).astype(np.int8)


def exact_matmul(a, b) -> np.ndarray:
    """The exact integer result, in int64 (numpy's integer matmul: slow, exact, fine for a test)."""
    return np.matmul(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))


@pytest.mark.checkpoint("integer_matmul")
class TestIntegerMatmul:
    def test_the_inputs_are_left_alone(self):
        """integer_matmul(a, b) leaves a and b as they were."""
        a, b = int8_array((3, 5), 40), int8_array((5, 2), 41)
        before = a.copy(), b.copy()
        integer_matmul(a, b)
        assert np.array_equal(a, before[0]) and np.array_equal(b, before[1]), "integer_matmul changed its inputs"

    def test_small_int8_product(self):
        """int8 (3, 5) @ int8 (5, 4): the exact integer result, as an int32 numpy array."""
        a, b = int8_array((3, 5), 42), int8_array((5, 4), 43)
        got = integer_matmul(a, b)
        assert isinstance(got, np.ndarray) and got.dtype == np.int32, (
            f"integer_matmul should return an int32 array (an int32 accumulator), got {type(got).__name__} of dtype "
            f"{getattr(got, 'dtype', None)}")
        assert np.array_equal(got, exact_matmul(a, b)), f"expected\n{exact_matmul(a, b)}\ngot\n{got}"

    def test_int8_sums_do_not_wrap(self):
        """A row of eight 127s times a column of eight 127s is 129032: far beyond int8, where numpy's int8 @ int8 would wrap.

        Hint: numpy multiplies int8 arrays in int8: 127 * 127 wraps to 1. Convert before multiplying.
        """
        a, b = np.full((1, 8), 127, dtype=np.int8), np.full((8, 1), 127, dtype=np.int8)
        got = integer_matmul(a, b)
        assert int(got[0, 0]) == 8 * 127 * 127, f"expected {8 * 127 * 127}, got {got[0, 0]}"

    def test_exact_where_float32_is_not(self):
        """K = 4096 products of int8 values in [100, 127]: sums near 5e7 > 2^24, where float32 skips odd integers; exact here.

        Hint: float32 has 24 bits of mantissa, so above 2^24 = 16,777,216 it can only hold even integers (above 2^25,
        multiples of 4). A float32 matmul over int8 data is exact only while K * 127 * 127 < 2^24 (K < 1041).
        """
        a, b = int8_array((3, 4096), 44, 100, 127), int8_array((4096, 5), 45, 100, 127)
        expected = exact_matmul(a, b)
        assert expected.max() > 2 ** 24 and np.any(expected % 4 != 0)  # the test's own premise: float32 cannot hold these
        got = integer_matmul(a, b)
        wrong = got.astype(np.int64) != expected
        assert not wrong.any(), (
            f"{int(wrong.sum())} of {expected.size} sums are off, by up to {int(np.abs(got - expected).max())}: a float32 "
            "accumulator rounds sums above 2^24; float64 holds every integer below 2^53")

    def test_centered_and_batched_operands(self):
        """int32 operands in [-255, 255] (x_q - zero point), a batch (2, 3, 7) @ (7, 4), and (4, 7) @ (2, 7, 6) as np.matmul broadcasts."""
        rng = np.random.default_rng(46)
        centered = rng.integers(-255, 256, (2, 3, 7)).astype(np.int32)
        weight = int8_array((7, 4), 47)
        got = integer_matmul(centered, weight)
        assert_shape(got, (2, 3, 4), "integer_matmul((2, 3, 7), (7, 4))")
        assert np.array_equal(got, exact_matmul(centered, weight)), "integer_matmul((2, 3, 7), (7, 4)) is not exact"
        filters, columns = int8_array((4, 7), 48), rng.integers(-255, 256, (2, 7, 6)).astype(np.int32)
        got = integer_matmul(filters, columns)
        assert_shape(got, (2, 4, 6), "integer_matmul((4, 7), (2, 7, 6))")
        assert np.array_equal(got, exact_matmul(filters, columns)), "integer_matmul((4, 7), (2, 7, 6)) is not exact"

    def test_empty_operands(self):
        """(2, 0) @ (0, 3) is a (2, 3) int32 array of zeros (a sum of no products), and (0, 4) @ (4, 3) is (0, 3).

        Hint: the overflow bound takes the largest |a| and |b|; an empty array has no largest element, so give
        max an initial value: np.abs(a).max(initial=0).
        """
        for a_shape, b_shape, expected in (((2, 0), (0, 3), (2, 3)), ((0, 4), (4, 3), (0, 3))):
            a, b = np.zeros(a_shape, dtype=np.int8), np.ones(b_shape, dtype=np.int8)
            got = integer_matmul(a, b)
            assert isinstance(got, np.ndarray) and got.dtype == np.int32, (
                f"integer_matmul({a_shape} @ {b_shape}) should be an int32 array, got {type(got).__name__} "
                f"{getattr(got, 'dtype', '')}")
            assert_shape(got, expected, f"integer_matmul({a_shape} @ {b_shape})")
            assert not got.any(), f"integer_matmul({a_shape} @ {b_shape}): a sum of no products is 0, got {got}"

    def test_float_arrays_are_refused(self):
        """integer_matmul of a float32 array is a TypeError naming float32: this op is for integers only."""
        raises_naming(lambda: integer_matmul(int8_array((2, 3), 49), np.ones((3, 2), dtype=np.float32)), TypeError,
                      ["float32"], "integer_matmul(int8, float32)")

    def test_sums_that_could_overflow_int32_are_refused(self):
        """K = 66,000 with |a| <= 255, |b| <= 127 fits int32 (exact); K = 67,000 of -255s could pass -2^31: an OverflowError naming K.

        Hint: the bound is K * max|a| * max|b|, with absolute values: negative sums overflow too.
        """
        fits = integer_matmul(np.full((1, 66_000), -255, dtype=np.int32), np.full((66_000, 1), 127, dtype=np.int8))
        assert int(fits[0, 0]) == -66_000 * 255 * 127, f"K = 66,000: expected {-66_000 * 255 * 127}, got {fits[0, 0]}"
        raises_naming(lambda: integer_matmul(np.full((1, 67_000), -255, dtype=np.int32),
                                             np.full((67_000, 1), 127, dtype=np.int8)),
                      OverflowError, ["67000"], "integer_matmul with K = 67,000")


# -- QuantizedLinear ----------------------------------------------------------------------------------------------


def float_linear(in_features: int, out_features: int, seed: int, bias: bool = True) -> Linear:
    layer = Linear(in_features, out_features, bias=bias, rng=np.random.default_rng(seed))
    if bias:
        layer.bias.data[...] = random_array((out_features,), seed + 1, scale=0.1)
    return layer


def integer_formula(layer: QuantizedLinear, x: np.ndarray) -> np.ndarray:
    """What a QuantizedLinear must compute, from what it stores, in exact integers then float64."""
    scale, zero_point = float(layer.input_scale), int(layer.input_zero_point)
    x_q = expected_levels(x, scale, zero_point, -128, 127).astype(np.int64)
    accumulated = exact_matmul(x_q - zero_point, layer.weight.values)
    out = accumulated * (np.float64(scale) * np.asarray(layer.weight.scale, dtype=np.float64))
    return out if layer.bias is None else out + layer.bias


def calibrated(layer: Linear, x: np.ndarray, per_channel: bool = True, bits: int = 8) -> QuantizedLinear:
    scale, zero_point = choose_qparams(x.min(), x.max(), bits)
    return QuantizedLinear(layer, scale, zero_point, bits=bits, per_channel=per_channel)


@pytest.mark.checkpoint("quantized_linear")
class TestQuantizedLinear:
    def test_the_float_layer_and_the_input_are_left_alone(self):
        """Building a QuantizedLinear and running it change neither the float layer's weight and bias nor the input."""
        layer = float_linear(6, 4, 50)
        weight, bias = layer.weight.data.copy(), layer.bias.data.copy()
        x = random_array((3, 6), 51)
        before = x.copy()
        calibrated(layer, x)(x)
        assert np.array_equal(layer.weight.data, weight) and np.array_equal(layer.bias.data, bias), (
            "QuantizedLinear changed the float layer's parameters")
        assert np.array_equal(x, before), "QuantizedLinear changed its input"

    def test_an_int8_weight_per_output_channel(self):
        """QuantizedLinear(Linear(16, 8)) keeps weight = a Quantized of int8 (16, 8), symmetric, one scale per output (axis 1); the input's scale float32, zero point int32.

        Hint: the weight is stored (in_features, out_features): its output channels are the COLUMNS, axis 1.
        """
        layer = float_linear(16, 8, 52)
        quantized = calibrated(layer, random_array((4, 16), 53))
        q = quantized.weight
        assert isinstance(q, Quantized), f"QuantizedLinear.weight should be a Quantized, got {type(q).__name__}"
        assert q.values.dtype == np.int8, f"the stored weight should be int8, got {q.values.dtype}"
        assert_shape(q.values, (16, 8), "QuantizedLinear.weight.values")
        assert q.axis == 1 and np.shape(q.scale) == (8,), (
            f"per channel, the weight needs one scale per output column (axis 1, shape (8,)); got axis {q.axis}, "
            f"scale shape {np.shape(q.scale)}")
        assert_close(q.scale, np.abs(layer.weight.data).max(axis=0) / 127, "weight scale = max|column| / 127", rtol=1e-6)
        assert np.all(np.asarray(q.zero_point) == 0), f"a symmetric weight has zero points 0, got {q.zero_point}"
        given = QuantizedLinear(layer, 0.05, 3)  # plain Python numbers
        for what, value, dtype in (("input_scale", given.input_scale, np.float32),
                                   ("input_zero_point", given.input_zero_point, np.int32)):
            assert isinstance(value, np.ndarray) and value.dtype == dtype and value.shape == (), (
                f"QuantizedLinear(layer, 0.05, 3).{what} should be a 0-d {np.dtype(dtype)} array, got "
                f"{type(value).__name__} {getattr(value, 'dtype', '')} {np.shape(value)}")

    def test_per_tensor_option(self):
        """per_channel=False: the weight has one scale, max|W| / 127."""
        layer = float_linear(16, 8, 54)
        q = calibrated(layer, random_array((4, 16), 55), per_channel=False).weight
        assert q.axis is None and np.shape(q.scale) == (), f"per tensor: axis None, one scale; got {q.axis}, {np.shape(q.scale)}"
        assert_close(q.scale, np.float32(np.abs(layer.weight.data).max() / 127), "per-tensor weight scale", rtol=1e-6)

    def test_it_keeps_nothing_of_the_float_layer(self):
        """The layer holds no Parameter, and everything it keeps (its nbytes, and a walk over its attributes) is < 0.27x the float layer.

        Hint: keep a copy of the bias's data, not the float Linear or its Parameters: a Parameter or a reference to the
        float layer keeps the float32 weight alive, four bytes per weight.
        """
        layer = float_linear(256, 128, 56)
        quantized = calibrated(layer, random_array((8, 256), 57))
        assert quantized.parameters() == [], (
            f"QuantizedLinear should own no Parameter (nothing trains it); it has {len(quantized.parameters())}")
        walked = kept_bytes(quantized)
        assert quantized.nbytes == walked, (
            f"QuantizedLinear.nbytes says {quantized.nbytes} bytes, but its attributes hold {walked} bytes of arrays")
        ratio = walked / float_bytes(layer)
        assert ratio <= 0.27, (
            f"QuantizedLinear(256, 128) keeps {walked} bytes, {ratio:.3f}x the float layer's {float_bytes(layer)}; "
            "expected about 0.26x (int8 weight, per-channel scales and zero points, float32 bias)")

    def test_the_bias_is_a_copy(self):
        """Training the float Linear on after quantizing (its bias updated in place) leaves the QuantizedLinear's bias and outputs as they were.

        Hint: `self.bias = layer.bias.data` keeps the float layer's own array: the next optimizer step on the float
        model changes the quantized one too. Keep a float32 copy, np.array(layer.bias.data, dtype=np.float32).
        """
        layer = float_linear(6, 4, 77)
        x = random_array((3, 6), 78)
        quantized = calibrated(layer, x)
        bias, before = np.array(quantized.bias, copy=True), quantized(x).data.copy()
        layer.bias.data -= 0.5  # an SGD step on the float model, in place
        assert np.array_equal(quantized.bias, bias), (
            f"after the float layer's bias moved by -0.5 in place, QuantizedLinear.bias moved too: {bias} became "
            f"{quantized.bias}; keep a copy, not the float layer's array")
        assert_close(quantized(x), before, "QuantizedLinear output after the float layer's bias changed", rtol=0, atol=0)

    def test_the_integer_formula(self):
        """forward(x (5, 16)) = s_x * s_w * ((x_q - z_x) @ W_q) + bias, a float32 Tensor (5, 8) made by from_op("quantized_linear").

        Hint: x ~ s_x (x_q - z_x) and W ~ s_w W_q, so the product needs BOTH scales: s_x * s_w, one per output column.
        """
        layer = float_linear(16, 8, 58)
        x = random_array((5, 16), 59) + 0.5
        quantized = calibrated(layer, x)
        out = assert_made_by_op(lambda: quantized(Tensor(x)), "QuantizedLinear(16, 8) of x (5, 16)", op="quantized_linear")
        assert_tensor(out, "QuantizedLinear output", shape=(5, 8), dtype=np.float32)
        assert_close(out, integer_formula(quantized, x), "QuantizedLinear vs the integer formula", rtol=1e-5, atol=1e-6)
        assert_close(quantized(x.T.copy().T), out, "QuantizedLinear of a transposed (non-contiguous) view", rtol=0, atol=0)
        constant = quantized(Tensor(x, requires_grad=True))
        assert not constant.requires_grad, (
            "a quantized layer's output should be a constant (Tensor.from_op(data, \"quantized_linear\", ()), no "
            "parents): nothing trains through it, and no backward rule exists")

    def test_the_matmul_is_integer(self):
        """One forward calls integer_matmul exactly once: the int8 weight is never turned back into floats for the product.

        Hint: dequantize(weight) followed by a float matmul gives nearly the same numbers, but it is not what int8
        hardware does, and it needs the float weight again. Quantize x, then integer_matmul.
        """
        quantized = calibrated(float_linear(16, 8, 60), random_array((4, 16), 61))
        with count_calls(quantization_module, "integer_matmul") as counter:
            quantized(random_array((4, 16), 62))
        assert counter.calls == 1, f"integer_matmul was called {counter.calls} times in one forward; expected 1"

    def test_close_to_the_float_layer(self):
        """The int8 layer's output is within 2% of the float layer's output range, per channel and per tensor."""
        layer = float_linear(64, 32, 63)
        x = random_array((20, 64), 64)
        expected = layer(Tensor(x)).data
        for per_channel in (True, False):
            got = calibrated(layer, x, per_channel).forward(x).data
            error = np.abs(got - expected).max() / np.abs(expected).max()
            assert error < 0.02, f"per_channel={per_channel}: max error {error:.3%} of the output range; expected < 2%"

    def test_per_channel_wins_on_an_outlier_output(self):
        """A layer whose output channel 5 has 100x larger weights: on the other outputs, per channel is at least 10x more accurate."""
        layer = float_linear(32, 8, 65)
        layer.weight.data[...] = outlier_weight()
        x = random_array((64, 32), 66)
        expected = layer(Tensor(x)).data
        ordinary = np.arange(8) != 5
        errors = {per_channel: float(np.abs(calibrated(layer, x, per_channel)(x).data - expected)[:, ordinary].max())
                  for per_channel in (True, False)}
        assert errors[False] >= 10 * errors[True], (
            f"max output error on the 7 ordinary channels: per tensor {errors[False]:.3g}, per channel {errors[True]:.3g}; "
            "expected per channel to be at least 10x smaller")

    def test_no_bias(self):
        """Linear(..., bias=False) quantizes to a layer with bias None whose output is the formula without a bias."""
        layer = float_linear(16, 8, 67, bias=False)
        x = random_array((3, 16), 68)
        quantized = calibrated(layer, x)
        assert quantized.bias is None, f"a layer without bias keeps bias None, got {quantized.bias!r}"
        assert_close(quantized(x), integer_formula(quantized, x), "QuantizedLinear without bias", rtol=1e-5, atol=1e-6)

    def test_inputs_beyond_the_calibrated_range_saturate(self):
        """Calibrated on [0, 1], an input of 5.0 acts as 1.0 (it clips to the top level) instead of wrapping around."""
        layer = float_linear(4, 3, 69)
        quantized = QuantizedLinear(layer, *choose_qparams(0.0, 1.0))
        x = np.array([[5.0, 0.5, 0.0, 1.0]], dtype=np.float32)
        clipped = np.array([[1.0, 0.5, 0.0, 1.0]], dtype=np.float32)
        assert_close(quantized(x), quantized(clipped), "an input beyond the calibrated range", rtol=1e-6, atol=1e-7)

    def test_any_leading_axes(self):
        """Inputs (16,), (2, 3, 16) and a Tensor give outputs (8,), (2, 3, 8): the same rows as a (6, 16) batch."""
        quantized = calibrated(float_linear(16, 8, 70), random_array((4, 16), 71))
        x = random_array((2, 3, 16), 72)
        flat = quantized(x.reshape(6, 16)).data
        assert_tensor(quantized(x), "QuantizedLinear of (2, 3, 16)", shape=(2, 3, 8))
        assert_close(quantized(Tensor(x)).data.reshape(6, 8), flat, "QuantizedLinear of (2, 3, 16) vs (6, 16)")
        assert_tensor(quantized(x[0, 0]), "QuantizedLinear of (16,)", shape=(8,))
        assert_close(quantized(x[0, 0]), flat[0], "QuantizedLinear of one sample (16,)")

    def test_the_wrong_width_is_refused(self):
        """An input (3, 15), or a 0-d one, for in_features 16 is a ValueError naming 16 and the shape."""
        quantized = calibrated(float_linear(16, 8, 73), random_array((4, 16), 74))
        raises_naming(lambda: quantized(np.zeros((3, 15), dtype=np.float32)), ValueError, ["16", "(3, 15)"],
                      "QuantizedLinear(16, 8) of (3, 15)")
        raises_naming(lambda: quantized(Tensor(np.float32(1.0))), ValueError, ["16", "()"],
                      "QuantizedLinear(16, 8) of a 0-d input (it has no last dimension)")

    def test_four_bits(self):
        """bits=4: weight levels in [-7, 7], inputs (3x beyond the calibrated range) clipped to 4-bit levels [-8, 7], a larger error than 8 bits."""
        layer = float_linear(32, 8, 75)
        x = random_array((10, 32), 76)
        expected = layer(Tensor(x)).data
        four = calibrated(layer, x, bits=4)
        assert four.weight.values.min() >= -7 and four.weight.values.max() <= 7, (
            f"bits=4 symmetric weight levels lie in [-7, 7], got [{four.weight.values.min()}, {four.weight.values.max()}]")
        scale, zero_point = float(four.input_scale), int(four.input_zero_point)
        x_q = expected_levels(3 * x, scale, zero_point, -8, 7).astype(np.int64)
        formula = exact_matmul(x_q - zero_point, four.weight.values) * (scale * four.weight.scale.astype(np.float64))
        assert_close(four(3 * x), formula + four.bias, "bits=4: the integer formula with 4-bit input levels [-8, 7]",
                     rtol=1e-5, atol=1e-6)
        errors = [np.abs(calibrated(layer, x, bits=bits)(x).data - expected).max() for bits in (8, 4)]
        assert errors[1] > 4 * errors[0], f"max error at 8 bits {errors[0]:.3g}, at 4 bits {errors[1]:.3g}"


# -- QuantizedConv2d ----------------------------------------------------------------------------------------------


def float_conv(in_channels: int, out_channels: int, kernel_size, seed: int, stride=1, padding=0, bias=True) -> Conv2d:
    conv = Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias,
                  rng=np.random.default_rng(seed))
    if bias:
        conv.bias.data[...] = random_array((out_channels,), seed + 1, scale=0.1)
    return conv


def conv_formula(layer: QuantizedConv2d, x: np.ndarray) -> np.ndarray:
    """What a QuantizedConv2d must compute: the centered input zero-padded (0 is 0.0), windows times filters in int64."""
    scale, zero_point = float(layer.input_scale), int(layer.input_zero_point)
    centered = expected_levels(x, scale, zero_point, -128, 127).astype(np.int64) - zero_point  # (N, C, H, W)
    (ph, pw), (sh, sw) = layer.padding, layer.stride
    padded = np.pad(centered, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(padded, layer.weight.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]  # (N, C, Ho, Wo, kh, kw)
    accumulated = np.einsum("nchwij,ocij->nohw", windows, layer.weight.values.astype(np.int64))
    out = accumulated * per_channel(scale * np.asarray(layer.weight.scale, dtype=np.float64),
                                    None if layer.weight.axis is None else 1, 4)
    return out if layer.bias is None else out + layer.bias.reshape(1, -1, 1, 1)


def calibrated_conv(conv: Conv2d, x: np.ndarray, per_channel: bool = True) -> QuantizedConv2d:
    return QuantizedConv2d(conv, *choose_qparams(x.min(), x.max()), per_channel=per_channel)


@pytest.mark.checkpoint("quantized_conv2d")
class TestQuantizedConv2d:
    def test_the_float_layer_and_the_input_are_left_alone(self):
        """Building a QuantizedConv2d and running it change neither the float Conv2d nor the input."""
        conv = float_conv(2, 3, 3, 100, padding=1)
        weight = conv.weight.data.copy()
        x = random_array((2, 2, 5, 5), 101)
        before = x.copy()
        calibrated_conv(conv, x)(x)
        assert np.array_equal(conv.weight.data, weight), "QuantizedConv2d changed the float layer's weight"
        assert np.array_equal(x, before), "QuantizedConv2d changed its input"

    def test_an_int8_weight_per_output_channel(self):
        """QuantizedConv2d(Conv2d(3, 4, 3)): int8 weight (4, 3, 3, 3), symmetric, one scale per output channel (axis 0).

        Hint: a Conv2d weight is (out_channels, in_channels, kh, kw): its output channels are axis 0, unlike Linear's.
        """
        conv = float_conv(3, 4, 3, 102)
        q = calibrated_conv(conv, random_array((2, 3, 6, 6), 103)).weight
        assert isinstance(q, Quantized) and q.values.dtype == np.int8, "QuantizedConv2d.weight should be a Quantized of int8"
        assert_shape(q.values, (4, 3, 3, 3), "QuantizedConv2d.weight.values")
        assert q.axis == 0 and np.shape(q.scale) == (4,), (
            f"one scale per output channel: axis 0, shape (4,); got axis {q.axis}, scale shape {np.shape(q.scale)}")
        assert_close(q.scale, np.abs(conv.weight.data).max(axis=(1, 2, 3)) / 127, "scale = max|filter| / 127", rtol=1e-6)
        per_tensor = QuantizedConv2d(conv, *choose_qparams(-1.0, 1.0), per_channel=False).weight
        assert per_tensor.axis is None and np.shape(per_tensor.scale) == (), "per_channel=False: one scale"

    def test_the_integer_formula_with_stride_and_padding(self):
        """Positive inputs (zero point -128), stride (2, 1), padding 1: output = combined scale * integer convolution + bias.

        Hint: quantize and center the input BEFORE padding: im2col pads with 0, and in the centered levels 0 is 0.0. Padding
        the raw levels x_q with 0 pads with -zero_point * scale, here 128 levels.
        """
        conv = float_conv(3, 4, 3, 104, stride=(2, 1), padding=1)
        x = np.abs(random_array((2, 3, 7, 6), 105)) + 0.2
        quantized = calibrated_conv(conv, x)
        assert int(quantized.input_zero_point) == -128, "the premise: positive inputs put 0.0 at level -128"
        out = assert_made_by_op(lambda: quantized(Tensor(x)), "QuantizedConv2d of (2, 3, 7, 6)", op="quantized_conv2d")
        assert_tensor(out, "QuantizedConv2d output", shape=(2, 4, 4, 6), dtype=np.float32)
        assert_close(out, conv_formula(quantized, x), "QuantizedConv2d vs the integer formula", rtol=1e-5, atol=1e-6)

    def test_close_to_the_float_layer(self):
        """With padding 1, the int8 convolution is within 2% of the float output range, at the border too."""
        conv = float_conv(4, 6, 3, 106, padding=1)
        x = np.abs(random_array((3, 4, 6, 6), 107))
        expected = conv(Tensor(x)).data
        for per_channel in (True, False):
            got = calibrated_conv(conv, x, per_channel)(x).data
            error = np.abs(got - expected).max() / np.abs(expected).max()
            assert error < 0.02, f"per_channel={per_channel}: max error {error:.3%} of the output range; expected < 2%"

    def test_the_matmul_is_integer(self):
        """One forward calls integer_matmul exactly once, for every image, filter and position."""
        quantized = calibrated_conv(float_conv(2, 3, 3, 108), random_array((2, 2, 5, 5), 109))
        with count_calls(quantization_module, "integer_matmul") as counter:
            quantized(random_array((4, 2, 5, 5), 110))
        assert counter.calls == 1, f"integer_matmul was called {counter.calls} times in one forward; expected 1"

    def test_it_keeps_nothing_of_the_float_layer(self):
        """QuantizedConv2d(Conv2d(32, 32, 3)) owns no Parameter, reports its nbytes honestly, and keeps < 0.27x the float bytes."""
        conv = float_conv(32, 32, 3, 111)
        quantized = calibrated_conv(conv, random_array((1, 32, 5, 5), 112))
        assert quantized.parameters() == [], f"QuantizedConv2d should own no Parameter, it has {len(quantized.parameters())}"
        walked = kept_bytes(quantized)
        assert quantized.nbytes == walked, f"nbytes says {quantized.nbytes}, but the layer holds {walked} bytes of arrays"
        assert walked / float_bytes(conv) <= 0.27, (
            f"QuantizedConv2d(32, 32, 3) keeps {walked} bytes, {walked / float_bytes(conv):.3f}x the float layer")

    def test_no_bias_and_the_wrong_input(self):
        """Without a bias the formula has none; an input with 2 channels for a 3-channel filter is a ValueError naming both shapes."""
        conv = float_conv(3, 2, 2, 113, bias=False)
        x = random_array((1, 3, 4, 4), 114)
        quantized = calibrated_conv(conv, x)
        assert quantized.bias is None, f"a Conv2d without bias keeps bias None, got {quantized.bias!r}"
        assert_close(quantized(x), conv_formula(quantized, x), "QuantizedConv2d without bias", rtol=1e-5, atol=1e-6)
        raises_naming(lambda: quantized(np.zeros((1, 2, 4, 4), dtype=np.float32)), ValueError, ["(1, 2, 4, 4)"],
                      "QuantizedConv2d(3 -> 2) of a (1, 2, 4, 4) input")


# -- quantize_model ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    """The 64-128-10 MLP of the 1986 milestone, trained quickly (10 epochs, seeded), with its data and float accuracy."""
    images, labels = load_digits(flatten=True)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0)
    rng = np.random.default_rng(86)
    model = Sequential(Linear(64, 128, rng=rng), ReLU(), Linear(128, 10, rng=rng))
    optimizer, shuffle = Adam(model.parameters(), lr=2e-3), np.random.default_rng(1986)
    for _ in range(10):
        train_epoch(model, CrossEntropyLoss(), optimizer, make_batches(x_train, y_train, 32, shuffle))
    model.eval()
    float_accuracy = accuracy(model(Tensor(x_test)), y_test)
    calibration = [x_train[start:start + 64] for start in range(0, 512, 64)]
    return model, calibration, x_test, y_test, float_accuracy


class GraphProbe(Module):
    """Passes its input on, noting for each call whether that input records a graph (requires_grad)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(bool(x.requires_grad))
        return x


class Encoder(Module):
    """A nested model: a Sequential inside, a head, and one Linear used twice."""

    def __init__(self, rng):
        super().__init__()
        self.body = Sequential(Linear(6, 8, rng=rng), ReLU())
        self.shared = Linear(8, 8, rng=rng)
        self.head = Linear(8, 3, rng=rng)

    def forward(self, x):
        h = self.body(x)
        h = self.shared(ReLU()(self.shared(h)))
        return self.head(h)


@pytest.mark.checkpoint("quantize_model")
class TestQuantizeModel:
    def test_the_float_model_is_left_alone(self, digits):
        """After quantize_model(model, ...), model still holds its Linears, gives the same outputs and keeps its mode."""
        model, calibration, x_test, _, _ = digits
        before = model(Tensor(x_test[:20])).data.copy()
        model.train()
        try:
            quantize_model(model, calibration)
            assert model.training, "quantize_model switched the float model to eval mode: it should work on a copy"
        finally:
            model.eval()
        assert all(isinstance(m, Linear) for m in (model[0], model[2])), (
            f"quantize_model replaced the float model's own layers: {model!r}; deep-copy the model first")
        assert_close(model(Tensor(x_test[:20])), before, "the float model's outputs after quantize_model", rtol=0, atol=0)

    def test_every_linear_is_converted(self, digits):
        """quantize_model(MLP in training mode) returns a model in eval mode with no Linear left: QuantizedLinear at 0 and 2, no Parameter."""
        model, calibration, _, _, _ = digits
        model.train()
        try:
            quantized = quantize_model(model, calibration)
        finally:
            model.eval()
        assert isinstance(quantized, Module), f"quantize_model should return a Module, got {type(quantized).__name__}"
        kinds = [type(m).__name__ for m in quantized.modules()]
        assert "Linear" not in kinds and kinds.count("QuantizedLinear") == 2, f"modules after quantize_model: {kinds}"
        assert isinstance(quantized[0], QuantizedLinear) and isinstance(quantized[2], QuantizedLinear), (
            f"quantized[0] and quantized[2] should be QuantizedLinear (Sequential's list too), got {quantized!r}")
        assert quantized.parameters() == [], f"a fully quantized MLP has no Parameters, got {len(quantized.parameters())}"
        assert not any(m.training for m in quantized.modules()), "quantize_model should return the copy in eval mode"

    def test_calibration_runs_in_eval_mode(self):
        """With Dropout(0.5) in a model left in training mode, the layer after it is calibrated on eval activations (no dropout)."""
        rng = np.random.default_rng(83)
        model = Sequential(Linear(8, 16, rng=rng), ReLU(), Dropout(0.5, rng=rng), Linear(16, 4, rng=rng)).train()
        x = random_array((32, 8), 84)
        quantized = quantize_model(model, [x])
        hidden = np.maximum(model[0](Tensor(x)).data, 0)  # what reaches the last Linear in eval mode
        scale, _ = choose_qparams(hidden.min(), hidden.max())
        assert_close(quantized[3].input_scale, scale, "the last layer's input scale, calibrated without dropout",
                     rtol=1e-5)

    def test_calibration_records_no_graph(self):
        """During calibration the activations carry no autograd graph: the output of a Linear reaches the next module with requires_grad False.

        Hint: calibration only looks at activations. Run the batches under `with no_grad():`, or every batch
        builds a graph (and keeps its arrays alive) that nothing will ever run backward through.
        """
        rng = np.random.default_rng(85)
        model = Sequential(Linear(8, 16, rng=rng), GraphProbe(), ReLU(), Linear(16, 4, rng=rng))
        quantized = quantize_model(model, [random_array((4, 8), 86), random_array((4, 8), 87)])
        probe = quantized[1]
        assert probe.seen == [False, False], (
            f"the Linear's outputs during calibration had requires_grad {probe.seen}; expected [False, False] (no graph)")

    def test_each_layer_is_calibrated_on_all_batches(self, digits):
        """Layer 0's input range is that of every calibration batch; layer 2's that of the hidden ReLU outputs of every batch.

        Hint: the last calibration batch here is small and dim; a range taken from it alone clips most activations.
        """
        model, calibration, _, _, _ = digits
        batches = calibration[:3] + [calibration[3][:4] * 0.25]
        quantized = quantize_model(model, batches)
        first = np.concatenate(batches)
        hidden = np.concatenate([np.maximum(model[0](Tensor(b)).data, 0) for b in batches])
        for position, inputs in ((0, first), (2, hidden)):
            scale, zero_point = choose_qparams(inputs.min(), inputs.max())
            layer = quantized[position]
            assert_close(layer.input_scale, scale, f"layer {position}: the input scale from every calibration batch",
                         rtol=1e-5)
            assert int(layer.input_zero_point) == int(zero_point), (
                f"layer {position}: input zero point expected {zero_point}, got {layer.input_zero_point}")

    def test_int8_costs_at_most_one_point_of_accuracy(self, digits):
        """Post-training int8 of the trained digits MLP (per channel and per tensor) loses at most 1 point of test accuracy."""
        model, calibration, x_test, y_test, float_accuracy = digits
        assert float_accuracy > 0.95, f"the float MLP only reached {float_accuracy:.2%}: the training recipe is broken"
        for per_channel in (True, False):
            quantized = quantize_model(model, calibration, per_channel=per_channel)
            axis = 1 if per_channel else None
            assert quantized[0].weight.axis == axis and quantized[2].weight.axis == axis, (
                f"quantize_model(per_channel={per_channel}): the weights should be quantized with axis {axis}, got "
                f"{quantized[0].weight.axis} and {quantized[2].weight.axis}")
            got = accuracy(quantized(Tensor(x_test)), y_test)
            print(f"per_channel={per_channel}: float {float_accuracy:.2%}, int8 {got:.2%}")
            assert got >= float_accuracy - 0.01, (
                f"per_channel={per_channel}: int8 test accuracy {got:.2%}, float {float_accuracy:.2%}; at most 1 point "
                "may be lost")

    def test_outputs_close_to_the_float_model(self, digits):
        """The int8 MLP's logits are within 3% of the float logits' range, and agree on the predicted digit for 99% of the test set."""
        model, calibration, x_test, _, _ = digits
        expected = model(Tensor(x_test)).data
        got = quantize_model(model, calibration)(Tensor(x_test)).data
        error = np.abs(got - expected).max() / np.abs(expected).max()
        agree = np.mean(got.argmax(axis=1) == expected.argmax(axis=1))
        assert error < 0.03 and agree >= 0.99, (
            f"int8 logits differ by up to {error:.2%} of the float range, and agree on {agree:.2%} of the predictions")

    def test_nested_shared_and_root_layers(self):
        """Linears inside a Sequential inside a Module, a Linear used twice (converted once, the same object), and a bare Linear."""
        model = Encoder(np.random.default_rng(80))
        x = random_array((16, 6), 81)
        quantized = quantize_model(model, [x[:8], x[8:]])
        child, listed = getattr(quantized.body, "0"), quantized.body.layers[0]
        assert isinstance(child, QuantizedLinear) and child is listed, (
            f"the Linear inside the Sequential should become ONE QuantizedLinear, both its child '0' ({child!r}) and "
            f"the first of its layers ({listed!r})")
        assert isinstance(quantized.shared, QuantizedLinear) and isinstance(quantized.head, QuantizedLinear), (
            f"every Linear attribute should be converted: {quantized!r}")
        assert [type(m).__name__ for m in quantized.modules()].count("QuantizedLinear") == 3, (
            "the shared Linear should become ONE QuantizedLinear")
        assert_close(quantized(x).data, model(Tensor(x)).data, "the quantized nested model", rtol=0.05, atol=0.05)
        root = quantize_model(model.head, [random_array((4, 8), 82)])
        assert isinstance(root, QuantizedLinear), f"quantize_model(Linear) should return a QuantizedLinear, got {root!r}"

    def test_a_cnn(self, digits):
        """A CNN (Conv2d, ReLU, MaxPool2d, Flatten, Linear) on digit images: its Conv2d and Linear converted, logits within 3%."""
        _, _, x_test, _, _ = digits
        images = x_test.reshape(-1, 1, 8, 8)
        rng = np.random.default_rng(85)
        model = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10, rng=rng))
        quantized = quantize_model(model, [images[:64], images[64:128]])
        assert isinstance(quantized[0], QuantizedConv2d) and isinstance(quantized[4], QuantizedLinear), (
            f"expected QuantizedConv2d at 0 and QuantizedLinear at 4: {quantized!r}")
        expected = model(Tensor(images)).data
        error = np.abs(quantized(Tensor(images)).data - expected).max() / np.abs(expected).max()
        assert error < 0.03, f"the int8 CNN's logits differ by up to {error:.2%} of the float range"

    def test_observer_and_bits_options(self, digits):
        """observer=lambda: PercentileObserver(99.9) narrows the input ranges; bits=4 gives 4-bit layers and larger errors."""
        model, calibration, x_test, _, _ = digits
        minmax = quantize_model(model, calibration)
        narrow = quantize_model(model, calibration, observer=lambda: PercentileObserver(99.9))
        assert float(narrow[2].input_scale) < float(minmax[2].input_scale), (
            f"with PercentileObserver(99.9) layer 2's input scale should be smaller than min/max's "
            f"{float(minmax[2].input_scale):.4g}, got {float(narrow[2].input_scale):.4g}")
        four = quantize_model(model, calibration, bits=4)
        assert four[0].bits == 4 and four[0].weight.values.max() <= 7, "bits=4 should reach every layer"
        expected = model(Tensor(x_test)).data
        errors = [np.abs(q(Tensor(x_test)).data - expected).max() for q in (minmax, four)]
        assert errors[1] > 4 * errors[0], f"max logit error at 8 bits {errors[0]:.3g}, at 4 bits {errors[1]:.3g}"

    def test_layers_without_calibration_data(self, digits):
        """No calibration batch at all, or a layer the forward never reaches, is a ValueError naming the layer."""
        model, _, _, _, _ = digits
        raises_naming(lambda: quantize_model(model, []), ValueError, ["'0'"], "quantize_model(model, [])")

        class Unused(Module):
            def __init__(self):
                super().__init__()
                self.used, self.spare = Linear(4, 2), Linear(4, 2)

            def forward(self, x):
                return self.used(x)

        raises_naming(lambda: quantize_model(Unused(), [np.ones((2, 4), dtype=np.float32)]), ValueError, ["spare"],
                      "quantize_model of a model whose layer 'spare' is never called")


# -- optimize -----------------------------------------------------------------------------------------------------

BYTES_BUDGET = 0.27  # the reference keeps 0.254x (int8 weights; per-channel scales, zero points and float32 biases)


def budget_model() -> Sequential:
    """A small CNN whose weights are large enough to dominate: 8x8 images of 8 channels, two convolutions, two Linears."""
    rng = np.random.default_rng(90)
    return Sequential(Conv2d(8, 32, 3, padding=1, rng=rng), ReLU(), Conv2d(32, 64, 3, padding=1, rng=rng), ReLU(),
                      MaxPool2d(2), Flatten(), Linear(64 * 4 * 4, 256, rng=rng), ReLU(), Linear(256, 10, rng=rng))


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    @pytest.mark.budget
    def test_a_quarter_of_the_bytes(self):
        """A CNN (two Conv2d, two Linear) quantized per channel keeps at most 0.27x the bytes of its float32 parameters (measured)."""
        model = budget_model()
        calibration = [np.abs(random_array((4, 8, 8, 8), 91 + i)) for i in range(2)]
        quantized = quantize_model(model, calibration)
        kept, original = kept_bytes(quantized), float_bytes(model)
        ratio = kept / original
        print(f"float32 {original} bytes, int8 {kept} bytes: {ratio:.4f}x")
        assert ratio <= BYTES_BUDGET, (
            f"the quantized CNN keeps {kept} bytes, {ratio:.3f}x the float model's {original}; the budget is "
            f"{BYTES_BUDGET}x. Look for a float weight, a Parameter or a whole float layer left in a quantized layer")
        x = np.abs(random_array((4, 8, 8, 8), 93))
        expected = model(Tensor(x)).data
        error = np.abs(quantized(x).data - expected).max() / np.abs(expected).max()
        assert error < 0.03, f"the quantized CNN's outputs differ by up to {error:.2%} of the float range"

    def test_layer_nbytes_add_up(self):
        """The quantized model's layers report nbytes that add up to everything the model keeps."""
        rng = np.random.default_rng(94)
        model = Sequential(Conv2d(2, 4, 3, rng=rng), Flatten(), Linear(16, 4, bias=False, rng=rng))
        quantized = quantize_model(model, [random_array((3, 2, 4, 4), 95)])
        reported = sum(m.nbytes for m in quantized.modules() if isinstance(m, (QuantizedConv2d, QuantizedLinear)))
        assert reported == kept_bytes(quantized), (
            f"the layers report {reported} bytes, but the model holds {kept_bytes(quantized)} bytes of arrays")

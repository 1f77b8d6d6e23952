"""Kata 09 · Convolutions: the ordered suite. Run `python -m pytest katas/09_convolutions`.

Ground truths here are the test's own: hand-computed values, and a convolution written
as a sum over kernel offsets of shifted slices (a third formulation, neither loops nor im2col).
"""

import numpy as np
import pytest

from harness.budgets import assert_time_ratio, peak_bytes
from harness.checks import assert_close, assert_made_by_op, assert_shape, assert_tensor, gradcheck, raises_naming
from tinytorch.autograd import BACKWARD_RULES
from tinytorch.convolutions import (
    AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d, avg_pool2d, batch_norm2d, col2im, conv2d, conv2d_loops,
    conv2d_shape, im2col, max_pool2d, window_output_size,
)
from tinytorch.layers import Module, Parameter
from tinytorch.tensor import Tensor


def random_array(shape, seed: int, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def as_pair(value) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


def shift_and_add_conv(x, weight, bias=None, stride=1, padding=0) -> np.ndarray:
    """The test's own convolution: for each kernel offset (i, j), a strided slice of the padded input
    times the filters' (i, j) entries, summed over offsets. float64."""
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    o, _, kh, kw = weight.shape
    padded = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (padded.shape[2] - kh) // sh + 1, (padded.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            shifted = padded[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]  # (N, C, Ho, Wo)
            out += np.einsum("nchw,oc->nohw", shifted, weight[:, :, i, j])
    return out if bias is None else out + np.asarray(bias).reshape(1, o, 1, 1)


def assert_raises_naming(call, fragments, what: str, errors=(ValueError,)) -> None:
    """call() raises one of `errors` (ValueError unless told), and its message mentions every fragment."""
    raises_naming(call, errors, fragments, what)


# (what, x shape, weight shape, stride, padding, bias): the cases every conv2d test runs over.
CASES = [
    ("3x3, stride 1, no padding", (2, 3, 5, 5), (4, 3, 3, 3), 1, 0, True),
    ("3x3, padding 1", (2, 2, 4, 4), (3, 2, 3, 3), 1, 1, True),
    ("3x3, padding 2", (1, 2, 3, 4), (2, 2, 3, 3), 1, 2, True),
    ("3x3, stride 2, padding 1", (2, 2, 5, 5), (3, 2, 3, 3), 2, 1, True),
    ("3x3, stride 3: rows and columns the windows skip", (1, 1, 8, 8), (2, 1, 3, 3), 3, 0, True),
    ("stride 2 that does not divide the input", (1, 2, 6, 7), (2, 2, 3, 3), 2, 0, True),
    ("rectangular 2x3 kernel", (2, 2, 4, 5), (3, 2, 2, 3), 1, 0, True),
    ("3x1 kernel, stride (2, 1), padding (1, 0)", (2, 2, 6, 4), (2, 2, 3, 1), (2, 1), (1, 0), True),
    ("1x1 kernel: a linear layer at every pixel", (2, 3, 3, 4), (4, 3, 1, 1), 1, 0, True),
    ("1x1 kernel, stride 2, padding 1", (1, 2, 4, 5), (3, 2, 1, 1), 2, 1, True),
    ("non-square input 3x6, padding (2, 1)", (2, 2, 3, 6), (2, 2, 3, 3), 1, (2, 1), True),
    ("stride (1, 2), padding (0, 2), 2x2 kernel", (1, 2, 4, 5), (2, 2, 2, 2), (1, 2), (0, 2), True),
    ("batch 1, one channel", (1, 1, 5, 5), (1, 1, 3, 3), 1, 1, True),
    ("many channels: 6 in, 5 out", (2, 6, 3, 3), (5, 6, 3, 3), 1, 1, True),
    ("kernel as large as the padded input", (1, 2, 3, 3), (2, 2, 5, 5), 1, 1, True),
    ("no bias, stride 2, padding 1", (2, 2, 5, 5), (3, 2, 3, 3), 2, 1, False),
]
CASE_IDS = [case[0] for case in CASES]


def case_arrays(case, seed: int, dtype=np.float64):
    _, x_shape, w_shape, _, _, has_bias = case
    bias = random_array(w_shape[0], seed + 2, dtype) if has_bias else None
    return random_array(x_shape, seed, dtype), random_array(w_shape, seed + 1, dtype), bias


# -- loops ----------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("loops")
class TestLoops:
    def test_output_size(self):
        """window_output_size gives (H + 2p - k) // s + 1 per axis as Python ints, for every mix of options."""
        table = [  # (input, kernel, stride, padding) -> expected
            (((5, 5), 3, 1, 0), (3, 3)), (((4, 4), 3, 1, 1), (4, 4)), (((7, 7), 3, 2, 0), (3, 3)),
            (((8, 8), 3, 3, 0), (2, 2)), (((6, 7), 3, 2, 1), (3, 4)), (((5, 5), 5, 1, 0), (1, 1)),
            (((5, 6), (2, 3), (2, 1), (1, 0)), (3, 4)), (((3, 3), 1, 2, 1), (3, 3)),
        ]
        for (size, kernel, stride, padding), expected in table:
            got = window_output_size(size, kernel, stride, padding)
            assert isinstance(got, tuple) and all(type(v) is int for v in got), (
                f"window_output_size{(size, kernel, stride, padding)} should be a tuple of two ints, got {got!r}")
            assert got == expected, (
                f"window_output_size(input {size}, kernel {kernel}, stride {stride}, padding {padding}): "
                f"expected {expected}, got {got}")

    def test_conv2d_shape(self):
        """conv2d_shape((2, 3, 7, 6), (5, 3, 3, 2), stride 2, padding 1) is (2, 5, 4, 4): batch, filters, Ho, Wo."""
        got = conv2d_shape((2, 3, 7, 6), (5, 3, 3, 2), 2, 1)
        assert isinstance(got, tuple) and all(type(v) is int for v in got), \
            f"conv2d_shape should return a tuple of ints, got {got!r}"
        assert got == (2, 5, 4, 4), f"conv2d_shape: expected (2, 5, 4, 4), got {got!r}"

    def test_input_is_not_modified(self):
        """conv2d_loops leaves its input and weight exactly as they were (padding makes a new array)."""
        x, w = random_array((1, 2, 4, 4), 1), random_array((2, 2, 3, 3), 2)
        x_before, w_before = x.copy(), w.copy()
        conv2d_loops(x, w, None, 1, 1)
        assert_close(x, x_before, "the input after conv2d_loops", rtol=0, atol=0)
        assert_close(w, w_before, "the weight after conv2d_loops", rtol=0, atol=0)

    def test_known_values(self):
        """arange(9) as a 3x3 image and the 2x2 filter [[1, 2], [3, 4]] give [[27, 37], [57, 67]].

        Hint: 27 = 0*1 + 1*2 + 3*3 + 4*4, the top-left window times the filter as it stands. If you
        got 13, the filter was flipped: PyTorch's (and this kata's) conv2d is a cross-correlation.
        """
        x = np.arange(9.0).reshape(1, 1, 3, 3)
        w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
        got = conv2d_loops(x, w)
        assert isinstance(got, np.ndarray), f"conv2d_loops should return a numpy array, got {type(got).__name__}"
        assert_close(got, np.array([27.0, 37.0, 57.0, 67.0]).reshape(1, 1, 2, 2), "conv2d_loops of arange(9)")

    def test_padding_and_stride_known_values(self):
        """A 3x3 image of ones, a 3x3 filter of ones: padding 1 counts each window's real pixels; stride 2 keeps the corners."""
        x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
        counts = np.array([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]])
        assert_close(conv2d_loops(x, w, None, 1, 1), counts.reshape(1, 1, 3, 3), "ones, padding 1")
        assert_close(conv2d_loops(x, w, None, 2, 1), np.full((1, 1, 2, 2), 4.0), "ones, stride 2, padding 1")

    def test_bias_is_added_per_output_channel(self):
        """A zero input gives each output channel its own bias everywhere: out[:, o] == bias[o]."""
        out = conv2d_loops(np.zeros((2, 1, 3, 3)), np.ones((3, 1, 2, 2)), np.array([1.0, -2.0, 0.5]))
        expected = np.broadcast_to(np.array([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1), (2, 3, 2, 2))
        assert_close(out, expected, "conv2d_loops of zeros with bias [1, -2, 0.5]")

    @pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
    def test_matches_shift_and_add(self, case):
        """conv2d_loops equals the test's shift-and-add convolution to 1e-10 (float64) for this case."""
        x, w, b = case_arrays(case, 10)
        stride, padding = case[3], case[4]
        assert_close(conv2d_loops(x, w, b, stride, padding), shift_and_add_conv(x, w, b, stride, padding),
                     f"conv2d_loops, {case[0]} (seed 10)", rtol=1e-10, atol=1e-10)

    def test_float32_stays_float32(self):
        """float32 input and weight give a float32 output."""
        got = conv2d_loops(random_array((1, 2, 4, 4), 3, np.float32), random_array((2, 2, 3, 3), 4, np.float32))
        assert got.dtype == np.float32, f"conv2d_loops of float32 arrays: expected float32, got {got.dtype}"

    def test_channel_mismatch_names_both_shapes(self):
        """An input with 3 channels and a weight for 2 is a ValueError naming (2, 3, 5, 5) and (4, 2, 3, 3)."""
        assert_raises_naming(lambda: conv2d_loops(np.zeros((2, 3, 5, 5)), np.zeros((4, 2, 3, 3))),
                             ["(2, 3, 5, 5)", "(4, 2, 3, 3)"], "conv2d_loops with 3 input channels and a 2-channel weight")

    def test_kernel_that_does_not_fit(self):
        """A 4x4 kernel on a 3x5 input (no padding) is a ValueError naming the kernel (4, 4) and the input size (3, 5)."""
        assert_raises_naming(lambda: conv2d_loops(np.zeros((1, 1, 3, 5)), np.zeros((1, 1, 4, 4))),
                             ["(4, 4)", "(3, 5)"], "conv2d_loops of a 4x4 kernel on a 3x5 input")
        assert_raises_naming(lambda: window_output_size((5, 3), (3, 4), 1, 0), ["(3, 4)", "(5, 3)"],
                             "window_output_size of a 3x4 kernel on a 5x3 input (only the width is too small)")

    def test_stride_below_one(self):
        """Stride 0, and stride (1, 0) whose second entry is the bad one, are ValueErrors naming the stride."""
        for stride in (0, (1, 0), (-1, 1)):
            assert_raises_naming(lambda: window_output_size((5, 5), 3, stride, 0), ["stride"],
                                 f"window_output_size with stride {stride}")

    def test_negative_padding(self):
        """Padding (0, -1) is a ValueError naming the padding."""
        assert_raises_naming(lambda: window_output_size((5, 5), 3, 1, (0, -1)), ["padding"],
                             "window_output_size with padding (0, -1)")

    def test_input_must_be_four_dimensional(self):
        """A (3, 5, 5) input (no batch axis) is a ValueError naming its shape."""
        assert_raises_naming(lambda: conv2d_loops(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3))), ["(3, 5, 5)"],
                             "conv2d_loops of a 3-D input")

    def test_weight_must_be_four_dimensional(self):
        """A (2, 3, 3) weight (no input-channel axis) is a ValueError naming it, also when the input is fine."""
        assert_raises_naming(lambda: conv2d_loops(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3))), ["(2, 3, 3)"],
                             "conv2d_loops with a 3-D weight")
        assert_raises_naming(lambda: conv2d_shape((1, 2, 5, 5), (4, 2, 3, 3, 1)), ["(4, 2, 3, 3, 1)"],
                             "conv2d_shape with a 5-D weight")

    def test_integer_image(self):
        """An integer image and a float filter give float sums (numpy's promotion), not sums truncated to ints.

        Hint: make the output array with the dtype both inputs promote to (np.result_type(x, weight)),
        not the input's dtype: 0.25 stored into an int array becomes 0.
        """
        x = np.arange(9).reshape(1, 1, 3, 3)  # int64
        w = np.array([[0.5, 0.25], [0.0, 0.0]]).reshape(1, 1, 2, 2)
        got = conv2d_loops(x, w)
        assert got.dtype == np.float64, f"conv2d_loops of an int64 image and a float64 filter: expected float64, " \
                                        f"got {got.dtype}"
        assert_close(got, np.array([0.25, 1.0, 2.5, 3.25]).reshape(1, 1, 2, 2),
                     "conv2d_loops of arange(9) (int) with [[0.5, 0.25], [0, 0]]", rtol=0, atol=0)


# -- im2col -------------------------------------------------------------------------------------------------

# (what, x shape, kernel, stride, padding)
LAYOUTS = [
    ("3x3, stride 1, padding 1", (2, 3, 4, 4), 3, 1, 1),
    ("2x3 kernel, stride (2, 1), padding (1, 0)", (2, 2, 5, 6), (2, 3), (2, 1), (1, 0)),
    ("3x3, stride 2: overlapping windows", (1, 2, 5, 5), 3, 2, 0),
    ("3x3, stride 3: skipped pixels", (2, 1, 7, 8), 3, 3, 0),
    ("1x1, padding 2", (1, 3, 2, 3), 1, 1, 2),
]
LAYOUT_IDS = [layout[0] for layout in LAYOUTS]


def expected_columns(x, kernel, stride, padding) -> np.ndarray:
    """im2col spelled out element by element (small inputs only)."""
    (kh, kw), (sh, sw), (ph, pw) = as_pair(kernel), as_pair(stride), as_pair(padding)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c = x.shape[:2]
    ho, wo = (padded.shape[2] - kh) // sh + 1, (padded.shape[3] - kw) // sw + 1
    cols = np.zeros((n, c * kh * kw, ho * wo))
    for channel in range(c):
        for i in range(kh):
            for j in range(kw):
                for y in range(ho):
                    for x_ in range(wo):
                        cols[:, channel * kh * kw + i * kw + j, y * wo + x_] = padded[:, channel, y * sh + i, x_ * sw + j]
    return cols


@pytest.mark.checkpoint("im2col")
class TestIm2col:
    def test_columns_are_a_new_array(self):
        """im2col returns a new array: writing into it (backward may) leaves x unchanged, even for a 1x1 kernel."""
        for kernel, padding in ((1, 0), (3, 1)):
            x = random_array((2, 2, 3, 3), 20)
            before = x.copy()
            cols = im2col(x, kernel, 1, padding)
            assert isinstance(cols, np.ndarray), f"im2col should return a numpy array, got {type(cols).__name__}"
            assert cols.flags.writeable, (f"im2col(x, kernel {kernel}) returned a read-only array: a view of the "
                                          "sliding windows; copy it into a new array")
            cols[...] = 7.0
            assert_close(x, before, f"x after writing into im2col(x, kernel {kernel}, padding {padding})",
                         rtol=0, atol=0)

    @pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
    def test_columns_hold_the_windows(self, layout):
        """Row c*kh*kw + i*kw + j, column y*Wo + x holds padded x[n, c, y*sh + i, x*sw + j]; shape (N, C*kh*kw, Ho*Wo)."""
        _, shape, kernel, stride, padding = layout
        x = random_array(shape, 21)
        expected = expected_columns(x, kernel, stride, padding)
        got = im2col(x, kernel, stride, padding)
        assert_shape(got, expected.shape, f"im2col, {layout[0]}, of an input {shape}")
        assert_close(got, expected, f"im2col, {layout[0]} (seed 21)", rtol=0, atol=0)

    def test_non_contiguous_input(self):
        """im2col of a transposed view gives the columns of the values the view shows."""
        x = random_array((2, 2, 5, 4), 22).transpose(0, 1, 3, 2)  # (2, 2, 4, 5), not contiguous
        assert_close(im2col(x, (2, 3), 1, 1), expected_columns(np.ascontiguousarray(x), (2, 3), 1, 1),
                     "im2col of a transposed (2, 2, 4, 5) view", rtol=0, atol=0)

    @pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
    def test_col2im_is_the_adjoint(self, layout):
        """<im2col(x), c> == <x, col2im(c)> for random x and c: col2im is exactly im2col transposed."""
        _, shape, kernel, stride, padding = layout
        x = random_array(shape, 23)
        c = random_array(im2col(x, kernel, stride, padding).shape, 24)
        back = col2im(c, shape, kernel, stride, padding)
        assert isinstance(back, np.ndarray), f"col2im should return a numpy array, got {type(back).__name__}"
        assert_shape(back, shape, f"col2im, {layout[0]}")
        left, right = np.vdot(im2col(x, kernel, stride, padding), c), np.vdot(x, back)
        assert abs(left - right) <= 1e-10 * (1 + abs(left)), (
            f"col2im, {layout[0]} (seeds 23, 24): <im2col(x), c> = {left!r} but <x, col2im(c)> = {right!r}")

    def test_col2im_adds_up_overlapping_windows(self):
        """col2im of all-ones columns counts the windows covering each pixel: 4, 6 and 9 for 3x3, stride 1, padding 1.

        Hint: where windows overlap, a pixel's gradient is the SUM over every window that holds it:
        accumulate with +=, never overwrite with =.
        """
        counts = col2im(np.ones((1, 9, 16)), (1, 1, 4, 4), 3, 1, 1)
        expected = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]], dtype=float)
        assert_close(counts, expected.reshape(1, 1, 4, 4), "col2im of ones, 3x3 kernel, stride 1, padding 1")
        strided = col2im(np.ones((1, 9, 4)), (1, 1, 5, 5), 3, 2, 0)  # windows at rows/columns 0 and 2
        line = np.array([1, 1, 2, 1, 1], dtype=float)
        assert_close(strided, np.outer(line, line).reshape(1, 1, 5, 5), "col2im of ones, 3x3 kernel, stride 2")

    def test_one_matrix_product_is_the_convolution(self):
        """weight.reshape(O, -1) @ im2col(x) + bias, reshaped to (N, O, Ho, Wo), is the convolution."""
        x, w, b = random_array((2, 3, 5, 6), 25), random_array((4, 3, 2, 3), 26), random_array(4, 27)
        product = (w.reshape(4, -1) @ im2col(x, (2, 3), (2, 1), (1, 0))).reshape(2, 4, 3, 4) + b.reshape(1, 4, 1, 1)
        assert_close(product, shift_and_add_conv(x, w, b, (2, 1), (1, 0)),
                     "W @ im2col(x) + b, 2x3 kernel, stride (2, 1), padding (1, 0) (seeds 25-27)", rtol=1e-10, atol=1e-10)

    def test_dtype_is_kept(self):
        """float32 in, float32 out, for im2col and for col2im."""
        x = random_array((1, 2, 4, 4), 28, np.float32)
        cols = im2col(x, 3, 1, 1)
        assert cols.dtype == np.float32, f"im2col of float32: got {cols.dtype}"
        back = col2im(cols, x.shape, 3, 1, 1)
        assert back.dtype == np.float32, f"col2im of float32 columns: got {back.dtype}"

    def test_errors_name_im2col(self):
        """im2col's errors name im2col (not conv2d): a stride of 0 names im2col and the stride; a 5x5 kernel on 3x3 too."""
        assert_raises_naming(lambda: im2col(np.zeros((1, 1, 4, 4)), 3, 0, 0), ["im2col", "stride"],
                             "im2col with stride 0")
        assert_raises_naming(lambda: im2col(np.zeros((1, 1, 3, 3)), 5, 1, 0), ["im2col", "(5, 5)"],
                             "im2col of a 5x5 kernel on a 3x3 input")


# -- conv2d -------------------------------------------------------------------------------------------------


def tensors_of(x, w, b, requires_grad=True):
    make = lambda a: None if a is None else Tensor(a, dtype=a.dtype, requires_grad=requires_grad)  # noqa: E731
    return make(x), make(w), make(b)


@pytest.mark.checkpoint("conv2d")
class TestConv2d:
    def test_one_recorded_op(self):
        """conv2d is ONE op, recorded as "conv2d" with parents (x, weight, bias), and has a registered backward rule."""
        x, w, b = tensors_of(*case_arrays(CASES[1], 30))
        out = assert_made_by_op(lambda: conv2d(x, w, b, 1, 1), "conv2d(x, w, b)", op="conv2d", parents=(x, w, b))
        assert_shape(out, (2, 3, 4, 4), "conv2d of (2, 2, 4, 4) with (3, 2, 3, 3), padding 1")
        assert "conv2d" in BACKWARD_RULES, "register the rule with @backward_rule(\"conv2d\")"

    def test_inputs_are_not_modified(self):
        """Forward and backward leave x, weight and bias unchanged (backward may reuse buffers conv2d made, never its inputs)."""
        for kernel in ((1, 1), (3, 3)):
            x, w, b = random_array((2, 2, 4, 4), 31), random_array((3, 2) + kernel, 32), random_array(3, 33)
            before = [a.copy() for a in (x, w, b)]
            tx, tw, tb = tensors_of(x, w, b)
            conv2d(tx, tw, tb).backward(random_array((2, 3, 5 - kernel[0], 5 - kernel[1]), 34))
            for name, tensor, original in zip(("x", "weight", "bias"), (tx, tw, tb), before):
                assert_close(tensor.data, original, f"{name} after conv2d forward and backward, {kernel} kernel",
                             rtol=0, atol=0)

    @pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
    def test_forward_equals_the_loops(self, case):
        """conv2d equals conv2d_loops and the shift-and-add convolution to 1e-10 (float64) for this case."""
        x, w, b = case_arrays(case, 35)
        stride, padding = case[3], case[4]
        out = conv2d(*tensors_of(x, w, b, requires_grad=False), stride, padding)
        assert_tensor(out, f"conv2d, {case[0]}", dtype=np.float64)
        assert_close(out, shift_and_add_conv(x, w, b, stride, padding), f"conv2d, {case[0]} (seed 35)",
                     rtol=1e-10, atol=1e-10)
        assert_close(out, conv2d_loops(x, w, b, stride, padding), f"conv2d vs conv2d_loops, {case[0]}",
                     rtol=1e-10, atol=1e-10)

    @pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
    def test_gradcheck(self, case):
        """Gradients for input, weight and bias match float64 central differences on every element, for this case.

        Hint: the rule must use the op's own stride and padding (out.saved); with stride 1 everywhere a
        mistake here stays hidden, so this table has strides 2 and 3, rectangular and 1x1 kernels.
        """
        x, w, b = case_arrays(case, 36)
        stride, padding = case[3], case[4]
        if b is None:
            gradcheck(lambda x, w: conv2d(x, w, None, stride, padding), x, w, seed=37, name=f"conv2d, {case[0]}")
        else:
            gradcheck(lambda x, w, b: conv2d(x, w, b, stride, padding), x, w, b, seed=37, name=f"conv2d, {case[0]}")

    def test_bias_gradient_sums_over_batch_and_positions(self):
        """The bias gradient is the upstream gradient summed over the batch and every output position: shape (O,)."""
        x, w, b = tensors_of(random_array((3, 2, 4, 5), 38), random_array((2, 2, 3, 3), 39), random_array(2, 40))
        grad = random_array((3, 2, 2, 3), 41)
        conv2d(x, w, b).backward(grad)
        assert_close(b.grad, grad.sum(axis=(0, 2, 3)), "bias.grad of conv2d (upstream seed 41)")

    def test_without_bias(self):
        """With bias None the op has two parents (x, weight) and the output has no bias in it."""
        x, w, _ = tensors_of(random_array((1, 2, 4, 4), 42), random_array((3, 2, 3, 3), 43), None)
        out = assert_made_by_op(lambda: conv2d(x, w), "conv2d(x, w)", op="conv2d", parents=(x, w))
        assert_close(out, shift_and_add_conv(x.data, w.data), "conv2d without bias", rtol=1e-10, atol=1e-10)
        out.backward(np.ones(out.shape))
        assert x.grad is not None and w.grad is not None, "conv2d without bias: x and weight should get gradients"

    def test_input_that_needs_no_gradient(self):
        """When x does not require grad (a network's input), the weight still gets its exact gradient and x none."""
        x = Tensor(random_array((2, 2, 4, 4), 44), dtype=np.float64)
        w = Tensor(random_array((3, 2, 3, 3), 45), dtype=np.float64, requires_grad=True)
        grad = random_array((2, 3, 4, 4), 46)
        conv2d(x, w, None, 1, 1).backward(grad)
        assert x.grad is None, "x does not require grad: it must not receive one"
        expected = np.einsum("nohw,nkhw->ok", grad.reshape(2, 3, 4, 4), im2col(x.data, 3, 1, 1).reshape(2, 18, 4, 4))
        assert_close(w.grad, expected.reshape(3, 2, 3, 3), "weight.grad when x needs no gradient", rtol=1e-10,
                     atol=1e-10)

    def test_float32_stays_float32(self):
        """float32 x, weight and bias give a float32 output and float32 gradients."""
        x, w, b = tensors_of(*case_arrays(CASES[3], 47, np.float32))
        out = conv2d(x, w, b, 2, 1)
        assert out.dtype == np.float32, f"conv2d of float32 tensors: expected float32, got {out.dtype}"
        out.backward(np.ones(out.shape, np.float32))
        for name, t in (("x", x), ("weight", w), ("bias", b)):
            assert t.grad.dtype == np.float32, f"{name}.grad of a float32 conv2d: got {t.grad.dtype}"

    def test_non_contiguous_input(self):
        """conv2d of a transposed view (N, C, W, H) -> (N, C, H, W) convolves the values the view shows; gradients too."""
        x_view = random_array((2, 2, 5, 4), 48).transpose(0, 1, 3, 2)
        w = random_array((3, 2, 2, 3), 49)
        out = conv2d(Tensor(x_view, dtype=np.float64), Tensor(w, dtype=np.float64), None, (1, 2), 1)
        assert_close(out, shift_and_add_conv(np.ascontiguousarray(x_view), w, None, (1, 2), 1),
                     "conv2d of a transposed view", rtol=1e-10, atol=1e-10)
        gradcheck(lambda x, w: conv2d(x.transpose(2, 3), w, None, (1, 2), 1), x_view.transpose(0, 1, 3, 2),
                  w, seed=50, name="conv2d of a transposed view")

    def test_two_convolutions_in_a_row(self):
        """conv2d(conv2d(x, w1, padding 1), w2, stride 2) has exact gradients; so does one weight used twice (they add up)."""
        gradcheck(lambda x, w1, w2: conv2d(conv2d(x, w1, None, 1, 1), w2, None, 2, 0),
                  random_array((2, 2, 5, 5), 51), random_array((3, 2, 3, 3), 52), random_array((2, 3, 3, 3), 53),
                  seed=54, name="conv2d of conv2d")
        gradcheck(lambda x, w: conv2d(conv2d(x, w, None, 1, 1), w, None, 2, 1), random_array((1, 2, 4, 4), 55),
                  random_array((2, 2, 3, 3), 56), seed=57, name="the same weight in two conv2d layers")

    def test_bias_of_the_wrong_shape(self):
        """A bias of shape (4,) for 3 filters is a ValueError naming (4,) and the 3 it should have."""
        assert_raises_naming(lambda: conv2d(Tensor(np.zeros((1, 2, 4, 4))), Tensor(np.zeros((3, 2, 3, 3))),
                                            Tensor(np.zeros(4))),
                             ["(4,)", "3"], "conv2d with a bias of shape (4,) for 3 filters")

    def test_bias_must_be_one_dimensional(self):
        """A bias of shape (3, 1) or (1, 3) for 3 filters is a ValueError naming that shape: the bias is (O,)."""
        for shape in ((3, 1), (1, 3)):
            assert_raises_naming(lambda: conv2d(Tensor(np.zeros((1, 2, 4, 4))), Tensor(np.zeros((3, 2, 3, 3))),
                                                Tensor(np.zeros(shape))),
                                 [str(shape)], f"conv2d with a bias of shape {shape} for 3 filters")

    def test_channel_mismatch(self):
        """conv2d of a 3-channel input with a 2-channel weight is a ValueError naming both shapes."""
        assert_raises_naming(lambda: conv2d(Tensor(np.zeros((1, 3, 4, 4))), Tensor(np.zeros((2, 2, 3, 3)))),
                             ["(1, 3, 4, 4)", "(2, 2, 3, 3)"], "conv2d with 3 input channels and a 2-channel weight")

    def test_layer_parameters(self):
        """Conv2d(3, 8, (3, 2)) has a Parameter weight (8, 3, 3, 2) and a zero Parameter bias (8,), named weight, bias."""
        layer = Conv2d(3, 8, (3, 2), rng=np.random.default_rng(55))
        assert isinstance(layer, Module), "Conv2d should be a Module"
        names = [name for name, _ in layer.named_parameters()]
        assert names == ["weight", "bias"], f"Conv2d's parameters: expected ['weight', 'bias'], got {names}"
        assert isinstance(layer.weight, Parameter) and isinstance(layer.bias, Parameter), \
            "weight and bias should be Parameters"
        assert_shape(layer.weight, (8, 3, 3, 2), "Conv2d(3, 8, (3, 2)).weight: (out, in, kh, kw)")
        assert layer.weight.dtype == np.float32, f"the weight should be float32, got {layer.weight.dtype}"
        assert_close(layer.bias, np.zeros(8), "Conv2d's initial bias", rtol=0, atol=0)
        plain = Conv2d(3, 8, 3, bias=False)
        assert plain.bias is None and [n for n, _ in plain.named_parameters()] == ["weight"], \
            "Conv2d(..., bias=False) should have bias None and only a weight parameter"

    def test_kaiming_init_over_the_fan_in(self):
        """The weights of Conv2d(16, 4, 3) are uniform in +-sqrt(6 / (16 * 3 * 3)): fan_in counts channels AND kernel pixels."""
        bound = np.sqrt(6.0 / (16 * 3 * 3))
        weight = Conv2d(16, 4, 3, rng=np.random.default_rng(56)).weight.data
        largest = float(np.abs(weight).max())
        assert 0.95 * bound <= largest <= bound, (
            f"Conv2d(16, 4, 3): the largest |weight| is {largest:.4f}; uniform in +-sqrt(6 / fan_in) with "
            f"fan_in = 16 * 3 * 3 = 144 it should be just under {bound:.4f}")
        assert abs(weight.std() - bound / np.sqrt(3)) < 0.1 * bound / np.sqrt(3), (
            f"Conv2d(16, 4, 3): weight std {weight.std():.4f}, expected about {bound / np.sqrt(3):.4f}")
        same = Conv2d(16, 4, 3, rng=np.random.default_rng(56)).weight.data
        assert_close(same, weight, "two Conv2d layers made with the same seed", rtol=0, atol=0)

    def test_layer_forward_uses_its_options(self):
        """Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)) computes conv2d with exactly those options."""
        layer = Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), rng=np.random.default_rng(57))
        layer.bias.data[...] = [0.5, -1.0, 2.0]
        x = random_array((2, 2, 5, 4), 58, np.float32)
        out = layer(Tensor(x))
        assert_tensor(out, "Conv2d(2, 3, (3, 2), stride (2, 1), padding (1, 0)) of (2, 2, 5, 4)", shape=(2, 3, 3, 3))
        assert_close(out, shift_and_add_conv(x, layer.weight.data, layer.bias.data, (2, 1), (1, 0)),
                     "the layer's output", rtol=1e-5, atol=1e-5)
        out.backward(np.ones(out.shape, np.float32))
        assert layer.weight.grad is not None and layer.bias.grad is not None, "the layer's parameters get gradients"
        square = Conv2d(2, 3, 3, stride=2, padding=1)(Tensor(x))
        assert_shape(square, (2, 3, 3, 2), "Conv2d(2, 3, 3, stride=2, padding=1) of (2, 2, 5, 4)")


# -- pooling ----------------------------------------------------------------------------------------------------

POOLS = [  # (what, x shape, kernel, stride, padding)
    ("2x2, stride 2", (2, 2, 4, 4), 2, None, 0),
    ("3x3, stride 1, padding 1: overlapping", (1, 2, 4, 5), 3, 1, 1),
    ("3x3, stride 2, padding 1", (2, 1, 5, 5), 3, 2, 1),
    ("2x3, stride (1, 2), padding (1, 1)", (1, 2, 4, 6), (2, 3), (1, 2), (1, 1)),
    ("2x2, stride 2, odd size: the last row is dropped", (1, 1, 5, 5), 2, 2, 0),
    ("3x3, stride 1, padding (1, 0): only the height padded", (1, 2, 4, 5), 3, 1, (1, 0)),
]
POOL_IDS = [pool[0] for pool in POOLS]

GRID = np.array([[1.0, 5.0, 2.0, 0.0],
                 [3.0, 2.0, 8.0, 1.0],
                 [0.0, 4.0, 6.0, 7.0],
                 [9.0, 1.0, 2.0, 3.0]]).reshape(1, 1, 4, 4)


@pytest.mark.checkpoint("pooling")
class TestPooling:
    def test_pooling_does_not_modify_its_input(self):
        """max_pool2d and avg_pool2d, forward and backward, leave the input unchanged."""
        for pool in (lambda x: max_pool2d(x, 3, 1, 1), lambda x: avg_pool2d(x, 3, 1, 1)):
            data = random_array((1, 2, 4, 4), 60)
            x = Tensor(data.copy(), dtype=np.float64, requires_grad=True)
            pool(x).backward(np.ones((1, 2, 4, 4)))
            assert_close(x.data, data, "the input after pooling forward and backward", rtol=0, atol=0)

    def test_max_pool_known_values(self):
        """max_pool2d of the 4x4 grid with a 2x2 kernel is [[5, 8], [9, 7]]; the stride defaults to the kernel size."""
        x = Tensor(GRID, dtype=np.float64)
        out = assert_made_by_op(lambda: max_pool2d(x, 2), "max_pool2d(x, 2)", op="max_pool2d", parents=(x,))
        assert_close(out, np.array([[5.0, 8.0], [9.0, 7.0]]).reshape(1, 1, 2, 2), "max_pool2d(grid, 2)")

    def test_max_pool_gradient_goes_to_the_maximum(self):
        """The gradient of each 2x2 window goes to its maximum only: the 5, 8, 9 and 7 of the grid.

        Hint: a max picks one element; the others did not affect the output, so their gradient is 0.
        """
        x = Tensor(GRID, dtype=np.float64, requires_grad=True)
        max_pool2d(x, 2).backward(np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 1, 2, 2))
        expected = np.zeros((4, 4))
        expected[0, 1], expected[1, 2], expected[3, 0], expected[2, 3] = 10.0, 20.0, 30.0, 40.0
        assert_close(x.grad, expected.reshape(1, 1, 4, 4), "x.grad of max_pool2d(grid, 2)")

    def test_max_pool_ties_go_to_the_first_maximum(self):
        """In a window of equal values the whole gradient goes to its first element (top-left), as in PyTorch."""
        x = Tensor(np.zeros((1, 1, 4, 4)), dtype=np.float64, requires_grad=True)
        max_pool2d(x, 2).backward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2))
        expected = np.zeros((4, 4))
        expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1.0, 2.0, 3.0, 4.0
        assert_close(x.grad, expected.reshape(1, 1, 4, 4), "x.grad of max_pool2d of zeros (every window a tie)")

    def test_max_pool_padding_never_wins(self):
        """With padding 1, a negative image still gives negative maxima: padding is -inf, not 0."""
        x = Tensor(-1.0 - np.abs(random_array((1, 2, 4, 4), 61)), dtype=np.float64)
        out = max_pool2d(x, 2, 2, 1)
        assert_shape(out, (1, 2, 3, 3), "max_pool2d of (1, 2, 4, 4), kernel 2, stride 2, padding 1")
        assert (out.data < 0).all(), (
            f"max_pool2d of an all-negative image with padding 1 gave {int((out.data >= 0).sum())} maxima >= 0; "
            "pad with -inf so that padding never wins")

    def test_max_pool_of_minus_infinity(self):
        """Windows of -inf output -inf and send their gradient to their first REAL pixel, never to the padding."""
        x = Tensor(np.full((1, 1, 4, 4), -np.inf), dtype=np.float64, requires_grad=True)
        out = max_pool2d(x, 2, 2, 1)  # windows cover padded rows/columns (-1, 0), (1, 2), (3, 4)
        assert np.isneginf(out.data).all(), f"max_pool2d of -inf should be -inf everywhere, got {out.data}"
        grad = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
        out.backward(grad)
        expected = np.zeros((4, 4))
        expected[np.ix_([0, 1, 3], [0, 1, 3])] = grad[0, 0]  # each window's first real pixel
        assert_close(x.grad, expected.reshape(1, 1, 4, 4), "x.grad of max_pool2d of -inf with padding 1 "
                     "(the total, 45, must reach real pixels)")
        mixed = Tensor(np.array([[-np.inf, 2.0], [-np.inf, -np.inf]]).reshape(1, 1, 2, 2), dtype=np.float64,
                       requires_grad=True)
        pooled = max_pool2d(mixed, 2)
        pooled.backward(np.ones((1, 1, 1, 1)))
        assert_close(pooled, np.full((1, 1, 1, 1), 2.0), "max_pool2d of [[-inf, 2], [-inf, -inf]]")
        assert_close(mixed.grad, np.array([[0.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 2, 2),
                     "x.grad of max_pool2d of [[-inf, 2], [-inf, -inf]]")

    def test_max_pool_propagates_nan(self):
        """A window holding a NaN outputs NaN and sends its gradient to the NaN; the other windows are unaffected."""
        data = GRID.copy()
        data[0, 0, 1, 0] = np.nan
        x = Tensor(data, dtype=np.float64, requires_grad=True)
        out = max_pool2d(x, 2)
        assert np.isnan(out.data[0, 0, 0, 0]), f"the window holding a NaN should output NaN, got {out.data[0, 0, 0, 0]}"
        assert_close(out.data[0, 0].ravel()[1:], [8.0, 9.0, 7.0], "the other three windows of the grid")
        out.backward(np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 1, 2, 2))
        assert x.grad[0, 0, 1, 0] == 10.0 and x.grad[0, 0, 0, 1] == 0.0, (
            f"the first window's gradient should go to the NaN at (1, 0), not to the 5 at (0, 1); "
            f"got {x.grad[0, 0, :2, :2]}")

    def test_max_pool_overlapping_windows_add_their_gradients(self):
        """A peak that is the maximum of several overlapping 3x3 windows receives the sum of their gradients."""
        data = np.zeros((1, 1, 4, 4))
        data[0, 0, 1, 2] = 5.0  # inside all four 3x3 windows of a 4x4 image
        x = Tensor(data, dtype=np.float64, requires_grad=True)
        max_pool2d(x, 3, 1).backward(np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 1, 2, 2))
        assert x.grad[0, 0, 1, 2] == 1111.0, f"the peak's gradient: expected 1 + 10 + 100 + 1000 = 1111, " \
                                             f"got {x.grad[0, 0, 1, 2]}"
        assert np.count_nonzero(x.grad) == 1, f"only the peak should get a gradient, got {np.count_nonzero(x.grad)} pixels"

    @pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
    def test_max_pool_gradcheck(self, pool):
        """max_pool2d's gradient matches central differences (distinct random values: no ties) for this case."""
        _, shape, kernel, stride, padding = pool
        x = np.random.default_rng(62).permutation(np.prod(shape)).reshape(shape) * 0.1  # all values distinct
        gradcheck(lambda x: max_pool2d(x, kernel, stride, padding), x, seed=63, name=f"max_pool2d, {pool[0]}")

    def test_avg_pool_known_values(self):
        """avg_pool2d of the 4x4 grid with a 2x2 kernel is [[2.75, 2.75], [3.5, 4.5]]."""
        x = Tensor(GRID, dtype=np.float64)
        out = assert_made_by_op(lambda: avg_pool2d(x, 2), "avg_pool2d(x, 2)", op="avg_pool2d", parents=(x,))
        assert_close(out, np.array([[2.75, 2.75], [3.5, 4.5]]).reshape(1, 1, 2, 2), "avg_pool2d(grid, 2)")

    def test_avg_pool_padding_in_the_divisor(self):
        """Ones, 3x3 kernel, stride 1, padding 1: count_include_pad=True (default) gives 4/9, 6/9, 1; False gives 1 everywhere."""
        x = Tensor(np.ones((1, 1, 3, 3)), dtype=np.float64)
        counts = np.array([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]).reshape(1, 1, 3, 3)
        assert_close(avg_pool2d(x, 3, 1, 1), counts / 9, "avg_pool2d(ones, 3, 1, 1), padding counted")
        assert_close(avg_pool2d(x, 3, 1, 1, count_include_pad=False), np.ones((1, 1, 3, 3)),
                     "avg_pool2d(ones, 3, 1, 1, count_include_pad=False): each window divided by its real pixels")

    def test_avg_pool_gradient(self):
        """Each pixel receives the gradient of every window holding it, divided by that window's divisor."""
        x = Tensor(np.ones((1, 1, 3, 3)), dtype=np.float64, requires_grad=True)
        avg_pool2d(x, 2, 1).backward(np.array([4.0, 8.0, 12.0, 16.0]).reshape(1, 1, 2, 2))
        expected = np.array([[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]]).reshape(1, 1, 3, 3)
        assert_close(x.grad, expected, "x.grad of avg_pool2d(ones 3x3, kernel 2, stride 1)")

    @pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
    def test_avg_pool_gradcheck(self, pool):
        """avg_pool2d's gradient matches central differences, with and without count_include_pad, for this case."""
        _, shape, kernel, stride, padding = pool
        x = random_array(shape, 64)
        for include in (True, False):
            gradcheck(lambda x: avg_pool2d(x, kernel, stride, padding, include), x, seed=65,
                      name=f"avg_pool2d, {pool[0]}, count_include_pad={include}")

    def test_pools_keep_float32(self):
        """float32 in, float32 out and float32 gradients, for both pools."""
        for pool in (max_pool2d, avg_pool2d):
            x = Tensor(random_array((1, 2, 4, 4), 66, np.float32), requires_grad=True)
            out = pool(x, 2)
            assert out.dtype == np.float32, f"{pool.__name__} of float32: got {out.dtype}"
            out.backward(np.ones(out.shape, np.float32))
            assert x.grad.dtype == np.float32, f"x.grad of {pool.__name__} of float32: got {x.grad.dtype}"
        x = Tensor(random_array((1, 2, 4, 4), 66, np.float32))
        out = avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        assert out.dtype == np.float32, \
            f"avg_pool2d of float32 with count_include_pad=False: got {out.dtype} (count the real pixels in float32)"

    def test_non_contiguous_input(self):
        """Pooling a transposed view gives what pooling its values as a fresh array gives, and gradients of its shape."""
        view = random_array((2, 2, 5, 4), 71).transpose(0, 1, 3, 2)  # (2, 2, 4, 5)
        for pool in (max_pool2d, avg_pool2d):
            x = Tensor(view, dtype=np.float64, requires_grad=True)
            out = pool(x, 2, 1, 1)
            assert_close(out, pool(Tensor(np.ascontiguousarray(view), dtype=np.float64), 2, 1, 1),
                         f"{pool.__name__} of a transposed view", rtol=0, atol=0)
            out.backward(np.ones(out.shape))
            assert_shape(x.grad, (2, 2, 4, 5), f"x.grad of {pool.__name__} of a transposed view")

    def test_flatten(self):
        """Flatten turns (2, 3, 4, 5) into (2, 60) with Tensor.reshape (recorded, so the gradient flows back)."""
        data = random_array((2, 3, 4, 5), 67)
        x = Tensor(data, dtype=np.float64, requires_grad=True)
        flatten = Flatten()
        assert isinstance(flatten, Module), "Flatten should be a Module"
        out = assert_made_by_op(lambda: flatten(x), "Flatten()(x)", op="reshape", parents=(x,))
        assert_close(out, data.reshape(2, 60), "Flatten of (2, 3, 4, 5)", rtol=0, atol=0)
        grad = random_array((2, 60), 68)
        out.backward(grad)
        assert_close(x.grad, grad.reshape(2, 3, 4, 5), "x.grad through Flatten", rtol=0, atol=0)
        one = flatten(Tensor(random_array((1, 2, 3, 3), 69).transpose(0, 1, 3, 2)))
        assert_shape(one, (1, 18), "Flatten of a (1, 2, 3, 3) transposed view (batch 1)")

    def test_pooling_layers(self):
        """MaxPool2d and AvgPool2d are Modules without parameters that call the pooling functions with their options."""
        x = Tensor(random_array((2, 2, 5, 5), 70), dtype=np.float64)
        for layer, expected in ((MaxPool2d(3, 2, 1), max_pool2d(x, 3, 2, 1)),
                                (AvgPool2d(3, 2, 1, count_include_pad=False), avg_pool2d(x, 3, 2, 1, False)),
                                (AvgPool2d(2), avg_pool2d(x, 2))):
            assert isinstance(layer, Module) and layer.parameters() == [], f"{layer!r}: a Module with no parameters"
            assert_close(layer(x), expected, f"{layer!r} of (2, 2, 5, 5)", rtol=0, atol=0)

    def test_padding_more_than_half_the_kernel(self):
        """Padding 2 with a 3x3 kernel, or (0, 2) with a 3x3 one, is a ValueError naming the padding."""
        x = Tensor(np.zeros((1, 1, 5, 5)))
        for padding in (2, (0, 2)):
            for pool in (max_pool2d, avg_pool2d):
                assert_raises_naming(lambda: pool(x, 3, 1, padding), ["padding"],
                                     f"{pool.__name__} with kernel 3 and padding {padding}")

    def test_pool_input_must_be_four_dimensional(self):
        """A (2, 4, 4) input is a ValueError naming its shape; a stride of 0 is a ValueError naming the stride."""
        for pool in (max_pool2d, avg_pool2d):
            assert_raises_naming(lambda: pool(Tensor(np.zeros((2, 4, 4))), 2), ["(2, 4, 4)"],
                                 f"{pool.__name__} of a 3-D input")
            assert_raises_naming(lambda: pool(Tensor(np.zeros((1, 1, 4, 4))), 2, 0), ["stride"],
                                 f"{pool.__name__} with stride 0")

    def test_pool_errors_name_the_pool(self):
        """A stride of 0 or a 5x5 window on a 3x3 image is a ValueError naming the pooling function that raised it."""
        for pool in (max_pool2d, avg_pool2d):
            assert_raises_naming(lambda: pool(Tensor(np.zeros((1, 1, 4, 4))), 2, (1, 0)), [pool.__name__, "stride"],
                                 f"{pool.__name__} with stride (1, 0)")
            assert_raises_naming(lambda: pool(Tensor(np.zeros((1, 1, 3, 3))), 5), [pool.__name__, "(5, 5)"],
                                 f"{pool.__name__} with a 5x5 window on a 3x3 image")


# -- batchnorm --------------------------------------------------------------------------------------------------


def batch_stats(x):
    """Per-channel mean and BIASED variance of (N, C, H, W) in float64."""
    return x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))


def normalised(x, mean, var, gamma, beta, eps=1e-5):
    c = (1, -1, 1, 1)
    return (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + eps) * gamma.reshape(c) + beta.reshape(c)


@pytest.mark.checkpoint("batchnorm")
class TestBatchNorm:
    def test_parameters_and_buffers(self):
        """BatchNorm2d(3): Parameters weight (ones) and bias (zeros); float32 buffers running_mean (zeros), running_var (ones)."""
        bn = BatchNorm2d(3)
        assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"], \
            f"BatchNorm2d's parameters: got {[n for n, _ in bn.named_parameters()]}"
        assert isinstance(bn.weight, Parameter) and isinstance(bn.bias, Parameter), "weight and bias are Parameters"
        assert_close(bn.weight, np.ones(3), "initial weight", rtol=0, atol=0)
        assert_close(bn.bias, np.zeros(3), "initial bias", rtol=0, atol=0)
        buffers = dict(bn.named_buffers())
        assert list(buffers) == ["running_mean", "running_var"], f"BatchNorm2d's buffers: got {list(buffers)}"
        for name, value in (("running_mean", 0.0), ("running_var", 1.0)):
            assert isinstance(buffers[name], np.ndarray) and buffers[name].dtype == np.float32, \
                f"{name} should be a float32 numpy array, got {buffers[name]!r}"
            assert_close(buffers[name], np.full(3, value), f"initial {name}", rtol=0, atol=0)
        assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"], \
            f"state_dict keys: got {list(bn.state_dict())}"

    def test_input_is_not_modified(self):
        """Forward and backward leave the input unchanged."""
        data = random_array((2, 3, 2, 2), 80)
        x = Tensor(data.copy(), dtype=np.float64, requires_grad=True)
        BatchNorm2d(3)(x).backward(np.ones((2, 3, 2, 2)))
        assert_close(x.data, data, "the input after batch norm forward and backward", rtol=0, atol=0)

    def test_training_normalises_with_the_batch_statistics(self):
        """In training, each channel is (x - batch mean) / sqrt(batch variance + eps) * weight + bias, variance BIASED.

        Hint: normalise with the variance of THIS batch (divide by N*H*W, numpy's default); the
        unbiased N*H*W - 1 version belongs only in the running estimate.
        """
        data = random_array((2, 3, 2, 2), 81) * 3 + 1  # 8 values per channel: biased and unbiased differ by 8/7
        bn = BatchNorm2d(3)
        bn.weight.data[...] = [1.0, 2.0, -0.5]
        bn.bias.data[...] = [0.0, 1.0, 3.0]
        x = Tensor(data, dtype=np.float64)
        out = assert_made_by_op(lambda: bn(x), "BatchNorm2d(3)(x)", op="batch_norm2d", parents=(x, bn.weight, bn.bias))
        mean, var = batch_stats(data)
        assert_close(out, normalised(data, mean, var, bn.weight.data, bn.bias.data), "BatchNorm2d in training (seed 81)",
                     rtol=1e-6, atol=1e-6)

    def test_training_ignores_the_running_statistics(self):
        """In training the output does not depend on running_mean and running_var, whatever they hold."""
        data = random_array((3, 2, 2, 3), 82)
        bn = BatchNorm2d(2)
        bn.running_mean[...] = [100.0, -50.0]
        bn.running_var[...] = [9.0, 0.01]
        mean, var = batch_stats(data)
        assert_close(bn(Tensor(data, dtype=np.float64)), normalised(data, mean, var, np.ones(2), np.zeros(2)),
                     "BatchNorm2d in training with odd running statistics", rtol=1e-6, atol=1e-6)

    def test_running_statistics_update(self):
        """Each training step mixes in the batch: running = 0.9 running + 0.1 batch, with the UNBIASED variance."""
        first, second = random_array((2, 3, 2, 2), 83) + 2, random_array((2, 3, 2, 2), 84) * 2
        bn = BatchNorm2d(3)
        mean_array, var_array = bn.running_mean, bn.running_var
        expected_mean, expected_var = np.zeros(3), np.ones(3)
        for step, data in enumerate((first, second), start=1):
            bn(Tensor(data, dtype=np.float64))
            expected_mean = 0.9 * expected_mean + 0.1 * data.mean(axis=(0, 2, 3))
            expected_var = 0.9 * expected_var + 0.1 * data.var(axis=(0, 2, 3), ddof=1)
            assert_close(bn.running_mean, expected_mean, f"running_mean after training step {step}")
            assert_close(bn.running_var, expected_var, f"running_var after training step {step} (unbiased: "
                         "the batch variance times m / (m - 1), m = N*H*W)")
        assert bn.running_mean is mean_array and bn.running_var is var_array, \
            "update the running statistics in place: the registered buffers must stay the same arrays"

    def test_momentum_weights_the_newest_batch(self):
        """With momentum 0.3, one step from zero gives running_mean = 0.3 * batch mean, as in PyTorch."""
        data = random_array((4, 2, 1, 1), 85) + 5
        bn = BatchNorm2d(2, momentum=0.3)
        bn(Tensor(data, dtype=np.float64))
        assert_close(bn.running_mean, 0.3 * data.mean(axis=(0, 2, 3)), "running_mean with momentum 0.3")
        assert_close(bn.running_var, 0.7 + 0.3 * data.var(axis=(0, 2, 3), ddof=1), "running_var with momentum 0.3")

    def test_eval_uses_the_running_statistics(self):
        """In eval mode the output uses running_mean and running_var (and eps), and they do not change."""
        bn = BatchNorm2d(2, eps=1e-3)
        bn.running_mean[...] = [1.0, -2.0]
        bn.running_var[...] = [4.0, 0.25]
        bn.weight.data[...] = [2.0, 1.0]
        bn.eval()
        data = random_array((3, 2, 2, 2), 86)
        out = bn(Tensor(data, dtype=np.float64))
        expected = normalised(data, np.array([1.0, -2.0]), np.array([4.0, 0.25]), np.array([2.0, 1.0]), np.zeros(2), 1e-3)
        assert_close(out, expected, "BatchNorm2d in eval mode", rtol=1e-6, atol=1e-6)
        assert_close(bn.running_mean, [1.0, -2.0], "running_mean after an eval forward", rtol=0, atol=0)
        assert_close(bn.running_var, [4.0, 0.25], "running_var after an eval forward", rtol=0, atol=0)
        single = bn(Tensor(np.ones((1, 2, 1, 1))))  # one value per channel is fine in eval
        assert_shape(single, (1, 2, 1, 1), "BatchNorm2d in eval of a (1, 2, 1, 1) input")

    def test_gradcheck_in_training(self):
        """In training, the gradients for x, weight and bias match central differences (the batch statistics depend on x)."""
        running_mean, running_var = np.zeros(3), np.ones(3)
        gradcheck(lambda x, w, b: batch_norm2d(x, w, b, running_mean, running_var, True), random_array((2, 3, 2, 3), 87),
                  random_array(3, 88), random_array(3, 89), seed=90, name="batch_norm2d in training")

    def test_gradcheck_in_eval(self):
        """In eval, the gradients for x, weight and bias match central differences (the statistics are constants)."""
        running_mean, running_var = np.array([0.5, -1.0]), np.array([2.0, 0.5])
        gradcheck(lambda x, w, b: batch_norm2d(x, w, b, running_mean, running_var, False),
                  random_array((2, 2, 3, 2), 91), random_array(2, 92), random_array(2, 93), seed=94,
                  name="batch_norm2d in eval")

    def test_float32_stays_float32(self):
        """A float32 input gives a float32 output and float32 gradients."""
        bn = BatchNorm2d(2)
        x = Tensor(random_array((2, 2, 3, 3), 95, np.float32), requires_grad=True)
        out = bn(x)
        assert out.dtype == np.float32, f"BatchNorm2d of float32: got {out.dtype}"
        out.backward(np.ones(out.shape, np.float32))
        assert x.grad.dtype == np.float32 and bn.weight.grad.dtype == np.float32, \
            f"gradients of a float32 BatchNorm2d: x {x.grad.dtype}, weight {bn.weight.grad.dtype}"

    def test_state_dict_carries_the_running_statistics(self):
        """A fresh BatchNorm2d loaded with a trained one's state_dict gives the same eval outputs."""
        trained = BatchNorm2d(3)
        for seed in (96, 97):
            trained(Tensor(random_array((2, 3, 2, 2), seed) * 2 + 1))
        fresh = BatchNorm2d(3)
        fresh.load_state_dict(trained.state_dict())
        x = Tensor(random_array((2, 3, 2, 2), 98))
        assert_close(fresh.eval()(x), trained.eval()(x), "eval outputs after load_state_dict", rtol=0, atol=0)

    def test_large_offset_in_float32(self):
        """Channels around 1e4 with spread 1, in float32, still normalise to mean 0 and variance 1.

        Hint: E[x^2] - E[x]^2 subtracts two numbers near 1e8 that float32 holds to about 8: the
        variance drowns. Subtract the mean first, then square (what np.var does).
        """
        data = (random_array((4, 2, 3, 3), 99) + np.array([1e4, -3e3]).reshape(1, 2, 1, 1)).astype(np.float32)
        out = BatchNorm2d(2)(Tensor(data)).data.astype(np.float64)
        assert_close(out.mean(axis=(0, 2, 3)), np.zeros(2), "per-channel mean of the output", atol=1e-3)
        assert_close(out.var(axis=(0, 2, 3)), np.ones(2), "per-channel variance of the output", rtol=1e-2, atol=1e-2)

    def test_wrong_channel_count(self):
        """A (2, 4, 3, 3) input for BatchNorm2d(3) is a ValueError naming the shape and 3."""
        assert_raises_naming(lambda: BatchNorm2d(3)(Tensor(np.zeros((2, 4, 3, 3)))), ["(2, 4, 3, 3)", "3"],
                             "BatchNorm2d(3) of a 4-channel input")

    def test_one_value_per_channel_in_training(self):
        """In training a (1, 3, 1, 1) input has no variance to measure: a ValueError naming its shape."""
        assert_raises_naming(lambda: BatchNorm2d(3)(Tensor(np.zeros((1, 3, 1, 1)))), ["(1, 3, 1, 1)"],
                             "BatchNorm2d(3) in training of a (1, 3, 1, 1) input")

    def test_one_image_in_training(self):
        """In training a batch of ONE (1, 2, 2, 2) image is fine: its 4 pixels per channel give the statistics.

        Hint: what needs more than one value is each channel's variance over N*H*W, not the batch size N.
        """
        data = random_array((1, 2, 2, 2), 100)
        bn = BatchNorm2d(2)
        out = bn(Tensor(data, dtype=np.float64))
        mean, var = batch_stats(data)
        assert_close(out, normalised(data, mean, var, np.ones(2), np.zeros(2)),
                     "BatchNorm2d in training of one (1, 2, 2, 2) image (seed 100)", rtol=1e-6, atol=1e-6)
        assert_close(bn.running_var, 0.9 + 0.1 * data.var(axis=(0, 2, 3), ddof=1),
                     "running_var after one image (unbiased over its 4 pixels: m = N*H*W = 4)")

    def test_input_must_be_four_dimensional(self):
        """A (2, 3, 4) input for BatchNorm2d(3) (no width axis) is a ValueError naming its shape."""
        assert_raises_naming(lambda: BatchNorm2d(3)(Tensor(np.zeros((2, 3, 4)))), ["(2, 3, 4)"],
                             "BatchNorm2d(3) of a 3-D input")

    def test_eval_of_a_channel_with_zero_variance(self):
        """In eval a channel whose running_var is 0 divides by sqrt(eps): eps goes INSIDE the square root."""
        bn = BatchNorm2d(2, eps=1e-2)
        bn.running_var[...] = [0.0, 1.0]
        bn.eval()
        data = random_array((2, 2, 2, 2), 101)
        expected = normalised(data, np.zeros(2), np.array([0.0, 1.0]), np.ones(2), np.zeros(2), 1e-2)
        assert_close(bn(Tensor(data, dtype=np.float64)), expected,
                     "BatchNorm2d in eval with running_var [0, 1] and eps 1e-2: 1 / sqrt(var + eps)",
                     rtol=1e-6, atol=1e-6)


# -- optimize ---------------------------------------------------------------------------------------------------


def numpy_im2col_conv_step(x, w, b, grad):
    """The same forward and backward as plain numpy: pad, windows, one product each way, col2im by offsets."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
    cols = cols.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * 9, h * wd)
    out = (w.reshape(o, -1) @ cols).reshape(n, o, h, wd) + b.reshape(1, o, 1, 1)
    g = grad.reshape(n, o, h * wd)
    grad_w = np.einsum("nop,nkp->ok", g, cols)
    grad_cols = (w.reshape(o, -1).T @ g).reshape(n, c, 3, 3, h, wd)
    grad_padded = np.zeros_like(padded)
    for i in range(3):
        for j in range(3):
            grad_padded[:, :, i:i + h, j:j + wd] += grad_cols[:, :, i, j]
    return out, grad_padded[:, :, 1:-1, 1:-1], grad_w, grad.sum(axis=(0, 2, 3))


def numpy_im2col(x):
    """im2col for a 3x3 kernel, stride 1, padding 1, as plain numpy: one strided view, one copy."""
    n, c, h, w = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    return np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * 9, h * w)


def numpy_col2im(cols, shape):
    """col2im for a 3x3 kernel, stride 1, padding 1, as plain numpy: nine strided adds."""
    n, c, h, w = shape
    cols = cols.reshape(n, c, 3, 3, h, w)
    padded = np.zeros((n, c, h + 2, w + 2), dtype=cols.dtype)
    for i in range(3):
        for j in range(3):
            padded[:, :, i:i + h, j:j + w] += cols[:, :, i, j]
    return padded[:, :, 1:-1, 1:-1]


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_flop_count(self):
        """conv2d of (32, 3, 32, 32) -> 16 channels, 3x3, padding 1 is 2 * N * Ho * Wo * O * C * kh * kw = 28.3 MFLOP."""
        n, o, ho, wo = conv2d_shape((32, 3, 32, 32), (16, 3, 3, 3), 1, 1)
        flops = 2 * n * ho * wo * o * 3 * 3 * 3
        assert flops == 28_311_552, f"expected 28,311,552 multiply-adds x2, got {flops:,} (output {(n, o, ho, wo)})"

    @pytest.mark.budget
    def test_no_python_loop_over_pixels_or_images(self):
        """im2col and col2im of one 96x96 image and of 512 4x4 images each take at most 3x plain numpy (3x3, padding 1).

        Hint: a loop over output positions costs one Python step per pixel, 9,216 for a 96x96 image;
        a loop over images one per image. Let sliding_window_view and strided slices do the walking:
        the only loop left is over the kh*kw kernel offsets in col2im.
        """
        rng = np.random.default_rng(102)
        for shape in ((1, 1, 96, 96), (512, 1, 4, 4)):
            x = rng.standard_normal(shape, dtype=np.float32)
            cols = numpy_im2col(x)
            assert_close(im2col(x, 3, 1, 1), cols, f"im2col of {shape}", rtol=0, atol=0)
            assert_close(col2im(cols, shape, 3, 1, 1), numpy_col2im(cols, shape), f"col2im of {shape}")
            for what, candidate, baseline in (("im2col", lambda: im2col(x, 3, 1, 1), lambda: numpy_im2col(x)),
                                              ("col2im", lambda: col2im(cols, shape, 3, 1, 1),
                                               lambda: numpy_col2im(cols, shape))):
                assert_time_ratio(candidate, baseline, budget=3.0,
                                  what=f"{what} of {shape} float32, 3x3 kernel, padding 1, vs numpy")

    @pytest.mark.budget
    def test_forward_peak_memory_is_the_columns_and_the_output(self):
        """conv2d forward of (32, 3, 32, 32) -> 16, 3x3, padding 1 peaks under the im2col matrix + the output + a padded input.

        Hint: the bias added with `data = data + bias` makes a second output-sized array: add it in
        place. A Python list of windows, a float64 copy or a second copy of the columns shows up too.
        """
        rng = np.random.default_rng(100)
        x = Tensor(rng.standard_normal((32, 3, 32, 32), dtype=np.float32))
        w = Tensor(rng.standard_normal((16, 3, 3, 3), dtype=np.float32), requires_grad=True)
        b = Tensor(rng.standard_normal(16, dtype=np.float32), requires_grad=True)
        conv2d(x, w, b, 1, 1)  # warm up
        peak, out = peak_bytes(lambda: conv2d(x, w, b, 1, 1))
        columns, output, padded = 32 * 27 * 1024 * 4, 32 * 16 * 1024 * 4, 32 * 3 * 34 * 34 * 4
        budget = columns + output + padded + 2**16  # and 64 KiB for small arrays
        assert out.dtype == np.float32, f"the output should stay float32, got {out.dtype}"
        assert peak <= budget, (
            f"conv2d forward, (32, 3, 32, 32) float32 -> 16 channels: peak memory {peak / 2**20:.2f} MiB; the budget is "
            f"{budget / 2**20:.2f} MiB: the im2col matrix ({columns / 2**20:.2f} MiB) + the output "
            f"({output / 2**20:.2f} MiB) + one padded input ({padded / 2**20:.2f} MiB) + 64 KiB")

    @pytest.mark.budget
    def test_forward_and_backward_within_3x_of_numpy(self):
        """conv2d forward + backward of (32, 3, 32, 32) -> 16, 3x3, padding 1 takes at most 3x plain numpy im2col code.

        Hint: a Python loop over images or pixels costs 10x or more here; loop only over the kh*kw
        kernel offsets (in col2im), and let the matrix products do the rest.
        """
        rng = np.random.default_rng(101)
        x_data = rng.standard_normal((32, 3, 32, 32), dtype=np.float32)
        w_data = rng.standard_normal((16, 3, 3, 3), dtype=np.float32)
        b_data = rng.standard_normal(16, dtype=np.float32)
        grad = rng.standard_normal((32, 16, 32, 32), dtype=np.float32)
        x = Tensor(x_data, requires_grad=True)
        w, b = Tensor(w_data, requires_grad=True), Tensor(b_data, requires_grad=True)

        def candidate():
            x.grad = w.grad = b.grad = None
            conv2d(x, w, b, 1, 1).backward(grad)

        candidate()
        _, grad_x, grad_w, grad_b = numpy_im2col_conv_step(x_data, w_data, b_data, grad)
        assert_close(x.grad, grad_x, "x.grad of the budget workload", rtol=1e-3, atol=1e-3)
        assert_close(w.grad, grad_w.reshape(16, 3, 3, 3), "weight.grad of the budget workload", rtol=1e-3, atol=1e-2)
        assert_time_ratio(candidate, lambda: numpy_im2col_conv_step(x_data, w_data, b_data, grad), budget=3.0,
                          what="conv2d forward + backward, (32, 3, 32, 32) -> 16, 3x3, padding 1, vs numpy")

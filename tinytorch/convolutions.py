"""Kata 09 · Convolutions: a small filter slid over an image, made fast as one matrix product.

Images are NCHW arrays: (batch, channels, height, width). A convolution slides each of
O filters of shape (C, kh, kw) over the image and takes a dot product at every position
(a cross-correlation, as in PyTorch: the filter is not flipped):

    out[n, o, y, x] = bias[o] + sum over c, i, j of weight[o, c, i, j] * x_pad[n, c, y*sh + i, x*sw + j]

`conv2d_loops` writes that definition down as loops: the ground truth, and slow.
`im2col` copies every window into a column of a matrix, so that the whole convolution
becomes ONE matrix product with the flattened filters; `col2im` sends column gradients
back to the pixels they came from. `conv2d` is the differentiable op built on them (its
backward rule is registered here, with `backward_rule`), and `Conv2d` the layer.
Pooling reuses im2col; `BatchNorm2d` normalises each channel with batch statistics.

    model = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(8 * 4 * 4, 10))
    logits = model(images)                 # (N, 1, 8, 8) -> (N, 10)
"""

# Kata 09_convolutions: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/09_convolutions/README.md    Tests: python -m pytest katas/09_convolutions

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch.autograd import backward_rule
from tinytorch.layers import Module, Parameter, kaiming_uniform
from tinytorch.tensor import Tensor


def as_tensor(value) -> Tensor:
    """`value` itself if it is a Tensor, else a new (float32) Tensor of it."""
    return value if isinstance(value, Tensor) else Tensor(value)


def pair(value, name: str = "value") -> tuple[int, int]:
    """3 -> (3, 3) and (3, 2) -> (3, 2): kernel sizes, strides and paddings accept either form."""
    def whole(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if whole(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(whole(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints (height, width); got {value!r}")


# -- loops: the definition ------------------------------------------------------------------------


def window_output_size(input_size, kernel_size, stride=1, padding=0, op: str = "conv2d") -> tuple[int, int]:
    """(Ho, Wo) of a window of `kernel_size` slid over `input_size` (H, W): (H + 2p - k) // s + 1 per axis.

    Raises ValueError, naming `op` and the sizes, for a stride below 1, a negative padding,
    or a kernel larger than the padded input.
    """
    (h, w), (kh, kw) = pair(tuple(input_size), "input_size"), pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    raise NotImplementedError("09_convolutions · loops: check stride >= 1, padding >= 0 and that the kernel fits in the padded input (ValueError naming them), then return (Ho, Wo) as ints")


def conv2d_shape(x_shape, weight_shape, stride=1, padding=0) -> tuple:
    """The output shape (N, O, Ho, Wo) of a convolution of x (N, C, H, W) with weight (O, C, kh, kw).

    Raises ValueError naming both shapes if either is not 4-D or their channel counts differ.
    """
    raise NotImplementedError("09_convolutions · loops: check both shapes are 4-D with the same C (ValueError naming both), then return (N, O, Ho, Wo) using window_output_size")


def conv2d_loops(x, weight, bias=None, stride=1, padding=0) -> np.ndarray:
    """The convolution straight from its definition, one output value at a time (numpy in, numpy out).

    x (N, C, H, W), weight (O, C, kh, kw), bias (O,) or None -> (N, O, Ho, Wo). Slow on purpose:
    it is the ground truth that the fast version is checked against.
    """
    x, weight = np.asarray(x), np.asarray(weight)
    raise NotImplementedError("09_convolutions · loops: zero-pad H and W, then for every image, filter and output position take the sum of window * filter; add the bias per output channel")


# -- im2col: a convolution as one matrix product ----------------------------------------------------


def im2col(x: np.ndarray, kernel_size, stride=1, padding=0) -> np.ndarray:
    """Every (kh, kw) window of the zero-padded x (N, C, H, W) as a column: (N, C*kh*kw, Ho*Wo).

    Row c*kh*kw + i*kw + j of image n's matrix holds pixel (i, j) of channel c of each
    window; column y*Wo + x is the window at output position (y, x). So a weight
    (O, C, kh, kw) reshaped to (O, C*kh*kw) times this matrix is the convolution.
    """
    raise NotImplementedError("09_convolutions · im2col: pad H and W with zeros, take sliding_window_view over axes (2, 3), keep every stride-th window, then transpose and reshape into (N, C*kh*kw, Ho*Wo) with one copy")


def col2im(cols: np.ndarray, x_shape, kernel_size, stride=1, padding=0) -> np.ndarray:
    """The adjoint of im2col: add each column entry back onto the pixel it was copied from.

    cols (N, C*kh*kw, Ho*Wo) -> an array of x_shape (N, C, H, W). A pixel that lies in several
    windows receives the sum of all their entries; entries that fell on the padding are dropped.
    """
    raise NotImplementedError("09_convolutions · im2col: for each of the kh*kw kernel offsets, ADD that slice of the columns into a strided slice of a zero padded image; then cut the padding off")


# -- conv2d: the differentiable op and the layer -------------------------------------------------------


def conv2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """Convolve x (N, C, H, W) with weight (O, C, kh, kw), add bias (O,) if given: (N, O, Ho, Wo).

    stride and padding are ints or (h, w) pairs; padding is zeros on both sides of H and W.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    n, o, ho, wo = conv2d_shape(x.shape, weight.shape, stride, padding)
    raise NotImplementedError("09_convolutions · conv2d: check bias is (O,) (ValueError naming both shapes); `cols` = im2col(x); `data` = the (O, C*kh*kw) weight matrix times cols, reshaped to (N, O, Ho, Wo), plus the bias in place")
    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(data, "conv2d", parents, cols=cols, stride=stride, padding=padding)


@backward_rule("conv2d")
def conv2d_backward(out, grad):
    x, weight = out.parents[:2]
    cols, stride, padding = out.saved["cols"], out.saved["stride"], out.saved["padding"]
    raise NotImplementedError("09_convolutions · conv2d: grad_weight = sum over images of grad @ cols^T; grad_x = col2im(weight matrix^T @ grad) (None if x needs no gradient); grad_bias = grad summed over batch and space")


class Conv2d(Module):
    """A 2-D convolution layer: weight (out_channels, in_channels, kh, kw), bias (out_channels,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")
        raise NotImplementedError("09_convolutions · conv2d: self.weight = a Parameter from kaiming_uniform of shape (out, in, kh, kw) with fan_in = in * kh * kw; self.bias = zeros (out,) or None")

    def forward(self, x) -> Tensor:
        raise NotImplementedError("09_convolutions · conv2d: return conv2d of x with this layer's weight, bias, stride and padding")

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")


# -- pooling ------------------------------------------------------------------------------------------


def pool_shapes(x: Tensor, kernel_size, stride, padding, op: str) -> tuple:
    """Check a pooling's arguments; return ((N, C, H, W), (kh, kw), (sh, sw), (ph, pw), (Ho, Wo)).

    stride None means the kernel size. Padding may be at most half the kernel on each axis,
    so that every window holds at least one real pixel.
    """
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding")
    raise NotImplementedError("09_convolutions · pooling: check x is 4-D and padding is at most half the kernel on each axis (ValueError naming them); return the shapes and window_output_size")


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """The largest value of each window, per channel: (N, C, H, W) -> (N, C, Ho, Wo).

    Padding is -inf, so it never wins. The gradient goes to the window's first maximum (in
    row-major order within the window), as in PyTorch; a window whose real pixels are all
    -inf sends it to its first real pixel, never to the padding.
    """
    x = as_tensor(x)
    (n, c, h, w), kernel, stride, padding, (ho, wo) = pool_shapes(x, kernel_size, stride, padding, "max_pool2d")
    raise NotImplementedError("09_convolutions · pooling: pad with -inf, im2col the image as N*C one-channel images, `winners` = argmax over each window (N*C, Ho*Wo), `data` = those values reshaped to (N, C, Ho, Wo)")
    return Tensor.from_op(data, "max_pool2d", (x,), winners=winners, kernel=kernel, stride=stride, padding=padding)


@backward_rule("max_pool2d")
def max_pool2d_backward(out, grad):
    (x,) = out.parents
    winners, kernel, stride, padding = (out.saved[key] for key in ("winners", "kernel", "stride", "padding"))
    raise NotImplementedError("09_convolutions · pooling: put each window's gradient at its winner in zero columns (N*C, kh*kw, Ho*Wo), then col2im them back (accumulating overlapping windows)")


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad: bool = True) -> Tensor:
    """The mean of each window, per channel: (N, C, H, W) -> (N, C, Ho, Wo). Padding is zeros.

    count_include_pad=True (PyTorch's default) divides every window by kh*kw, padding
    included; False divides by the number of real pixels in the window.
    """
    x = as_tensor(x)
    (n, c, h, w), kernel, stride, padding, (ho, wo) = pool_shapes(x, kernel_size, stride, padding, "avg_pool2d")
    raise NotImplementedError("09_convolutions · pooling: im2col the image as N*C one-channel images, sum each window and divide by `divisor`: kh*kw, or (count_include_pad False) the real pixels per window, (1, Ho*Wo)")
    return Tensor.from_op(data, "avg_pool2d", (x,), divisor=divisor, kernel=kernel, stride=stride, padding=padding)


@backward_rule("avg_pool2d")
def avg_pool2d_backward(out, grad):
    (x,) = out.parents
    divisor, kernel, stride, padding = (out.saved[key] for key in ("divisor", "kernel", "stride", "padding"))
    raise NotImplementedError("09_convolutions · pooling: every pixel of a window receives the window's gradient / divisor: broadcast to columns and col2im them back")


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def __repr__(self) -> str:
        return (f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"count_include_pad={self.count_include_pad})")


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W): every axis but the batch axis, in one row per sample."""

    def forward(self, x) -> Tensor:
        x = as_tensor(x)
        raise NotImplementedError("09_convolutions · pooling: reshape with Tensor.reshape (so autograd sees it) to (N, product of the other axes)")

    def __repr__(self) -> str:
        return "Flatten()"


# -- batch normalisation ---------------------------------------------------------------------------------


def batch_norm2d(x, weight, bias, running_mean: np.ndarray, running_var: np.ndarray, training: bool,
                 momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of x (N, C, H, W), then scale by weight (C,) and shift by bias (C,).

    training: normalise with this batch's mean and (biased) variance over N, H and W, and
              update the running statistics in place: running = (1 - momentum) * running
              + momentum * batch, with the UNBIASED variance for running_var (as PyTorch).
    eval:     normalise with running_mean and running_var; they do not change.
    """
    x, weight, bias = as_tensor(x), as_tensor(weight), as_tensor(bias)
    raise NotImplementedError("09_convolutions · batchnorm: check x is (N, C, H, W) with C = len(running_mean) and, in training, more than one value per channel (ValueError); pick the statistics; `x_hat` = (x - mean) * inv_std with inv_std = 1 / sqrt(var + eps); `data` = x_hat * weight + bias per channel")
    return Tensor.from_op(data, "batch_norm2d", (x, weight, bias), x_hat=x_hat, inv_std=inv_std, training=training)


@backward_rule("batch_norm2d")
def batch_norm2d_backward(out, grad):
    x, weight, bias = out.parents
    x_hat, inv_std, training = out.saved["x_hat"], out.saved["inv_std"], out.saved["training"]
    raise NotImplementedError("09_convolutions · batchnorm: grad_weight = sum of grad * x_hat and grad_bias = sum of grad per channel; grad_x = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)) with g = grad * weight in training, inv_std * g in eval")


class BatchNorm2d(Module):
    """Per-channel normalisation of (N, C, H, W) inputs with a learned scale and shift.

    Parameters weight (ones) and bias (zeros), shape (C,); buffers running_mean (zeros)
    and running_var (ones), saved by state_dict. momentum weights the newest batch, as in PyTorch.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        raise NotImplementedError("09_convolutions · batchnorm: weight = Parameter of ones (C,), bias = Parameter of zeros (C,); register float32 buffers running_mean (zeros) and running_var (ones)")

    def forward(self, x) -> Tensor:
        return batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                            self.momentum, self.eps)

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum})"

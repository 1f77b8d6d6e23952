"""Kata 15 · Quantization: a trained model stored in 8-bit integers, and computed with them.

A float32 number takes 4 bytes. Quantization maps it to one of 2^bits evenly spaced
levels and keeps only the level's number, an int8, plus how the levels are laid out:
a `scale` (the step between two levels) and a `zero_point` (the integer that stands
for 0.0):

    q = clip(round(x / scale) + zero_point, qmin, qmax)     # quantize: float -> int8
    x ~ (q - zero_point) * scale                            # dequantize: int8 -> float

Every value inside the range comes back within scale / 2 of where it started.
Symmetric quantization fixes zero_point = 0 and uses [-127, 127]; affine (asymmetric)
quantization spends all 256 levels on [low, high]. Per-channel quantization gives each
output channel of a weight its own scale, so one large channel cannot blur the rest.

A quantized layer keeps int8 weights (a quarter of the bytes), quantizes its input with
a scale calibrated on sample batches, sums the integer products exactly, and rescales
once at the end with the combined scale:

    qmodel = quantize_model(model, calibration_batches)    # every Linear and Conv2d, in int8
    logits = qmodel(x)                                     # close to model(x)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from tinytorch.autograd import no_grad
from tinytorch.convolutions import Conv2d, conv2d_shape, im2col
from tinytorch.layers import Linear, Module
from tinytorch.tensor import Tensor


def as_array(x) -> np.ndarray:
    """The numpy array of a Tensor, or `x` as an array (no copy when none is needed)."""
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def along(values: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    """Per-channel `values` (C,) shaped to broadcast along `axis` of an ndim-D array; per tensor (axis None) as they are.

    along(scale (3,), axis=1, ndim=4) is scale.reshape(1, 3, 1, 1).
    """
    if axis is None:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


@dataclass
class Quantized:
    """Integers and the recipe to read them back: x ~ (values - zero_point) * scale.

    Per tensor (axis None) scale and zero_point are 0-d arrays; per channel they hold one
    entry for each index along `axis` of `values`.
    """

    values: np.ndarray  # int8, the shape of the tensor that was quantized
    scale: np.ndarray  # float32: () per tensor, (C,) per channel
    zero_point: np.ndarray  # int32, shaped like scale: the integer that stands for 0.0
    axis: int | None  # the (non-negative) channel axis, or None per tensor
    bits: int = 8
    symmetric: bool = False

    @property
    def shape(self) -> tuple:
        return self.values.shape

    @property
    def nbytes(self) -> int:
        """Bytes of everything kept: the integers, the scales and the zero points."""
        return self.values.nbytes + self.scale.nbytes + self.zero_point.nbytes


# -- qparams: a scale and a zero point for a range -------------------------------------------------------


def quant_range(bits: int = 8, symmetric: bool = False) -> tuple[int, int]:
    """(qmin, qmax): the integers a `bits`-bit quantization uses.

    Affine: all 2^bits values, [-2^(bits-1), 2^(bits-1) - 1] ([-128, 127] for 8 bits).
    Symmetric: the same without the lowest, [-(2^(bits-1) - 1), 2^(bits-1) - 1] ([-127, 127]),
    so that negating a level is a level too. bits is 2..8 (the integers are stored as int8).
    """
    # BEGIN SOLUTION qparams: refuse bits that are not a whole number in 2..8 (ValueError naming it); qmax = 2^(bits-1) - 1, qmin = -qmax when symmetric, else -qmax - 1
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be a whole number from 2 to 8 (the levels are stored as int8), got {bits!r}")
    qmax = 2 ** (int(bits) - 1) - 1
    return (-qmax if symmetric else -qmax - 1), qmax
    # END SOLUTION


def choose_qparams(low, high, bits: int = 8, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero_point) that lay the levels of `bits` over the range [low, high].

    low and high are numbers (per tensor) or arrays (C,) (per channel); the results have
    their shape: float32 scales and int32 zero points. The range is first widened to
    contain 0, so that 0.0 is exactly the level zero_point (zero padding, ReLU's zeros and
    a constant tensor survive) and the zero point lies in [qmin, qmax] without clamping.
    Symmetric: scale = max(|low|, |high|) / qmax, zero_point 0. Affine: scale =
    (high - low) / (qmax - qmin), zero_point = round(qmin - low / scale). A range of
    width 0 (all zeros) gets scale 1: a scale is never 0.
    """
    # BEGIN SOLUTION qparams: refuse a non-finite range or low > high (ValueError); widen [low, high] to contain 0; compute the scale in float64, store it as float32, replace 0 by 1; then the zero point from the stored scale
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"choose_qparams: the range must be finite, got low {low} and high {high}")
    if np.any(low > high):
        raise ValueError(f"choose_qparams: low must not exceed high, got low {low} and high {high}")
    qmin, qmax = quant_range(bits, symmetric)
    low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)  # 0.0 must be a level
    if symmetric:
        scale = np.maximum(-low, high) / qmax  # [-m, m] onto [-qmax, qmax]
    else:
        scale = (high - low) / (qmax - qmin)  # [low, high] onto every level
    scale = scale.astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0))  # all zeros (or a range float32 rounds to 0): never 0
    if symmetric:
        return scale, np.zeros(scale.shape, dtype=np.int32)
    # low / scale lies in [qmin - qmax, 0] because low <= 0 <= high: the zero point needs no clamping
    zero_point = np.round(qmin - low / scale)
    return scale, np.asarray(zero_point, dtype=np.int32)
    # END SOLUTION


# -- quantize and dequantize ---------------------------------------------------------------------------


def channel_axis(axis, ndim: int, where: str) -> int | None:
    """`axis` as a non-negative axis of an ndim-D tensor (None stays None: per tensor)."""
    # BEGIN SOLUTION quantize: None stays None; an axis that is not an int in [-ndim, ndim) is a ValueError naming it and ndim; otherwise return axis % ndim
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{where}: axis {axis!r} does not exist in a tensor of {ndim} dimensions")
    return int(axis) % ndim
    # END SOLUTION


def quantize_with(x, scale, zero_point, bits: int = 8, symmetric: bool = False, axis=None) -> Quantized:
    """Quantize x with a given scale and zero point: clip(round(x / scale) + zero_point, qmin, qmax) as int8.

    Per tensor (axis None) scale and zero_point are single numbers; per channel, arrays of
    x.shape[axis] entries. Values beyond the range the scale covers saturate at qmin or qmax.
    x itself is never changed. A scale that is not positive and finite, parameters of the wrong
    shape, or a zero point outside [qmin, qmax] are ValueErrors that name them.
    """
    x = as_array(x)
    scale = np.asarray(scale, dtype=np.float32)
    zero_point = np.asarray(zero_point, dtype=np.int32)
    # BEGIN SOLUTION quantize: check the axis, the parameters' shape, scale > 0 and finite, zero point in [qmin, qmax]; then round(x / scale) + zero_point (both broadcast along axis), clipped to [qmin, qmax], as int8
    axis = channel_axis(axis, x.ndim, "quantize")
    qmin, qmax = quant_range(bits, symmetric)
    expected = () if axis is None else (x.shape[axis],)
    if scale.shape != expected or zero_point.shape != expected:
        raise ValueError(f"quantize: scale and zero_point must have shape {expected} for x of shape {x.shape} "
                         f"and axis {axis}, got {scale.shape} and {zero_point.shape}")
    if not np.all((scale > 0) & np.isfinite(scale)):
        raise ValueError(f"quantize: every scale must be positive and finite, got {scale}")
    if np.any((zero_point < qmin) | (zero_point > qmax)):
        raise ValueError(f"quantize: the zero point must be a level in [{qmin}, {qmax}], got {zero_point}")
    levels = np.round(x / along(scale, axis, x.ndim)) + along(zero_point, axis, x.ndim)  # round first ...
    values = np.clip(levels, qmin, qmax).astype(np.int8)  # ... then clip: int8 would wrap, not saturate
    # END SOLUTION
    return Quantized(values, scale, zero_point, axis, bits, symmetric)


def quantize(x, bits: int = 8, symmetric: bool = False, axis=None) -> Quantized:
    """Quantize x with a scale and zero point chosen from its own range.

    Per tensor (axis None) the range is x's min and max; per channel, the min and max of
    each slice along `axis` (over every other axis), so each channel gets its own scale.
    """
    x = as_array(x)
    # BEGIN SOLUTION quantize: the min and max over every axis except `axis` (all of them per tensor; initial=0 so an empty x works), choose_qparams, then quantize_with
    axis = channel_axis(axis, x.ndim, "quantize")
    others = None if axis is None else tuple(i for i in range(x.ndim) if i != axis)
    low, high = x.min(axis=others, initial=0.0), x.max(axis=others, initial=0.0)  # (C,) per channel
    scale, zero_point = choose_qparams(low, high, bits, symmetric)
    return quantize_with(x, scale, zero_point, bits, symmetric, axis)
    # END SOLUTION


def dequantize(q: Quantized) -> np.ndarray:
    """The float32 values the integers stand for: (values - zero_point) * scale, along q.axis."""
    # BEGIN SOLUTION quantize: subtract the zero point in int32 (int8 would wrap), convert to float32, multiply by the scale (both broadcast along q.axis)
    ndim = q.values.ndim
    centered = q.values.astype(np.int32) - along(q.zero_point, q.axis, ndim)  # in [-255, 255]
    return centered.astype(np.float32) * along(q.scale, q.axis, ndim)
    # END SOLUTION


# -- calibration: the range of the activations ---------------------------------------------------------


def finite_values(x, where: str) -> np.ndarray:
    """x as an array, after checking it holds no nan or infinity (a ValueError naming `where`)."""
    # BEGIN SOLUTION observers: as_array(x); a ValueError naming `where` and the count if any value is nan or infinite
    values = as_array(x)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{where}: the batch holds {int(bad.sum())} nan or infinite values; "
                         "a range cannot be calibrated from them")
    return values
    # END SOLUTION


class MinMaxObserver:
    """Watches batches of activations; their range is the smallest and largest value of all of them."""

    def __init__(self):
        self.low, self.high = math.inf, -math.inf
        self.count = 0  # values observed so far

    def observe(self, x) -> None:
        """Widen the range to hold every value of this batch too (an empty batch changes nothing)."""
        values = finite_values(x, "MinMaxObserver.observe")
        # BEGIN SOLUTION observers: skip an empty batch; otherwise low = min(low, batch min), high = max(high, batch max), count += size
        if values.size == 0:
            return
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        self.count += values.size
        # END SOLUTION

    def range(self) -> tuple[float, float]:
        """(low, high) over every batch observed; a ValueError if there was none."""
        # BEGIN SOLUTION observers: a ValueError if nothing was observed, else (low, high)
        if self.count == 0:
            raise ValueError("MinMaxObserver: nothing observed yet; call observe() on calibration batches first")
        return self.low, self.high
        # END SOLUTION

    def qparams(self, bits: int = 8, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return choose_qparams(*self.range(), bits=bits, symmetric=symmetric)


class PercentileObserver:
    """Watches batches of activations; their range runs from the (100 - p)-th to the p-th percentile of all values.

    With p = 99.99 the largest and smallest 0.01% of the values fall outside and will clip,
    instead of stretching the scale for everyone. Keeps every value it sees (a
    production observer keeps a histogram instead).
    """

    def __init__(self, percentile: float = 99.99):
        # BEGIN SOLUTION observers: refuse a percentile outside (50, 100] (ValueError naming it)
        if not 50 < percentile <= 100:
            raise ValueError(f"PercentileObserver: percentile must be in (50, 100], got {percentile!r}; "
                             "99.99 keeps all but the outermost 0.01% of values on each side")
        # END SOLUTION
        self.percentile = float(percentile)
        self.batches = []  # a flat copy of each batch observed
        self.count = 0

    def observe(self, x) -> None:
        """Keep a flat copy of this batch's values (an empty batch changes nothing)."""
        values = finite_values(x, "PercentileObserver.observe")
        # BEGIN SOLUTION observers: skip an empty batch; otherwise append a flat COPY of the values (the caller may reuse its array) and add to count
        if values.size == 0:
            return
        self.batches.append(np.array(values).reshape(-1))
        self.count += values.size
        # END SOLUTION

    def range(self) -> tuple[float, float]:
        """(the (100 - p)-th percentile, the p-th percentile) of every value observed; a ValueError if none was."""
        # BEGIN SOLUTION observers: a ValueError if nothing was observed; else the percentiles 100 - p and p of all batches together
        if self.count == 0:
            raise ValueError("PercentileObserver: nothing observed yet; call observe() on calibration batches first")
        values = np.concatenate(self.batches)
        return float(np.percentile(values, 100 - self.percentile)), float(np.percentile(values, self.percentile))
        # END SOLUTION

    def qparams(self, bits: int = 8, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return choose_qparams(*self.range(), bits=bits, symmetric=symmetric)


# -- integer matmul: exact sums of integer products ------------------------------------------------------

INT32_MAX = 2 ** 31 - 1


def integer_matmul(a, b) -> np.ndarray:
    """a @ b for integer arrays, as int32: every product summed exactly, as an int32 accumulator does.

    Shapes as np.matmul ((..., M, K) @ (..., K, N)). Raises TypeError for non-integer
    arrays, and OverflowError when K * max|a| * max|b| could pass the int32 maximum.
    """
    a, b = np.asarray(a), np.asarray(b)
    # BEGIN SOLUTION integer_matmul: refuse non-integer dtypes (TypeError) and sums that could pass 2^31 - 1 (OverflowError); multiply as float64, where BLAS is fast and every integer below 2^53 is exact; return int32
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise TypeError(f"integer_matmul: expected integer arrays, got {a.dtype} and {b.dtype}")
    largest = a.shape[-1] * int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0))  # Python ints: no overflow
    if largest > INT32_MAX:
        raise OverflowError(f"integer_matmul: with K = {a.shape[-1]}, a sum can reach {largest}, past the int32 "
                            f"maximum {INT32_MAX}")
    # numpy has no integer BLAS; float64 products and sums of these integers stay below 2^31 < 2^53: exact
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int32)
    # END SOLUTION


# -- quantized layers --------------------------------------------------------------------------------------


class QuantizedLayer(Module):
    """What a quantized layer keeps, and how it reads its input.

    The float layer's weight, quantized symmetrically (zero points 0): per output channel,
    one scale for each index along `channel_axis` of the weight, or per tensor. Its bias,
    a float32 copy. The scale and zero point the input is quantized with (affine,
    calibrated beforehand). Nothing else of the float layer is kept: no float weight, no
    Parameter. Quantized layers are for inference; their outputs are constant Tensors.
    """

    def __init__(self, layer: Module, input_scale, input_zero_point, bits: int, per_channel: bool, channel_axis: int):
        super().__init__()
        self.bits = bits
        # BEGIN SOLUTION quantized_linear: self.weight = quantize(layer.weight.data, bits, symmetric, axis channel_axis per channel or None); self.bias = a float32 copy of the bias's data (or None); self.input_scale and self.input_zero_point as float32 and int32 arrays
        self.weight = quantize(layer.weight.data, bits, symmetric=True, axis=channel_axis if per_channel else None)
        self.bias = None if layer.bias is None else np.array(layer.bias.data, dtype=np.float32)
        self.input_scale = np.asarray(input_scale, dtype=np.float32)
        self.input_zero_point = np.asarray(input_zero_point, dtype=np.int32)
        # END SOLUTION

    @property
    def nbytes(self) -> int:
        """Bytes of everything the layer keeps: the quantized weight, the bias and the input's scale and zero point."""
        # BEGIN SOLUTION quantized_linear: add the weight's nbytes, the bias's (if any), the input scale's and zero point's
        bias = 0 if self.bias is None else self.bias.nbytes
        return self.weight.nbytes + bias + self.input_scale.nbytes + self.input_zero_point.nbytes
        # END SOLUTION

    def centered_input(self, x: np.ndarray) -> np.ndarray:
        """x quantized with the input's scale and zero point, minus the zero point, in int32: x ~ input_scale * centered.

        The centered levels lie in [-255, 255], and 0 stands for exactly 0.0.
        """
        # BEGIN SOLUTION quantized_linear: quantize_with the input's scale, zero point and bits (affine); subtract the zero point in int32
        x_q = quantize_with(x, self.input_scale, self.input_zero_point, self.bits).values  # int8
        return x_q.astype(np.int32) - self.input_zero_point
        # END SOLUTION

    def __repr__(self) -> str:
        per = "channel" if self.weight.axis is not None else "tensor"
        return f"{type(self).__name__}(weight {self.weight.shape}, bits={self.bits}, per_{per})"


class QuantizedLinear(QuantizedLayer):
    """A Linear layer kept in int8: y ~ x @ weight + bias, computed from integer products.

    y = input_scale * weight_scale * ((x_q - input_zero_point) @ weight_q) + bias, where the
    product is summed exactly in integers and the combined scale has one entry per output.
    """

    def __init__(self, linear: Linear, input_scale, input_zero_point, bits: int = 8, per_channel: bool = True):
        # BEGIN SOLUTION quantized_linear: QuantizedLayer's __init__, with the axis of the (in_features, out_features) weight that holds the output channels
        super().__init__(linear, input_scale, input_zero_point, bits, per_channel, channel_axis=1)
        # END SOLUTION
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        # BEGIN SOLUTION quantized_linear: check the last dimension (ValueError); integer_matmul of the centered input and the int8 weight; times input_scale * weight scale; plus the bias
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"QuantizedLinear: expected an input whose last dimension is in_features = "
                             f"{self.in_features}, got shape {x.shape}")
        accumulated = integer_matmul(self.centered_input(x.data), self.weight.values)  # int32 (..., out): exact
        data = accumulated * (self.input_scale * self.weight.scale)  # the combined scale: one per output channel
        if self.bias is not None:
            data += self.bias
        # END SOLUTION
        return Tensor.from_op(data.astype(np.float32), "quantized_linear", ())


class QuantizedConv2d(QuantizedLayer):
    """A Conv2d layer kept in int8: the same integer recipe, over im2col's windows.

    The weight (out_channels, in_channels, kh, kw) has its output channels on axis 0. The
    input is quantized and centered BEFORE im2col pads it, so that the padding is the level
    of 0.0, as the float convolution's zero padding is.
    """

    def __init__(self, conv: Conv2d, input_scale, input_zero_point, bits: int = 8, per_channel: bool = True):
        # BEGIN SOLUTION quantized_conv2d: QuantizedLayer's __init__, with the axis of the (out, in, kh, kw) weight that holds the output channels
        super().__init__(conv, input_scale, input_zero_point, bits, per_channel, channel_axis=0)
        # END SOLUTION
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        # BEGIN SOLUTION quantized_conv2d: the output shape from conv2d_shape (it checks the input); im2col of the centered input; integer_matmul of the (O, C*kh*kw) weight and the columns; times the combined scale per output channel; reshape; plus the bias
        n, o, ho, wo = conv2d_shape(x.shape, self.weight.shape, self.stride, self.padding)
        # Centered levels first, then padding: a padded 0 is then exactly 0.0, whatever the zero point
        cols = im2col(self.centered_input(x.data), self.kernel_size, self.stride, self.padding)  # (N, C*kh*kw, Ho*Wo)
        accumulated = integer_matmul(self.weight.values.reshape(o, -1), cols)  # (O, C*kh*kw) @ ... -> (N, O, Ho*Wo)
        data = accumulated * along(self.input_scale * self.weight.scale, 1, 3)  # one combined scale per channel
        data = data.reshape(n, o, ho, wo)
        if self.bias is not None:
            data += self.bias.reshape(1, o, 1, 1)
        # END SOLUTION
        return Tensor.from_op(data.astype(np.float32), "quantized_conv2d", ())


# -- quantize_model: calibrate, then convert every layer ------------------------------------------------------

QUANTIZABLE = (Linear, Conv2d)


class Calibrating(Module):
    """Stands in for a layer while calibrating: shows each input to an observer, then runs the layer."""

    def __init__(self, layer: Module, observer):
        super().__init__()
        self.layer, self.observer = layer, observer

    def forward(self, x):
        self.observer.observe(x)
        return self.layer(x)


def replace_layers(model: Module, replace) -> Module:
    """Put replace(m) in place of every module m of `model`, wherever its parent keeps it.

    A parent keeps a child as an attribute (registered by Module) and sometimes also in a
    list (Sequential's `layers`); both are updated. `replace` returns its argument for a
    module to keep; it must return the same object each time it meets the same module.
    Returns replace(model): the root may be replaced too.
    """
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, Module):
                new = replace(value)
                if new is not value:
                    setattr(module, name, new)
            elif isinstance(value, list):
                value[:] = [replace(item) if isinstance(item, Module) else item for item in value]
    return replace(model)


def quantize_layer(layer: Module, observer, bits: int, per_channel: bool) -> Module:
    """The quantized twin of a float layer, its input quantized affinely with the observer's range."""
    # BEGIN SOLUTION quantize_model: the observer's affine qparams for `bits`; then QuantizedConv2d of a Conv2d, QuantizedLinear of a Linear, with them
    input_scale, input_zero_point = observer.qparams(bits)
    quantized = QuantizedConv2d if isinstance(layer, Conv2d) else QuantizedLinear
    return quantized(layer, input_scale, input_zero_point, bits, per_channel)
    # END SOLUTION


def quantize_model(model: Module, calibration_batches, bits: int = 8, per_channel: bool = True,
                   observer=MinMaxObserver) -> Module:
    """A copy of `model` with every Linear and Conv2d replaced by its quantized twin; `model` is left as it was.

    Calibration: each layer's input is watched by its own observer (a new `observer()`)
    while the copy, in eval mode and without a graph, runs every batch of
    `calibration_batches` (inputs only). A layer that saw no calibration data is a
    ValueError naming it. The copy is returned in eval mode.
    """
    # BEGIN SOLUTION quantize_model: deep-copy the model; wrap every quantizable layer in Calibrating (one wrapper per layer); eval mode, and under no_grad run every batch; check every observer saw data; replace each wrapper by quantize_layer
    model = copy.deepcopy(model)
    wrappers = {}  # id(layer) -> its Calibrating wrapper: a layer used twice is watched once

    def watch(module):
        if not isinstance(module, QUANTIZABLE):
            return module
        if id(module) not in wrappers:
            wrappers[id(module)] = Calibrating(module, observer())
        return wrappers[id(module)]

    model = replace_layers(model, watch)
    model.eval()
    with no_grad():
        for batch in calibration_batches:
            model(batch)
    for name, module in model.named_modules():
        if isinstance(module, Calibrating) and module.observer.count == 0:
            raise ValueError(f"quantize_model: layer {name or 'model'!r} ({module.layer!r}) saw no calibration data; "
                             "pass batches of inputs that reach every layer")
    converted = {}

    def convert(module):
        if not isinstance(module, Calibrating):
            return module
        if id(module) not in converted:
            converted[id(module)] = quantize_layer(module.layer, module.observer, bits, per_channel)
        return converted[id(module)]

    return replace_layers(model, convert).eval()  # the new layers too
    # END SOLUTION

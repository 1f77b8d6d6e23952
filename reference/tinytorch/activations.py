"""Kata 02 · Activations: the nonlinearities between layers, computed without overflow.

Each activation is a function (`relu(x)`) and a small layer object (`ReLU()`) that
calls it, so it can sit in a `Sequential` later. Every function records its op
name with `Tensor.from_op`; kata 03 supplies the gradients.
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.tensor import Tensor

# The constant in GELU's tanh approximation. A Python float, not np.sqrt(...): a numpy
# float64 scalar would turn every float32 result into float64.
GELU_SCALE = math.sqrt(2.0 / math.pi)


def relu(x: Tensor) -> Tensor:
    """max(0, x), elementwise."""
    # BEGIN SOLUTION relu: compute `data`, max(0, x) elementwise
    data = np.maximum(x.data, 0)
    # END SOLUTION
    return Tensor.from_op(data, "relu", (x,))


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed so that exp never overflows."""
    # BEGIN SOLUTION sigmoid: compute `data` so that np.exp only ever sees non-positive numbers
    e = np.exp(-np.abs(x.data))  # in (0, 1]: cannot overflow
    data = np.where(x.data >= 0, 1 / (1 + e), e / (1 + e))
    # END SOLUTION
    return Tensor.from_op(data, "sigmoid", (x,))


def tanh(x: Tensor) -> Tensor:
    """The hyperbolic tangent, elementwise."""
    # BEGIN SOLUTION tanh: compute `data`, the elementwise hyperbolic tangent
    data = np.tanh(x.data)
    # END SOLUTION
    return Tensor.from_op(data, "tanh", (x,))


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    # BEGIN SOLUTION gelu: compute `data` with the tanh approximation
    cube = x.data * x.data * x.data  # numpy's general ** 3 path is about 20x slower on float32
    data = 0.5 * x.data * (1 + np.tanh(GELU_SCALE * (x.data + 0.044715 * cube)))
    # END SOLUTION
    return Tensor.from_op(data, "gelu", (x,))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so exp cannot overflow."""
    # BEGIN SOLUTION softmax: compute `data`; subtract the maximum along `axis` first, and avoid needless temporaries
    data = x.data - x.data.max(axis=axis, keepdims=True)
    np.exp(data, out=data)
    data /= data.sum(axis=axis, keepdims=True)
    # END SOLUTION
    return Tensor.from_op(data, "softmax", (x,), axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, without ever taking the log of an underflowed 0."""
    # BEGIN SOLUTION log_softmax: compute `data` = shifted - log(sum(exp(shifted))), where shifted = x - max along `axis`
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    data = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    # END SOLUTION
    return Tensor.from_op(data, "log_softmax", (x,), axis=axis)


class ReLU:
    def __call__(self, x: Tensor) -> Tensor:
        return relu(x)

    def __repr__(self) -> str:
        return "ReLU()"


class Sigmoid:
    def __call__(self, x: Tensor) -> Tensor:
        return sigmoid(x)

    def __repr__(self) -> str:
        return "Sigmoid()"


class Tanh:
    def __call__(self, x: Tensor) -> Tensor:
        return tanh(x)

    def __repr__(self) -> str:
        return "Tanh()"


class GELU:
    def __call__(self, x: Tensor) -> Tensor:
        return gelu(x)

    def __repr__(self) -> str:
        return "GELU()"


class Softmax:
    def __init__(self, axis: int = -1):
        self.axis = axis

    def __call__(self, x: Tensor) -> Tensor:
        return softmax(x, self.axis)

    def __repr__(self) -> str:
        return f"Softmax(axis={self.axis})"


class LogSoftmax:
    def __init__(self, axis: int = -1):
        self.axis = axis

    def __call__(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.axis)

    def __repr__(self) -> str:
        return f"LogSoftmax(axis={self.axis})"

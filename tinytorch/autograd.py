"""Kata 03 · Autograd: reverse-mode differentiation over the graph that ops record.

Every op result made by `Tensor.from_op` from inputs that require grad carries
`op` (a name), `parents` (its inputs) and `saved` (what its rule needs). `backward`
orders that graph, seeds the output's gradient, and walks it in reverse, asking
each op's *backward rule* for the gradients of its parents.

Adding a differentiable op anywhere in the package takes two steps, both in the
module that owns the op (see `tinytorch/losses.py` for an example):

    out = Tensor.from_op(data, "my_op", (x,), anything=needed)   # forward

    @backward_rule("my_op")
    def my_op_backward(out, grad):                               # backward
        (x,) = out.parents
        return (grad * ...,)                                     # one per parent

A rule returns one numpy array per parent (or None for a parent that takes no
gradient). The engine sums what arrives at each tensor and reduces broadcast
gradients back to the parent's shape, so rules never have to.
"""

# Kata 03_autograd: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/03_autograd/README.md    Tests: python -m pytest katas/03_autograd

from __future__ import annotations

import contextlib
import math

import numpy as np

from tinytorch.tensor import Tensor

# -- the rule registry (scaffolding: the extension point every kata uses) --------------

BACKWARD_RULES: dict = {}


def backward_rule(op: str):
    """Register the decorated function as the backward rule of op `op`."""

    def register(rule):
        BACKWARD_RULES[op] = rule
        return rule

    return register


# -- the graph --------------------------------------------------------------------------

_recording = True


def is_grad_enabled() -> bool:
    return _recording


@contextlib.contextmanager
def no_grad():
    """Inside `with no_grad():` ops record nothing (evaluation, optimizer updates)."""
    global _recording
    raise NotImplementedError("03_autograd · graph: turn recording off for the body of the with-block, and restore it afterwards even on error")


def record(out: Tensor, op: str, parents: tuple, saved: dict) -> None:
    """Called by `Tensor.from_op` when a parent requires grad: remember how `out` was made."""
    raise NotImplementedError("03_autograd · graph: unless recording is off, mark `out` as requiring grad and store op, parents and saved on it")


def topological_order(root: Tensor) -> list:
    """Every tensor `root` depends on, each listed after all of its parents. No recursion."""
    raise NotImplementedError("03_autograd · graph: depth-first search with an explicit stack; append a node once all its parents are in the list")


# -- the engine -------------------------------------------------------------------------


def backward(root: Tensor, grad=None) -> None:
    """Accumulate d(root)/d(leaf) into `.grad` of every leaf that requires grad.

    The graph is let go of as the walk passes each node, so its activations can be
    freed; a second backward() through the same graph is an error, as in PyTorch.
    """
    raise NotImplementedError("03_autograd · engine: seed the gradient, walk the graph in reverse order calling each op's rule, accumulate into leaves")


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`."""
    raise NotImplementedError("03_autograd · unbroadcast: sum away leading axes, then sum (keepdims) the axes where `shape` has size 1")


# -- rules: arithmetic --------------------------------------------------------------------


@backward_rule("add")
def add_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradients of both parents of a + b")


@backward_rule("sub")
def sub_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradients of both parents of a - b")


@backward_rule("mul")
def mul_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradients of both parents of a * b")


@backward_rule("div")
def div_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradients of both parents of a / b")


@backward_rule("pow")
def pow_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradients of base and exponent of a ** b (the exponent's only if it requires grad), 0 and not nan at a zero base or exponent")


@backward_rule("neg")
def neg_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradient of the parent of -a")


@backward_rule("exp")
def exp_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradient of the parent of exp(a)")


@backward_rule("log")
def log_backward(out, grad):
    raise NotImplementedError("03_autograd · arithmetic_rules: return the gradient of the parent of log(a)")


# -- rules: shapes, reductions, matmul ------------------------------------------------------


@backward_rule("reshape")
def reshape_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: return the gradient reshaped to the parent's shape")


@backward_rule("transpose")
def transpose_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: undo the permutation saved in out.saved[\"axes\"]")


@backward_rule("getitem")
def getitem_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: scatter the gradient into zeros of the parent's shape (np.add.at handles repeated indices)")


def _expand_reduced(grad, out):
    """Give a reduction's gradient back the axes it removed (size 1), ready to broadcast."""
    axis, keepdims = out.saved["axis"], out.saved["keepdims"]
    if keepdims or axis is None:  # already broadcastable against the input
        return grad
    return np.expand_dims(grad, axis)


@backward_rule("sum")
def sum_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: every input element receives the gradient of the sum it fed")


@backward_rule("mean")
def mean_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: like sum, divided by how many elements each mean averaged")


@backward_rule("max")
def max_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: send the gradient to the elements equal to the maximum (split evenly between ties)")


@backward_rule("matmul")
def matmul_backward(out, grad):
    raise NotImplementedError("03_autograd · shape_rules: dA = grad @ B^T, dB = A^T @ grad (transposing the last two axes)")


# -- rules: activations (kata 02 records these ops) ---------------------------------------------


@backward_rule("relu")
def relu_backward(out, grad):
    raise NotImplementedError("03_autograd · activation_rules: pass the gradient where the input was positive, zero elsewhere")


@backward_rule("sigmoid")
def sigmoid_backward(out, grad):
    raise NotImplementedError("03_autograd · activation_rules: sigmoid' = s * (1 - s), with s the output")


@backward_rule("tanh")
def tanh_backward(out, grad):
    raise NotImplementedError("03_autograd · activation_rules: tanh' = 1 - t**2, with t the output")


@backward_rule("gelu")
def gelu_backward(out, grad):
    raise NotImplementedError("03_autograd · activation_rules: differentiate 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3)")


@backward_rule("softmax")
def softmax_backward(out, grad):
    raise NotImplementedError("03_autograd · activation_rules: y * (grad - sum(grad * y)) along the saved axis, with y the output")


@backward_rule("log_softmax")
def log_softmax_backward(out, grad):
    raise NotImplementedError("03_autograd · activation_rules: grad - softmax * sum(grad) along the saved axis; softmax is exp(output)")

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
    # BEGIN SOLUTION graph: turn recording off for the body of the with-block, and restore it afterwards even on error
    previous = _recording
    _recording = False
    try:
        yield
    finally:
        _recording = previous
    # END SOLUTION


def record(out: Tensor, op: str, parents: tuple, saved: dict) -> None:
    """Called by `Tensor.from_op` when a parent requires grad: remember how `out` was made."""
    # BEGIN SOLUTION graph: unless recording is off, mark `out` as requiring grad and store op, parents and saved on it
    if not _recording:
        return
    out.requires_grad = True
    out.op = op
    out.parents = tuple(parents)
    out.saved = saved
    # END SOLUTION


def topological_order(root: Tensor) -> list:
    """Every tensor `root` depends on, each listed after all of its parents. No recursion."""
    # BEGIN SOLUTION graph: depth-first search with an explicit stack; append a node once all its parents are in the list
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order
    # END SOLUTION


# -- the engine -------------------------------------------------------------------------


def backward(root: Tensor, grad=None) -> None:
    """Accumulate d(root)/d(leaf) into `.grad` of every leaf that requires grad.

    The graph is let go of as the walk passes each node, so its activations can be
    freed; a second backward() through the same graph is an error, as in PyTorch.
    """
    # BEGIN SOLUTION engine: seed the gradient, walk the graph in reverse order calling each op's rule, accumulate into leaves
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {root.shape} needs an explicit gradient "
                f"of that shape; only a single-element output (a loss) can be seeded with 1")
        grad = np.ones_like(root.data)
    else:
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=root.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"backward(): gradient of shape {grad.shape} given for an output of shape {root.shape}")
    if not root.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad; no input it depends on has requires_grad=True")

    pending = {id(root): grad}
    for node in reversed(topological_order(root)):
        node_grad = pending.pop(id(node), None)
        if node_grad is None:
            continue
        if node.op is None:  # a leaf: keep its gradient
            if node.grad is None:
                node.grad = np.array(node_grad, dtype=node.dtype)  # a private copy
            else:
                node.grad += node_grad
            continue
        if not node.parents:  # an op with no parents left: an earlier backward() freed them
            raise RuntimeError(
                f"backward(): the graph behind op {node.op!r} was freed by an earlier backward(); "
                f"run the forward pass again to rebuild it")
        rule = BACKWARD_RULES.get(node.op)
        if rule is None:
            raise RuntimeError(f"backward(): no backward rule is registered for op {node.op!r}")
        for parent, parent_grad in zip(node.parents, rule(node, node_grad)):
            if parent_grad is None or not parent.requires_grad:
                continue
            if parent_grad.shape != parent.shape:
                parent_grad = unbroadcast(parent_grad, parent.shape)
            if id(parent) in pending:
                pending[id(parent)] = pending[id(parent)] + parent_grad
            else:
                pending[id(parent)] = parent_grad
        # This node's gradient has been passed on: let go of the graph behind it.
        node.parents, node.saved = (), {}
    # END SOLUTION


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`."""
    # BEGIN SOLUTION unbroadcast: sum away leading axes, then sum (keepdims) the axes where `shape` has size 1
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
    # END SOLUTION


# -- rules: arithmetic --------------------------------------------------------------------


@backward_rule("add")
def add_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradients of both parents of a + b
    return grad, grad
    # END SOLUTION


@backward_rule("sub")
def sub_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradients of both parents of a - b
    return grad, -grad
    # END SOLUTION


@backward_rule("mul")
def mul_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradients of both parents of a * b
    a, b = out.parents
    return grad * b.data, grad * a.data
    # END SOLUTION


@backward_rule("div")
def div_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradients of both parents of a / b
    a, b = out.parents
    grad_a = grad / b.data
    return grad_a, -grad_a * out.data
    # END SOLUTION


@backward_rule("pow")
def pow_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradients of base and exponent of a ** b (the exponent's only if it requires grad), 0 and not nan at a zero base or exponent
    a, b = out.parents
    # b * a**(b-1), and exactly 0 where b == 0: a**0 is the constant 1 (at a = 0, 0 * 0**-1 would be nan).
    grad_a = grad * b.data * np.where(b.data == 0, 1, a.data) ** (b.data - 1)
    if not b.requires_grad:  # the usual x ** 2: log(a) of a negative base would be nan
        return grad_a, None
    # a**b * log(a), and exactly 0 where a == 0 and b >= 0: 0**b is 0 for every b > 0, so it does not
    # change with b (at b = 0 PyTorch also takes 0), while 0 * log(0) would be nan.
    zero_base = (a.data == 0) & (b.data >= 0)
    grad_b = grad * out.data * np.log(np.where(zero_base, 1, a.data))
    return grad_a, grad_b
    # END SOLUTION


@backward_rule("neg")
def neg_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradient of the parent of -a
    return (-grad,)
    # END SOLUTION


@backward_rule("exp")
def exp_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradient of the parent of exp(a)
    return (grad * out.data,)
    # END SOLUTION


@backward_rule("log")
def log_backward(out, grad):
    # BEGIN SOLUTION arithmetic_rules: return the gradient of the parent of log(a)
    (a,) = out.parents
    return (grad / a.data,)
    # END SOLUTION


# -- rules: shapes, reductions, matmul ------------------------------------------------------


@backward_rule("reshape")
def reshape_backward(out, grad):
    # BEGIN SOLUTION shape_rules: return the gradient reshaped to the parent's shape
    (a,) = out.parents
    return (grad.reshape(a.shape),)
    # END SOLUTION


@backward_rule("transpose")
def transpose_backward(out, grad):
    # BEGIN SOLUTION shape_rules: undo the permutation saved in out.saved["axes"]
    return (grad.transpose(np.argsort(out.saved["axes"])),)
    # END SOLUTION


@backward_rule("getitem")
def getitem_backward(out, grad):
    # BEGIN SOLUTION shape_rules: scatter the gradient into zeros of the parent's shape (np.add.at handles repeated indices)
    (a,) = out.parents
    full = np.zeros_like(a.data)
    index = out.saved["index"]
    parts = index if isinstance(index, tuple) else (index,)
    if all(isinstance(p, (int, slice, type(None), type(Ellipsis))) for p in parts):
        full[index] += grad  # a basic index names each element once: a plain (much faster) add is exact
    else:
        np.add.at(full, index, grad)  # index arrays may repeat an element: add each occurrence
    return (full,)
    # END SOLUTION


def _expand_reduced(grad, out):
    """Give a reduction's gradient back the axes it removed (size 1), ready to broadcast."""
    axis, keepdims = out.saved["axis"], out.saved["keepdims"]
    if keepdims or axis is None:  # already broadcastable against the input
        return grad
    return np.expand_dims(grad, axis)


@backward_rule("sum")
def sum_backward(out, grad):
    # BEGIN SOLUTION shape_rules: every input element receives the gradient of the sum it fed
    (a,) = out.parents
    return (np.broadcast_to(_expand_reduced(grad, out), a.shape),)
    # END SOLUTION


@backward_rule("mean")
def mean_backward(out, grad):
    # BEGIN SOLUTION shape_rules: like sum, divided by how many elements each mean averaged
    (a,) = out.parents
    count = a.size // max(out.size, 1)
    return (np.broadcast_to(_expand_reduced(grad, out) / count, a.shape),)
    # END SOLUTION


@backward_rule("max")
def max_backward(out, grad):
    # BEGIN SOLUTION shape_rules: send the gradient to the elements equal to the maximum (split evenly between ties)
    (a,) = out.parents
    winners = (a.data == _expand_reduced(out.data, out)).astype(a.dtype)  # 1 at each maximum, else 0
    share = winners / winners.sum(axis=out.saved["axis"], keepdims=True)
    return (share * _expand_reduced(grad, out),)
    # END SOLUTION


@backward_rule("matmul")
def matmul_backward(out, grad):
    # BEGIN SOLUTION shape_rules: dA = grad @ B^T, dB = A^T @ grad (transposing the last two axes)
    a, b = out.parents
    return grad @ np.swapaxes(b.data, -1, -2), np.swapaxes(a.data, -1, -2) @ grad
    # END SOLUTION


# -- rules: activations (kata 02 records these ops) ---------------------------------------------


@backward_rule("relu")
def relu_backward(out, grad):
    # BEGIN SOLUTION activation_rules: pass the gradient where the input was positive, zero elsewhere
    (x,) = out.parents
    return (grad * (x.data > 0),)
    # END SOLUTION


@backward_rule("sigmoid")
def sigmoid_backward(out, grad):
    # BEGIN SOLUTION activation_rules: sigmoid' = s * (1 - s), with s the output
    s = out.data
    return (grad * s * (1 - s),)
    # END SOLUTION


@backward_rule("tanh")
def tanh_backward(out, grad):
    # BEGIN SOLUTION activation_rules: tanh' = 1 - t**2, with t the output
    return (grad * (1 - out.data ** 2),)
    # END SOLUTION


@backward_rule("gelu")
def gelu_backward(out, grad):
    # BEGIN SOLUTION activation_rules: differentiate 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3)
    (x,) = out.parents
    x = x.data
    c = math.sqrt(2 / math.pi)  # a Python float: a numpy float64 would turn float32 gradients into float64
    square = x * x  # not x ** 2 and x ** 3: numpy's general power path is about 20x slower on float32
    t = np.tanh(c * (x + 0.044715 * square * x))
    du = c * (1 + 3 * 0.044715 * square)
    return (grad * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * du),)
    # END SOLUTION


@backward_rule("softmax")
def softmax_backward(out, grad):
    # BEGIN SOLUTION activation_rules: y * (grad - sum(grad * y)) along the saved axis, with y the output
    y, axis = out.data, out.saved["axis"]
    return (y * (grad - (grad * y).sum(axis=axis, keepdims=True)),)
    # END SOLUTION


@backward_rule("log_softmax")
def log_softmax_backward(out, grad):
    # BEGIN SOLUTION activation_rules: grad - softmax * sum(grad) along the saved axis; softmax is exp(output)
    axis = out.saved["axis"]
    return (grad - np.exp(out.data) * grad.sum(axis=axis, keepdims=True),)
    # END SOLUTION

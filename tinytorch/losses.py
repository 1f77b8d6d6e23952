"""Kata 05 · Losses: how wrong a prediction is, as one number a gradient can follow.

Three losses, each a function (`cross_entropy(logits, targets)`) and a small object
(`CrossEntropyLoss()`) that calls it:

- `mse_loss`: the mean squared error, built from Tensor ops; autograd differentiates it.
- `cross_entropy`: softmax, log and pick-the-target fused into ONE op, computed with
  logsumexp so that logits of 1e4 neither overflow nor produce log(0). Its gradient
  is softmax(logits) - one_hot(targets), and no one-hot matrix is ever built.
- `binary_cross_entropy_with_logits`: sigmoid and log fused into one op, in the form
  max(x, 0) - x*y + log(1 + exp(-|x|)) that never overflows. Soft targets that
  require grad get their gradient, -x, as well.

Each takes `reduction`: "mean" (the default) averages the per-sample losses, "sum"
adds them, "none" returns them one per sample. The two fused ops are registered with
autograd through `backward_rule`, the mechanism described in `tinytorch/autograd.py`.
"""

# Kata 05_losses: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/05_losses/README.md    Tests: python -m pytest katas/05_losses

from __future__ import annotations

import numpy as np

from tinytorch.autograd import backward_rule
from tinytorch.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def as_tensor(value, dtype=None) -> Tensor:
    """`value` itself if it is a Tensor, else a new Tensor of it (float32 unless `dtype`)."""
    return value if isinstance(value, Tensor) else Tensor(value, dtype=dtype)


def reduce_loss(losses, reduction: str):
    """Per-sample `losses` (a Tensor or a numpy array) reduced as `reduction` says."""
    if reduction == "mean":  # the default: every loss's first checkpoint relies on it
        return losses.mean()
    raise NotImplementedError("05_losses · reductions: return the sum of `losses` for \"sum\", `losses` unchanged for \"none\", and raise ValueError naming the choices (REDUCTIONS) otherwise")


# -- mean squared error --------------------------------------------------------------------


def mse_loss(prediction, target, reduction: str = "mean") -> Tensor:
    """The squared differences (prediction - target)**2, reduced. Both must have the same shape."""
    prediction = as_tensor(prediction)
    target = as_tensor(target, dtype=prediction.dtype)
    raise NotImplementedError("05_losses · mse: refuse shapes that differ (ValueError naming both), then compute `squared_errors` with Tensor ops")
    return reduce_loss(squared_errors, reduction)


# -- checking targets ----------------------------------------------------------------------


def class_indices(targets, logits: Tensor) -> np.ndarray:
    """Class targets (N,) as an integer index array, checked against logits of shape (N, C)."""
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    raise NotImplementedError("05_losses · validation: check logits are (N, C), targets are (N,) whole numbers in [0, C) (ValueError naming what is wrong), and return them as np.intp")


def binary_targets(targets, logits: Tensor) -> np.ndarray:
    """Binary targets as an array of the logits' dtype, checked: the logits' shape, values in [0, 1]."""
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    raise NotImplementedError("05_losses · validation: check targets have the logits' shape and lie in [0, 1] (ValueError naming what is wrong), and return them in the logits' dtype")


# -- cross-entropy: one fused op -----------------------------------------------------------


def cross_entropy(logits, targets, reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[target] for each row of logits (N, C); targets are class indices (N,)."""
    logits = as_tensor(logits)
    targets = class_indices(targets, logits)  # (N,) integers in [0, C)
    raise NotImplementedError("05_losses · cross_entropy: compute `losses` (N,) = logsumexp(row) - row[target] with each row shifted by its maximum, and `probs` = softmax(logits) (N, C) for backward; one N x C buffer")
    return Tensor.from_op(reduce_loss(losses, reduction), "cross_entropy", (logits,),
                          probs=probs, targets=targets, reduction=reduction)


@backward_rule("cross_entropy")
def cross_entropy_backward(out, grad):
    probs, targets, reduction = out.saved["probs"], out.saved["targets"], out.saved["reduction"]
    raise NotImplementedError("05_losses · cross_entropy_gradient: turn `probs` in place into (softmax - one_hot) times the upstream gradient: /N for \"mean\", per row for \"none\"; build no one-hot")


# -- binary cross-entropy: one fused op --------------------------------------------------------


def binary_cross_entropy_with_logits(logits, targets, reduction: str = "mean") -> Tensor:
    """-(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) elementwise, for logits x and targets y in [0, 1].

    Soft targets may be a Tensor that requires grad (a teacher's predictions, say): the
    targets are the op's second parent, and backward gives them their gradient too.
    """
    logits = as_tensor(logits)
    targets = as_tensor(targets, dtype=logits.dtype)  # the op's second parent
    y = binary_targets(targets, logits)  # the targets' values: the logits' shape and dtype
    raise NotImplementedError("05_losses · bce_with_logits: compute `losses` = max(x, 0) - x*y + log(1 + exp(-|x|)) elementwise (np.log1p), which never overflows")
    return Tensor.from_op(reduce_loss(losses, reduction), "binary_cross_entropy_with_logits", (logits, targets),
                          y=y, reduction=reduction)


@backward_rule("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits_backward(out, grad):
    logits, targets = out.parents
    y, reduction = out.saved["y"], out.saved["reduction"]
    raise NotImplementedError("05_losses · bce_with_logits: return two gradients, (sigmoid(x) - y) * scale for the logits and -x * scale for the targets (None unless they require grad), where scale is the upstream gradient, divided by the element count for \"mean\"")


# -- the loss objects --------------------------------------------------------------------------


class MSELoss:
    def __init__(self, reduction: str = "mean"):
        self.reduction = reduction

    def __call__(self, prediction, target) -> Tensor:
        return mse_loss(prediction, target, self.reduction)

    def __repr__(self) -> str:
        return f"MSELoss(reduction={self.reduction!r})"


class CrossEntropyLoss:
    def __init__(self, reduction: str = "mean"):
        self.reduction = reduction

    def __call__(self, prediction, target) -> Tensor:
        return cross_entropy(prediction, target, self.reduction)

    def __repr__(self) -> str:
        return f"CrossEntropyLoss(reduction={self.reduction!r})"


class BCEWithLogitsLoss:
    def __init__(self, reduction: str = "mean"):
        self.reduction = reduction

    def __call__(self, prediction, target) -> Tensor:
        return binary_cross_entropy_with_logits(prediction, target, self.reduction)

    def __repr__(self) -> str:
        return f"BCEWithLogitsLoss(reduction={self.reduction!r})"

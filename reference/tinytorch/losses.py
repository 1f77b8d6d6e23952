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
    # BEGIN SOLUTION reductions: return the sum of `losses` for "sum", `losses` unchanged for "none", and raise ValueError naming the choices (REDUCTIONS) otherwise
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}")
    # END SOLUTION


# -- mean squared error --------------------------------------------------------------------


def mse_loss(prediction, target, reduction: str = "mean") -> Tensor:
    """The squared differences (prediction - target)**2, reduced. Both must have the same shape."""
    prediction = as_tensor(prediction)
    target = as_tensor(target, dtype=prediction.dtype)
    # BEGIN SOLUTION mse: refuse shapes that differ (ValueError naming both), then compute `squared_errors` with Tensor ops
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_loss: prediction of shape {prediction.shape} and target of shape {target.shape} differ; "
            f"broadcasting would compare every prediction with every target. Reshape one to match the other.")
    squared_errors = (prediction - target) ** 2
    # END SOLUTION
    return reduce_loss(squared_errors, reduction)


# -- checking targets ----------------------------------------------------------------------


def class_indices(targets, logits: Tensor) -> np.ndarray:
    """Class targets (N,) as an integer index array, checked against logits of shape (N, C)."""
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    # BEGIN SOLUTION validation: check logits are (N, C), targets are (N,) whole numbers in [0, C) (ValueError naming what is wrong), and return them as np.intp
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D, (batch, classes); got shape {logits.shape}")
    n, classes = logits.shape
    if targets.shape != (n,):
        raise ValueError(
            f"cross_entropy: targets must have shape ({n},), one class index per row of logits {logits.shape}; "
            f"got targets of shape {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):  # floats are fine if they hold whole numbers
        floating = np.issubdtype(targets.dtype, np.floating)
        if not (floating and np.all(np.isfinite(targets) & (targets == np.round(targets)))):
            raise ValueError(f"cross_entropy: targets must be whole-number class indices; got dtype {targets.dtype}, "
                             f"values {np.array2string(targets, threshold=6)}")
    outside = (targets < 0) | (targets >= classes)  # checked before the cast, which would wrap huge values
    if outside.any():
        position = int(np.argmax(outside))
        raise ValueError(f"cross_entropy: target {targets[position]:g} (position {position}) is not a class index "
                         f"for {classes} classes; targets must lie in [0, {classes - 1}]")
    return targets.astype(np.intp)
    # END SOLUTION


def binary_targets(targets, logits: Tensor) -> np.ndarray:
    """Binary targets as an array of the logits' dtype, checked: the logits' shape, values in [0, 1]."""
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    # BEGIN SOLUTION validation: check targets have the logits' shape and lie in [0, 1] (ValueError naming what is wrong), and return them in the logits' dtype
    if targets.shape != logits.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: targets of shape {targets.shape} do not match logits of shape "
            f"{logits.shape}; give one target in [0, 1] per logit")
    outside = ~((targets >= 0) & (targets <= 1))
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(f"binary_cross_entropy_with_logits: target {targets[index]} at index {index} "
                         f"is not a probability; targets must lie in [0, 1]")
    return targets.astype(logits.dtype, copy=False)
    # END SOLUTION


# -- cross-entropy: one fused op -----------------------------------------------------------


def cross_entropy(logits, targets, reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[target] for each row of logits (N, C); targets are class indices (N,)."""
    logits = as_tensor(logits)
    targets = class_indices(targets, logits)  # (N,) integers in [0, C)
    # BEGIN SOLUTION cross_entropy: compute `losses` (N,) = logsumexp(row) - row[target] with each row shifted by its maximum, and `probs` = softmax(logits) (N, C) for backward; one N x C buffer
    rows = np.arange(len(targets))
    shifted = logits.data - logits.data.max(axis=1, keepdims=True)  # (N, C); each row's largest entry is 0
    picked = shifted[rows, targets]  # (N,) the target's shifted logit
    probs = np.exp(shifted, out=shifted)  # (N, C), in place: entries in (0, 1], no overflow
    sums = probs.sum(axis=1)  # (N,) each in [1, C], so the log is safe
    probs /= sums[:, None]  # softmax, kept for backward
    losses = np.log(sums) - picked  # (N,) logsumexp(row) - row[target], both shifted alike
    # END SOLUTION
    return Tensor.from_op(reduce_loss(losses, reduction), "cross_entropy", (logits,),
                          probs=probs, targets=targets, reduction=reduction)


@backward_rule("cross_entropy")
def cross_entropy_backward(out, grad):
    probs, targets, reduction = out.saved["probs"], out.saved["targets"], out.saved["reduction"]
    # BEGIN SOLUTION cross_entropy_gradient: turn `probs` in place into (softmax - one_hot) times the upstream gradient: /N for "mean", per row for "none"; build no one-hot
    n = len(targets)
    grad_logits = probs  # the forward's buffer becomes the gradient: backward allocates nothing N x C
    grad_logits[np.arange(n), targets] -= 1  # softmax - one_hot, touching only N entries
    if reduction == "none":
        grad_logits *= grad[:, None]  # (N, C) * (N, 1): each sample its own upstream gradient
    elif reduction == "mean":
        grad_logits *= grad / n
    else:
        grad_logits *= grad
    return (grad_logits,)
    # END SOLUTION


# -- binary cross-entropy: one fused op --------------------------------------------------------


def binary_cross_entropy_with_logits(logits, targets, reduction: str = "mean") -> Tensor:
    """-(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) elementwise, for logits x and targets y in [0, 1].

    Soft targets may be a Tensor that requires grad (a teacher's predictions, say): the
    targets are the op's second parent, and backward gives them their gradient too.
    """
    logits = as_tensor(logits)
    targets = as_tensor(targets, dtype=logits.dtype)  # the op's second parent
    y = binary_targets(targets, logits)  # the targets' values: the logits' shape and dtype
    # BEGIN SOLUTION bce_with_logits: compute `losses` = max(x, 0) - x*y + log(1 + exp(-|x|)) elementwise (np.log1p), which never overflows
    x = logits.data
    losses = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    # END SOLUTION
    return Tensor.from_op(reduce_loss(losses, reduction), "binary_cross_entropy_with_logits", (logits, targets),
                          y=y, reduction=reduction)


@backward_rule("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits_backward(out, grad):
    logits, targets = out.parents
    y, reduction = out.saved["y"], out.saved["reduction"]
    # BEGIN SOLUTION bce_with_logits: return two gradients, (sigmoid(x) - y) * scale for the logits and -x * scale for the targets (None unless they require grad), where scale is the upstream gradient, divided by the element count for "mean"
    x = logits.data
    scale = grad / x.size if reduction == "mean" else grad  # () or, for "none", the logits' shape
    e = np.exp(-np.abs(x))  # in (0, 1]
    sigmoid = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    grad_targets = -x * scale if targets.requires_grad else None  # d loss/d y = -x
    return (sigmoid - y) * scale, grad_targets
    # END SOLUTION


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

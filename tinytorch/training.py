"""Kata 07 · Training: the loop that turns a model, a loss and an optimizer into learning.

Every update is the same five moves: forget the old gradients, run the model forward,
measure the loss, send gradients backward, step the parameters. Around those moves
sit the parts that make a run trustworthy: evaluation that changes nothing, a learning
rate that follows a schedule, a cap on the gradient's size, a rule for when to stop,
and checkpoints that let a run stop and continue as if it never had.

    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1, momentum=0.9),
                  (x_train, y_train), epochs=20, batch_size=32, rng=np.random.default_rng(0),
                  val_data=(x_val, y_val), metrics={"accuracy": accuracy},
                  schedule=lambda step: warmup_cosine_lr(step, 0.1, 50, 1000),
                  checkpoint_path="run.ckpt", resume=True)

A batch is a plain (inputs, targets) pair of numpy arrays; any list of them will do.
"""

# Kata 07_training: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/07_training/README.md    Tests: python -m pytest katas/07_training

from __future__ import annotations

import json
import math
import os

import numpy as np

from tinytorch.autograd import no_grad
from tinytorch.tensor import Tensor

# -- the loop ---------------------------------------------------------------------------


def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list:
    """Split (x, y) into a list of (inputs, targets) pairs of `batch_size` rows; the last may be smaller.

    Without `rng` the rows keep their order. With `rng`, they are visited in the order
    `rng.permutation(len(x))`: one draw per epoch, so the generator's state says
    exactly which shuffle comes next. x and y themselves are never changed.
    """
    raise NotImplementedError("07_training · loop: check batch_size >= 1 and len(x) == len(y) (ValueError), shuffle both with rng.permutation when rng is given, then slice into batches")


def train_step(model, loss_fn, optimizer, x: np.ndarray, y, max_grad_norm: float | None = None) -> float:
    """One update from one batch; returns the batch's loss as a Python float.

    The five moves: optimizer.zero_grad(), outputs = model(Tensor(x)), loss = loss_fn(outputs, y),
    loss.backward(), optimizer.step(). With `max_grad_norm`, clip_grad_norm(model.parameters(),
    max_grad_norm) goes between backward and step.
    """
    raise NotImplementedError("07_training · loop: zero the gradients, forward, loss, backward, clip when max_grad_norm is given, step; return float(loss)")


def train_epoch(model, loss_fn, optimizer, batches, schedule=None, first_step: int = 0,
                max_grad_norm: float | None = None) -> float:
    """Put the model in train mode and take one train_step per batch; return the mean loss per sample.

    Before the i-th batch's step, when `schedule` (a function of the global step number)
    is given, set `optimizer.lr = schedule(first_step + i)`. Batches may differ in size,
    so weight each batch's loss by its number of rows.
    """
    raise NotImplementedError("07_training · loop: model.train(); per batch set the scheduled lr if any, call train_step, keep loss and size; return the size-weighted mean")


# -- evaluation -----------------------------------------------------------------------------


def accuracy(logits, targets) -> float:
    """The fraction of rows whose largest logit sits at the target class index.

    `logits` is (N, classes) with at least two classes, a Tensor or an array; `targets`
    holds N class indices. A tie goes to the first largest logit, as np.argmax decides.
    """
    raise NotImplementedError("07_training · evaluate: unwrap Tensors, check shapes (ValueError naming both; one column is not enough), compare argmax along the last axis with the targets")


def evaluate(model, loss_fn, batches, metrics: dict | None = None) -> dict:
    """Measure the model without changing it: {"loss": mean per sample, name: mean per sample}.

    Runs in eval mode (dropout off) under no_grad (no graph: nothing is kept for a backward
    that never comes), and leaves the model in the mode it found it in, even if an error
    escapes. `metrics` maps a name to a function of (outputs, targets) returning a batch mean.
    """
    raise NotImplementedError("07_training · evaluate: remember model.training and switch to eval; under no_grad add up loss and metrics weighted by batch size; restore the mode in a finally block; return the means")


# -- learning-rate schedules: pure functions of the step number ------------------------------------


def step_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """base_lr * gamma ** (step // step_size): the rate drops by the factor gamma every step_size steps."""
    raise NotImplementedError("07_training · schedules: reject step_size < 1 (ValueError); return the formula")


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """A linear warm-up to base_lr, then half a cosine down to min_lr at total_steps.

        step < warmup_steps:                base_lr * (step + 1) / warmup_steps
        warmup_steps <= step < total_steps: min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2
                                            with p = (step - warmup_steps) / (total_steps - warmup_steps)
        step >= total_steps:                min_lr
    """
    raise NotImplementedError("07_training · schedules: reject warmup_steps < 0 or warmup_steps > total_steps (ValueError); then the three cases")


# -- gradient clipping --------------------------------------------------------------------------------


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale all gradients by ONE factor so that their global L2 norm is at most max_norm.

    The global norm is sqrt(sum over parameters of sum(grad ** 2)), computed in float64;
    parameters whose .grad is None are skipped. Gradients are scaled in place by
    max_norm / norm when the norm exceeds max_norm. Returns the norm BEFORE clipping.
    """
    raise NotImplementedError("07_training · clipping: collect the grads that are not None, their global norm in float64, scale them all in place if it exceeds max_norm; return the norm")


# -- early stopping --------------------------------------------------------------------------------------


def early_stopping(losses, patience: int, min_delta: float = 0.0) -> tuple[bool, int]:
    """(stop now?, best epoch) from the per-epoch losses so far (lower is better).

    An epoch improves when its loss is below the best loss so far by more than min_delta.
    Stop once `patience` epochs in a row have not improved. The best epoch is -1 when no
    epoch has improved (no losses yet, or only NaN).
    """
    raise NotImplementedError("07_training · early_stopping: walk the losses keeping the best value and its epoch; stop when the epochs since the best reach patience")


# -- checkpoints: data that can never run code ------------------------------------------------------------


def save_checkpoint(path, model, optimizer, epoch: int, step: int = 0,
                    rng: np.random.Generator | None = None, history: dict | None = None) -> None:
    """Write what a run needs to continue to `path`: one .npz file of plain arrays under flat keys.

        "model/<name>"       each entry of model.state_dict()
        "optimizer/<key>"    each entry of optimizer.state_dict()
        "epoch", "step"      int64 scalars: epochs and optimizer steps completed
        "rng"                rng.bit_generator.state as a JSON string (only if rng is given)
        "history/<name>"     each list in `history` as a float64 array (only if history is given)

    The file appears at exactly `path` (np.savez adds ".npz" to a name, not to an open file),
    whole or not at all: write to a temporary file next to it, then os.replace it into place.
    """
    raise NotImplementedError("07_training · checkpoints: build the flat dict of arrays, np.savez it into an open temporary file, then os.replace it to `path`")


def load_checkpoint(path, model, optimizer, rng: np.random.Generator | None = None) -> dict:
    """Restore the model, the optimizer (and the rng) from `path`; return {"epoch", "step", "history"}.

    Opens the file with np.load(path, allow_pickle=False): a checkpoint is data, and loading
    one must never run code, so a file holding pickled objects is refused with a ValueError.
    Read every array before changing anything. History comes back as lists of floats.
    """
    raise NotImplementedError("07_training · checkpoints: np.load with allow_pickle=False, read all arrays, then load model and optimizer state, set the rng state, and return epoch, step and history")


# -- fit: the whole run, resumable ---------------------------------------------------------------------


def fit(model, loss_fn, optimizer, train_data: tuple, epochs: int, batch_size: int, rng: np.random.Generator,
        val_data: tuple | None = None, metrics: dict | None = None, schedule=None,
        max_grad_norm: float | None = None, patience: int | None = None, min_delta: float = 0.0,
        checkpoint_path=None, resume: bool = False) -> dict:
    """Train for up to `epochs` epochs; return the history {"train_loss": [...], "val_loss": [...], ...}.

    Each epoch: shuffle train_data = (x, y) with make_batches(x, y, batch_size, rng) and
    train_epoch on it (the global step counts optimizer steps across epochs), append the
    mean loss to history["train_loss"]; with val_data, evaluate on make_batches(x_val,
    y_val, batch_size) and append each result to history["val_<name>"]. With patience,
    stop when early_stopping says so on val_loss (train_loss without val_data). With
    checkpoint_path, save a checkpoint after every epoch; with resume=True and a file
    there, load it first and carry on where it ended: the result is bit-identical to a
    run that was never interrupted.
    """
    raise NotImplementedError("07_training · resume: start from epoch 0 and step 0 (or from the checkpoint when resuming); loop over epochs as described; return the history")

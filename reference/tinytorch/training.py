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
    # BEGIN SOLUTION loop: check batch_size >= 1 and len(x) == len(y) (ValueError), shuffle both with rng.permutation when rng is given, then slice into batches
    if batch_size < 1:
        raise ValueError(f"make_batches: batch_size must be at least 1, got {batch_size}")
    if len(x) != len(y):
        raise ValueError(f"make_batches: x has {len(x)} rows but y has {len(y)}; each input needs one target")
    if rng is not None:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]  # one shuffled copy per epoch; the slices below are views of it
    return [(x[start:start + batch_size], y[start:start + batch_size]) for start in range(0, len(x), batch_size)]
    # END SOLUTION


def train_step(model, loss_fn, optimizer, x: np.ndarray, y, max_grad_norm: float | None = None) -> float:
    """One update from one batch; returns the batch's loss as a Python float.

    The five moves: optimizer.zero_grad(), outputs = model(Tensor(x)), loss = loss_fn(outputs, y),
    loss.backward(), optimizer.step(). With `max_grad_norm`, clip_grad_norm(model.parameters(),
    max_grad_norm) goes between backward and step.
    """
    # BEGIN SOLUTION loop: zero the gradients, forward, loss, backward, clip when max_grad_norm is given, step; return float(loss)
    optimizer.zero_grad()  # gradients accumulate: without this, every step adds all earlier ones
    loss = loss_fn(model(Tensor(x)), y)
    loss.backward()
    if max_grad_norm is not None:
        clip_grad_norm(model.parameters(), max_grad_norm)
    optimizer.step()
    return float(loss.data)  # a number, not a Tensor: keep no graph alive
    # END SOLUTION


def train_epoch(model, loss_fn, optimizer, batches, schedule=None, first_step: int = 0,
                max_grad_norm: float | None = None) -> float:
    """Put the model in train mode and take one train_step per batch; return the mean loss per sample.

    Before the i-th batch's step, when `schedule` (a function of the global step number)
    is given, set `optimizer.lr = schedule(first_step + i)`. Batches may differ in size,
    so weight each batch's loss by its number of rows.
    """
    # BEGIN SOLUTION loop: model.train(); per batch set the scheduled lr if any, call train_step, keep loss and size; return the size-weighted mean
    model.train()
    losses, sizes = [], []
    for i, (x, y) in enumerate(batches):
        if schedule is not None:
            optimizer.lr = schedule(first_step + i)
        losses.append(train_step(model, loss_fn, optimizer, x, y, max_grad_norm))
        sizes.append(len(x))
    return float(np.average(losses, weights=sizes))
    # END SOLUTION


# -- evaluation -----------------------------------------------------------------------------


def accuracy(logits, targets) -> float:
    """The fraction of rows whose largest logit sits at the target class index.

    `logits` is (N, classes) with at least two classes, a Tensor or an array; `targets`
    holds N class indices. A tie goes to the first largest logit, as np.argmax decides.
    """
    # BEGIN SOLUTION evaluate: unwrap Tensors, check shapes (ValueError naming both; one column is not enough), compare argmax along the last axis with the targets
    logits = np.asarray(getattr(logits, "data", logits))
    targets = np.asarray(getattr(targets, "data", targets))
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"accuracy: expected logits of shape (N, classes) and N targets, "
                         f"got logits {logits.shape} and targets {targets.shape}")
    if logits.shape[1] < 2:
        raise ValueError(f"accuracy: logits of shape {logits.shape} have one column, so argmax is always 0; "
                         "for one logit per row (a binary problem) compare (logits > 0) with the targets instead")
    return float(np.mean(logits.argmax(axis=1) == targets))
    # END SOLUTION


def evaluate(model, loss_fn, batches, metrics: dict | None = None) -> dict:
    """Measure the model without changing it: {"loss": mean per sample, name: mean per sample}.

    Runs in eval mode (dropout off) under no_grad (no graph: nothing is kept for a backward
    that never comes), and leaves the model in the mode it found it in, even if an error
    escapes. `metrics` maps a name to a function of (outputs, targets) returning a batch mean.
    """
    # BEGIN SOLUTION evaluate: remember model.training and switch to eval; under no_grad add up loss and metrics weighted by batch size; restore the mode in a finally block; return the means
    metrics = metrics or {}
    was_training = model.training
    model.eval()
    totals = dict.fromkeys(["loss", *metrics], 0.0)
    count = 0
    try:
        with no_grad():
            for x, y in batches:
                outputs = model(Tensor(x))
                totals["loss"] += float(loss_fn(outputs, y).data) * len(x)
                for name, metric in metrics.items():
                    totals[name] += metric(outputs, y) * len(x)
                count += len(x)
    finally:
        model.train(was_training)
    return {name: total / count for name, total in totals.items()}
    # END SOLUTION


# -- learning-rate schedules: pure functions of the step number ------------------------------------


def step_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """base_lr * gamma ** (step // step_size): the rate drops by the factor gamma every step_size steps."""
    # BEGIN SOLUTION schedules: reject step_size < 1 (ValueError); return the formula
    if step_size < 1:
        raise ValueError(f"step_lr: step_size must be a positive number of steps, got {step_size}")
    return base_lr * gamma ** (step // step_size)
    # END SOLUTION


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """A linear warm-up to base_lr, then half a cosine down to min_lr at total_steps.

        step < warmup_steps:                base_lr * (step + 1) / warmup_steps
        warmup_steps <= step < total_steps: min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2
                                            with p = (step - warmup_steps) / (total_steps - warmup_steps)
        step >= total_steps:                min_lr
    """
    # BEGIN SOLUTION schedules: reject warmup_steps < 0 or warmup_steps > total_steps (ValueError); then the three cases
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_cosine_lr: need 0 <= warmup_steps <= total_steps, "
                         f"got warmup_steps={warmup_steps}, total_steps={total_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # 0 -> 1 over the decay
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
    # END SOLUTION


# -- gradient clipping --------------------------------------------------------------------------------


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale all gradients by ONE factor so that their global L2 norm is at most max_norm.

    The global norm is sqrt(sum over parameters of sum(grad ** 2)), computed in float64;
    parameters whose .grad is None are skipped. Gradients are scaled in place by
    max_norm / norm when the norm exceeds max_norm. Returns the norm BEFORE clipping.
    """
    # BEGIN SOLUTION clipping: collect the grads that are not None, their global norm in float64, scale them all in place if it exceeds max_norm; return the norm
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads:
            g *= scale  # in place: the optimizer reads these same arrays
    return norm
    # END SOLUTION


# -- early stopping --------------------------------------------------------------------------------------


def early_stopping(losses, patience: int, min_delta: float = 0.0) -> tuple[bool, int]:
    """(stop now?, best epoch) from the per-epoch losses so far (lower is better).

    An epoch improves when its loss is below the best loss so far by more than min_delta.
    Stop once `patience` epochs in a row have not improved. The best epoch is -1 when no
    epoch has improved (no losses yet, or only NaN).
    """
    # BEGIN SOLUTION early_stopping: walk the losses keeping the best value and its epoch; stop when the epochs since the best reach patience
    best, best_epoch = math.inf, -1
    for epoch, loss in enumerate(losses):
        if loss < best - min_delta:
            best, best_epoch = loss, epoch
    epochs_since_best = len(losses) - 1 - best_epoch
    return epochs_since_best >= patience, best_epoch
    # END SOLUTION


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
    # BEGIN SOLUTION checkpoints: build the flat dict of arrays, np.savez it into an open temporary file, then os.replace it to `path`
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optimizer/{key}": np.asarray(value) for key, value in optimizer.state_dict().items()})
    arrays["epoch"] = np.asarray(epoch, dtype=np.int64)
    arrays["step"] = np.asarray(step, dtype=np.int64)
    if rng is not None:
        arrays["rng"] = np.asarray(json.dumps(rng.bit_generator.state))  # a string, not a pickled object
    for name, values in (history or {}).items():
        arrays[f"history/{name}"] = np.asarray(values, dtype=np.float64)
    temporary = f"{os.fspath(path)}.tmp"
    with open(temporary, "wb") as file:
        np.savez(file, **arrays)
    os.replace(temporary, path)  # atomic: a crash mid-save leaves the previous checkpoint whole
    # END SOLUTION


def load_checkpoint(path, model, optimizer, rng: np.random.Generator | None = None) -> dict:
    """Restore the model, the optimizer (and the rng) from `path`; return {"epoch", "step", "history"}.

    Opens the file with np.load(path, allow_pickle=False): a checkpoint is data, and loading
    one must never run code, so a file holding pickled objects is refused with a ValueError.
    Read every array before changing anything. History comes back as lists of floats.
    """
    # BEGIN SOLUTION checkpoints: np.load with allow_pickle=False, read all arrays, then load model and optimizer state, set the rng state, and return epoch, step and history
    with np.load(path, allow_pickle=False) as file:
        arrays = {key: file[key] for key in file.files}  # a pickled object fails here, before any change

    def section(prefix):
        return {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}

    model.load_state_dict(section("model/"))
    optimizer.load_state_dict(section("optimizer/"))
    if rng is not None:
        rng.bit_generator.state = json.loads(str(arrays["rng"]))
    history = {name: values.tolist() for name, values in section("history/").items()}
    return {"epoch": int(arrays["epoch"]), "step": int(arrays["step"]), "history": history}
    # END SOLUTION


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
    # BEGIN SOLUTION resume: start from epoch 0 and step 0 (or from the checkpoint when resuming); loop over epochs as described; return the history
    history, epoch, step = {"train_loss": []}, 0, 0
    if resume and checkpoint_path is not None and os.path.exists(checkpoint_path):
        state = load_checkpoint(checkpoint_path, model, optimizer, rng)
        history, epoch, step = state["history"], state["epoch"], state["step"]
    monitored = "val_loss" if val_data is not None else "train_loss"
    while epoch < epochs:
        if patience is not None and early_stopping(history.get(monitored, []), patience, min_delta)[0]:
            break
        batches = make_batches(*train_data, batch_size, rng)
        history["train_loss"].append(train_epoch(model, loss_fn, optimizer, batches, schedule, step, max_grad_norm))
        step += len(batches)
        if val_data is not None:
            results = evaluate(model, loss_fn, make_batches(*val_data, batch_size), metrics)
            for name, value in results.items():
                history.setdefault(f"val_{name}", []).append(value)
        epoch += 1
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model, optimizer, epoch, step, rng, history)
    return history
    # END SOLUTION

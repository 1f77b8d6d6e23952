"""Kata 07 · Training: the ordered suite. Run it with `python -m pytest katas/07_training`.

Checkpoints, in order: loop, evaluate, schedules, clipping, early_stopping, checkpoints,
resume, optimize. The lesson is katas/07_training/README.md.
"""

import math
import os
import pickle

import numpy as np
import pytest

from harness.budgets import assert_peak_bytes, assert_time_ratio, count_calls
from harness.checks import assert_close
from tinytorch.activations import ReLU
from tinytorch.autograd import is_grad_enabled
from tinytorch.layers import Dropout, Linear, Module, Parameter, Sequential
from tinytorch.losses import CrossEntropyLoss, MSELoss
from tinytorch.optimizers import SGD, Adam
from tinytorch.tensor import Tensor
from tinytorch.training import (accuracy, clip_grad_norm, early_stopping, evaluate, fit, load_checkpoint,
                                make_batches, save_checkpoint, step_lr, train_epoch, train_step,
                                warmup_cosine_lr)

# -- helpers -------------------------------------------------------------------------------------


def toy_classification(seed: int, n: int = 48, features: int = 4, classes: int = 3):
    """Seeded float32 inputs (n, features) and integer labels (n,) that a linear model can learn."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x @ rng.standard_normal((features, classes))).argmax(axis=1)
    return x, y


def small_mlp(seed: int, features: int = 4, hidden: int = 8, classes: int = 3) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(Linear(features, hidden, rng=rng), ReLU(), Linear(hidden, classes, rng=rng))


def weights(model) -> dict:
    return {name: p.data.copy() for name, p in model.named_parameters()}


def assert_same_weights(got: dict, expected: dict, what: str, why: str = "") -> None:
    """Bit-identical parameters, name by name; `why` is the likely cause, shown on its own line."""
    assert got.keys() == expected.keys(), f"{what}: parameter names {list(got)} vs {list(expected)}"
    for name in expected:
        differ = got[name] != expected[name]
        assert not differ.any(), (
            f"{what}: parameter {name!r} differs in {int(differ.sum())} of {differ.size} values, bit-identical expected\n"
            f"first: expected {expected[name][differ][0]!r}, got {got[name][differ][0]!r}" + (f"\n{why}" if why else ""))


def hand_loop(model, loss_fn, optimizer, batches) -> None:
    """The five moves per batch, written out: what train_epoch must do."""
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(Tensor(x)), y)
        loss.backward()
        optimizer.step()


class Probe(Module):
    """Wraps a model and records (training mode, gradient recording on?) at every forward."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, is_grad_enabled()))
        return self.inner(x)


class RecordingSGD(SGD):
    """Plain SGD that records its lr and the global gradient norm at every step()."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr=lr)
        self.lrs, self.norms = [], []

    def step(self) -> None:
        self.lrs.append(self.lr)
        squares = [np.sum(np.square(p.grad, dtype=np.float64)) for p in self.params if p.grad is not None]
        self.norms.append(math.sqrt(sum(squares)))
        super().step()


class LossBroke(Exception):
    pass


class DiskFull(Exception):
    pass


def grad_param(grad) -> Parameter:
    p = Parameter(np.zeros(np.shape(grad)))
    p.grad = np.array(grad, dtype=np.float32)
    return p


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("loop")
class TestLoop:
    def test_make_batches_in_order(self):
        """make_batches(x, y, 4) on 10 rows gives a list of batches of 4, 4 and 2 rows in order, x and y aligned."""
        x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
        batches = make_batches(x, y, 4)
        assert isinstance(batches, list), (
            f"make_batches should return a list (fit counts its batches with len()), got {type(batches).__name__}")
        assert all(type(batch) is tuple and len(batch) == 2 for batch in batches), (
            f"each batch should be an (inputs, targets) tuple, got {[type(batch).__name__ for batch in batches]}")
        sizes = [len(bx) for bx, _ in batches]
        assert sizes == [4, 4, 2], f"batch sizes for 10 rows, batch_size 4: expected [4, 4, 2], got {sizes}"
        assert np.array_equal(np.concatenate([by for _, by in batches]), y), "without rng the rows must keep their order"
        assert np.array_equal(np.concatenate([bx for bx, _ in batches]), x), "the inputs must keep their order too"

    def test_make_batches_leaves_its_inputs_alone(self):
        """Shuffled make_batches returns new batches and never reorders x or y themselves."""
        x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
        make_batches(x, y, 4, np.random.default_rng(2))
        assert np.array_equal(y, np.arange(10)) and np.array_equal(x, np.arange(20).reshape(10, 2)), (
            f"after make_batches(x, y, 4, rng) the caller's y is {y.tolist()}, expected 0..9 in order: "
            "shuffle a copy (x[order], y[order]), never the caller's arrays in place")

    def test_make_batches_shuffles_with_the_rng(self):
        """With rng, rows come in the order rng.permutation(10), x and y alike; the next call draws the next permutation."""
        x, y = np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10)
        rng, twin = np.random.default_rng(3), np.random.default_rng(3)
        for epoch in range(2):
            batches = make_batches(x, y, 3, rng)
            order = np.concatenate([by for _, by in batches])
            expected = twin.permutation(10)
            assert np.array_equal(order, expected), (
                f"epoch {epoch}: expected the rows in the order of the rng's next permutation {expected.tolist()}, "
                f"got {order.tolist()} (draw exactly one rng.permutation(len(x)) per call)")
            rows = np.concatenate([bx[:, 0] for bx, _ in batches])
            assert np.array_equal(rows, order), "x and y must be shuffled with the same permutation"

    @pytest.mark.parametrize("rows,batch_size,sizes", [(5, 8, [5]), (5, 5, [5]), (3, 1, [1, 1, 1]), (6, 3, [3, 3])],
                             ids=["batch>rows", "batch=rows", "batch=1", "exact-multiple"])
    def test_make_batches_edge_sizes(self, rows, batch_size, sizes):
        """A batch_size larger than the data gives one batch; batch_size 1 gives one row per batch; no empty batch."""
        x, y = np.arange(2 * rows, dtype=np.float32).reshape(rows, 2), np.arange(rows)
        for rng in (None, np.random.default_rng(4)):
            batches = make_batches(x, y, batch_size, rng)
            got = [(len(bx), len(by)) for bx, by in batches]
            assert got == [(size, size) for size in sizes], (
                f"make_batches on {rows} rows, batch_size {batch_size}, rng={rng}: expected (rows, targets) per batch "
                f"{[(size, size) for size in sizes]}, got {got}")
            assert sorted(np.concatenate([by for _, by in batches]).tolist()) == list(range(rows)), (
                f"make_batches on {rows} rows, batch_size {batch_size}: every row once")

    def test_make_batches_rejects_a_batch_size_below_one(self):
        """make_batches with batch_size 0 or -2 raises ValueError naming batch_size (a negative step yields nothing)."""
        x, y = np.zeros((5, 2), dtype=np.float32), np.zeros(5)
        for bad in (0, -2):
            with pytest.raises(ValueError) as error:
                make_batches(x, y, bad)
            assert "batch_size" in str(error.value), f"make_batches(x, y, {bad}): name batch_size; got: {error.value}"

    def test_make_batches_rejects_mismatched_lengths(self):
        """make_batches with 5 inputs and 4 targets raises ValueError naming both counts."""
        with pytest.raises(ValueError) as error:
            make_batches(np.zeros((5, 2), dtype=np.float32), np.zeros(4), 2)
        assert "5" in str(error.value) and "4" in str(error.value), f"name both lengths; got: {error.value}"

    def test_train_step_is_one_sgd_update(self):
        """train_step returns the batch loss as a float and moves each weight by -lr * its gradient."""
        rng = np.random.default_rng(10)
        model = Linear(3, 2, rng=rng)
        x = rng.standard_normal((4, 3)).astype(np.float32)
        target = rng.standard_normal((4, 2)).astype(np.float32)
        w, b = model.weight.data.copy(), model.bias.data.copy()
        loss = train_step(model, MSELoss(), SGD(model.parameters(), lr=0.1), x, target)
        error = x @ w + b - target  # (4, 2)
        expected_loss = float(np.mean(error ** 2))
        assert isinstance(loss, float), f"train_step should return a Python float, got {type(loss).__name__}"
        assert math.isclose(loss, expected_loss, rel_tol=1e-5), f"loss: expected {expected_loss}, got {loss}"
        grad_out = 2 * error / error.size  # d mean(error^2) / d prediction
        assert_close(model.weight, w - 0.1 * x.T @ grad_out, "weight after one step of SGD(lr=0.1)")
        assert_close(model.bias, b - 0.1 * grad_out.sum(axis=0), "bias after one step of SGD(lr=0.1)")

    def test_train_step_forgets_stale_gradients(self):
        """Gradients left on the parameters before train_step do not reach the update: zero_grad comes first.

        Hint: backward() adds into .grad. Call optimizer.zero_grad() BEFORE the forward pass, so that
        whatever was left there (by an earlier step or anything else) cannot leak into this one.
        """
        rng = np.random.default_rng(9)
        x = rng.standard_normal((4, 3)).astype(np.float32)
        target = rng.standard_normal((4, 2)).astype(np.float32)
        model, twin = Linear(3, 2, rng=np.random.default_rng(8)), Linear(3, 2, rng=np.random.default_rng(8))
        for p in model.parameters():
            p.grad = np.full_like(p.data, 50.0)  # stale gradients from somewhere else
        train_step(model, MSELoss(), SGD(model.parameters(), lr=0.1), x, target)
        train_step(twin, MSELoss(), SGD(twin.parameters(), lr=0.1), x, target)
        assert_same_weights(weights(model), weights(twin), "a step that started with stale gradients of 50 vs a clean step",
                            "zero the gradients before the forward pass, not after the step")

    def test_train_epoch_matches_a_hand_written_loop(self):
        """train_epoch gives bit-identical weights to zero_grad/forward/backward/step written out (no leftover gradients)."""
        x, y = toy_classification(11, n=24)
        batches = make_batches(x, y, 8)
        model, twin = small_mlp(12), small_mlp(12)
        train_epoch(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1, momentum=0.9), batches)
        hand_loop(twin, CrossEntropyLoss(), SGD(twin.parameters(), lr=0.1, momentum=0.9), batches)
        assert_same_weights(weights(model), weights(twin), "train_epoch vs the hand-written loop",
                            "did you zero the gradients before each backward()? They add up otherwise.")

    def test_train_epoch_returns_mean_loss_per_sample(self):
        """With batches of 4 and 2 rows, train_epoch returns (4 * loss1 + 2 * loss2) / 6."""
        x, y = toy_classification(13, n=6)
        seen = []

        def recording_loss(outputs, targets):
            loss = CrossEntropyLoss()(outputs, targets)
            seen.append(float(loss.data))
            return loss

        model = small_mlp(14)
        mean = train_epoch(model, recording_loss, SGD(model.parameters(), lr=0.1), make_batches(x, y, 4))
        assert len(seen) == 2, f"2 batches should compute the loss twice, got {len(seen)} calls"
        expected = (4 * seen[0] + 2 * seen[1]) / 6
        assert isinstance(mean, float), f"train_epoch should return a Python float, got {type(mean).__name__}"
        assert math.isclose(mean, expected, rel_tol=1e-6), (
            f"mean loss per sample: expected (4 * {seen[0]:.5f} + 2 * {seen[1]:.5f}) / 6 = {expected:.6f}, got {mean}")

    def test_train_epoch_switches_to_train_mode(self):
        """A model left in eval mode is switched to train mode for the whole epoch."""
        x, y = toy_classification(15, n=8)
        model = Probe(small_mlp(16))
        model.eval()
        train_epoch(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), make_batches(x, y, 4))
        modes = [training for training, _ in model.seen]
        assert modes == [True, True], f"model.training at each forward: expected [True, True], got {modes}"

    def test_training_lowers_the_loss(self):
        """Thirty epochs on a learnable toy problem at least halve the mean training loss."""
        x, y = toy_classification(17, n=64)
        model = small_mlp(18)
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = [train_epoch(model, CrossEntropyLoss(), optimizer, make_batches(x, y, 16)) for _ in range(30)]
        assert losses[-1] < 0.5 * losses[0], f"mean loss went from {losses[0]:.4f} to {losses[-1]:.4f}; expected at least halved"


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("evaluate")
class TestEvaluate:
    def test_accuracy_counts_argmax_hits(self):
        """accuracy of 4 rows with 3 correct argmaxes is 0.75, for Tensors and arrays alike."""
        logits = np.array([[2.0, 1.0, 0.0], [0.1, 0.3, 0.2], [0.0, 0.0, 5.0], [1.0, 2.0, 3.0]], dtype=np.float32)
        targets = np.array([0, 1, 2, 0])
        for got in (accuracy(logits, targets), accuracy(Tensor(logits), Tensor(targets))):
            assert isinstance(got, float), f"accuracy should return a Python float, got {type(got).__name__}"
            assert got == 0.75, f"accuracy: rows 0, 1, 2 are right and row 3 is wrong: expected 0.75, got {got}"

    def test_accuracy_ties_go_to_the_first_largest_logit(self):
        """A row whose largest logit is shared counts as the first of them, as argmax decides: [1, 1, 0] predicts 0."""
        logits = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [0.0, 2.0, 2.0]], dtype=np.float32)
        got = accuracy(logits, np.array([0, 1, 1, 2]))
        assert got == 0.5, (
            f"accuracy with tied logits: rows predict 0, 0, 1, 1 (the first largest), targets 0, 1, 1, 2: "
            f"expected 0.5, got {got} (compare logits.argmax(axis=1) with the targets; a tie is not a hit for both)")

    def test_accuracy_of_two_columns(self):
        """Two columns of logits (a two-class problem) are scored like any other: 2 of 3 rows right is 2/3."""
        logits = np.array([[0.2, 0.9], [1.5, -1.0], [0.0, 3.0]], dtype=np.float32)
        try:
            got = accuracy(logits, np.array([1, 1, 1]))
        except ValueError as error:
            raise AssertionError(f"accuracy refused logits of shape (3, 2): {error}; only a single column "
                                 "(shape (N, 1)) is unscorable by argmax") from None
        assert got == 2 / 3, f"accuracy of two-column logits predicting 1, 0, 1 against targets 1, 1, 1: expected 2/3, got {got}"

    @pytest.mark.parametrize("logits_shape,targets_shape,named", [
        ((4, 3), (5,), "(5,)"), ((4, 3), (4, 1), "(4,1)"), ((4,), (4,), "(4,)"), ((4, 1), (4,), "(4,1)")])
    def test_accuracy_rejects_shapes_it_cannot_score(self, logits_shape, targets_shape, named):
        """accuracy refuses mismatched counts, (N, 1) targets, 1-D logits and a single column, naming the shapes.

        Hint: (N,) predictions compared with (N, 1) targets broadcast to an (N, N) table and give a
        wrong mean without any error; and argmax over one column is always 0. Check the shapes first.
        """
        logits, targets = np.zeros(logits_shape, dtype=np.float32), np.zeros(targets_shape, dtype=np.int64)
        with pytest.raises(ValueError) as error:
            accuracy(logits, targets)
        assert named in str(error.value).replace(" ", ""), (
            f"accuracy(logits {logits_shape}, targets {targets_shape}): the ValueError should name the shape {named}; "
            f"got: {error.value}")

    def test_evaluate_returns_means_per_sample(self):
        """evaluate over batches of 5 and 3 rows equals loss and accuracy over all 8 rows at once."""
        x, y = toy_classification(20, n=8)
        model = small_mlp(21)
        results = evaluate(model, CrossEntropyLoss(), make_batches(x, y, 5), {"accuracy": accuracy})
        assert set(results) == {"loss", "accuracy"}, f"keys: expected loss and accuracy, got {sorted(results)}"
        logits = model(Tensor(x))
        expected_loss = float(CrossEntropyLoss()(logits, y).data)
        assert math.isclose(results["loss"], expected_loss, rel_tol=1e-5), (
            f"loss: expected the mean over all 8 samples {expected_loss:.6f}, got {results['loss']} "
            "(weight each batch's mean by its number of rows)")
        assert math.isclose(results["accuracy"], accuracy(logits, y), rel_tol=1e-9), (
            f"accuracy: expected {accuracy(logits, y)} over all 8 samples, got {results['accuracy']}")

    def test_evaluate_weights_every_metric_by_batch_size(self):
        """Each metric is a per-sample mean over all batches; without metrics the result holds only "loss"."""
        x, y = toy_classification(20, n=8)
        model = small_mlp(21)
        metrics = {"size": lambda outputs, targets: float(len(targets)),
                   "first": lambda outputs, targets: float(np.asarray(getattr(targets, "data", targets))[0])}
        results = evaluate(model, CrossEntropyLoss(), make_batches(x, y, 5), metrics)
        expected = {"size": (5 * 5 + 3 * 3) / 8, "first": (5 * y[0] + 3 * y[5]) / 8}
        assert set(results) == {"loss", "size", "first"}, f"keys: expected loss, size and first, got {sorted(results)}"
        for name, value in expected.items():
            assert isinstance(results[name], float) and math.isclose(results[name], value, rel_tol=1e-12), (
                f"metric {name!r} over batches of 5 and 3 rows: expected (5 * m1 + 3 * m2) / 8 = {value}, "
                f"got {results[name]!r}")
        alone = evaluate(model, CrossEntropyLoss(), make_batches(x, y, 5))
        assert set(alone) == {"loss"} and isinstance(alone["loss"], float), (
            f"evaluate without metrics: expected {{'loss': <float>}}, got {alone}")

    def test_evaluate_uses_eval_mode_and_no_grad(self):
        """During evaluate, every forward runs with model.training False and gradient recording off."""
        x, y = toy_classification(22, n=8)
        model = Probe(small_mlp(23))
        evaluate(model, CrossEntropyLoss(), make_batches(x, y, 4))
        assert model.seen == [(False, False), (False, False)], (
            f"(training, recording) at each forward: expected (False, False) twice, got {model.seen}; "
            "call model.eval() and run the batches inside `with no_grad():`")

    def test_evaluate_changes_nothing(self):
        """evaluate leaves the weights and their gradients (None) untouched and is deterministic with dropout."""
        x, y = toy_classification(24, n=8)
        rng = np.random.default_rng(25)
        model = Sequential(Linear(4, 16, rng=rng), ReLU(), Dropout(0.5), Linear(16, 3, rng=rng))
        before = weights(model)
        first = evaluate(model, CrossEntropyLoss(), make_batches(x, y, 4))
        second = evaluate(model, CrossEntropyLoss(), make_batches(x, y, 4))
        assert_same_weights(weights(model), before, "after evaluate")
        grads = [name for name, p in model.named_parameters() if p.grad is not None]
        assert not grads, f"evaluate must not compute gradients; these now have one: {grads}"
        assert first == second, f"two evaluations gave {first} and {second}: dropout must be off in eval mode"

    def test_evaluate_restores_the_mode(self):
        """A model in train mode is back in train mode after evaluate (every submodule); one in eval mode stays in eval."""
        x, y = toy_classification(26, n=8)
        rng = np.random.default_rng(27)
        model = Sequential(Linear(4, 8, rng=rng), Dropout(0.5), Linear(8, 3, rng=rng))
        evaluate(model, CrossEntropyLoss(), make_batches(x, y, 4))
        modes = {name or "model": m.training for name, m in model.named_modules()}
        assert all(modes.values()), f"after evaluate, training mode of each module: {modes}; all should be True again"
        assert is_grad_enabled(), "after evaluate gradient recording is still off: run the batches inside `with no_grad():`"
        model.eval()
        evaluate(model, CrossEntropyLoss(), make_batches(x, y, 4))
        assert not model.training, "a model that was in eval mode before evaluate should still be in eval mode"

    def test_evaluate_restores_the_mode_on_error(self):
        """If the loss raises during evaluate, the model is back in the mode it was in, and gradients are recorded again."""
        x, y = toy_classification(28, n=8)
        model = small_mlp(29)

        def broken_loss(outputs, targets):
            raise LossBroke("the loss failed")

        with pytest.raises(LossBroke):
            evaluate(model, broken_loss, make_batches(x, y, 4))
        assert model.training, "after an error inside evaluate the model is still in eval mode; restore it in a finally block"
        assert is_grad_enabled(), "after an error inside evaluate gradient recording is still off; use `with no_grad():`"
        model.eval()
        with pytest.raises(LossBroke):
            evaluate(model, broken_loss, make_batches(x, y, 4))
        assert not model.training, "a model in eval mode before a failed evaluate should still be in eval mode after it"


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("schedules")
class TestSchedules:
    def test_step_lr_values(self):
        """step_lr(base 0.1, step_size 3, gamma 0.5) is 0.1 for steps 0-2, 0.05 for 3-5, 0.025 at 6."""
        expected = {0: 0.1, 2: 0.1, 3: 0.05, 5: 0.05, 6: 0.025, 30: 0.1 * 0.5 ** 10}
        got = {step: step_lr(step, 0.1, 3, 0.5) for step in expected}
        bad = {s: got[s] for s in expected if not math.isclose(got[s], expected[s], rel_tol=1e-12)}
        assert not bad, f"step_lr(step, base_lr=0.1, step_size=3, gamma=0.5): expected {expected}, got {got}"
        assert all(isinstance(value, float) for value in got.values()), (
            f"step_lr should return Python floats, got {sorted({type(v).__name__ for v in got.values()})}")

    def test_step_lr_default_gamma_is_a_tenth(self):
        """Without gamma, step_lr(step, 2.0, step_size=4) is 2.0 for steps 0-3, 0.2 for 4-7 and 0.02 at 8."""
        expected = {0: 2.0, 3: 2.0, 4: 0.2, 7: 0.2, 8: 0.02}
        got = {step: step_lr(step, 2.0, 4) for step in expected}
        assert all(math.isclose(got[s], expected[s], rel_tol=1e-12) for s in expected), (
            f"step_lr(step, base_lr=2.0, step_size=4) with the default gamma 0.1: expected {expected}, got {got}")

    def test_step_lr_with_a_step_size_of_one_decays_every_step(self):
        """step_size=1 is valid: step_lr(step, 1.0, 1, 0.5) is 1, 0.5, 0.25 at steps 0, 1, 2 (an exponential decay)."""
        expected = [1.0, 0.5, 0.25]
        try:
            got = [step_lr(step, 1.0, 1, 0.5) for step in range(3)]
        except ValueError as error:
            raise AssertionError(f"step_lr(step, 1.0, step_size=1, gamma=0.5) raised ValueError({error}); "
                                 "a step_size of 1 (decay at every step) is valid: refuse only step_size < 1") from None
        assert all(math.isclose(g, e, rel_tol=1e-12) for g, e in zip(got, expected)), (
            f"step_lr(step, 1.0, step_size=1, gamma=0.5) for steps 0-2: expected {expected}, got {got}")

    def test_warmup_is_linear_from_the_first_step(self):
        """warmup_cosine_lr with 4 warm-up steps gives 0.025, 0.05, 0.075, 0.1 at steps 0-3 (never 0)."""
        got = [warmup_cosine_lr(step, 0.1, 4, 14) for step in range(4)]
        expected = [0.025, 0.05, 0.075, 0.1]
        assert all(math.isclose(g, e, rel_tol=1e-12) for g, e in zip(got, expected)), (
            f"warm-up, base_lr * (step + 1) / warmup_steps: expected {expected}, got {got}")

    def test_cosine_decay_at_key_steps(self):
        """After warm-up: base_lr at its start, halfway at the middle, min_lr from total_steps on, never rising."""
        cases = [((4, 0.1, 4, 14), 0.1), ((9, 0.1, 4, 14), 0.05), ((13, 0.1, 4, 14), 0.05 * (1 + math.cos(0.9 * math.pi))),
                 ((14, 0.1, 4, 14), 0.0), ((100, 0.1, 4, 14), 0.0), ((9, 0.1, 4, 14, 0.01), 0.055),
                 ((14, 0.1, 4, 14, 0.01), 0.01), ((15, 0.1, 4, 14, 0.01), 0.01), ((0, 0.1, 0, 10), 0.1),
                 ((5, 0.1, 0, 10), 0.05)]
        for args, expected in cases:
            got = warmup_cosine_lr(*args)
            assert isinstance(got, float) and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15), (
                f"warmup_cosine_lr(step, base_lr, warmup_steps, total_steps[, min_lr]) = warmup_cosine_lr{args}: "
                f"expected the float {expected}, got {got!r}")
        decay = [warmup_cosine_lr(step, 0.1, 4, 14) for step in range(4, 16)]
        assert all(a >= b for a, b in zip(decay, decay[1:])), f"the cosine part should never rise: {decay}"

    def test_warmup_only(self):
        """With warmup_steps == total_steps there is no cosine: 0.025 ... 0.1 over steps 0-3, then min_lr (no 0/0)."""
        got = [warmup_cosine_lr(step, 0.1, 4, 4, 0.01) for step in range(6)]
        expected = [0.025, 0.05, 0.075, 0.1, 0.01, 0.01]
        assert all(math.isclose(g, e, rel_tol=1e-12) for g, e in zip(got, expected)), (
            f"warmup_cosine_lr(step, 0.1, warmup_steps=4, total_steps=4, min_lr=0.01) for steps 0-5: expected {expected}, "
            f"got {got} (from total_steps on the rate is min_lr: test step >= total_steps before dividing by "
            "total_steps - warmup_steps)")

    @pytest.mark.parametrize("call,named", [
        (lambda: step_lr(0, 0.1, 0), "step_size"), (lambda: step_lr(0, 0.1, -3), "step_size"),
        (lambda: warmup_cosine_lr(0, 0.1, 10, 5), "warmup_steps"), (lambda: warmup_cosine_lr(0, 0.1, -1, 5), "warmup_steps")],
        ids=["step_size=0", "step_size=-3", "warmup>total", "warmup=-1"])
    def test_schedule_arguments_are_checked(self, call, named):
        """step_lr with step_size 0 or -3, warmup_cosine_lr with warmup_steps > total_steps or < 0: ValueError naming it."""
        with pytest.raises(ValueError) as error:
            call()
        assert named in str(error.value), f"the ValueError should name {named}; got: {error.value}"

    def test_train_epoch_follows_the_schedule(self):
        """train_epoch(schedule=f, first_step=5) sets optimizer.lr to f(5), f(6), f(7) before the three steps."""
        x, y = toy_classification(30, n=12)
        model = small_mlp(31)
        optimizer = RecordingSGD(model.parameters(), lr=1.0)
        train_epoch(model, CrossEntropyLoss(), optimizer, make_batches(x, y, 4),
                    schedule=lambda step: 0.01 * (step + 1), first_step=5)
        expected = [0.06, 0.07, 0.08]
        assert len(optimizer.lrs) == 3 and all(math.isclose(a, b) for a, b in zip(optimizer.lrs, expected)), (
            f"optimizer.lr at each step: expected schedule(5), schedule(6), schedule(7) = {expected}, got {optimizer.lrs}")


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("clipping")
class TestClipping:
    def test_one_factor_for_all_gradients(self):
        """Grads [3, 4] and [0, 0, 0, 12] have global norm 13; clipping to 6.5 halves both and returns 13."""
        a, b = grad_param([3.0, 4.0]), grad_param([[0.0, 0.0], [0.0, 12.0]])
        norm = clip_grad_norm([a, b], 6.5)
        assert isinstance(norm, float), f"clip_grad_norm should return the norm as a Python float, got {type(norm).__name__}"
        assert math.isclose(norm, 13.0, rel_tol=1e-9), f"returned norm: expected sqrt(9 + 16 + 144) = 13 (before clipping), got {norm}"
        assert_close(a.grad, [1.5, 2.0], "first gradient, scaled by 6.5 / 13 (one factor for all, not per parameter)")
        assert_close(b.grad, [[0.0, 0.0], [0.0, 6.0]], "second gradient, scaled by 6.5 / 13")
        assert a.grad.dtype == np.float32, f"clipping should keep the gradients float32, got {a.grad.dtype}"

    def test_under_the_limit_nothing_changes(self):
        """With max_norm 20 and norm 13, the gradients stay exactly as they were and 13 is returned."""
        a, b = grad_param([3.0, 4.0]), grad_param([0.0, 12.0])
        before = [a.grad.copy(), b.grad.copy()]
        norm = clip_grad_norm([a, b], 20.0)
        assert math.isclose(norm, 13.0, rel_tol=1e-9), f"returned norm: expected 13, got {norm}"
        assert np.array_equal(a.grad, before[0]) and np.array_equal(b.grad, before[1]), (
            f"a norm under max_norm must leave the gradients alone; got {a.grad} and {b.grad}")

    def test_a_norm_exactly_at_the_limit_is_left_alone(self):
        """Grads [3, 4] have norm 5: with max_norm 5 they stay bit for bit, and 5.0 is returned."""
        a = grad_param([3.0, 4.0])
        norm = clip_grad_norm([a], 5.0)
        assert norm == 5.0 and np.array_equal(a.grad, np.array([3.0, 4.0], dtype=np.float32)), (
            f"a norm equal to max_norm is within the limit: expected the gradients unchanged [3, 4] and 5.0 returned, "
            f"got {a.grad.tolist()} and {norm}")

    def test_the_factor_is_exactly_max_norm_over_norm(self):
        """Tiny float64 grads [3e-6, 4e-6] (norm 5e-6) clipped to 2.5e-6 are exactly halved: no epsilon in the factor.

        Hint: PyTorch divides by (norm + 1e-6); this kata does not. An epsilon is invisible for
        large gradients and wrong for tiny ones: here it would scale by 0.42, not 0.5.
        """
        p = Parameter(np.zeros(2), dtype=np.float64)
        p.grad = np.array([3e-6, 4e-6])
        norm = clip_grad_norm([p], 2.5e-6)
        assert math.isclose(norm, 5e-6, rel_tol=1e-12), f"returned norm: expected 5e-06, got {norm}"
        assert p.grad.dtype == np.float64, f"clipping should keep float64 gradients float64, got {p.grad.dtype}"
        assert_close(p.grad, [1.5e-6, 2e-6], "float64 gradients [3e-6, 4e-6] scaled by 2.5e-6 / 5e-6", rtol=1e-12, atol=0)

    def test_none_gradients_are_skipped(self):
        """A parameter without a gradient is skipped (its grad stays None) and adds nothing to the norm."""
        a, frozen = grad_param([3.0, 4.0]), Parameter(np.ones(3))
        norm = clip_grad_norm([frozen, a], 1.0)
        assert math.isclose(norm, 5.0, rel_tol=1e-9), f"returned norm: expected 5, got {norm}"
        assert frozen.grad is None, "a parameter whose .grad is None must keep .grad None"
        assert_close(a.grad, [0.6, 0.8], "gradient [3, 4] clipped to norm 1")

    def test_no_gradients_at_all(self):
        """With every .grad None (or no parameters), the norm is 0.0, a Python float, and nothing changes."""
        frozen = Parameter(np.ones(3))
        for parameters in ([frozen], []):
            norm = clip_grad_norm(parameters, 1.0)
            assert isinstance(norm, float) and norm == 0.0, (
                f"clip_grad_norm of {len(parameters)} parameter(s) without gradients: expected 0.0, got {norm!r}")
        assert frozen.grad is None, "a parameter whose .grad is None must keep .grad None"

    def test_parameters_may_be_a_generator(self):
        """clip_grad_norm(p for p in params) clips as well as a list: go through `parameters` only once.

        Hint: a generator is empty the second time you loop over it. Collect the gradients into a
        list first, then compute the norm and scale them from that list.
        """
        a, b = grad_param([3.0, 4.0]), grad_param([0.0, 12.0])
        norm = clip_grad_norm((p for p in (a, b)), 6.5)
        assert math.isclose(norm, 13.0, rel_tol=1e-9), f"returned norm: expected 13, got {norm}"
        assert_close(np.concatenate([a.grad, b.grad]), [1.5, 2.0, 0.0, 6.0],
                     "gradients [3, 4] and [0, 12] clipped to 6.5, parameters given as a generator")

    def test_norm_does_not_overflow(self):
        """Four gradients of 1e20 have norm 2e20: summing squares in float32 would overflow to inf."""
        a = grad_param(np.full(4, 1e20))
        with np.errstate(over="ignore", invalid="ignore"):  # let a float32 overflow show up as a wrong norm below
            norm = clip_grad_norm([a], 1.0)
        assert math.isclose(norm, 2e20, rel_tol=1e-6), (
            f"returned norm: expected 2e20, got {norm}; square and sum in float64 (np.square(g, dtype=np.float64))")
        assert_close(a.grad, np.full(4, 0.5), "gradients of 1e20 clipped to norm 1")
        assert a.grad.dtype == np.float32, f"clipping should keep float32 gradients float32, got {a.grad.dtype}"

    def test_a_nan_gradient_gives_a_nan_norm(self):
        """A gradient holding NaN makes the returned norm NaN, so the loop can see that the step went wrong."""
        a, b = grad_param([3.0, 4.0]), grad_param([np.nan, 1.0])
        with np.errstate(invalid="ignore"):
            norm = clip_grad_norm([a, b], 1.0)
        assert isinstance(norm, float) and math.isnan(norm), f"returned norm with a NaN gradient: expected nan, got {norm!r}"

    def test_train_step_clips_before_the_update(self):
        """train_epoch(max_grad_norm=1.0) hands the optimizer gradients of global norm 1 when they were larger."""
        rng = np.random.default_rng(32)
        model = Linear(3, 2, rng=rng)
        x = rng.standard_normal((8, 3)).astype(np.float32)
        far = np.full((8, 2), 100.0, dtype=np.float32)  # a huge loss: huge gradients
        optimizer = RecordingSGD(model.parameters(), lr=0.01)
        train_epoch(model, MSELoss(), optimizer, make_batches(x, far, 4), max_grad_norm=1.0)
        assert len(optimizer.norms) == 2 and all(math.isclose(n, 1.0, rel_tol=1e-5) for n in optimizer.norms), (
            f"global gradient norm seen by optimizer.step(): expected 1.0 at both steps, got {optimizer.norms}; "
            "call clip_grad_norm(model.parameters(), max_grad_norm) between backward() and step()")


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("early_stopping")
class TestEarlyStopping:
    def test_stops_after_patience_epochs_without_improvement(self):
        """Losses [1.0, 0.8, 0.9, 0.85]: best epoch 1; patience 2 stops, patience 3 does not."""
        losses = [1.0, 0.8, 0.9, 0.85]
        assert early_stopping(losses, patience=2) == (True, 1), (
            f"early_stopping({losses}, patience=2): two epochs without improvement after epoch 1, "
            f"expected (True, 1), got {early_stopping(losses, patience=2)}")
        assert early_stopping(losses, patience=3) == (False, 1), (
            f"early_stopping({losses}, patience=3): expected (False, 1), got {early_stopping(losses, patience=3)}")

    def test_improvement_must_beat_min_delta(self):
        """With min_delta 0.05, 0.97 and 0.96 are not improvements on 1.0, but 0.90 is."""
        assert early_stopping([1.0, 0.97, 0.96], patience=2, min_delta=0.05) == (True, 0), (
            "early_stopping([1.0, 0.97, 0.96], patience=2, min_delta=0.05): neither beats 1.0 - 0.05; expected (True, 0), "
            f"got {early_stopping([1.0, 0.97, 0.96], patience=2, min_delta=0.05)}")
        assert early_stopping([1.0, 0.97, 0.96, 0.90], patience=2, min_delta=0.05) == (False, 3)
        assert early_stopping([1.0, 0.97, 0.96], patience=2) == (False, 2), "with min_delta 0 every decrease is an improvement"

    def test_min_delta_is_an_absolute_margin_below_the_best(self):
        """min_delta 0.25: 3.5 improves on 4.0, 3.4 not on 3.5; a drop of exactly 0.25 does not count; 0.6 beats 1.0, not 0.8."""
        cases = [(([4.0, 3.5, 3.4], 1, 0.25), (True, 1)), (([1.0, 0.75], 1, 0.25), (True, 0)),
                 (([1.0, 0.8, 0.6], 2, 0.25), (False, 2))]
        for (losses, patience, min_delta), expected in cases:
            got = early_stopping(losses, patience, min_delta)
            assert got == expected, (
                f"early_stopping({losses}, patience={patience}, min_delta={min_delta}): expected {expected}, got {got}; "
                "an epoch improves when loss < best - min_delta, with best the lowest loss that counted as an improvement")

    def test_ties_and_nan_are_not_improvements(self):
        """Losses [0.5, 0.5, nan]: neither the tie nor NaN improves, so patience 2 stops with best epoch 0."""
        got = early_stopping([0.5, 0.5, math.nan], patience=2)
        assert got == (True, 0), f"early_stopping([0.5, 0.5, nan], patience=2): expected (True, 0), got {got}"

    def test_the_first_epoch_is_the_best_so_far(self):
        """One epoch in, there is nothing to stop for: (False, 0) with patience 1."""
        got = early_stopping([0.7], patience=1)
        assert got == (False, 0), f"early_stopping([0.7], patience=1): expected (False, 0), got {got}"

    def test_no_improvement_yet_has_best_epoch_minus_one(self):
        """No losses yet gives (False, -1); only NaN losses count as epochs without improvement: [nan, nan] stops at patience 2."""
        cases = [(([], 2), (False, -1)), (([math.nan], 2), (False, -1)), (([math.nan, math.nan], 2), (True, -1))]
        for (losses, patience), expected in cases:
            got = early_stopping(losses, patience)
            assert got == expected, (
                f"early_stopping({losses}, patience={patience}): expected {expected}, got {got} "
                "(start from best = inf and best_epoch = -1; nan < inf is False, so NaN never improves)")


# ---------------------------------------------------------------------------------------
PAYLOAD_RAN = []


def run_payload():
    """What a malicious pickle would run on load; here it only leaves a mark."""
    PAYLOAD_RAN.append(True)
    return 3


class Payload:
    def __reduce__(self):  # pickle stores "call run_payload()" and runs it when loading
        return run_payload, ()


def trained_setup(seed: int, steps: int = 3):
    """A small model and an SGD-with-momentum optimizer after a few steps (so it has state)."""
    x, y = toy_classification(seed, n=4 * steps)
    model = small_mlp(seed + 1)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_epoch(model, CrossEntropyLoss(), optimizer, make_batches(x, y, 4))
    return model, optimizer


@pytest.mark.checkpoint("checkpoints")
class TestCheckpoints:
    def test_file_holds_flat_plain_arrays(self, tmp_path):
        """save_checkpoint writes exactly `path`: flat keys model/..., optimizer/..., epoch, step, rng, history/..."""
        model, optimizer = trained_setup(40)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=3, step=12, rng=np.random.default_rng(1),
                        history={"train_loss": [0.9, 0.5, 0.4]})
        assert sorted(os.listdir(tmp_path)) == ["run.ckpt"], (
            f"files written: {sorted(os.listdir(tmp_path))}; expected only run.ckpt (np.savez adds .npz to a file NAME: "
            "give it an open file; remove any temporary file)")
        with np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
        expected = ({f"model/{name}" for name in model.state_dict()} | {f"optimizer/{k}" for k in optimizer.state_dict()}
                    | {"epoch", "step", "rng", "history/train_loss"})
        assert set(arrays) == expected, (
            f"keys: missing {sorted(expected - set(arrays))}, unexpected {sorted(set(arrays) - expected)}")
        for name, value in model.state_dict().items():
            assert np.array_equal(arrays[f"model/{name}"], value), f"model/{name} does not hold the parameter's values"
        for key, value in (("epoch", 3), ("step", 12)):
            assert arrays[key].shape == () and arrays[key].dtype == np.int64 and int(arrays[key]) == value, (
                f"{key}: expected an int64 scalar {value}, got {arrays[key]!r} of dtype {arrays[key].dtype}")
        assert arrays["history/train_loss"].dtype == np.float64, (
            f"history/train_loss should be float64 (float32 would round the history), got {arrays['history/train_loss'].dtype}")
        assert np.array_equal(arrays["history/train_loss"], [0.9, 0.5, 0.4]), "history/train_loss should hold the list"

    def test_rng_and_history_are_optional(self, tmp_path):
        """Without rng and history the file holds only model/..., optimizer/..., epoch and step; loading gives an empty history."""
        model, optimizer = trained_setup(47)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=1)
        with np.load(path, allow_pickle=False) as file:
            keys = set(file.files)
        expected = ({f"model/{name}" for name in model.state_dict()} | {f"optimizer/{k}" for k in optimizer.state_dict()}
                    | {"epoch", "step"})
        assert keys == expected, f"keys without rng and history: missing {sorted(expected - keys)}, unexpected {sorted(keys - expected)}"
        state = load_checkpoint(path, model, optimizer)
        assert state == {"epoch": 1, "step": 0, "history": {}}, f"expected epoch 1, step 0 (the default), no history; got {state}"

    def test_load_restores_model_and_optimizer(self, tmp_path):
        """Loading into a fresh model and optimizer restores every weight and optimizer buffer exactly."""
        model, optimizer = trained_setup(41)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=2, step=6, history={"train_loss": [1.25, 0.75]})
        fresh = small_mlp(99)
        fresh_optimizer = SGD(fresh.parameters(), lr=0.5, momentum=0.9)
        state = load_checkpoint(path, fresh, fresh_optimizer)
        assert_same_weights(weights(fresh), weights(model), "weights after load_checkpoint")
        saved, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
        assert saved.keys() == restored.keys(), f"optimizer state keys: saved {sorted(saved)}, restored {sorted(restored)}"
        for key in saved:
            assert np.array_equal(saved[key], restored[key]), f"optimizer state {key!r} was not restored"
        assert set(state) == {"epoch", "step", "history"}, f"load_checkpoint should return epoch, step and history; got {state}"
        assert type(state["epoch"]) is int and type(state["step"]) is int, (
            f"epoch and step should come back as Python ints, got {type(state['epoch']).__name__} and "
            f"{type(state['step']).__name__} (int(array))")
        assert isinstance(state["history"].get("train_loss"), list), (
            f"history lists should come back as Python lists of floats (array.tolist()), got {state['history']!r}")
        assert state == {"epoch": 2, "step": 6, "history": {"train_loss": [1.25, 0.75]}}, (
            f"load_checkpoint should return epoch, step and history; got {state}")

    def test_load_restores_the_rng(self, tmp_path):
        """After loading, another generator draws exactly the numbers the saved one would have drawn next."""
        model, optimizer = trained_setup(42)
        rng = np.random.default_rng(5)
        rng.permutation(10)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=1, rng=rng)
        other = np.random.default_rng(1234)
        load_checkpoint(path, model, optimizer, other)
        assert np.array_equal(other.permutation(10), rng.permutation(10)), (
            "the loaded generator should continue the saved one's stream: set rng.bit_generator.state")

    def test_saving_again_replaces_the_file(self, tmp_path):
        """A second save to the same path (given as a str this time) replaces the first, leaving one file."""
        model, optimizer = trained_setup(43)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=1, step=3)
        save_checkpoint(str(path), model, optimizer, epoch=2, step=6)
        state = load_checkpoint(str(path), model, optimizer)
        assert (state["epoch"], state["step"]) == (2, 6), f"expected the second save (2, 6), got {state}"
        assert sorted(os.listdir(tmp_path)) == ["run.ckpt"], f"files left behind: {sorted(os.listdir(tmp_path))}"

    def test_a_save_that_crashes_midway_keeps_the_previous_checkpoint(self, tmp_path, monkeypatch):
        """If saving dies halfway through writing, the error comes through and the previous checkpoint still loads whole.

        Hint: never write into the only good copy. Write the new checkpoint to a temporary file
        next to it (f"{path}.tmp"), and only when that is complete swap it in with os.replace.
        """
        model, optimizer = trained_setup(48)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=1, step=3)
        saved = weights(model)
        train_epoch(model, CrossEntropyLoss(), optimizer, make_batches(*toy_classification(49, n=8), 4))

        def crashing_savez(file, *args, **kwargs):  # writes the first bytes of a zip, then the process "dies"
            if isinstance(file, (str, os.PathLike)):
                with open(file, "wb") as handle:
                    handle.write(b"PK\x03\x04 half a checkpoint")
            else:
                file.write(b"PK\x03\x04 half a checkpoint")
            raise DiskFull("simulated crash in the middle of np.savez")

        monkeypatch.setattr(np, "savez", crashing_savez)
        monkeypatch.setattr(np, "savez_compressed", crashing_savez)
        with pytest.raises(DiskFull):
            save_checkpoint(path, model, optimizer, epoch=2, step=5)
        monkeypatch.undo()
        fresh = small_mlp(99)
        try:
            state = load_checkpoint(path, fresh, SGD(fresh.parameters(), lr=0.1, momentum=0.9))
        except Exception as error:
            raise AssertionError(f"after a save that crashed midway, the previous checkpoint no longer loads ({error!r}): "
                                 "write to a temporary file, then os.replace it onto the path") from None
        assert (state["epoch"], state["step"]) == (1, 3), f"expected the previous checkpoint (epoch 1, step 3), got {state}"
        assert_same_weights(weights(fresh), saved, "weights loaded from the previous checkpoint after a crashed save")

    def test_load_refuses_pickled_objects(self, tmp_path):
        """A checkpoint holding a pickled object is refused with ValueError; its code never runs; nothing changes."""
        model, optimizer = trained_setup(44)
        path = tmp_path / "evil.ckpt"
        save_checkpoint(path, model, optimizer, epoch=1)
        with np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
        arrays["epoch"] = np.array(Payload(), dtype=object)  # np.savez pickles object arrays
        with open(path, "wb") as file:
            np.savez(file, **arrays)
        victim = small_mlp(45)
        before = weights(victim)
        PAYLOAD_RAN.clear()
        with pytest.raises(ValueError):
            load_checkpoint(path, victim, SGD(victim.parameters(), lr=0.1, momentum=0.9))
        assert not PAYLOAD_RAN, "loading the checkpoint RAN CODE stored in it: open it with np.load(path, allow_pickle=False)"
        assert_same_weights(weights(victim), before, "after a refused load",
                            "a refused checkpoint must change nothing: read every array before loading any state")

    def test_load_refuses_a_pickle_file(self, tmp_path):
        """A pickle file posing as a checkpoint is refused with ValueError, and its code never runs."""
        path = tmp_path / "evil.ckpt"
        path.write_bytes(pickle.dumps({"epoch": Payload()}))
        model = small_mlp(46)
        PAYLOAD_RAN.clear()
        with pytest.raises(ValueError):
            load_checkpoint(path, model, SGD(model.parameters(), lr=0.1))
        assert not PAYLOAD_RAN, "loading the file RAN CODE stored in it: open it with np.load(path, allow_pickle=False)"


# ---------------------------------------------------------------------------------------
def run_fit(epochs: int, optimizer_kind: str = "sgd", seed: int = 50, rng_seed: int = 7, **options):
    """fit() a fresh small model on a toy problem; returns (model, history)."""
    x, y = toy_classification(60, n=40)
    x_val, y_val = toy_classification(61, n=16)
    model = small_mlp(seed)
    if optimizer_kind == "sgd":
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        schedule = lambda step: step_lr(step, 0.1, 7, 0.5)  # noqa: E731
    else:
        optimizer = Adam(model.parameters(), lr=0.01)
        schedule = lambda step: warmup_cosine_lr(step, 0.02, 4, 30)  # noqa: E731
    options = {"val_data": (x_val, y_val), "metrics": {"accuracy": accuracy}, "schedule": schedule, **options}
    history = fit(model, CrossEntropyLoss(), optimizer, (x, y), epochs, 8, np.random.default_rng(rng_seed), **options)
    return model, history


_UNINTERRUPTED = {}


def uninterrupted(epochs: int, optimizer_kind: str = "sgd", **options):
    """(weights, history) of run_fit(epochs, optimizer_kind, **options) never interrupted; computed once per suite."""
    key = (epochs, optimizer_kind, tuple(sorted(options.items())))
    if key not in _UNINTERRUPTED:
        model, history = run_fit(epochs, optimizer_kind, **options)
        _UNINTERRUPTED[key] = (weights(model), history)
    saved, history = _UNINTERRUPTED[key]
    return {name: value.copy() for name, value in saved.items()}, {key: list(values) for key, values in history.items()}


def assert_same_history(got: dict, expected: dict, what: str) -> None:
    assert got.keys() == expected.keys(), f"{what}: history keys {sorted(got)} vs {sorted(expected)}"
    for key in expected:
        assert got[key] == expected[key], f"{what}: history[{key!r}] differs:\n  expected {expected[key]}\n  got      {got[key]}"


@pytest.mark.checkpoint("resume")
class TestResume:
    def test_fit_records_history(self):
        """fit for 4 epochs returns train_loss, val_loss and val_accuracy, one float per epoch."""
        model, history = run_fit(4)
        assert set(history) == {"train_loss", "val_loss", "val_accuracy"}, f"history keys: got {sorted(history)}"
        for key, values in history.items():
            assert len(values) == 4 and all(isinstance(v, float) for v in values), (
                f"history[{key!r}] should hold 4 floats, one per epoch; got {values}")
        x_val, y_val = toy_classification(61, n=16)
        final = evaluate(model, CrossEntropyLoss(), make_batches(x_val, y_val, 8), {"accuracy": accuracy})
        assert math.isclose(history["val_loss"][-1], final["loss"], rel_tol=1e-9), (
            f"the last val_loss should be evaluate() of the final model: {final['loss']}, got {history['val_loss'][-1]}")
        assert history["train_loss"][-1] < history["train_loss"][0], f"training did not lower the loss: {history['train_loss']}"

    def test_fit_without_validation_data(self):
        """Without val_data the history holds only train_loss, and patience watches train_loss (with min_delta)."""
        x, y = toy_classification(64, n=40)
        model = small_mlp(65)
        history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.05), (x, y), 10, 8,
                      np.random.default_rng(1), patience=2, min_delta=10.0)
        assert set(history) == {"train_loss"}, f"history keys without val_data: expected only train_loss, got {sorted(history)}"
        assert len(history["train_loss"]) == 3, (
            f"train_loss fell every epoch, but never by min_delta=10: with patience 2, fit should stop after 3 epochs; "
            f"it ran {len(history['train_loss'])}: {history['train_loss']} (watch train_loss when there is no val_data, "
            "and pass min_delta on to early_stopping)")

    def test_fit_counts_steps_across_epochs_clips_and_shuffles_once_per_epoch(self):
        """fit gives the schedule 0, 1, ..., 14 over 3 epochs of 5 batches, clips every step, and draws 3 permutations."""
        x, y = toy_classification(66, n=40)
        model = small_mlp(67)
        optimizer = RecordingSGD(model.parameters(), lr=1.0)
        rng, twin = np.random.default_rng(8), np.random.default_rng(8)
        fit(model, CrossEntropyLoss(), optimizer, (x, y), 3, 8, rng, val_data=(x, y), schedule=lambda step: 0.01 * (step + 1),
            max_grad_norm=0.05)
        expected = [0.01 * (step + 1) for step in range(15)]
        assert len(optimizer.lrs) == 15 and all(math.isclose(a, b) for a, b in zip(optimizer.lrs, expected)), (
            f"optimizer.lr at each of the 15 steps: expected schedule(0) ... schedule(14) = {[round(e, 2) for e in expected]}, "
            f"got {[round(lr, 4) for lr in optimizer.lrs]} (pass first_step=step, the steps taken so far, to train_epoch)")
        assert max(optimizer.norms) <= 0.05 * (1 + 1e-5), (
            f"gradient norms seen by step(): largest {max(optimizer.norms):.4f}, expected at most max_grad_norm=0.05 "
            "(pass max_grad_norm on to train_epoch)")
        for _ in range(3):
            twin.permutation(40)
        assert rng.bit_generator.state == twin.bit_generator.state, (
            "after 3 epochs the rng should have drawn exactly 3 permutations of the 40 training rows "
            "(make_batches(x, y, batch_size, rng) once per epoch; the validation batches are not shuffled)")

    def test_fit_stops_early(self):
        """With validation labels the model cannot learn, fit stops at the first epoch early_stopping says so."""
        x, y = toy_classification(62, n=40)
        model = small_mlp(63)
        history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), 30, 8,
                      np.random.default_rng(0), val_data=(x, (y + 1) % 3), patience=2)
        losses = history["val_loss"]
        assert len(losses) < 30, f"fit ran all 30 epochs; val_loss {losses} should have stopped it"
        assert early_stopping(losses, 2)[0] and not early_stopping(losses[:-1], 2)[0], (
            f"fit should stop right after the first epoch where early_stopping(val_loss, 2) says stop; val_loss: {losses}")

    def test_fit_saves_a_checkpoint_every_epoch(self, tmp_path):
        """fit with checkpoint_path leaves a checkpoint of the last epoch: epoch 3, step 15, the final weights."""
        path = tmp_path / "run.ckpt"
        model, history = run_fit(3, checkpoint_path=path)
        with np.load(path, allow_pickle=False) as file:
            epoch, step = int(file["epoch"]), int(file["step"])
            saved = {key.removeprefix("model/"): file[key] for key in file.files if key.startswith("model/")}
            saved_loss = file["history/train_loss"].tolist()
        assert (epoch, step) == (3, 15), f"epoch and step in the checkpoint: expected (3, 15) for 3 epochs of 5 batches, got {(epoch, step)}"
        assert_same_weights(saved, weights(model), "weights in the checkpoint vs the model after fit")
        assert saved_loss == history["train_loss"], f"history/train_loss {saved_loss} vs {history['train_loss']}"

    @pytest.mark.parametrize("crash_step", [3, 12, 23])
    def test_a_run_that_crashed_resumes_bit_identical(self, tmp_path, crash_step):
        """A run killed in the middle of an epoch, restarted with resume=True, ends exactly like one never interrupted.

        Hint: the checkpoint of the last finished epoch is all that survives a crash; save one after
        EVERY epoch, and count epochs and steps only once they are complete.
        """
        straight_weights, straight = uninterrupted(5)
        path = tmp_path / "run.ckpt"

        def crashing_schedule(step):
            if step == crash_step:
                raise LossBroke(f"the machine went down at step {crash_step}")
            return step_lr(step, 0.1, 7, 0.5)

        with pytest.raises(LossBroke):
            run_fit(5, checkpoint_path=path, schedule=crashing_schedule)
        finished = crash_step // 5  # epochs of 5 batches completed before the crash
        if finished:
            assert path.exists(), (
                f"a crash at step {crash_step} (in epoch {finished + 1}) left no checkpoint at all: save one after every epoch")
            with np.load(path, allow_pickle=False) as file:
                saved = (int(file["epoch"]), int(file["step"]))
            assert saved == (finished, 5 * finished), (
                f"a crash at step {crash_step} (in epoch {finished + 1}) should leave the checkpoint of epoch {finished}: "
                f"expected (epoch, step) = {(finished, 5 * finished)}, got {saved}")
        # Restarted as a fresh process would be: a new model, optimizer and generator. With no checkpoint
        # yet, the restart is a run from scratch, so it needs the original seeds to match.
        seeds = {"seed": 98, "rng_seed": 99} if finished else {}
        resumed_model, resumed = run_fit(5, checkpoint_path=path, resume=True, **seeds)
        assert_same_history(resumed, straight, f"resumed after a crash at step {crash_step} vs uninterrupted")
        assert_same_weights(weights(resumed_model), straight_weights, f"resumed after a crash at step {crash_step}")

    def test_resume_is_bit_identical_with_sgd(self, tmp_path):
        """2 epochs, then a resumed run to 5 (new model, optimizer and rng), equals 5 uninterrupted epochs exactly."""
        straight_weights, straight = uninterrupted(5)
        path = tmp_path / "run.ckpt"
        run_fit(2, checkpoint_path=path)
        resumed_model, resumed = run_fit(5, seed=98, rng_seed=99, checkpoint_path=path, resume=True)
        assert_same_history(resumed, straight, "resumed vs uninterrupted (SGD with momentum, step schedule)")
        assert_same_weights(weights(resumed_model), straight_weights, "resumed vs uninterrupted (SGD)",
                            "restore the optimizer's state (momentum), the global step and the rng's state")

    def test_resume_is_bit_identical_with_adam_and_clipping(self, tmp_path):
        """Adam, warm-up cosine and clipping: 3 epochs plus a resumed 3 equal 6 uninterrupted epochs exactly."""
        straight_weights, straight = uninterrupted(6, "adam", max_grad_norm=0.5)
        path = tmp_path / "run.ckpt"
        run_fit(3, "adam", max_grad_norm=0.5, checkpoint_path=path)
        resumed_model, resumed = run_fit(6, "adam", seed=98, rng_seed=99, max_grad_norm=0.5, checkpoint_path=path, resume=True)
        assert_same_history(resumed, straight, "resumed vs uninterrupted (Adam, warm-up cosine, clipping)")
        assert_same_weights(weights(resumed_model), straight_weights, "resumed vs uninterrupted (Adam)",
                            "restore Adam's moments and step count, the global step and the rng's state")

    def test_resume_without_a_file_starts_fresh_and_a_finished_run_stays_finished(self, tmp_path):
        """resume=True with no checkpoint trains from scratch; resuming a finished run trains no further."""
        straight_weights, straight = uninterrupted(3)
        path = tmp_path / "run.ckpt"
        model, history = run_fit(3, checkpoint_path=path, resume=True)
        assert_same_history(history, straight, "resume=True without a checkpoint file vs a plain run")
        again_model, again = run_fit(3, seed=97, checkpoint_path=path, resume=True)
        assert_same_history(again, straight, "resuming a run that already finished its 3 epochs")
        assert_same_weights(weights(again_model), straight_weights, "resuming a finished run must not train more")

    def test_resume_false_ignores_a_stale_checkpoint(self, tmp_path):
        """With resume=False an old checkpoint at the path is ignored (and then overwritten): a fresh run from epoch 0."""
        straight_weights, straight = uninterrupted(3)
        path = tmp_path / "run.ckpt"
        run_fit(2, seed=97, rng_seed=96, checkpoint_path=path)
        model, history = run_fit(3, checkpoint_path=path)
        assert_same_history(history, straight, "resume=False with an old checkpoint at the path vs a plain run")
        assert_same_weights(weights(model), straight_weights, "resume=False must not load the old checkpoint")
        with np.load(path, allow_pickle=False) as file:
            assert int(file["epoch"]) == 3, f"the new run should overwrite the old checkpoint: epoch {int(file['epoch'])}, expected 3"

    def test_resuming_a_run_that_stopped_early_trains_no_further(self, tmp_path):
        """A run ended by early stopping, resumed with the same arguments, stops again at once: same history, same weights.

        Hint: ask early_stopping BEFORE training each epoch (including the first one after
        resuming), not only after an epoch has been trained.
        """
        x, y = toy_classification(62, n=40)
        path = tmp_path / "run.ckpt"

        def run(seed):
            model = small_mlp(seed)
            history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), 30, 8,
                          np.random.default_rng(0), val_data=(x, (y + 1) % 3), patience=2,
                          checkpoint_path=path, resume=True)
            return model, history

        stopped_model, stopped = run(63)
        assert len(stopped["val_loss"]) < 30, f"the first run should stop early; it ran all 30 epochs: {stopped['val_loss']}"
        resumed_model, resumed = run(97)
        assert_same_history(resumed, stopped, "resuming a run that early stopping had ended")
        assert_same_weights(weights(resumed_model), weights(stopped_model), "resuming a run that early stopping had ended",
                            "the resumed run trained again; it should have stopped before its first epoch")


# ---------------------------------------------------------------------------------------
def deep_mlp(seed: int, width: int, depth: int, classes: int = 10) -> Sequential:
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(depth):
        layers += [Linear(width, width, rng=rng), ReLU()]
    return Sequential(*layers, Linear(width, classes, rng=rng))


TIME_BUDGET = 2.5  # train_epoch / the hand-written loop: the reference measures 1.02-1.07


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    def test_one_forward_and_one_step_per_batch(self):
        """train_epoch runs one forward and one optimizer step per batch; evaluate one forward per batch."""
        x, y = toy_classification(70, n=20)
        batches = make_batches(x, y, 4)
        model = small_mlp(71)
        optimizer = SGD(model.parameters(), lr=0.1)
        with count_calls(model, "forward") as forwards, count_calls(optimizer, "step") as steps:
            train_epoch(model, CrossEntropyLoss(), optimizer, batches)
        assert (forwards.calls, steps.calls) == (5, 5), (
            f"train_epoch on 5 batches: expected 5 forwards and 5 steps, got {forwards.calls} and {steps.calls} "
            "(no extra forward pass to log the loss: keep float(loss) from the one you ran)")
        with count_calls(model, "forward") as forwards:
            evaluate(model, CrossEntropyLoss(), batches, {"accuracy": accuracy})
        assert forwards.calls == 5, f"evaluate on 5 batches: expected 5 forwards, got {forwards.calls}"

    def test_evaluate_keeps_no_graph(self):
        """evaluate of a 16-layer MLP peaks under 10 activations' worth of memory; a recorded graph holds about 100."""
        width, batch = 64, 64
        activation = width * batch * 4  # one float32 (batch, width) array: 16 KiB
        model = deep_mlp(72, width, depth=16)
        rng = np.random.default_rng(73)
        batches = [(rng.standard_normal((batch, width)).astype(np.float32), rng.integers(0, 10, batch)) for _ in range(3)]
        assert_peak_bytes(lambda: evaluate(model, CrossEntropyLoss(), batches), 10 * activation,
                          "evaluate, 16 layers of (64, 64) activations (16 KiB each); under no_grad each one "
                          "is freed once the next layer has read it, with a graph all of them stay alive")

    def test_train_epoch_overhead_is_small(self):
        """train_epoch takes at most 2.5x the time of the same calls written out by hand."""
        x, y = toy_classification(74, n=256, features=32, classes=8)
        batches = make_batches(x, y, 32)
        model = small_mlp(75, features=32, hidden=64, classes=8)
        optimizer = SGD(model.parameters(), lr=0.01)
        loss_fn = CrossEntropyLoss()
        assert_time_ratio(lambda: train_epoch(model, loss_fn, optimizer, batches),
                          lambda: hand_loop(model, loss_fn, optimizer, batches), TIME_BUDGET,
                          "train_epoch vs the hand-written loop, 8 batches of 32 through a 32-64-8 MLP", rounds=25)


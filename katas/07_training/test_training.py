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


def grad_param(grad) -> Parameter:
    p = Parameter(np.zeros(np.shape(grad)))
    p.grad = np.array(grad, dtype=np.float32)
    return p


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("loop")
class TestLoop:
    def test_make_batches_in_order(self):
        """make_batches(x, y, 4) on 10 rows gives batches of 4, 4 and 2 rows in order, x and y aligned."""
        x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
        batches = make_batches(x, y, 4)
        sizes = [len(bx) for bx, _ in batches]
        assert sizes == [4, 4, 2], f"batch sizes for 10 rows, batch_size 4: expected [4, 4, 2], got {sizes}"
        assert np.array_equal(np.concatenate([by for _, by in batches]), y), "without rng the rows must keep their order"
        assert np.array_equal(np.concatenate([bx for bx, _ in batches]), x), "the inputs must keep their order too"

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

    def test_accuracy_rejects_mismatched_shapes(self):
        """accuracy of logits (4, 3) with 5 targets raises ValueError naming both shapes."""
        with pytest.raises(ValueError) as error:
            accuracy(np.zeros((4, 3), dtype=np.float32), np.zeros(5, dtype=np.int64))
        message = str(error.value).replace(" ", "")
        assert "(4,3)" in message and "(5,)" in message, f"name both shapes; got: {error.value}"

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
        model.eval()
        evaluate(model, CrossEntropyLoss(), make_batches(x, y, 4))
        assert not model.training, "a model that was in eval mode before evaluate should still be in eval mode"

    def test_evaluate_restores_the_mode_on_error(self):
        """If the loss raises during evaluate, the model is back in train mode and gradients are recorded again."""
        x, y = toy_classification(28, n=8)
        model = small_mlp(29)

        def broken_loss(outputs, targets):
            raise LossBroke("the loss failed")

        with pytest.raises(LossBroke):
            evaluate(model, broken_loss, make_batches(x, y, 4))
        assert model.training, "after an error inside evaluate the model is still in eval mode; restore it in a finally block"
        assert is_grad_enabled(), "after an error inside evaluate gradient recording is still off; use `with no_grad():`"


# ---------------------------------------------------------------------------------------
@pytest.mark.checkpoint("schedules")
class TestSchedules:
    def test_step_lr_values(self):
        """step_lr(base 0.1, step_size 3, gamma 0.5) is 0.1 for steps 0-2, 0.05 for 3-5, 0.025 at 6."""
        expected = {0: 0.1, 2: 0.1, 3: 0.05, 5: 0.05, 6: 0.025, 30: 0.1 * 0.5 ** 10}
        got = {step: step_lr(step, 0.1, 3, 0.5) for step in expected}
        bad = {s: got[s] for s in expected if not math.isclose(got[s], expected[s], rel_tol=1e-12)}
        assert not bad, f"step_lr(step, base_lr=0.1, step_size=3, gamma=0.5): expected {expected}, got {got}"

    def test_warmup_is_linear_from_the_first_step(self):
        """warmup_cosine_lr with 4 warm-up steps gives 0.025, 0.05, 0.075, 0.1 at steps 0-3 (never 0)."""
        got = [warmup_cosine_lr(step, 0.1, 4, 14) for step in range(4)]
        expected = [0.025, 0.05, 0.075, 0.1]
        assert all(math.isclose(g, e, rel_tol=1e-12) for g, e in zip(got, expected)), (
            f"warm-up, base_lr * (step + 1) / warmup_steps: expected {expected}, got {got}")

    def test_cosine_decay_at_key_steps(self):
        """After warm-up: base_lr at its start, halfway at the middle, min_lr from total_steps on, never rising."""
        cases = [((4, 0.1, 4, 14), 0.1), ((9, 0.1, 4, 14), 0.05), ((14, 0.1, 4, 14), 0.0), ((100, 0.1, 4, 14), 0.0),
                 ((9, 0.1, 4, 14, 0.01), 0.055), ((14, 0.1, 4, 14, 0.01), 0.01), ((0, 0.1, 0, 10), 0.1)]
        for args, expected in cases:
            got = warmup_cosine_lr(*args)
            assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15), (
                f"warmup_cosine_lr(step, base_lr, warmup_steps, total_steps[, min_lr]) = warmup_cosine_lr{args}: "
                f"expected {expected}, got {got}")
        decay = [warmup_cosine_lr(step, 0.1, 4, 14) for step in range(4, 16)]
        assert all(a >= b for a, b in zip(decay, decay[1:])), f"the cosine part should never rise: {decay}"

    def test_schedule_arguments_are_checked(self):
        """step_lr with step_size 0 and warmup_cosine_lr with warmup_steps > total_steps raise ValueError."""
        with pytest.raises(ValueError):
            step_lr(0, 0.1, 0)
        with pytest.raises(ValueError):
            warmup_cosine_lr(0, 0.1, 10, 5)

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

    def test_none_gradients_are_skipped(self):
        """A parameter without a gradient is skipped (its grad stays None) and adds nothing to the norm."""
        a, frozen = grad_param([3.0, 4.0]), Parameter(np.ones(3))
        norm = clip_grad_norm([frozen, a], 1.0)
        assert math.isclose(norm, 5.0, rel_tol=1e-9), f"returned norm: expected 5, got {norm}"
        assert frozen.grad is None, "a parameter whose .grad is None must keep .grad None"
        assert_close(a.grad, [0.6, 0.8], "gradient [3, 4] clipped to norm 1")

    def test_norm_does_not_overflow(self):
        """Four gradients of 1e20 have norm 2e20: summing squares in float32 would overflow to inf."""
        a = grad_param(np.full(4, 1e20))
        with np.errstate(over="ignore", invalid="ignore"):  # let a float32 overflow show up as a wrong norm below
            norm = clip_grad_norm([a], 1.0)
        assert math.isclose(norm, 2e20, rel_tol=1e-6), (
            f"returned norm: expected 2e20, got {norm}; square and sum in float64 (np.square(g, dtype=np.float64))")
        assert_close(a.grad, np.full(4, 0.5), "gradients of 1e20 clipped to norm 1")

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

    def test_ties_and_nan_are_not_improvements(self):
        """Losses [0.5, 0.5, nan]: neither the tie nor NaN improves, so patience 2 stops with best epoch 0."""
        got = early_stopping([0.5, 0.5, math.nan], patience=2)
        assert got == (True, 0), f"early_stopping([0.5, 0.5, nan], patience=2): expected (True, 0), got {got}"

    def test_the_first_epoch_is_the_best_so_far(self):
        """One epoch in, there is nothing to stop for: (False, 0) with patience 1."""
        got = early_stopping([0.7], patience=1)
        assert got == (False, 0), f"early_stopping([0.7], patience=1): expected (False, 0), got {got}"


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
        assert int(arrays["epoch"]) == 3 and int(arrays["step"]) == 12, (
            f"epoch and step: expected 3 and 12, got {arrays['epoch']} and {arrays['step']}")
        assert np.array_equal(arrays["history/train_loss"], [0.9, 0.5, 0.4]), "history/train_loss should hold the list"

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
        """A second save to the same path replaces the first, leaving one file."""
        model, optimizer = trained_setup(43)
        path = tmp_path / "run.ckpt"
        save_checkpoint(path, model, optimizer, epoch=1, step=3)
        save_checkpoint(path, model, optimizer, epoch=2, step=6)
        state = load_checkpoint(path, model, optimizer)
        assert (state["epoch"], state["step"]) == (2, 6), f"expected the second save (2, 6), got {state}"
        assert sorted(os.listdir(tmp_path)) == ["run.ckpt"], f"files left behind: {sorted(os.listdir(tmp_path))}"

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

    def test_resume_is_bit_identical_with_sgd(self, tmp_path):
        """2 epochs, then a resumed run to 5 (new model, optimizer and rng), equals 5 uninterrupted epochs exactly."""
        straight_model, straight = run_fit(5)
        path = tmp_path / "run.ckpt"
        run_fit(2, checkpoint_path=path)
        resumed_model, resumed = run_fit(5, seed=98, rng_seed=99, checkpoint_path=path, resume=True)
        assert_same_history(resumed, straight, "resumed vs uninterrupted (SGD with momentum, step schedule)")
        assert_same_weights(weights(resumed_model), weights(straight_model), "resumed vs uninterrupted (SGD)",
                            "restore the optimizer's state (momentum), the global step and the rng's state")

    def test_resume_is_bit_identical_with_adam_and_clipping(self, tmp_path):
        """Adam, warm-up cosine and clipping: 3 epochs plus a resumed 3 equal 6 uninterrupted epochs exactly."""
        straight_model, straight = run_fit(6, "adam", max_grad_norm=0.5)
        path = tmp_path / "run.ckpt"
        run_fit(3, "adam", max_grad_norm=0.5, checkpoint_path=path)
        resumed_model, resumed = run_fit(6, "adam", seed=98, rng_seed=99, max_grad_norm=0.5, checkpoint_path=path, resume=True)
        assert_same_history(resumed, straight, "resumed vs uninterrupted (Adam, warm-up cosine, clipping)")
        assert_same_weights(weights(resumed_model), weights(straight_model), "resumed vs uninterrupted (Adam)",
                            "restore Adam's moments and step count, the global step and the rng's state")

    def test_resume_without_a_file_starts_fresh_and_a_finished_run_stays_finished(self, tmp_path):
        """resume=True with no checkpoint trains from scratch; resuming a finished run trains no further."""
        straight_model, straight = run_fit(3)
        path = tmp_path / "run.ckpt"
        model, history = run_fit(3, checkpoint_path=path, resume=True)
        assert_same_history(history, straight, "resume=True without a checkpoint file vs a plain run")
        again_model, again = run_fit(3, seed=97, checkpoint_path=path, resume=True)
        assert_same_history(again, straight, "resuming a run that already finished its 3 epochs")
        assert_same_weights(weights(again_model), weights(straight_model), "resuming a finished run must not train more")


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


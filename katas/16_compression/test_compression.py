"""Kata 16 · Compression: the ordered suite. Run it with `python -m pytest katas/16_compression`."""

import copy

import numpy as np
import pytest

from harness import checks
from harness.budgets import assert_time_ratio
from harness.checks import assert_close, assert_made_by_op, assert_shape, assert_tensor, gradcheck, raises_naming
from tinytorch.activations import ReLU, Tanh
from tinytorch.autograd import no_grad
from tinytorch.compression import (
    CSRMatrix, MaskedOptimizer, apply_masks, distillation_kl, distillation_loss, keep_inputs, keep_largest,
    keep_outputs, low_rank, magnitude_masks, masked_parameters, prunable_weights, prune_structured, rank_for_energy,
    sparsity, unit_importance, units_to_keep,
)
from tinytorch.convolutions import Conv2d, Flatten, MaxPool2d
from tinytorch.dataloader import load_digits, train_test_split
from tinytorch.layers import Dropout, Linear, Module, Parameter, Sequential
from tinytorch.losses import CrossEntropyLoss, cross_entropy
from tinytorch.optimizers import SGD, Adam, AdamW
from tinytorch.tensor import Tensor
from tinytorch.training import accuracy, fit, train_epoch


# -- helpers ---------------------------------------------------------------------------------------


def random_array(shape, seed: int, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def mlp(*widths, seed: int, dtype=np.float32, activation=ReLU) -> Sequential:
    """Sequential(Linear, activation, Linear, ..., Linear) through `widths`, with random (non-zero) biases."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layer = Linear(fan_in, fan_out, rng=rng)
        layer.weight = Parameter(layer.weight.data, dtype=dtype)
        layer.bias = Parameter(0.1 * rng.standard_normal(fan_out), dtype=dtype)
        layers += [layer, activation()]
    return Sequential(*layers[:-1])


def integer_linear(fan_in: int, fan_out: int, rng, bias: bool = True) -> Linear:
    """A float64 Linear of small integers (every sum exact), whose row 0 holds +-100 * a permutation of 1..out.

    Row 0 decides the order of the columns' L1 norms (the rest adds less than 100), so no
    two units tie, and some of the most important units have large NEGATIVE weights.
    """
    layer = Linear(fan_in, fan_out, bias=bias, rng=rng)
    weight = rng.integers(-3, 4, size=(fan_in, fan_out)).astype(np.float64)
    weight[0] = 100.0 * (rng.permutation(fan_out) + 1) * rng.choice([-1.0, 1.0], size=fan_out)
    layer.weight = Parameter(weight, dtype=np.float64)
    if bias:
        layer.bias = Parameter(rng.integers(-2, 3, size=fan_out).astype(np.float64), dtype=np.float64)
    return layer


def integer_mlp(*widths, seed: int) -> Sequential:
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [integer_linear(fan_in, fan_out, rng), ReLU()]
    return Sequential(*layers[:-1])


def integer_conv(in_channels: int, out_channels: int, rng, padding: int = 1) -> Conv2d:
    """A float64 3x3 Conv2d of small integers whose filters' L1 norms are told apart by +-100 * a permutation."""
    layer = Conv2d(in_channels, out_channels, 3, padding=padding, rng=rng)
    weight = rng.integers(-2, 3, size=(out_channels, in_channels, 3, 3)).astype(np.float64)
    weight[:, 0, 0, 0] = 100.0 * (rng.permutation(out_channels) + 1) * rng.choice([-1.0, 1.0], size=out_channels)
    layer.weight = Parameter(weight, dtype=np.float64)
    layer.bias = Parameter(rng.integers(-2, 3, size=out_channels).astype(np.float64), dtype=np.float64)
    return layer


def integer_cnn(seed: int) -> Sequential:
    """(N, 1, 8, 8) -> conv 4 channels, pool -> conv 6 channels, pool -> (N, 6 * 2 * 2) -> Linear -> (N, 3)."""
    rng = np.random.default_rng(seed)
    return Sequential(integer_conv(1, 4, rng), ReLU(), MaxPool2d(2), integer_conv(4, 6, rng), ReLU(), MaxPool2d(2),
                      Flatten(), integer_linear(24, 3, rng))


def filter_order(weight: np.ndarray) -> np.ndarray:
    """Filters of a (out, in, kh, kw) weight from the least to the most important by L1 norm."""
    return np.argsort(np.abs(weight).sum(axis=(1, 2, 3)), kind="stable")


def layer_with(weight, bias=None) -> Linear:
    """A Linear holding exactly these arrays (float64 unless they say otherwise)."""
    weight = np.asarray(weight, dtype=np.float64)
    layer = Linear(*weight.shape, bias=bias is not None, rng=np.random.default_rng(0))
    layer.weight = Parameter(weight, dtype=weight.dtype)
    if bias is not None:
        layer.bias = Parameter(np.asarray(bias, dtype=weight.dtype), dtype=weight.dtype)
    return layer


def forward(model, x) -> np.ndarray:
    with no_grad():
        return model(Tensor(x, dtype=x.dtype)).data


def snapshot(model) -> dict:
    return {name: parameter.data.copy() for name, parameter in model.named_parameters()}


def assert_unchanged(model, before: dict, what: str) -> None:
    after = dict(model.named_parameters())
    assert list(after) == list(before), f"{what}: the model's parameters changed from {list(before)} to {list(after)}"
    for name, values in before.items():
        assert after[name].data.shape == values.shape and np.array_equal(after[name].data, values), (
            f"{what} changed the model's {name!r}: leave the model as it was")


def l1_order(weight: np.ndarray) -> np.ndarray:
    """Output units (columns) from the least to the most important by L1 norm; ties: the lower index first."""
    return np.argsort(np.abs(weight).sum(axis=0), kind="stable")


def one_step(model, optimizer, x, y) -> None:
    optimizer.zero_grad()
    cross_entropy(model(Tensor(x, dtype=x.dtype)), y).backward()
    optimizer.step()


# -- the trained digits MLP: trained once, shared by the tests that measure accuracy ---------------

TRAIN_SEED = 3  # the initial weights; the shuffles of the training run use TRAIN_SEED + 100


@pytest.fixture(scope="module")
def digits():
    """A 64-128-10 MLP trained on 80% of the digits (AdamW, 30 epochs: well under a second), and the data.

    Weight decay (0.4) lets training shrink the weights it does not need, which is what
    magnitude pruning then removes. Tests copy the model before changing it.
    """
    images, labels = load_digits(flatten=True)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0)
    rng = np.random.default_rng(TRAIN_SEED)
    model = Sequential(Linear(64, 128, rng=rng), ReLU(), Linear(128, 10, rng=rng))
    fit(model, CrossEntropyLoss(), AdamW(model.parameters(), lr=2e-3, weight_decay=0.4), (x_train, y_train),
        epochs=30, batch_size=32, rng=np.random.default_rng(TRAIN_SEED + 100))
    dense = digits_accuracy(model, x_test, y_test)
    return model, (x_train, x_test, y_train, y_test), dense


def digits_accuracy(model, x, y) -> float:
    with no_grad():
        return accuracy(model(Tensor(x)), y)


# -- sparsity -----------------------------------------------------------------------------------------


class Filters(Module):
    """A module with a 3-D weight and a 1-D scale: only the first is a weight to prune."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.zeros(3))
        self.filters = Parameter(np.arange(18.0).reshape(3, 2, 3))

    def forward(self, x):
        return x


class OnlyVectors(Module):
    def __init__(self):
        super().__init__()
        self.gain = Parameter(np.ones(4))

    def forward(self, x):
        return x * self.gain


@pytest.mark.checkpoint("sparsity")
class TestSparsity:
    def test_weights_are_the_parameters_with_two_or_more_dimensions(self):
        """prunable_weights of Linear, ReLU, Linear(bias=False), a module with a (3,) and a (3, 2, 3) parameter: the 3 weights, in order.

        Hint: a weight is a parameter with ndim >= 2 (a matrix, a stack of filters); biases and other vectors stay.
        """
        model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2, bias=False), Filters())
        got = prunable_weights(model)
        assert isinstance(got, list), f"prunable_weights should return a list of (name, Parameter), got {type(got).__name__}"
        names = [name for name, _ in got]
        assert names == ["0.weight", "2.weight", "3.filters"], f"expected ['0.weight', '2.weight', '3.filters'], got {names}"
        parameters = dict(model.named_parameters())
        for name, parameter in got:
            assert parameter is parameters[name], f"{name}: return the model's own Parameter, not a copy"

    def test_sparsity_of_weights(self):
        """Weights (3, 4) with 3 zeros and (4, 2) with 5 zeros: sparsity is 8 / 20 = 0.4, a Python float."""
        model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
        first = np.ones((3, 4))
        first[0, :3] = 0
        second = np.ones((4, 2))
        second.flat[[0, 2, 3, 5, 7]] = 0
        model[0].weight.data[...] = first
        model[2].weight.data[...] = second
        got = sparsity(model)
        assert type(got) is float, f"sparsity should return a Python float, got {type(got).__name__}"
        assert got == 0.4, f"8 zeros among 20 weights: expected 0.4, got {got}"

    def test_biases_do_not_count(self):
        """Weights without a zero have sparsity 0.0 whether the biases are zeros (Linear's default) or not.

        Hint: only prunable_weights count. The biases of a fresh Linear are all zero: counting them
        reports pruning that never happened.
        """
        model = mlp(5, 4, 3, seed=1)
        for layer in (model[0], model[2]):
            layer.bias.data[...] = 0.0
        assert sparsity(model) == 0.0, f"zero biases, no zero weight: expected 0.0, got {sparsity(model)}"
        model[0].weight.data[0, 0] = 0.0
        for layer in (model[0], model[2]):
            layer.bias.data[...] = 1.0
        assert sparsity(model) == 1 / 32, f"one zero among 32 weights, biases of 1: expected 1/32, got {sparsity(model)}"

    def test_exactly_zero(self):
        """A weight of 1e-30 is not zero; -0.0 is; an all-zero model has sparsity 1.0."""
        model = Sequential(Linear(2, 2, bias=False))
        model[0].weight.data[...] = [[1e-30, -0.0], [1.0, 2.0]]
        assert sparsity(model) == 0.25, f"[[1e-30, -0.0], [1, 2]]: one zero in 4, got {sparsity(model)}"
        model[0].weight.data[...] = 0.0
        assert sparsity(model) == 1.0, f"all zeros: expected 1.0, got {sparsity(model)}"

    def test_a_model_without_weights(self):
        """sparsity of a model whose only parameter is a vector is a ValueError naming the model's class."""
        raises_naming(lambda: sparsity(OnlyVectors()), ValueError, ["OnlyVectors"], "sparsity(OnlyVectors())")


# -- magnitude -------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("magnitude")
class TestMagnitude:
    def test_the_model_is_left_alone(self):
        """magnitude_masks only computes masks: the weights are unchanged, whatever the scope."""
        model = mlp(6, 5, 3, seed=2)
        before = snapshot(model)
        for scope in ("global", "layer"):
            magnitude_masks(model, 0.5, scope)
            assert_unchanged(model, before, f"magnitude_masks(model, 0.5, {scope!r})")

    def test_keep_largest(self):
        """keep_largest(|w| of (2, 3), 0.5) is False at the 3 smallest, True elsewhere, booleans of the same shape."""
        magnitudes = np.array([[0.5, 0.1, 0.9], [0.3, 2.0, 0.05]])
        got = keep_largest(magnitudes, 0.5)
        assert np.array_equal(magnitudes, [[0.5, 0.1, 0.9], [0.3, 2.0, 0.05]]), (
            f"keep_largest changed the magnitudes it was given to {magnitudes.tolist()}: sort a copy (np.argsort)")
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_, (
            f"keep_largest should return a boolean array, got {type(got).__name__} {getattr(got, 'dtype', '')}")
        expected = np.array([[True, False, True], [False, True, False]])
        assert np.array_equal(got, expected), f"keep_largest(..., 0.5):\nexpected\n{expected}\ngot\n{got}"

    def test_the_count_is_rounded(self):
        """amount 0.37 of 10 weights prunes round(3.7) = 4; amount 0.33 of 10 prunes 3; 0 prunes none, 1 all."""
        magnitudes = np.arange(1.0, 11.0)[::-1]  # the smallest come last
        for amount, count in ((0.37, 4), (0.33, 3), (0.0, 0), (1.0, 10)):
            got = keep_largest(magnitudes, amount)
            assert int(np.sum(~got)) == count, f"keep_largest of 10 values, amount {amount}: expected {count} pruned, got {int(np.sum(~got))}"
            assert not got[10 - count:].any() and got[:10 - count].all(), f"the {count} smallest should go, got {got}"

    def test_ties_prune_exactly_the_count(self):
        """Twenty equal magnitudes and amount 0.3: exactly 6 are pruned, the first 6 in row-major order; so for ten tied 1s among 2s.

        Hint: a threshold (prune every |w| <= the 6th smallest) prunes all 20 tied weights. Rank
        instead, with a stable sort: among equals, the earlier position goes first.
        """
        got = keep_largest(np.ones((4, 5)), 0.3)
        expected = np.ones(20, dtype=bool)
        expected[:6] = False
        assert np.array_equal(got, expected.reshape(4, 5)), f"ties:\nexpected\n{expected.reshape(4, 5)}\ngot\n{got}"
        alternating = np.resize([1.0, 2.0], 20).reshape(4, 5)  # ten tied 1s at the even positions
        got = keep_largest(alternating, 0.25)
        pruned = np.flatnonzero(~got).tolist()
        assert pruned == [0, 2, 4, 6, 8], (
            f"magnitudes alternating 1, 2 over (4, 5), amount 0.25: expected the first five 1s pruned (flat positions "
            f"[0, 2, 4, 6, 8]), got {pruned}; numpy's default sort does not keep tied entries in order: "
            "np.argsort(..., kind='stable')")

    def test_magnitude_not_sign(self):
        """Per layer, weights [-5, 0.1, 3, -0.2, 0.3, -4] at 50% keep -5, 3 and -4: the largest |w|, negatives included.

        Hint: rank np.abs(weight). Ranking the signed values prunes the large negative weights first.
        """
        model = Sequential(layer_with([[-5.0, 0.1, 3.0], [-0.2, 0.3, -4.0]]))
        got = magnitude_masks(model, 0.5, "layer")["0.weight"]
        expected = np.array([[True, False, True], [False, False, True]])
        assert np.array_equal(got, expected), f"expected the masks\n{expected}\ngot\n{got}"

    def test_masks_are_named_booleans_for_the_weights(self):
        """The masks of Linear, ReLU, Linear are {"0.weight": bool (6, 5), "2.weight": bool (5, 3)}: no bias."""
        model = mlp(6, 5, 3, seed=3)
        for scope in ("global", "layer"):
            got = magnitude_masks(model, 0.4, scope)
            assert isinstance(got, dict) and list(got) == ["0.weight", "2.weight"], (
                f"scope {scope!r}: expected a dict with keys ['0.weight', '2.weight'], got {got!r}")
            for name, shape in (("0.weight", (6, 5)), ("2.weight", (5, 3))):
                mask = got[name]
                assert isinstance(mask, np.ndarray) and mask.dtype == np.bool_, f"{name}: the mask should be booleans"
                assert_shape(mask, shape, f"scope {scope!r}: the mask of {name}")

    def test_layer_scope(self):
        """scope="layer" at 50%: a layer of small weights and a layer of large ones each lose half, their own smallest."""
        small = random_array((4, 5), 4, scale=0.01)
        large = random_array((5, 2), 5, scale=10.0)
        model = Sequential(layer_with(small), ReLU(), layer_with(large))
        got = magnitude_masks(model, 0.5, "layer")
        for name, weight in (("0.weight", small), ("2.weight", large)):
            expected = np.abs(weight) > np.median(np.abs(weight))
            assert np.array_equal(got[name], expected), f"scope 'layer', {name}:\nexpected\n{expected}\ngot\n{got[name]}"

    def test_global_scope_ranks_every_weight_together(self):
        """scope="global" at 50% of 30 weights: the 15 smallest of the whole model, all 15 from the layer of small weights.

        Hint: global pruning is ONE ranking over all the weights concatenated, not the same fraction of each
        layer: a layer whose weights are all small loses more.
        """
        small = random_array((4, 5), 6, scale=0.01)
        large = np.sign(random_array((5, 2), 7)) * (1 + np.abs(random_array((5, 2), 8)))  # every |w| above 1
        small.flat[:5] = [0.5, -0.4, 0.3, 0.2, -0.1]  # five of the small layer beat nothing in the large one
        model = Sequential(layer_with(small), ReLU(), layer_with(large))
        got = magnitude_masks(model, 0.5, "global")
        expected_small = np.zeros(20, dtype=bool)
        expected_small[:5] = True
        assert np.array_equal(got["0.weight"], expected_small.reshape(4, 5)), (
            f"global 50%: the small layer should keep only its five largest weights; got\n{got['0.weight']}")
        assert got["2.weight"].all(), f"global 50%: the large layer should keep every weight; got\n{got['2.weight']}"

    def test_global_is_the_default(self):
        """magnitude_masks(model, 0.5) is the same as scope="global"."""
        model = Sequential(layer_with(random_array((4, 5), 8, scale=0.01)), ReLU(), layer_with(random_array((5, 2), 9)))
        default, chosen = magnitude_masks(model, 0.5), magnitude_masks(model, 0.5, "global")
        for name in chosen:
            assert np.array_equal(default[name], chosen[name]), f"the default scope should be 'global' ({name} differs)"

    def test_global_ties_go_in_parameter_order(self):
        """All 20 weights equal, global 25%: exactly 5 go, the first 5 of the first weight."""
        model = Sequential(layer_with(np.ones((3, 4))), ReLU(), layer_with(np.ones((4, 2))))
        got = magnitude_masks(model, 0.25)
        pruned = [int(np.sum(~got[name])) for name in ("0.weight", "2.weight")]
        assert pruned == [5, 0], f"equal weights, global 25% of 20: expected [5, 0] pruned per layer, got {pruned}"
        assert not got["0.weight"].flat[:5].any(), f"the first 5 positions should go, got\n{got['0.weight']}"

    def test_zeros_go_first(self):
        """Weights that are already zero are the smallest: pruning 25% of a weight with 2 zeros in 8 takes them."""
        weight = np.array([[0.0, 3.0, -1.0, 2.0], [4.0, 0.0, -6.0, 5.0]])
        got = magnitude_masks(Sequential(layer_with(weight)), 0.25)["0.weight"]
        assert np.array_equal(got, weight != 0), f"expected the two zeros pruned, got\n{got}"

    def test_options_are_checked(self):
        """amount 1.5 or -0.1, scope "local", a model without weights: ValueErrors naming the value or the model."""
        model = mlp(3, 2, seed=10)
        raises_naming(lambda: magnitude_masks(model, 1.5), ValueError, ["1.5"], "magnitude_masks(model, 1.5)")
        raises_naming(lambda: magnitude_masks(model, -0.1, "layer"), ValueError, ["-0.1"], "magnitude_masks(model, -0.1)")
        raises_naming(lambda: magnitude_masks(model, 0.5, "local"), ValueError, ["local", "global", "layer"],
                      "magnitude_masks(model, 0.5, 'local')")
        raises_naming(lambda: magnitude_masks(OnlyVectors(), 0.5), ValueError, ["OnlyVectors"],
                      "magnitude_masks(OnlyVectors(), 0.5)")

    def test_amount_0_and_1_are_allowed(self):
        """amount 0 keeps every weight and amount 1 prunes every one, in both scopes: the ends of [0, 1] are valid."""
        model = mlp(6, 5, 3, seed=13)
        for scope in ("global", "layer"):
            for amount, kept in ((0.0, True), (1.0, False)):
                masks = magnitude_masks(model, amount, scope)
                for name, mask in masks.items():
                    assert np.all(mask == kept), (
                        f"magnitude_masks(model, {amount}, {scope!r}): {name} should be all {kept}, got {int(mask.sum())} "
                        f"of {mask.size} kept")

    def test_apply_masks_zeroes_in_place(self):
        """apply_masks writes 0 where a mask is False into the model's own arrays; kept weights and biases are untouched."""
        model = mlp(6, 5, 3, seed=11)
        arrays = [parameter.data for parameter in model.parameters()]
        before = snapshot(model)
        masks = magnitude_masks(model, 0.6, "layer")
        assert apply_masks(model, masks) is None, "apply_masks changes the model in place and returns None"
        for parameter, array in zip(model.parameters(), arrays):
            assert parameter.data is array, "apply_masks should write into the existing arrays (an optimizer holds them)"
        for name, parameter in model.named_parameters():
            keep = masks.get(name, np.ones(parameter.shape, dtype=bool))
            assert np.all(parameter.data[~keep] == 0), f"{name}: every pruned weight should be 0"
            assert np.array_equal(parameter.data[keep], before[name][keep]), f"{name}: kept values should not change"

    def test_masks_are_checked_against_the_model(self):
        """A mask naming no parameter (KeyError listing the model's names), of float dtype (TypeError) or of the wrong shape (ValueError) names what is wrong."""
        model = mlp(4, 3, 2, seed=12)
        good = magnitude_masks(model, 0.5)
        raises_naming(lambda: apply_masks(model, {**good, "1.weight": np.ones((3, 2), dtype=bool)}), KeyError,
                      ["1.weight", "0.weight", "2.bias"],
                      "a mask for '1.weight', which the model does not have (the message lists the model's parameters)")
        raises_naming(lambda: apply_masks(model, {**good, "2.weight": np.ones((3, 2))}), TypeError,
                      ["2.weight", "float64"], "a float64 mask")
        raises_naming(lambda: apply_masks(model, {**good, "2.weight": np.ones((2, 3), dtype=bool)}), ValueError,
                      ["2.weight", "(2, 3)", "(3, 2)"], "a (2, 3) mask for a (3, 2) weight")
        pairs = masked_parameters(model, good)
        assert [p for p, _ in pairs] == [model[0].weight, model[2].weight], (
            "masked_parameters should pair each mask with the model's own Parameter, in the order of the masks")

    def test_half_of_the_digits_mlp_costs_at_most_2_points(self, digits):
        """Global pruning of 50% of the trained digits MLP's weights, without fine-tuning, loses at most 2 points of test accuracy."""
        model, (_, x_test, _, y_test), dense = digits
        pruned = copy.deepcopy(model)
        apply_masks(pruned, magnitude_masks(pruned, 0.5))
        assert sparsity(pruned) == 0.5, f"64*128 + 128*10 = 9472 weights pruned by half: sparsity {sparsity(pruned)}"
        got = digits_accuracy(pruned, x_test, y_test)
        assert got >= dense - 0.02, (
            f"50% global magnitude pruning: test accuracy {got:.2%}, down from {dense:.2%}; at most 2 points may go. "
            "Check that the SMALLEST magnitudes go (np.abs), over the whole model at once")


# -- fine_tuning -----------------------------------------------------------------------------------------


def small_problem(seed: int):
    """A float64 MLP 6-8-3 and a batch of 10 labelled points."""
    model = mlp(6, 8, 3, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    return model, rng.standard_normal((10, 6)), rng.integers(0, 3, size=10)


def assert_pruned_are_zero(model, masks, what: str) -> None:
    for name, parameter in model.named_parameters():
        if name in masks:
            pruned = parameter.data[~masks[name]]
            assert np.all(pruned == 0), (
                f"{what}: {int(np.count_nonzero(pruned))} pruned weights of {name} are no longer zero "
                f"(largest {np.max(np.abs(pruned)):.3g})")


@pytest.mark.checkpoint("fine_tuning")
class TestFineTuning:
    def test_wrapping_applies_the_masks(self):
        """MaskedOptimizer(optimizer, model, masks) zeroes the pruned weights at once, before any step."""
        model, _, _ = small_problem(20)
        masks = magnitude_masks(model, 0.5)
        MaskedOptimizer(SGD(model.parameters(), lr=0.1), model, masks)
        assert_pruned_are_zero(model, masks, "right after MaskedOptimizer(...)")

    def test_sgd_updates_only_the_kept_weights(self):
        """One SGD step through MaskedOptimizer: kept weights move by -lr * grad, pruned ones stay exactly 0."""
        model, x, y = small_problem(21)
        masks = magnitude_masks(model, 0.5)
        optimizer = MaskedOptimizer(SGD(model.parameters(), lr=0.1), model, masks)
        before = snapshot(model)
        optimizer.zero_grad()
        cross_entropy(model(Tensor(x, dtype=np.float64)), y).backward()
        grads = {name: parameter.grad.copy() for name, parameter in model.named_parameters()}
        optimizer.step()
        assert_pruned_are_zero(model, masks, "after one SGD step")
        for name, parameter in model.named_parameters():
            keep = masks.get(name, np.ones(parameter.shape, dtype=bool))
            assert_close(parameter.data[keep], (before[name] - 0.1 * grads[name])[keep],
                         f"{name}: kept weights after one SGD step")

    def test_momentum_from_before_pruning_does_not_regrow_weights(self):
        """SGD with momentum 0.9 trains densely for 3 steps; then, pruned and wrapped, 3 more steps leave pruned weights at 0.

        Hint: the velocity built before pruning keeps moving a weight whose gradient is zero. Zero the
        pruned weights again AFTER every step of the wrapped optimizer.
        """
        model, x, y = small_problem(22)
        sgd = SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            one_step(model, sgd, x, y)
        masks = magnitude_masks(model, 0.6)
        optimizer = MaskedOptimizer(sgd, model, masks)
        for step in range(3):
            one_step(model, optimizer, x, y)
            assert_pruned_are_zero(model, masks, f"SGD with momentum, masked step {step + 1}")

    def test_adam_moments_from_before_pruning_do_not_regrow_weights(self):
        """Adam trains densely for 3 steps; then, pruned and wrapped, every later step leaves pruned weights at exactly 0."""
        model, x, y = small_problem(23)
        adam = Adam(model.parameters(), lr=0.05)
        for _ in range(3):
            one_step(model, adam, x, y)
        masks = magnitude_masks(model, 0.7, "layer")
        optimizer = MaskedOptimizer(adam, model, masks)
        for step in range(4):
            one_step(model, optimizer, x, y)
            assert_pruned_are_zero(model, masks, f"Adam, masked step {step + 1}")

    def test_the_optimizer_never_sees_a_pruned_gradient(self):
        """With a fresh Adam wrapped, the pruned weights' gradients are zeroed before each step: their moments stay exactly 0.

        Hint: zero `grad[~keep]` BEFORE the wrapped step. Zeroing the weights afterwards alone leaves the
        moments full of gradients of weights that no longer exist.
        """
        model, x, y = small_problem(24)
        masks = magnitude_masks(model, 0.5)
        adam = Adam(model.parameters(), lr=0.01)
        optimizer = MaskedOptimizer(adam, model, masks)
        for _ in range(2):
            one_step(model, optimizer, x, y)
        for index, (name, parameter) in enumerate(model.named_parameters()):
            if name in masks:
                pruned = ~masks[name]
                for moment in ("exp_avg", "exp_avg_sq"):
                    assert np.all(adam.state[index][moment][pruned] == 0), (
                        f"{name}: Adam's {moment} of pruned weights should stay 0; the gradient reached the optimizer")
                assert np.all(parameter.grad[pruned] == 0), f"{name}: the gradient of pruned weights should be zeroed"

    def test_it_stands_in_for_the_optimizer(self):
        """lr reads and sets the wrapped optimizer's (schedules need it), zero_grad and state_dict are the wrapped ones'."""
        model, x, y = small_problem(25)
        sgd = SGD(model.parameters(), lr=0.1, momentum=0.5)
        optimizer = MaskedOptimizer(sgd, model, magnitude_masks(model, 0.5))
        assert optimizer.lr == 0.1, f"lr should be the wrapped optimizer's 0.1, got {optimizer.lr}"
        train_epoch(model, CrossEntropyLoss(), optimizer, [(x, y)] * 3, schedule=lambda step: 0.01 * (step + 1))
        assert sgd.lr == 0.03, f"a schedule sets optimizer.lr: the wrapped SGD should have lr 0.03, got {sgd.lr}"
        assert set(optimizer.state_dict()) == set(sgd.state_dict()), "state_dict should be the wrapped optimizer's"
        optimizer.load_state_dict(sgd.state_dict())
        optimizer.zero_grad()
        assert all(p.grad is None for p in model.parameters()), "zero_grad should clear every gradient"

    def test_masks_are_checked(self):
        """A mask for a parameter the model does not have is a KeyError naming it; a float mask a TypeError, a (3, 8) mask for an (8, 3) weight a ValueError."""
        model, _, _ = small_problem(26)
        raises_naming(lambda: MaskedOptimizer(SGD(model.parameters(), lr=0.1), model,
                                              {"5.weight": np.ones((8, 3), dtype=bool)}),
                      KeyError, ["5.weight"], "MaskedOptimizer with a mask for '5.weight'")
        raises_naming(lambda: MaskedOptimizer(SGD(model.parameters(), lr=0.1), model, {"2.weight": np.ones((8, 3))}),
                      TypeError, ["2.weight", "float64"], "MaskedOptimizer with a float64 mask (check it as apply_masks does)")
        raises_naming(lambda: MaskedOptimizer(SGD(model.parameters(), lr=0.1), model,
                                              {"2.weight": np.ones((3, 8), dtype=bool)}),
                      ValueError, ["2.weight", "(3, 8)", "(8, 3)"], "MaskedOptimizer with a (3, 8) mask for an (8, 3) weight")

    def test_a_weight_without_gradient(self):
        """A step when a masked weight has no gradient (none computed yet, or its layer unused) skips it, as the optimizer does."""
        model, _, _ = small_problem(27)
        masks = magnitude_masks(model, 0.5)
        optimizer = MaskedOptimizer(SGD(model.parameters(), lr=0.1), model, masks)
        before = snapshot(model)
        optimizer.zero_grad()
        try:
            optimizer.step()
        except TypeError as error:
            raise AssertionError(f"MaskedOptimizer.step() with no gradients raised {error!r}: a parameter's grad is None "
                                 "until a backward reaches it; skip those when zeroing the pruned gradients") from None
        for name, parameter in model.named_parameters():
            assert np.array_equal(parameter.data, before[name]), f"{name} moved in a step without gradients"

    def test_90_percent_of_the_digits_mlp_recovers_with_fine_tuning(self, digits):
        """The digits MLP pruned to 90% collapses; 5 epochs of masked fine-tuning bring it within 3 points of the dense accuracy."""
        model, (x_train, x_test, y_train, y_test), dense = digits
        pruned = copy.deepcopy(model)
        masks = magnitude_masks(pruned, 0.9)
        optimizer = MaskedOptimizer(Adam(pruned.parameters(), lr=1e-2), pruned, masks)
        before = digits_accuracy(pruned, x_test, y_test)
        fit(pruned, CrossEntropyLoss(), optimizer, (x_train, y_train), epochs=5, batch_size=32,
            rng=np.random.default_rng(7))
        assert_pruned_are_zero(pruned, masks, "after 5 epochs of fine-tuning")
        got = digits_accuracy(pruned, x_test, y_test)
        assert got >= dense - 0.03, (
            f"90% pruned: {before:.2%} before fine-tuning, {got:.2%} after 5 epochs (dense: {dense:.2%}); "
            "fine-tuning should recover to within 3 points")


# -- structured -------------------------------------------------------------------------------------------


class Scale(Module):
    """A layer with a parameter of its own: structured pruning cannot see through it."""

    def __init__(self, size: int):
        super().__init__()
        self.gain = Parameter(np.ones(size))

    def forward(self, x):
        return x * self.gain


@pytest.mark.checkpoint("structured")
class TestStructured:
    def test_the_original_model_is_left_alone(self):
        """prune_structured returns a new model; the original keeps its shapes and values and shares no array with it."""
        model = integer_mlp(6, 5, 4, 3, seed=30)
        before = snapshot(model)
        pruned = prune_structured(model, 0.4)
        assert_unchanged(model, before, "prune_structured")
        for new in pruned.parameters():
            for old in model.parameters():
                assert not np.shares_memory(new.data, old.data), (
                    "the pruned model shares an array with the original: training one would change the other")

    def test_unit_importance(self):
        """unit_importance of a Linear (in 3, out 4) is the L1 norm of each of its 4 columns (each unit's incoming weights).

        Hint: a unit (neuron) of a Linear with weight (in, out) is a COLUMN: sum |w| over axis 0.
        """
        weight = np.array([[1.0, -2.0, 0.5, 0.0], [-3.0, 1.0, 0.5, 0.0], [0.5, 1.0, -4.0, 0.1]])
        got = unit_importance(layer_with(weight))
        assert isinstance(got, np.ndarray), f"unit_importance should return a numpy array, got {type(got).__name__}"
        assert_close(got, [4.5, 4.0, 5.0, 0.1], "unit_importance: L1 norms of the columns")

    def test_units_to_keep(self):
        """units_to_keep(amount 0.5) of 4 units with norms [4.5, 4, 5, 0.1] is [0, 2], ascending; amount 0 keeps all."""
        layer = layer_with([[1.0, -2.0, 0.5, 0.0], [-3.0, 1.0, 0.5, 0.0], [0.5, 1.0, -4.0, 0.1]])
        got = units_to_keep(layer, 0.5)
        assert isinstance(got, np.ndarray) and np.issubdtype(got.dtype, np.integer), (
            f"units_to_keep should return an integer index array, got {got!r}")
        assert got.tolist() == [0, 2], f"expected units [0, 2] (the two largest L1 norms, ascending), got {got.tolist()}"
        assert units_to_keep(layer, 0.0).tolist() == [0, 1, 2, 3], "amount 0 keeps every unit"
        assert units_to_keep(layer, 0.6).tolist() == [0, 2], "amount 0.6 of 4 removes round(2.4) = 2 units"
        assert units_to_keep(layer, 0.7).tolist() == [2], "amount 0.7 of 4 removes round(2.8) = 3 units"

    def test_ties_remove_the_lower_index_first(self):
        """Five units of equal norm, amount 0.4: units 0 and 1 go, [2, 3, 4] stay; among 24 alternating norms, the lowest tied indices go."""
        got = units_to_keep(layer_with(np.ones((2, 5))), 0.4)
        assert got.tolist() == [2, 3, 4], f"equal norms: expected [2, 3, 4] kept, got {got.tolist()}"
        alternating = layer_with(np.resize([1.0, 2.0], 24).reshape(1, 24))  # twelve tied norms of 1 at the even units
        removed = sorted(set(range(24)) - set(units_to_keep(alternating, 0.25).tolist()))
        assert removed == [0, 2, 4, 6, 8, 10], (
            f"24 units with norms alternating 1, 2, amount 0.25: expected the first six of norm 1 removed "
            f"([0, 2, 4, 6, 8, 10]), got {removed}; numpy's default sort does not keep ties in order: kind='stable'")

    def test_units_to_keep_checks_amount(self):
        """amount 1.2 or -0.5 is a ValueError naming it; amount 1 (no unit left) a ValueError naming the layer."""
        layer = layer_with(np.ones((2, 3)))
        raises_naming(lambda: units_to_keep(layer, 1.2), ValueError, ["1.2"], "units_to_keep(layer, 1.2)")
        raises_naming(lambda: units_to_keep(layer, -0.5), ValueError, ["-0.5"], "units_to_keep(layer, -0.5)")
        raises_naming(lambda: units_to_keep(layer, 1.0), ValueError, ["Linear"], "units_to_keep(layer, 1.0)")

    def test_keep_outputs(self):
        """keep_outputs(Linear(4, 5), [0, 2, 3]) is a new Linear(4, 3): columns 0, 2, 3 and those bias entries, float64 kept."""
        layer = integer_linear(4, 5, np.random.default_rng(31))
        keep = np.array([0, 2, 3])
        got = keep_outputs(layer, keep)
        assert isinstance(got, Linear) and got is not layer, f"keep_outputs should return a new Linear, got {got!r}"
        assert (got.in_features, got.out_features) == (4, 3), f"expected Linear(4, 3), got {got!r}"
        assert_tensor(got.weight, "the new weight", shape=(4, 3), dtype=np.float64)
        assert np.array_equal(got.weight.data, layer.weight.data[:, keep]), "the weight should be columns 0, 2, 3"
        assert np.array_equal(got.bias.data, layer.bias.data[keep]), "the bias should be entries 0, 2, 3"
        plain = keep_outputs(integer_linear(4, 5, np.random.default_rng(32), bias=False), keep)
        assert plain.bias is None, "a layer without bias stays without bias"

    def test_keep_inputs(self):
        """keep_inputs(Linear(5, 3), [1, 4]) is a new Linear(2, 3): rows 1 and 4, the whole bias."""
        layer = integer_linear(5, 3, np.random.default_rng(33))
        keep = np.array([1, 4])
        got = keep_inputs(layer, keep)
        assert isinstance(got, Linear) and got is not layer, f"keep_inputs should return a new Linear, got {got!r}"
        assert (got.in_features, got.out_features) == (2, 3), f"expected Linear(2, 3), got {got!r}"
        assert np.array_equal(got.weight.data, layer.weight.data[keep]), "the weight should be rows 1 and 4"
        assert np.array_equal(got.bias.data, layer.bias.data), "the bias is unchanged: the outputs are all still there"

    def test_shapes_shrink(self):
        """A 64-16-12-10 MLP at amount 0.5 becomes 64-8-6-10: every weight and bias smaller, the outputs unchanged.

        Hint: removing unit j of one Linear removes column j of its weight, entry j of its bias, AND row j
        of the next Linear's weight. Zeroing them instead leaves every shape (and every FLOP) as it was.
        """
        model = mlp(64, 16, 12, 10, seed=34)
        pruned = prune_structured(model, 0.5)
        assert isinstance(pruned, Sequential), f"prune_structured should return a Sequential, got {type(pruned).__name__}"
        shapes = [tuple(parameter.shape) for parameter in pruned.parameters()]
        expected = [(64, 8), (8,), (8, 6), (6,), (6, 10), (10,)]
        assert shapes == expected, f"parameter shapes after pruning half the hidden units: expected {expected}, got {shapes}"
        assert pruned.num_parameters() == 64 * 8 + 8 + 8 * 6 + 6 + 6 * 10 + 10, (
            f"the pruned model should hold {64 * 8 + 8 + 8 * 6 + 6 + 6 * 10 + 10} numbers, got {pruned.num_parameters()}")
        assert forward(pruned, random_array((3, 64), 35, dtype=np.float32)).shape == (3, 10), "the output is (3, 10)"

    def test_kept_units_compute_what_they_computed(self):
        """On integer weights, the first pruned layer's outputs equal the original's kept columns exactly."""
        model = integer_mlp(6, 7, 5, 3, seed=36)
        pruned = prune_structured(model, 0.4)
        keep = np.sort(l1_order(model[0].weight.data)[round(0.4 * 7):])
        x = random_array((4, 6), 37).round()
        assert np.array_equal(forward(pruned[0], x), forward(model[0], x)[:, keep]), (
            f"the first layer's kept units {keep.tolist()} should compute exactly what they did")

    def test_the_model_is_the_original_with_the_units_silenced(self):
        """On integer weights, the pruned model's output equals the original's with the removed units' outgoing rows zeroed, exactly.

        Hint: the units with the SMALLEST L1 norm (|w|, not the signed sum) of their column go; each layer's
        choice comes from the original weights.
        """
        model = integer_mlp(6, 7, 5, 3, seed=38)
        pruned = prune_structured(model, 0.4)
        silenced = copy.deepcopy(model)
        for producer, consumer in ((0, 2), (2, 4)):
            removed = l1_order(model[producer].weight.data)[:round(0.4 * model[producer].out_features)]
            silenced[consumer].weight.data[removed] = 0.0
        x = random_array((5, 6), 39).round()
        got, expected = forward(pruned, x), forward(silenced, x)
        assert np.array_equal(got, expected), (
            f"the pruned model should compute exactly the original with the removed units' outputs unused:\n"
            f"expected\n{expected}\ngot\n{got}")

    def test_each_layer_is_ranked_by_its_original_weights(self):
        """A middle layer's units are ranked on its whole original columns, not on the rows left after its inputs were cut.

        Hint: compute every layer's `keep` from the original model's layers; after the previous layer's
        pruning, a column has lost some of its weights and may rank differently.
        """
        first = layer_with([[0.1, 5.0], [0.1, 5.0]])  # unit 0 is the weaker: it goes
        middle = layer_with([[10.0, 0.0], [0.0, 1.0]])  # row 0 reads unit 0; on whole columns unit 0 wins (10 vs 1)
        model = Sequential(first, ReLU(), middle, ReLU(), layer_with([[1.0], [2.0]]))
        got = prune_structured(model, 0.5)[2].weight.data
        assert np.array_equal(got, [[0.0]]), (
            f"the middle layer keeps its unit 0 (L1 norm 10 against 1 on the original columns) and reads only the "
            f"first layer's unit 1: expected weight [[0.0]], got {got.tolist()}")

    def test_parameter_free_layers_between_are_kept(self):
        """Linear, Tanh, Dropout, Linear: the pruned model has the same kinds of layers, a new Dropout of the same p."""
        model = Sequential(Linear(4, 6, rng=np.random.default_rng(40)), Tanh(), Dropout(0.3),
                           Linear(6, 2, rng=np.random.default_rng(41)))
        pruned = prune_structured(model, 0.5)
        kinds = [type(layer).__name__ for layer in pruned.layers]
        assert kinds == ["Linear", "Tanh", "Dropout", "Linear"], f"expected the same kinds of layers, got {kinds}"
        assert pruned[2] is not model[2] and pruned[2].p == 0.3, "the Dropout should be a copy with p = 0.3"
        assert [tuple(p.shape) for p in pruned.parameters()] == [(4, 3), (3,), (3, 2), (2,)], (
            f"got shapes {[tuple(p.shape) for p in pruned.parameters()]}")

    def test_unit_importance_of_a_conv2d(self):
        """unit_importance of a Conv2d(2, 3, 2) is the L1 norm of each of its 3 filters (2, 2, 2): shape (3,).

        Hint: a Conv2d's weight is (out, in, kh, kw): a unit is a filter, weight[o]; sum |w| over axes 1, 2, 3.
        """
        layer = Conv2d(2, 3, 2, rng=np.random.default_rng(42))
        weight = random_array((3, 2, 2, 2), 43)
        layer.weight = Parameter(weight, dtype=np.float64)
        assert_close(unit_importance(layer), np.abs(weight).reshape(3, -1).sum(axis=1), "unit_importance of a Conv2d")

    def test_keep_outputs_and_inputs_of_a_conv2d(self):
        """Conv2d(3, 5, 3, stride 2, padding 1): keep_outputs([1, 4]) keeps those filters and biases, keep_inputs([0, 2]) those input channels."""
        layer = Conv2d(3, 5, 3, stride=2, padding=1, rng=np.random.default_rng(44))
        layer.bias = Parameter(random_array(5, 45, dtype=np.float32))
        outputs = keep_outputs(layer, np.array([1, 4]))
        assert isinstance(outputs, Conv2d), f"keep_outputs of a Conv2d should return a Conv2d, got {outputs!r}"
        assert (outputs.in_channels, outputs.out_channels) == (3, 2), f"expected Conv2d(3, 2, ...), got {outputs!r}"
        assert outputs.stride == (2, 2) and outputs.padding == (1, 1), f"stride and padding must stay, got {outputs!r}"
        assert np.array_equal(outputs.weight.data, layer.weight.data[[1, 4]]), "the weight should be filters 1 and 4"
        assert np.array_equal(outputs.bias.data, layer.bias.data[[1, 4]]), "the bias should be entries 1 and 4"
        inputs = keep_inputs(layer, np.array([0, 2]))
        assert isinstance(inputs, Conv2d) and (inputs.in_channels, inputs.out_channels) == (2, 5), (
            f"keep_inputs([0, 2]) should give Conv2d(2, 5, ...), got {inputs!r}")
        assert np.array_equal(inputs.weight.data, layer.weight.data[:, [0, 2]]), "the weight should be channels 0 and 2"
        assert np.array_equal(inputs.bias.data, layer.bias.data), "the bias is unchanged"

    def test_keep_inputs_after_a_flatten(self):
        """A Linear(12, 2) reading 3 flattened channels of 4 values: keep_inputs([0, 2], per_unit=4) keeps rows 0-3 and 8-11.

        Hint: Flatten lays out (C, H, W) channel by channel, so channel k is the block of rows
        k*H*W .. (k+1)*H*W - 1 of the Linear's weight.
        """
        layer = layer_with(random_array((12, 2), 46), np.zeros(2))
        got = keep_inputs(layer, np.array([0, 2]), per_unit=4)
        assert np.array_equal(got.weight.data, layer.weight.data[[0, 1, 2, 3, 8, 9, 10, 11]]), (
            f"expected rows 0-3 and 8-11, got a weight of shape {got.weight.shape}")

    def test_a_cnn_loses_channels(self):
        """Conv(1->4), pool, Conv(4->6), pool, Flatten, Linear(24, 3) at amount 0.5 becomes 1->2, 2->3, Linear(12, 3), and computes exactly the original with those channels silenced.

        Hint: removing channel c of a Conv2d removes its filter weight[c] and bias[c], the input channel
        weight[:, c] of the next Conv2d, and, after a Flatten, the block of H*W rows of the Linear that read it.
        """
        model = integer_cnn(47)
        pruned = prune_structured(model, 0.5)
        shapes = [tuple(parameter.shape) for parameter in pruned.parameters()]
        expected = [(2, 1, 3, 3), (2,), (3, 2, 3, 3), (3,), (12, 3), (3,)]
        assert shapes == expected, f"parameter shapes after removing half the channels: expected {expected}, got {shapes}"
        silenced = copy.deepcopy(model)
        silenced[3].weight.data[:, filter_order(model[0].weight.data)[:2]] = 0.0
        for channel in filter_order(model[3].weight.data)[:3]:
            silenced[7].weight.data[channel * 4:(channel + 1) * 4] = 0.0
        x = np.random.default_rng(48).integers(0, 4, size=(2, 1, 8, 8)).astype(np.float64)
        got, want = forward(pruned, x), forward(silenced, x)
        assert np.array_equal(got, want), f"the pruned CNN should compute exactly the silenced original:\nexpected\n{want}\ngot\n{got}"

    def test_what_cannot_be_pruned(self):
        """Not a Sequential: TypeError. One Linear only, or a layer with parameters between Linears: ValueError naming it."""
        raises_naming(lambda: prune_structured(Linear(3, 2), 0.5), TypeError, ["Linear"], "prune_structured(Linear)")
        raises_naming(lambda: prune_structured(Sequential(Linear(3, 2), ReLU()), 0.5), ValueError, ["Linear"],
                      "prune_structured of a model with one Linear")
        with_scale = Sequential(Linear(3, 4), Scale(4), Linear(4, 2))
        raises_naming(lambda: prune_structured(with_scale, 0.5), ValueError, ["Scale"],
                      "prune_structured with a parameter-holding layer between the Linears")
        rng = np.random.default_rng(49)
        uneven = Sequential(Conv2d(1, 3, 1, rng=rng), Flatten(), Linear(10, 2, rng=rng))
        raises_naming(lambda: prune_structured(uneven, 0.5), ValueError, ["Linear", "10"],
                      "a Linear of 10 inputs after 3 channels")
        into_conv = Sequential(Linear(4, 4, rng=rng), ReLU(), Conv2d(4, 2, 1, rng=rng))
        raises_naming(lambda: prune_structured(into_conv, 0.5), ValueError, ["Linear", "Conv2d"],
                      "a Linear feeding a Conv2d")


# -- sparse_format -------------------------------------------------------------------------------------------


def sparse_matrix(shape, density: float, seed: int, dtype=np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape).astype(dtype)
    return np.where(rng.random(shape) < density, values, 0).astype(dtype)


def kept_arrays_nbytes(packed) -> int:
    """The bytes of every numpy array the object holds in its attributes: what it really keeps."""
    return sum(value.nbytes for value in vars(packed).values() if isinstance(value, np.ndarray))


EMPTY_ROWS = np.array([[0.0, 0.0, 0.0, 0.0],   # empty first row
                       [0.0, 2.0, 0.0, -1.0],
                       [0.0, 0.0, 0.0, 0.0],   # empty row in the middle
                       [3.0, 0.0, 4.0, 0.0],
                       [0.0, 0.0, 0.0, 0.0]])  # empty last row


@pytest.mark.checkpoint("sparse_format")
class TestSparseFormat:
    def test_the_dense_matrix_is_left_alone(self):
        """from_dense and matmul change neither the matrix nor x."""
        dense = sparse_matrix((4, 5), 0.5, 50)
        x = random_array((5, 2), 51)
        copies = dense.copy(), x.copy()
        CSRMatrix.from_dense(dense).matmul(x)
        assert np.array_equal(dense, copies[0]) and np.array_equal(x, copies[1]), "the inputs changed"

    def test_the_three_arrays(self):
        """[[0, 2, 0], [0, 0, 0], [3, 0, 4], [0, 0, 0]] packs to values [2, 3, 4], columns [1, 0, 2], row pointers [0, 1, 1, 3, 3].

        Hint: row pointers have rows + 1 entries: a running count of the values row by row, starting at 0.
        Empty rows repeat the count, and so do the empty rows at the end (np.bincount needs minlength).
        """
        packed = CSRMatrix.from_dense(np.array([[0, 2, 0], [0, 0, 0], [3, 0, 4], [0, 0, 0]], dtype=np.float32))
        assert isinstance(packed, CSRMatrix), f"from_dense should return a CSRMatrix, got {type(packed).__name__}"
        for name, got, expected in (("values", packed.values, [2, 3, 4]), ("column_indices", packed.column_indices, [1, 0, 2]),
                                    ("row_pointers", packed.row_pointers, [0, 1, 1, 3, 3])):
            assert isinstance(got, np.ndarray) and got.tolist() == expected, f"{name}: expected {expected}, got {got!r}"
        assert packed.values.dtype == np.float32, f"values keep the matrix's dtype float32, got {packed.values.dtype}"
        for name in ("column_indices", "row_pointers"):
            dtype = getattr(packed, name).dtype
            assert dtype == np.int32, f"{name} should be int32 (4 bytes each), got {dtype}"
        assert packed.shape == (4, 3) and packed.nnz == 3, f"shape (4, 3) with 3 values, got {packed.shape}, {packed.nnz}"

    def test_empty_rows_first_middle_and_last(self):
        """A (5, 4) matrix with empty rows 0, 2 and 4: row pointers [0, 0, 2, 2, 4, 4]."""
        packed = CSRMatrix.from_dense(EMPTY_ROWS)
        assert packed.row_pointers.tolist() == [0, 0, 2, 2, 4, 4], f"got row pointers {packed.row_pointers.tolist()}"
        assert packed.column_indices.tolist() == [1, 3, 0, 2], f"got column indices {packed.column_indices.tolist()}"
        assert packed.values.tolist() == [2.0, -1.0, 3.0, 4.0], f"got values {packed.values.tolist()}"

    def test_all_zero_and_full(self):
        """An all-zero (3, 2) matrix keeps no value and row pointers [0, 0, 0, 0]; a full one keeps all 6."""
        empty = CSRMatrix.from_dense(np.zeros((3, 2)))
        assert empty.nnz == 0 and empty.row_pointers.tolist() == [0, 0, 0, 0], (
            f"all zeros: expected nnz 0 and row pointers [0, 0, 0, 0], got {empty.nnz}, {empty.row_pointers.tolist()}")
        full = CSRMatrix.from_dense(np.arange(1.0, 7.0).reshape(3, 2))
        assert full.values.tolist() == [1, 2, 3, 4, 5, 6] and full.row_pointers.tolist() == [0, 2, 4, 6], (
            f"full: got values {full.values.tolist()}, row pointers {full.row_pointers.tolist()}")

    def test_round_trip(self):
        """to_dense(from_dense(m)) is m exactly, for float64 (6, 9) and float32 (9, 4) matrices and a Tensor."""
        for shape, dtype, seed in (((6, 9), np.float64, 52), ((9, 4), np.float32, 53)):
            dense = sparse_matrix(shape, 0.3, seed, dtype)
            back = CSRMatrix.from_dense(dense).to_dense()
            assert isinstance(back, np.ndarray) and back.dtype == dtype, f"to_dense should give a {dtype.__name__} array"
            assert np.array_equal(back, dense), f"the round trip of a {shape} {dtype.__name__} matrix changed it"
        dense = sparse_matrix((3, 3), 0.5, 54, np.float32)
        assert np.array_equal(CSRMatrix.from_dense(Tensor(dense)).to_dense(), dense), "from_dense of a Tensor"
        assert np.array_equal(CSRMatrix.from_dense(EMPTY_ROWS).to_dense(), EMPTY_ROWS), "round trip with empty rows"

    def test_matmul_equals_the_dense_product(self):
        """matmul(x) for x (9, 3) equals dense @ x for a (6, 9) matrix with 70% zeros; a (9,) vector gives (6,)."""
        dense = sparse_matrix((6, 9), 0.3, 55)
        packed = CSRMatrix.from_dense(dense)
        x = random_array((9, 3), 56)
        got = packed.matmul(x)
        assert isinstance(got, np.ndarray), f"matmul should return a numpy array, got {type(got).__name__}"
        assert_close(got, dense @ x, "CSR matmul of a (9, 3) x", rtol=1e-12, atol=1e-12)
        vector = random_array(9, 57)
        assert_close(packed.matmul(vector), dense @ vector, "CSR matmul of a (9,) vector", rtol=1e-12, atol=1e-12)

    def test_matmul_with_empty_rows_is_exact(self):
        """With empty rows first, in the middle and last, and integer x, matmul equals dense @ x exactly: empty rows give 0.

        Hint: np.add.reduceat gives an empty row (start == next start) the one product at its start,
        not 0. Sum only the rows that hold values, into a result of zeros.
        """
        x = np.arange(12.0).reshape(4, 3) - 5
        got = CSRMatrix.from_dense(EMPTY_ROWS).matmul(x)
        expected = EMPTY_ROWS @ x
        assert np.array_equal(got, expected), f"CSR matmul with empty rows:\nexpected\n{expected}\ngot\n{got}"
        assert np.array_equal(CSRMatrix.from_dense(EMPTY_ROWS).matmul(x[:, 0]), expected[:, 0]), "the same for a vector"
        zero = CSRMatrix.from_dense(np.zeros((3, 4))).matmul(x)
        assert zero.shape == (3, 3) and not zero.any(), f"an all-zero matrix gives zeros of shape (3, 3), got {zero!r}"

    def test_matmul_of_views_and_dtypes(self):
        """x may be a transposed view; float32 times float32 stays float32, float32 times float64 is float64."""
        dense = sparse_matrix((5, 8), 0.4, 58, np.float32)
        packed = CSRMatrix.from_dense(dense)
        x = random_array((3, 8), 59, dtype=np.float32).T  # (8, 3), not contiguous
        got = packed.matmul(x)
        assert got.dtype == np.float32, f"float32 @ float32 should stay float32, got {got.dtype}"
        assert_close(got, dense @ x, "CSR matmul of a transposed float32 view", rtol=1e-5, atol=1e-6)
        assert packed.matmul(x.astype(np.float64)).dtype == np.float64, "float32 @ float64 gives float64, as numpy does"

    def test_shapes_are_checked(self):
        """A (4, 5) matrix times x (6, 2), x (4,) or x (5, 2, 1) is a ValueError naming both shapes; a 1-D dense is refused too."""
        packed = CSRMatrix.from_dense(sparse_matrix((4, 5), 0.5, 60))
        for shape in ((6, 2), (4,), (5, 2, 1)):
            raises_naming(lambda: packed.matmul(np.zeros(shape)), ValueError, [str(shape), "(4, 5)"],
                          f"a (4, 5) CSR matrix times x of shape {shape}")
        raises_naming(lambda: CSRMatrix.from_dense(np.zeros(5)), ValueError, ["(5,)"], "from_dense of a (5,) vector")

    def test_nbytes_counts_everything_it_keeps(self):
        """nbytes is the bytes of values, column indices and row pointers: for float32 (50, 40) with 200 values, 200 * 8 + 51 * 4."""
        dense = np.zeros((50, 40), dtype=np.float32)
        dense.flat[np.random.default_rng(61).choice(2000, 200, replace=False)] = 1.5
        packed = CSRMatrix.from_dense(dense)
        assert type(packed.nbytes) is int, f"nbytes should be a Python int, got {type(packed.nbytes).__name__}"
        assert packed.nbytes == 200 * 8 + 51 * 4, f"expected {200 * 8 + 51 * 4} bytes, got {packed.nbytes}"
        assert kept_arrays_nbytes(packed) == packed.nbytes, (
            f"the object keeps {kept_arrays_nbytes(packed)} bytes of arrays but reports {packed.nbytes}: keep only the "
            "three arrays (no dense copy)")


# -- low_rank ---------------------------------------------------------------------------------------------


def singular_values(matrix) -> np.ndarray:
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)


@pytest.mark.checkpoint("low_rank")
class TestLowRank:
    def test_rank_for_energy(self):
        """For s = [2, 1, 1, 1, 1] (energies 4, 1, 1, 1, 1 of 8): 0.5 -> 1, 0.75 -> 3, 0.76 -> 4, 1.0 -> 5, 0.1 -> 1.

        Hint: energy is sum(s**2), not sum(s); the rank is the FIRST r whose running sum reaches energy * total.
        """
        s = [2.0, 1.0, 1.0, 1.0, 1.0]
        for energy, rank in ((0.5, 1), (0.75, 3), (0.76, 4), (1.0, 5), (0.1, 1)):
            got = rank_for_energy(s, energy)
            assert type(got) is int, f"rank_for_energy should return a Python int, got {type(got).__name__}"
            assert got == rank, f"rank_for_energy({s}, {energy}): expected {rank}, got {got}"

    def test_zero_singular_values_are_not_needed(self):
        """s = [3, 1, 0, 0] at energy 1.0 needs rank 2: the zero directions add nothing."""
        assert rank_for_energy(np.array([3.0, 1.0, 0.0, 0.0]), 1.0) == 2, "expected rank 2"

    def test_energy_is_checked(self):
        """energy 0 or 1.5 is a ValueError naming it."""
        raises_naming(lambda: rank_for_energy([2.0, 1.0], 0), ValueError, ["0"], "rank_for_energy(s, 0)")
        raises_naming(lambda: rank_for_energy([2.0, 1.0], 1.5), ValueError, ["1.5"], "rank_for_energy(s, 1.5)")

    def test_two_thin_layers(self):
        """low_rank(Linear(7, 5), rank=2): Linear(7, 2) without bias (U_r sqrt(s_r)), then Linear(2, 5) (sqrt(s_r) V_r^T) with the original bias."""
        layer = mlp(7, 5, seed=70, dtype=np.float64)[0]
        before = snapshot(Sequential(layer))
        got = low_rank(layer, rank=2)
        assert isinstance(got, Sequential) and len(got) == 2, f"low_rank should return a Sequential of two layers, got {got!r}"
        first, second = got[0], got[1]
        assert isinstance(first, Linear) and isinstance(second, Linear), "both layers are Linear"
        assert_shape(first.weight, (7, 2), "the first layer's weight (in, rank)")
        assert_shape(second.weight, (2, 5), "the second layer's weight (rank, out)")
        assert first.bias is None, "the first layer has no bias: the product needs none in the middle"
        assert np.array_equal(second.bias.data, layer.bias.data), "the second layer carries the original bias"
        assert got.num_parameters() == 7 * 2 + 2 * 5 + 5, f"expected {7 * 2 + 2 * 5 + 5} numbers, got {got.num_parameters()}"
        assert_unchanged(Sequential(layer), before, "low_rank")
        s = singular_values(layer.weight.data)[:2]
        for what, norms in (("columns of the first weight", np.linalg.norm(first.weight.data, axis=0)),
                            ("rows of the second weight", np.linalg.norm(second.weight.data, axis=1))):
            assert_close(norms, np.sqrt(s), f"low_rank(rank=2): the norms of the {what} are sqrt(s_1), sqrt(s_2) "
                         "(each factor takes the square root of the singular values)", rtol=1e-9)
        plain = low_rank(Linear(7, 5, bias=False, rng=np.random.default_rng(77)), rank=3)
        assert plain[0].bias is None and plain[1].bias is None, "a Linear without bias factorises into two without bias"

    @pytest.mark.parametrize("shape", [(7, 5), (6, 6), (4, 9)])
    def test_eckart_young(self, shape):
        """For every rank r, W - first @ second has spectral norm s_r and Frobenius norm sqrt(s_r^2 + ...), exactly (float64).

        Hint: keep the r LARGEST singular values, with u[:, :r] on the input side (in, r) and vt[:r] on the
        output side (r, out). The other order factorises W^T, which only fits when W is square.
        """
        weight = random_array(shape, 71 + shape[0])
        layer = layer_with(weight, np.zeros(shape[1]))
        s = singular_values(weight)
        for rank in range(1, len(s) + 1):
            got = low_rank(layer, rank=rank)
            product = got[0].weight.data @ got[1].weight.data
            error = weight - product
            spectral = s[rank] if rank < len(s) else 0.0
            frobenius = float(np.sqrt(np.sum(s[rank:] ** 2)))
            assert_close(np.linalg.norm(error, 2), spectral, f"{shape}, rank {rank}: spectral norm of the error",
                         rtol=1e-9, atol=1e-12)
            assert_close(np.linalg.norm(error), frobenius, f"{shape}, rank {rank}: Frobenius norm of the error",
                         rtol=1e-9, atol=1e-12)

    def test_the_two_layers_compute_the_product(self):
        """low_rank(layer, rank=3)(x) equals x @ (first @ second) + bias; at full rank it equals layer(x)."""
        layer = mlp(6, 4, seed=72, dtype=np.float64)[0]
        x = random_array((3, 6), 73)
        got = low_rank(layer, rank=3)
        product = got[0].weight.data @ got[1].weight.data
        assert_close(forward(got, x), x @ product + layer.bias.data, "low_rank(rank=3)(x)", rtol=1e-10, atol=1e-12)
        assert_close(forward(low_rank(layer, rank=4), x), forward(layer, x), "full rank equals the layer", rtol=1e-10,
                     atol=1e-12)

    def test_rank_from_energy(self):
        """low_rank(layer, energy=0.9) takes the smallest rank whose singular values hold 90% of sum(s**2)."""
        weight = random_array((8, 6), 74) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
        s = singular_values(weight)
        expected = int(np.argmax(np.cumsum(s ** 2) >= 0.9 * np.sum(s ** 2))) + 1
        got = low_rank(layer_with(weight, np.zeros(6)), energy=0.9)
        assert_shape(got[0].weight, (8, expected), f"energy 0.9 needs rank {expected}: the first layer's weight")

    def test_float32_stays_float32(self):
        """A float32 layer gives float32 factors."""
        got = low_rank(Linear(5, 4, rng=np.random.default_rng(75)), rank=2)
        for index in (0, 1):
            assert got[index].weight.dtype == np.float32, f"layer {index}'s weight is {got[index].weight.dtype}"

    def test_options_are_checked(self):
        """Neither or both of rank and energy, rank 0 or rank 6 for a (5, 4) weight: ValueErrors naming what is wrong."""
        layer = Linear(5, 4, rng=np.random.default_rng(76))
        raises_naming(lambda: low_rank(layer), ValueError, ["rank", "energy"], "low_rank(layer)")
        raises_naming(lambda: low_rank(layer, rank=2, energy=0.9), ValueError, ["rank", "energy"],
                      "low_rank(layer, rank=2, energy=0.9)")
        raises_naming(lambda: low_rank(layer, rank=0), ValueError, ["0", "4"], "low_rank(layer, rank=0)")
        raises_naming(lambda: low_rank(layer, rank=6), ValueError, ["6", "4"], "low_rank(layer, rank=6)")
        raises_naming(lambda: low_rank(Conv2d(2, 3, 2), rank=1), TypeError, ["Conv2d"], "low_rank of a Conv2d")


# -- distillation -----------------------------------------------------------------------------------------


def kl_float64(student, teacher, temperature) -> float:
    """T^2 * mean over rows of KL(softmax(teacher / T) || softmax(student / T)), written out in float64."""
    def log_softmax(z):
        z = np.asarray(z, dtype=np.float64) / temperature
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    log_p, log_q = log_softmax(teacher), log_softmax(student)
    return float(temperature ** 2 * np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))


def cross_entropy_float64(logits, targets) -> float:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(targets)), targets]))


def logits_pair(shape, seed: int, scale: float = 2.0):
    return random_array(shape, seed, scale), random_array(shape, seed + 1, scale)


@pytest.mark.checkpoint("distillation")
class TestDistillation:
    def test_inputs_are_left_alone(self):
        """distillation_loss changes neither the student's logits, nor the teacher's, nor the targets."""
        student, teacher = logits_pair((4, 3), 80)
        targets = np.array([0, 2, 1, 1])
        copies = student.copy(), teacher.copy(), targets.copy()
        distillation_loss(Tensor(student, dtype=np.float64), teacher, targets, temperature=3.0)
        for got, expected, name in zip((student, teacher, targets), copies, ("student", "teacher", "targets")):
            assert np.array_equal(got, expected), f"distillation_loss changed the {name}"

    def test_one_recorded_op(self):
        """distillation_kl is one op "distillation_kl" whose parent is the student's logits: a scalar Tensor."""
        student, teacher = logits_pair((4, 5), 81)
        student_tensor = Tensor(student, dtype=np.float64, requires_grad=True)
        got = assert_made_by_op(lambda: distillation_kl(student_tensor, teacher, 2.0), "distillation_kl(student, teacher)",
                                op="distillation_kl", parents=(student_tensor,))
        assert_tensor(got, "distillation_kl", shape=())

    @pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
    def test_value(self, temperature):
        """T^2 * mean over rows of KL(p_teacher || q_student), both softened by T, for T = 1, 2, 4.

        Hint: KL(p || q) = sum p (log p - log q) with p the TEACHER's softened probabilities; divide BOTH
        logits by T; sum over the classes, average over the rows, multiply by T^2.
        """
        student, teacher = logits_pair((5, 4), 82)
        got = distillation_kl(Tensor(student, dtype=np.float64), teacher, temperature)
        assert_close(got, kl_float64(student, teacher, temperature), f"distillation_kl at T = {temperature}",
                     rtol=1e-10, atol=1e-12)

    def test_the_same_logits_cost_nothing(self):
        """A student equal to its teacher has distillation_kl 0 at T = 3."""
        logits = random_array((3, 6), 83, 3.0)
        got = distillation_kl(Tensor(logits, dtype=np.float64), logits.copy(), 3.0)
        assert abs(float(got.data)) < 1e-12, f"KL of a distribution with itself is 0, got {float(got.data)}"

    def test_huge_logits_are_stable(self):
        """Logits of +-1e4 give a finite loss without a numpy warning, equal to the float64 formula."""
        student = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 5.0]])
        teacher = np.array([[1e4, 1e4 - 2.0, -1e4], [3.0, 1e4, 1e4 - 1.0]])
        with checks.no_overflow("distillation_kl with logits of 1e4", "Subtract each row's maximum before np.exp"):
            got = distillation_kl(Tensor(student, dtype=np.float64), teacher, 2.0)
        assert_close(got, kl_float64(student, teacher, 2.0), "distillation_kl of huge logits", rtol=1e-9, atol=1e-12)

    def test_the_teacher_may_be_a_tensor_and_takes_no_gradient(self):
        """A teacher Tensor that requires grad gives the same value, and backward leaves its .grad None."""
        student, teacher = logits_pair((3, 4), 84)
        teacher_tensor = Tensor(teacher, dtype=np.float64, requires_grad=True)
        got = distillation_kl(Tensor(student, dtype=np.float64, requires_grad=True), teacher_tensor, 2.0)
        assert_close(got, kl_float64(student, teacher, 2.0), "distillation_kl with a teacher Tensor", rtol=1e-10)
        got.backward()
        assert teacher_tensor.grad is None, "the teacher is a fixed target: it should get no gradient"

    def test_float32_stays_float32(self):
        """float32 logits give a float32 loss, from either function."""
        student, teacher = logits_pair((4, 3), 85)
        student, teacher = student.astype(np.float32), teacher.astype(np.float32)
        assert distillation_kl(Tensor(student), teacher, 2.0).dtype == np.float32, "distillation_kl of float32 logits"
        assert distillation_loss(Tensor(student), teacher, np.array([0, 1, 2, 0])).dtype == np.float32, (
            "distillation_loss of float32 logits")

    def test_arguments_are_checked(self):
        """Temperature 0 or -1, logits (4, 3) against (4, 5), or 1-D logits: ValueErrors naming what is wrong."""
        student, teacher = logits_pair((4, 3), 86)
        raises_naming(lambda: distillation_kl(Tensor(student), teacher, 0.0), ValueError, ["0"], "temperature 0")
        raises_naming(lambda: distillation_kl(Tensor(student), teacher, -1.0), ValueError, ["-1"], "temperature -1")
        raises_naming(lambda: distillation_kl(Tensor(student), np.zeros((4, 5)), 2.0), ValueError, ["(4, 3)", "(4, 5)"],
                      "student (4, 3) and teacher (4, 5)")
        raises_naming(lambda: distillation_kl(Tensor(np.zeros(3)), np.zeros(3), 2.0), ValueError, ["(3,)"],
                      "1-D logits")

    @pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
    def test_the_mix(self, alpha):
        """distillation_loss = alpha * T^2 KL + (1 - alpha) * cross-entropy with the labels, for alpha = 0, 0.3, 1 (T = 3).

        Hint: alpha weighs the teacher: alpha = 1 is the soft loss alone, alpha = 0 the hard-label loss alone.
        """
        student, teacher = logits_pair((6, 4), 87)
        targets = np.array([0, 3, 1, 2, 2, 0])
        got = distillation_loss(Tensor(student, dtype=np.float64), teacher, targets, temperature=3.0, alpha=alpha)
        assert_tensor(got, f"distillation_loss(alpha={alpha})", shape=())
        expected = alpha * kl_float64(student, teacher, 3.0) + (1 - alpha) * cross_entropy_float64(student, targets)
        assert_close(got, expected, f"distillation_loss with alpha = {alpha}, T = 3", rtol=1e-10, atol=1e-12)

    def test_alpha_is_checked(self):
        """alpha 1.5 or -0.2 is a ValueError naming it."""
        student, teacher = logits_pair((2, 3), 88)
        for alpha in (1.5, -0.2):
            raises_naming(lambda: distillation_loss(Tensor(student), teacher, [0, 1], alpha=alpha), ValueError,
                          [str(alpha)], f"distillation_loss(alpha={alpha})")


# -- distillation_gradient ----------------------------------------------------------------------------------


@pytest.mark.checkpoint("distillation_gradient")
class TestDistillationGradient:
    @pytest.mark.parametrize("temperature", [1.0, 2.5, 5.0])
    def test_gradcheck(self, temperature):
        """The student's gradient of distillation_kl matches float64 central differences at T = 1, 2.5 and 5.

        Hint: per row, d/dz of T^2 KL(p || softmax(z / T)) is T (q - p), and the mean over N rows divides
        by N. Without the T^2 factor in the forward the rule would be (q - p) / T.
        """
        student, teacher = logits_pair((4, 5), 90)
        gradcheck(lambda s: distillation_kl(s, teacher, temperature), student, seed=91,
                  name=f"distillation_kl at T = {temperature}")

    def test_the_gradient_is_t_times_q_minus_p_over_n(self):
        """With upstream gradient 1, the student's gradient is T (q - p) / N, q and p softened by T = 3."""
        student, teacher = logits_pair((3, 4), 92)
        student_tensor = Tensor(student, dtype=np.float64, requires_grad=True)
        distillation_kl(student_tensor, teacher, 3.0).backward()

        def softmax(z):
            e = np.exp(z / 3.0 - np.max(z / 3.0, axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        assert_close(student_tensor.grad, 3.0 * (softmax(student) - softmax(teacher)) / 3, "grad of the student",
                     rtol=1e-10, atol=1e-12)

    def test_gradcheck_of_the_mix(self):
        """distillation_loss(alpha 0.3, T 2.5): the student's gradient (soft and hard parts together) matches central differences."""
        student, teacher = logits_pair((5, 3), 93)
        targets = np.array([0, 2, 1, 1, 0])
        gradcheck(lambda s: distillation_loss(s, teacher, targets, temperature=2.5, alpha=0.3), student, seed=94,
                  name="distillation_loss")

    def test_float32_gradient(self):
        """float32 logits get a float32 gradient."""
        student, teacher = logits_pair((3, 4), 95)
        student_tensor = Tensor(student.astype(np.float32), requires_grad=True)
        distillation_kl(student_tensor, teacher.astype(np.float32), 2.0).backward()
        assert student_tensor.grad.dtype == np.float32, f"expected a float32 gradient, got {student_tensor.grad.dtype}"


# -- optimize -----------------------------------------------------------------------------------------------

WIDE = (64, 1024, 1024, 10)  # the hidden layers make the matmuls dominate
BATCH = 256
TIME_BUDGET = 0.67  # pruned / dense forward time; the reference measures about 0.15-0.3
BYTES_BUDGET = 0.25  # CSR bytes / dense bytes at 90% sparsity; the reference: about 0.21


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_half_the_units_leave_a_quarter_of_the_weights(self):
        """Pruning half the hidden units of 64-1024-1024-10 leaves 64*512 + 512*512 + 512*10 weights (plus biases)."""
        model = mlp(*WIDE, seed=100)
        pruned = prune_structured(model, 0.5)
        expected = 64 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
        assert pruned.num_parameters() == expected, (
            f"expected {expected} numbers after removing half the hidden units, got {pruned.num_parameters()} "
            f"(the dense model holds {model.num_parameters()})")

    @pytest.mark.budget
    def test_structured_pruning_makes_the_forward_faster(self):
        """The forward of the 64-1024-1024-10 MLP with half its hidden units removed takes at most 0.67x the dense one (batch 256)."""
        model = mlp(*WIDE, seed=101)
        pruned = prune_structured(model, 0.5)
        x = Tensor(random_array((BATCH, WIDE[0]), 102, dtype=np.float32))

        def run(network):
            def once():
                with no_grad():
                    return network(x)
            return once

        assert_time_ratio(run(pruned), run(model), TIME_BUDGET, f"the pruned forward of {WIDE}, batch {BATCH}",
                          advice="prune_structured must build smaller weights (weight[:, keep] and weight[keep]): "
                                 "zeros in a dense matrix cost as much time as any other number")

    def test_csr_at_90_percent_is_at_most_a_quarter_of_the_bytes(self, digits):
        """The digits MLP pruned 90%, its weights packed as CSR: at most 0.25x the dense bytes, and the same logits."""
        model, (_, x_test, _, _), _ = digits
        pruned = copy.deepcopy(model)
        apply_masks(pruned, magnitude_masks(pruned, 0.9))
        packed = [CSRMatrix.from_dense(layer.weight.data.T) for layer in (pruned[0], pruned[2])]  # (out, in) each
        dense_bytes = sum(layer.weight.nbytes for layer in (pruned[0], pruned[2]))
        packed_bytes = sum(kept_arrays_nbytes(matrix) for matrix in packed)
        ratio = packed_bytes / dense_bytes
        assert ratio <= BYTES_BUDGET, (
            f"at 90% sparsity the CSR weights take {packed_bytes} bytes, {ratio:.3f}x the dense {dense_bytes}; the "
            f"budget is {BYTES_BUDGET}x. Keep values in float32 and indices in int32, and nothing else")
        hidden = np.maximum(packed[0].matmul(x_test.T).T + pruned[0].bias.data, 0)  # (N, 128)
        logits = packed[1].matmul(hidden.T).T + pruned[2].bias.data  # (N, 10)
        assert_close(logits, forward(pruned, x_test), "the logits computed with the packed weights", rtol=1e-4,
                     atol=1e-4)

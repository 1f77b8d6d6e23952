"""Kata 13 · Transformer: the ordered suite. Run it with `python -m pytest katas/13_transformer`."""

import dataclasses
import gc
import math
import tracemalloc

import numpy as np
import pytest

from harness import checks
from harness.budgets import assert_time_ratio, count_calls
from harness.checks import (
    assert_close, assert_finite, assert_made_by_op, assert_shape, assert_tensor, gradcheck, raises_naming,
)
from tinytorch.attention import MultiHeadAttention, padding_mask
from tinytorch.autograd import BACKWARD_RULES, is_grad_enabled
from tinytorch.embeddings import TokenAndPositionEmbedding
from tinytorch.layers import Linear, Parameter, Sequential
from tinytorch.losses import cross_entropy
from tinytorch.optimizers import Adam
from tinytorch.tensor import Tensor
from tinytorch.transformer import (
    GPT, MLP, Block, GPTConfig, LayerNorm, layer_norm, next_token_probs, sample_next,
)

GELU_SCALE = math.sqrt(2 / math.pi)


def random_array(shape, seed: int, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def random_ids(shape, vocabulary: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocabulary, size=shape)


def tensor(values, dtype=np.float64, requires_grad=False) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


# -- the same model, written out in plain numpy (float64), to compare against --------------------------------


def numpy_layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased: divided by C
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def numpy_gelu(x):
    return 0.5 * x * (1 + np.tanh(GELU_SCALE * (x + 0.044715 * x ** 3)))


def numpy_mlp(mlp, x):
    hidden = numpy_gelu(x @ mlp.fc.weight.data + mlp.fc.bias.data)
    return hidden @ mlp.proj.weight.data + mlp.proj.bias.data


def numpy_self_attention(attn, x, causal=True, mask=None):
    """Multi-head causal self-attention head by head: x (B, T, C) -> (B, T, C)."""
    batch, length, dim = x.shape
    head_dim = dim // attn.heads
    qkv = x @ attn.qkv_proj.weight.data + attn.qkv_proj.bias.data  # (B, T, 3C)
    allowed = np.ones((batch, length, length), dtype=bool)
    if causal:
        allowed &= np.tril(np.ones((length, length), dtype=bool))
    if mask is not None:
        allowed &= np.broadcast_to(mask[:, 0], (batch, length, length))
    heads = []
    for h in range(attn.heads):
        q, k, v = (qkv[..., part * dim + h * head_dim:part * dim + (h + 1) * head_dim] for part in range(3))
        scores = np.where(allowed, q @ np.swapaxes(k, -1, -2) / math.sqrt(head_dim), -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        heads.append(weights / weights.sum(axis=-1, keepdims=True) @ v)
    return np.concatenate(heads, axis=-1) @ attn.out_proj.weight.data + attn.out_proj.bias.data


def numpy_block(block, x, causal=True, mask=None):
    ln1, ln2 = block.ln1, block.ln2
    x = x + numpy_self_attention(block.attn, numpy_layer_norm(x, ln1.weight.data, ln1.bias.data, ln1.eps), causal, mask)
    return x + numpy_mlp(block.mlp, numpy_layer_norm(x, ln2.weight.data, ln2.bias.data, ln2.eps))


def numpy_gpt(model, ids, start=0):
    """Logits (B, T, V) of the whole GPT, from its parameters, in float64."""
    ids = np.asarray(ids)
    x = model.embed.token.weight.data[ids] + model.embed.position.weight.data[start:start + ids.shape[1]]
    for block in model.blocks.layers:
        x = numpy_block(block, x)
    x = numpy_layer_norm(x, model.ln_f.weight.data, model.ln_f.bias.data, model.ln_f.eps)
    if model.lm_head is None:
        return x @ model.embed.token.weight.data.T
    return x @ model.lm_head.weight.data


def numpy_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def in_float64(module, seed: int):
    """Turn every parameter of `module` into float64, and give LayerNorms and biases values other than 1 and 0.

    A LayerNorm at weight 1, bias 0 and a Linear at bias 0 would hide mistakes in how they are used.
    """
    rng = np.random.default_rng(seed)
    for name, parameter in module.named_parameters():
        parameter.data = parameter.data.astype(np.float64)
        if name.endswith("bias"):
            parameter.data += 0.1 * rng.standard_normal(parameter.shape)
        elif parameter.ndim == 1:  # a LayerNorm's weight
            parameter.data += 0.3 * rng.standard_normal(parameter.shape)
    return module


def assert_same_parameters(build, what: str):
    """build(rng) twice with generators of the same seed: every parameter equal, name by name."""
    first, second = build(np.random.default_rng(7)), build(np.random.default_rng(7))
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert np.array_equal(a.data, b.data), (
            f"{what}: {name} differs between two builds with the same rng seed. Pass rng on to every layer that "
            "draws its initial weights; one left without it draws from numpy's global generator")


def tiny_config(**changes) -> GPTConfig:
    fields = dict(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8)
    fields.update(changes)
    return GPTConfig(**fields)


def float64_gpt(seed: int, **changes) -> GPT:
    return in_float64(GPT(tiny_config(**changes), rng=np.random.default_rng(seed)), seed + 1)


# -- layer_norm ------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("layer_norm")
class TestLayerNorm:
    def test_inputs_are_left_alone(self):
        """layer_norm changes neither x nor its weight and bias."""
        x, weight, bias = random_array((3, 5), 1), random_array(5, 2), random_array(5, 3)
        copies = [a.copy() for a in (x, weight, bias)]
        layer_norm(tensor(x), tensor(weight), tensor(bias))
        for name, before, after in zip(("x", "weight", "bias"), copies, (x, weight, bias)):
            assert_close(after, before, f"{name} after layer_norm", rtol=0, atol=0)

    def test_one_recorded_op(self):
        """layer_norm(x, weight, bias) is one op, 'layer_norm', with parents (x, weight, bias), of x's shape."""
        x, weight, bias = (tensor(random_array(s, seed), requires_grad=True) for s, seed in (((2, 4), 4), (4, 5), (4, 6)))
        out = assert_made_by_op(lambda: layer_norm(x, weight, bias), "layer_norm(x (2, 4), weight, bias)",
                                op="layer_norm", parents=(x, weight, bias))
        assert_shape(out, (2, 4), "layer_norm of (2, 4)")
        assert "layer_norm" in BACKWARD_RULES, 'no backward rule is registered for "layer_norm"'

    def test_values_match_the_formula(self):
        """For x (2, 3, 5) and random weight and bias: (x - mean) / sqrt(var + 1e-5) * weight + bias, row by row."""
        x, weight, bias = random_array((2, 3, 5), 7, scale=3.0), random_array(5, 8), random_array(5, 9)
        got = layer_norm(tensor(x), tensor(weight), tensor(bias))
        assert_tensor(got, "layer_norm of (2, 3, 5)", shape=(2, 3, 5), dtype=np.float64)
        assert_close(got, numpy_layer_norm(x, weight, bias), "layer_norm of random (2, 3, 5)")

    def test_variance_is_biased(self):
        """The row [1, 2, 3, 4] (eps=0) normalises to (x - 2.5) / sqrt(1.25): the variance divides by C = 4.

        Hint: LayerNorm uses the biased variance, sum((x - mean)^2) / C, as np.var does by default (ddof=0);
        dividing by C - 1 (ddof=1) gives [-1.16, -0.39, 0.39, 1.16] instead of [-1.34, -0.45, 0.45, 1.34].
        """
        x = np.array([[1.0, 2.0, 3.0, 4.0]])
        got = layer_norm(tensor(x), tensor(np.ones(4)), tensor(np.zeros(4)), eps=0.0)
        assert_close(got, (x - 2.5) / math.sqrt(1.25), "layer_norm([1, 2, 3, 4], eps=0)")

    def test_eps_goes_inside_the_square_root(self):
        """A row of small spread with eps=0.01 normalises by sqrt(var + eps), not sqrt(var) + eps.

        Hint: eps is added to the variance, under the root: 1 / sqrt(var + eps). Added after the root it
        behaves differently exactly where it matters, for rows whose variance is close to eps.
        """
        x = np.array([[0.0, 0.05, 0.1, 0.3], [2.0, 2.0, 2.1, 1.9]])
        got = layer_norm(tensor(x), tensor(np.ones(4)), tensor(np.zeros(4)), eps=0.01)
        assert_close(got, numpy_layer_norm(x, 1.0, 0.0, eps=0.01), "layer_norm of small-spread rows, eps=0.01")

    def test_every_row_on_its_own(self):
        """Each row is normalised with its own mean and variance over the LAST axis: scaling one row changes no other."""
        x = random_array((3, 4, 6), 10)
        before = layer_norm(tensor(x), tensor(np.ones(6)), tensor(np.zeros(6))).data
        x[1, 2] = x[1, 2] * 100 + 50
        after = layer_norm(tensor(x), tensor(np.ones(6)), tensor(np.zeros(6))).data
        others = np.ones((3, 4), dtype=bool)
        others[1, 2] = False
        assert_close(after[others], before[others], "every row but (1, 2), after changing row (1, 2)", rtol=0, atol=0)
        assert_close(after.mean(axis=-1), np.zeros((3, 4)), "every row's mean after layer_norm", atol=1e-9)
        assert_close(after.var(axis=-1), np.ones((3, 4)), "every row's variance after layer_norm", atol=1e-3)

    def test_large_offset_in_float32(self):
        """float32 rows around 10,000 with spread 1 normalise accurately (the mean is removed before squaring).

        Hint: var = mean(x^2) - mean(x)^2 subtracts two numbers near 1e8 that float32 knows only to within
        about 10: the variance is lost. Subtract the mean first, then average the squares.
        """
        x = (10_000 + random_array((4, 16), 11)).astype(np.float32)
        got = layer_norm(Tensor(x), Tensor(np.ones(16)), Tensor(np.zeros(16)))
        assert_close(got, numpy_layer_norm(x.astype(np.float64), 1.0, 0.0), "layer_norm of float32 rows near 1e4",
                     rtol=1e-3, atol=1e-3)

    def test_a_constant_row_gives_the_bias(self):
        """A row of equal values normalises to 0, so the output is the bias; no nan, no warning."""
        with checks.no_overflow("layer_norm of a constant row", "keep eps inside the root: sqrt(0 + eps) is not 0"):
            got = layer_norm(tensor(np.full((2, 3), 7.0)), tensor([1.0, 2.0, 3.0]), tensor([0.5, -1.0, 2.0]))
        assert_close(got, np.tile([0.5, -1.0, 2.0], (2, 1)), "layer_norm of constant rows")

    def test_float32_stays_float32(self):
        """float32 x, weight and bias give a float32 result."""
        x = random_array((2, 8), 12, dtype=np.float32)
        got = layer_norm(Tensor(x), Tensor(np.ones(8)), Tensor(np.zeros(8)))
        assert_tensor(got, "layer_norm of float32 (2, 8)", shape=(2, 8), dtype=np.float32)

    def test_transposed_input_and_a_single_vector(self):
        """A transposed (non-contiguous) input and a 1-D input of C values work like any other."""
        x = random_array((5, 3), 13)
        weight, bias = random_array(5, 14), random_array(5, 15)
        assert_close(layer_norm(tensor(x).transpose(), tensor(weight), tensor(bias)), numpy_layer_norm(x.T, weight, bias),
                     "layer_norm of a transposed (3, 5) view")
        assert_close(layer_norm(tensor(x[:, 0]), tensor(weight), tensor(bias)), numpy_layer_norm(x[:, 0], weight, bias),
                     "layer_norm of a 1-D input")

    def test_shapes_are_checked(self):
        """A weight or a bias that is not (C,) for x (..., C) is a ValueError naming the shapes."""
        x = tensor(np.zeros((2, 4)))
        raises_naming(lambda: layer_norm(x, tensor(np.ones(3)), tensor(np.zeros(4))), ValueError, ["(2, 4)", "(3,)"],
                      "layer_norm with a (3,) weight for x (2, 4)")
        raises_naming(lambda: layer_norm(x, tensor(np.ones(4)), tensor(np.zeros((1, 4)))), ValueError, ["(1, 4)"],
                      "layer_norm with a (1, 4) bias for x (2, 4)")

    def test_a_scalar_is_refused(self):
        """layer_norm of a 0-d x (a single number, no axis to normalise over) is a ValueError naming its shape ().

        Hint: check x.ndim before reading x.shape[-1]: a scalar has no last axis.
        """
        raises_naming(lambda: layer_norm(tensor(3.0), tensor([1.0]), tensor([0.0])), ValueError, ["()"],
                      "layer_norm of a 0-d x")

    def test_the_module(self):
        """LayerNorm(6): float32 Parameters weight (ones) and bias (zeros), in that order; it calls layer_norm with its eps."""
        norm = LayerNorm(6)
        names = [name for name, _ in norm.named_parameters()]
        assert names == ["weight", "bias"], f"LayerNorm's parameters should be ['weight', 'bias'], got {names}"
        for name, expected in (("weight", np.ones(6)), ("bias", np.zeros(6))):
            parameter = getattr(norm, name)
            assert isinstance(parameter, Parameter), f"LayerNorm.{name} should be a Parameter, got {type(parameter).__name__}"
            assert_tensor(parameter, f"LayerNorm(6).{name}", shape=(6,), dtype=np.float32)
            assert_close(parameter, expected, f"LayerNorm(6).{name} at the start")
        x = random_array((2, 3, 4), 16)
        wide = LayerNorm(4, eps=0.5)
        assert_close(wide(tensor(x)), numpy_layer_norm(x, 1.0, 0.0, eps=0.5), "LayerNorm(4, eps=0.5) of (2, 3, 4)",
                     rtol=1e-5, atol=1e-6)


# -- layer_norm_gradient ----------------------------------------------------------------------------------


@pytest.mark.checkpoint("layer_norm_gradient")
class TestLayerNormGradient:
    def test_the_rule_returns_gradients_shaped_like_its_inputs(self):
        """The rule, on x (2, 3, 4), returns (grad_x (2, 3, 4), grad_weight (4,), grad_bias (4,)) and leaves grad alone.

        Hint: weight and bias serve every row, so their gradients sum over ALL leading axes (reshape to (-1, C) and
        sum axis 0); grad.sum(axis=0) is only right for 2-D x.
        """
        x, weight, bias = (tensor(random_array(s, seed), requires_grad=True) for s, seed in (((2, 3, 4), 17), (4, 18), (4, 19)))
        out = layer_norm(x, weight, bias)
        grad = random_array((2, 3, 4), 20)
        before = grad.copy()
        grads = BACKWARD_RULES["layer_norm"](out, grad)
        assert isinstance(grads, tuple) and len(grads) == 3, "the rule should return a tuple of three gradients"
        for name, got, shape in zip(("x", "weight", "bias"), grads, [(2, 3, 4), (4,), (4,)]):
            assert_shape(got, shape, f"the rule's gradient of {name}")
        assert_close(grad, before, "the upstream gradient after the rule", rtol=0, atol=0)

    def test_gradcheck_of_x_weight_and_bias(self):
        """Gradients of x (2, 3, 5), weight and bias match float64 central differences (seeded upstream gradient)."""
        gradcheck(lambda x, w, b: layer_norm(x, w, b), random_array((2, 3, 5), 20, scale=2.0), random_array(5, 21),
                  random_array(5, 22), seed=23, name="layer_norm")

    def test_gradcheck_with_a_large_eps(self):
        """With eps=0.5 and rows of small spread, the gradients still match: the backward uses sqrt(var + eps) too."""
        gradcheck(lambda x, w, b: layer_norm(x, w, b, eps=0.5), random_array((4, 3), 24, scale=0.3),
                  random_array(3, 25), random_array(3, 26), seed=27, name="layer_norm, eps=0.5")

    def test_gradient_of_a_transposed_output(self):
        """layer_norm(x).transpose(): the upstream gradient arrives non-contiguous, and the gradients still match."""
        gradcheck(lambda x, w, b: layer_norm(x, w, b).transpose(0, 1), random_array((3, 2, 4), 28),
                  random_array(4, 29), random_array(4, 30), seed=31, name="layer_norm(...).transpose(0, 1)")

    def test_weight_and_bias_gradients_sum_over_every_row(self):
        """For x (2, 3, 4) and upstream gradient g: grad_bias = g summed over all 6 rows, grad_weight = (g * x_hat) summed."""
        x = random_array((2, 3, 4), 32)
        g = random_array((2, 3, 4), 33)
        weight, bias = tensor(random_array(4, 34), requires_grad=True), tensor(np.zeros(4), requires_grad=True)
        layer_norm(tensor(x), weight, bias).backward(g)
        x_hat = numpy_layer_norm(x, 1.0, 0.0)
        assert_shape(bias.grad, (4,), "bias.grad")
        assert_close(bias.grad, g.sum(axis=(0, 1)), "bias.grad")
        assert_close(weight.grad, (g * x_hat).sum(axis=(0, 1)), "weight.grad")

    def test_float32_gradients(self):
        """A float32 layer_norm gives float32 gradients of x, weight and bias."""
        x = Tensor(random_array((3, 4), 35, dtype=np.float32), requires_grad=True)
        weight, bias = Parameter(np.ones(4)), Parameter(np.zeros(4))
        layer_norm(x, weight, bias).backward(random_array((3, 4), 36, dtype=np.float32))
        for name, got in (("x", x.grad), ("weight", weight.grad), ("bias", bias.grad)):
            assert got is not None and got.dtype == np.float32, (
                f"the gradient of {name} should be float32, got {None if got is None else got.dtype}")

    def test_the_module_accumulates(self):
        """Calling one LayerNorm twice and adding the results: its weight gradient is the sum of both calls'."""
        norm = in_float64(LayerNorm(4), 37)
        a, b = random_array((2, 4), 38), random_array((3, 4), 39)
        (norm(tensor(a)).sum() + norm(tensor(b)).sum() * 2.0).backward()
        x_hat_a, x_hat_b = numpy_layer_norm(a, 1.0, 0.0), numpy_layer_norm(b, 1.0, 0.0)
        assert_close(norm.weight.grad, x_hat_a.sum(axis=0) + 2 * x_hat_b.sum(axis=0), "LayerNorm.weight.grad over two calls")
        assert_close(norm.bias.grad, np.full(4, 2.0 + 2 * 3.0), "LayerNorm.bias.grad over two calls")


# -- mlp ---------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("mlp")
class TestMLP:
    def test_parts(self):
        """MLP(8): fc = Linear(8, 32) (4x wider), proj = Linear(32, 8); MLP(8, hidden=5) is 8 -> 5 -> 8."""
        mlp = MLP(8, rng=np.random.default_rng(40))
        assert isinstance(mlp.fc, Linear) and isinstance(mlp.proj, Linear), "fc and proj should be Linear layers"
        assert_shape(mlp.fc.weight, (8, 32), "MLP(8).fc.weight: 4 x 8 = 32 hidden units")
        assert_shape(mlp.proj.weight, (32, 8), "MLP(8).proj.weight")
        names = [name for name, _ in mlp.named_parameters()]
        assert names == ["fc.weight", "fc.bias", "proj.weight", "proj.bias"], f"got {names}"
        narrow = MLP(8, hidden=5)
        assert_shape(narrow.fc.weight, (8, 5), "MLP(8, hidden=5).fc.weight")
        assert_shape(narrow.proj.weight, (5, 8), "MLP(8, hidden=5).proj.weight")

    def test_the_same_seed_gives_the_same_weights(self):
        """Two MLP(4) built with generators of the same seed have equal weights: both Linears draw from rng."""
        assert_same_parameters(lambda rng: MLP(4, rng=rng), "MLP(4)")

    def test_values(self):
        """MLP(x) = gelu(x W1 + b1) W2 + b2 for x (2, 3, 4).

        Hint: the activation is GELU (kata 02), not ReLU: GELU lets a little of a negative input through.
        """
        mlp = in_float64(MLP(4, rng=np.random.default_rng(41)), 42)
        x = random_array((2, 3, 4), 43, scale=2.0)
        got = mlp(tensor(x))
        assert_tensor(got, "MLP(4) of (2, 3, 4)", shape=(2, 3, 4))
        assert_close(got, numpy_mlp(mlp, x), "MLP(4) of random (2, 3, 4)")

    def test_each_position_on_its_own(self):
        """Changing token 2 of x changes output 2 and no other: the MLP never mixes positions."""
        mlp = in_float64(MLP(4, rng=np.random.default_rng(44)), 45)
        x = random_array((1, 4, 4), 46)
        before = mlp(tensor(x)).data
        x[0, 2] += 1.0
        after = mlp(tensor(x)).data
        assert_close(np.delete(after, 2, axis=1), np.delete(before, 2, axis=1), "MLP outputs other than 2",
                     rtol=0, atol=0)

    def test_gradients(self):
        """Gradients of x and of all four parameters of MLP(3, hidden=5) match central differences."""
        mlp = in_float64(MLP(3, hidden=5, rng=np.random.default_rng(47)), 48)
        x = random_array((2, 2, 3), 49)
        upstream = random_array((2, 2, 3), 50)
        x_tensor = tensor(x, requires_grad=True)
        (mlp(x_tensor) * upstream).sum().backward()

        def loss() -> float:
            return float(np.sum(mlp(tensor(x)).data * upstream))

        for name, array, got in [("x", x, x_tensor.grad)] + [(n, p.data, p.grad) for n, p in mlp.named_parameters()]:
            assert got is not None, f"the gradient of {name} is None: backward never reached it"
            expected = checks.numerical_gradient(lambda *_: loss(), [array], 0)
            assert_close(got, expected, f"MLP: the gradient of {name} (seed 50)", rtol=1e-5, atol=1e-7)


# -- block -------------------------------------------------------------------------------------------------


class ConcatCache:
    """The simplest KV cache: it keeps every key and value it is given and appends new ones on the T axis."""

    def __init__(self):
        self.k = self.v = None
        self.received = []  # the T of each append

    def append(self, k, v):
        self.received.append(k.shape[2])
        if self.k is not None:
            k = Tensor(np.concatenate([self.k.data, k.data], axis=2), dtype=k.dtype)
            v = Tensor(np.concatenate([self.v.data, v.data], axis=2), dtype=v.dtype)
        self.k, self.v = k, v
        return k, v


@pytest.mark.checkpoint("block")
class TestBlock:
    def test_parts(self):
        """Block(8, 2): ln1 LayerNorm, attn MultiHeadAttention(8, 2), ln2 LayerNorm, mlp MLP(8), in that order."""
        block = Block(8, 2, rng=np.random.default_rng(60))
        for name, kind in (("ln1", LayerNorm), ("attn", MultiHeadAttention), ("ln2", LayerNorm), ("mlp", MLP)):
            assert isinstance(getattr(block, name, None), kind), f"Block.{name} should be a {kind.__name__}"
        assert block.attn.heads == 2 and block.mlp.hidden == 32, "Block(8, 2): 2 heads, an MLP 4 x 8 wide"
        prefixes = [name.split(".")[0] for name, _ in block.named_parameters()]
        assert list(dict.fromkeys(prefixes)) == ["ln1", "attn", "ln2", "mlp"], f"parameter order: {prefixes}"

    def test_the_same_seed_gives_the_same_weights(self):
        """Two Block(8, 2) built with generators of the same seed have equal weights: attn and mlp both get rng."""
        assert_same_parameters(lambda rng: Block(8, 2, rng=rng), "Block(8, 2)")

    def test_branches_that_output_zero_leave_x_unchanged(self):
        """With the attention's and the MLP's output projections at zero, Block(x) is exactly x.

        Hint: pre-norm: x = x + attn(ln1(x)), then x = x + mlp(ln2(x)). The residual stream x itself is never
        normalised; normalising after the addition (post-norm, ln(x + attn(x))) or adding the branch to ln1(x)
        would change x even when the branches add nothing.
        """
        block = in_float64(Block(6, 2, rng=np.random.default_rng(61)), 62)
        for layer in (block.attn.out_proj, block.mlp.proj):
            layer.weight.data[...] = 0
            layer.bias.data[...] = 0
        x = random_array((2, 3, 6), 63, scale=3.0)
        assert_close(block(tensor(x)), x, "Block(x) with both branches silenced", rtol=0, atol=1e-12)

    def test_values(self):
        """Block(x) = x + attn(ln1(x)), then + mlp(ln2(x)), causal, for x (2, 4, 6) with 3 heads."""
        block = in_float64(Block(6, 3, rng=np.random.default_rng(64)), 65)
        x = random_array((2, 4, 6), 66)
        got = block(tensor(x))
        assert_tensor(got, "Block(6, 3) of (2, 4, 6)", shape=(2, 4, 6))
        assert_close(got, numpy_block(block, x), "Block(6, 3) of random (2, 4, 6)")

    def test_causal_by_default_and_the_flag_reaches_attention(self):
        """Block(x) is causal (changing token 3 leaves outputs 0..2 alone); Block(x, causal=False) is not."""
        block = in_float64(Block(4, 2, rng=np.random.default_rng(67)), 68)
        x = random_array((1, 5, 4), 69)
        changed = x.copy()
        changed[0, 3] += random_array(4, 70)  # not a constant shift: ln1 would remove that
        before, after = block(tensor(x)).data, block(tensor(changed)).data
        assert_close(after[:, :3], before[:, :3], "causal outputs 0..2 after changing token 3", rtol=0, atol=1e-12)
        open_before, open_after = block(tensor(x), causal=False).data, block(tensor(changed), causal=False).data
        assert not np.allclose(open_after[:, :3], open_before[:, :3]), (
            "with causal=False, every token sees token 3: outputs 0..2 should change. Pass causal to attention")
        assert_close(open_before, numpy_block(block, x, causal=False), "Block(x, causal=False)")

    def test_a_padding_mask_reaches_attention(self):
        """Block(x, mask=padding_mask([4, 2], 4)) equals the numpy block with that mask (and causality)."""
        block = in_float64(Block(4, 2, rng=np.random.default_rng(70)), 71)
        x = random_array((2, 4, 4), 72)
        mask = padding_mask([4, 2], 4)
        assert_close(block(tensor(x), mask=mask), numpy_block(block, x, mask=mask), "Block with a padding mask")

    def test_attention_through_project_qkv_and_attend(self):
        """A Block calls attn.project_qkv once and attn.attend once: the seam where a KV cache will sit."""
        block = Block(8, 2, rng=np.random.default_rng(73))
        x = Tensor(random_array((2, 3, 8), 74, dtype=np.float32))
        with count_calls(MultiHeadAttention, "project_qkv") as projected, count_calls(MultiHeadAttention, "attend") as attended:
            block(x)
        assert (projected.calls, attended.calls) == (1, 1), (
            f"project_qkv was called {projected.calls} times and attend {attended.calls} times; expected once each: "
            "q, k, v = self.attn.project_qkv(self.ln1(x)), then self.attn.attend(q, k, v, ...)")

    def test_a_cache_extends_the_keys(self):
        """With a cache, Block on tokens 3..4 after Block on tokens 0..2 gives the last two rows of Block on 0..4."""
        block = in_float64(Block(6, 2, rng=np.random.default_rng(75)), 76)
        x = random_array((2, 5, 6), 77)
        cache = ConcatCache()
        block(tensor(x[:, :3]), cache=cache)
        got = block(tensor(x[:, 3:]), cache=cache)
        assert cache.received == [3, 2], (
            f"the cache should receive the keys of 3 tokens, then of 2: got {cache.received}. Call "
            "cache.append(k, v) between project_qkv and attend when a cache is given")
        assert_close(got, numpy_block(block, x)[:, 3:], "tokens 3..4 with the keys of 0..2 in the cache")

    def test_gradients(self):
        """Gradients of x and every parameter of Block(4, 2) on x (2, 3, 4) match central differences."""
        block = in_float64(Block(4, 2, rng=np.random.default_rng(78)), 79)
        x = random_array((2, 3, 4), 80)
        upstream = random_array((2, 3, 4), 81)
        x_tensor = tensor(x, requires_grad=True)
        (block(x_tensor) * upstream).sum().backward()

        def loss() -> float:
            return float(np.sum(block(tensor(x)).data * upstream))

        for name, array, got in [("x", x, x_tensor.grad)] + [(n, p.data, p.grad) for n, p in block.named_parameters()]:
            assert got is not None, f"the gradient of {name} is None: backward never reached it"
            expected = checks.numerical_gradient(lambda *_: loss(), [array], 0)
            assert_close(got, expected, f"Block: the gradient of {name} (seed 81)", rtol=1e-5, atol=1e-7)


# -- gpt ---------------------------------------------------------------------------------------------------


def formula(vocab, block_size, layers, width, tied=False, learned=True) -> int:
    """The lesson's parameter count of a GPT."""
    return (vocab * width + (block_size * width if learned else 0) + layers * (12 * width ** 2 + 13 * width)
            + 2 * width + (0 if tied else width * vocab))


@pytest.mark.checkpoint("gpt")
class TestGPT:
    def test_config(self):
        """GPTConfig is a dataclass with defaults n_layer=2, n_head=4, n_embd=64, learned positions, untied."""
        config = GPTConfig(vocab_size=65, block_size=32)
        assert dataclasses.is_dataclass(config), "GPTConfig should be a dataclass"
        assert (config.n_layer, config.n_head, config.n_embd, config.positions, config.tie_weights) == (
            2, 4, 64, "learned", False), f"GPTConfig defaults: got {config}"

    def test_config_is_checked(self):
        """A size that is not a positive integer, heads that do not divide n_embd, or unknown positions: ValueError naming it."""
        raises_naming(lambda: GPTConfig(vocab_size=10, block_size=8, n_layer=0), ValueError, ["n_layer", "0"],
                      "GPTConfig(n_layer=0)")
        raises_naming(lambda: GPTConfig(vocab_size=10, block_size=2.5), ValueError, ["block_size", "2.5"],
                      "GPTConfig(block_size=2.5)")
        raises_naming(lambda: GPTConfig(vocab_size=10, block_size=8, n_head=3, n_embd=16), ValueError, ["16", "3"],
                      "GPTConfig(n_head=3, n_embd=16)")
        raises_naming(lambda: GPTConfig(vocab_size=10, block_size=8, positions="rotary"), ValueError, ["rotary"],
                      "GPTConfig(positions='rotary')")

    def test_config_sizes_are_integers_not_booleans(self):
        """A size of True or 10.0 is a ValueError naming it; numpy integers (say, a tokenizer's vocabulary size) are fine.

        Hint: bool is a subclass of int in Python, so refuse it explicitly; accept (int, np.integer).
        """
        raises_naming(lambda: GPTConfig(vocab_size=10, block_size=8, n_layer=True), ValueError, ["n_layer", "True"],
                      "GPTConfig(n_layer=True)")
        raises_naming(lambda: GPTConfig(vocab_size=10.0, block_size=8), ValueError, ["vocab_size", "10.0"],
                      "GPTConfig(vocab_size=10.0)")
        config = GPTConfig(vocab_size=np.int64(10), block_size=np.int64(8))
        assert config.num_parameters() == formula(10, 8, 2, 64), "GPTConfig with numpy integer sizes"

    def test_the_same_seed_gives_the_same_model(self):
        """Two GPTs built from one config with generators of the same seed have equal parameters."""
        assert_same_parameters(lambda rng: GPT(tiny_config(), rng=rng), "GPT(tiny_config())")

    def test_parts(self):
        """GPT: embed (tokens and positions), blocks (a Sequential of n_layer Blocks), ln_f, lm_head = Linear(C, V, bias=False)."""
        model = GPT(tiny_config(n_layer=3), rng=np.random.default_rng(90))
        assert isinstance(model.embed, TokenAndPositionEmbedding), "GPT.embed should be a TokenAndPositionEmbedding"
        assert isinstance(model.blocks, Sequential) and len(model.blocks) == 3, "GPT.blocks: a Sequential of 3 Blocks"
        assert all(isinstance(block, Block) for block in model.blocks.layers), "every entry of GPT.blocks is a Block"
        assert isinstance(model.ln_f, LayerNorm), "GPT.ln_f should be the final LayerNorm"
        assert isinstance(model.lm_head, Linear) and model.lm_head.bias is None, "GPT.lm_head: Linear(8, 7, bias=False)"
        assert_shape(model.lm_head.weight, (8, 7), "GPT.lm_head.weight (n_embd, vocab_size)")
        assert model.blocks[0] is not model.blocks[1], "each layer is a Block of its own"
        names = [name for name, _ in model.named_parameters()]
        assert names[:3] == ["embed.token.weight", "embed.position.weight", "blocks.0.ln1.weight"], f"got {names[:3]}"
        assert names[-3:] == ["ln_f.weight", "ln_f.bias", "lm_head.weight"], f"got {names[-3:]}"
        assert_tensor(model.embed.token.weight, "the token table", shape=(7, 8), dtype=np.float32)
        assert np.std(model.embed.token.weight.data) < 0.05, (
            "the embedding tables start small, std 0.02 (EMBEDDING_STD), as in GPT-2")

    @pytest.mark.parametrize("tied,positions", [(False, "learned"), (True, "learned"), (False, "sinusoidal")])
    def test_parameter_count_equals_the_formula(self, tied, positions):
        """config.num_parameters() and GPT(config).num_parameters() both equal the lesson's formula."""
        config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, tie_weights=tied,
                           positions=positions)
        expected = formula(65, 32, 2, 64, tied=tied, learned=positions == "learned")
        got = config.num_parameters()
        assert isinstance(got, int) and got == expected, (
            f"GPTConfig(tie_weights={tied}, positions={positions!r}).num_parameters(): expected {expected:,}, got {got!r}")
        built = GPT(config).num_parameters()
        assert built == expected, (
            f"GPT(tie_weights={tied}, positions={positions!r}) holds {built:,} parameters; the formula says {expected:,}")
        other = GPTConfig(vocab_size=11, block_size=9, n_layer=3, n_head=2, n_embd=6, tie_weights=tied)
        assert other.num_parameters() == formula(11, 9, 3, 6, tied=tied) == GPT(other).num_parameters(), (
            f"GPTConfig(11, 9, n_layer=3, n_embd=6): the count should be {formula(11, 9, 3, 6, tied=tied):,}")

    def test_logits(self):
        """GPT(ids (2, 5)) gives logits (2, 5, 7) equal to the whole model computed in numpy."""
        model = float64_gpt(91)
        ids = random_ids((2, 5), 7, 92)
        got = model(ids)
        assert_tensor(got, "GPT logits of ids (2, 5)", shape=(2, 5, 7), dtype=np.float64)
        assert_close(got, numpy_gpt(model, ids), "GPT logits vs numpy")

    def test_the_final_layer_norm_comes_before_the_head(self):
        """The logits are lm_head(ln_f(h)), where h is the residual stream after the last block.

        Hint: the residual stream is never normalised inside the blocks (pre-norm), so its scale grows with depth;
        the final LayerNorm, ln_f, normalises it once before the LM head reads it.
        """
        model = float64_gpt(93)
        ids = random_ids((2, 4), 7, 94)
        h = model.embed(ids)
        for block in model.blocks.layers:
            h = block(h)
        assert_close(model(ids), model.lm_head(model.ln_f(h)), "GPT(ids) vs lm_head(ln_f(last block's output))")

    def test_positions_are_added(self):
        """The same tokens in two orders give different last logits; position vectors are added to the tokens."""
        model = float64_gpt(95)
        ids = np.array([[1, 2, 3, 4]])
        flipped = np.array([[3, 2, 1, 4]])
        a, b = model(ids).data[0, -1], model(flipped).data[0, -1]
        assert not np.allclose(a, b), (
            "the last token's logits do not depend on the order of the tokens before it: without positions, "
            "attention sees a bag of tokens")

    def test_start_shifts_the_positions(self):
        """GPT(ids, start=2) reads position vectors 2..2+T-1, as the numpy model does."""
        model = float64_gpt(96)
        ids = random_ids((1, 3), 7, 97)
        assert_close(model(ids, start=2), numpy_gpt(model, ids, start=2), "GPT(ids, start=2)")

    def test_causal(self):
        """Changing token 3 of 6 never changes the logits at positions 0..2, and does change those at 3..5."""
        model = float64_gpt(98)
        ids = random_ids((2, 6), 7, 99)
        changed = ids.copy()
        changed[:, 3] = (changed[:, 3] + 1) % 7
        before, after = model(ids).data, model(changed).data
        assert_close(after[:, :3], before[:, :3], "logits 0..2 after changing token 3", rtol=0, atol=1e-12)
        assert not np.allclose(after[:, 3:], before[:, 3:]), "logits 3..5 should change when token 3 changes"

    def test_decoding_with_caches_equals_the_full_forward(self):
        """Tokens 0..3 with a cache per block, then token 4, then token 5 (start=4, 5): the full forward's logits."""
        model = float64_gpt(100)
        ids = random_ids((2, 6), 7, 101)
        caches = [ConcatCache() for _ in range(model.config.n_layer)]
        parts = [model(ids[:, :4], caches=caches), model(ids[:, 4:5], start=4, caches=caches),
                 model(ids[:, 5:6], start=5, caches=caches)]
        assert all(c.received == [4, 1, 1] for c in caches), (
            f"each block's cache should receive 4, then 1, then 1 tokens; got {[c.received for c in caches]}")
        got = np.concatenate([part.data for part in parts], axis=1)
        assert_close(got, model(ids), "logits decoded with caches vs the full forward")

    def test_contexts_that_do_not_fit_are_refused(self):
        """ids of 7 tokens for block_size 6, 3 tokens at start=4, start=-1, or 1-D ids: ValueError naming the numbers."""
        model = GPT(tiny_config(), rng=np.random.default_rng(102))
        raises_naming(lambda: model(np.zeros((1, 7), dtype=int)), ValueError, ["7", "block_size=6"],
                      "GPT on 7 tokens with block_size 6")
        raises_naming(lambda: model(np.zeros((1, 3), dtype=int), start=4), ValueError, ["start=4", "block_size=6"],
                      "GPT on 3 tokens at start 4")
        raises_naming(lambda: model(np.zeros(3, dtype=int)), ValueError, ["(3,)"], "GPT on 1-D ids")
        raises_naming(lambda: model(np.zeros((1, 2), dtype=int), start=-1), ValueError, ["start=-1"],
                      "GPT at start -1")

    def test_float32_by_default(self):
        """A GPT built from a config is float32, and so are its logits."""
        model = GPT(tiny_config(), rng=np.random.default_rng(103))
        assert_tensor(model(random_ids((2, 3), 7, 104)), "GPT logits", shape=(2, 3, 7), dtype=np.float32)

    def test_tied_weights_are_one_parameter(self):
        """With tie_weights, the head reuses the token table: no lm_head weight, and logits = ln_f(h) @ W_token^T."""
        model = float64_gpt(105, tie_weights=True)
        names = [name for name, _ in model.named_parameters()]
        assert not any(name.startswith("lm_head") for name in names), f"a tied model has no head weight: {names}"
        ids = random_ids((2, 4), 7, 106)
        assert_close(model(ids), numpy_gpt(model, ids), "tied logits vs numpy")
        model.embed.token.weight.data[2] += 1.0  # one table: the head must see the change
        assert_close(model(ids), numpy_gpt(model, ids), "tied logits after changing row 2 of the token table")

    @pytest.mark.parametrize("tied,layers", [(False, 2), (True, 1)])
    def test_training_step_gradcheck(self, tied, layers):
        """The cross-entropy loss of a tiny float64 GPT: every parameter's gradient matches central differences."""
        model = float64_gpt(107, vocab_size=5, block_size=4, n_layer=layers, n_head=2, n_embd=4, tie_weights=tied)
        ids, targets = random_ids((2, 4), 5, 108), random_ids(8, 5, 109)

        def loss() -> Tensor:
            return cross_entropy(model(ids).reshape(8, 5), targets)

        loss().backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, f"the gradient of {name} is None: backward never reached it"
            expected = checks.numerical_gradient(lambda *_: float(loss().data), [parameter.data], 0)
            assert_close(parameter.grad, expected, f"the gradient of {name} (tie_weights={tied})", rtol=1e-5, atol=1e-8)


# -- sampling ----------------------------------------------------------------------------------------------


class FixedDraws:
    """Stands in for a numpy Generator whose every uniform draw is `value`."""

    def __init__(self, value: float):
        self.value = value

    def random(self, size=None):
        return np.full(size, self.value)


@pytest.mark.checkpoint("sampling")
class TestSampling:
    def test_logits_are_left_alone(self):
        """next_token_probs and sample_next do not write into the logits they are given."""
        logits = random_array((3, 6), 110)
        before = logits.copy()
        next_token_probs(logits, temperature=0.5, top_k=2)
        sample_next(logits, temperature=0.7, top_k=3, rng=np.random.default_rng(111))
        assert_close(logits, before, "logits after sampling", rtol=0, atol=0)

    def test_probabilities_are_the_softmax(self):
        """next_token_probs(logits (2, 5)) is softmax over the last axis: float64 rows that sum to 1."""
        logits = random_array((2, 5), 112, scale=2.0)
        got = next_token_probs(logits)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
            f"next_token_probs returns a float64 numpy array, got {type(got).__name__} {getattr(got, 'dtype', '')}")
        assert_close(got, numpy_softmax(logits), "next_token_probs(logits)")

    def test_temperature_divides_the_logits_before_the_softmax(self):
        """temperature 0.5 gives softmax(2 * logits); temperature 2 gives softmax(logits / 2).

        Hint: temperature rescales the logits, softmax(logits / T): T < 1 sharpens the distribution, T > 1
        flattens it. Dividing the probabilities by T after the softmax changes nothing once they are renormalised.
        """
        logits = np.array([[0.0, 1.0, 2.0, -1.0]])
        assert_close(next_token_probs(logits, temperature=0.5), numpy_softmax(2 * logits), "temperature 0.5")
        assert_close(next_token_probs(logits, temperature=2.0), numpy_softmax(logits / 2), "temperature 2")

    def test_stable_for_huge_logits_at_a_low_temperature(self):
        """Logits [1000, 999, -1000] at temperature 0.1 give finite probabilities [1/(1+e^-10), e^-10/(1+e^-10), 0]."""
        with checks.no_overflow("next_token_probs([1000, 999, -1000], temperature=0.1)",
                                "subtract each row's maximum before np.exp, as kata 02's softmax does"):
            got = next_token_probs(np.array([1000.0, 999.0, -1000.0]), temperature=0.1)
        assert_close(got, [1 / (1 + math.exp(-10)), math.exp(-10) / (1 + math.exp(-10)), 0.0], "huge logits, T=0.1")

    def test_top_k_keeps_exactly_the_k_best(self):
        """With top_k=3 each row of (4, 10) logits keeps exactly its 3 largest, renormalised; the rest are exactly 0."""
        logits = random_array((4, 10), 113)
        got = next_token_probs(logits, top_k=3)
        kept = got > 0
        assert np.all(kept.sum(axis=-1) == 3), f"top_k=3 kept {kept.sum(axis=-1).tolist()} tokens per row, not 3 each"
        best = np.argsort(-logits, axis=-1)[:, :3]
        expected = np.zeros_like(logits)
        np.put_along_axis(expected, best, numpy_softmax(np.take_along_axis(logits, best, axis=-1)), axis=-1)
        assert_close(got, expected, "next_token_probs(top_k=3)")

    def test_top_k_ties_keep_the_lower_ids(self):
        """Logits [1, 3, 3, 3, 0] with top_k=2 keep exactly ids 1 and 2 (equal logits: the lower ids first).

        Hint: `logits >= the k-th largest` keeps every tie, more than k tokens. Rank the ids with a stable sort
        (np.argsort(-logits, kind="stable")) and keep the first k: equal logits stay in id order.
        """
        got = next_token_probs(np.array([1.0, 3.0, 3.0, 3.0, 0.0]), top_k=2)
        assert_close(got, [0.0, 0.5, 0.5, 0.0, 0.0], "next_token_probs([1, 3, 3, 3, 0], top_k=2)")

    def test_top_k_of_one_and_of_the_whole_vocabulary(self):
        """top_k=1 puts all the probability on the best id; top_k >= V (or None) keeps every id."""
        logits = random_array((2, 5), 114)
        assert_close(next_token_probs(logits, top_k=1), np.eye(5)[np.argmax(logits, axis=-1)], "top_k=1")
        for k in (5, 9):
            assert_close(next_token_probs(logits, top_k=k), numpy_softmax(logits), f"top_k={k} of 5 ids")

    def test_arguments_are_checked(self):
        """A negative temperature, a top_k of 0 or 2.5, and temperature 0 for a distribution: ValueError naming the value."""
        logits = np.zeros((1, 4))
        raises_naming(lambda: next_token_probs(logits, temperature=-1.0), ValueError, ["-1"], "temperature -1")
        raises_naming(lambda: next_token_probs(logits, top_k=0), ValueError, ["top_k", "0"], "top_k 0")
        raises_naming(lambda: sample_next(logits, top_k=2.5, rng=np.random.default_rng(0)), ValueError, ["2.5"],
                      "sample_next with top_k 2.5")
        raises_naming(lambda: next_token_probs(logits, temperature=0.0), ValueError, ["greedy"],
                      "next_token_probs with temperature 0")

    def test_more_arguments_are_checked(self):
        """A nan temperature and top_k=True are ValueErrors, also for greedy decoding; a numpy integer top_k is fine.

        Hint: `not temperature >= 0` refuses nan (every comparison with nan is False); bool is an int, so refuse it
        by name; accept (int, np.integer). Check the arguments before the greedy shortcut.
        """
        logits = np.array([[0.0, 1.0, 3.0, 2.0]])
        raises_naming(lambda: next_token_probs(logits, temperature=float("nan")), ValueError, ["nan"], "temperature nan")
        raises_naming(lambda: next_token_probs(logits, top_k=True), ValueError, ["True"], "top_k=True")
        raises_naming(lambda: sample_next(logits, temperature=0, top_k=0), ValueError, ["0"],
                      "sample_next(temperature=0, top_k=0)")
        assert_close(next_token_probs(logits, top_k=np.int64(1)), [[0.0, 0.0, 1.0, 0.0]], "top_k=np.int64(1)")

    def test_greedy_takes_the_argmax_and_draws_nothing(self):
        """temperature=0: the argmax of each row (ties: the lowest id), int64, without touching the generator.

        Hint: temperature 0 is the limit of ever sharper softmaxes: all the weight on the best logit. Return
        np.argmax, before any random draw: greedy decoding must not depend on the seed.
        """
        logits = np.array([[0.1, 2.0, -1.0, 2.0], [5.0, 4.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.5]])
        rng = np.random.default_rng(115)
        state = rng.bit_generator.state
        got = sample_next(logits, temperature=0, rng=rng)
        assert isinstance(got, np.ndarray) and got.dtype == np.int64, (
            f"sample_next returns an int64 numpy array of ids, got {type(got).__name__} {getattr(got, 'dtype', '')}")
        assert got.tolist() == [1, 0, 3], f"greedy ids: expected [1, 0, 3], got {got.tolist()}"
        assert rng.bit_generator.state == state, "greedy decoding drew random numbers; it should draw none"

    def test_samples_follow_the_probabilities(self):
        """20,000 seeded draws from logits [0, 1, 2, -1] at temperature 0.8, top_k 3: frequencies within 4 sigma; id 3 never."""
        logits = np.tile([0.0, 1.0, 2.0, -1.0], (20_000, 1))
        got = sample_next(logits, temperature=0.8, top_k=3, rng=np.random.default_rng(116))
        assert_shape(got, (20_000,), "sample_next of (20000, 4) logits")
        probs = numpy_softmax(np.array([0.0, 1.0, 2.0]) / 0.8)
        counts = np.bincount(got, minlength=4)
        assert counts[3] == 0, f"id 3 is outside the top 3 and was drawn {counts[3]} times"
        sigma = np.sqrt(20_000 * probs * (1 - probs))
        assert np.all(np.abs(counts[:3] - 20_000 * probs) < 4 * sigma), (
            f"seed 116: counts {counts[:3].tolist()} for expected {np.round(20_000 * probs).tolist()}")

    def test_the_same_seed_gives_the_same_tokens(self):
        """Two generators with seed 117 draw the same 50 tokens; seed 118 draws others."""
        logits = random_array((50, 6), 119)
        first = sample_next(logits, rng=np.random.default_rng(117))
        again = sample_next(logits, rng=np.random.default_rng(117))
        other = sample_next(logits, rng=np.random.default_rng(118))
        assert np.array_equal(first, again), "the same seed should give the same tokens"
        assert not np.array_equal(first, other), "another seed should give other tokens"

    def test_draws_at_the_ends_never_pick_an_excluded_id(self):
        """A draw of 0 or of almost 1 picks the first or the last id still allowed by top_k, never an excluded one."""
        logits = np.array([[-5.0, 1.0, 0.5, -6.0, 2.0, -7.0]])  # top_k=3 keeps ids 1, 2 and 4
        assert sample_next(logits, top_k=3, rng=FixedDraws(0.0)).tolist() == [1], "a draw of 0: the first allowed id, 1"
        assert sample_next(logits, top_k=3, rng=FixedDraws(1 - 1e-16)).tolist() == [4], (
            "a draw of almost 1: the last allowed id, 4, not an excluded id after it")

    def test_a_tensor_of_logits(self):
        """sample_next and next_token_probs accept a Tensor of logits (the model's output)."""
        logits = Tensor(random_array((2, 5), 120, dtype=np.float32))
        assert sample_next(logits, temperature=0).tolist() == np.argmax(logits.data, axis=-1).tolist(), "greedy of a Tensor"
        assert_close(next_token_probs(logits), numpy_softmax(logits.data.astype(np.float64)), "probs of a Tensor")


# -- generate ----------------------------------------------------------------------------------------------


def stepwise_greedy(model, ids, steps):
    """Greedy decoding written out: the argmax of the last position, appended, `steps` times."""
    ids = np.array(ids)
    for _ in range(steps):
        logits = model(ids[:, -model.config.block_size:]).data[:, -1]
        ids = np.concatenate([ids, np.argmax(logits, axis=-1)[:, None]], axis=1)
    return ids


@pytest.mark.checkpoint("generate")
class TestGenerate:
    def test_the_prompt_then_the_new_tokens(self):
        """generate((2, 3) prompt, 4) returns int64 ids (2, 7) that start with the prompt; a 1-D prompt gives 1-D ids."""
        model = GPT(tiny_config(), rng=np.random.default_rng(130))
        prompt = np.array([[1, 2, 3], [4, 5, 6]])
        got = model.generate(prompt, 4, seed=131)
        assert isinstance(got, np.ndarray) and got.dtype == np.int64, (
            f"generate returns an int64 numpy array, got {type(got).__name__} {getattr(got, 'dtype', '')}")
        assert_shape(got, (2, 7), "generate((2, 3) prompt, max_new_tokens=4)")
        assert np.array_equal(got[:, :3], prompt), f"the result should start with the prompt, got {got.tolist()}"
        assert np.all((got >= 0) & (got < 7)), f"every id should be in 0..6, got {got.tolist()}"
        single = model.generate([1, 2, 3], 2, seed=132)
        assert_shape(single, (5,), "generate([1, 2, 3], 2)")
        assert np.array_equal(model.generate([1, 2, 3], 0), [1, 2, 3]), "max_new_tokens=0 returns the prompt"

    def test_greedy_feeds_each_token_back(self):
        """temperature=0: each new token is the argmax after the prompt AND the tokens generated before it."""
        model = float64_gpt(133)
        prompt = np.array([[3, 1], [0, 6]])
        expected = stepwise_greedy(model, prompt, 4)
        got = model.generate(prompt, 4, temperature=0)
        assert np.array_equal(got, expected), f"greedy decoding: expected {expected.tolist()}, got {got.tolist()}"

    def test_greedy_does_not_depend_on_the_seed(self):
        """With temperature 0, seeds 0 and 1 give the same tokens."""
        model = float64_gpt(134)
        assert np.array_equal(model.generate([[2]], 5, temperature=0, seed=0),
                              model.generate([[2]], 5, temperature=0, seed=1)), "greedy decoding changed with the seed"

    def test_a_long_context_is_cropped_to_the_last_block_size_tokens(self):
        """A prompt of 9 tokens for block_size 6: each step reads only the last 6 tokens (the newest, not the first).

        Hint: `ids[:, -block_size:]`: the model sees the most recent block_size tokens, as if the older ones had
        scrolled out of its window. The whole prompt stays in the result.
        """
        model = float64_gpt(135)
        prompt = random_ids((1, 9), 7, 136)
        got = model.generate(prompt, 3, temperature=0)
        expected = stepwise_greedy(model, prompt, 3)
        assert np.array_equal(got, expected), f"expected {expected.tolist()}, got {got.tolist()}"

    def test_seeded_sampling_is_reproducible(self):
        """Sampling with seed 137 twice gives the same tokens; seed 138 gives others."""
        model = GPT(tiny_config(), rng=np.random.default_rng(139))
        first = model.generate([[1, 2]], 12, temperature=1.5, seed=137)
        assert np.array_equal(first, model.generate([[1, 2]], 12, temperature=1.5, seed=137)), "seed 137 twice differs"
        assert not np.array_equal(first, model.generate([[1, 2]], 12, temperature=1.5, seed=138)), (
            "seeds 137 and 138 gave the same 12 tokens")

    def test_one_generator_for_the_whole_run(self):
        """With uniform logits, 20 sampled tokens are not all the same: each step draws a new number from ONE generator.

        Hint: make rng = np.random.default_rng(seed) once, before the loop, and pass it to sample_next. A generator
        made from the seed at every step gives every step the same first draw.
        """
        model = GPT(tiny_config(), rng=np.random.default_rng(146))
        model.lm_head.weight.data[...] = 0  # every logit 0: the next token is uniform over the 7 ids
        new = model.generate([[1]], 20, seed=147)[0, 1:]
        assert len(set(new.tolist())) > 1, f"20 tokens sampled from a uniform distribution are all {new[0]}"

    def test_sampling_arguments_are_checked_before_any_step(self):
        """generate(prompt, 0, top_k=0) is a ValueError too: the arguments are checked before the loop."""
        model = GPT(tiny_config(), rng=np.random.default_rng(148))
        raises_naming(lambda: model.generate([1], 0, top_k=0), ValueError, ["top_k"], "generate([1], 0, top_k=0)")

    def test_every_token_is_in_the_top_k_of_its_own_context(self):
        """Sampling with top_k=2: each new token is one of the 2 best after everything before it."""
        model = float64_gpt(140)
        got = model.generate([[5, 0, 2], [1, 1, 1]], 6, temperature=1.0, top_k=2, seed=141)
        for step in range(3, 9):
            logits = model(got[:, max(0, step - 6):step]).data[:, -1]
            best = np.argsort(-logits, axis=-1)[:, :2]
            for row in range(2):
                assert got[row, step] in best[row], (
                    f"token {step} of row {row} is {got[row, step]}, not among the top 2 {best[row].tolist()} "
                    f"after {got[row, :step].tolist()}: feed each sampled token back")

    def test_rows_are_generated_independently(self):
        """Greedy decoding of a batch of two prompts equals decoding each prompt alone."""
        model = float64_gpt(142)
        both = model.generate([[1, 2, 3], [6, 5, 4]], 3, temperature=0)
        assert np.array_equal(both[0], model.generate([1, 2, 3], 3, temperature=0)), "row 0 differs from alone"
        assert np.array_equal(both[1], model.generate([6, 5, 4], 3, temperature=0)), "row 1 differs from alone"

    def test_no_graph_is_recorded(self):
        """generate runs the model with gradient recording off (no_grad): decoding needs no backward."""
        model = GPT(tiny_config(), rng=np.random.default_rng(143))
        recording = []
        forward = model.forward

        def spy(*args, **kwargs):
            recording.append(is_grad_enabled())
            return forward(*args, **kwargs)

        model.forward = spy
        model.generate([[1]], 3, seed=144)
        assert recording and not any(recording), (
            f"the model ran {len(recording)} times, with recording on in {sum(recording)} of them; wrap the loop in "
            "`with no_grad():`")

    def test_bad_arguments(self):
        """An empty or 3-D prompt, max_new_tokens -1, or temperature -1: ValueError naming the value."""
        model = GPT(tiny_config(), rng=np.random.default_rng(145))
        raises_naming(lambda: model.generate([], 2), ValueError, ["(0,)"], "generate([], 2)")
        raises_naming(lambda: model.generate(np.zeros((1, 1, 2), dtype=int), 2), ValueError, ["(1, 1, 2)"],
                      "generate of a 3-D prompt")
        raises_naming(lambda: model.generate([1], -1), ValueError, ["-1"], "generate([1], -1)")
        raises_naming(lambda: model.generate([1], 2, temperature=-1.0), ValueError, ["-1"], "generate(temperature=-1)")


# -- optimize ----------------------------------------------------------------------------------------------

BATCH, LENGTH, VOCAB = 16, 32, 65
SMALL = dict(vocab_size=VOCAB, block_size=LENGTH, n_layer=2, n_head=4, n_embd=64)
# The lesson's table for that model, float32: 110,464 parameters, and the activations the forward keeps
# for backward, B T (4 C + L (30 C + H T) + 2 V) = 2,294,784 numbers.
PARAMETER_BYTES = 4 * 110_464
ACTIVATION_BYTES = 4 * BATCH * LENGTH * (4 * 64 + 2 * (30 * 64 + 4 * LENGTH) + 2 * VOCAB)
ACTIVATION_BUDGET = 1.5  # the reference keeps 1.006x the table's count; a LayerNorm of Tensor ops 1.22x
# Forward + backward over the forward alone. The reference measures about 4-5x (its GELU cubes as x * x * x,
# a hundred times faster than x ** 3 on negative float32, so the forward is lean). The budget keeps a 2x margin.
TIME_BUDGET = 10.0


@pytest.fixture(scope="module")
def small_gpt():
    model = GPT(GPTConfig(**SMALL), rng=np.random.default_rng(150))
    ids = random_ids((BATCH, LENGTH), VOCAB, 151)
    targets = random_ids(BATCH * LENGTH, VOCAB, 152)
    return model, ids, targets


def retained_bytes(fn):
    """(bytes still allocated when fn() returns, above what was allocated before; fn's result)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = fn()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, result


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_parameters_gradients_and_adam_state_as_in_the_table(self, small_gpt):
        """The 2-layer, 64-wide GPT: 441,856 bytes of parameters, as many of gradients, twice as many of Adam state."""
        model, ids, targets = small_gpt
        assert model.parameter_bytes() == PARAMETER_BYTES, (
            f"parameters: {model.parameter_bytes():,} bytes; the table says {PARAMETER_BYTES:,} (110,464 float32)")
        optimizer = Adam(model.parameters(), lr=1e-3)
        optimizer.zero_grad()
        cross_entropy(model(ids).reshape(-1, VOCAB), targets).backward()
        gradient_bytes = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
        assert gradient_bytes == PARAMETER_BYTES, (
            f"gradients: {gradient_bytes:,} bytes; expected one float32 gradient per parameter, {PARAMETER_BYTES:,}")
        optimizer.step()
        assert optimizer.state_bytes() == 2 * PARAMETER_BYTES, (
            f"Adam state: {optimizer.state_bytes():,} bytes; expected two moments per parameter, {2 * PARAMETER_BYTES:,}")

    @pytest.mark.budget
    def test_activations_kept_for_backward_as_in_the_table(self, small_gpt):
        """The forward and loss of B=16, T=32 keep at most 1.5x the table's 9,179,136 bytes of activations until backward."""
        model, ids, targets = small_gpt
        model.zero_grad()
        kept, loss = retained_bytes(lambda: cross_entropy(model(ids).reshape(-1, VOCAB), targets))
        assert_finite(loss, "the loss of the small GPT")
        budget = ACTIVATION_BUDGET * ACTIVATION_BYTES
        assert kept <= budget, (
            f"the forward keeps {kept / 2**20:.2f} MiB alive for backward; the table counts "
            f"{ACTIVATION_BYTES / 2**20:.2f} MiB and the budget is {budget / 2**20:.2f} MiB ({ACTIVATION_BUDGET}x). "
            "Look for arrays a forward saves twice, or float64 copies of float32 activations")
        loss.backward()

    @pytest.mark.budget
    def test_backward_costs_a_small_multiple_of_the_forward(self, small_gpt):
        """Forward + backward of the loss takes at most 10x the forward alone (the reference: about 2.6x)."""
        model, ids, targets = small_gpt

        def forward():
            return cross_entropy(model(ids).reshape(-1, VOCAB), targets)

        def forward_and_backward():
            model.zero_grad()
            forward().backward()

        assert_time_ratio(forward_and_backward, forward, TIME_BUDGET,
                          f"a training step's forward + backward vs its forward, GPT {SMALL}, B={BATCH}",
                          advice="a backward rule with a Python loop over rows, or one that recomputes the forward, "
                                 "is the usual cause")

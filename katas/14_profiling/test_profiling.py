"""Kata 14 · Profiling: the ordered suite. Run it with `python -m pytest katas/14_profiling`."""

import gc
import math
import tracemalloc

import numpy as np
import pytest

from harness.budgets import assert_time_ratio, peak_bytes
from tinytorch.activations import ReLU, relu
from tinytorch.attention import MultiHeadAttention, scaled_dot_product_attention
from tinytorch.autograd import no_grad
from tinytorch.convolutions import BatchNorm2d, Conv2d, Flatten, MaxPool2d, conv2d
from tinytorch.layers import Dropout, Linear, Module, Parameter, Sequential
from tinytorch.optimizers import SGD, Adam
from tinytorch.profiling import (
    Latency, LayerProfile, Profile, TrainingMemory, arithmetic_intensity, attention_flops, block_flops,
    conv2d_flops, count_flops, count_parameters, elementwise_cost, format_profile, gpt_flops, graph_bytes,
    linear_flops, matmul_cost, measure_latency, multi_head_attention_flops, parameter_bytes, profile_model,
    roofline, training_memory,
)
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT, Block, GPTConfig


def assert_count(got, expected: int, what: str) -> None:
    """`got` is the Python int `expected`; on failure say how far off it is, as a ratio."""
    assert type(got) is int, f"{what}: expected a Python int, got {type(got).__name__} {got!r}"
    if got != expected:
        ratio = f"{got / expected:.4g}x the right count" if expected else "the right count is 0"
        raise AssertionError(f"{what}: expected {expected:,}, got {got:,} ({ratio})")


def mlp(rng, sizes=(784, 128, 10)) -> Sequential:
    """Linear, ReLU, Linear, ... through `sizes`."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(fan_in, fan_out, rng=rng), ReLU()]
    return Sequential(*layers[:-1])


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def forward_record(module, x):
    """(inputs, output) of one call of `module` on x, as a forward hook sees them."""
    seen = []
    handle = module.register_forward_hook(lambda m, inputs, output: seen.append((inputs, output)))
    try:
        with no_grad():
            module(x)
    finally:
        handle.remove()
    return seen[0]


def hooks_left(model) -> list:
    """The dotted names of the modules that still have forward hooks (Module._forward_hooks, kata 04)."""
    return [name or "(model)" for name, module in model.named_modules() if module._forward_hooks]


def gpt_config(**changes) -> GPTConfig:
    return GPTConfig(**({"vocab_size": 50, "block_size": 8, "n_layer": 2, "n_head": 4, "n_embd": 16} | changes))


class Scale(Module):
    """A module no FLOP rule knows: a learned scale times its input."""

    def __init__(self, size: int):
        super().__init__()
        self.scale = Parameter(np.ones(size))

    def forward(self, x):
        return x * self.scale


class Residual(Module):
    """A module no FLOP rule knows, which only calls its child: x + layer(x)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        return x + self.layer(x)


class MyLinear(Linear):
    """A subclass of Linear that does more than a Linear: its FLOPs are not Linear's."""

    def forward(self, x):
        return super().forward(x) @ self.weight.transpose() @ self.weight


# ---------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("parameters")
class TestParameters:
    def test_count_parameters_of_an_mlp(self):
        """An MLP 784-128-10: 784*128 + 128 + 128*10 + 10 = 101,770 parameters, a Python int."""
        model = mlp(np.random.default_rng(0))
        assert_count(count_parameters(model), 784 * 128 + 128 + 128 * 10 + 10, "count_parameters of the 784-128-10 MLP")

    def test_a_layer_without_bias_and_a_model_without_parameters(self):
        """Linear(5, 3, bias=False) has 15; Sequential(ReLU()) has 0 parameters and 0 bytes."""
        assert_count(count_parameters(Linear(5, 3, bias=False)), 15, "count_parameters of Linear(5, 3, bias=False)")
        assert_count(count_parameters(Sequential(ReLU())), 0, "count_parameters of Sequential(ReLU())")
        assert_count(parameter_bytes(Sequential(ReLU())), 0, "parameter_bytes of Sequential(ReLU())")

    def test_a_shared_parameter_counts_once(self):
        """Sequential(layer, ReLU(), layer) with one Linear(6, 6) twice learns 42 numbers, not 84.

        Hint: the same Parameter reached through two paths is one array in memory. model.parameters()
        (kata 04) already lists each Parameter once; walking every module's own parameters does not.
        """
        layer = Linear(6, 6, rng=np.random.default_rng(1))
        model = Sequential(layer, ReLU(), layer)
        assert_count(count_parameters(model), 42, "count_parameters of a Linear(6, 6) used twice")
        assert_count(parameter_bytes(model), 42 * 4, "parameter_bytes of a Linear(6, 6) used twice")

    def test_tied_gpt_weights_count_once(self):
        """A GPT whose LM head reuses the token table has V*C fewer parameters than the untied one."""
        vocab, block, layers, width = 50, 8, 2, 16
        per_block = 12 * width * width + 13 * width  # attention 4C^2 + 4C, MLP 8C^2 + 5C, two LayerNorms 4C
        tied = vocab * width + block * width + layers * per_block + 2 * width
        rng = np.random.default_rng(2)
        assert_count(count_parameters(GPT(gpt_config(tie_weights=True), rng=rng)), tied, "count_parameters, tied GPT")
        assert_count(count_parameters(GPT(gpt_config(), rng=rng)), tied + width * vocab, "count_parameters, untied GPT")

    def test_parameter_bytes_at_each_parameters_own_dtype(self):
        """A float32 (3, 4) and a float64 (5,) parameter take 12*4 + 5*8 = 88 bytes.

        Hint: 4 bytes a number is float32 only; every array knows its own size in bytes (nbytes).
        """

        class Mixed(Module):
            def __init__(self):
                super().__init__()
                self.weight = Parameter(np.ones((3, 4), dtype=np.float32))
                self.scale = Parameter(np.ones(5), dtype=np.float64)

        assert_count(parameter_bytes(Mixed()), 12 * 4 + 5 * 8, "parameter_bytes of float32 (3, 4) + float64 (5,)")
        assert_count(count_parameters(Mixed()), 17, "count_parameters of (3, 4) + (5,)")

    @pytest.mark.parametrize("dtype, itemsize", [(np.float16, 2), ("int8", 1), (np.float64, 8), ("float32", 4)],
                             ids=["float16", "int8", "float64", "float32"])
    def test_parameter_bytes_in_another_dtype(self, dtype, itemsize):
        """parameter_bytes(model, dtype): every parameter counted at that dtype's size, a shared one once."""
        layer = Linear(6, 6, rng=np.random.default_rng(3))
        model = Sequential(layer, ReLU(), layer, Linear(6, 2, bias=False, rng=np.random.default_rng(4)))
        model[3].weight = Parameter(np.ones((6, 2)), dtype=np.float64)  # mixed dtypes: the target dtype decides
        assert_count(parameter_bytes(model, dtype), (42 + 12) * itemsize, f"parameter_bytes(model, {dtype!r})")


@pytest.mark.checkpoint("flop_rules")
class TestFlopRules:
    def test_linear_counts_two_flops_per_multiply_accumulate_for_the_whole_batch(self):
        """Linear(784, 10) on a batch of 32: 2 * 32 * 784 * 10 = 501,760 FLOPs.

        Hint: the original course's counter said 15,680 here: 2 * 784 * 10, one sample. Every row of
        the batch does its own 784 x 10 multiply-accumulates, and each is a multiply AND an add.
        """
        layer = Linear(784, 10, rng=np.random.default_rng(5))
        inputs, output = forward_record(layer, np.zeros((32, 784), dtype=np.float32))
        assert_count(linear_flops(layer, inputs, output), 501_760, "linear_flops of Linear(784, 10) on (32, 784)")

    def test_linear_bias_adds_are_not_counted(self):
        """With or without bias, Linear(7, 5) on (3, 7) is 2 * 3 * 7 * 5 = 210: bias adds are not counted."""
        for bias in (True, False):
            layer = Linear(7, 5, bias=bias, rng=np.random.default_rng(6))
            inputs, output = forward_record(layer, np.ones((3, 7), dtype=np.float32))
            assert_count(linear_flops(layer, inputs, output), 210, f"linear_flops of Linear(7, 5, bias={bias}) on (3, 7)")

    @pytest.mark.parametrize("shape, rows", [((2, 9, 7), 18), ((7,), 1), ((1, 7), 1), ((2, 3, 4, 7), 24)],
                             ids=["(B, T, C)", "one sample", "batch of 1", "4-D"])
    def test_linear_counts_every_leading_axis_as_rows(self, shape, rows):
        """Linear(7, 5) on (2, 9, 7) has 18 rows: 2 * 18 * 7 * 5. A single sample (7,) is one row."""
        layer = Linear(7, 5, rng=np.random.default_rng(7))
        inputs, output = forward_record(layer, np.ones(shape, dtype=np.float32))
        assert_count(linear_flops(layer, inputs, output), 2 * rows * 7 * 5, f"linear_flops of Linear(7, 5) on {shape}")

    @pytest.mark.parametrize("x_shape, out_channels, kernel, stride, padding", [
        ((2, 3, 8, 8), 4, (3, 3), (1, 1), (1, 1)),
        ((2, 3, 9, 7), 5, (3, 2), (2, 1), (1, 0)),
        ((1, 2, 10, 10), 3, (3, 3), (3, 3), (2, 2)),
        ((3, 1, 6, 5), 2, (1, 1), (2, 2), (0, 0)),
        ((2, 4, 7, 7), 6, (7, 7), (1, 1), (0, 0)),
    ], ids=["3x3 same", "stride (2, 1) pad (1, 0)", "stride 3 pad 2", "1x1 stride 2", "kernel = image"])
    def test_conv2d_counts_every_output_value(self, x_shape, out_channels, kernel, stride, padding):
        """Conv2d: 2 * N * Ho * Wo * O * C * kh * kw with Ho = (H + 2p - kh) // s + 1: the output's size decides.

        Hint: the image size H x W is not the number of windows: stride skips windows and padding adds
        some. Read Ho and Wo from the output, or from (H + 2p - k) // s + 1.
        """
        n, channels, height, width = x_shape
        layer = Conv2d(channels, out_channels, kernel, stride=stride, padding=padding, rng=np.random.default_rng(8))
        inputs, output = forward_record(layer, np.ones(x_shape, dtype=np.float32))
        rows = output_size(height, kernel[0], stride[0], padding[0])
        cols = output_size(width, kernel[1], stride[1], padding[1])
        expected = 2 * n * rows * cols * out_channels * channels * kernel[0] * kernel[1]
        assert_count(conv2d_flops(layer, inputs, output), expected,
                     f"conv2d_flops of Conv2d({channels}, {out_channels}, {kernel}, stride={stride}, "
                     f"padding={padding}) on {x_shape}")

    @pytest.mark.parametrize("batch, length_q, length_k, dim", [(2, 5, 5, 16), (3, 1, 9, 8), (1, 4, 7, 12)],
                             ids=["self-attention", "one query, 9 keys", "4 queries, 7 keys"])
    def test_attention_counts_both_products(self, batch, length_q, length_k, dim):
        """attention_flops: Q K^T and P V, each 2 * T_q * T_k * dim per sequence: 4 * B * T_q * T_k * dim.

        Hint: the scores compare every query with every KEY (T_q x T_k, not T_q x T_q), and the
        weighted sum of the values is a second product of the same size.
        """
        assert_count(attention_flops(batch, length_q, length_k, dim), 4 * batch * length_q * length_k * dim,
                     f"attention_flops(batch={batch}, T_q={length_q}, T_k={length_k}, dim={dim})")

    def test_multi_head_attention_counts_its_own_products_not_its_projections(self):
        """MultiHeadAttention(16, 4) on (3, 6, 16): its own FLOPs are 4 * 3 * 6 * 6 * 16; the projections are Linears."""
        attention = MultiHeadAttention(16, 4, rng=np.random.default_rng(9))
        inputs, output = forward_record(attention, np.ones((3, 6, 16), dtype=np.float32))
        assert_count(multi_head_attention_flops(attention, inputs, output), 4 * 3 * 6 * 6 * 16,
                     "multi_head_attention_flops on (3, 6, 16)")

    def test_a_block_counts_the_attention_products_it_computes_itself(self):
        """Block(16, 4) on (2, 7, 16): 4 * 2 * 7 * 7 * 16, the products attn.attend does inside the block."""
        block = Block(16, 4, rng=np.random.default_rng(10))
        inputs, output = forward_record(block, np.ones((2, 7, 16), dtype=np.float32))
        assert_count(block_flops(block, inputs, output), 4 * 2 * 7 * 7 * 16, "block_flops on (2, 7, 16)")

    def test_a_tied_gpt_head_is_the_gpts_own_product(self):
        """Tied weights: the GPT itself computes h @ W_token^T, 2 * B * T * C * V; untied, lm_head counts it: 0."""
        ids = np.zeros((3, 5), dtype=np.int64)
        tied = GPT(gpt_config(tie_weights=True), rng=np.random.default_rng(11))
        inputs, output = forward_record(tied, ids)
        assert_count(gpt_flops(tied, inputs, output), 2 * 3 * 5 * 16 * 50, "gpt_flops with tied weights on (3, 5) ids")
        untied = GPT(gpt_config(), rng=np.random.default_rng(12))
        inputs, output = forward_record(untied, ids)
        assert_count(gpt_flops(untied, inputs, output), 0, "gpt_flops with its own lm_head (a Linear counts itself)")


@pytest.mark.checkpoint("count_flops")
class TestCountFlops:
    def test_the_calibration_case(self):
        """count_flops(Linear(784, 10), (32, 784)) is 501,760 (the original course's counter said 15,680)."""
        assert_count(count_flops(Linear(784, 10, rng=np.random.default_rng(13)), (32, 784)), 501_760,
                     "count_flops of Linear(784, 10) on a batch of 32")

    def test_an_empty_batch_costs_nothing(self):
        """Linear(784, 10) on a batch of 0 rows: 0 FLOPs, a Python int."""
        assert_count(count_flops(Linear(784, 10, rng=np.random.default_rng(13)), (0, 784)), 0,
                     "count_flops of Linear(784, 10) on an empty batch")

    def test_an_mlp_adds_its_layers(self):
        """784-128-10 MLP with ReLU and Dropout on a batch of 32: 2 * 32 * (784 * 128 + 128 * 10)."""
        rng = np.random.default_rng(14)
        model = Sequential(Linear(784, 128, rng=rng), ReLU(), Dropout(0.5), Linear(128, 10, rng=rng))
        assert_count(count_flops(model, (32, 784)), 2 * 32 * (784 * 128 + 128 * 10), "count_flops of the MLP")

    def test_a_cnn_with_stride_and_padding(self):
        """Two Conv2d (one strided), pooling, BatchNorm, Flatten and a Linear: each layer's formula, added up."""
        rng = np.random.default_rng(15)
        model = Sequential(Conv2d(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
                           Conv2d(8, 16, 3, stride=2, padding=1, rng=rng), BatchNorm2d(16), ReLU(), Flatten(),
                           Linear(16 * 2 * 2, 10, rng=rng))
        n = 4
        first = 2 * n * 8 * 8 * 8 * 1 * 3 * 3  # 8x8 stays 8x8 with padding 1
        side = output_size(4, 3, 2, 1)  # after the 2x2 pool: 4x4, then stride 2: 2x2
        second = 2 * n * side * side * 16 * 8 * 3 * 3
        head = 2 * n * (16 * side * side) * 10
        assert_count(count_flops(model, (n, 1, 8, 8)), first + second + head, "count_flops of the CNN on (4, 1, 8, 8)")

    def test_multi_head_attention_projections_and_products(self):
        """MultiHeadAttention(16, 4) on (2, 5, 16): QKV 2*B*T*C*3C, scores and mixing 4*B*T*T*C, output 2*B*T*C*C."""
        batch, length, dim = 2, 5, 16
        expected = 2 * batch * length * dim * 3 * dim + 4 * batch * length * length * dim + 2 * batch * length * dim * dim
        attention = MultiHeadAttention(dim, 4, rng=np.random.default_rng(16))
        assert_count(count_flops(attention, (batch, length, dim)), expected, "count_flops of MultiHeadAttention")

    @pytest.mark.parametrize("batch, length, width", [(2, 5, 16), (1, 12, 8)], ids=["T < C", "T > C"])
    def test_a_gpt_block(self, batch, length, width):
        """Block(C, 4) on (B, T, C): 24 * B * T * C^2 (projections and MLP) + 4 * B * T^2 * C (attention products)."""
        block = Block(width, 4, rng=np.random.default_rng(17))
        expected = 24 * batch * length * width ** 2 + 4 * batch * length ** 2 * width
        assert_count(count_flops(block, (batch, length, width)), expected, f"count_flops of Block({width}, 4) "
                     f"on {(batch, length, width)}")

    @pytest.mark.parametrize("tie", [False, True], ids=["untied head", "tied head"])
    def test_a_gpt(self, tie):
        """GPT (2 blocks, C = 16, V = 50) on (3, 6) ids: 2 blocks + 2 * B * T * C * V for the head, tied or not."""
        batch, length, width, vocab = 3, 6, 16, 50
        model = GPT(gpt_config(tie_weights=tie), rng=np.random.default_rng(18))
        per_block = 24 * batch * length * width ** 2 + 4 * batch * length ** 2 * width
        expected = 2 * per_block + 2 * batch * length * width * vocab
        assert_count(count_flops(model, (batch, length), dtype=np.int64), expected, "count_flops of the GPT")

    def test_the_probe_input_has_the_dtype_asked_for(self):
        """count_flops runs the model on zeros of input_shape in `dtype`: float32 by default, float64 or int64 when asked."""
        layer = Linear(3, 2, rng=np.random.default_rng(25))
        seen = []
        layer.register_forward_hook(lambda module, inputs, output: seen.append(np.asarray(getattr(inputs[0], "data", inputs[0])).dtype))
        for dtype in (None, np.float64, np.int64):
            seen.clear()
            count_flops(layer, (2, 3)) if dtype is None else count_flops(layer, (2, 3), dtype=dtype)
            expected = np.dtype(np.float32 if dtype is None else dtype)
            assert seen == [expected], \
                f"count_flops(..., dtype={getattr(dtype, '__name__', dtype)}): the model should see a {expected} input, " \
                f"saw {seen}: build the probe with np.zeros(input_shape, dtype=dtype)"

    def test_a_layer_called_twice_counts_twice_and_is_hooked_once(self):
        """Sequential(layer, ReLU(), layer): the Linear(6, 6) runs twice, 2 * 2 * 4 * 6 * 6 FLOPs, not four times.

        Hint: named_modules() lists a shared module under each of its names. One hook per module,
        not per name, or each call is reported twice.
        """
        layer = Linear(6, 6, rng=np.random.default_rng(19))
        assert_count(count_flops(Sequential(layer, ReLU(), layer), (4, 6)), 2 * (2 * 4 * 6 * 6),
                     "count_flops of one Linear(6, 6) run twice on (4, 6)")

    def test_an_unknown_module_is_an_error_naming_every_one(self):
        """Residual and Scale have no rule: a TypeError naming both modules and classes (each once), not a count that skips them.

        Hint: a module with no rule may compute anything; counting it as 0 gives a number that looks right
        and is not. Collect every unknown call, then raise once naming them all.
        """
        rng = np.random.default_rng(20)
        model = Sequential(Linear(4, 4, rng=rng), Residual(Linear(4, 4, rng=rng)), Scale(4))
        with pytest.raises(TypeError) as error:
            count_flops(model, (2, 4))
        message = str(error.value)
        assert "Residual" in message and "Scale" in message and "1" in message and "2" in message, \
            f"the message should name both unknown modules (1, Residual; 2, Scale); it was: {message}"
        scale = Scale(4)
        with pytest.raises(TypeError) as error:
            count_flops(Sequential(scale, scale), (2, 4))
        message = str(error.value)
        assert message.count("Scale") == 1, \
            f"one Scale called twice should be named once, not once per call; the message was: {message}"

    def test_rules_teach_it_new_modules(self):
        """rules={Residual: 0-rule, Scale: 1 FLOP per value} adds to the known rules: Linears + 2 * 4 Scale FLOPs."""
        rng = np.random.default_rng(21)
        model = Sequential(Linear(4, 4, rng=rng), Residual(Linear(4, 4, rng=rng)), Scale(4))
        rules = {Residual: lambda module, inputs, output: 0,
                 Scale: lambda module, inputs, output: output.size}
        assert_count(count_flops(model, (2, 4), rules=rules), 2 * (2 * 2 * 4 * 4) + 2 * 4, "count_flops with rules")
        overriding = {Linear: lambda module, inputs, output: 1} | rules
        assert_count(count_flops(model, (2, 4), rules=overriding), 1 + 1 + 2 * 4, "count_flops with Linear's rule replaced")

    def test_a_subclass_is_not_its_parent(self):
        """MyLinear(Linear) computes more than a Linear: without a rule of its own it is an error naming MyLinear."""
        with pytest.raises(TypeError, match="MyLinear"):
            count_flops(Sequential(MyLinear(3, 3, rng=np.random.default_rng(22))), (2, 3))

    def test_the_hooks_are_removed_and_a_users_hook_stays(self):
        """After count_flops (and after its TypeError) no hook of its own is left; a hook the user added keeps working."""
        rng = np.random.default_rng(23)
        model = Sequential(Linear(3, 3, rng=rng), ReLU(), Linear(3, 2, rng=rng))
        calls = []
        model[0].register_forward_hook(lambda *_: calls.append("user"))
        count_flops(model, (2, 3))
        assert hooks_left(model) == ["0"], f"modules still hooked after count_flops: {hooks_left(model)}"
        model(np.ones((1, 3)))
        assert calls == ["user", "user"], f"the user's own hook should still fire (once per call): {calls}"
        broken = Sequential(Linear(3, 3, rng=rng), Scale(3))
        with pytest.raises(TypeError):
            count_flops(broken, (2, 3))
        assert hooks_left(broken) == [], f"modules still hooked after count_flops raised: {hooks_left(broken)}"
        with pytest.raises(ValueError):
            count_flops(model, (2, 4))  # the forward itself fails: Linear(3, 3) gets 4 features
        assert hooks_left(model) == ["0"], \
            f"modules still hooked after the model's forward raised inside count_flops: {hooks_left(model)}"
        assert all(module.training for module in model.modules()), \
            "after the forward raised inside count_flops, every module should be back in training mode"

    def test_it_runs_in_eval_mode_without_a_graph(self):
        """During count_flops each module is in eval mode and records no graph; afterwards it is as it was."""
        rng = np.random.default_rng(24)
        model = Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), BatchNorm2d(3), Dropout(0.5), Flatten())
        model[2].eval()  # a model in mixed modes is restored exactly
        seen = []
        model[0].register_forward_hook(lambda module, inputs, output: seen.append((module.training, output.requires_grad)))
        mean, var = model[1].running_mean.copy(), model[1].running_var.copy()
        count_flops(model, (2, 2, 4, 4))
        assert seen == [(False, False)], \
            f"inside count_flops the conv should see training=False and an output without a graph; saw {seen}"
        assert [m.training for m in model.modules()] == [True, True, True, False, True], \
            f"modes after count_flops: {[m.training for m in model.modules()]}; expected as before"
        assert np.array_equal(model[1].running_mean, mean) and np.array_equal(model[1].running_var, var), \
            "count_flops changed BatchNorm's running statistics: measuring must not train the model (eval mode)"


@pytest.mark.checkpoint("memory")
class TestMemory:
    def test_graph_bytes_counts_every_op_output(self):
        """x (16, 64) @ W (64, 32), relu, sum: 2048 + 2048 + 4 bytes; with W and x excluded, else plus theirs."""
        rng = np.random.default_rng(25)
        weight = Parameter(rng.standard_normal((64, 32)))
        x = Tensor(rng.standard_normal((16, 64)))
        loss = relu(x @ weight).sum()
        assert_count(graph_bytes(loss, exclude=[weight, x]), 2048 + 2048 + 4, "graph_bytes of sum(relu(x @ W))")
        assert_count(graph_bytes(loss), 2048 + 2048 + 4 + 64 * 32 * 4 + 16 * 64 * 4,
                     "graph_bytes of sum(relu(x @ W)) with nothing excluded")
        assert_count(graph_bytes(loss, exclude=[weight.data, x.data]), 4100, "graph_bytes excluding the numpy arrays")

    def test_views_share_their_parents_memory(self):
        """(x @ W).reshape(16, 4, 8).transpose(0, 2)[:, :2] holds only the product's 2048 bytes: views are free.

        Hint: a reshape, a transpose or a slice is a new array object looking at the same memory:
        follow .base to the array that owns it and count that once.
        """
        rng = np.random.default_rng(26)
        weight = Parameter(rng.standard_normal((64, 32)))
        x = Tensor(rng.standard_normal((16, 64)))
        out = (x @ weight).reshape(16, 4, 8).transpose(0, 2)[:, :2]
        assert_count(graph_bytes(out, exclude=[weight, x]), 16 * 32 * 4, "graph_bytes of views of one product")

    def test_the_arrays_saved_for_backward_count(self):
        """Attention keeps its (T_q, T_k) weights for backward: output 2*3*8*4 + probs 2*3*8*8 float64 numbers.

        Hint: an op's result is not all it keeps. Its `saved` dict holds what the backward rule needs, and
        for attention that is the largest array of all.
        """
        rng = np.random.default_rng(27)
        q, k, v = (Tensor(rng.standard_normal((2, 3, 8, 4)), dtype=np.float64, requires_grad=True) for _ in range(3))
        out = scaled_dot_product_attention(q, k, v, causal=True)
        assert_count(graph_bytes(out, exclude=[q, k, v]), (2 * 3 * 8 * 4 + 2 * 3 * 8 * 8) * 8,
                     "graph_bytes of attention on (2, 3, 8, 4) float64")

    def test_a_convolution_keeps_its_columns(self):
        """conv2d of (2, 3, 5, 5) by (4, 3, 3, 3), padding 1: output 2*4*5*5 plus columns 2*27*25 numbers."""
        rng = np.random.default_rng(28)
        x = Tensor(rng.standard_normal((2, 3, 5, 5)))
        weight = Parameter(rng.standard_normal((4, 3, 3, 3)))
        out = conv2d(x, weight, padding=1)
        assert_count(graph_bytes(out, exclude=[x, weight]), (2 * 4 * 25 + 2 * 27 * 25) * 4,
                     "graph_bytes of conv2d on (2, 3, 5, 5), 3x3, padding 1")

    @pytest.mark.parametrize("optimizer, slots", [("sgd", 0), ("momentum", 1), ("adam", 2), ("adamw", 2)])
    def test_training_memory_by_part(self, optimizer, slots):
        """A 64-128-10 MLP: parameters and gradients 9,610 * 4 bytes each; the optimizer keeps `slots` more."""
        rng = np.random.default_rng(29)
        model = mlp(rng, (64, 128, 10))
        x = rng.standard_normal((32, 64)).astype(np.float32)
        memory = training_memory(model, x, optimizer)
        assert isinstance(memory, TrainingMemory), f"training_memory should return a TrainingMemory, got {memory!r}"
        weights = 9_610 * 4
        assert_count(memory.parameters, weights, "training_memory(...).parameters")
        assert_count(memory.gradients, weights, "training_memory(...).gradients (one per parameter, same dtype)")
        assert_count(memory.optimizer_state, slots * weights, f"training_memory(..., {optimizer!r}).optimizer_state")
        assert_count(memory.activations, graph_bytes(model(x), exclude=[*model.parameters(), x]),
                     "training_memory(...).activations (graph_bytes of the forward, parameters and x excluded)")
        assert memory.total == weights * (2 + slots) + memory.activations, f"total: got {memory.total}"
        assert "activations" in str(memory) and "MiB" in str(memory), f"the printout:\n{memory}"

    def test_float64_parameters_and_no_side_effects(self):
        """Float64 parameters cost 8 bytes a number in every part; no gradient appears, the mode stays."""
        layer = Linear(5, 3, rng=np.random.default_rng(30))
        layer.weight = Parameter(np.ones((5, 3)), dtype=np.float64)
        layer.bias = Parameter(np.zeros(3), dtype=np.float64)
        memory = training_memory(layer, np.ones((4, 5)), "adam")
        assert_count(memory.parameters, 18 * 8, "parameters of a float64 Linear(5, 3)")
        assert_count(memory.optimizer_state, 2 * 18 * 8, "Adam's state of a float64 Linear(5, 3)")
        assert_count(memory.gradients, 18 * 8, "gradients of a float64 Linear(5, 3) (a gradient has its parameter's dtype)")
        assert layer.weight.grad is None and layer.training, \
            "training_memory only runs a forward pass: no gradient, no change of mode"

    def test_an_unknown_optimizer_is_an_error(self):
        """training_memory(..., 'rmsprop') raises ValueError naming 'rmsprop'."""
        with pytest.raises(ValueError, match="rmsprop"):
            training_memory(Linear(2, 2), np.ones((1, 2)), "rmsprop")

    @pytest.mark.parametrize("build, x_shape", [
        (lambda rng: mlp(rng, (128, 256, 256, 10)), (64, 128)),
        (lambda rng: Sequential(Conv2d(3, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
                                Linear(8 * 6 * 6, 10, rng=rng)), (16, 3, 12, 12)),
        (lambda rng: MultiHeadAttention(32, 4, rng=rng), (4, 48, 32)),
    ], ids=["MLP", "CNN", "attention"])
    def test_the_prediction_matches_tracemalloc(self, build, x_shape):
        """Measured with tracemalloc: the forward keeps the activations, backward adds the gradients, Adam's first
        step adds its state, each within 2% + 16 KiB of training_memory's prediction."""
        rng = np.random.default_rng(31)
        model = build(rng)
        x = rng.standard_normal(x_shape).astype(np.float32)
        predicted = training_memory(model, x, "adam")
        gc.collect()
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            out = model(x)
            activations = tracemalloc.get_traced_memory()[0] - start
            (out * out).mean().backward()
            del out
            gc.collect()
            gradients = tracemalloc.get_traced_memory()[0] - start
            optimizer = Adam(model.parameters())
            before_step = tracemalloc.get_traced_memory()[0]
            optimizer.step()
            state = tracemalloc.get_traced_memory()[0] - before_step
        finally:
            if started_here:
                tracemalloc.stop()
        for part, measured in (("activations", activations), ("gradients", gradients), ("optimizer_state", state)):
            expected = getattr(predicted, part)
            assert abs(measured - expected) <= 0.02 * expected + 16 * 1024, (
                f"{part}: predicted {expected:,} bytes, tracemalloc measured {measured:,}")


class FakeClock:
    """A clock that moves only when told: clock() reads it, advance(seconds) moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def scripted(clock: FakeClock, durations: list):
    """A function whose i-th call takes durations[i] seconds of the fake clock; `.calls` counts calls."""

    def fn():
        clock.advance(durations[fn.calls])
        fn.calls += 1

    fn.calls = 0
    return fn


@pytest.mark.checkpoint("latency")
class TestLatency:
    def test_each_repeat_is_timed_on_its_own_after_the_warm_up(self):
        """Warm-up calls of 100 s, then calls of 3, 1, 4, 1, 5 s: the samples are exactly (3, 1, 4, 1, 5), in order.

        Hint: the warm-up calls pay for caches, allocations and imports; they run but are not timed.
        And each repeat is its own sample: timing all repeats together and dividing loses the spread.
        """
        clock = FakeClock()
        fn = scripted(clock, [100, 100, 3, 1, 4, 1, 5])
        latency = measure_latency(fn, warmup=2, repeats=5, clock=clock)
        assert isinstance(latency, Latency), f"measure_latency should return a Latency, got {latency!r}"
        assert fn.calls == 7, f"2 warm-up calls and 5 timed calls: fn was called {fn.calls} times"
        assert tuple(latency.samples) == (3, 1, 4, 1, 5), f"samples: expected (3, 1, 4, 1, 5), got {latency.samples}"
        assert isinstance(latency.samples, tuple), \
            f"Latency.samples should be a tuple (a measurement does not change), got {type(latency.samples).__name__}"
        assert latency.median == 3 and latency.best == 1, f"median {latency.median} (expected 3), best {latency.best}"

    def test_no_warm_up(self):
        """warmup=0, repeats=1: one call, one sample."""
        clock = FakeClock()
        latency = measure_latency(scripted(clock, [7]), warmup=0, repeats=1, clock=clock)
        assert tuple(latency.samples) == (7,), f"got {latency.samples}"
        assert latency.median == 7 and latency.percentile(99) == 7, f"median {latency.median}"

    def test_the_median_of_an_even_count_is_the_mean_of_the_two_middle_samples(self):
        """Samples 4, 1, 3, 2: median 2.5; samples 4, 1, 3: median 3."""
        assert Latency((4.0, 1.0, 3.0, 2.0)).median == 2.5, f"got {Latency((4.0, 1.0, 3.0, 2.0)).median}"
        assert Latency((4.0, 1.0, 3.0)).median == 3.0, f"got {Latency((4.0, 1.0, 3.0)).median}"

    @pytest.mark.parametrize("p, expected", [(50, 10), (90, 18), (95, 19), (99, 20), (100, 20), (0, 1), (1, 1),
                                             (5, 1), (6, 2), (12.5, 3), (75, 15)])
    def test_nearest_rank_percentiles(self, p, expected):
        """Samples 1..20 shuffled: the p-th percentile is the ceil(p * 20 / 100)-th smallest (the smallest for p = 0).

        Hint: nearest rank counts from 1: the 95th percentile of 20 samples is the 19th smallest,
        sorted[18], the smallest value with at least 95% of the samples at or below it.
        """
        samples = tuple(float(s) for s in np.random.default_rng(32).permutation(np.arange(1, 21)))
        got = Latency(samples).percentile(p)
        assert got == expected, f"percentile({p}) of 1..20: expected {expected}, got {got}"

    def test_bad_arguments_are_errors_naming_them(self):
        """warmup=-1 or 2.5, repeats=0 or 2.5, and a percentile of 101 or -1 are ValueErrors naming what was wrong."""
        with pytest.raises(ValueError, match="warmup"):
            measure_latency(lambda: None, warmup=-1, repeats=3)
        with pytest.raises(ValueError, match="warmup"):
            measure_latency(lambda: None, warmup=2.5, repeats=3)
        with pytest.raises(ValueError, match="repeats"):
            measure_latency(lambda: None, warmup=1, repeats=0)
        with pytest.raises(ValueError, match="repeats"):
            measure_latency(lambda: None, warmup=1, repeats=2.5)
        for p in (101, -1):
            with pytest.raises(ValueError, match="101|-1"):
                Latency((1.0, 2.0)).percentile(p)

    def test_the_real_clock(self):
        """With the default clock (time.perf_counter): 5 positive samples of a real computation."""
        latency = measure_latency(lambda: np.ones(10_000).sum(), warmup=1, repeats=5)
        assert len(latency.samples) == 5 and all(s > 0 for s in latency.samples), f"samples: {latency.samples}"
        assert latency.best <= latency.median <= latency.percentile(100), str(latency)
        assert str(latency).startswith("median") and "p99" in str(latency), f"the printout: {latency}"


class Tick(Module):
    """A layer that takes `seconds` of the fake clock per call and returns its input."""

    def __init__(self, clock: FakeClock, seconds: float):
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def forward(self, x):
        self.clock.advance(self.seconds)
        return x


class Wrapper(Module):
    """A container that spends `seconds` of its own, then calls its child."""

    def __init__(self, clock: FakeClock, seconds: float, child):
        super().__init__()
        self.clock, self.seconds, self.child = clock, seconds, child

    def forward(self, x):
        self.clock.advance(self.seconds)
        return self.child(x)


class Jumpy(Module):
    """A layer whose calls take 1, 1, 10, 1, 1, 10, ... seconds of the fake clock: any 3 calls in a row take 1, 1 and 10."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.clock, self.calls = clock, 0

    def forward(self, x):
        self.clock.advance(10 if self.calls % 3 == 2 else 1)
        self.calls += 1
        return x


def ticking_model(clock: FakeClock) -> Module:
    """Wrapper(2 s) around Sequential(Tick 3 s, Linear(4, 4), Tick 7 s, Sequential(Tick 1 s))."""
    inner = Sequential(Tick(clock, 3), Linear(4, 4, rng=np.random.default_rng(33)), Tick(clock, 7),
                       Sequential(Tick(clock, 1)))
    return Wrapper(clock, 2, inner)


@pytest.mark.checkpoint("profile")
class TestProfile:
    def test_self_times_add_up_to_the_total_largest_first(self):
        """Fake clock: self times 7, 3, 2 (the Wrapper's own), 1, then the 0 s calls in the order they finished; 13 s in all.

        Hint: a call's self time is its total minus the totals of the child-module calls made inside
        it. Those finish before it does: they are the calls recorded since, inside this module.
        """
        clock = FakeClock()
        profile = profile_model(ticking_model(clock), np.ones((5, 4), dtype=np.float32), warmup=1, repeats=3,
                                clock=clock)
        assert isinstance(profile, Profile), f"profile_model should return a Profile, got {profile!r}"
        names = [layer.name for layer in profile.layers]
        expected = ["child.2", "child.0", "(model)", "child.3.0", "child.1", "child.3", "child"]
        assert names == expected, f"calls by self time, largest first: expected {expected}, got {names}"
        assert [layer.seconds for layer in profile.layers] == [7, 3, 2, 1, 0, 0, 0], \
            f"self times: expected [7, 3, 2, 1, 0, 0, 0], got {[layer.seconds for layer in profile.layers]}"
        assert [layer.total_seconds for layer in profile.layers] == [7, 3, 13, 1, 0, 1, 11], \
            f"totals: expected [7, 3, 13, 1, 0, 1, 11], got {[layer.total_seconds for layer in profile.layers]}"
        assert profile.total_seconds == 13, f"the whole model takes 2 + 3 + 7 + 1 = 13 s, got {profile.total_seconds}"

    def test_a_calls_time_is_the_median_of_its_runs(self):
        """A layer taking 1, 1 and 10 s in turn, timed 3 times: 1 s (the median; the mean would say 4), the model too."""
        clock = FakeClock()
        profile = profile_model(Sequential(Jumpy(clock)), np.ones((2, 2)), warmup=1, repeats=3, clock=clock)
        jumpy = next(layer for layer in profile.layers if layer.name == "0")
        assert jumpy.seconds == 1 and profile.total_seconds == 1, \
            f"median of (1, 1, 10) s: expected 1 for the layer and the model, got {jumpy.seconds} " \
            f"and {profile.total_seconds}"

    def test_a_self_time_is_never_negative(self):
        """Noise can make the children's times exceed the parent's: a layer timed at 10 s inside a model timed at 1 s gives the model a self time of 0, not -9.

        Hint: the times are medians of separate runs, so children may add up to more than their parent:
        clamp the self time with max(total - children, 0).
        """
        clock = FakeClock()
        jumpy = Jumpy(clock)
        jumpy.calls = 1  # the recording pass takes 1 s, the layer's timed call 10 s, the model's timed call 1 s
        profile = profile_model(Sequential(jumpy), np.ones((2, 2)), warmup=0, repeats=1, clock=clock)
        rows = {layer.name: layer for layer in profile.layers}
        assert rows["0"].total_seconds == 10 and rows["(model)"].total_seconds == 1, \
            f"the test's premise: totals 10 s (layer) and 1 s (model), got {rows['0'].total_seconds} and " \
            f"{rows['(model)'].total_seconds}"
        assert rows["(model)"].seconds == 0, f"the model's self time: expected 0 (clamped), got {rows['(model)'].seconds}"

    def test_a_layer_called_twice_in_a_row_is_not_its_own_child(self):
        """Sequential(tick, tick) with one Tick of 3 s: two rows of 3 s each and the Sequential's 0 s; the second call does not claim the first.

        Hint: a call's children are the calls of the modules INSIDE it, itself excluded: the previous call of the
        same module finished before this one started, so it is a sibling, not a child.
        """
        clock = FakeClock()
        tick = Tick(clock, 3)
        profile = profile_model(Sequential(tick, tick), np.ones((2, 2)), warmup=0, repeats=1, clock=clock)
        got = sorted((layer.name, layer.seconds) for layer in profile.layers)
        assert got == [("(model)", 0), ("0", 3), ("0", 3)], \
            f"(name, self seconds) of each call: expected [('(model)', 0), ('0', 3), ('0', 3)], got {got}"

    def test_each_calls_type_shape_flops_and_bytes(self):
        """The Linear(4, 4) on (5, 4): 2*5*4*4 FLOPs, 80 parameter bytes, 80 output bytes; a container: its own, 0."""
        clock = FakeClock()
        profile = profile_model(ticking_model(clock), np.ones((5, 4), dtype=np.float32), warmup=0, repeats=1,
                                clock=clock)
        rows = {layer.name: layer for layer in profile.layers}
        expected = LayerProfile("child.1", "Linear", (5, 4), 160, 80, 80, 0, 0)
        assert rows["child.1"] == expected, f"the Linear's row: expected {expected}, got {rows['child.1']}"
        expected = LayerProfile("child", "Sequential", (5, 4), 0, 0, 80, 0, 11)
        assert rows["child"] == expected, \
            f"the Sequential's row (its OWN FLOPs and parameter bytes, not its layers'): expected {expected}, " \
            f"got {rows['child']}"
        assert rows["child.0"].kind == "Tick" and rows["child.0"].flops is None, \
            f"a Tick has no FLOP rule (flops None): got {rows['child.0']}"
        assert profile.total_flops is None, "with unknown modules the total FLOPs are unknown (None), not a guess"

    def test_rules_reach_the_profile(self):
        """With rules for Wrapper (0) and Tick (5 each): the total is 3 * 5 + 160 FLOPs."""
        clock = FakeClock()
        rules = {Tick: lambda module, inputs, output: 5, Wrapper: lambda module, inputs, output: 0}
        profile = profile_model(ticking_model(clock), np.ones((5, 4), dtype=np.float32), warmup=0, repeats=1,
                                clock=clock, rules=rules)
        assert [layer.flops for layer in profile.layers] == [5, 5, 0, 5, 160, 0, 0], \
            f"FLOPs per call: got {[layer.flops for layer in profile.layers]}"
        assert profile.total_flops == 175, f"total FLOPs: expected 175, got {profile.total_flops}"

    def test_a_model_that_is_one_layer_and_a_layer_called_twice(self):
        """A Linear alone is one row, '(model)'; Sequential(layer, ReLU(), layer) has a row per call of the layer."""
        layer = Linear(3, 3, rng=np.random.default_rng(34))
        profile = profile_model(layer, np.ones((2, 3), dtype=np.float32), warmup=0, repeats=2)
        assert [row.name for row in profile.layers] == ["(model)"], f"got {[row.name for row in profile.layers]}"
        profile = profile_model(Sequential(layer, ReLU(), layer), np.ones((2, 3), dtype=np.float32), warmup=0,
                                repeats=2)
        assert sorted(row.name for row in profile.layers) == ["(model)", "0", "0"], \
            f"one row per call of the shared layer: got {[row.name for row in profile.layers]}"
        assert profile.total_flops == 2 * (2 * 2 * 3 * 3), f"total FLOPs: got {profile.total_flops}"

    def test_profiling_leaves_the_model_as_it_was(self):
        """profile_model runs in eval mode without a graph, and leaves no hook and every mode as it was."""
        rng = np.random.default_rng(35)
        model = Sequential(Linear(4, 8, rng=rng), Dropout(0.5), Linear(8, 2, rng=rng))
        seen = []
        model[2].register_forward_hook(lambda module, inputs, output: seen.append((module.training, output.requires_grad)))
        profile_model(model, np.ones((3, 4), dtype=np.float32), warmup=0, repeats=1)
        assert seen and set(seen) == {(False, False)}, \
            f"while profiling: training=False and no graph expected, saw {set(seen)}"
        assert hooks_left(model) == ["2"] and all(m.training for m in model.modules()), \
            f"after profiling: hooks on {hooks_left(model)} (only the user's on '2' should stay), " \
            f"modes {[m.training for m in model.modules()]}"

    def test_a_real_model(self):
        """An MLP on the real clock: rows by self time, largest first, totals at least the self times; exact FLOPs."""
        rng = np.random.default_rng(36)
        model = mlp(rng, (256, 512, 10))
        profile = profile_model(model, rng.standard_normal((64, 256)).astype(np.float32), warmup=1, repeats=3)
        seconds = [layer.seconds for layer in profile.layers]
        assert seconds == sorted(seconds, reverse=True) and all(s >= 0 for s in seconds), f"self times: {seconds}"
        assert all(layer.total_seconds >= layer.seconds for layer in profile.layers), "a total includes the self time"
        assert sorted(layer.name for layer in profile.layers) == ["(model)", "0", "2"], \
            f"rows: {[layer.name for layer in profile.layers]}"
        assert profile.total_flops == 2 * 64 * (256 * 512 + 512 * 10), f"total FLOPs: got {profile.total_flops}"

    def test_the_table(self):
        """format_profile: a header, the calls in order with FLOPs and bytes as 1,234 ('?' for unknown), self and total
        ms and the share of the total ('-' when the total is 0), then '(total)'; numbers right-aligned; str(profile) is the same table."""
        clock = FakeClock()
        profile = profile_model(ticking_model(clock), np.ones((500, 4), dtype=np.float32), warmup=0, repeats=1,
                                clock=clock)
        table = format_profile(profile)
        assert isinstance(table, str) and str(profile) == table, "format_profile returns the text str(profile) shows"
        lines = table.splitlines()
        assert len(lines) == 1 + 7 + 1, f"expected a header, 7 calls and the total: got\n{table}"
        assert "FLOPs" in lines[0] and "ms" in lines[0], f"the header names the columns: {lines[0]!r}"
        order = ["child.2", "child.0", "(model)", "child.3.0", "child.1", "child.3", "child"]
        for line, name in zip(lines[1:8], order):
            assert line.startswith(name), f"call lines in the profile's order; expected {name!r} first on: {line!r}"
        for cell in ("Linear", "(500, 4)", "16,000", "80", "8,000", "0.000"):
            assert cell in lines[5], f"the Linear's line should show {cell!r}: {lines[5]!r}"
        assert "?" in lines[1] and "7000.000" in lines[1] and "53.8" in lines[1], \
            f"the 7 s Tick: FLOPs '?', 7000.000 ms, 53.8 % of 13 s: {lines[1]!r}"
        assert "Wrapper" in lines[3] and "2000.000" in lines[3] and "13000.000" in lines[3] and "15.4" in lines[3], \
            f"the Wrapper: 2 s of its own (15.4%) in 13 s: {lines[3]!r}"
        assert lines[8].startswith("(total)") and "13000.000" in lines[8] and "100.0" in lines[8] \
            and "?" in lines[8], f"the total line, FLOPs unknown: {lines[8]!r}"
        flops_end = lines[0].index("FLOPs") + len("FLOPs")
        assert lines[5].index("16,000") + len("16,000") == flops_end and lines[1].index("?") + 1 == flops_end, \
            f"numbers are right-aligned under their header, so digits line up: the FLOPs column ends at {flops_end} " \
            f"in the header\n{lines[0]}\n{lines[1]}\n{lines[5]}"
        quiet = profile_model(Linear(2, 2, rng=np.random.default_rng(37)), np.ones((1, 2), dtype=np.float32), warmup=0,
                              repeats=1, clock=FakeClock())  # a clock that never moves: the total is 0 s
        assert quiet.total_seconds == 0, f"the test's premise: a total of 0 s, got {quiet.total_seconds}"
        try:
            format_profile(quiet)
        except ZeroDivisionError:
            raise AssertionError("format_profile of a profile whose total is 0 s divided by it: show the share as '-'") \
                from None


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_matmul_and_elementwise_costs(self):
        """(3, 5) @ (5, 7): 210 FLOPs and (15 + 35 + 21) * 4 bytes; a + b on 1,000 floats: 1,000 FLOPs, 12,000 bytes."""
        assert matmul_cost(3, 5, 7) == (210, 284), f"matmul_cost(3, 5, 7): got {matmul_cost(3, 5, 7)}"
        assert matmul_cost(3, 5, 7, itemsize=8) == (210, 568), f"float64: got {matmul_cost(3, 5, 7, itemsize=8)}"
        assert elementwise_cost(1000) == (1000, 12_000), f"elementwise_cost(1000): got {elementwise_cost(1000)}"
        assert elementwise_cost(1000, inputs=1, itemsize=8) == (1000, 16_000), \
            f"relu of 1,000 float64: got {elementwise_cost(1000, inputs=1, itemsize=8)}"

    def test_arithmetic_intensity_and_the_roofline(self):
        """A 4096^3 float32 matmul does 682.7 FLOPs a byte, an add 1/12; the roofline is min(peak, intensity * bandwidth)."""
        assert math.isclose(arithmetic_intensity(*matmul_cost(4096, 4096, 4096)), 4096 / 6), \
            f"intensity of a 4096^3 matmul: got {arithmetic_intensity(*matmul_cost(4096, 4096, 4096))}"
        assert math.isclose(arithmetic_intensity(*elementwise_cost(10**6)), 1 / 12), "intensity of an add"
        with pytest.raises(ValueError):
            arithmetic_intensity(10, 0)
        with pytest.raises(ValueError, match="-4"):
            arithmetic_intensity(10, -4)  # no op moves a negative number of bytes
        peak, bandwidth = 100e9, 20e9  # ridge point: 5 FLOPs a byte
        assert math.isclose(roofline(1 / 12, peak, bandwidth), 20e9 / 12), "an add is memory-bound: intensity x bandwidth"
        assert roofline(682.7, peak, bandwidth) == peak, "a big matmul is compute-bound: the peak"
        assert math.isclose(roofline(5, peak, bandwidth), peak), "at the ridge point both limits meet"

    @pytest.mark.budget
    def test_a_matmul_reaches_far_more_flops_per_second_than_an_add(self):
        """Measured: a 256x256 matmul runs at least 8x the GFLOP/s of an add of 4M floats (the reference machine: ~25x).

        Its intensity is 43 FLOPs a byte, the add's 1/12: the add waits for memory, the matmul for arithmetic.
        """
        rng = np.random.default_rng(37)
        a, b, c = (rng.standard_normal((256, 256), dtype=np.float32) for _ in range(3))
        x, y, z = (np.full(1 << 22, 0.5, dtype=np.float32) for _ in range(3))  # 16 MiB each: far beyond the caches
        matmul_flops, _ = matmul_cost(256, 256, 256)
        add_flops, _ = elementwise_cost(1 << 22)
        budget = (matmul_flops / add_flops) / 8  # time ratio at which the matmul's FLOP rate is 8x the add's
        assert_time_ratio(lambda: np.matmul(a, b, out=c), lambda: np.add(x, y, out=z), budget,
                          what=f"a 256x256 matmul ({matmul_flops:,} FLOPs) against an add of 4,194,304 floats "
                               f"({add_flops:,} FLOPs): at most {budget:.2f}x its time is at least 8x its GFLOP/s",
                          advice="check matmul_cost (2mkn) and elementwise_cost (one FLOP a result)")

    @pytest.mark.budget
    def test_count_flops_costs_no_more_memory_than_a_forward_pass(self):
        """count_flops on 8 Linear(256, 256) + ReLU at batch 512 peaks at most 2x one forward without a graph.

        The reference: 1.0x. Recording the graph, or keeping every output in a list, holds all 16 activations.
        """
        rng = np.random.default_rng(38)
        model = mlp(rng, (256,) * 9)

        def plain_forward():
            with no_grad():
                model(np.zeros((512, 256), dtype=np.float32))

        plain, _ = peak_bytes(plain_forward)
        counting, _ = peak_bytes(lambda: count_flops(model, (512, 256)))
        assert counting <= 2 * plain, (
            f"count_flops peaked at {counting / 2**20:.2f} MiB, {counting / plain:.1f}x a forward pass without a graph "
            f"({plain / 2**20:.2f} MiB); the budget is 2x. Keep FLOPs, not outputs, and record no graph (no_grad)")

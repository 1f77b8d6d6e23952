"""Kata 04 · Layers: the ordered suite. Run it with `python -m pytest katas/04_layers`."""

import numbers

import numpy as np
import pytest

from harness.budgets import assert_peak_bytes, assert_time_ratio
from harness.checks import assert_close, assert_made_by_op, assert_shape, assert_tensor
from tinytorch.activations import ReLU, Tanh
from tinytorch.layers import Dropout, Linear, Module, Parameter, Sequential, kaiming_uniform
from tinytorch.tensor import Tensor


class Pair(Module):
    """A module with two parameters, assigned weight first."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.ones((2, 3)))
        self.bias = Parameter(np.zeros(3))

    def forward(self, x):
        return x @ self.weight + self.bias


class Encoder(Module):
    """An own parameter, then a child module: scale, inner.weight, inner.bias."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter([2.0])
        self.inner = Pair()
        self.note = "not state"

    def forward(self, x):
        return self.inner(x) * self.scale


class Stack(Module):
    """Two Encoders: the parameter names go two levels deep."""

    def __init__(self):
        super().__init__()
        self.first = Encoder()
        self.second = Encoder()


def _mlp(rng, dropout=0.0):
    return Sequential(Linear(4, 8, rng=rng), ReLU(), Dropout(dropout), Linear(8, 3, rng=rng))


# ---------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("parameter")
class TestParameter:
    def test_parameter_is_a_tensor_that_requires_grad(self):
        """Parameter([1, 2]) is a Tensor with requires_grad=True, no grad yet and no op (a leaf)."""
        p = Parameter([1.0, 2.0])
        assert isinstance(p, Tensor), "a Parameter must be a Tensor, so every op accepts it"
        assert p.requires_grad is True, "a Parameter always requires grad: the model learns it"
        assert p.grad is None and p.op is None, "a new Parameter is a leaf with no gradient yet"
        assert_close(p, np.array([1.0, 2.0]), "Parameter([1, 2]) values")
        assert repr(p).startswith("Parameter("), f"repr should say Parameter, got {repr(p)}"

    def test_float32_by_default_dtype_when_given_and_from_a_tensor(self):
        """Parameter(float64 data) stores float32; dtype=np.float64 is kept; Parameter(Tensor) takes its values."""
        assert Parameter(np.zeros(3)).dtype == np.float32, "parameters are float32 unless told otherwise"
        wide = Parameter(np.zeros(3), dtype=np.float64)
        assert wide.dtype == np.float64, "dtype=np.float64 was not kept"
        assert wide.requires_grad is True, "a float64 Parameter must require grad too"
        p = Parameter(Tensor([[1.0, 2.0], [3.0, 4.0]]))
        assert_shape(p, (2, 2), "Parameter(Tensor of shape (2, 2))")
        assert_close(p, np.array([[1.0, 2.0], [3.0, 4.0]]), "Parameter(Tensor) values")

    def test_backward_fills_the_parameter_grad(self):
        """For p = [1, -2, 3], backward of sum(p * p) leaves p.grad = 2p."""
        p = Parameter([1.0, -2.0, 3.0])
        (p * p).sum().backward()
        assert p.grad is not None, "backward() never reached the Parameter"
        assert_close(p.grad, np.array([2.0, -4.0, 6.0]), "grad of sum(p * p)")


@pytest.mark.checkpoint("module")
class TestModule:
    def test_assigning_parameters_registers_them_in_order(self):
        """self.weight then self.bias: named_parameters() is [('weight', ...), ('bias', ...)], not alphabetical."""
        pair = Pair()
        names = [name for name, _ in pair.named_parameters()]
        assert names == ["weight", "bias"], f"expected the assignment order ['weight', 'bias'], got {names}"
        assert pair.named_parameters()[0][1] is pair.weight, "named_parameters() must hold the Parameter objects themselves"

    def test_plain_attributes_are_not_registered(self):
        """Numbers, strings, arrays and plain Tensors (even with requires_grad) are not parameters."""

        class Mixed(Module):
            def __init__(self):
                super().__init__()
                self.size = 3
                self.table = np.ones(3)
                self.constant = Tensor([1.0], requires_grad=True)
                self.weight = Parameter([1.0])

        mixed = Mixed()
        names = [name for name, _ in mixed.named_parameters()]
        assert names == ["weight"], f"only Parameters are registered; got {names}"
        assert mixed.size == 3 and mixed.children() == [], "plain attributes stay plain attributes"

    def test_child_parameters_have_dotted_names_depth_first(self):
        """Own parameters first, then each child's, depth-first: scale, inner.weight, inner.bias."""
        names = [name for name, _ in Encoder().named_parameters()]
        assert names == ["scale", "inner.weight", "inner.bias"], f"got {names}"
        names = [name for name, _ in Stack().named_parameters()]
        expected = ["first.scale", "first.inner.weight", "first.inner.bias",
                    "second.scale", "second.inner.weight", "second.inner.bias"]
        assert names == expected, f"expected {expected}, got {names}"

    def test_parameters_is_the_same_list_every_time(self):
        """parameters() lists every nested Parameter, in the order of named_parameters(), on every call."""
        stack = Stack()
        params = stack.parameters()
        assert len(params) == 6, f"expected 6 parameters (3 per Encoder), got {len(params)}"
        assert all(a is b for a, b in zip(params, stack.parameters())), "two calls gave different orders"
        assert all(a is b for a, (_, b) in zip(params, stack.named_parameters())), \
            "parameters() must follow the order of named_parameters()"

    def test_reassigning_keeps_position_and_none_unregisters(self):
        """Replacing self.weight keeps its place in the order; setting self.bias = None removes it."""
        pair = Pair()
        new_weight = Parameter(np.zeros((2, 3)))
        pair.weight = new_weight
        assert [n for n, _ in pair.named_parameters()] == ["weight", "bias"], "a replaced parameter must keep its place"
        assert pair.parameters()[0] is new_weight, "the replacement Parameter must be the one listed"
        pair.bias = None
        assert [n for n, _ in pair.named_parameters()] == ["weight"], "self.bias = None must unregister bias"
        assert pair.bias is None

    def test_replacing_a_child_by_a_parameter_or_a_value_drops_its_parameters(self):
        """encoder.inner = Parameter(...) or = None: the old child and its parameters disappear from the module."""
        encoder = Encoder()
        encoder.inner = Parameter(np.ones(4))
        names = [name for name, _ in encoder.named_parameters()]
        assert names == ["scale", "inner"], (
            f"after encoder.inner = Parameter(...), expected ['scale', 'inner'], got {names}: "
            "a name that becomes a Parameter must leave the registry of child modules")
        assert encoder.children() == [], "the replaced child is still listed by children()"
        assert encoder.num_parameters() == 5, f"scale (1) + the new inner (4): expected 5, got {encoder.num_parameters()}"
        other = Encoder()
        other.inner = None
        names = [name for name, _ in other.named_parameters()]
        assert names == ["scale"] and other.children() == [], (
            f"after encoder.inner = None, expected ['scale'] and no children; got {names} and "
            f"{len(other.children())} child(ren)")

    def test_replacing_a_parameter_by_a_module_or_a_plain_tensor(self):
        """pair.weight = Pair(): weight leaves the parameters and its child's come in; a plain Tensor unregisters it."""
        pair = Pair()
        pair.weight = Pair()
        names = [name for name, _ in pair.named_parameters()]
        assert names == ["bias", "weight.weight", "weight.bias"], (
            f"after pair.weight = Pair(), expected own ['bias'] then the child's ['weight.weight', 'weight.bias']; "
            f"got {names}: a name that becomes a Module must leave the registry of parameters")
        other = Pair()
        other.weight = Tensor(np.ones((2, 3)), requires_grad=True)
        names = [name for name, _ in other.named_parameters()]
        assert names == ["bias"], f"after pair.weight = a plain Tensor, only 'bias' is a parameter; got {names}"

    def test_shared_parameter_listed_once(self):
        """A Parameter used by two children (weight tying) appears once in parameters() and num_parameters()."""
        model = Stack()
        model.second.inner.weight = model.first.inner.weight
        params = model.parameters()
        assert len(params) == 5, f"the tied weight must be listed once: expected 5 parameters, got {len(params)}"
        assert model.num_parameters() == 1 + 6 + 3 + 1 + 3, f"got {model.num_parameters()}"
        assert model.parameter_bytes() == 4 * (1 + 6 + 3 + 1 + 3), (
            f"the tied weight's bytes must be counted once: expected {4 * 14}, got {model.parameter_bytes()}")

    def test_children_and_modules(self):
        """children() is the direct children; modules() is the module itself and every descendant, depth-first."""
        stack = Stack()
        assert stack.children() == [stack.first, stack.second], "children() must list first, second"
        expected = [stack, stack.first, stack.first.inner, stack.second, stack.second.inner]
        got = stack.modules()
        assert len(got) == len(expected) and all(a is b for a, b in zip(got, expected)), \
            f"modules() should be [Stack, Encoder, Pair, Encoder, Pair], got {[type(m).__name__ for m in got]}"
        names = [name for name, _ in stack.named_modules()]
        assert names == ["", "first", "first.inner", "second", "second.inner"], f"named_modules() names: {names}"
        names = [name for name, _ in stack.named_modules(prefix="net")]
        assert names == ["net", "net.first", "net.first.inner", "net.second", "net.second.inner"], \
            f"named_modules(prefix='net') names: {names}"

    def test_train_and_eval_are_recursive_and_return_self(self):
        """A new module is in training mode; eval() turns off every descendant, train() turns them back on."""
        stack = Stack()
        assert all(m.training for m in stack.modules()), "a new module starts in training mode"
        assert stack.eval() is stack, "eval() returns the module, so model = Model().eval() works"
        still = [name or "<root>" for name, m in stack.named_modules() if m.training]
        assert not still, f"after eval() these are still training: {still}"
        assert stack.train() is stack, "train() returns the module"
        assert all(m.training for m in stack.modules()), "train() must reach every descendant"
        stack.train(False)
        assert not stack.first.inner.training, "train(False) is the same as eval()"

    def test_zero_grad_clears_every_gradient(self):
        """After a backward, zero_grad() sets .grad to None on every parameter, nested ones too."""
        encoder = Encoder()
        encoder(Tensor([[1.0, 2.0]])).sum().backward()
        assert all(p.grad is not None for p in encoder.parameters()), "backward should reach every parameter"
        encoder.zero_grad()
        left = [name for name, p in encoder.named_parameters() if p.grad is not None]
        assert not left, f"zero_grad() left gradients on {left}"

    def test_num_parameters_and_parameter_bytes(self):
        """Encoder has 1 + 6 + 3 = 10 parameters (an int); in float32 they take 40 bytes."""
        encoder = Encoder()
        count, size = encoder.num_parameters(), encoder.parameter_bytes()
        for what, value in (("num_parameters()", count), ("parameter_bytes()", size)):
            assert isinstance(value, numbers.Integral) and not isinstance(value, bool), (
                f"{what} should be an integer, got {type(value).__name__} {value!r}")
        assert count == 10, f"expected 10 numbers, got {count}"
        assert size == 40, f"expected 40 bytes (4 per float32), got {size}"

    def test_parameter_bytes_counts_each_dtype(self):
        """A float64 Parameter takes 8 bytes per number: Encoder plus a float64 (5,) Parameter is 40 + 40 bytes."""
        encoder = Encoder()
        encoder.extra = Parameter(np.zeros(5), dtype=np.float64)
        assert encoder.num_parameters() == 15, f"expected 10 + 5 numbers, got {encoder.num_parameters()}"
        assert encoder.parameter_bytes() == 40 + 40, (
            f"expected 80 bytes (10 float32 numbers at 4, 5 float64 numbers at 8), got {encoder.parameter_bytes()}: "
            "add up each parameter's nbytes instead of assuming 4 bytes a number")


@pytest.mark.checkpoint("init")
class TestInit:
    def test_shape_dtype_and_bounds(self):
        """kaiming_uniform((256, 128), fan_in=256) is float32 and every value lies in [-sqrt(6/256), sqrt(6/256)]."""
        w = kaiming_uniform((256, 128), fan_in=256, rng=np.random.default_rng(0))
        assert isinstance(w, np.ndarray), f"expected a numpy array, got {type(w).__name__}"
        assert_shape(w, (256, 128), "kaiming_uniform((256, 128), fan_in=256)")
        assert w.dtype == np.float32, f"expected float32, got {w.dtype}"
        bound = np.sqrt(6 / 256)
        assert np.abs(w).max() <= bound, f"values must lie within +-{bound:.4f}; found {np.abs(w).max():.4f}"
        assert np.abs(w).max() > 0.95 * bound, \
            f"a uniform draw over +-{bound:.4f} should come close to the bound; the largest was {np.abs(w).max():.4f}"

    def test_fan_in_is_the_argument_not_the_shape(self):
        """kaiming_uniform((3, 1000), fan_in=12) draws within sqrt(6/12) = 0.707, whatever the shape says."""
        w = kaiming_uniform((3, 1000), fan_in=12, rng=np.random.default_rng(5))
        bound = np.sqrt(6 / 12)
        largest = float(np.abs(w).max())
        assert 0.95 * bound < largest <= bound, (
            f"with fan_in=12 the values reach about +-{bound:.4f}; the largest was {largest:.4f}. Use the fan_in "
            "argument (a convolution's fan_in is not its first dimension)")

    def test_std_matches_sqrt_2_over_fan_in(self):
        """For fan_in 1024 the weights' std is sqrt(2/1024) = 0.0442 (within 2%) and their mean is about 0."""
        w = kaiming_uniform((1024, 512), fan_in=1024, rng=np.random.default_rng(1))
        expected = np.sqrt(2 / 1024)
        assert abs(w.std() - expected) < 0.02 * expected, \
            f"std of the weights: expected sqrt(2 / fan_in) = {expected:.5f}, got {w.std():.5f}"
        assert abs(w.mean()) < 0.01 * expected, f"the weights should be centred on 0; their mean is {w.mean():.5f}"

    def test_std_scales_with_one_over_sqrt_fan_in(self):
        """Four times the fan_in gives half the std: std(fan_in=256) / std(fan_in=1024) is about 2."""
        rng = np.random.default_rng(2)
        narrow = kaiming_uniform((256, 512), fan_in=256, rng=rng).std()
        wide = kaiming_uniform((1024, 512), fan_in=1024, rng=rng).std()
        assert abs(narrow / wide - 2.0) < 0.05, \
            f"std(fan_in=256) / std(fan_in=1024) should be sqrt(1024/256) = 2; got {narrow:.5f} / {wide:.5f} = {narrow / wide:.3f}"

    def test_activations_keep_their_scale_through_20_relu_layers(self):
        """x -> relu(x @ W), 20 layers of width 256: the pre-activations' mean square stays within 8x of the first layer's."""
        rng = np.random.default_rng(3)
        x = rng.standard_normal((128, 256)).astype(np.float32)
        scales = []
        for _ in range(20):
            pre = x @ kaiming_uniform((256, 256), fan_in=256, rng=rng)  # (128, 256)
            scales.append(float(np.mean(pre ** 2)))
            x = np.maximum(pre, 0)
        ratio = scales[-1] / scales[0]
        # A per-layer gain of 1/2 (std 1/sqrt(fan_in)) would give 2**-19, about 2e-6, here.
        assert 1 / 8 < ratio < 8, (
            f"mean square of the pre-activations: {scales[0]:.3g} at layer 1, {scales[-1]:.3g} at layer 20 "
            f"(ratio {ratio:.3g}); with std sqrt(2/fan_in) it stays of order 1. Layer by layer: "
            + ", ".join(f"{s:.3g}" for s in scales[:6]) + ", ...")

    def test_rng_reproducible_and_global_rng_when_none(self):
        """The same seeded rng gives the same weights; with rng=None, np.random.seed(7) makes the draw repeatable."""
        a = kaiming_uniform((8, 4), fan_in=8, rng=np.random.default_rng(42))
        b = kaiming_uniform((8, 4), fan_in=8, rng=np.random.default_rng(42))
        assert_close(a, b, "two draws from default_rng(42)", rtol=0, atol=0)
        np.random.seed(7)
        first = kaiming_uniform((8, 4), fan_in=8)
        second = kaiming_uniform((8, 4), fan_in=8)
        np.random.seed(7)
        again = kaiming_uniform((8, 4), fan_in=8)
        assert not np.array_equal(first, second), "two draws in a row from the global RNG must differ"
        assert_close(again, first, "rng=None after np.random.seed(7), twice: use np.random", rtol=0, atol=0)


@pytest.mark.checkpoint("linear")
class TestLinear:
    def test_parameter_shapes_and_names(self):
        """Linear(3, 5) has weight (3, 5) and bias (5,), both Parameters, named 'weight' then 'bias'."""
        layer = Linear(3, 5)
        assert isinstance(layer.weight, Parameter) and isinstance(layer.bias, Parameter), \
            "weight and bias must be Parameters, so the Module registers them"
        assert_shape(layer.weight, (3, 5), "Linear(3, 5).weight: (in_features, out_features)")
        assert_shape(layer.bias, (5,), "Linear(3, 5).bias")
        assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
        assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32, "parameters are float32"

    def test_uses_kaiming_init_and_zero_bias(self):
        """Linear(1024, 256): weight std is sqrt(2 / in_features) = 0.0442 (within 3%); bias starts at 0."""
        layer = Linear(1024, 256, rng=np.random.default_rng(4))
        expected = np.sqrt(2 / 1024)
        got = float(layer.weight.data.std())
        assert abs(got - expected) < 0.03 * expected, \
            f"weight std: expected sqrt(2 / in_features) = {expected:.5f} (fan_in is in_features), got {got:.5f}"
        assert_close(layer.bias, np.zeros(256), "the bias starts at zero")

    def test_forward_is_x_at_weight_plus_bias(self):
        """Linear(4, 3)(x) equals x @ weight + bias, with a nonzero bias."""
        rng = np.random.default_rng(5)
        layer = Linear(4, 3, rng=rng)
        layer.bias.data[...] = [0.5, -1.0, 2.0]
        x = rng.standard_normal((6, 4)).astype(np.float32)
        out = assert_made_by_op(lambda: layer(Tensor(x)), "Linear(4, 3)(x)", op="add")
        assert_tensor(out, "Linear(4, 3)(x) of a float32 (6, 4) batch", shape=(6, 3), dtype=np.float32)
        assert_close(out, x @ layer.weight.data + layer.bias.data, "Linear(4, 3)(x)")

    def test_no_bias(self):
        """Linear(4, 3, bias=False) has bias None, one parameter, and computes x @ weight."""
        layer = Linear(4, 3, bias=False)
        assert layer.bias is None, "bias=False: self.bias should be None"
        assert [n for n, _ in layer.named_parameters()] == ["weight"]
        x = np.random.default_rng(6).standard_normal((2, 4)).astype(np.float32)
        out = assert_made_by_op(lambda: layer(Tensor(x)), "Linear(4, 3, bias=False)(x)", op="matmul")
        assert_close(out, x @ layer.weight.data, "Linear(4, 3, bias=False)(x)")

    def test_leading_axes_and_single_sample(self):
        """Inputs (2, 7, 4) give (2, 7, 3); a single sample (4,) gives (3,)."""
        layer = Linear(4, 3)
        x = np.random.default_rng(7).standard_normal((2, 7, 4)).astype(np.float32)
        out = layer(Tensor(x))
        assert_shape(out, (2, 7, 3), "Linear(4, 3) on (batch, time, 4)")
        assert_close(out, x @ layer.weight.data + layer.bias.data, "Linear(4, 3) on (2, 7, 4)")
        single = layer(Tensor(x[0, 0]))
        assert_shape(single, (3,), "Linear(4, 3) on one sample of shape (4,)")
        assert_close(single, x[0, 0] @ layer.weight.data + layer.bias.data, "Linear(4, 3) on one sample")

    def test_wrong_input_width_is_a_clear_error(self):
        """Linear(8, 2) on shape (8, 5) raises ValueError naming in_features, 8 and the shape (8, 5)."""
        layer = Linear(8, 2)
        with pytest.raises(ValueError) as error:
            layer(Tensor(np.zeros((8, 5))))  # 8 rows: only the last dimension is compared with in_features
        message = str(error.value)
        assert "in_features" in message and "8" in message and "(8, 5)" in message, (
            "the message should say that in_features is 8 and name the shape received, (8, 5), so the learner "
            f"knows which layer and which input; it was: {message}")
        with pytest.raises(ValueError, match="in_features"):
            layer(Tensor(3.0))  # a 0-d input has no last dimension at all

    def test_backward_gives_the_matmul_gradients(self):
        """For loss = sum(layer(x) * g): weight.grad = x^T g, bias.grad = sum of g over the batch, x.grad = g W^T."""
        rng = np.random.default_rng(8)
        layer = Linear(4, 3, rng=rng)
        x = Tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
        g = rng.standard_normal((5, 3)).astype(np.float32)
        (layer(x) * Tensor(g)).sum().backward()
        assert layer.weight.grad is not None and layer.bias.grad is not None, "backward never reached the parameters"
        assert_close(layer.weight.grad, x.data.T @ g, "weight.grad = x^T g", rtol=1e-4)
        assert_close(layer.bias.grad, g.sum(axis=0), "bias.grad = g summed over the batch", rtol=1e-4)
        assert_close(x.grad, g @ layer.weight.data.T, "x.grad = g W^T", rtol=1e-4)

    def test_backward_through_leading_axes_and_a_single_sample(self):
        """On a (2, 5, 4) input bias.grad sums g over both leading axes; on one sample (4,) weight.grad is outer(x, g)."""
        rng = np.random.default_rng(35)
        layer = Linear(4, 3, rng=rng)
        x = rng.standard_normal((2, 5, 4)).astype(np.float32)
        g = rng.standard_normal((2, 5, 3)).astype(np.float32)
        layer(Tensor(x)).backward(g)
        assert_close(layer.bias.grad, g.sum(axis=(0, 1)), "bias.grad for a (2, 5, 4) input", rtol=1e-4)
        assert_close(layer.weight.grad, x.reshape(10, 4).T @ g.reshape(10, 3), "weight.grad for a (2, 5, 4) input",
                     rtol=1e-4)
        layer.zero_grad()
        sample, g1 = x[0, 0], g[0, 0]
        layer(Tensor(sample)).backward(g1)
        assert_close(layer.weight.grad, np.outer(sample, g1), "weight.grad for one sample of shape (4,)", rtol=1e-4)
        assert_close(layer.bias.grad, g1, "bias.grad for one sample of shape (4,)", rtol=1e-4)

    def test_rng_makes_layers_reproducible(self):
        """Linear(5, 4, rng=default_rng(9)) twice gives the same weight; without rng the global seed decides."""
        a = Linear(5, 4, rng=np.random.default_rng(9))
        b = Linear(5, 4, rng=np.random.default_rng(9))
        assert_close(a.weight, b.weight, "two layers from default_rng(9)", rtol=0, atol=0)
        np.random.seed(11)
        c = Linear(5, 4)
        np.random.seed(11)
        d = Linear(5, 4)
        assert_close(c.weight, d.weight, "two layers after np.random.seed(11)", rtol=0, atol=0)


@pytest.mark.checkpoint("sequential")
class TestSequential:
    def test_runs_layers_in_order(self):
        """Sequential(Linear, ReLU(), Linear)(x) equals applying the three by hand."""
        rng = np.random.default_rng(10)
        first, second = Linear(4, 8, rng=rng), Linear(8, 3, rng=rng)
        first.bias.data[...] = rng.standard_normal(8)
        model = Sequential(first, ReLU(), second)
        x = rng.standard_normal((5, 4)).astype(np.float32)
        hidden = np.maximum(x @ first.weight.data + first.bias.data, 0)
        assert_close(model(Tensor(x)), hidden @ second.weight.data + second.bias.data, "Sequential(Linear, ReLU, Linear)(x)",
                     rtol=1e-4)

    def test_registers_modules_by_position(self):
        """Sequential(Linear, ReLU(), Linear): parameters are named 0.weight, 0.bias, 2.weight, 2.bias."""
        model = Sequential(Linear(4, 8), ReLU(), Linear(8, 3))
        names = [name for name, _ in model.named_parameters()]
        assert names == ["0.weight", "0.bias", "2.weight", "2.bias"], \
            f"layers are named by their position (the ReLU at 1 has no parameters); got {names}"
        assert len(model.children()) == 2, "only the two Linear layers are Modules"

    def test_indexing_slicing_and_len(self):
        """model[0] is the first layer, model[-1] the last, len(model) counts every layer, model[:2] is a Sequential."""
        relu = ReLU()
        first, last = Linear(2, 2), Linear(2, 1)
        model = Sequential(first, relu, last)
        assert len(model) == 3, f"len: expected 3 layers, got {len(model)}"
        assert model[0] is first and model[1] is relu and model[-1] is last, "model[i] must return the layer itself"
        head = model[:2]
        assert isinstance(head, Sequential) and len(head) == 2 and head[0] is first, "model[:2] is a Sequential of two layers"

    def test_accepts_plain_callables_and_rejects_the_rest(self):
        """Plain functions run as layers; a non-callable (a list, or 'relu' third) raises TypeError naming it."""
        model = Sequential(lambda t: t * 2.0, Tanh())
        assert_close(model(Tensor([0.5])), np.tanh([1.0]), "Sequential(double, Tanh())")
        with pytest.raises(TypeError):
            Sequential([Linear(2, 2), ReLU()])
        with pytest.raises(TypeError) as error:
            Sequential(Linear(2, 2), ReLU(), "relu")
        message = str(error.value)
        assert "relu" in message and "2" in message, (
            f"the message should name the bad layer ('relu') and its position (2); it was: {message}")

    def test_empty_sequential_is_the_identity(self):
        """Sequential() has no layers and no parameters, and returns its input."""
        model = Sequential()
        x = Tensor([1.0, 2.0])
        assert len(model) == 0 and model.parameters() == [], "Sequential() has no layers and no parameters"
        assert_close(model(x), x, "Sequential()(x)", rtol=0, atol=0)

    def test_repr_shows_the_tree(self):
        """repr(model) lists every layer under its name, nested ones indented: (0): Linear(in_features=4, ...)."""

        class Net(Module):
            def __init__(self):
                super().__init__()
                self.layers = Sequential(Linear(4, 8), ReLU(), Tanh(), Sequential(Linear(8, 3)))

        text = repr(Net())
        for part in ("Net(", "(layers): Sequential(", "(0): Linear(in_features=4, out_features=8, bias=True)",
                     "(1): ReLU()", "(2): Tanh()", "      (0): Linear(in_features=8"):
            assert part in text, f"repr(model) should contain {part!r}; it was:\n{text}"

    def test_nested_names_and_backward_reach_every_parameter(self):
        """A model holding self.layers = Sequential(...) names layers.0.weight; backward fills every grad."""

        class Net(Module):
            def __init__(self):
                super().__init__()
                rng = np.random.default_rng(12)  # no Dropout here: that is the next checkpoint
                self.layers = Sequential(Linear(4, 8, rng=rng), ReLU(), Tanh(), Linear(8, 3, rng=rng))

            def forward(self, x):
                return self.layers(x)

        net = Net()
        names = [name for name, _ in net.named_parameters()]
        assert names == ["layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"], f"got {names}"
        net(Tensor(np.ones((2, 4)))).sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None, f"backward never reached {name}"
            assert_shape(p.grad, p.shape, f"{name}.grad")


@pytest.mark.checkpoint("dropout")
class TestDropout:
    def test_training_does_not_write_into_its_input(self):
        """Dropout(0.5) in training returns a new Tensor made by an op, and leaves its input's values alone."""
        x_data = np.random.default_rng(36).standard_normal((8, 8)).astype(np.float32)
        x = Tensor(x_data.copy())
        dropout = Dropout(0.5, rng=np.random.default_rng(37))
        out = assert_made_by_op(lambda: dropout(x), "Dropout(0.5)(x) in training", op="mul")
        assert out is not x, "in training dropout must return a new Tensor (x * mask), not x itself"
        assert_close(x, x_data, "the input after Dropout(0.5)(x): multiply into a new array, never x.data *= mask",
                     rtol=0, atol=0)

    def test_invalid_p_is_rejected(self):
        """Dropout(-0.1), Dropout(1.5) and Dropout(1.0000001) raise ValueError naming p; 0 and 1 themselves are fine."""
        for p in (-0.1, 1.5, 1.0000001):
            with pytest.raises(ValueError) as error:
                Dropout(p)
            assert str(p) in str(error.value), f"the message should name the p given ({p}); it was: {error.value}"
        Dropout(0.0), Dropout(1.0)  # the ends of the range are valid

    def test_identity_in_eval_mode(self):
        """After eval(), Dropout(0.5), Dropout(1.0) and Dropout(0.0) return their input unchanged."""
        x = np.random.default_rng(13).standard_normal((64, 32)).astype(np.float32)
        for p in (0.5, 1.0, 0.0):
            dropout = Dropout(p)
            assert dropout.eval() is dropout
            assert_close(dropout(Tensor(x)), x, f"Dropout({p}) in eval mode (check the mode before p)", rtol=0, atol=0)

    def test_identity_keeps_the_graph(self):
        """Dropout(0.5) after eval() and Dropout(0.0) in training pass the gradient through: x.grad = the upstream gradient.

        Hint: where dropout does nothing, return x itself; Tensor(x.data) is a new leaf that
        no gradient can flow back through.
        """
        upstream = np.random.default_rng(24).standard_normal((3, 4)).astype(np.float32)
        for what, dropout in [("Dropout(0.5) in eval mode", Dropout(0.5).eval()), ("Dropout(0.0) in training", Dropout(0.0))]:
            x = Tensor(np.random.default_rng(25).standard_normal((3, 4)), requires_grad=True)
            out = dropout(x)
            assert isinstance(out, Tensor), f"{what}: expected a Tensor, got {type(out).__name__}"
            assert out.requires_grad, (
                f"{what} returned a tensor that does not require grad: the graph back to x was cut. Return x itself")
            (out * Tensor(upstream)).sum().backward()
            assert x.grad is not None, f"{what}: x.grad is None; the gradient did not reach x"
            assert_close(x.grad, upstream, f"x.grad through {what} (upstream gradient passed through unchanged)")

    def test_p_zero_is_identity_and_p_one_is_zeros(self):
        """In training, Dropout(0) returns x and Dropout(1) returns zeros (no division by zero) with a zero gradient."""
        x = np.random.default_rng(14).standard_normal((16, 8)).astype(np.float32)
        assert_close(Dropout(0.0)(Tensor(x)), x, "Dropout(0.0) in training", rtol=0, atol=0)
        leaf = Tensor(x, requires_grad=True)
        out = Dropout(1.0)(leaf)
        assert_tensor(out, "Dropout(1.0)(x) in training", shape=(16, 8), dtype=np.float32)
        assert_close(out, np.zeros_like(x), "Dropout(1.0) in training", rtol=0, atol=0)
        out.sum().backward()
        assert leaf.grad is not None, (
            "Dropout(1.0) cut the graph: x.grad is None. Return x * 0.0 (a recorded op), not a new zeros Tensor")
        assert_close(leaf.grad, np.zeros_like(x), "x.grad through Dropout(1.0)", rtol=0, atol=0)

    def test_kept_units_are_scaled_by_one_over_one_minus_p(self):
        """In training, Dropout(0.25) outputs 0 or x / 0.75 for every element, and some of each."""
        x = np.random.default_rng(15).uniform(1, 2, size=(50, 40)).astype(np.float32)
        result = Dropout(0.25, rng=np.random.default_rng(16))(Tensor(x))
        assert result.dtype == np.float32, f"dropout of a float32 input should stay float32, got {result.dtype}"
        out = np.asarray(result.data)
        dropped = out == 0
        assert dropped.any() and not dropped.all(), "in training some units are dropped and some kept"
        assert_close(out[~dropped], x[~dropped] / 0.75, "kept units: x / (1 - p) with p = 0.25 (inverted dropout)")

    def test_every_element_draws_its_own_unit(self):
        """Dropout(0.5) on a (64, 16) batch drops different units in different rows: one draw per element, not per feature.

        Hint: draw the mask with the input's whole shape; a mask of shape (features,) broadcasts
        the same dropped units onto every sample of the batch.
        """
        out = np.asarray(Dropout(0.5, rng=np.random.default_rng(26))(Tensor(np.ones((64, 16)))).data)
        dropped = out == 0
        same_as_first = int(np.sum(np.all(dropped == dropped[0], axis=1)))
        assert same_as_first < 8, (
            f"{same_as_first} of 64 rows drop exactly the same units as row 0; with an independent draw per "
            "element, hardly any would. The mask must have the shape of the whole input")

    def test_drops_a_fraction_p(self):
        """Dropout(0.3) on 100,000 units drops 30% of them, within 5 binomial standard deviations."""
        n, p = 100_000, 0.3
        out = Dropout(p, rng=np.random.default_rng(17))(Tensor(np.ones(n)))
        fraction = float(np.mean(out.data == 0))
        tolerance = 5 * np.sqrt(p * (1 - p) / n)
        assert abs(fraction - p) < tolerance, \
            f"p is the probability of DROPPING a unit: expected a fraction {p} +- {tolerance:.4f} zeros, got {fraction:.4f}"

    def test_expected_value_is_preserved(self):
        """The mean of Dropout(0.6) applied to 100,000 ones is 1, within 5 standard deviations of the mean."""
        n, p = 100_000, 0.6
        out = Dropout(p, rng=np.random.default_rng(18))(Tensor(np.ones(n)))
        mean = float(np.mean(out.data))
        tolerance = 5 * np.sqrt(p / (1 - p) / n)  # each output is 1/(1-p) with probability 1-p, else 0
        assert abs(mean - 1.0) < tolerance, \
            f"inverted dropout keeps the expected value: mean should be 1 +- {tolerance:.4f}, got {mean:.4f}"

    def test_seeded_rng_repeats_and_each_call_draws_a_new_mask(self):
        """Two Dropouts with default_rng(19) drop the same units; consecutive calls drop different ones."""
        x = Tensor(np.ones((20, 20)))
        a, b = Dropout(0.5, rng=np.random.default_rng(19)), Dropout(0.5, rng=np.random.default_rng(19))
        first = np.asarray(a(x).data)
        assert_close(b(x), first, "the same seed must give the same mask", rtol=0, atol=0)
        assert not np.array_equal(np.asarray(a(x).data), first), "each call must draw a fresh mask"
        np.random.seed(20)
        c = np.asarray(Dropout(0.5)(x).data)
        np.random.seed(20)
        assert_close(Dropout(0.5)(x), c, "rng=None after np.random.seed(20), twice: use np.random", rtol=0, atol=0)

    def test_gradient_flows_through_the_same_mask(self):
        """backward of sum(dropout(x)) gives x.grad = 1/(1-p) where a unit was kept and 0 where it was dropped."""
        x = Tensor(np.full((10, 10), 3.0), requires_grad=True)
        out = Dropout(0.5, rng=np.random.default_rng(21))(x)
        out.sum().backward()
        assert x.grad is not None, "dropout must be built from recorded ops so the gradient reaches x"
        assert_close(x.grad, out.data / 3.0, "x.grad: the mask (0 or 1/(1-p)) used in forward")

    def test_model_eval_switches_dropout_off(self):
        """A Sequential with Dropout(0.5) is random in training and deterministic after model.eval()."""
        model = _mlp(np.random.default_rng(22), dropout=0.5)
        x = Tensor(np.random.default_rng(23).standard_normal((32, 4)))
        assert not np.array_equal(model(x).data, model(x).data), "in training two calls should differ"
        model.eval()
        assert_close(model(x), model(x), "two calls after model.eval()", rtol=0, atol=0)


@pytest.mark.checkpoint("state_dict")
class TestStateDict:
    def test_keys_and_values(self):
        """state_dict() of Sequential(Linear, ReLU(), Dropout, Linear) maps 0.weight ... 3.bias to arrays of their values."""
        model = _mlp(np.random.default_rng(24))
        state = model.state_dict()
        assert list(state) == ["0.weight", "0.bias", "3.weight", "3.bias"], f"keys: got {list(state)}"
        for name, p in model.named_parameters():
            assert isinstance(state[name], np.ndarray), f"state[{name!r}] should be a numpy array"
            assert_close(state[name], p.data, f"state[{name!r}]", rtol=0, atol=0)

    def test_state_dict_keeps_each_parameters_dtype(self):
        """state_dict() of a float64 Parameter holds float64 values, exactly the parameter's (no rounding to float32)."""
        module = Pair()
        module.extra = Parameter(np.random.default_rng(27).standard_normal(5), dtype=np.float64)
        state = module.state_dict()
        assert state["extra"].dtype == np.float64, (
            f"state['extra'] of a float64 Parameter: expected dtype float64, got {state['extra'].dtype}. "
            "Copy the array as it is; converting it loses precision")
        assert_close(state["extra"], module.extra.data, "state['extra'] (a float64 Parameter)", rtol=0, atol=0)

    def test_state_dict_is_a_snapshot(self):
        """Changing a parameter after state_dict() leaves the snapshot as it was, and vice versa; each call is a new copy."""
        layer = Linear(3, 2, rng=np.random.default_rng(25))
        state = layer.state_dict()
        before = layer.weight.data.copy()
        layer.weight.data -= 1.0  # what an optimizer step does: update in place
        assert_close(state["weight"], before, "the snapshot after the parameters changed (it must hold a copy)",
                     rtol=0, atol=0)
        state["bias"][...] = 7.0
        assert_close(layer.bias, np.zeros(2), "the model after editing the snapshot", rtol=0, atol=0)
        again = layer.state_dict()
        assert not np.shares_memory(again["weight"], state["weight"]), "two state_dict() calls share an array"

    def test_load_copies_into_the_existing_parameters(self):
        """load_state_dict() keeps the same Parameter objects and arrays, and later edits of the dict do not leak in."""
        source = Linear(3, 2, rng=np.random.default_rng(26))
        target = Linear(3, 2, rng=np.random.default_rng(27))
        weight, weight_array = target.weight, target.weight.data
        state = source.state_dict()
        saved = {name: value.copy() for name, value in state.items()}
        target.load_state_dict(state)
        assert list(state) == list(saved) and all(np.array_equal(state[k], saved[k]) for k in saved), \
            "load_state_dict changed the dict it was given: read it, never pop from it or write into it"
        assert target.weight is weight and target.weight.data is weight_array, \
            "load_state_dict must write into the existing arrays (optimizers hold references to them)"
        assert_close(target.weight, source.weight, "target.weight after loading", rtol=0, atol=0)
        state["weight"][...] = 0.0
        assert_close(target.weight, source.weight, "target.weight after the loaded dict was edited", rtol=0, atol=0)

    def test_round_trip_gives_the_same_outputs(self):
        """A model loaded with another's state_dict computes exactly the same outputs."""
        a, b = _mlp(np.random.default_rng(28)), _mlp(np.random.default_rng(29))
        x = Tensor(np.random.default_rng(30).standard_normal((6, 4)))
        b.load_state_dict(a.state_dict())
        assert_close(b(x), a(x), "outputs after load_state_dict", rtol=0, atol=0)

    def test_missing_key_is_an_error_and_nothing_changes(self):
        """A state dict without '3.bias' raises KeyError naming it, and leaves the model untouched."""
        model = _mlp(np.random.default_rng(31))
        before = model.state_dict()
        state = _mlp(np.random.default_rng(32)).state_dict()
        del state["3.bias"]
        with pytest.raises(KeyError, match=r"missing.*3\.bias"):
            model.load_state_dict(state)
        for name, p in model.named_parameters():
            assert_close(p, before[name], f"{name} after a failed load (check everything before copying)",
                         rtol=0, atol=0)

    def test_unexpected_key_is_an_error_and_nothing_changes(self):
        """A state dict with every key right plus an extra 'head.weight' raises KeyError naming it, and changes nothing."""
        target = Linear(3, 2, rng=np.random.default_rng(38))
        before = target.state_dict()
        state = Linear(3, 2, rng=np.random.default_rng(39)).state_dict()
        state["head.weight"] = np.zeros((2, 2))
        with pytest.raises(KeyError, match=r"unexpected.*head\.weight"):
            target.load_state_dict(state)
        for name, p in target.named_parameters():
            assert_close(p, before[name], f"{name} after a failed load (check every key before copying)",
                         rtol=0, atol=0)

    def test_wrong_shape_names_key_and_both_shapes(self):
        """Loading Linear(3, 2)'s state into Linear(4, 2) raises ValueError naming 'weight', (3, 2) and (4, 2)."""
        with pytest.raises(ValueError) as error:
            Linear(4, 2).load_state_dict(Linear(3, 2).state_dict())
        message = str(error.value)
        assert "weight" in message and "(3, 2)" in message and "(4, 2)" in message, \
            f"the message should name the key 'weight' and both shapes (3, 2) and (4, 2); it was: {message}"

    def test_wrong_shape_in_a_later_entry_changes_nothing(self):
        """Only '3.bias' has the wrong shape, (1,) where (3,) belongs: ValueError naming it, and no parameter changes."""
        model = _mlp(np.random.default_rng(40))
        before = model.state_dict()
        state = _mlp(np.random.default_rng(41)).state_dict()
        state["3.bias"] = np.ones(1, dtype=np.float32)  # would broadcast into (3,): only a shape check stops it
        with pytest.raises(ValueError, match=r"3\.bias"):
            model.load_state_dict(state)
        changed = [name for name, p in model.named_parameters() if not np.array_equal(p.data, before[name])]
        assert not changed, (
            f"a load that failed on '3.bias' had already changed {changed}: check every key and shape first, "
            "then copy")

    def test_loading_keeps_the_parameters_dtype_and_tied_weights(self):
        """float64 arrays load into float32 parameters as float32; a tied weight is one key and loads into both uses."""
        layer = Linear(3, 2)
        layer.load_state_dict({"weight": np.full((3, 2), 0.5), "bias": np.zeros(2)})
        assert layer.weight.dtype == np.float32, f"weight became {layer.weight.dtype}: write into the existing array"
        model = Stack()
        model.second.inner.weight = model.first.inner.weight
        state = model.state_dict()
        assert "second.inner.weight" not in state and len(state) == 5, (
            f"a tied weight is saved once, under its first name; got keys {list(state)}")
        state["first.inner.weight"] = np.full((2, 3), 7.0)
        model.load_state_dict(state)
        assert_close(model.second.inner.weight, np.full((2, 3), 7.0), "the tied weight seen from its second use",
                     rtol=0, atol=0)


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_parameter_bytes_of_a_512_by_512_linear(self):
        """Linear(512, 512) holds 262,656 float32 parameters: 1,050,624 bytes, about 1.0 MiB, the sum of their nbytes."""
        layer = Linear(512, 512)
        assert layer.num_parameters() == 512 * 512 + 512, f"got {layer.num_parameters()}"
        assert layer.parameter_bytes() == 4 * (512 * 512 + 512) == sum(p.nbytes for p in layer.parameters()), \
            f"got {layer.parameter_bytes()} bytes"

    @pytest.mark.budget
    def test_forward_allocates_little_more_than_its_output(self):
        """Linear(512, 512) forward on (256, 512) peaks under 3x the output's bytes (reference: 2x, x @ W then + b)."""
        rng = np.random.default_rng(33)
        layer = Linear(512, 512, rng=rng)
        x = Tensor(rng.standard_normal((256, 512)).astype(np.float32))
        layer(x)  # warm up
        output_bytes = 256 * 512 * 4
        out = assert_peak_bytes(lambda: layer(x), 3 * output_bytes,
                                "Linear(512, 512) forward on a (256, 512) float32 batch (output 0.5 MiB)")
        assert out.dtype == np.float32, f"the output should stay float32, got {out.dtype}"

    @pytest.mark.budget
    def test_forward_and_backward_within_budget_of_numpy(self):
        """Linear(512, 512) forward + backward on (256, 512) takes at most 2.5x numpy's x@W+b, x^T g, g.sum(0), g W^T."""
        rng = np.random.default_rng(34)
        layer = Linear(512, 512, rng=rng)
        x = Tensor(rng.standard_normal((256, 512)).astype(np.float32), requires_grad=True)
        g = rng.standard_normal((256, 512)).astype(np.float32)
        x_data, weight, bias = x.data, layer.weight.data, layer.bias.data

        def candidate():
            layer.zero_grad()
            x.grad = None
            layer(x).backward(g)

        def baseline():
            out = x_data @ weight + bias  # forward
            return out, x_data.T @ g, g.sum(axis=0), g @ weight.T  # dW, db, dx

        assert_time_ratio(candidate, baseline, budget=2.5,
                          what="Linear(512, 512) forward + backward vs the same math in numpy")


# -- buffers: state that is saved but not learned -----------------------------------------------


class Counter(Module):
    """A parameter, then two buffers: a running mean (3,) and a count (1,)."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.ones(3))
        self.register_buffer("running_mean", np.zeros(3, dtype=np.float32))
        self.register_buffer("count", np.zeros(1, dtype=np.int64))

    def forward(self, x):
        return x * self.scale


@pytest.mark.checkpoint("state_dict")
class TestBuffers:
    def test_register_buffer_keeps_the_array_as_an_attribute(self):
        """register_buffer('running_mean', array) makes self.running_mean that same array, listed by named_buffers(), not a parameter."""
        module = Counter()
        assert isinstance(module.running_mean, np.ndarray) and module.running_mean.dtype == np.float32, \
            f"self.running_mean should be the float32 array given, got {module.running_mean!r}"
        named = module.named_buffers()
        assert [name for name, _ in named] == ["running_mean", "count"], \
            f"named_buffers() names, in registration order: got {[name for name, _ in named]}"
        assert named[0][1] is module.running_mean, \
            "named_buffers() should list the registered array itself (the module updates it in place)"
        assert [name for name, _ in module.named_parameters()] == ["scale"], \
            f"a buffer is not a parameter: named_parameters() gave {[n for n, _ in module.named_parameters()]}"
        assert module.num_parameters() == 3, f"num_parameters() counts parameters only: got {module.num_parameters()}"

    def test_named_buffers_of_children_have_dotted_names(self):
        """In Sequential(Linear(3, 3), Counter()) the buffers are '1.running_mean' and '1.count'."""
        model = Sequential(Linear(3, 3, rng=np.random.default_rng(40)), Counter())
        names = [name for name, _ in model.named_buffers()]
        assert names == ["1.running_mean", "1.count"], f"named_buffers() of the Sequential: got {names}"

    def test_a_shared_buffer_is_listed_once(self):
        """One array registered as a buffer by two children is listed once by named_buffers() and saved once.

        Hint: as for a tied parameter, skip an array already seen (compare by id).
        """
        shared = np.zeros(3, dtype=np.float32)
        first, second = Counter(), Counter()
        first.running_mean = shared
        second.running_mean = shared
        model = Sequential(first, second)
        names = [name for name, _ in model.named_buffers()]
        assert names == ["0.running_mean", "0.count", "1.count"], (
            f"named_buffers() with running_mean shared by both children: expected "
            f"['0.running_mean', '0.count', '1.count'], got {names}")
        keys = [key for key in model.state_dict() if key.endswith("running_mean")]
        assert keys == ["0.running_mean"], f"state_dict() should save the shared running_mean once, got {keys}"

    def test_state_dict_holds_copies_of_buffers_after_parameters(self):
        """state_dict() lists parameters, then buffers by dotted name, each a copy: a later in-place update leaves it alone."""
        model = Sequential(Linear(3, 3, rng=np.random.default_rng(41)), Counter())
        state = model.state_dict()
        assert list(state) == ["0.weight", "0.bias", "1.scale", "1.running_mean", "1.count"], \
            f"state_dict() keys: got {list(state)}"
        assert state["1.count"].dtype == np.int64, f"a buffer keeps its dtype in the state dict: got {state['1.count'].dtype}"
        model[1].running_mean += 5.0  # what BatchNorm does to its running mean every training step
        assert_close(state["1.running_mean"], np.zeros(3), "the saved running mean after the buffer changed "
                     "(state_dict must copy buffers too)", rtol=0, atol=0)

    def test_load_state_dict_writes_into_the_existing_buffers(self):
        """load_state_dict() copies saved buffers into the module's own arrays (the same objects), keeping their dtype."""
        source, target = Counter(), Counter()
        source.running_mean[...] = [1.0, 2.0, 3.0]
        source.count[...] = 7
        array = target.running_mean
        target.load_state_dict(source.state_dict())
        assert target.running_mean is array, "load_state_dict must write into the existing buffer, not replace it"
        assert_close(target.running_mean, [1.0, 2.0, 3.0], "running_mean after loading", rtol=0, atol=0)
        assert target.count[0] == 7 and target.count.dtype == np.int64, \
            f"count after loading: expected int64 [7], got {target.count!r}"

    def test_a_missing_buffer_is_a_key_error_and_nothing_changes(self):
        """A state dict without 'running_mean' raises KeyError naming it, and leaves the parameters untouched."""
        module, state = Counter(), Counter().state_dict()
        state["scale"] = np.full(3, 9.0)
        del state["running_mean"]
        with pytest.raises(KeyError, match="running_mean"):
            module.load_state_dict(state)
        assert_close(module.scale, np.ones(3), "scale after a failed load (check everything before copying)",
                     rtol=0, atol=0)

    def test_a_buffer_of_the_wrong_shape_is_a_value_error_and_nothing_changes(self):
        """A (4,) 'running_mean' for a (3,) buffer raises ValueError naming the key and both shapes; nothing is copied."""
        module, state = Counter(), Counter().state_dict()
        state["scale"] = np.full(3, 9.0)
        state["running_mean"] = np.zeros(4)
        with pytest.raises(ValueError) as error:
            module.load_state_dict(state)
        message = str(error.value)
        assert "running_mean" in message and "(4,)" in message and "(3,)" in message, \
            f"the message should name 'running_mean', (4,) and (3,); it was: {message}"
        assert_close(module.scale, np.ones(3), "scale after a failed load (check every shape before copying)",
                     rtol=0, atol=0)

    def test_reassigning_a_buffer(self):
        """self.running_mean = new array keeps it a buffer with the new value; a Parameter or None unregisters it."""
        module = Counter()
        module.running_mean = np.full(3, 4.0, dtype=np.float32)
        assert_close(module.state_dict()["running_mean"], np.full(3, 4.0), "the saved running_mean after "
                     "self.running_mean = np.full(3, 4.0)", rtol=0, atol=0)
        module.count = None
        assert [name for name, _ in module.named_buffers()] == ["running_mean"], \
            f"after self.count = None, count is no longer a buffer: got {[n for n, _ in module.named_buffers()]}"
        module.running_mean = Parameter(np.zeros(3))
        assert [name for name, _ in module.named_buffers()] == [], "a buffer re-assigned a Parameter becomes a parameter"
        assert [name for name, _ in module.named_parameters()] == ["scale", "running_mean"], \
            f"named_parameters() after re-assigning: got {[n for n, _ in module.named_parameters()]}"

    def test_register_buffer_refuses_a_child_modules_name(self):
        """register_buffer('inner', array) on a module whose child is called inner raises KeyError naming it.

        Hint: a name already used by a parameter OR a child module cannot also name a buffer;
        state_dict() could not tell 'inner' the buffer from 'inner.weight' the child's parameter.
        """
        module = Encoder()
        with pytest.raises(KeyError, match="inner"):
            module.register_buffer("inner", np.zeros(3))
        assert module.named_buffers() == [], f"a refused buffer must not be registered: got {module.named_buffers()}"
        assert isinstance(module.inner, Pair), f"module.inner should still be the child module, got {module.inner!r}"

    def test_register_buffer_refuses_bad_names_and_values(self):
        """A dotted name or a parameter's name is a KeyError; a list instead of a numpy array is a TypeError naming the type."""
        module = Counter()
        with pytest.raises(KeyError):
            module.register_buffer("stats.mean", np.zeros(3))
        with pytest.raises(KeyError, match="scale"):
            module.register_buffer("scale", np.zeros(3))
        with pytest.raises(TypeError, match="list"):
            module.register_buffer("history", [0.0, 1.0])
        assert [name for name, _ in module.named_buffers()] == ["running_mean", "count"], \
            f"a refused buffer must not be registered: got {[n for n, _ in module.named_buffers()]}"


# -- forward hooks: given machinery that kata 14's profiler uses -------------------------------


@pytest.mark.checkpoint("module")
class TestForwardHooks:
    def test_a_hook_is_called_once_per_forward_with_the_module_its_inputs_and_its_output(self):
        """register_forward_hook(hook): each pair(x) calls hook(pair, (x,), output) once, after forward, with the very objects."""
        pair, calls = Pair(), []
        pair.register_forward_hook(lambda module, inputs, output: calls.append((module, inputs, output)))
        x, y = Tensor(np.ones((4, 2))), Tensor(np.zeros((1, 2)))
        first, second = pair(x), pair(y)
        assert len(calls) == 2, f"two forwards should call the hook twice, got {len(calls)} calls"
        for (module, inputs, output), given, returned in zip(calls, (x, y), (first, second)):
            assert module is pair, f"the hook's first argument should be the module itself, got {module!r}"
            assert isinstance(inputs, tuple) and len(inputs) == 1 and inputs[0] is given, \
                f"the hook's second argument should be the tuple of positional inputs (x,), got {inputs!r}"
            assert output is returned, "the hook's third argument should be the output the call returned"
        assert_close(first, np.full((4, 3), 2.0), "the output of pair(x) with a hook registered")

    def test_hooks_run_in_registration_order_and_only_through_call(self):
        """Hooks 'a' then 'b' run as a, b on every call; pair.forward(x) called directly runs none."""
        pair, order = Pair(), []
        pair.register_forward_hook(lambda *_: order.append("a"))
        pair.register_forward_hook(lambda *_: order.append("b"))
        pair(np.ones((1, 2)))
        pair(np.ones((1, 2)))
        assert order == ["a", "b", "a", "b"], f"hooks should run in registration order on each call: got {order}"
        pair.forward(Tensor(np.ones((1, 2))))
        assert order == ["a", "b", "a", "b"], "forward() called directly is not a call through the module: no hooks"

    def test_a_removed_hook_is_not_called_and_the_others_still_are(self):
        """handle.remove() unregisters exactly its hook; removing it a second time is harmless."""
        pair, order = Pair(), []
        first = pair.register_forward_hook(lambda *_: order.append("first"))
        pair.register_forward_hook(lambda *_: order.append("second"))
        first.remove()
        first.remove()
        pair(np.ones((1, 2)))
        assert order == ["second"], f"after first.remove() only the second hook should run: got {order}"
        third = pair.register_forward_hook(lambda *_: order.append("third"))
        third.remove()
        pair(np.ones((1, 2)))
        assert order == ["second", "second"], f"a hook removed before any call never runs: got {order}"

    def test_a_hook_may_remove_itself_while_it_runs(self):
        """A hook that calls its own handle.remove() runs once; the hook after it still runs on that call."""
        pair, order, handles = Pair(), [], {}

        def once(module, inputs, output):
            order.append("once")
            handles["once"].remove()

        handles["once"] = pair.register_forward_hook(once)
        pair.register_forward_hook(lambda *_: order.append("always"))
        pair(np.ones((1, 2)))
        pair(np.ones((1, 2)))
        assert order == ["once", "always", "always"], f"got {order}"

    def test_hooks_on_children_fire_when_the_parent_runs(self):
        """Calling an Encoder fires its child's hook (with what the parent passed it) before its own."""
        encoder, seen = Encoder(), []
        encoder.inner.register_forward_hook(lambda module, inputs, output: seen.append(("inner", inputs[0], output)))
        encoder.register_forward_hook(lambda module, inputs, output: seen.append(("encoder", inputs[0], output)))
        x = Tensor(np.ones((2, 2)))
        out = encoder(x)
        assert [name for name, _, _ in seen] == ["inner", "encoder"], \
            f"the child finishes first, so its hook runs first: got {[name for name, _, _ in seen]}"
        assert seen[0][1] is x, "the child's hook receives the input the parent passed to the child"
        assert_close(seen[0][2], np.full((2, 3), 2.0), "the child's output, as its hook saw it")
        assert seen[1][2] is out, "the parent's hook receives the parent's output"

    def test_hooks_belong_to_one_module(self):
        """In a Stack of two Encoders, a hook on second.inner fires once per call, for that module only."""

        class Both(Stack):
            def forward(self, x):
                return self.second(self.first(x[:, :2])[:, :2])

        model, seen = Both(), []
        model.second.inner.register_forward_hook(lambda module, inputs, output: seen.append(module))
        model(Tensor(np.ones((5, 2))))
        assert len(seen) == 1 and seen[0] is model.second.inner, \
            f"only the hooked module's hook should fire, once: got {seen}"

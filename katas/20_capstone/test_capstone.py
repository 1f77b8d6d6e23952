"""Kata 20 · Capstone: the ordered suite. Run it with `python -m pytest katas/20_capstone`."""

import json
import math
import re

import numpy as np
import pytest

from harness import capstone as verifier
from harness.checks import assert_close, assert_shape, raises_naming
from tinytorch.activations import ReLU
from tinytorch.autograd import no_grad
from tinytorch.capstone import (
    BASELINE_BYTES, BATCH, MAX_BYTES, MAX_LATENCY_RATIO, TARGET_ACCURACY, Measurement, build_cnn, count_correct,
    export_arrays, export_submission, fine_tune, load_baseline, measure, missed_budgets, model_from_arrays,
    optimise, score, shrink, weighted_layers,
)
from tinytorch.compression import distillation_loss
from tinytorch.convolutions import Conv2d, Flatten, MaxPool2d
from tinytorch.dataloader import find_data_file, load_digits, train_test_split
from tinytorch.layers import Dropout, Linear, Module, Parameter, Sequential
from tinytorch.losses import cross_entropy
from tinytorch.optimizers import Adam
from tinytorch.profiling import count_flops
from tinytorch.tensor import Tensor
from tinytorch.training import make_batches

BASELINE_CORRECT = 356  # of the 359 held-out digits: the shipped baseline's score
HELD_OUT = 359
EVENT_NAMES = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]


# -- helpers: everything here is built by the test, never by the module under test ----------------------


def shipped_arrays() -> dict:
    with np.load(find_data_file("capstone_digits_cnn.npz"), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def cnn(c1: int, c2: int, rank=None, seed: int = 0) -> Sequential:
    """The event's family, built here: conv-relu-pool twice, Flatten, one Linear or a low-rank pair."""
    rng = np.random.default_rng(seed)
    head = [Linear(4 * c2, 10, rng=rng)] if rank is None else [Linear(4 * c2, rank, bias=False, rng=rng),
                                                                 Linear(rank, 10, rng=rng)]
    model = Sequential(Conv2d(1, c1, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
                       Conv2d(c1, c2, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(), *head)
    for layer in model.layers:  # random biases, so a bias that is dropped or mixed up shows
        if getattr(layer, "bias", None) is not None:
            layer.bias = Parameter(0.1 * rng.standard_normal(layer.bias.shape))
    return model.eval()


def layers_of(model) -> list:
    return [layer for layer in model.layers if isinstance(layer, (Conv2d, Linear))]


def event_model(arrays: dict) -> Sequential:
    """The baseline built here from the shipped float32 arrays."""
    model = cnn(16, 32)
    for layer, name in zip(layers_of(model), ("conv1", "conv2", "fc")):
        layer.weight = Parameter(arrays[f"{name}.weight"])
        layer.bias = Parameter(arrays[f"{name}.bias"])
    return model


def logits_of(model, x) -> np.ndarray:
    with no_grad():
        return model(Tensor(x)).data


def correct_of(model, x, y) -> int:
    return int(np.count_nonzero(logits_of(model, x).argmax(axis=1) == y))


def arrays_of(model, names=("conv1", "conv2", "fc")) -> dict:
    """float32 copies of a model's weights and biases under the event's names."""
    arrays = {}
    for layer, name in zip(layers_of(model), names):
        arrays[f"{name}.weight"] = layer.weight.data.astype(np.float32)
        if layer.bias is not None:
            arrays[f"{name}.bias"] = layer.bias.data.astype(np.float32)
    return arrays


def int8_arrays(arrays: dict) -> dict:
    """The float32 arrays with every weight in symmetric int8, one scale per output channel."""
    out = {}
    for name, value in arrays.items():
        if not name.endswith(".weight"):
            out[name] = value
            continue
        axis = 0 if value.ndim == 4 else 1
        others = tuple(i for i in range(value.ndim) if i != axis)
        scale = (np.abs(value).max(axis=others).astype(np.float64) / 127).astype(np.float32)
        shape = [1] * value.ndim
        shape[axis] = -1
        out[name] = np.clip(np.round(value / scale.reshape(shape)), -127, 127).astype(np.int8)
        out[name.replace(".weight", ".scale")] = scale
    return out


def snapshot(model) -> list:
    return [parameter.data.copy() for parameter in model.parameters()]


def assert_unchanged(model, before: list, what: str) -> None:
    for index, (now, then) in enumerate(zip([p.data for p in model.parameters()], before)):
        assert now.shape == then.shape and np.array_equal(now, then), \
            f"{what}: parameter {index} of the model changed; it must be left as it was"


class ScriptedClock:
    """A clock for kata 19's interleaved: per round, the baseline's call lasts base[r], the model's model[r]."""

    def __init__(self, base: list, model: list):
        self.readings = []
        now = 0.0
        for b, m in zip(base, model):
            self.readings += [now, now + b, now + b, now + b + m]
            now += b + m
        self.reads = 0

    def __call__(self) -> float:
        value = self.readings[self.reads]
        self.reads += 1
        return value


class Spy(Module):
    """A layer that passes its input on and records, per call, the input's shape and its own training flag."""

    def __init__(self):
        super().__init__()
        self.shapes, self.modes = [], []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        self.modes.append(self.training)
        return x


class SpyClock:
    """A clock that moves 1 s per read and 3 s more per call of the spied model: its calls last 4 s, any other 1 s."""

    def __init__(self, spy: Spy):
        self.spy, self.reads = spy, 0

    def __call__(self) -> float:
        self.reads += 1
        return 3.0 * len(self.spy.shapes) + self.reads


class NoClock:
    """A clock that counts how often it is read: a model below target must not be timed at all."""

    def __init__(self):
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return float(self.reads)


@pytest.fixture(scope="module")
def digits():
    """(x_train, x_test, y_train, y_test): (N, 1, 8, 8) float32, the milestones' split."""
    images, labels = load_digits()
    return tuple(train_test_split(images[:, None], labels, test_fraction=0.2, seed=0))


@pytest.fixture(scope="module")
def baseline():
    """The shipped baseline, built by the test (not by load_baseline)."""
    return event_model(shipped_arrays())


# -- baseline ---------------------------------------------------------------------------------------


@pytest.mark.checkpoint("baseline")
class TestBaseline:
    def test_build_cnn_is_the_1998_network(self):
        """build_cnn() is conv(1->16)-ReLU-pool, conv(16->32)-ReLU-pool, Flatten, Linear(128, 10): 6,090 parameters."""
        model = build_cnn()
        assert isinstance(model, Sequential), f"build_cnn should return a Sequential, got {type(model).__name__}"
        kinds = [type(layer).__name__ for layer in model.layers]
        assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"], \
            f"build_cnn(): the layers should be conv, ReLU, pool, conv, ReLU, pool, Flatten, Linear; got {kinds}"
        conv1, conv2, fc = model.layers[0], model.layers[3], model.layers[7]
        for conv, channels in ((conv1, (1, 16)), (conv2, (16, 32))):
            assert (conv.in_channels, conv.out_channels) == channels, \
                f"{conv!r}: expected {channels[0]} -> {channels[1]} channels"
            assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1), \
                f"{conv!r}: the event's convolutions are 3x3, padding 1, stride 1"
            assert conv.bias is not None, f"{conv!r}: the convolutions have a bias"
        for pool in (model.layers[2], model.layers[5]):
            assert pool.kernel_size == 2 and pool.stride in (None, 2), f"{pool!r}: expected MaxPool2d(2)"
        assert (fc.in_features, fc.out_features, fc.bias is not None) == (128, 10, True), \
            f"the head should be Linear(128, 10) with a bias, got {fc!r}"
        count = sum(p.size for p in model.parameters())
        assert count == 6090, f"build_cnn() should learn 6,090 parameters, got {count:,}"

    def test_sizes_and_a_low_rank_head(self):
        """build_cnn(5, 7) has 5 and 7 channels and Linear(28, 10); with fc_rank=3 the head is Linear(28, 3, no bias), Linear(3, 10), flat."""
        model = build_cnn(5, 7)
        conv1, conv2, fc = model.layers[0], model.layers[3], model.layers[-1]
        assert (conv1.out_channels, conv2.in_channels, conv2.out_channels) == (5, 5, 7), \
            f"build_cnn(5, 7): expected conv1 1 -> 5 and conv2 5 -> 7, got {conv1!r} and {conv2!r}"
        assert (fc.in_features, fc.out_features) == (28, 10), f"build_cnn(5, 7): the head should be Linear(28, 10), got {fc!r}"
        low = build_cnn(5, 7, fc_rank=3)
        assert len(low.layers) == 9, (f"build_cnn(5, 7, fc_rank=3) should hold 9 layers, the two Linears side by side "
                                      f"in the Sequential (not nested), got {len(low.layers)}: {low.layers}")
        first, second = low.layers[7], low.layers[8]
        assert isinstance(first, Linear) and isinstance(second, Linear), "the last two layers should be Linear"
        assert (first.in_features, first.out_features, first.bias is None) == (28, 3, True), \
            f"the first factor should be Linear(28, 3, bias=False), got {first!r}"
        assert (second.in_features, second.out_features, second.bias is not None) == (3, 10, True), \
            f"the second factor should be Linear(3, 10) with the bias, got {second!r}"
        x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
        assert_shape(logits_of(low, x), (2, 10), "build_cnn(5, 7, fc_rank=3) on a batch of 2")

    def test_the_same_rng_seed_builds_the_same_weights(self):
        """build_cnn(rng=default_rng(s)) draws its initial weights from rng: the same seed, the same model."""
        a = build_cnn(4, 6, rng=np.random.default_rng(7))
        b = build_cnn(4, 6, rng=np.random.default_rng(7))
        c = build_cnn(4, 6, rng=np.random.default_rng(8))
        for p, q in zip(a.parameters(), b.parameters()):
            assert np.array_equal(p.data, q.data), "build_cnn: two models from the same rng seed differ"
        assert not np.array_equal(a.layers[0].weight.data, c.layers[0].weight.data), \
            "build_cnn: two different rng seeds give the same weights; pass rng to every layer"

    @pytest.mark.parametrize("sizes,named", [
        ((0, 32), "conv1_channels"), ((17, 32), "conv1_channels"), ((16, 0), "conv2_channels"),
        ((16, 33), "conv2_channels"), ((16, 32, 0), "fc_rank"), ((16, 32, 11), "fc_rank"), ((2, 2, 9), "fc_rank"),
        ((4.0, 8), "conv1_channels"), ((4, 8, True), "fc_rank"), ((True, 8), "conv1_channels"),
        ((4, True), "conv2_channels"),
    ])
    def test_sizes_outside_the_family_are_refused(self, sizes, named):
        """build_cnn refuses channels outside 1..16 and 1..32 and a rank outside 1..min(4 c2, 10), naming which."""
        raises_naming(lambda: build_cnn(*sizes), ValueError, [named], f"build_cnn{sizes}")

    def test_weighted_layers_names_each_layer(self):
        """weighted_layers gives {conv1, conv2, fc} (or fc1, fc2 for a low-rank head): the model's own layer objects, in order."""
        model = build_cnn(3, 4)
        named = weighted_layers(model)
        assert list(named) == ["conv1", "conv2", "fc"], f"weighted_layers: expected conv1, conv2, fc, got {list(named)}"
        assert named["conv1"] is model.layers[0] and named["conv2"] is model.layers[3] and named["fc"] is model.layers[7], \
            "weighted_layers should hand back the model's own layers (not copies), the first Conv2d as conv1"
        low = build_cnn(3, 4, fc_rank=2)
        named = weighted_layers(low)
        assert list(named) == ["conv1", "conv2", "fc1", "fc2"], \
            f"weighted_layers of a low-rank head: expected conv1, conv2, fc1, fc2, got {list(named)}"
        assert named["fc1"] is low.layers[7] and named["fc2"] is low.layers[8], "fc1 is the first Linear, fc2 the second"

    def test_weighted_layers_refuses_another_family(self):
        """A model with three convolutions, one, three Linear layers, or no layers at all is not of the family: a ValueError says what it holds."""
        rng = np.random.default_rng(0)
        three_convs = Sequential(Conv2d(1, 2, 3, rng=rng), Conv2d(2, 2, 3, rng=rng), Conv2d(2, 2, 3, rng=rng),
                                 Flatten(), Linear(8, 10, rng=rng))
        raises_naming(lambda: weighted_layers(three_convs), ValueError, ["3 Conv2d"], "three convolutions")
        one_conv = Sequential(Conv2d(1, 2, 3, rng=rng), Flatten(), Linear(72, 10, rng=rng))
        raises_naming(lambda: weighted_layers(one_conv), ValueError, ["1 Conv2d"], "one convolution")
        deep_head = Sequential(Conv2d(1, 2, 3, rng=rng), Conv2d(2, 2, 3, rng=rng), Flatten(), Linear(32, 8, rng=rng),
                               Linear(8, 8, rng=rng), Linear(8, 10, rng=rng))
        raises_naming(lambda: weighted_layers(deep_head), ValueError, ["3 Linear"], "three Linear layers")
        bare = Linear(4, 10, rng=rng)  # a layer, not a Sequential: it has no .layers at all
        raises_naming(lambda: weighted_layers(bare), ValueError, ["0 Conv2d"], "a bare Linear (no .layers)")

    def test_load_baseline_holds_the_shipped_arrays(self):
        """load_baseline() holds exactly the arrays of katas/data/capstone_digits_cnn.npz, float32, in each named layer."""
        model = load_baseline()
        arrays = shipped_arrays()
        layers = [model.layers[0], model.layers[3], model.layers[7]]
        for layer, name in zip(layers, ("conv1", "conv2", "fc")):
            for kind in ("weight", "bias"):
                got = getattr(layer, kind)
                assert isinstance(got, Parameter), f"load_baseline: {name}.{kind} should be a Parameter"
                assert got.data.dtype == np.float32, f"load_baseline: {name}.{kind} should be float32, got {got.data.dtype}"
                assert np.array_equal(got.data, arrays[f"{name}.{kind}"]), \
                    f"load_baseline: the layer {name} does not hold the file's {name}.{kind}"

    def test_load_baseline_reads_356_of_359(self, digits):
        """The baseline, in your framework, reads 356 of the 359 held-out digits (99.16%), and is in eval mode."""
        model = load_baseline()
        stuck = [type(m).__name__ for m in model.modules() if m.training]
        assert not stuck, f"load_baseline should return the model in eval mode; still training: {stuck}"
        _, x_test, _, y_test = digits
        correct = correct_of(model, x_test, y_test)
        assert correct == BASELINE_CORRECT, (f"the loaded baseline reads {correct} of {HELD_OUT} held-out digits; "
                                             f"the shipped model reads {BASELINE_CORRECT}")

    def test_load_baseline_reads_the_path_it_is_given(self, tmp_path):
        """load_baseline(path) reads that file: arrays saved there (the shipped ones doubled) are the ones loaded."""
        arrays = {name: value * 2 for name, value in shipped_arrays().items()}
        np.savez(tmp_path / "doubled.npz", **arrays)
        model = load_baseline(tmp_path / "doubled.npz")
        assert np.array_equal(model.layers[3].weight.data, arrays["conv2.weight"]), \
            "load_baseline(path) should read the arrays of `path`, not the shipped file"

    def test_load_baseline_refuses_pickled_objects(self, tmp_path):
        """A file whose conv1.weight is an array of Python objects (pickled) is refused: np.load(..., allow_pickle=False).

        Hint: a file of arrays is data; a pickle is a program. np.load(path, allow_pickle=False)
        reads the first and refuses the second with a ValueError.
        """
        arrays = shipped_arrays()
        arrays["conv1.weight"] = arrays["conv1.weight"].astype(object)
        np.savez(tmp_path / "pickled.npz", **arrays)
        with pytest.raises(ValueError):
            load_baseline(tmp_path / "pickled.npz")


# -- pack ---------------------------------------------------------------------------------------------------


def assert_int8_per_channel(values, scale, weight, axis: int, what: str) -> None:
    """values (int8 in [-127, 127]) times scale (one per output channel, float32) is within scale / 2 of weight."""
    assert values.dtype == np.int8, f"{what}: the weight should be stored as int8, got {values.dtype}"
    assert values.shape == weight.shape, f"{what}: the int8 weight should keep the shape {weight.shape}, got {values.shape}"
    channels = weight.shape[axis]
    assert scale.dtype == np.float32 and scale.shape == (channels,), \
        (f"{what}: the scale should be float32 with one entry per OUTPUT channel, shape ({channels},) (axis {axis} "
         f"of a {weight.shape} weight); got {scale.dtype} {scale.shape}")
    assert int(values.min()) >= -127, f"{what}: symmetric int8 uses -127..127, found {int(values.min())}"
    shape = [1] * weight.ndim
    shape[axis] = -1
    error = np.abs(values.astype(np.float64) * scale.reshape(shape) - weight)
    limit = scale.reshape(shape) / 2 * (1 + 1e-5) + 1e-12
    assert (error <= limit).all(), f"{what}: values * scale is off by {error.max():.3g}, more than scale / 2"
    others = tuple(i for i in range(weight.ndim) if i != axis)
    peak = np.abs(values).max(axis=others)
    assert (peak == 127).all(), (f"{what}: each output channel's largest weight should map to +-127 (its own scale); "
                                 f"the channels' largest levels are {peak.tolist()}")


@pytest.mark.checkpoint("pack")
class TestPack:
    def test_float32_arrays_are_copies_under_the_event_names(self):
        """export_arrays(model, "float32") holds conv1.weight, conv1.bias, ... fc.bias: float32 copies, the model untouched."""
        model = cnn(4, 6, seed=1)
        before = snapshot(model)
        arrays = export_arrays(model, "float32")
        assert isinstance(arrays, dict), f"export_arrays should return a dict of arrays, got {type(arrays).__name__}"
        assert sorted(arrays) == sorted(EVENT_NAMES), f"export_arrays: expected the arrays {EVENT_NAMES}, got {sorted(arrays)}"
        for name, layer in zip(("conv1", "conv2", "fc"), layers_of(model)):
            for kind in ("weight", "bias"):
                got = arrays[f"{name}.{kind}"]
                assert isinstance(got, np.ndarray) and got.dtype == np.float32, \
                    f"{name}.{kind} should be a float32 numpy array, got {type(got).__name__} {getattr(got, 'dtype', '')}"
                assert np.array_equal(got, getattr(layer, kind).data), f"{name}.{kind} should equal the layer's {kind}"
                assert not np.shares_memory(got, getattr(layer, kind).data), \
                    f"{name}.{kind} shares memory with the model; export copies, so a change to one never changes the other"
        for value in arrays.values():
            value[...] = 0
        assert_unchanged(model, before, "export_arrays, then zeroing its arrays")

    def test_float16_weights_and_float32_biases(self):
        """With "float16" every weight is float16 (half the bytes) and every bias stays float32."""
        model = cnn(4, 6, seed=2)
        arrays = export_arrays(model, "float16")
        for name, layer in zip(("conv1", "conv2", "fc"), layers_of(model)):
            assert arrays[f"{name}.weight"].dtype == np.float16, f"{name}.weight should be float16"
            assert_close(arrays[f"{name}.weight"].astype(np.float32), layer.weight.data, f"{name}.weight in float16",
                         rtol=1e-3, atol=1e-4)
            assert arrays[f"{name}.bias"].dtype == np.float32, f"{name}.bias stays float32, got {arrays[f'{name}.bias'].dtype}"

    def test_int8_has_one_scale_per_output_channel(self):
        """With "int8" each weight is symmetric int8 and <name>.scale holds one float32 per OUTPUT channel: axis 0 of a conv, 1 of a Linear."""
        model = cnn(4, 6, seed=3)
        for layer in layers_of(model):  # channels of very different sizes: one scale for all would crush the small ones
            channels = layer.weight.shape[0 if isinstance(layer, Conv2d) else 1]
            sizes = 10.0 ** (np.arange(channels) % 4 - 2)
            shape = (-1, 1, 1, 1) if isinstance(layer, Conv2d) else (1, -1)
            layer.weight = Parameter(layer.weight.data * sizes.reshape(shape).astype(np.float32))
        arrays = export_arrays(model, "int8")
        expected = sorted(EVENT_NAMES + ["conv1.scale", "conv2.scale", "fc.scale"])
        assert sorted(arrays) == expected, f"export_arrays(..., 'int8'): expected the arrays {expected}, got {sorted(arrays)}"
        for name, layer in zip(("conv1", "conv2", "fc"), layers_of(model)):
            axis = 0 if isinstance(layer, Conv2d) else 1
            assert_int8_per_channel(arrays[f"{name}.weight"], arrays[f"{name}.scale"], layer.weight.data, axis, name)
            assert arrays[f"{name}.bias"].dtype == np.float32, f"{name}.bias stays float32"

    def test_storage_per_layer_and_a_low_rank_head(self):
        """storage may name each layer; a low-rank head's arrays are fc1.weight, fc2.weight and fc2.bias (fc1 has no bias)."""
        model = cnn(3, 5, rank=4, seed=4)
        arrays = export_arrays(model, {"conv1": "float32", "conv2": "int8", "fc1": "float16", "fc2": "int8"})
        expected = sorted(["conv1.weight", "conv1.bias", "conv2.weight", "conv2.scale", "conv2.bias", "fc1.weight",
                           "fc2.weight", "fc2.scale", "fc2.bias"])
        assert sorted(arrays) == expected, f"expected the arrays {expected}, got {sorted(arrays)}"
        dtypes = {name: arrays[name].dtype for name in ("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight")}
        assert dtypes == {"conv1.weight": np.float32, "conv2.weight": np.int8, "fc1.weight": np.float16,
                          "fc2.weight": np.int8}, f"each layer should be stored as asked, got {dtypes}"
        assert arrays["fc2.scale"].shape == (10,), f"fc2.scale: one per output (10), got {arrays['fc2.scale'].shape}"
        assert arrays["fc1.weight"].shape == (20, 4), f"fc1.weight should be (20, 4), got {arrays['fc1.weight'].shape}"

    @pytest.mark.parametrize("storage,named", [
        ("int4", "int4"), ({"conv1": "int8", "conv2": "int8"}, "fc"),
        ({"conv1": "int8", "conv2": "int8", "fc": "int8", "fc9": "int8"}, "fc9"),
        ({"conv1": "int8", "conv2": "bfloat16", "fc": "int8"}, "bfloat16"),
    ])
    def test_an_unknown_storage_is_refused(self, storage, named):
        """An unknown storage, or a storage dict that misses a layer or names one the model lacks, is a ValueError naming it."""
        raises_naming(lambda: export_arrays(cnn(2, 3), storage), ValueError, [named], f"export_arrays(model, {storage})")

    def test_model_from_arrays_rebuilds_the_model(self, digits):
        """model_from_arrays(export_arrays(m, "float32")) has m's channels and computes exactly m's logits, in eval mode."""
        model = cnn(5, 7, seed=5)
        rebuilt = model_from_arrays(arrays_of(model))
        assert isinstance(rebuilt, Sequential), f"model_from_arrays should return a Sequential, got {type(rebuilt).__name__}"
        named = layers_of(rebuilt)
        assert (named[0].out_channels, named[1].out_channels) == (5, 7), \
            f"the channels come from the arrays' shapes: expected 5 and 7, got {named[0]!r} and {named[1]!r}"
        assert not any(m.training for m in rebuilt.modules()), "model_from_arrays should return the model in eval mode"
        x = digits[1][:16]
        assert_close(logits_of(rebuilt, x), logits_of(model, x), "logits of the rebuilt model", rtol=1e-6, atol=1e-6)

    def test_int8_weights_are_dequantized_along_their_channel_axis(self):
        """An int8 weight becomes float32 values * scale, the scale along axis 0 of a conv weight and axis 1 of a Linear's; the arrays are left as they were."""
        rng = np.random.default_rng(6)
        arrays = arrays_of(cnn(3, 4, seed=6))
        expected = {}
        for name in ("conv1", "conv2", "fc"):
            weight = arrays[f"{name}.weight"]
            axis = 0 if weight.ndim == 4 else 1
            values = rng.integers(-127, 128, size=weight.shape).astype(np.int8)
            scale = (0.001 * (1 + np.arange(weight.shape[axis]) ** 2)).astype(np.float32)
            shape = [1] * weight.ndim
            shape[axis] = -1
            arrays[f"{name}.weight"], arrays[f"{name}.scale"] = values, scale
            expected[name] = values.astype(np.float32) * scale.reshape(shape)
        kept = {name: value.copy() for name, value in arrays.items()}
        model = model_from_arrays(arrays)
        assert sorted(arrays) == sorted(kept) and all(
            arrays[name].dtype == kept[name].dtype and np.array_equal(arrays[name], kept[name]) for name in kept), \
            "model_from_arrays changed the arrays it was given; it must only read them (they are what you hand in)"
        for layer, name in zip(layers_of(model), ("conv1", "conv2", "fc")):
            assert layer.weight.data.dtype == np.float32, f"{name}: the rebuilt weight should be float32"
            assert_close(layer.weight.data, expected[name], f"{name}: dequantized weight (values * scale per channel)",
                         rtol=1e-6, atol=0)
            assert np.array_equal(layer.bias.data, arrays[f"{name}.bias"]), f"{name}: the bias should be the array's"

    def test_float16_weights_become_float32_parameters(self):
        """A float16 weight is converted: every parameter of the rebuilt model is float32."""
        arrays = {name: value.astype(np.float16) if name.endswith("weight") else value
                  for name, value in arrays_of(cnn(2, 3, seed=7)).items()}
        model = model_from_arrays(arrays)
        dtypes = sorted({str(p.data.dtype) for p in model.parameters()})
        assert dtypes == ["float32"], f"model_from_arrays: every parameter should be float32, got {dtypes}"

    def test_a_low_rank_head_is_rebuilt(self, digits):
        """fc1.weight (4 c2, r), fc2.weight (r, 10) and fc2.bias rebuild the low-rank pair, flat, with the same logits."""
        model = cnn(3, 5, rank=4, seed=8)
        rebuilt = model_from_arrays(arrays_of(model, ("conv1", "conv2", "fc1", "fc2")))
        assert len(rebuilt.layers) == 9, f"a low-rank model should hold 9 layers, got {len(rebuilt.layers)}"
        assert rebuilt.layers[7].bias is None and rebuilt.layers[7].out_features == 4, \
            f"the first factor should be Linear(20, 4, bias=False), got {rebuilt.layers[7]!r}"
        x = digits[1][:8]
        assert_close(logits_of(rebuilt, x), logits_of(model, x), "logits of the rebuilt low-rank model", rtol=1e-6,
                     atol=1e-6)

    def test_the_baseline_survives_int8(self, baseline, digits):
        """The baseline packed in int8 and rebuilt reads at least 355 of the 359 held-out digits."""
        rebuilt = model_from_arrays(export_arrays(baseline, "int8"))
        _, x_test, _, y_test = digits
        correct = correct_of(rebuilt, x_test, y_test)
        assert correct >= BASELINE_CORRECT - 1, (f"the int8 baseline reads {correct} of {HELD_OUT}; it should lose at "
                                                 f"most one image of the float model's {BASELINE_CORRECT}")


# -- measure ---------------------------------------------------------------------------------------------------


def baseline_flops(c1: int, c2: int, rank=None) -> int:
    """2 per multiply-accumulate for a batch of BATCH: 64 positions x 9 c1, 16 x 9 c1 c2, then the head."""
    head = 4 * c2 * 10 if rank is None else 4 * c2 * rank + rank * 10
    return 2 * BATCH * (64 * 9 * c1 + 16 * 9 * c1 * c2 + head)


@pytest.mark.checkpoint("measure")
class TestMeasure:
    def test_count_correct(self, baseline, digits):
        """count_correct(baseline, x_test, y_test) is the int 356; on the first 50 images, what argmax gives."""
        _, x_test, _, y_test = digits
        got = count_correct(baseline, x_test, y_test)
        assert type(got) is int, f"count_correct should return a Python int, got {type(got).__name__}"
        assert got == BASELINE_CORRECT, f"count_correct of the baseline: expected {BASELINE_CORRECT}, got {got}"
        assert count_correct(baseline, x_test[:50], y_test[:50]) == correct_of(baseline, x_test[:50], y_test[:50])

    def test_count_correct_in_eval_mode_leaving_the_flags(self, baseline, digits):
        """A model in train mode is counted in eval mode (its Dropout off) and left in train mode afterwards."""
        _, x_test, _, y_test = digits
        model = Sequential(*baseline.layers, Dropout(0.9, rng=np.random.default_rng(0)))
        model.train()
        got = count_correct(model, x_test, y_test)
        assert got == BASELINE_CORRECT, (f"count_correct of a model in train mode gave {got}, not {BASELINE_CORRECT}: "
                                         "count in eval mode (kata 14's inference_mode), with Dropout off")
        still = [type(m).__name__ for m in model.modules() if not m.training]
        assert not still, f"count_correct should restore each module's training flag; now in eval mode: {still}"

    def test_measure_records_accuracy_bytes_and_flops(self, baseline, digits):
        """measure(int8 arrays of the baseline) gives accuracy = correct / 359, the arrays' bytes (6,496) and kata 14's FLOPs."""
        _, x_test, _, y_test = digits
        arrays = int8_arrays(shipped_arrays())
        result = measure(arrays, baseline, x_test, y_test, rounds=3, clock=ScriptedClock([2.0] * 3, [2.0] * 3))
        assert isinstance(result, Measurement), f"measure should return a Measurement, got {type(result).__name__}"
        expected = correct_of(model_from_arrays(arrays), x_test, y_test)
        assert type(result.correct) is int and result.correct == expected, \
            f"correct: expected the int {expected}, got {result.correct!r}"
        assert result.images == HELD_OUT, f"images: expected {HELD_OUT}, got {result.images!r}"
        assert isinstance(result.accuracy, float) and result.accuracy == expected / HELD_OUT, \
            f"accuracy: expected {expected} / {HELD_OUT} as a float, got {result.accuracy!r}"
        nbytes = sum(a.nbytes for a in arrays.values())
        assert type(result.bytes) is int and result.bytes == nbytes == 6496, \
            f"bytes: every array the submission keeps, int8 weights, scales and biases: {nbytes}; got {result.bytes!r}"
        assert type(result.flops) is int and result.flops == baseline_flops(16, 32), \
            f"flops of a batch of {BATCH}: expected {baseline_flops(16, 32):,} (kata 14's count_flops), got {result.flops!r}"

    def test_measure_reads_the_model_from_the_arrays(self, baseline, digits):
        """A smaller model's arrays (float16, low rank) are measured as what they hold: their bytes and FLOPs, their accuracy."""
        _, x_test, _, y_test = digits
        model = cnn(3, 5, rank=2, seed=9)
        arrays = {name: value.astype(np.float16) if name.endswith("weight") else value
                  for name, value in arrays_of(model, ("conv1", "conv2", "fc1", "fc2")).items()}
        result = measure(arrays, baseline, x_test, y_test, rounds=3, clock=NoClock())
        assert result.bytes == sum(a.nbytes for a in arrays.values()), \
            f"bytes: expected the arrays' {sum(a.nbytes for a in arrays.values())}, got {result.bytes}"
        assert result.flops == baseline_flops(3, 5, rank=2), \
            f"flops: expected {baseline_flops(3, 5, rank=2):,} for (3, 5) channels and rank 2, got {result.flops:,}"
        assert result.correct == correct_of(model_from_arrays(arrays), x_test, y_test)

    def test_latency_is_the_inverse_paired_speedup(self, baseline, digits):
        """With a scripted clock (baseline calls 2, 4, 2, 4 s; the model's 1 s) latency_ratio = 1 / sqrt(8), kata 19's paired speed-up inverted."""
        _, x_test, _, y_test = digits
        clock = ScriptedClock([2.0, 4.0, 2.0, 4.0], [1.0] * 4)
        result = measure(int8_arrays(shipped_arrays()), baseline, x_test, y_test, rounds=4, clock=clock)
        assert clock.reads == 16, (f"measure(rounds=4) should read the clock 16 times (interleaved: before and after "
                                   f"each of 4 baseline and 4 model calls), read it {clock.reads} times")
        expected = 1 / math.sqrt(8)
        assert result.latency_ratio is not None and abs(result.latency_ratio - expected) < 1e-12, (
            f"latency_ratio: expected 1 / (geometric mean of the per-pair speed-ups 2, 4, 2, 4) = {expected:.6f}, got "
            f"{result.latency_ratio!r} (1/3 would be a ratio of means; 0.5 or 2 a wrong order or no inverse)")
        assert isinstance(result.latency_ratio, float), "latency_ratio should be a Python float"

    def test_the_baseline_is_timed_first_on_a_batch(self, baseline, digits):
        """interleaved(baseline, model): the baseline's 4 s calls are the baseline's times (ratio 1/4, not 4), each on the first BATCH images.

        Hint: interleaved(baseline_call, model_call, ...) returns (baseline times, model times) in
        the order the two callables are given; both run on Tensor(images[:BATCH]), the batch the
        verifier times, not on every held-out image.
        """
        _, x_test, _, y_test = digits
        spy = Spy()
        spied = Sequential(spy, *baseline.layers)
        result = measure(int8_arrays(shipped_arrays()), spied, x_test, y_test, rounds=3, clock=SpyClock(spy))
        assert result.latency_ratio is not None and abs(result.latency_ratio - 0.25) < 1e-12, (
            f"latency_ratio: the baseline's calls last 4 s and the model's 1 s, so 0.25; got {result.latency_ratio!r} "
            "(4.0 means the two were handed to interleaved the other way round)")
        assert len(spy.shapes) >= 3 and all(shape == (BATCH, 1, 8, 8) for shape in spy.shapes), (
            f"each timed call should take the first {BATCH} images, ({BATCH}, 1, 8, 8); the baseline saw {spy.shapes}")

    def test_a_model_below_target_is_never_timed(self, baseline, digits):
        """Accuracy first: 96 right of 99 images (96.97%) is below 97%: latency_ratio None, the clock never read; 97 of 100 is timed."""
        _, x_test, _, y_test = digits
        right = logits_of(baseline, x_test).argmax(axis=1) == y_test
        wrong, good = np.flatnonzero(~right), np.flatnonzero(right)
        arrays = arrays_of(baseline)
        clock = NoClock()
        below = np.concatenate([good[:96], wrong])
        result = measure(arrays, baseline, x_test[below], y_test[below], rounds=3, clock=clock)
        assert result.latency_ratio is None and clock.reads == 0, (
            f"96 of 99 right ({96 / 99:.2%}) is below the target {TARGET_ACCURACY:.0%}: latency_ratio should be None "
            f"and the clock never read; got latency_ratio {result.latency_ratio!r} after {clock.reads} clock reads")
        at_target = np.concatenate([good[:97], wrong])
        result = measure(arrays, baseline, x_test[at_target], y_test[at_target], rounds=3,
                         clock=ScriptedClock([1.0] * 3, [1.0] * 3))
        assert result.latency_ratio is not None and abs(result.latency_ratio - 1.0) < 1e-12, \
            f"97 of 100 right is exactly the target: it is timed (ratio 1.0 here), got {result.latency_ratio!r}"

    def test_measure_leaves_the_baseline_as_it_was(self, digits):
        """The baseline, in train mode before measure, is in train mode after it, with the same weights."""
        _, x_test, _, y_test = digits
        model = event_model(shipped_arrays())
        model.train()
        before = snapshot(model)
        measure(arrays_of(model), model, x_test, y_test, rounds=2, clock=ScriptedClock([1.0] * 2, [1.0] * 2))
        assert model.training and all(m.training for m in model.modules()), \
            "measure should time the baseline in eval mode and give it back in the mode it was in"
        assert_unchanged(model, before, "measure")


# -- score ----------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("score")
class TestScore:
    def test_points_for_bytes_and_time(self):
        """20 log2(24,360 / bytes) + 40 log2(1 / latency ratio): int8 alone at the baseline's speed, then pruned and twice as fast."""
        got = score(0.98, 6496, 1.0)
        expected = 20 * math.log2(BASELINE_BYTES / 6496)
        assert isinstance(got, float) and abs(got - expected) < 1e-9, \
            f"score(0.98, 6496 bytes, latency 1.0): expected {expected:.6f} (size points only), got {got!r}"
        got = score(0.975, 3010, 0.5)
        expected = 20 * math.log2(BASELINE_BYTES / 3010) + 40
        assert abs(got - expected) < 1e-9, f"score(0.975, 3010 bytes, latency 0.5): expected {expected:.6f}, got {got!r}"
        got = score(0.99, 8192, 1.05)
        expected = 20 * math.log2(BASELINE_BYTES / 8192) + 40 * math.log2(1 / 1.05)
        assert abs(got - expected) < 1e-9, \
            f"score(0.99, 8192, 1.05): slower within budget loses points: expected {expected:.6f}, got {got!r}"

    def test_each_bound_is_within_budget(self):
        """Exactly 97%, exactly 8,192 bytes and exactly 1.1x still score; a hair beyond any of them scores 0."""
        assert score(TARGET_ACCURACY, MAX_BYTES, MAX_LATENCY_RATIO) > 0, \
            f"score({TARGET_ACCURACY}, {MAX_BYTES}, {MAX_LATENCY_RATIO}): every bound is within budget"
        for args, what in (((0.9699, 4000, 0.8), "accuracy below 97%"), ((0.98, 8193, 0.8), "8,193 bytes"),
                           ((0.98, 4000, 1.1001), "latency 1.1001x")):
            got = score(*args)
            assert got == 0.0 and isinstance(got, float), f"score{args}: {what} is over budget, expected 0.0, got {got!r}"

    def test_no_latency_no_score(self):
        """A model that was not timed (latency_ratio None) scores 0.0."""
        got = score(0.99, 4000, None)
        assert got == 0.0 and isinstance(got, float), f"score(0.99, 4000, None): expected 0.0, got {got!r}"

    def test_missed_budgets_names_each(self):
        """missed_budgets gives one sentence per budget missed, naming accuracy, bytes or latency; [] when all are met."""
        assert missed_budgets(0.98, 4000, 0.9) == [], "nothing is missed at 98%, 4,000 bytes, 0.9x"
        assert missed_budgets(TARGET_ACCURACY, MAX_BYTES, MAX_LATENCY_RATIO) == [], "each bound is within budget"
        for args, word in (((0.96, 4000, 0.9), "accuracy"), ((0.98, 24360, 0.9), "bytes"), ((0.98, 4000, 1.5), "latency")):
            got = missed_budgets(*args)
            assert isinstance(got, list) and len(got) == 1 and word in got[0], \
                f"missed_budgets{args}: expected one sentence naming {word!r}, got {got!r}"
        got = missed_budgets(0.5, 10 ** 6, 3.0)
        assert len(got) == 3, f"missed_budgets(0.5, 1,000,000, 3.0): all three are missed, got {got!r}"
        assert missed_budgets(0.98, 4000, None) == [], "a latency of None misses no budget by itself"


# -- compress -----------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("compress")
class TestCompress:
    def test_shrink_removes_channels_and_leaves_the_model(self, baseline):
        """shrink(baseline, 0.25) has 12 and 24 channels and Linear(96, 10); the baseline keeps its arrays, and they share none."""
        before = snapshot(baseline)
        smaller = shrink(baseline, 0.25)
        named = layers_of(smaller)
        shapes = [layer.weight.shape for layer in named]
        assert shapes == [(12, 1, 3, 3), (24, 12, 3, 3), (96, 10)], \
            f"shrink(baseline, 0.25): expected weights (12, 1, 3, 3), (24, 12, 3, 3), (96, 10), got {shapes}"
        assert_unchanged(baseline, before, "shrink")
        for mine in smaller.parameters():
            assert not any(np.shares_memory(mine.data, theirs.data) for theirs in baseline.parameters()), \
                "shrink's model shares an array with the baseline: fine-tuning it would change the baseline"
        assert not any(m.training for m in smaller.modules()), "shrink should return the model in eval mode"

    def test_amount_zero_is_an_independent_copy(self, baseline, digits):
        """shrink(baseline, 0) computes the same logits, but is a new model sharing no array with the baseline."""
        copy = shrink(baseline, 0.0)
        assert copy is not baseline, "shrink(model, 0) should return a new model, not the model itself"
        x = digits[1][:16]
        assert_close(logits_of(copy, x), logits_of(baseline, x), "shrink(baseline, 0) logits", rtol=0, atol=0)
        for mine in copy.parameters():
            assert not any(np.shares_memory(mine.data, theirs.data) for theirs in baseline.parameters()), \
                "shrink(model, 0) shares an array with the model"

    def test_a_low_rank_head(self, baseline, digits):
        """shrink(baseline, 0, fc_rank=10) puts Linear(128, 10, no bias), Linear(10, 10) flat in the Sequential: the same logits (full rank)."""
        low = shrink(baseline, 0.0, fc_rank=10)
        assert len(low.layers) == 9, f"the low-rank pair should sit flat in the Sequential: 9 layers, got {len(low.layers)}"
        first, second = low.layers[7], low.layers[8]
        assert isinstance(first, Linear) and first.bias is None and first.weight.shape == (128, 10), \
            f"the first factor should be Linear(128, 10, bias=False), got {first!r}"
        assert isinstance(second, Linear) and second.bias is not None, f"the second factor holds the bias, got {second!r}"
        x = digits[1][:16]
        assert_close(logits_of(low, x), logits_of(baseline, x), "logits with a full-rank (10) head", rtol=1e-4, atol=1e-4)
        both = shrink(baseline, 0.5, fc_rank=4)
        shapes = [layer.weight.shape for layer in layers_of(both)]
        assert shapes == [(8, 1, 3, 3), (16, 8, 3, 3), (64, 4), (4, 10)], \
            f"shrink(baseline, 0.5, fc_rank=4): expected (8, 1, 3, 3), (16, 8, 3, 3), (64, 4), (4, 10), got {shapes}"

    def test_fine_tune_is_the_documented_loop(self, digits):
        """fine_tune matches Adam on make_batches with ONE seeded rng for the run, batch-size-weighted epoch losses, eval mode after."""
        x_train, _, y_train, _ = digits
        x, y = x_train[:100], y_train[:100]  # batches of 32, 32, 32 and 4
        mine, theirs = cnn(3, 4, seed=10), cnn(3, 4, seed=10)
        mine.train()
        x_before, y_before = x.copy(), y.copy()
        losses = fine_tune(mine, x, y, epochs=2, lr=0.01, batch_size=32, seed=5)
        optimizer, rng, expected = Adam(theirs.parameters(), lr=0.01), np.random.default_rng(5), []
        for _ in range(2):
            total = 0.0
            for xb, yb in make_batches(x, y, 32, rng):
                optimizer.zero_grad()
                loss = cross_entropy(theirs(Tensor(xb)), yb)
                loss.backward()
                optimizer.step()
                total += float(loss.data) * len(xb)
            expected.append(total / len(x))
        assert isinstance(losses, list) and len(losses) == 2 and all(isinstance(v, float) for v in losses), \
            f"fine_tune(epochs=2) should return 2 floats, one mean loss per epoch; got {losses!r}"
        assert_close(np.array(losses), np.array(expected), "each epoch's mean loss (weighted by batch size)", rtol=1e-5,
                     atol=1e-6)
        for index, (p, q) in enumerate(zip(mine.parameters(), theirs.parameters())):
            assert_close(p.data, q.data, f"parameter {index} after fine_tune (Adam, lr 0.01, make_batches with one "
                         f"default_rng(5) for both epochs)", rtol=1e-4, atol=1e-6)
        assert not any(m.training for m in mine.modules()), "fine_tune should leave the model in eval mode"
        assert np.array_equal(x, x_before) and np.array_equal(y, y_before), "fine_tune must not change the images or labels"

    def test_fine_tune_trains_in_train_mode(self, digits):
        """A model handed over in eval mode (as shrink returns it) runs every training forward in train mode, and ends in eval mode.

        Hint: call model.train() before the loop: a Dropout or BatchNorm of the family-to-be must
        behave as in training while it learns; model.eval() once it is done.
        """
        x_train, _, y_train, _ = digits
        spy = Spy()
        model = Sequential(spy, *cnn(2, 3, seed=15).layers).eval()
        fine_tune(model, x_train[:40], y_train[:40], epochs=1, batch_size=16)
        assert spy.modes and all(spy.modes), (
            f"fine_tune's forwards should run in train mode; the training flag per forward was {spy.modes}")
        assert not any(m.training for m in model.modules()), "fine_tune should leave the model in eval mode"

    def test_fine_tune_recovers_a_pruned_model(self, baseline, digits):
        """Half the channels removed read fewer digits; one epoch on 700 training images wins accuracy back, the loss falling."""
        x_train, x_test, y_train, y_test = digits
        pruned = shrink(baseline, 0.5)
        before = correct_of(pruned, x_test, y_test)
        losses = fine_tune(pruned, x_train[:700], y_train[:700], epochs=2, lr=3e-3)
        after = correct_of(pruned, x_test, y_test)
        assert losses[1] < losses[0], f"the second epoch's mean loss should be lower than the first's, got {losses}"
        assert after >= before + 20, (f"fine-tuning should win back accuracy: {before} of {HELD_OUT} before, {after} "
                                      f"after 2 epochs on 700 images")

    def test_distillation_from_a_teacher(self, digits):
        """With a teacher, the loss is distillation_loss against its logits: alpha=1 and the model as its own teacher changes nothing; alpha=0.5 is the documented loss."""
        x_train, _, y_train, _ = digits
        x, y = x_train[:64], y_train[:64]
        model, twin = cnn(3, 4, seed=11), cnn(3, 4, seed=11)
        before = snapshot(model)
        losses = fine_tune(model, x, y, epochs=1, lr=0.01, teacher=twin, alpha=1.0)
        assert abs(losses[0]) < 1e-6, f"distilling from an identical teacher with alpha=1 has loss 0, got {losses[0]!r}"
        assert_unchanged(model, before, "fine_tune with alpha=1 and an identical teacher (every gradient is 0)")
        assert all(p.grad is None or not np.any(p.grad) for p in twin.parameters()), \
            "the teacher received gradients: compute its logits without a graph (no_grad) and use them as targets"
        teacher, student, check = cnn(4, 6, seed=12), cnn(3, 4, seed=13), cnn(3, 4, seed=13)
        fine_tune(student, x, y, epochs=1, lr=0.01, batch_size=32, seed=1, teacher=teacher, temperature=3.0, alpha=0.5)
        optimizer, rng = Adam(check.parameters(), lr=0.01), np.random.default_rng(1)
        for xb, yb in make_batches(x, y, 32, rng):
            optimizer.zero_grad()
            targets = logits_of(teacher, xb)
            distillation_loss(check(Tensor(xb)), targets, yb, temperature=3.0, alpha=0.5).backward()
            optimizer.step()
        for index, (p, q) in enumerate(zip(student.parameters(), check.parameters())):
            assert_close(p.data, q.data, f"parameter {index} after distilling (temperature 3, alpha 0.5)", rtol=1e-4,
                         atol=1e-6)


# -- submission --------------------------------------------------------------------------------------------------


def measured(arrays: dict, accuracy: float = 0.99, latency=1.0) -> Measurement:
    return Measurement(accuracy=accuracy, correct=round(accuracy * HELD_OUT), images=HELD_OUT,
                       bytes=int(sum(a.nbytes for a in arrays.values())), flops=1, latency_ratio=latency)


def read_strict(path) -> dict:
    def refuse(name):
        raise AssertionError(f"{path.name} holds {name}, which strict JSON does not allow")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.mark.checkpoint("submission")
class TestSubmission:
    def test_writes_the_arrays_and_the_description(self, tmp_path):
        """export_submission writes ada.npz (exactly the arrays, np.savez) and ada.json (every documented field) and returns the JSON's path."""
        arrays = int8_arrays(shipped_arrays())
        result = measured(arrays, accuracy=355 / HELD_OUT, latency=0.97)
        path = export_submission(tmp_path, "ada", arrays, result, "Ada Lovelace", ["int8 weights, per channel"],
                                 created_at="2025-03-01T10:00:00Z")
        assert path == tmp_path / "ada.json", f"export_submission should return {tmp_path / 'ada.json'}, got {path!r}"
        with np.load(tmp_path / "ada.npz", allow_pickle=False) as saved:
            assert sorted(saved.files) == sorted(arrays), f"ada.npz should hold exactly {sorted(arrays)}, got {saved.files}"
            for name, value in arrays.items():
                assert saved[name].dtype == value.dtype and np.array_equal(saved[name], value), \
                    f"ada.npz: {name!r} should be saved as it is ({value.dtype})"
        data = read_strict(path)
        expected = {
            "format": "tinytorch-capstone-submission", "version": 1, "event": "digits-cnn",
            "participant": "Ada Lovelace", "created_at": "2025-03-01T10:00:00Z",
            "model": {"weights": "ada.npz", "conv1_channels": 16, "conv2_channels": 32, "fc_rank": None,
                      "storage": {"conv1": "int8", "conv2": "int8", "fc": "int8"}},
            "claims": {"accuracy": 355 / HELD_OUT, "bytes": 6496, "latency_ratio": 0.97},
            "recipe": ["int8 weights, per channel"],
        }
        for key, value in expected.items():
            assert data.get(key) == value, f"ada.json: {key!r} should be {value!r}, got {data.get(key)!r}"
        assert sorted(data) == sorted(expected), f"ada.json: expected exactly the fields {sorted(expected)}, got {sorted(data)}"

    def test_describes_the_model_from_the_arrays(self, tmp_path):
        """A low-rank, mixed-storage model: channels, rank and storage read from the arrays; latency null when not timed; a UTC time by default."""
        model = cnn(5, 6, rank=3, seed=14)
        arrays = arrays_of(model, ("conv1", "conv2", "fc1", "fc2"))
        arrays["conv2.weight"] = arrays["conv2.weight"].astype(np.float16)
        arrays.update({k: v for k, v in int8_arrays({"fc2.weight": arrays["fc2.weight"]}).items()})
        path = export_submission(tmp_path, "mix_1.2", arrays, measured(arrays, 0.5, None), "Grace", ["low rank", "fp16"])
        data = read_strict(path)
        assert data["model"] == {"weights": "mix_1.2.npz", "conv1_channels": 5, "conv2_channels": 6, "fc_rank": 3,
                                 "storage": {"conv1": "float32", "conv2": "float16", "fc1": "float32", "fc2": "int8"}}, \
            f"the model description does not match the arrays: {data['model']}"
        assert data["claims"]["latency_ratio"] is None, "a latency that was not measured is claimed as null"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", data["created_at"]), \
            f"created_at should be an ISO-8601 UTC time ending in Z, such as 2025-03-01T10:00:00Z; got {data['created_at']!r}"

    @pytest.mark.parametrize("name,participant,recipe,named", [
        ("../ada", "Ada", ["x"], "name"), ("a/b", "Ada", ["x"], "name"), (".ada", "Ada", ["x"], "name"),
        ("ada..json", "Ada", ["x"], "name"),
        ("ada", "Ada\x1b[2J", ["x"], "participant"), ("ada", "<b>Ada</b>", ["x"], "participant"),
        ("ada", "Ada\u202eevil", ["x"], "participant"),
        ("ada", "A" * 41, ["x"], "participant"), ("ada", "  ", ["x"], "participant"),
        ("ada", "Ada", [], "recipe"), ("ada", "Ada", ["x"] * 21, "recipe"), ("ada", "Ada", ["ok", "two\nlines"], "recipe"),
        ("ada", "Ada", ["y" * 201], "recipe"), ("ada", "Ada", "int8", "recipe"),
    ])
    def test_what_a_board_cannot_show_is_refused(self, tmp_path, name, participant, recipe, named):
        """A name with folders, a participant or recipe line with control characters, markup or too long: a ValueError naming it, nothing written."""
        arrays = arrays_of(cnn(2, 2))
        raises_naming(lambda: export_submission(tmp_path, name, arrays, measured(arrays), participant, recipe),
                      ValueError, [named], f"export_submission(name={name!r}, participant={participant!r})")
        assert list(tmp_path.iterdir()) == [], f"nothing should be written when the submission is refused: {list(tmp_path.iterdir())}"

    def test_text_at_its_limits_is_accepted(self, tmp_path):
        """A participant of exactly 40 characters, 20 recipe lines, one of exactly 200: all accepted and written as given."""
        arrays = arrays_of(cnn(2, 2))
        recipe = ["y" * 200] + [f"step {i}" for i in range(19)]
        path = export_submission(tmp_path, "edge", arrays, measured(arrays), "A" * 40, recipe)
        data = read_strict(path)
        assert data["participant"] == "A" * 40 and data["recipe"] == recipe, (
            "a participant of 40 characters and 20 recipe lines, one of 200 characters, are within the limits; "
            f"got participant {data['participant']!r} and {len(data['recipe'])} recipe lines")

    def test_the_verifier_accepts_it(self, baseline, digits, tmp_path):
        """The verifier reads what export_submission wrote, measures the same accuracy and bytes, and does not reject it."""
        _, x_test, _, y_test = digits
        arrays = export_arrays(baseline, "int8")
        # a scripted clock: a claim measured in a few noisy rounds on a busy machine could be off by 2x
        result = measure(arrays, baseline, x_test, y_test, rounds=3, clock=ScriptedClock([1.0] * 3, [1.0] * 3))
        path = export_submission(tmp_path, "int8-baseline", arrays, result, "Ada", ["int8 weights"])
        verdict = verifier.verify(path, seconds=0.02)
        assert verdict["status"] != verifier.REJECTED, f"the verifier rejected the submission: {verdict['reasons']}"
        images, labels = verifier.held_out_digits()  # the verifier's split is the milestones' split
        assert np.array_equal(images, x_test) and np.array_equal(labels, y_test), "the verifier measures other images"
        assert verdict["measured"]["correct"] == result.correct and verdict["measured"]["bytes"] == result.bytes, \
            (f"the verifier measured {verdict['measured']['correct']} right and {verdict['measured']['bytes']} bytes; "
             f"measure said {result.correct} and {result.bytes}")


# -- optimize ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def optimised(digits):
    """optimise's default recipe on the shipped baseline, and a snapshot of the baseline taken before."""
    x_train, _, y_train, _ = digits
    model = event_model(shipped_arrays())
    before = snapshot(model)
    arrays = optimise(model, x_train, y_train)
    return model, before, arrays


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_accuracy_meets_the_target(self, optimised, digits):
        """The recipe's arrays, rebuilt, read at least 97% of the held-out digits (349 of 359) and leave the baseline as it was."""
        model, before, arrays = optimised
        assert_unchanged(model, before, "optimise")
        _, x_test, _, y_test = digits
        correct = correct_of(model_from_arrays(arrays), x_test, y_test)
        assert correct / HELD_OUT >= TARGET_ACCURACY, (f"the recipe reads {correct} of {HELD_OUT} ({correct / HELD_OUT:.2%}); "
                                                       f"the target is {TARGET_ACCURACY:.0%} ({math.ceil(TARGET_ACCURACY * HELD_OUT)})")

    def test_half_the_byte_budget(self, optimised):
        """The recipe's arrays hold at most 4,096 bytes, half the budget of 8,192."""
        nbytes = sum(a.nbytes for a in optimised[2].values())
        assert nbytes <= MAX_BYTES // 2, f"the recipe's arrays hold {nbytes:,} bytes; at most {MAX_BYTES // 2:,} (half the budget)"

    def test_fewer_flops(self, optimised):
        """The recipe's model costs at most three quarters of the baseline's FLOPs: fewer multiply-adds is what makes it faster."""
        flops = count_flops(model_from_arrays(optimised[2]), (BATCH, 1, 8, 8))
        base = baseline_flops(16, 32)
        assert flops <= 0.75 * base, (f"the recipe's model costs {flops:,} FLOPs per batch of {BATCH}, "
                                      f"{flops / base:.2f}x the baseline's {base:,}; at most 0.75x")

    @pytest.mark.budget
    def test_the_verifier_scores_it(self, optimised, digits, tmp_path):
        """The submission of the recipe is verified and SCORED above 40 points (the verifier times it itself)."""
        model, _, arrays = optimised
        _, x_test, _, y_test = digits
        result = measure(arrays, model, x_test, y_test, rounds=3, clock=ScriptedClock([1.0] * 3, [1.0] * 3))
        path = export_submission(tmp_path, "recipe", arrays, result, "Recipe", ["optimise()'s defaults"])
        verdict = verifier.verify(path, seconds=0.3)
        assert verdict["status"] == verifier.SCORED and verdict["score"] > 40, (
            f"the verifier says {verdict['status']} with score {verdict['score']}: {verdict['reasons']}; measured "
            f"{verdict['measured']}")

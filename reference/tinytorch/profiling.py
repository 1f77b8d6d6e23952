"""Kata 14 · Profiling: measure what a model costs before trying to make it cheaper.

Four numbers describe the cost of a model: the parameters it learns (and their bytes),
the floating-point operations of a forward pass, the memory a training step holds, and
the time a call takes. This module measures each on any model of katas 04-13, and puts
them together layer by layer:

    count_parameters(model)                   # numbers learned; a shared Parameter counts once
    parameter_bytes(model)                    # their bytes, each at its own dtype
    count_flops(model, (32, 784))             # FLOPs of one forward pass on a batch of 32
    training_memory(model, x, "adam")         # parameters, gradients, Adam's state, activations
    measure_latency(lambda: model(x))         # warm-up, then repeats: median and percentiles
    print(profile_model(model, x))            # per module: time, FLOPs, bytes, slowest first

FLOPs follow the convention of most papers and of PyTorch's FlopCounterMode: a
multiply-accumulate of a matrix product or a convolution is 2 FLOPs; bias adds and
element-wise work (activations, normalisation, softmax, residual adds, pooling) count 0.
A module is seen through forward hooks (`Module.register_forward_hook`, kata 04).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tinytorch.attention import MultiHeadAttention
from tinytorch.autograd import no_grad, topological_order
from tinytorch.convolutions import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d
from tinytorch.embeddings import Embedding, PositionalEmbedding, TokenAndPositionEmbedding
from tinytorch.layers import Dropout, Linear, Module, Sequential
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT, MLP, Block, LayerNorm


def as_array(value) -> np.ndarray:
    """The numpy array of a Tensor, or the value as an array."""
    return value.data if isinstance(value, Tensor) else np.asarray(value)


# -- parameters: what the model learns ------------------------------------------------------------


def count_parameters(model: Module) -> int:
    """How many numbers `model` learns: the sizes of its Parameters, one shared by two modules counted once."""
    # BEGIN SOLUTION parameters: add up the sizes of model.parameters() (which lists a shared Parameter once) as a Python int
    return int(sum(parameter.size for parameter in model.parameters()))
    # END SOLUTION


def parameter_bytes(model: Module, dtype=None) -> int:
    """The bytes of `model`'s parameters: each at its own dtype (None), or all of them stored as `dtype`.

    parameter_bytes(model) is what the arrays occupy now (8 bytes a number for float64,
    4 for float32); parameter_bytes(model, np.float16) or parameter_bytes(model, "int8")
    is what they would occupy in that dtype, the question quantization asks.
    """
    # BEGIN SOLUTION parameters: with dtype None add up each parameter's nbytes (its own itemsize); otherwise count_parameters times the itemsize of np.dtype(dtype)
    if dtype is None:
        return int(sum(parameter.nbytes for parameter in model.parameters()))
    return count_parameters(model) * np.dtype(dtype).itemsize
    # END SOLUTION


# -- FLOP rules: what one call of a module computes itself ---------------------------------------
#
# A rule gets what a forward hook gets, (module, inputs, output), and returns the FLOPs the
# module's forward does OUTSIDE the calls of its child modules (those have hooks of their own).


def linear_flops(module: Linear, inputs: tuple, output) -> int:
    """x (..., in) -> (..., out): each output row costs in x out multiply-accumulates; every leading axis is rows.

    2 FLOPs per multiply-accumulate; the bias adds (one per output value) are not counted,
    so Linear(784, 10) on a batch of 32 is 2 * 32 * 784 * 10 = 501,760 FLOPs, bias or not.
    """
    # BEGIN SOLUTION flop_rules: rows = the product of the output's leading axes (batch, time, ...; 1 for a single sample); return 2 * rows * in_features * out_features
    rows = math.prod(as_array(output).shape[:-1])
    return 2 * rows * module.in_features * module.out_features
    # END SOLUTION


def conv2d_flops(module: Conv2d, inputs: tuple, output) -> int:
    """y (N, O, Ho, Wo): each output value sums C x kh x kw products, whatever the stride and padding.

    2 * N * Ho * Wo * O * C * kh * kw: the OUTPUT's size decides it (stride shrinks it, padding grows it).
    """
    # BEGIN SOLUTION flop_rules: 2 * (the number of output values N*O*Ho*Wo) * in_channels * kh * kw
    kernel_h, kernel_w = module.kernel_size
    return 2 * as_array(output).size * module.in_channels * kernel_h * kernel_w
    # END SOLUTION


def attention_flops(batch: int, length_q: int, length_k: int, dim: int) -> int:
    """The two products inside attention over all heads (heads x head_dim = dim), for `batch` sequences.

    Scores Q K^T: per head (T_q, head_dim) @ (head_dim, T_k); mixing P V: per head
    (T_q, T_k) @ (T_k, head_dim). Each is 2 * T_q * T_k * dim FLOPs per sequence, summed
    over heads. Counted dense: a causal mask hides half the scores, but they are computed.
    """
    # BEGIN SOLUTION flop_rules: two products of T_q * T_k * dim multiply-accumulates per sequence, 2 FLOPs each
    return 2 * 2 * batch * length_q * length_k * dim
    # END SOLUTION


def multi_head_attention_flops(module: MultiHeadAttention, inputs: tuple, output) -> int:
    """Self-attention on x (B, T, dim): the scores and the mixing. Its projections are Linears with rules of their own."""
    # BEGIN SOLUTION flop_rules: read B, T and dim from the input x (B, T, dim) and return attention_flops with T queries and T keys
    batch, length, dim = as_array(inputs[0]).shape
    return attention_flops(batch, length, length, dim)
    # END SOLUTION


def block_flops(module: Block, inputs: tuple, output) -> int:
    """A transformer block on x (B, T, C): the attention products, which the block computes itself.

    Block.forward calls self.attn.project_qkv and self.attn.attend (kata 13's seam for a
    KV cache) rather than self.attn(...), so the attention module's own hook never fires:
    its projections are counted as Linears, and the scores and mixing here. LayerNorm,
    GELU and the residual adds are element-wise: 0.
    """
    # BEGIN SOLUTION flop_rules: read B, T and C from the input x (B, T, C) and return attention_flops with T queries and T keys
    batch, length, dim = as_array(inputs[0]).shape
    return attention_flops(batch, length, length, dim)
    # END SOLUTION


def gpt_flops(module: GPT, inputs: tuple, output) -> int:
    """The GPT's own work: with tied weights the LM head is its own product h @ W_token^T (2 C V per token).

    Without tying, `lm_head` is a Linear and counts itself: 0 here. The embeddings are lookups: 0.
    """
    # BEGIN SOLUTION flop_rules: 0 when module.lm_head is a Linear; otherwise 2 * (the number of logits B*T*V) * n_embd
    if module.lm_head is not None:
        return 0
    return 2 * as_array(output).size * module.config.n_embd
    # END SOLUTION


def no_flops(module: Module, inputs: tuple, output) -> int:
    """A module whose own work is element-wise, a lookup, or a call of its children: 0 by the convention."""
    return 0


# The known modules. count_flops(..., rules={MyModule: my_rule}) adds to these (or overrides them).
FLOP_RULES = {
    Linear: linear_flops,
    Conv2d: conv2d_flops,
    MultiHeadAttention: multi_head_attention_flops,
    Block: block_flops,
    GPT: gpt_flops,
    **dict.fromkeys((Sequential, Dropout, Flatten, MaxPool2d, AvgPool2d, BatchNorm2d, Embedding, PositionalEmbedding,
                     TokenAndPositionEmbedding, LayerNorm, MLP), no_flops),
}


# -- counting FLOPs through forward hooks -----------------------------------------------------------


def watch_calls(model: Module, run, on_call):
    """Return run(), with a forward hook on every module of `model` calling on_call(name, module, inputs, output).

    `name` is the module's dotted name ("" for the model itself). A module registered under
    two names (shared) gets ONE hook, under its first name: a second hook would report each
    of its calls twice. Every hook is removed afterwards, also when run() raises.
    """
    # BEGIN SOLUTION count_flops: collect each module once by id (first name wins), register a hook on each that calls on_call with its name, run, and remove every handle in a finally
    first_names = {}
    for name, module in model.named_modules():
        first_names.setdefault(id(module), (name, module))
    handles = []
    try:
        for name, module in first_names.values():
            handles.append(module.register_forward_hook(
                lambda module, inputs, output, name=name: on_call(name, module, inputs, output)))
        return run()
    finally:
        for handle in handles:
            handle.remove()
    # END SOLUTION


@contextmanager
def inference_mode(model: Module):
    """For the with-block: eval mode and no graph recorded; every module's own training flag restored after.

    Measuring must not change the model: in training mode a BatchNorm would update its
    running statistics and a Dropout would draw from its random generator.
    """
    # BEGIN SOLUTION count_flops: remember (module, module.training) for every module, call model.eval(), yield inside no_grad(), and restore each flag in a finally
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training
    # END SOLUTION


def count_flops(model: Module, input_shape: tuple, dtype=np.float32, rules: dict | None = None) -> int:
    """The FLOPs of one forward pass of `model` on an input of `input_shape` (batch included): an int.

    Runs model(np.zeros(input_shape, dtype)) once under inference_mode, with a hook on every
    module (watch_calls); each call adds the FLOPs of the rule for its class, from FLOP_RULES
    or from `rules` ({class: rule(module, inputs, output)}), which adds to and overrides them.
    A class with no rule is a TypeError naming every such module and its class: a count that
    silently leaves a layer out is worse than none. Use dtype=np.int64 for a model that reads ids.
    """
    # BEGIN SOLUTION count_flops: merge FLOP_RULES with `rules`; in on_call add rule(module, inputs, output) for a known class and remember 'name (Class)' for an unknown one; run the zeros input through watch_calls under inference_mode; raise TypeError naming every unknown module (each once), else return the sum as an int
    known = FLOP_RULES | dict(rules or {})
    counted, unknown = [], []

    def on_call(name, module, inputs, output):
        rule = known.get(type(module))  # the exact class: a subclass may compute something else
        if rule is None:
            unknown.append(f"{name or '(model)'} ({type(module).__name__})")
        else:
            counted.append(int(rule(module, inputs, output)))

    x = np.zeros(input_shape, dtype=dtype)
    with inference_mode(model):
        watch_calls(model, lambda: model(x), on_call)
    if unknown:
        raise TypeError(f"count_flops: no FLOP rule for {', '.join(dict.fromkeys(unknown))}. Pass "
                        f"rules={{TheClass: rule}}, where rule(module, inputs, output) returns the FLOPs its "
                        f"forward does outside its child modules (0 if it only calls them)")
    return sum(counted)
    # END SOLUTION


# -- memory: what a training step holds -------------------------------------------------------------


def graph_bytes(output: Tensor, exclude=()) -> int:
    """Bytes of the arrays that the autograd graph behind `output` keeps alive until backward.

    Every tensor reachable from `output` through .parents (output included) holds its .data,
    and every op's .saved holds what its backward rule needs (attention's weights, a
    convolution's columns, LayerNorm's normalised input). Each numpy array counts once, by
    the buffer it looks at: a reshape, a transpose or a slice shares its parent's memory.
    The arrays of `exclude` (Tensors or arrays: the parameters and the input batch, which
    exist without the graph) are not counted.
    """
    # BEGIN SOLUTION memory: walk topological_order(output); for each node's data and each numpy array in node.saved, follow .base to the array that owns the memory; add each owner's nbytes once, skipping the owners of `exclude`
    def owner(array: np.ndarray) -> np.ndarray:  # the array whose memory a view looks at
        while isinstance(array.base, np.ndarray):
            array = array.base
        return array

    skipped = {id(owner(as_array(value))) for value in exclude}
    held = {}  # id of an owning array -> its bytes
    for node in topological_order(output):
        for array in (node.data, *node.saved.values()):
            if isinstance(array, np.ndarray) and id(owner(array)) not in skipped:
                held[id(owner(array))] = owner(array).nbytes
    return sum(held.values())
    # END SOLUTION


@dataclass(frozen=True)
class TrainingMemory:
    """The bytes a training step holds, by what holds them."""

    parameters: int
    gradients: int
    optimizer_state: int
    activations: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state + self.activations

    def __str__(self) -> str:
        parts = ("parameters", "gradients", "optimizer_state", "activations", "total")
        return "\n".join(f"{part.replace('_', ' '):<16}{getattr(self, part) / 2**20:>10.2f} MiB" for part in parts)


# Arrays of optimizer state per parameter: SGD none, SGD with momentum a velocity, Adam two moments.
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")


def training_memory(model: Module, x, optimizer: str = "adam") -> TrainingMemory:
    """Predict, from shapes, the bytes a training step of `model` on the batch `x` holds.

    parameters: parameter_bytes(model). gradients: backward gives every Parameter a gradient
    of its shape and dtype. optimizer_state: per parameter, 0 arrays for "sgd", 1 for
    "momentum" (the velocity), 2 for "adam" and "adamw" (the two moments). activations:
    graph_bytes of one forward pass model(x), the parameters and x excluded. Runs that
    forward pass (in the model's current mode), and nothing else.
    """
    # BEGIN SOLUTION memory: refuse an optimizer not in OPTIMIZERS (ValueError naming it and the choices); gradients are the parameters' bytes again; Adam's state twice them, momentum's once, SGD's none; activations = graph_bytes(model(x), exclude=[*model.parameters(), x])
    slots = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
    if optimizer not in slots:
        raise ValueError(f"training_memory: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    weights = parameter_bytes(model)
    activations = graph_bytes(model(x), exclude=[*model.parameters(), x])
    return TrainingMemory(parameters=weights, gradients=weights, optimizer_state=slots[optimizer] * weights,
                          activations=activations)
    # END SOLUTION


# -- latency: time, measured honestly -----------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """The seconds of each timed call, in the order they ran (warm-up calls are not among them)."""

    samples: tuple

    def percentile(self, p: float) -> float:
        """The nearest-rank p-th percentile: the smallest sample with at least p% of the samples at or below it.

        With the n samples sorted, that is sorted[ceil(p * n / 100) - 1], and the smallest
        sample for p = 0. It is always one of the samples, never an interpolation. p outside
        [0, 100] is a ValueError.
        """
        # BEGIN SOLUTION latency: refuse p outside [0, 100] (ValueError naming it); sort the samples and return the one at index max(ceil(p * n / 100), 1) - 1
        if not 0 <= p <= 100:
            raise ValueError(f"percentile: p must be in [0, 100], got {p}")
        ordered = sorted(self.samples)
        return ordered[max(math.ceil(p * len(ordered) / 100), 1) - 1]
        # END SOLUTION

    @property
    def median(self) -> float:
        """The middle sample; with an even number of samples, the mean of the two middle ones."""
        # BEGIN SOLUTION latency: sort; the middle one for an odd count, the mean of the two middle ones for an even count
        ordered, middle = sorted(self.samples), len(self.samples) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        # END SOLUTION

    @property
    def best(self) -> float:
        return min(self.samples)

    def __str__(self) -> str:
        return (f"median {self.median * 1e3:.3f} ms, p90 {self.percentile(90) * 1e3:.3f} ms, "
                f"p99 {self.percentile(99) * 1e3:.3f} ms, best {self.best * 1e3:.3f} ms over {len(self.samples)} runs")


def measure_latency(fn, warmup: int = 3, repeats: int = 20, clock=time.perf_counter) -> Latency:
    """Call fn() `warmup` times untimed, then `repeats` times, each call timed on its own with `clock`.

    `clock()` returns seconds (time.perf_counter; a test passes a fake clock to make the
    statistics exact). The warm-up calls pay for what only the first calls pay (caches,
    allocations, lazy imports) and are left out of the statistics. warmup must be an int
    >= 0 and repeats an int >= 1 (ValueError naming the one that is not).
    """
    # BEGIN SOLUTION latency: check warmup and repeats (ValueError naming them); call fn warmup times; then for each repeat read the clock, call fn, and keep the clock's difference; return Latency(tuple(samples))
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"measure_latency: warmup must be an int >= 0, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"measure_latency: repeats must be an int >= 1, got {repeats!r}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = clock()
        fn()
        samples.append(clock() - start)
    return Latency(tuple(samples))
    # END SOLUTION


# -- the per-layer profile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerProfile:
    """One call of one module in a forward pass: what it did itself, and how long it took with its children."""

    name: str  # its dotted name in the model; "(model)" for the model itself
    kind: str  # its class name
    output_shape: tuple
    flops: int | None  # its own FLOPs (its rule's); None: no rule for its class
    parameter_bytes: int  # the bytes of its own parameters (not its children's)
    output_bytes: int  # the bytes of its output
    seconds: float  # its self time: the median time of a call, minus its child modules' calls (at least 0)
    total_seconds: float  # the median time of a call, children included


@dataclass(frozen=True)
class Profile:
    """Every module call of one forward pass, by self time, largest first."""

    layers: tuple  # of LayerProfile
    total_seconds: float  # the model's own call, everything included
    total_flops: int | None  # None if some module had no FLOP rule

    def __str__(self) -> str:
        return format_profile(self)


def profile_model(model: Module, x, warmup: int = 2, repeats: int = 10, clock=time.perf_counter,
                  rules: dict | None = None) -> Profile:
    """Profile one forward pass of `model` on x, module by module, as inference (inference_mode).

    One pass with watch_calls records every module call: its inputs and output, its own
    FLOPs from the rules (FLOP_RULES and `rules`; None for a class without one), and the
    calls of its child modules made inside it (they finish before it does). Each call is
    then timed again on its recorded positional inputs with measure_latency (the median):
    its total. Its self time is its total minus its children's totals, so the self times
    of all calls add up to the model's total. Rows sorted by self time, largest first (a
    stable sort: equal times keep the order in which the calls finished).
    """
    # BEGIN SOLUTION profile: in on_call, take as this call's children the unclaimed calls at the end of the list whose modules are inside this module, then record (name, module, inputs, output, flops, children); time every call with measure_latency(lambda: module(*inputs)) under inference_mode; self time = max(total - the children's totals, 0); sort by self time, largest first
    known = FLOP_RULES | dict(rules or {})
    calls, unclaimed = [], []  # every call in the order it finished; indices of calls whose caller is still running

    def on_call(name, module, inputs, output):
        inside = {id(descendant) for descendant in module.modules()} - {id(module)}
        children = []
        while unclaimed and id(calls[unclaimed[-1]][1]) in inside:
            children.append(unclaimed.pop())
        rule = known.get(type(module))
        flops = None if rule is None else int(rule(module, inputs, output))
        calls.append((name, module, inputs, output, flops, children))
        unclaimed.append(len(calls) - 1)

    with inference_mode(model):
        watch_calls(model, lambda: model(x), on_call)
        totals = [measure_latency(lambda: module(*inputs), warmup, repeats, clock).median
                  for _, module, inputs, _, _, _ in calls]
    layers = []
    for (name, module, inputs, output, flops, children), total in zip(calls, totals):
        own_seconds = max(total - sum(totals[child] for child in children), 0.0)
        own_bytes = sum(parameter.nbytes for parameter in module._parameters.values())
        layers.append(LayerProfile(name or "(model)", type(module).__name__, as_array(output).shape, flops, own_bytes,
                                   as_array(output).nbytes, own_seconds, total))
    layers.sort(key=lambda layer: layer.seconds, reverse=True)
    every_flops = [layer.flops for layer in layers]
    return Profile(tuple(layers), totals[-1], None if None in every_flops else sum(every_flops))
    # END SOLUTION


def format_profile(profile: Profile) -> str:
    """The profile as a text table: a header, one line per call in the profile's order, then the total.

    FLOPs and bytes are written as integers with thousands separators (501,760), an unknown
    FLOP count as '?', times in milliseconds (self, then total), and each self time as a
    percentage of the model's total.
    """
    # BEGIN SOLUTION profile: one row of cells per call and a '(total)' row; each column padded to its widest cell
    def count(value):
        return "?" if value is None else f"{value:,}"

    def share(seconds):
        return f"{100 * seconds / profile.total_seconds:.1f}" if profile.total_seconds > 0 else "-"

    rows = [("module", "type", "output", "FLOPs", "param bytes", "output bytes", "self ms", "total ms", "% self")]
    for layer in profile.layers:
        rows.append((layer.name, layer.kind, str(layer.output_shape), count(layer.flops), count(layer.parameter_bytes),
                     count(layer.output_bytes), f"{layer.seconds * 1e3:.3f}", f"{layer.total_seconds * 1e3:.3f}",
                     share(layer.seconds)))
    rows.append(("(total)", "", "", count(profile.total_flops), "", "", "", f"{profile.total_seconds * 1e3:.3f}",
                 share(profile.total_seconds)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) if column < 3 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows)
    # END SOLUTION


# -- the roofline: how fast can an op be? ----------------------------------------------------------------


def matmul_cost(m: int, k: int, n: int, itemsize: int = 4) -> tuple[int, int]:
    """(FLOPs, bytes) of (m, k) @ (k, n): 2mkn FLOPs; reading both inputs and writing the output once."""
    # BEGIN SOLUTION optimize: 2 * m * k * n FLOPs; (m*k + k*n + m*n) * itemsize bytes
    return 2 * m * k * n, (m * k + k * n + m * n) * itemsize
    # END SOLUTION


def elementwise_cost(size: int, inputs: int = 2, itemsize: int = 4) -> tuple[int, int]:
    """(FLOPs, bytes) of an element-wise op of `inputs` arrays of `size` elements (a + b: inputs=2): one FLOP a
    result; every input read and the output written once."""
    # BEGIN SOLUTION optimize: size FLOPs; (inputs + 1) * size * itemsize bytes
    return size, (inputs + 1) * size * itemsize
    # END SOLUTION


def arithmetic_intensity(flops: int, bytes_moved: int) -> float:
    """FLOPs per byte moved to or from memory: where an op sits on the roofline."""
    # BEGIN SOLUTION optimize: flops / bytes_moved, refusing bytes_moved <= 0 (ValueError)
    if bytes_moved <= 0:
        raise ValueError(f"arithmetic_intensity: bytes_moved must be > 0, got {bytes_moved}")
    return flops / bytes_moved
    # END SOLUTION


def roofline(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The FLOP/s an op of this arithmetic intensity can reach: min(peak FLOP/s, intensity x bytes/s).

    Below the ridge point peak_flops / bandwidth an op is memory-bound: its speed is the
    memory's bandwidth times its intensity. Above it, it is compute-bound.
    """
    # BEGIN SOLUTION optimize: the smaller of peak_flops and intensity * bandwidth
    return min(peak_flops, intensity * bandwidth)
    # END SOLUTION

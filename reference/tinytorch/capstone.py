"""Kata 20 · Capstone: the 1998 CNN made smaller and faster, measured honestly, handed in for scoring.

The event "digits-cnn" gives everyone the same trained model, the 1998 milestone's CNN
(katas/data/capstone_digits_cnn.npz, 99.16% of the 359 held-out digits, 24,360 bytes),
and three budgets: at least 97% accuracy, at most 8,192 bytes, and no slower than the
baseline (a latency ratio of at most 1.1). Within them, each halving of the bytes earns
20 points and each halving of the latency 40. This module is your side of it:

    baseline = load_baseline()                                  # the event's model, in your framework
    x_train, x_test, y_train, y_test = event_data()             # train on x_train only
    smaller = shrink(baseline, amount=0.25)                     # kata 16: channels removed
    fine_tune(smaller, x_train, y_train, epochs=2)              # kata 07: recover the accuracy
    arrays = export_arrays(smaller, "int8")                     # kata 15: a quarter of the bytes
    result = measure(arrays, baseline, x_test, y_test)          # accuracy first, bytes, latency (14, 19)
    score(result.accuracy, result.bytes, result.latency_ratio)  # what the verifier should give
    export_submission("out", "ada", arrays, result, "Ada", ["pruned 25%", "int8"])

Then `python scoreboard.py capstone verify out/ada.json` rebuilds the model from the
arrays alone, measures it again, and scores what it measures, never what you claim.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tinytorch.activations import ReLU
from tinytorch.autograd import no_grad
from tinytorch.benchmarking import compare, interleaved
from tinytorch.compression import distillation_loss, low_rank, prune_structured
from tinytorch.convolutions import Conv2d, Flatten, MaxPool2d
from tinytorch.dataloader import find_data_file, load_digits, train_test_split
from tinytorch.layers import Linear, Parameter, Sequential
from tinytorch.losses import cross_entropy
from tinytorch.optimizers import Adam
from tinytorch.profiling import count_flops, inference_mode
from tinytorch.quantization import Quantized, dequantize, quantize
from tinytorch.tensor import Tensor
from tinytorch.training import make_batches

EVENT = "digits-cnn"
SUBMISSION_FORMAT, SUBMISSION_VERSION = "tinytorch-capstone-submission", 1
BASELINE_FILE = "capstone_digits_cnn.npz"  # in katas/data/
TARGET_ACCURACY = 0.97
MAX_BYTES = 8_192
MAX_LATENCY_RATIO = 1.1
BASELINE_BYTES = 24_360  # 6,090 float32 parameters
SIZE_POINTS, SPEED_POINTS = 20.0, 40.0  # per halving of the bytes, of the latency
MAX_CONV1, MAX_CONV2, CLASSES = 16, 32, 10
BATCH = 32  # images per timed call, as the verifier times them
STORAGES = {"float32": np.float32, "float16": np.float16, "int8": np.int8}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,90}")  # a submission's file name, without .json or .npz


def event_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test): the digits as (N, 1, 8, 8) float32, split as the milestones split them.

    1,438 training images, 359 held out. Fine-tune on x_train only: the verifier measures
    on x_test, and a model trained on it is rejected.
    """
    images, labels = load_digits()
    return tuple(train_test_split(images[:, None], labels, test_fraction=0.2, seed=0))


# -- the family: the baseline and every model a submission may hold ---------------------------------


def build_cnn(conv1_channels: int = MAX_CONV1, conv2_channels: int = MAX_CONV2, fc_rank: int | None = None,
              rng: np.random.Generator | None = None) -> Sequential:
    """The event's CNN with c1 and c2 channels, as a Sequential:

        Conv2d(1, c1, 3, padding=1), ReLU(), MaxPool2d(2),      # (N, 1, 8, 8) -> (N, c1, 4, 4)
        Conv2d(c1, c2, 3, padding=1), ReLU(), MaxPool2d(2),     # -> (N, c2, 2, 2)
        Flatten(), Linear(4 * c2, 10)                           # -> (N, 4 c2) -> (N, 10)

    With fc_rank r, the last Linear is two: Linear(4 * c2, r, bias=False), Linear(r, 10),
    as kata 16's low_rank makes them. c1 must be in 1..16, c2 in 1..32 and r in
    1..min(4 * c2, 10): a ValueError names the one that is not.
    """
    # BEGIN SOLUTION baseline: check each size (ValueError naming it and its range); the two conv stages, Flatten, then one Linear or the low-rank pair
    if isinstance(conv1_channels, bool) or not isinstance(conv1_channels, int) or not 1 <= conv1_channels <= MAX_CONV1:
        raise ValueError(f"build_cnn: conv1_channels must be a whole number from 1 to {MAX_CONV1}, got {conv1_channels!r}")
    if isinstance(conv2_channels, bool) or not isinstance(conv2_channels, int) or not 1 <= conv2_channels <= MAX_CONV2:
        raise ValueError(f"build_cnn: conv2_channels must be a whole number from 1 to {MAX_CONV2}, got {conv2_channels!r}")
    features = 4 * conv2_channels  # c2 channels of 2 x 2 after two poolings
    if fc_rank is not None and (isinstance(fc_rank, bool) or not isinstance(fc_rank, int)
                                or not 1 <= fc_rank <= min(features, CLASSES)):
        raise ValueError(f"build_cnn: fc_rank must be None or a whole number from 1 to {min(features, CLASSES)}, "
                         f"got {fc_rank!r}")
    head = [Linear(features, CLASSES, rng=rng)] if fc_rank is None else \
        [Linear(features, fc_rank, bias=False, rng=rng), Linear(fc_rank, CLASSES, rng=rng)]
    return Sequential(
        Conv2d(1, conv1_channels, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(conv1_channels, conv2_channels, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(), *head,
    )
    # END SOLUTION


def weighted_layers(model: Sequential) -> dict:
    """{event name: layer}: "conv1" and "conv2", then "fc" (one Linear) or "fc1" and "fc2" (a low-rank pair).

    The layers are the Conv2d and Linear layers of model.layers, in order. A model with
    another count of them is not of the family: a ValueError says what it holds.
    """
    # BEGIN SOLUTION baseline: the Conv2d layers and the Linear layers of model.layers, in order; exactly 2 convs and 1 or 2 Linears (ValueError naming the counts); name them
    layers = getattr(model, "layers", [])
    convs = [layer for layer in layers if isinstance(layer, Conv2d)]
    linears = [layer for layer in layers if isinstance(layer, Linear)]
    if len(convs) != 2 or len(linears) not in (1, 2):
        raise ValueError(f"weighted_layers: the event's family has 2 Conv2d layers and 1 or 2 Linear layers; this "
                         f"model has {len(convs)} Conv2d and {len(linears)} Linear")
    heads = ["fc"] if len(linears) == 1 else ["fc1", "fc2"]
    return dict(zip(["conv1", "conv2", *heads], convs + linears))
    # END SOLUTION


def load_baseline(path=None) -> Sequential:
    """The event's trained baseline in your framework: build_cnn() holding the arrays of the baseline file.

    The file (katas/data/capstone_digits_cnn.npz unless `path` says otherwise) holds
    conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc.weight and fc.bias, float32.
    Read it with np.load(..., allow_pickle=False): arrays only, never pickled objects.
    Returned in eval mode.
    """
    path = find_data_file(BASELINE_FILE) if path is None else Path(path)
    # BEGIN SOLUTION baseline: build_cnn(); np.load the file without pickles; copy each array into the weight and bias of the layer of its name; eval()
    model = build_cnn(rng=np.random.default_rng(0))  # its random init is replaced at once
    with np.load(path, allow_pickle=False) as arrays:
        for name, layer in weighted_layers(model).items():
            layer.weight.data[...] = arrays[f"{name}.weight"]
            layer.bias.data[...] = arrays[f"{name}.bias"]
    return model.eval()
    # END SOLUTION


# -- pack and unpack: the arrays a submission holds ----------------------------------------------------


def channel_axis(layer) -> int:
    """The axis of a weight that holds the output channels: 0 of a Conv2d's (out, in, kh, kw), 1 of a Linear's (in, out)."""
    return 0 if isinstance(layer, Conv2d) else 1


def export_arrays(model: Sequential, storage="int8") -> dict:
    """{array name: numpy array}: the model's weights in the submission format. The model is not changed.

    `storage` is one of STORAGES for every layer, or {event name: storage} for each. For
    each layer, "<name>.weight" is stored as its storage says: float32, float16, or int8
    quantized symmetrically per output channel with kata 15's `quantize` (values in
    [-127, 127]) plus "<name>.scale", float32, one per output channel. "<name>.bias" is a
    float32 copy (a low-rank pair's first layer has none). The arrays are copies: changing
    one never changes the model.
    """
    layers = weighted_layers(model)
    storage = dict.fromkeys(layers, storage) if isinstance(storage, str) else dict(storage)
    # BEGIN SOLUTION pack: check every layer has a known storage (ValueError naming it); per layer the weight as stored (int8: quantize symmetric along channel_axis, then its values and scale), and a float32 copy of the bias
    if set(storage) != set(layers) or any(kind not in STORAGES for kind in storage.values()):
        raise ValueError(f"export_arrays: give each of {list(layers)} one of {list(STORAGES)}, got {storage}")
    arrays = {}
    for name, layer in layers.items():
        weight = layer.weight.data
        if storage[name] == "int8":
            quantized = quantize(weight, bits=8, symmetric=True, axis=channel_axis(layer))
            arrays[f"{name}.weight"] = quantized.values  # int8 in [-127, 127]
            arrays[f"{name}.scale"] = np.asarray(quantized.scale, dtype=np.float32)  # (channels,)
        else:
            arrays[f"{name}.weight"] = weight.astype(STORAGES[storage[name]])  # astype copies
        if layer.bias is not None:
            arrays[f"{name}.bias"] = layer.bias.data.astype(np.float32)
    return arrays
    # END SOLUTION


def model_from_arrays(arrays: dict) -> Sequential:
    """The float32 model that `arrays` (export_arrays' format) describe, in eval mode: what the verifier computes.

    The channels come from the shapes (conv1.weight is (c1, 1, 3, 3), conv2.weight
    (c2, c1, 3, 3)), the rank from fc1.weight when there is one. An int8 weight is
    dequantized with its scale along its channel axis (kata 15's `dequantize`); a float16
    one is converted. Every parameter is float32.
    """
    # BEGIN SOLUTION pack: read c1, c2 and the rank (fc1.weight's second axis, or None) from the shapes; build_cnn; for each layer a float32 Parameter of its dequantized weight and of its bias
    rank = arrays["fc1.weight"].shape[1] if "fc1.weight" in arrays else None
    model = build_cnn(arrays["conv1.weight"].shape[0], arrays["conv2.weight"].shape[0], rank,
                      rng=np.random.default_rng(0))
    for name, layer in weighted_layers(model).items():
        weight = arrays[f"{name}.weight"]
        if weight.dtype == np.int8:
            scale = arrays[f"{name}.scale"]
            weight = dequantize(Quantized(weight, scale, np.zeros(scale.shape, dtype=np.int32),
                                          axis=channel_axis(layer), symmetric=True))
        layer.weight = Parameter(np.asarray(weight, dtype=np.float32))
        if layer.bias is not None:
            layer.bias = Parameter(np.asarray(arrays[f"{name}.bias"], dtype=np.float32))
    return model.eval()
    # END SOLUTION


# -- measure: accuracy first, then bytes and time ----------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """What `measure` found. latency_ratio is None when the model was not timed (below the accuracy target)."""

    accuracy: float
    correct: int  # held-out images classified right
    images: int
    bytes: int  # of every array the submission keeps
    flops: int  # of one forward pass on a batch of BATCH images (kata 14's convention)
    latency_ratio: float | None  # the model's time per batch over the baseline's


def count_correct(model, images: np.ndarray, labels: np.ndarray) -> int:
    """How many images `model` classifies right (the largest logit at the label), as an int.

    Runs without a graph, in eval mode, and leaves every module's training flag as it was.
    """
    # BEGIN SOLUTION measure: under kata 14's inference_mode, one forward of all the images; count argmax == label
    with inference_mode(model):
        logits = model(Tensor(images)).data  # (N, 10)
    return int(np.count_nonzero(logits.argmax(axis=1) == labels))
    # END SOLUTION


def measure(arrays: dict, baseline, images: np.ndarray, labels: np.ndarray, rounds: int = 50,
            clock=time.perf_counter) -> Measurement:
    """Measure a submission's arrays as the verifier will: accuracy first, then bytes, FLOPs and latency.

    The model is model_from_arrays(arrays), not the model you trained: what you claim is
    what you hand in. Latency is timed only when the accuracy reaches TARGET_ACCURACY (a
    fast wrong model is not a result): kata 19's `interleaved` times the baseline and the
    model in turn, `rounds` times, each on the first BATCH images with `clock`, and
    latency_ratio = 1 / compare(..., paired=True).speedup.
    """
    model = model_from_arrays(arrays)
    # BEGIN SOLUTION measure: count_correct; bytes = the sum of every array's nbytes; count_flops on (BATCH, 1, 8, 8); below target no timing; otherwise interleaved under inference_mode of both models, then 1 / paired speedup
    correct = count_correct(model, images, labels)
    accuracy = correct / len(labels)
    nbytes = int(sum(array.nbytes for array in arrays.values()))
    flops = count_flops(model, (BATCH, 1, 8, 8))
    ratio = None
    if accuracy >= TARGET_ACCURACY:
        batch = Tensor(images[:BATCH])
        with inference_mode(baseline), inference_mode(model):
            base_times, model_times = interleaved(lambda: baseline(batch), lambda: model(batch), count=rounds,
                                                  clock=clock)
        ratio = 1 / compare(base_times, model_times, paired=True).speedup
    return Measurement(accuracy=accuracy, correct=correct, images=len(labels), bytes=nbytes, flops=flops,
                       latency_ratio=ratio)
    # END SOLUTION


# -- the score -----------------------------------------------------------------------------------------------


def missed_budgets(accuracy: float, nbytes: int, latency_ratio: float | None) -> list:
    """The budgets a measurement misses, as sentences naming each ("accuracy", "bytes", "latency"); [] if none.

    Accuracy below TARGET_ACCURACY; more than MAX_BYTES bytes; a latency ratio above
    MAX_LATENCY_RATIO. A latency of None (not timed) misses no budget by itself: the
    accuracy that stopped the timing already does.
    """
    # BEGIN SOLUTION score: one sentence per budget missed; each bound itself is within budget
    missed = []
    if not accuracy >= TARGET_ACCURACY:
        missed.append(f"accuracy {accuracy:.2%} is below the target {TARGET_ACCURACY:.0%}")
    if nbytes > MAX_BYTES:
        missed.append(f"bytes: {nbytes:,} is over the budget of {MAX_BYTES:,}")
    if latency_ratio is not None and latency_ratio > MAX_LATENCY_RATIO:
        missed.append(f"latency: {latency_ratio:.2f}x the baseline's is over the budget of {MAX_LATENCY_RATIO}x")
    return missed
    # END SOLUTION


def score(accuracy: float, nbytes: int, latency_ratio: float | None) -> float:
    """The event's score: 0.0 when a budget is missed or the latency was not measured, otherwise

        SIZE_POINTS * log2(BASELINE_BYTES / nbytes) + SPEED_POINTS * log2(1 / latency_ratio)

    20 points for each halving of the bytes, 40 for each halving of the time, as a Python float.
    """
    # BEGIN SOLUTION score: 0.0 without a latency or with any missed budget; else the two log2 terms
    if latency_ratio is None or missed_budgets(accuracy, nbytes, latency_ratio):
        return 0.0
    return SIZE_POINTS * math.log2(BASELINE_BYTES / nbytes) + SPEED_POINTS * math.log2(1 / latency_ratio)
    # END SOLUTION


# -- compress: fewer channels, a low-rank head, then fine-tuning --------------------------------------------------


def shrink(model: Sequential, amount: float = 0.25, fc_rank: int | None = None) -> Sequential:
    """A new, smaller model of the family; `model` is left as it was.

    amount > 0: kata 16's prune_structured removes that fraction of each conv layer's
    channels (the least important by L1 norm) and the inputs that read them. fc_rank:
    kata 16's low_rank replaces the last Linear by the pair Linear(4 c2, r, bias=False),
    Linear(r, 10), put in its place in the Sequential (not nested). Returned in eval mode.
    """
    # BEGIN SOLUTION compress: prune_structured when amount > 0 (else a deep copy); with a rank, swap the last layer for the two layers of low_rank(last, rank=fc_rank); eval()
    smaller = prune_structured(model, amount) if amount > 0 else copy.deepcopy(model)
    if fc_rank is not None:
        pair = low_rank(smaller.layers[-1], rank=fc_rank)
        smaller = Sequential(*smaller.layers[:-1], *pair.layers)
    return smaller.eval()
    # END SOLUTION


def fine_tune(model, images: np.ndarray, labels: np.ndarray, epochs: int = 2, lr: float = 3e-3, batch_size: int = 64,
              seed: int = 0, teacher=None, temperature: float = 4.0, alpha: float = 0.5) -> list:
    """Train `model` on (images, labels), the training split only, with Adam; return each epoch's mean loss.

    Each epoch visits the images in a new order: make_batches(images, labels, batch_size,
    rng) with one rng = np.random.default_rng(seed) for the whole run. The loss is
    cross-entropy, or with a `teacher` model kata 16's distillation_loss against the
    teacher's logits for the same batch (computed without a graph). The mean loss of an
    epoch weighs each batch by its size. The model is left in eval mode.
    """
    optimizer = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    # BEGIN SOLUTION compress: per epoch, per batch of make_batches with the one rng: zero_grad, forward in train mode, the loss (distillation against the teacher's logits under no_grad when there is one), backward, step; keep the size-weighted mean loss; eval() at the end
    model.train()
    losses = []
    for _ in range(epochs):
        total, seen = 0.0, 0
        for x, y in make_batches(images, labels, batch_size, rng):
            optimizer.zero_grad()
            logits = model(Tensor(x))
            if teacher is None:
                loss = cross_entropy(logits, y)
            else:
                with no_grad():
                    targets = teacher(Tensor(x)).data
                loss = distillation_loss(logits, targets, y, temperature=temperature, alpha=alpha)
            loss.backward()
            optimizer.step()
            total += float(loss.data) * len(x)
            seen += len(x)
        losses.append(total / seen)
    model.eval()
    return losses
    # END SOLUTION


# -- the submission -------------------------------------------------------------------------------------------


def check_text(value, what: str, limit: int) -> str:
    """`value` if it is text a board can show: 1 to `limit` characters, no control characters, no '<' or '>'."""
    # BEGIN SOLUTION submission: a ValueError naming `what` unless value is a non-empty str of at most limit characters without control characters (unicodedata category C) and without '<' or '>'
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(f"{what} must be text of 1 to {limit} characters, got {value!r}")
    if any(unicodedata.category(c).startswith("C") for c in value) or "<" in value or ">" in value:
        raise ValueError(f"{what} must not hold control characters or markup ('<', '>'), got {value!r}")
    return value
    # END SOLUTION


def export_submission(folder, name: str, arrays: dict, measurement: Measurement, participant: str, recipe: list,
                      created_at: str | None = None) -> Path:
    """Write the submission: <folder>/<name>.npz (np.savez, the arrays only) and <folder>/<name>.json; return the JSON's path.

    The JSON is the closed description the verifier reads (lesson 20, "The submission"):
    format, version, event, participant, created_at (UTC, ending in Z), model (weights:
    the .npz's file name; conv1_channels, conv2_channels, fc_rank and each layer's storage,
    read from the arrays), claims (accuracy, bytes and latency_ratio from `measurement`)
    and recipe (1 to 20 lines of what you did). The name is letters, digits, '.', '_' and
    '-'; the participant at most 40 characters and each recipe line at most 200, without
    control characters or markup: a ValueError names what is wrong, before anything is written.
    """
    # BEGIN SOLUTION submission: check the name (NAME), the participant (40) and each recipe line (200, 1 to 20 lines); describe the model from the arrays' shapes and dtypes; np.savez the arrays; write the JSON (strict: no NaN)
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"export_submission: name must be letters, digits, '.', '_' or '-' (no folders), got {name!r}")
    check_text(participant, "participant", 40)
    if not isinstance(recipe, list) or not 1 <= len(recipe) <= 20:
        raise ValueError(f"export_submission: recipe must be a list of 1 to 20 lines, got {recipe!r}")
    for line in recipe:
        check_text(line, "a recipe line", 200)
    kinds = {dtype: kind for kind, dtype in STORAGES.items()}
    layers = [key[:-len(".weight")] for key in arrays if key.endswith(".weight")]
    description = {
        "format": SUBMISSION_FORMAT,
        "version": SUBMISSION_VERSION,
        "event": EVENT,
        "participant": participant,
        "created_at": created_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {
            "weights": f"{name}.npz",
            "conv1_channels": int(arrays["conv1.weight"].shape[0]),
            "conv2_channels": int(arrays["conv2.weight"].shape[0]),
            "fc_rank": int(arrays["fc1.weight"].shape[1]) if "fc1.weight" in arrays else None,
            "storage": {layer: kinds[arrays[f"{layer}.weight"].dtype.type] for layer in layers},
        },
        "claims": {"accuracy": measurement.accuracy, "bytes": measurement.bytes,
                   "latency_ratio": measurement.latency_ratio},
        "recipe": list(recipe),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{name}.npz", **arrays)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(description, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path
    # END SOLUTION


# -- the recipe -----------------------------------------------------------------------------------------------


def optimise(baseline, images: np.ndarray, labels: np.ndarray, amount: float = 0.25, fc_rank: int | None = None,
             epochs: int = 2, lr: float = 3e-3, storage="int8", seed: int = 0) -> dict:
    """Your recipe: the baseline made smaller and faster within every budget; returns the arrays to hand in.

    The reference: shrink(baseline, amount, fc_rank), fine_tune on the training images for
    `epochs`, then export_arrays(storage). The baseline itself is not changed. Tune the
    defaults to climb the leaderboard; the optimize checkpoint checks them.
    """
    # BEGIN SOLUTION optimize: shrink, fine_tune with lr, epochs and seed, export_arrays
    smaller = shrink(baseline, amount, fc_rank)
    fine_tune(smaller, images, labels, epochs=epochs, lr=lr, seed=seed)
    return export_arrays(smaller, storage)
    # END SOLUTION

"""The capstone's verifier: re-measure a submission and score the measurements, never the claims.

    python scoreboard.py capstone rules                                   the event, its budgets and score
    python scoreboard.py capstone verify SUBMISSION.json [--out RESULT.json] [--seconds S]

The event, "digits-cnn", is closed: everyone starts from the same trained model, the
1998 milestone's CNN shipped as katas/data/capstone_digits_cnn.npz, and hands in a
smaller or faster model of the same family, measured on the same 359 held-out digits
(the milestones' split, seed 0). Kata 20's lesson (katas/20_capstone/README.md) is the
participant's guide; docs/result-format.md describes both files for tools.

A submission is two files in one folder: SUBMISSION.json, a closed description
(`tinytorch-capstone-submission`, version 1), and the arrays it names, saved with
`np.savez`. The family, and the only model `verify` will build:

    (N, 1, 8, 8) -> Conv2d(1, c1, 3, padding=1), ReLU, MaxPool2d(2)      c1 in 1..16
                 -> Conv2d(c1, c2, 3, padding=1), ReLU, MaxPool2d(2)     c2 in 1..32
                 -> Flatten (channel-major, as kata 09's) -> Linear(4 c2, 10)
                    or, with fc_rank r, Linear(4 c2, r, bias=False) -> Linear(r, 10)

    arrays: conv1.weight (c1, 1, 3, 3), conv1.bias (c1,), conv2.weight (c2, c1, 3, 3),
            conv2.bias (c2,), fc.weight (4 c2, 10), fc.bias (10,)
            [with fc_rank: fc1.weight (4 c2, r), fc2.weight (r, 10), fc2.bias (10,)]
            and, for each layer stored in int8, <layer>.scale: float32, one per output
            channel (axis 0 of a conv weight, axis 1 of a Linear's (in, out) weight)

Each layer's weight is stored as float32, float16, or int8 (symmetric: values in
[-127, 127], weight ~ values * scale); biases are always float32. `verify` computes in
float32 with the stored weights converted back, so a submission's accuracy is exactly
its arrays'. Its size is the bytes of every array it keeps.

`verify` reads nothing but data: the JSON with a strict parser, the arrays with
`np.load(..., allow_pickle=False)` after checking every member's name, dtype and
shape from its header. It imports and runs nothing of the submission's, nor of the
participant's tinytorch: the model is rebuilt here, in numpy, from the description.
Then, in this order:

1. rules: the file, the description and the arrays are what the format says
   (otherwise REJECTED, each problem named);
2. accuracy on the held-out images; a submission more accurate than the baseline by
   more than one standard error of the baseline's accuracy is REJECTED: in a closed
   event that means the held-out images were trained on, or the model is not the
   event's;
3. the claims: an accuracy claimed more than one image above the measurement, fewer
   bytes than the arrays hold, or a latency ratio claimed better than half the measured
   one is REJECTED (claims never count; a claim that does not reproduce is a false one);
4. latency, only when the accuracy target is met (a fast wrong model is not timed):
   the baseline and the submission in alternation, each call the first 32 held-out
   images, after warm-up, for at least MIN_ROUNDS rounds and `seconds` seconds; the
   ratio is the median of the per-round ratios (a slow spell slows both halves of a
   round); the median and p90 of each are reported;
5. budgets and score: SCORED when accuracy >= TARGET_ACCURACY, bytes <= MAX_BYTES and
   latency ratio <= MAX_LATENCY_RATIO, with

       score = 20 * log2(BASELINE_BYTES / bytes) + 40 * log2(1 / latency ratio)

   (20 points for each halving of the bytes, 40 for each halving of the time);
   otherwise OVER BUDGET, score 0, each missed budget named.

The result (`tinytorch-capstone-result`, version 1) is printed, and written with
--out; `python scoreboard.py leaderboard FOLDER --event digits-cnn` ranks such files by
score. Exit status: 0 scored or over budget, 1 rejected, 2 for a usage error or when the
event's own files (the baseline, the digits) are missing or altered.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import re
import stat
import sys
import time
import unicodedata
import zipfile
from pathlib import Path

from harness import blas

# One BLAS thread, as the kata runs use (conftest.py): a thread pool contending with other work makes a
# latency of a third of a millisecond swing by tens of times. Only effective before numpy's first
# import, which is the case for `python scoreboard.py capstone ...`.
blas.ask_for_one_thread()

import numpy as np  # noqa: E402

from harness import manifest as manifest_module
from harness import progress
from harness.leaderboard import BadFile, parse_json, shown

EVENT = "digits-cnn"
SUBMISSION_FORMAT, SUBMISSION_VERSION = "tinytorch-capstone-submission", 1
RESULT_FORMAT, RESULT_VERSION = "tinytorch-capstone-result", 1
SCORED, OVER_BUDGET, REJECTED = "scored", "over budget", "rejected"
STATUSES = (SCORED, OVER_BUDGET, REJECTED)

# -- the event's rules ---------------------------------------------------------------------------

DATA_DIR = manifest_module.ROOT / "katas" / "data"
BASELINE_FILE = DATA_DIR / "capstone_digits_cnn.npz"
BASELINE_SHA256 = "709972bead217d2df17e5fbe4077b0637848ddbef1b1981a992345a04912e3bb"
DIGITS_FILE = DATA_DIR / "digits.npz"
TEST_FRACTION, SPLIT_SEED = 0.2, 0  # the milestones' split: 1,438 training images, 359 held out
CLASSES, MAX_CONV1, MAX_CONV2 = 10, 16, 32
BASELINE_BYTES = 24_360  # 6,090 float32 parameters
TARGET_ACCURACY = 0.97
MAX_BYTES = 8_192
MAX_LATENCY_RATIO = 1.1  # no slower than the baseline, beyond the timing's noise
SIZE_POINTS, SPEED_POINTS = 20.0, 40.0  # per halving of the bytes, of the latency
BATCH = 32  # images per timed call
CLAIM_IMAGES = 1  # an accuracy claim may exceed the measurement by this many images (a tie decided otherwise)
CLAIM_LATENCY_FACTOR = 2.0  # a latency ratio claimed more than 2x better than measured is false
MIN_ROUNDS, WARMUP_ROUNDS, MAX_ROUNDS = 10, 3, 100_000
DEFAULT_SECONDS = 2.0
STORAGES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "int8": np.dtype(np.int8)}
INT8_LIMIT = 127  # symmetric int8: -128 is not a level

# -- what a submission may be --------------------------------------------------------------------

MAX_JSON_BYTES = 65_536
MAX_WEIGHTS_BYTES = 1_048_576
MAX_NAME, MAX_RECIPE_LINES, MAX_RECIPE_LINE = 40, 20, 200
WEIGHTS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.npz")
SUBMISSION_KEYS = ("format", "version", "event", "participant", "created_at", "model", "claims", "recipe")
MODEL_KEYS = ("weights", "conv1_channels", "conv2_channels", "fc_rank", "storage")
CLAIM_KEYS = ("accuracy", "bytes", "latency_ratio")


class Rejected(Exception):
    """A submission that breaks the rules; the message says how, in the participant's terms."""


# -- reading files safely ------------------------------------------------------------------------


def read_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes that is not a symbolic link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Rejected(f"{what}: no such file") from None
    except (OSError, ValueError) as error:  # ValueError: a path with a NUL byte
        raise Rejected(f"{what}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if stat.S_ISLNK(info.st_mode):
        raise Rejected(f"{what}: a symbolic link; hand in the file itself")
    if not stat.S_ISREG(info.st_mode):
        raise Rejected(f"{what}: not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)  # O_NOFOLLOW: a link swapped in since lstat is refused too
    except OSError as error:
        raise Rejected(f"{what}: cannot be opened ({error.strerror or error})") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise Rejected(f"{what}: not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > limit:
        raise Rejected(f"{what}: too large (over {limit:,} bytes)")
    return b"".join(chunks)


def clean_text(value, where: str, limit: int) -> list[str]:
    """Problems with a text field: it must be a non-empty string of at most `limit` characters,
    without control characters or markup (`<`, `>`): names end up on boards and in terminals."""
    if not isinstance(value, str) or not value.strip():
        return [f"{where} should be a non-empty string, got {shown(repr(value), 40)}"]
    problems = []
    if len(value) > limit:
        problems.append(f"{where} has {len(value)} characters; at most {limit}")
    if any(unicodedata.category(c).startswith("C") for c in value):
        problems.append(f"{where} holds control characters")
    if "<" in value or ">" in value:
        problems.append(f"{where} holds markup ('<' or '>')")
    return problems


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _keys(container: dict, keys: tuple, where: str) -> list[str]:
    missing = [k for k in keys if k not in container]
    extra = [k for k in container if k not in keys]
    problems = [f"{where} lacks {k!r}" for k in missing]
    if extra:
        problems.append(f"{where} has fields the format does not know: {', '.join(shown(repr(k), 30) for k in extra[:5])}")
    return problems


def layer_names(fc_rank) -> tuple[str, ...]:
    """The layers with weights, in order: conv1, conv2 and fc, or fc1 and fc2 with a rank."""
    return ("conv1", "conv2", "fc") if fc_rank is None else ("conv1", "conv2", "fc1", "fc2")


def check_submission(data) -> list[str]:
    """Everything wrong with a parsed submission, as sentences; [] when it follows the format."""
    if not isinstance(data, dict):
        return [f"a submission is a JSON object, got {type(data).__name__}"]
    if data.get("format") != SUBMISSION_FORMAT:
        return [f"'format' should be {SUBMISSION_FORMAT!r}, got {shown(repr(data.get('format')), 60)}"]
    if data.get("version") != SUBMISSION_VERSION:
        return [f"this verifier knows version {SUBMISSION_VERSION}, the file says {shown(repr(data.get('version')), 20)}"]
    problems = _keys(data, SUBMISSION_KEYS, "the submission")
    if data.get("event", EVENT) != EVENT:
        problems.append(f"'event' should be {EVENT!r}, got {shown(repr(data.get('event')), 60)}")
    if "participant" in data:
        problems += clean_text(data["participant"], "'participant'", MAX_NAME)
    if "created_at" in data and not progress.is_time(data["created_at"]):
        problems.append("'created_at' should be an ISO-8601 UTC time ending in Z")
    recipe = data.get("recipe", [])
    if not isinstance(recipe, list) or not 1 <= len(recipe) <= MAX_RECIPE_LINES:
        problems.append(f"'recipe' should be a list of 1 to {MAX_RECIPE_LINES} lines saying what was done")
    else:
        for index, line in enumerate(recipe):
            problems += clean_text(line, f"recipe line {index + 1}", MAX_RECIPE_LINE)
    claims = data.get("claims", {})
    if not isinstance(claims, dict):
        problems.append("'claims' should be an object")
    else:
        problems += _keys(claims, CLAIM_KEYS, "'claims'")
        if "accuracy" in claims and not (_is_number(claims["accuracy"]) and 0 <= claims["accuracy"] <= 1):
            problems.append("claims: 'accuracy' should be a fraction from 0 to 1")
        if "bytes" in claims and not (_is_count(claims["bytes"]) and claims["bytes"] > 0):
            problems.append("claims: 'bytes' should be a positive whole number")
        ratio = claims.get("latency_ratio")
        if ratio is not None and not (_is_number(ratio) and ratio > 0):
            problems.append("claims: 'latency_ratio' should be a positive number, or null when it was not measured")
    model = data.get("model", {})
    if not isinstance(model, dict):
        return problems + ["'model' should be an object"]
    problems += _keys(model, MODEL_KEYS, "'model'")
    weights = model.get("weights")
    if "weights" in model and not (isinstance(weights, str) and WEIGHTS_NAME.fullmatch(weights)
                                   and ".." not in weights):
        problems.append(f"model: 'weights' should be the name of a .npz file in the submission's folder "
                        f"(letters, digits, '.', '_', '-'; no folders), got {shown(repr(weights), 60)}")
    c1, c2, rank = model.get("conv1_channels"), model.get("conv2_channels"), model.get("fc_rank")
    if not (_is_count(c1) and 1 <= c1 <= MAX_CONV1):
        problems.append(f"model: 'conv1_channels' should be a whole number from 1 to {MAX_CONV1}, "
                        f"got {shown(repr(c1), 20)}")
    if not (_is_count(c2) and 1 <= c2 <= MAX_CONV2):
        problems.append(f"model: 'conv2_channels' should be a whole number from 1 to {MAX_CONV2}, "
                        f"got {shown(repr(c2), 20)}")
    elif rank is not None and not (_is_count(rank) and 1 <= rank <= min(4 * c2, CLASSES)):
        problems.append(f"model: 'fc_rank' should be null or a whole number from 1 to {min(4 * c2, CLASSES)}, "
                        f"got {shown(repr(rank), 20)}")
    storage = model.get("storage")
    if not isinstance(storage, dict):
        problems.append("model: 'storage' should be an object naming each layer's storage")
    elif _is_count(rank) or rank is None:
        layers = layer_names(rank)
        problems += _keys(storage, layers, "model: 'storage'")
        for layer in layers:
            if layer in storage and storage[layer] not in STORAGES:
                problems.append(f"model: the storage of {layer} should be one of {', '.join(STORAGES)}, "
                                f"got {shown(repr(storage[layer]), 20)}")
    return problems


def expected_arrays(model: dict) -> dict[str, tuple[tuple, np.dtype]]:
    """{array name: (shape, dtype)} for a checked model description: exactly the arrays it needs."""
    c1, c2, rank, storage = model["conv1_channels"], model["conv2_channels"], model["fc_rank"], model["storage"]
    weights = {"conv1": (c1, 1, 3, 3), "conv2": (c2, c1, 3, 3)}
    if rank is None:
        weights["fc"] = (4 * c2, CLASSES)
    else:
        weights["fc1"], weights["fc2"] = (4 * c2, rank), (rank, CLASSES)
    float32 = np.dtype(np.float32)
    arrays = {}
    for layer, shape in weights.items():
        arrays[f"{layer}.weight"] = (shape, STORAGES[storage[layer]])
        if storage[layer] == "int8":  # one scale per output channel
            arrays[f"{layer}.scale"] = ((shape[0] if layer.startswith("conv") else shape[1],), float32)
        if layer != "fc1":  # the first factor of a low-rank pair has no bias
            arrays[f"{layer}.bias"] = ((shape[0] if layer.startswith("conv") else shape[1],), float32)
    return arrays


def _clip(names: list[str], count: int = 5) -> str:
    listed = ", ".join(shown(repr(n), 40) for n in names[:count])
    return listed + (f" and {len(names) - count} more" if len(names) > count else "")


def read_weights(raw: bytes, expected: dict) -> dict[str, np.ndarray]:
    """The arrays of an npz archive, each checked against `expected` ({name: (shape, dtype)}) BEFORE it is read.

    Every member's .npy header is parsed (numpy's literal parser, no pickle) to check its
    dtype and shape; only then is the archive loaded, with np.load(allow_pickle=False).
    """
    if raw[:1] == b"\x80":
        raise Rejected("weights: a pickle, not an npz archive of arrays; save them with np.savez")
    if raw[:6] == b"\x93NUMPY":
        raise Rejected("weights: a single .npy array, not an npz archive; save them with np.savez")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise Rejected("weights: not an npz archive (a zip of .npy arrays); save them with np.savez") from None
    names = [m.filename for m in members]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise Rejected(f"weights: the archive holds {_clip(doubled)} more than once")
    not_arrays = [n for n in names if not n.endswith(".npy") or "/" in n or "\\" in n]
    if not_arrays:
        raise Rejected(f"weights: the archive holds {_clip(not_arrays)}, which are not arrays")
    present = [n[:-4] for n in names]
    missing = [n for n in expected if n not in present]
    extra = [n for n in present if n not in expected]
    if missing or extra:
        parts = ([f"lacks {_clip(missing)}"] if missing else []) + ([f"has arrays the model does not use: {_clip(extra)}"]
                                                                  if extra else [])
        raise Rejected(f"weights: the archive {' and '.join(parts)}")
    for member in members:
        name = member.filename[:-4]
        shape, dtype = expected[name]
        try:  # only the header is unpacked here: a few hundred bytes, whatever the member claims to hold
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                got_shape, _, got_dtype = read_header(stream)
                header_bytes = stream.tell()
        except Exception as error:  # a corrupt member, an unknown version, an unparsable header
            raise Rejected(f"weights: {name!r} has no readable .npy header ({type(error).__name__})") from None
        if got_dtype.hasobject:
            raise Rejected(f"weights: {name!r} is an array of Python objects (loading it would run pickle); "
                           f"it should be {dtype}")
        if got_dtype != dtype:
            raise Rejected(f"weights: {name!r} has dtype {got_dtype.str}; the description says {dtype} "
                           f"({dtype.str})")
        if tuple(got_shape) != shape:
            raise Rejected(f"weights: {name!r} has shape {tuple(got_shape)}; the description needs {shape}")
        needed = header_bytes + math.prod(shape) * dtype.itemsize
        if member.file_size > needed:  # data beyond the array: a zip bomb, or something hidden
            raise Rejected(f"weights: {name!r} unpacks to {member.file_size:,} bytes; its header and a {shape} "
                           f"{dtype} array need {needed:,}")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: np.array(npz[name]) for name in expected}
    except Exception as error:  # truncated data, a member that changed its mind: never a crash
        raise Rejected(f"weights: the arrays cannot be read ({type(error).__name__}: {shown(str(error), 80)})") from None
    return arrays


def check_values(arrays: dict) -> None:
    """Reject weights that are not numbers a model can compute with: nan, infinity, a scale <= 0, int8 -128."""
    for name, values in arrays.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise Rejected(f"weights: {name!r} holds {bad} nan or infinite value(s)")
        if name.endswith(".scale") and not (values > 0).all():
            raise Rejected(f"weights: {name!r} holds a scale that is not positive")
        if values.dtype == np.int8 and (values < -INT8_LIMIT).any():
            raise Rejected(f"weights: {name!r} holds -128; symmetric int8 uses -127..127")


# -- the model, rebuilt here ----------------------------------------------------------------------


def float_weights(arrays: dict, fc_rank) -> dict[str, np.ndarray]:
    """{layer: (weight, bias)} in float32, every int8 weight times its per-channel scale."""
    layers = {}
    for layer in layer_names(fc_rank):
        weight = arrays[f"{layer}.weight"]
        if weight.dtype == np.int8:
            scale = arrays[f"{layer}.scale"]
            weight = weight.astype(np.float32) * (scale.reshape(-1, 1, 1, 1) if layer.startswith("conv") else scale)
        bias = arrays.get(f"{layer}.bias")
        layers[layer] = (np.asarray(weight, dtype=np.float32), bias)
    return layers


class Network:
    """The event's CNN in plain numpy, float32, channels last: what `verify` times and measures.

    Built from {layer: (weight, bias)}; called on images (N, 1, 8, 8) it returns logits (N, 10).
    A convolution is one matrix product of im2col's rows; max pooling is two np.maximum.
    """

    def __init__(self, layers: dict):
        self.convs = [(w.reshape(w.shape[0], -1).T.copy(), b) for w, b in (layers["conv1"], layers["conv2"])]
        self.heads = [layers[name] for name in ("fc", "fc1", "fc2") if name in layers]

    @staticmethod
    def conv_relu_pool(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape  # (N, H, W, C)
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # (N, H, W, C, 3, 3)
        y = (windows.reshape(n * h * w, c * 9) @ weight + bias).reshape(n, h, w, -1)  # (N, H, W, O)
        y = np.maximum(y[:, 0::2], y[:, 1::2])
        y = np.maximum(y[:, :, 0::2], y[:, :, 1::2])  # (N, H/2, W/2, O)
        return np.maximum(y, 0)  # ReLU after the max is ReLU before it

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = images.transpose(0, 2, 3, 1)  # (N, 8, 8, 1)
        for weight, bias in self.convs:
            x = self.conv_relu_pool(x, weight, bias)  # (N, 4, 4, c1), then (N, 2, 2, c2)
        x = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # (N, 4 c2): channel-major, as Flatten of (N, C, H, W)
        for weight, bias in self.heads:
            x = x @ weight if bias is None else x @ weight + bias
        return x


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 359 held-out images (N, 1, 8, 8) float32 in [0, 1] and their labels: the milestones' split, seed 0."""
    with np.load(DIGITS_FILE, allow_pickle=False) as data:
        images = data["images"].astype(np.float32)[:, None] / 16
        labels = data["labels"].astype(np.int64)
    count = round(len(labels) * TEST_FRACTION)
    held_out = np.random.default_rng(SPLIT_SEED).permutation(len(labels))[:count]
    return images[held_out], labels[held_out]


def baseline_arrays() -> dict[str, np.ndarray]:
    """The event's trained baseline, after checking the file is the one the event was built on."""
    raw = BASELINE_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != BASELINE_SHA256:
        raise RuntimeError(f"{BASELINE_FILE} is not the event's baseline (sha256 {digest}, expected "
                           f"{BASELINE_SHA256}); restore it from the repository")
    model = {"conv1_channels": MAX_CONV1, "conv2_channels": MAX_CONV2, "fc_rank": None,
             "storage": dict.fromkeys(layer_names(None), "float32")}
    return read_weights(raw, expected_arrays(model))


def correct_count(network: Network, images: np.ndarray, labels: np.ndarray) -> int:
    return int(np.count_nonzero(network(images).argmax(axis=1) == labels))


def accuracy_ceiling(baseline_accuracy: float, images: int) -> float:
    """The baseline's accuracy plus one standard error of it, sqrt(p (1 - p) / n): the most a model may score."""
    return baseline_accuracy + math.sqrt(baseline_accuracy * (1 - baseline_accuracy) / images)


# -- latency ---------------------------------------------------------------------------------------


def paired_latency(baseline, submission, seconds: float, clock=time.perf_counter, min_rounds: int = MIN_ROUNDS,
                   warmup: int = WARMUP_ROUNDS) -> dict:
    """Time two callables in alternating rounds; the median of the per-round ratios submission / baseline.

    `warmup` untimed rounds first. Then rounds until at least `min_rounds` are timed and
    `seconds` have passed (never more than MAX_ROUNDS); even rounds call the baseline
    first, odd rounds the submission first, so neither always meets the caches the other
    warmed. Percentiles interpolate linearly between order statistics (numpy's default).
    """
    for _ in range(warmup):
        baseline()
        submission()
    times = {baseline: [], submission: []}
    start = clock()
    rounds = 0
    while rounds < MAX_ROUNDS:
        order = (baseline, submission) if rounds % 2 == 0 else (submission, baseline)
        for fn in order:
            before = clock()
            fn()
            times[fn].append(clock() - before)
        rounds += 1
        if rounds >= min_rounds and clock() - start >= seconds:
            break
    base, sub = np.array(times[baseline]), np.array(times[submission])
    tiny = np.finfo(np.float64).tiny  # a clock too coarse to see a call: never divide by 0
    return {
        "ratio": float(np.median(sub / np.maximum(base, tiny))),
        "median_s": float(np.median(sub)), "p90_s": float(np.percentile(sub, 90)),
        "baseline_median_s": float(np.median(base)), "baseline_p90_s": float(np.percentile(base, 90)),
        "rounds": rounds, "batch": BATCH,
    }


# -- the score -------------------------------------------------------------------------------------


def missed_budgets(accuracy: float, nbytes: int, latency_ratio: float | None) -> list[str]:
    """Each budget the measurements miss, as a sentence; [] when all are met."""
    missed = []
    if not accuracy >= TARGET_ACCURACY:
        missed.append(f"accuracy {accuracy:.2%} is below the target {TARGET_ACCURACY:.0%} (not timed)")
    if nbytes > MAX_BYTES:
        missed.append(f"{nbytes:,} bytes is over the budget of {MAX_BYTES:,}")
    if latency_ratio is not None and latency_ratio > MAX_LATENCY_RATIO:
        missed.append(f"latency {latency_ratio:.2f}x the baseline's is over the budget of {MAX_LATENCY_RATIO}x")
    return missed


def score(accuracy: float, nbytes: int, latency_ratio: float | None) -> float:
    """20 points per halving of the bytes and 40 per halving of the latency, against the baseline; 0 over budget."""
    if latency_ratio is None or missed_budgets(accuracy, nbytes, latency_ratio):
        return 0.0
    halvings_of_bytes, halvings_of_time = math.log2(BASELINE_BYTES / nbytes), -math.log2(latency_ratio)
    return SIZE_POINTS * halvings_of_bytes + SPEED_POINTS * halvings_of_time


# -- verify ----------------------------------------------------------------------------------------


def rules() -> dict:
    """The event's fixed numbers, as a result file records them."""
    return {"target_accuracy": TARGET_ACCURACY, "max_bytes": MAX_BYTES, "max_latency_ratio": MAX_LATENCY_RATIO,
            "baseline_bytes": BASELINE_BYTES, "batch": BATCH}


def new_result(path: Path, created_at: str | None) -> dict:
    return {"format": RESULT_FORMAT, "version": RESULT_VERSION, "event": EVENT, "participant": None,
            "created_at": created_at or progress.now(),
            "submission": {"file": shown(Path(path).name, 100), "sha256": None, "weights_sha256": None},
            "status": REJECTED, "reasons": [], "model": None, "claims": None, "recipe": None, "measured": None,
            "rules": rules(), "score": None}


def verify(path, seconds: float = DEFAULT_SECONDS, clock=time.perf_counter, created_at: str | None = None) -> dict:
    """Verify the submission whose description is the JSON file `path`; return the result (never raises for it).

    status "rejected" with its reasons, or "over budget" (score 0) naming each budget
    missed, or "scored". `seconds` bounds the latency measurement (at least MIN_ROUNDS
    rounds are timed whatever it says).
    """
    path = Path(path)
    result = new_result(path, created_at)
    try:
        check_and_measure(path, result, seconds, clock)
    except Rejected as error:
        result.update(status=REJECTED, reasons=[str(error)], score=None)
    return result


def check_and_measure(path: Path, result: dict, seconds: float, clock) -> None:
    """Fill `result` in place: the checks in the module docstring's order; raises Rejected at the first broken rule."""
    raw = read_file(path, MAX_JSON_BYTES, "the submission")
    result["submission"]["sha256"] = hashlib.sha256(raw).hexdigest()
    try:
        data = parse_json(raw)
    except BadFile as error:
        raise Rejected(f"the submission: {error}") from None
    problems = check_submission(data)
    if isinstance(data, dict) and not clean_text(data.get("participant"), "", MAX_NAME):
        result["participant"] = data["participant"].strip()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise Rejected(f"the submission: {problems[0]}{more}")
    model = data["model"]
    result.update(model={k: model[k] for k in MODEL_KEYS if k != "weights"}, claims=data["claims"],
                  recipe=data["recipe"])
    weights_path = path.parent / model["weights"]
    raw_weights = read_file(weights_path, MAX_WEIGHTS_BYTES, f"weights {model['weights']!r}")
    result["submission"]["weights_sha256"] = hashlib.sha256(raw_weights).hexdigest()
    arrays = read_weights(raw_weights, expected_arrays(model))
    check_values(arrays)

    images, labels = held_out_digits()
    candidate, baseline = Network(float_weights(arrays, model["fc_rank"])), Network(float_weights(baseline_arrays(), None))
    with np.errstate(all="ignore"):  # float16 weights of any finite size: an overflow is the submission's accuracy
        correct = correct_count(candidate, images, labels)
    accuracy, base_accuracy = correct / len(labels), correct_count(baseline, images, labels) / len(labels)
    nbytes = int(sum(a.nbytes for a in arrays.values()))
    ceiling = accuracy_ceiling(base_accuracy, len(labels))
    result["rules"].update(baseline_accuracy=base_accuracy, accuracy_ceiling=ceiling)
    result["measured"] = {"accuracy": accuracy, "correct": correct, "images": len(labels), "bytes": nbytes,
                          "latency_ratio": None, "latency": None}
    if accuracy > ceiling:
        raise Rejected(f"accuracy {accuracy:.2%} is above the baseline's {base_accuracy:.2%} by more than one "
                       f"standard error (ceiling {ceiling:.2%}): in this closed event that means training on the "
                       f"held-out images, or a model outside the event's")
    claims = data["claims"]
    if claims["accuracy"] > (correct + CLAIM_IMAGES) / len(labels) + 1e-12:
        raise Rejected(f"claims accuracy {claims['accuracy']:.2%}, measured {accuracy:.2%} "
                       f"({correct} of {len(labels)} held-out images)")
    if claims["bytes"] < nbytes:
        raise Rejected(f"claims {claims['bytes']:,} bytes, but the arrays hold {nbytes:,}")
    if accuracy >= TARGET_ACCURACY:  # accuracy first: a model below target is not timed
        batch = images[:BATCH]  # the same 32 images for both: a dense model's time does not depend on them
        with np.errstate(all="ignore"):
            latency = paired_latency(lambda: baseline(batch), lambda: candidate(batch), seconds, clock)
        result["measured"].update(latency_ratio=latency["ratio"], latency=latency)
        claimed = claims["latency_ratio"]
        if claimed is not None and claimed * CLAIM_LATENCY_FACTOR < latency["ratio"]:
            raise Rejected(f"claims a latency ratio of {claimed:.3g}, measured {latency['ratio']:.3g}: more than "
                           f"{CLAIM_LATENCY_FACTOR:g}x better than what this machine measures")
    missed = missed_budgets(accuracy, nbytes, result["measured"]["latency_ratio"])
    value = score(accuracy, nbytes, result["measured"]["latency_ratio"])
    result.update(status=OVER_BUDGET if missed else SCORED, reasons=missed, score=round(value, 2))


# -- the result file -------------------------------------------------------------------------------


def validate_result(data) -> list[str]:
    """Everything wrong with a tinytorch-capstone-result dict, as sentences; [] when it is valid.

    The score must be what the formula gives for the measurements, and the status what the
    budgets say: a result edited by hand to a better score does not validate.
    """
    if not isinstance(data, dict):
        return [f"a capstone result is a JSON object, got {type(data).__name__}"]
    if data.get("format") != RESULT_FORMAT:
        return [f"'format' should be {RESULT_FORMAT!r}, got {data.get('format')!r}"]
    if data.get("version") != RESULT_VERSION:
        return [f"this reader knows version {RESULT_VERSION}, the file says {data.get('version')!r}"]
    problems = []
    if data.get("event") != EVENT:
        problems.append(f"'event' should be {EVENT!r}, got {shown(repr(data.get('event')), 40)}")
    if not progress.is_time(data.get("created_at")):
        problems.append("'created_at' should be an ISO-8601 UTC time ending in Z")
    status = data.get("status")
    if status not in STATUSES:
        return problems + [f"'status' should be one of {', '.join(STATUSES)}, got {shown(repr(status), 40)}"]
    reasons = data.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        problems.append("'reasons' should be a list of sentences")
    if status == REJECTED:
        if data.get("score") is not None:
            problems.append("a rejected submission has no score")
        return problems
    problems += clean_text(data.get("participant"), "'participant'", MAX_NAME)
    given = data.get("rules")
    if not isinstance(given, dict) or any(given.get(key) != value for key, value in rules().items()):
        problems.append("'rules' are not this event's budgets")
    measured = data.get("measured")
    if not isinstance(measured, dict):
        return problems + ["'measured' should be an object"]
    accuracy, nbytes, ratio = measured.get("accuracy"), measured.get("bytes"), measured.get("latency_ratio")
    if not (_is_number(accuracy) and 0 <= accuracy <= 1):
        problems.append("measured: 'accuracy' should be a fraction from 0 to 1")
    if not (_is_count(nbytes) and nbytes > 0):
        problems.append("measured: 'bytes' should be a positive whole number")
    if ratio is not None and not (_is_number(ratio) and ratio > 0):
        problems.append("measured: 'latency_ratio' should be a positive number or null")
    value = data.get("score")
    if not _is_number(value):
        problems.append("'score' should be a number")
    if problems:
        return problems
    missed = missed_budgets(accuracy, nbytes, ratio)
    if ratio is None and not missed:
        problems.append("measured: a model that meets the accuracy target has a latency ratio")
    if (status == SCORED) == bool(missed):
        problems.append(f"status is {status!r}, but the measurements {'miss' if missed else 'meet'} the budgets")
    elif abs(value - round(score(accuracy, nbytes, ratio), 2)) > 0.011:
        problems.append(f"'score' is {value!r}, but the measurements give {score(accuracy, nbytes, ratio):.2f}")
    return problems


# -- the command line ------------------------------------------------------------------------------


def rules_text() -> str:
    return "\n".join([
        f"Capstone event {EVENT!r}: the 1998 CNN of the digits, made smaller and faster.",
        f"  baseline: {BASELINE_FILE.relative_to(manifest_module.ROOT)} (6,090 float32 parameters, "
        f"{BASELINE_BYTES:,} bytes)",
        f"  held out: 359 digits (the milestones' split, seed {SPLIT_SEED}); train on the other 1,438 only",
        f"  family:   Conv2d(1, c1 <= {MAX_CONV1}) ReLU MaxPool2d(2), Conv2d(c1, c2 <= {MAX_CONV2}) ReLU "
        "MaxPool2d(2), Flatten, Linear(4 c2, 10) or a low-rank pair",
        f"  storage:  {', '.join(STORAGES)} per layer (int8: symmetric, one float32 scale per output channel)",
        f"  budgets:  accuracy >= {TARGET_ACCURACY:.0%}, at most {MAX_BYTES:,} bytes, latency at most "
        f"{MAX_LATENCY_RATIO}x the baseline's (batches of {BATCH})",
        f"  score:    {SIZE_POINTS:g} * log2({BASELINE_BYTES:,} / bytes) + {SPEED_POINTS:g} * log2(1 / latency ratio); "
        "0 over budget",
        "  rejected: a broken format, accuracy above the baseline's by more than one standard error, "
        "or a claim that does not reproduce",
    ])


def report(result: dict) -> str:
    lines = [f"{result['submission']['file']}: {result['status'].upper()}"
             + (f", score {result['score']:.2f}" if result["status"] != REJECTED else "")]
    if result["participant"]:
        lines.append(f"  participant   {shown(result['participant'], MAX_NAME)}")
    measured = result["measured"]
    if measured:
        lines.append(f"  accuracy      {measured['accuracy']:.2%} ({measured['correct']} of {measured['images']}; "
                     f"target {TARGET_ACCURACY:.0%}, baseline {result['rules']['baseline_accuracy']:.2%})")
        lines.append(f"  bytes         {measured['bytes']:,} (budget {MAX_BYTES:,}; baseline {BASELINE_BYTES:,})")
        if measured["latency"]:
            latency = measured["latency"]
            lines.append(f"  latency       {latency['ratio']:.3f}x the baseline's (budget {MAX_LATENCY_RATIO}x): "
                         f"median {latency['median_s'] * 1e3:.3f} ms, p90 {latency['p90_s'] * 1e3:.3f} ms per batch "
                         f"of {BATCH}; baseline {latency['baseline_median_s'] * 1e3:.3f} ms, "
                         f"p90 {latency['baseline_p90_s'] * 1e3:.3f} ms; {latency['rounds']} rounds")
        else:
            lines.append("  latency       not timed")
    for reason in result["reasons"]:
        lines.append(f"  - {shown(reason, 300)}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scoreboard.py capstone",
                                     description="The capstone event: its rules, and the verifier of submissions.",
                                     epilog="The formats are described in docs/result-format.md; the event in "
                                            "katas/20_capstone/README.md.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rules", help="print the event's rules, budgets and score")
    check = commands.add_parser("verify", help="re-measure a submission and score it")
    check.add_argument("submission", type=Path, help="the submission's JSON file (its arrays sit beside it)")
    check.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the result file here")
    check.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="S",
                       help=f"how long to time latency (default {DEFAULT_SECONDS:g}; at least {MIN_ROUNDS} rounds)")
    args = parser.parse_args(argv)
    if args.command == "verify" and not 0 < args.seconds <= 60:
        parser.error("--seconds must be more than 0 and at most 60")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "rules":
        print(rules_text())
        return 0
    try:
        result = verify(args.submission, seconds=args.seconds)
    except (OSError, RuntimeError, ValueError) as error:  # the event's own files, not the submission
        print(f"cannot verify: the event's data is missing or altered: {error}", file=sys.stderr)
        return 2
    print(report(result))
    if args.out:
        try:
            progress.write_atomically(args.out, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        except OSError as error:
            print(f"cannot write {shown(str(args.out))}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"wrote {shown(str(args.out))}")
    return 1 if result["status"] == REJECTED else 0

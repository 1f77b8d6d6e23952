"""The capstone's verifier (harness/capstone.py) and its leaderboard event.

Submissions are built here with numpy alone: the shipped baseline's arrays, packed to
int8 or changed on purpose. Nothing here imports tinytorch: the verifier must not need it.
The hostile ones are built to break a careless verifier: pickles that would write a
file if anything unpickled them, object arrays, zip bombs, symbolic links, names with
markup, weights outside the folder, NaN, claims that do not reproduce, and a model
trained on the held-out images.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import pickle
import re
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness import capstone, leaderboard
from harness.capstone import REJECTED, OVER_BUDGET, SCORED
from tests.contract import ROOT, child_environment

# Some tests run scoreboard.py in a fresh process: on a busy machine, more than a kata test's 10 s.
pytestmark = pytest.mark.timeout(60)

SECONDS = 0.01  # latency is timed for at least MIN_ROUNDS rounds whatever this says: enough for a test
SCORING_SECONDS = 0.1


def steady_clock():
    """A clock that moves 1 ms per reading: every timed call lasts exactly 1 ms, so the latency ratio is 1.0.

    The tests that need a scored result must not hang on how busy the machine is: an int8
    submission computes as much as the baseline, so its real ratio sits at 1.0, near the 1.1
    budget. Real timing is checked in kata 20's optimize checkpoint, with a faster recipe.
    """
    return itertools.count(start=0.0, step=0.001).__next__


@pytest.fixture(autouse=True)
def _progress_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_PROGRESS_DIR", str(tmp_path / "progress"))


# -- building submissions ------------------------------------------------------------------------------


def float_arrays() -> dict:
    return dict(capstone.baseline_arrays())


def int8_arrays(arrays: dict) -> dict:
    """Every weight in symmetric int8 with one float32 scale per output channel; biases as they are."""
    out = {}
    for name, value in arrays.items():
        if not name.endswith(".weight"):
            out[name] = value
            continue
        axis = 0 if value.ndim == 4 else 1
        others = tuple(i for i in range(value.ndim) if i != axis)
        scale = (np.abs(value).max(axis=others) / 127).astype(np.float32)
        shape = [1] * value.ndim
        shape[axis] = -1
        out[name] = np.clip(np.round(value / scale.reshape(shape)), -127, 127).astype(np.int8)
        out[name[:-len(".weight")] + ".scale"] = scale
    return out


def storage_of(arrays: dict) -> dict:
    kinds = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.int8): "int8"}
    return {name[:-len(".weight")]: kinds[value.dtype] for name, value in arrays.items() if name.endswith(".weight")}


def description(arrays: dict, name: str = "ada", **changes) -> dict:
    """A submission's JSON for `arrays`, with modest true claims; `changes` replace top-level fields."""
    data = {
        "format": "tinytorch-capstone-submission", "version": 1, "event": "digits-cnn",
        "participant": "Ada Lovelace", "created_at": "2025-03-01T10:00:00Z",
        "model": {"weights": f"{name}.npz", "conv1_channels": int(arrays["conv1.weight"].shape[0]),
                  "conv2_channels": int(arrays["conv2.weight"].shape[0]),
                  "fc_rank": int(arrays["fc1.weight"].shape[1]) if "fc1.weight" in arrays else None,
                  "storage": storage_of(arrays)},
        "claims": {"accuracy": 0.0, "bytes": int(sum(a.nbytes for a in arrays.values())), "latency_ratio": None},
        "recipe": ["int8 weights, one scale per output channel"],
    }
    data.update(changes)
    return data


def submit(folder: Path, arrays: dict | None = None, data: dict | None = None, name: str = "ada") -> Path:
    """Write <name>.npz (np.savez) and <name>.json; return the JSON's path."""
    arrays = int8_arrays(float_arrays()) if arrays is None else arrays
    np.savez(folder / f"{name}.npz", **arrays)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(description(arrays, name) if data is None else data), encoding="utf-8")
    return path


def verify(path, **options) -> dict:
    result = capstone.verify(path, seconds=options.pop("seconds", SECONDS), **options)
    assert capstone.validate_result(result) == [], capstone.validate_result(result)
    json.dumps(result, allow_nan=False)  # the result is strict JSON, whatever was handed in
    return result


def assert_rejected(result: dict, *fragments: str) -> None:
    assert result["status"] == REJECTED, f"expected a rejection naming {fragments}, got {result['status']}: {result}"
    reason = " ".join(result["reasons"])
    missing = [f for f in fragments if f not in reason]
    assert not missing, f"the reason should name {missing}: {reason!r}"
    assert result["score"] is None


def npz_bytes(members: dict) -> bytes:
    """A zip of raw members {name: bytes}: a hand-made archive, possibly hostile."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def members_of(arrays: dict) -> dict:
    return {f"{name}.npy": npy_bytes(value) for name, value in arrays.items()}


class Tripwire:
    """Unpickling this creates the file `path`: proof that something ran pickle."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- a real submission, scored -------------------------------------------------------------------------


def test_the_baseline_is_the_events(tmp_path):
    """The verifier's own network reads 356 of the 359 held-out digits with the shipped baseline."""
    images, labels = capstone.held_out_digits()
    assert images.shape == (359, 1, 8, 8) and images.dtype == np.float32 and labels.shape == (359,)
    network = capstone.Network(capstone.float_weights(float_arrays(), None))
    assert capstone.correct_count(network, images, labels) == 356


def test_the_network_is_a_convolution_as_kata_09_defines_it():
    """The verifier's forward pass equals a direct loop over positions (cross-correlation, zero padding, channel-major Flatten)."""
    rng = np.random.default_rng(0)
    layers = {"conv1": (rng.standard_normal((3, 1, 3, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)),
              "conv2": (rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)),
              "fc": (rng.standard_normal((16, 10)).astype(np.float32), rng.standard_normal(10).astype(np.float32))}
    x = rng.random((2, 1, 8, 8)).astype(np.float32)

    def conv(x, w, b):
        padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros((x.shape[0], w.shape[0], x.shape[2], x.shape[3]))
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                out[:, :, i, j] = np.einsum("nchw,ochw->no", padded[:, :, i:i + 3, j:j + 3], w) + b
        return out

    def pool_relu(x):
        n, c, h, w = x.shape
        return np.maximum(x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5)), 0)

    h = pool_relu(conv(x, *layers["conv1"]))
    h = pool_relu(conv(h, *layers["conv2"]))
    expected = h.reshape(2, -1) @ layers["fc"][0] + layers["fc"][1]
    got = capstone.Network(layers)(x)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4), np.abs(got - expected).max()


def test_a_real_submission_is_scored(tmp_path):
    """The baseline in int8: 6,496 bytes, timed against the baseline, scored by the formula of what was measured."""
    result = verify(submit(tmp_path), seconds=SCORING_SECONDS, clock=steady_clock())
    assert result["status"] == SCORED, result["reasons"]
    measured = result["measured"]
    assert measured["latency_ratio"] == 1.0
    assert measured["bytes"] == 6496 and measured["images"] == 359 and measured["correct"] >= 355
    latency = measured["latency"]
    assert latency["rounds"] >= capstone.MIN_ROUNDS and latency["batch"] == 32
    assert latency["median_s"] > 0 and latency["p90_s"] >= latency["median_s"] and latency["baseline_p90_s"] > 0
    expected = 20 * math.log2(24360 / 6496) + 40 * math.log2(1 / measured["latency_ratio"])
    assert abs(result["score"] - round(expected, 2)) < 1e-9
    assert result["participant"] == "Ada Lovelace" and result["recipe"] == ["int8 weights, one scale per output channel"]
    assert result["submission"]["weights_sha256"] and result["rules"]["baseline_accuracy"] == 356 / 359


def test_the_score_is_of_the_measurements_never_the_claims(tmp_path):
    """Modest claims (a lower accuracy, more bytes, a slower latency) change nothing: the score is the measurements'."""
    arrays = int8_arrays(float_arrays())
    data = description(arrays, claims={"accuracy": 0.5, "bytes": 20000, "latency_ratio": 5.0})
    result = verify(submit(tmp_path, arrays, data), seconds=SCORING_SECONDS, clock=steady_clock())
    assert result["status"] == SCORED, result["reasons"]
    measured = result["measured"]
    assert result["score"] == round(capstone.score(measured["accuracy"], measured["bytes"], measured["latency_ratio"]), 2)
    assert measured["bytes"] == 6496 and measured["accuracy"] > 0.98


def test_over_budget_scores_zero_and_says_why(tmp_path):
    """The float32 baseline itself: 24,360 bytes is over the budget: over budget, score 0, the bytes named."""
    arrays = float_arrays()
    result = verify(submit(tmp_path, arrays))
    assert result["status"] == OVER_BUDGET and result["score"] == 0
    assert len(result["reasons"]) == 1 and "24,360 bytes" in result["reasons"][0]


def test_below_target_is_not_timed(tmp_path):
    """Half the channels cut without fine-tuning reads too few digits: over budget, never timed."""
    arrays = float_arrays()
    arrays["conv1.weight"], arrays["conv1.bias"] = arrays["conv1.weight"][:8], arrays["conv1.bias"][:8]
    arrays["conv2.weight"], arrays["conv2.bias"] = arrays["conv2.weight"][:16, :8], arrays["conv2.bias"][:16]
    arrays["fc.weight"] = arrays["fc.weight"][:64]
    arrays = int8_arrays(arrays)
    result = verify(submit(tmp_path, arrays))
    assert result["status"] == OVER_BUDGET and result["score"] == 0
    assert result["measured"]["accuracy"] < 0.97 and result["measured"]["latency"] is None
    assert "not timed" in result["reasons"][0]


def test_a_low_rank_float16_submission(tmp_path):
    """A rank-10 head (fc1 without bias, fc2 with it) stored in float16 is rebuilt exactly as described."""
    arrays = float_arrays()
    u, s, vt = np.linalg.svd(arrays.pop("fc.weight").astype(np.float64), full_matrices=False)
    arrays["fc1.weight"] = (u * np.sqrt(s)).astype(np.float16)
    arrays["fc2.weight"] = (np.sqrt(s)[:, None] * vt).astype(np.float16)
    arrays["fc2.bias"] = arrays.pop("fc.bias")
    arrays["conv2.weight"] = arrays["conv2.weight"].astype(np.float16)
    result = verify(submit(tmp_path, arrays))
    assert result["status"] != REJECTED, result["reasons"]
    assert result["model"]["fc_rank"] == 10 and result["measured"]["correct"] >= 355
    assert result["measured"]["bytes"] == sum(a.nbytes for a in arrays.values())


# -- claims that do not reproduce --------------------------------------------------------------------------


@pytest.mark.parametrize("claims,reason", [
    ({"accuracy": 1.0, "bytes": 6496, "latency_ratio": None}, "claims accuracy 100.00%"),
    ({"accuracy": 0.0, "bytes": 1000, "latency_ratio": None}, "claims 1,000 bytes"),
    ({"accuracy": 0.0, "bytes": 6496, "latency_ratio": 0.01}, "claims a latency ratio of 0.01"),
])
def test_a_forged_claim_is_rejected(tmp_path, claims, reason):
    """A claim better than the measurement (beyond one image, any byte, or twice the speed) is rejected, naming both numbers."""
    arrays = int8_arrays(float_arrays())
    result = verify(submit(tmp_path, arrays, description(arrays, claims=claims)))
    assert_rejected(result, reason, "measured" if "bytes" not in reason else "the arrays hold")


def test_an_accuracy_claim_one_image_high_is_accepted(tmp_path):
    """A tie decided the other way in another framework: a claim one image above the measurement still reproduces."""
    arrays = int8_arrays(float_arrays())
    probe = verify(submit(tmp_path, arrays))
    claims = {"accuracy": (probe["measured"]["correct"] + 1) / 359, "bytes": 6496, "latency_ratio": None}
    assert verify(submit(tmp_path, arrays, description(arrays, claims=claims)), seconds=SCORING_SECONDS,
                  clock=steady_clock())["status"] == SCORED


def test_a_model_trained_on_the_held_out_images_is_rejected(tmp_path):
    """The baseline's head retrained on the 359 held-out images reads all of them: above the ceiling, rejected."""
    arrays = float_arrays()
    images, labels = capstone.held_out_digits()
    network = capstone.Network(capstone.float_weights(arrays, None))
    x = images.transpose(0, 2, 3, 1)
    for weight, bias in network.convs:
        x = network.conv_relu_pool(x, weight, bias)
    features = x.transpose(0, 3, 1, 2).reshape(len(x), -1).astype(np.float64)  # (359, 128)
    w, b = arrays["fc.weight"].astype(np.float64), arrays["fc.bias"].astype(np.float64)
    onehot = np.eye(10)[labels]
    for _ in range(2000):  # softmax regression on the test set: exactly what the rule forbids
        logits = features @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        w -= 0.05 * features.T @ (p - onehot) / len(labels)
        b -= 0.05 * (p - onehot).mean(axis=0)
        if ((features @ w + b).argmax(axis=1) == labels).all():
            break
    arrays["fc.weight"], arrays["fc.bias"] = w.astype(np.float32), b.astype(np.float32)
    arrays = int8_arrays(arrays)
    result = verify(submit(tmp_path, arrays))
    assert result["measured"]["correct"] >= 358, "the test's own retraining did not reach the held-out images"
    assert_rejected(result, "above the baseline's 99.16%", "held-out images")


# -- malformed and hostile descriptions -------------------------------------------------------------------


def changed(**fields) -> dict:
    arrays = int8_arrays(float_arrays())
    data = description(arrays)
    for key, value in fields.items():
        if "." in key:
            outer, inner = key.split(".")
            data[outer] = {**data[outer], inner: value}
        elif value is ...:
            del data[key]
        else:
            data[key] = value
    return data


BAD_DESCRIPTIONS = {
    "not an object": ([1, 2], "a JSON object"),
    "wrong format": (changed(format="tinytorch-result"), "'format' should be"),
    "version 2": (changed(version=2), "knows version 1"),
    "another event": (changed(event="gpt"), "'event' should be"),
    "no participant": (changed(participant=...), "lacks 'participant'"),
    "an extra field": (changed(payload="x"), "does not know: 'payload'"),
    "markup in the name": (changed(participant="<script>alert(1)</script>"), "markup"),
    "control characters in the name": (changed(participant="Eve\x1b[2J"), "control characters"),
    "a right-to-left override in the name": (changed(participant="Eve\u202etxt.exe"), "control characters"),
    "a long name": (changed(participant="A" * 41), "at most 40"),
    "a blank name": (changed(participant="   "), "non-empty string"),
    "a name that is not text": (changed(participant=["Ada"]), "non-empty string"),
    "a bad time": (changed(created_at="yesterday"), "'created_at'"),
    "no recipe": (changed(recipe=[]), "'recipe'"),
    "a recipe that is text": (changed(recipe="int8"), "'recipe'"),
    "a recipe line with a newline": (changed(recipe=["one", "two\nthree"]), "recipe line 2 holds control"),
    "accuracy above 1": (changed(**{"claims.accuracy": 1.5}), "'accuracy' should be a fraction"),
    "bytes as text": (changed(**{"claims.bytes": "6496"}), "'bytes' should be a positive whole number"),
    "bytes as a bool": (changed(**{"claims.bytes": True}), "'bytes' should be a positive whole number"),
    "a latency of 0": (changed(**{"claims.latency_ratio": 0}), "'latency_ratio' should be a positive number"),
    "weights outside the folder": (changed(**{"model.weights": "../ada.npz"}), "no folders"),
    "weights at an absolute path": (changed(**{"model.weights": "/etc/passwd"}), "no folders"),
    "weights in a subfolder": (changed(**{"model.weights": "sub/ada.npz"}), "no folders"),
    "hidden weights": (changed(**{"model.weights": ".ada.npz"}), "no folders"),
    "weights that are not npz": (changed(**{"model.weights": "ada.pkl"}), "no folders"),
    "17 channels": (changed(**{"model.conv1_channels": 17}), "'conv1_channels' should be a whole number from 1 to 16"),
    "channels as a float": (changed(**{"model.conv1_channels": 16.0}), "'conv1_channels'"),
    "33 channels": (changed(**{"model.conv2_channels": 33}), "'conv2_channels' should be a whole number from 1 to 32"),
    "rank 11": (changed(**{"model.fc_rank": 11}), "'fc_rank' should be null or a whole number from 1 to 10"),
    "an unknown storage": (changed(**{"model.storage": {"conv1": "int4", "conv2": "int8", "fc": "int8"}}), "int4"),
    "a storage for a missing layer": (changed(**{"model.storage": {"conv1": "int8", "conv2": "int8"}}),
                                      "lacks 'fc'"),
    "an extra model field": (changed(**{"model.code": "import os"}), "does not know: 'code'"),
}


@pytest.mark.parametrize("case", sorted(BAD_DESCRIPTIONS))
def test_a_malformed_description_is_rejected_by_name(tmp_path, case):
    data, reason = BAD_DESCRIPTIONS[case]
    path = submit(tmp_path)
    path.write_text(json.dumps(data), encoding="utf-8")
    result = verify(path)
    assert_rejected(result, reason)
    if "name" in case:
        assert result["participant"] is None, "a name the board cannot show is never copied into the result"


VALID_TEXT = json.dumps(description(int8_arrays(capstone.baseline_arrays())))
BAD_JSON = {
    "not UTF-8": (VALID_TEXT.replace("Ada", "Jos\u00e9").encode("latin-1"), "not UTF-8"),
    "truncated": (VALID_TEXT[:200].encode(), "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "NaN": (VALID_TEXT.replace('"accuracy": 0.0', '"accuracy": NaN').encode(), "NaN is not a number"),
    "Infinity": (VALID_TEXT.replace('"accuracy": 0.0', '"accuracy": Infinity').encode(), "not a number"),
    "a huge integer": (VALID_TEXT.replace('"bytes": 6496', '"bytes": 6' + "0" * 10_000).encode(), "too large"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "too large"),
    "oversized": (VALID_TEXT.encode() + b" " * capstone.MAX_JSON_BYTES, "too large"),
    "moderately deep nesting": (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_a_file_that_is_not_strict_json_is_rejected(tmp_path, case):
    contents, reason = BAD_JSON[case]
    path = submit(tmp_path)
    path.write_bytes(contents)
    assert_rejected(verify(path), "the submission", reason)


def test_files_that_are_not_regular_files(tmp_path):
    """A missing file, a NUL in its name, a folder, a named pipe and a symbolic link are each rejected, without reading or following them."""
    assert_rejected(verify(tmp_path / "nobody.json"), "no such file")
    assert_rejected(verify(tmp_path / "nul\0byte.json"), "cannot be read")
    (tmp_path / "folder.json").mkdir()
    assert_rejected(verify(tmp_path / "folder.json"), "not a regular file")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.json")
        assert_rejected(verify(tmp_path / "pipe.json"), "not a regular file")  # and no wait for a writer
    real = submit(tmp_path)
    (tmp_path / "link.json").symlink_to(real)
    assert_rejected(verify(tmp_path / "link.json"), "symbolic link")


# -- malformed and hostile arrays ---------------------------------------------------------------------------


def with_weights(tmp_path: Path, raw: bytes, arrays: dict | None = None) -> dict:
    """Verify a submission whose description is the valid int8 one and whose .npz holds `raw`."""
    path = submit(tmp_path, arrays)
    (tmp_path / "ada.npz").write_bytes(raw)
    return verify(path)


def test_a_pickle_is_never_unpickled(tmp_path):
    """An .npz that is really a pickle is rejected as a pickle, and the pickle never runs."""
    marker = tmp_path / "pwned"
    result = with_weights(tmp_path, pickle.dumps({"conv1.weight": Tripwire(marker)}))
    assert_rejected(result, "a pickle")
    assert not marker.exists(), "something unpickled the submission"


def test_an_object_array_is_never_unpickled(tmp_path):
    """An object array (its .npy holds a pickle) is rejected from its header; the pickle never runs."""
    marker = tmp_path / "pwned"
    arrays = int8_arrays(float_arrays())
    members = members_of(arrays)
    members["conv1.bias.npy"] = npy_bytes(np.array([Tripwire(marker)] * 16, dtype=object))
    result = with_weights(tmp_path, npz_bytes(members))
    assert_rejected(result, "'conv1.bias'", "Python objects")
    assert not marker.exists(), "something unpickled the submission"


def replaced(name: str, value: np.ndarray) -> dict:
    arrays = int8_arrays(float_arrays())
    arrays[name] = value
    return arrays


def dropped(name: str) -> dict:
    arrays = int8_arrays(float_arrays())
    del arrays[name]
    return arrays


BAD_ARRAYS = {
    "a missing array": (lambda: members_of(dropped("conv1.bias")), "lacks 'conv1.bias'"),
    "a missing scale": (lambda: members_of(dropped("fc.scale")), "lacks 'fc.scale'"),
    "an extra array": (lambda: members_of({**int8_arrays(float_arrays()), "evil": np.zeros(3, np.float32)}),
                       "does not use: 'evil'"),
    "a member that is not an array": (lambda: {**members_of(int8_arrays(float_arrays())), "run.py": b"import os"},
                                      "'run.py'", "not arrays"),
    "a member in a folder": (lambda: {**members_of(dropped("fc.bias")), "../fc.bias.npy": npy_bytes(np.zeros(10))},
                             "not arrays"),
    "float64 weights": (lambda: members_of(replaced("conv2.weight", np.zeros((32, 16, 3, 3)))), "dtype <f8"),
    "big-endian biases": (lambda: members_of(replaced("fc.bias", np.zeros(10, dtype=">f4"))), "dtype >f4"),
    "float32 where int8 was described": (lambda: members_of(replaced("conv1.weight", np.zeros((16, 1, 3, 3),
                                                                                               np.float32))),
                                         "'conv1.weight' has dtype <f4"),
    "a wrong shape": (lambda: members_of(replaced("fc.weight", np.zeros((10, 128), np.int8))), "shape (10, 128)"),
    "a scale per input": (lambda: members_of(replaced("fc.scale", np.ones(128, np.float32))), "shape (128,)"),
    "a corrupt header": (lambda: {**members_of(dropped("fc.bias")), "fc.bias.npy": b"\x93NUMPY\x01\x00garbage"},
                         "no readable .npy header"),
    "a truncated array": (lambda: {**members_of(dropped("fc.bias")),
                                   "fc.bias.npy": npy_bytes(np.zeros(10, np.float32))[:-8]}, "cannot be read"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_malformed_arrays_are_rejected_by_name(tmp_path, case):
    build, *reasons = BAD_ARRAYS[case]
    assert_rejected(with_weights(tmp_path, npz_bytes(build())), "weights", *reasons)


def test_a_duplicated_member_is_rejected(tmp_path):
    """A zip may hold one name twice (np.load would read one of them): rejected, naming it."""
    buffer = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members_of(int8_arrays(float_arrays())).items():
            archive.writestr(name, data)
        archive.writestr("fc.bias.npy", npy_bytes(np.full(10, 1e3, np.float32)))
    assert_rejected(with_weights(tmp_path, buffer.getvalue()), "'fc.bias.npy' more than once")


def test_a_zip_bomb_is_rejected_before_it_is_read(tmp_path):
    """A valid conv1.weight followed by 16 MB of zeros, packed into a few kilobytes: refused from the archive's sizes."""
    members = members_of(int8_arrays(float_arrays()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data + (bytes(16 << 20) if name == "conv1.weight.npy" else b""))
    assert len(buffer.getvalue()) < capstone.MAX_WEIGHTS_BYTES
    assert_rejected(with_weights(tmp_path, buffer.getvalue()), "'conv1.weight' unpacks to 16,777,")


def test_a_huge_array_is_refused_from_its_header(tmp_path):
    """conv1.weight declared (4096, 4096) int8: refused from its header, its 16 MB never unpacked."""
    arrays = int8_arrays(float_arrays())
    arrays["conv1.weight"] = np.zeros((4096, 4096), dtype=np.int8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    assert len(buffer.getvalue()) < capstone.MAX_WEIGHTS_BYTES
    assert_rejected(with_weights(tmp_path, buffer.getvalue()), "'conv1.weight' has shape (4096, 4096)")


def test_oversized_weights_are_rejected(tmp_path):
    assert_rejected(with_weights(tmp_path, b"PK" + b"\0" * capstone.MAX_WEIGHTS_BYTES), "too large")


@pytest.mark.parametrize("contents,reason", [
    (npy_bytes(np.zeros(3, np.float32)), "a single .npy array"),
    (b"conv1.weight = [0.5, 0.25]\n", "not an npz archive"),
    (b"PK\x03\x04" + bytes(200), "not an npz archive"),
])
def test_files_that_are_not_archives(tmp_path, contents, reason):
    assert_rejected(with_weights(tmp_path, contents), reason)


def test_a_truncated_archive(tmp_path):
    raw = io.BytesIO()
    np.savez(raw, **int8_arrays(float_arrays()))
    result = with_weights(tmp_path, raw.getvalue()[: len(raw.getvalue()) // 2])
    assert_rejected(result, "weights")


def test_weights_behind_a_symbolic_link(tmp_path):
    """The .npz may not be a link (to a file elsewhere, or even to a valid archive)."""
    path = submit(tmp_path)
    (tmp_path / "ada.npz").rename(tmp_path / "real.npz")
    (tmp_path / "ada.npz").symlink_to(tmp_path / "real.npz")
    assert_rejected(verify(path), "symbolic link")


def test_missing_weights(tmp_path):
    path = submit(tmp_path)
    (tmp_path / "ada.npz").unlink()
    assert_rejected(verify(path), "'ada.npz'", "no such file")


@pytest.mark.parametrize("name,value,reason", [
    ("conv2.scale", np.full(32, np.nan, np.float32), "nan or infinite"),
    ("fc.bias", np.array([np.inf] + [0.0] * 9, np.float32), "'fc.bias' holds 1 nan or infinite"),
    ("conv1.scale", np.zeros(16, np.float32), "not positive"),
    ("fc.scale", -np.ones(10, np.float32), "not positive"),
    ("conv1.weight", np.full((16, 1, 3, 3), -128, np.int8), "-128"),
])
def test_weights_that_are_not_numbers_to_compute_with(tmp_path, name, value, reason):
    assert_rejected(with_weights(tmp_path, npz_bytes(members_of(replaced(name, value)))), f"'{name}'", reason)


def test_huge_float16_weights_are_measured_not_crashed(tmp_path):
    """float16 weights at 60,000 overflow float32 sums to inf: the accuracy is what it is; nothing raises."""
    arrays = float_arrays()
    arrays["conv2.weight"] = np.full((32, 16, 3, 3), 60000, np.float16)
    result = verify(submit(tmp_path, arrays))
    assert result["status"] == OVER_BUDGET and result["measured"]["accuracy"] < 0.5


def test_corrupted_archives_never_crash(tmp_path):
    """A hundred seeded corruptions of a valid archive (flipped bytes, cut ends): each is rejected or measured; nothing raises."""
    raw = io.BytesIO()
    np.savez(raw, **int8_arrays(float_arrays()))
    valid = raw.getvalue()
    rng = np.random.default_rng(20)
    path = submit(tmp_path)
    statuses = set()
    for _ in range(100):
        broken = bytearray(valid)
        for position in rng.integers(0, len(broken), size=int(rng.integers(1, 6))):
            broken[position] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            broken = broken[: int(rng.integers(0, len(broken)))]
        (tmp_path / "ada.npz").write_bytes(bytes(broken))
        statuses.add(capstone.verify(path, seconds=0.0001)["status"])
    assert REJECTED in statuses


# -- the latency measurement --------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when a fake call says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def call(self, seconds: float):
        def fn():
            self.now += seconds
        return fn


def test_paired_latency_statistics():
    """Baseline calls of 2 s, submission calls of 1 s: the ratio is 0.5, the medians and p90s are the calls' own."""
    clock = FakeTime()
    latency = capstone.paired_latency(clock.call(2.0), clock.call(1.0), seconds=0.0, clock=clock, min_rounds=10,
                                      warmup=3)
    assert latency["ratio"] == 0.5 and latency["rounds"] == 10
    assert latency["median_s"] == latency["p90_s"] == 1.0
    assert latency["baseline_median_s"] == latency["baseline_p90_s"] == 2.0
    assert clock.now == 13 * 3.0, "3 warm-up rounds and 10 timed rounds of both calls"


def test_paired_latency_runs_for_the_seconds_it_is_given():
    """With min_rounds 10 and seconds 100, rounds of 3 s go on until 100 s have passed: 34 rounds."""
    clock = FakeTime()
    latency = capstone.paired_latency(clock.call(2.0), clock.call(1.0), seconds=100.0, clock=clock, warmup=0)
    assert latency["rounds"] == 34


def test_paired_latency_median_of_ratios_resists_a_slow_spell():
    """A slow spell that slows both calls of a round tenfold moves the ratio of those rounds by nothing."""
    clock, state = FakeTime(), {"round": 0}

    def baseline():
        state["round"] += 1
        clock.now += 20.0 if state["round"] % 4 == 0 else 2.0

    def submission():
        clock.now += 10.0 if state["round"] % 4 == 0 else 1.0
    latency = capstone.paired_latency(baseline, submission, seconds=0.0, clock=clock, min_rounds=20, warmup=0)
    assert latency["ratio"] == 0.5


# -- the leaderboard's event ------------------------------------------------------------------------------------


def scored_result(participant: str, accuracy: float, nbytes: int, ratio: float | None, created: str) -> dict:
    """A verifier's result for these measurements, as verify writes it."""
    missed = capstone.missed_budgets(accuracy, nbytes, ratio)
    result = capstone.new_result(Path("x.json"), created)
    result["rules"].update(baseline_accuracy=356 / 359, accuracy_ceiling=capstone.accuracy_ceiling(356 / 359, 359))
    result.update(participant=participant, status=OVER_BUDGET if missed else SCORED, reasons=missed,
                  measured={"accuracy": accuracy, "correct": round(accuracy * 359), "images": 359, "bytes": nbytes,
                            "latency_ratio": ratio, "latency": None},
                  score=round(capstone.score(accuracy, nbytes, ratio), 2))
    assert capstone.validate_result(result) == [], capstone.validate_result(result)
    return result


def write(folder: Path, name: str, data) -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_leaderboard_ranks_the_event_by_score(tmp_path, capsys):
    """Scores rank highest first, over budget at 0 last; rejected and kata results are skipped with their reasons."""
    board = tmp_path / "board"
    board.mkdir()
    write(board, "a.json", scored_result("Ada", 0.98, 4028, 0.86, "2025-03-01T10:00:00Z"))
    write(board, "b.json", scored_result("Grace", 0.975, 3010, 0.78, "2025-03-01T10:01:00Z"))
    write(board, "c.json", scored_result("Alan", 0.99, 24360, 1.0, "2025-03-01T10:02:00Z"))
    write(board, "d.json", scored_result("Ada", 0.98, 6496, 1.0, "2025-03-01T09:00:00Z"))  # Ada's older result
    rejected = capstone.new_result(Path("e.json"), "2025-03-01T10:03:00Z")
    rejected["reasons"] = ["claims accuracy 100.00%, measured 98.05%"]
    write(board, "e.json", rejected)
    write(board, "f.json", {"format": "tinytorch-result", "version": 1})
    ranked, skipped = leaderboard.gather([str(board)], None, "digits-cnn")
    assert [(place, entry.participant, entry.score) for place, entry in ranked] == [
        (1, "Grace", round(capstone.score(0.975, 3010, 0.78), 2)), (2, "Ada", round(capstone.score(0.98, 4028, 0.86), 2)),
        (3, "Alan", 0.0)]
    reasons = {Path(s.source).name: s.reason for s in skipped}
    assert "rejected by the verifier: claims accuracy" in reasons["e.json"]
    assert "a kata result" in reasons["f.json"] and "older result" in reasons["d.json"]
    assert leaderboard.main([str(board), "--event", "digits-cnn", "--html", str(tmp_path / "board.html")]) == 0
    text = capsys.readouterr().out
    assert re.search(r"1\s+Grace\s+\d+\.\d\s+97\.50%\s+3,010\s+0\.78x", text), text
    assert re.search(r"3\s+Alan\s+0\.0\s+99\.00%\s+24,360\s+1\.00x", text), text
    page = (tmp_path / "board.html").read_text(encoding="utf-8")
    cells = TableCells()
    cells.feed(page)
    assert cells.rows[0] == ["#", "Participant", "Score", "Accuracy", "Bytes", "Latency"]
    assert cells.rows[1][:3] == ["1", "Grace", f"{round(capstone.score(0.975, 3010, 0.78), 2):.1f}"]
    assert "Capstone · digits-cnn" in page and "<script" not in page


class TableCells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_a_result_edited_by_hand_is_skipped(tmp_path):
    """A score raised by hand, or an over-budget result marked scored, does not validate: skipped, not ranked."""
    better = scored_result("Mallory", 0.98, 4028, 0.86, "2025-03-01T10:00:00Z")
    better["score"] = 999.0
    promoted = scored_result("Oscar", 0.99, 24360, 1.0, "2025-03-01T10:00:00Z")
    promoted.update(status=SCORED, reasons=[])
    renamed = scored_result("Eve", 0.98, 4028, 0.86, "2025-03-01T10:00:00Z")
    renamed["participant"] = "<img src=x onerror=alert(1)>"
    rules = scored_result("Trent", 0.98, 4028, 0.86, "2025-03-01T10:00:00Z")
    rules["rules"]["max_bytes"] = 10 ** 6
    for name, data, reason in (("m.json", better, "the measurements give"), ("o.json", promoted, "miss the budgets"),
                               ("e.json", renamed, "markup"), ("t.json", rules, "not this event's")):
        with pytest.raises(leaderboard.BadFile, match=re.escape(reason)):
            leaderboard.read_result(write(tmp_path, name, data), "digits-cnn")


def test_event_and_kata_boards_keep_to_their_own_files(tmp_path):
    """A capstone result on a kata board is skipped, saying to use --event; --event with --kata, or an unknown event, is a usage error."""
    path = write(tmp_path, "ada.json", scored_result("Ada", 0.98, 4028, 0.86, "2025-03-01T10:00:00Z"))
    with pytest.raises(leaderboard.BadFile, match="rank it with --event"):
        leaderboard.read_result(path)
    ranked, skipped = leaderboard.gather([str(path)], None)
    assert not ranked and skipped[0].for_the_room == ("ada.json", "a capstone result")
    for argv in ([str(path), "--event", "digits-cnn", "--kata", "01"], [str(path), "--event", "gpt"]):
        with pytest.raises(SystemExit) as exit_:
            leaderboard.main(argv)
        assert exit_.value.code == 2


# -- the command line --------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scoreboard.py", "capstone", *args], cwd=ROOT, env=child_environment(),
                          capture_output=True, text=True, timeout=60)


def test_the_command_line(tmp_path, capsys):
    """verify prints the verdict and writes the result (exit 0), a rejection exits 1, rules prints the budgets, a bad option 2."""
    path = submit(tmp_path)
    done = run_cli("verify", str(path), "--seconds", "0.2", "--out", str(tmp_path / "result.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SCORED" in done.stdout and "6,496" in done.stdout
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    assert capstone.validate_result(result) == [] and result["status"] == SCORED
    (tmp_path / "ada.npz").write_bytes(pickle.dumps({"x": 1}))
    assert capstone.main(["verify", str(path), "--seconds", "0.05"]) == 1
    assert "REJECTED" in capsys.readouterr().out
    assert capstone.main(["rules"]) == 0
    out = capsys.readouterr().out
    assert "8,192 bytes" in out and "97%" in out and "log2" in out
    with pytest.raises(SystemExit) as exit_:
        capstone.main(["verify", str(path), "--seconds", "0"])
    assert exit_.value.code == 2


def test_an_altered_baseline_stops_the_verifier(tmp_path, monkeypatch, capsys):
    """A baseline file that is not the event's (its SHA-256 differs) is never used to judge anyone: exit 2, saying so."""
    path = submit(tmp_path)
    monkeypatch.setattr(capstone, "BASELINE_SHA256", "0" * 64)
    assert capstone.main(["verify", str(path), "--seconds", "0.01"]) == 2
    assert "not the event's baseline" in capsys.readouterr().err


def test_the_report_shows_hostile_text_as_text(tmp_path):
    """Control characters in a file name never reach the terminal raw."""
    path = submit(tmp_path, name="evil")
    hostile = tmp_path / "evil\x1b[2J.json"
    path.rename(hostile)
    text = capstone.report(verify(hostile))
    assert "\x1b" not in text and "evil" in text

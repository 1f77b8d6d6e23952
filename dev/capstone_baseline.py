"""Write the capstone's baseline, katas/data/capstone_digits_cnn.npz: the 1998 CNN, trained once.

    python dev/capstone_baseline.py                  # train on the reference, write the file
    python dev/capstone_baseline.py --check          # train again, compare with the file shipped

The network, the split (seed 0), the weight and shuffle seeds, the optimiser and the 20
epochs are the 1998 milestone's (katas/milestones/1998_cnn_digits.py). The arrays are
saved float32 under the event's names (conv1.weight, conv1.bias, conv2.weight,
conv2.bias, fc.weight, fc.bias) with np.savez, arrays only. harness/capstone.py checks
the file's SHA-256 (BASELINE_SHA256) before it trusts it: update that constant, and
katas/data/README.md, when this file is regenerated.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import implementation  # noqa: E402

implementation.install("reference")

import numpy as np  # noqa: E402

from katas.milestones import common  # noqa: E402
from tinytorch.autograd import no_grad  # noqa: E402
from tinytorch.dataloader import DataLoader, TensorDataset, load_digits, train_test_split  # noqa: E402
from tinytorch.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
from tinytorch.tensor import Tensor  # noqa: E402
from tinytorch.training import accuracy, train_epoch  # noqa: E402

OUT = ROOT / "katas" / "data" / "capstone_digits_cnn.npz"
NAMES = {"0": "conv1", "3": "conv2", "7": "fc"}  # the milestone's Sequential positions -> the event's layer names


def train() -> tuple[dict, float]:
    """The milestone's model, trained by the milestone's recipe; its arrays by event name, and its test accuracy."""
    milestone = common.load_script("1998_cnn_digits")
    images, labels = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(images[:, None], labels, test_fraction=0.2, seed=0)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=milestone.BATCH_SIZE, shuffle=True,
                        rng=np.random.default_rng(1998))
    model = milestone.build_model(np.random.default_rng(98))
    optimizer = Adam(model.parameters(), lr=milestone.LEARNING_RATE)
    for _ in range(milestone.EPOCHS):
        train_epoch(model, CrossEntropyLoss(), optimizer, list(loader))
    model.eval()
    with no_grad():
        test_accuracy = accuracy(model(Tensor(x_test)), y_test)
    arrays = {}
    for name, parameter in model.named_parameters():
        position, kind = name.split(".")
        arrays[f"{NAMES[position]}.{kind}"] = np.asarray(parameter.data, dtype=np.float32)
    return arrays, test_accuracy


def saved(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python dev/capstone_baseline.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare a fresh training with the shipped file")
    args = parser.parse_args(argv)
    arrays, test_accuracy = train()
    raw = saved(arrays)
    print(f"test accuracy {test_accuracy:.4%}; {sum(a.size for a in arrays.values()):,} parameters, "
          f"{sum(a.nbytes for a in arrays.values()):,} bytes of arrays, {len(raw):,} bytes on disk")
    print(f"sha256 {hashlib.sha256(raw).hexdigest()}")
    if args.check:
        with np.load(OUT, allow_pickle=False) as shipped:
            worst = max(float(np.max(np.abs(shipped[name] - value))) for name, value in arrays.items())
        print(f"largest difference from {OUT.relative_to(ROOT)}: {worst:.3g}")
        return 0
    OUT.write_bytes(raw)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

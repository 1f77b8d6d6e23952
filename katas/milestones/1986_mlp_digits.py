"""1986 · Backpropagation: a multi-layer perceptron learns to read handwritten digits.

Rumelhart, Hinton and Williams (1986) showed that gradients sent backward through
hidden layers train them to find useful features. Here that is every kata at once: a
64-128-10 MLP (Linear, ReLU, Linear) reads the 8x8 digits (1,797 images, shipped in
katas/data/), trained with cross-entropy and Adam from shuffled mini-batches, and is
measured on a fifth of the images it never trained on.

    python katas/milestones/1986_mlp_digits.py                    # your tinytorch

The target: at least 97% accuracy on the held-out images, with training (the epochs,
not the start-up) under 10 seconds. The lesson is katas/milestones/README.md,
section '1986: backpropagation on digits'.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])  # the repository root: `harness` and `katas` live there
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from katas.milestones import common  # noqa: E402

if __name__ == "__main__":
    common.choose_implementation()  # before the first tinytorch import

import numpy as np  # noqa: E402

from tinytorch.activations import ReLU  # noqa: E402
from tinytorch.dataloader import DataLoader, TensorDataset, load_digits, train_test_split  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
from tinytorch.training import accuracy  # noqa: E402

TARGET = 0.97  # test accuracy
SECONDS = 10.0  # training time allowed
EPOCHS = 30
BATCH_SIZE = 32
HIDDEN = 128


def main(verbose: bool = True) -> dict:
    """Train the MLP on 80% of the digits, measure on the rest; return the run's metrics."""
    images, labels = load_digits(flatten=True)  # (1797, 64) in [0, 1], (1797,) digits
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH_SIZE, shuffle=True,
                        rng=np.random.default_rng(1986))
    rng = np.random.default_rng(86)
    model = Sequential(Linear(64, HIDDEN, rng=rng), ReLU(), Linear(HIDDEN, 10, rng=rng))
    results = common.run(model, CrossEntropyLoss(), Adam(model.parameters(), lr=2e-3),
                         train_batches=lambda: list(loader), eval_batches=[(x_test, y_test)], epochs=EPOCHS,
                         metric=accuracy, target=TARGET, report_every=3, verbose=verbose, verdict=False,
                         title=f"1986 · an MLP, 64-{HIDDEN}-10, on {len(x_train)} digits "
                               f"(tested on {len(x_test)} it never sees)")
    in_time = results["train_seconds"] < SECONDS
    results["reached"] = results["reached"] and in_time
    if verbose:
        print(f"\ntest accuracy {results['final_accuracy']:.2%} (target {TARGET:.0%}); "
              f"training took {results['train_seconds']:.1f} s (allowed {SECONDS:.0f} s)")
        print("milestone reached" if results["reached"] else "milestone NOT reached")
    return results


if __name__ == "__main__":
    common.finish(main)

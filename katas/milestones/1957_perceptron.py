"""1957 · Rosenblatt's perceptron: one Linear layer learns to separate two clouds of points.

Two classes of points in the plane that a straight line can split. The model is the
perceptron's whole anatomy, one weighted sum and a threshold: Linear(2, 1), whose
output is positive for class 1. It learns with BCEWithLogitsLoss and plain SGD.

    python katas/milestones/1957_perceptron.py                    # your tinytorch

The lesson is katas/milestones/README.md, section '1957: the perceptron'.
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

from tinytorch.layers import Linear  # noqa: E402
from tinytorch.losses import BCEWithLogitsLoss  # noqa: E402
from tinytorch.optimizers import SGD  # noqa: E402

TARGET = 1.0  # every point on the right side of the line
EPOCHS = 60  # full-batch: one update per epoch
MARGIN = 0.25  # no point lies closer than this to the true boundary


def separable_points(n: int = 200):
    """(x, y): n points in [-1, 1]^2, float32, labelled 1 above the line x1 + 2 x2 = 0.3, else 0."""
    rng = np.random.default_rng(1957)
    x = rng.uniform(-1, 1, size=(4 * n, 2)).astype(np.float32)
    distance = (x[:, 0] + 2 * x[:, 1] - 0.3) / np.sqrt(5)  # signed distance to the line
    keep = np.abs(distance) > MARGIN  # a clear gap between the classes
    x, distance = x[keep][:n], distance[keep][:n]
    y = (distance > 0).astype(np.float32).reshape(-1, 1)  # (n, 1): one target per logit
    return x, y


def main(verbose: bool = True) -> dict:
    """Train the perceptron; return the run's metrics ("final_accuracy", "reached", ...)."""
    x, y = separable_points()
    model = Linear(2, 1, rng=np.random.default_rng(58))
    results = common.run(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=1.0),
                         train_batches=lambda: [(x, y)], eval_batches=[(x, y)], epochs=EPOCHS,
                         metric=common.binary_accuracy, target=TARGET, report_every=10, verbose=verbose,
                         title=f"1957 · a perceptron, Linear(2, 1), on {len(x)} linearly separable points")
    if verbose:
        w, b = model.weight.data.reshape(-1), float(model.bias.data[0])
        print(f"learned boundary: {w[0]:.2f} x1 + {w[1]:.2f} x2 + {b:.2f} = 0   (true: x1 + 2 x2 - 0.3 = 0, up to scale)")
    return results


if __name__ == "__main__":
    common.finish(main)

"""1969 · XOR: what one layer cannot learn, and what one hidden layer can.

Minsky and Papert's book "Perceptrons" (1969) made the limit precise: a single layer
draws one straight line through the input space, and no line puts XOR's (0,0) and
(1,1) on one side and (0,1) and (1,0) on the other. Three of the four points right is
the best any line can do. Put one hidden layer with a nonlinearity in front and the
problem bends into one a line can split.

This script trains both on the same four points with the same loss and optimizer:
first Linear(2, 1) alone (it must stay at or under 75%), then
Linear(2, 8) -> Tanh -> Linear(8, 1) (it must reach 100%).

    python katas/milestones/1969_xor.py                    # your tinytorch

The lesson is katas/milestones/README.md, section '1969: XOR'.
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

from tinytorch.activations import Tanh  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import BCEWithLogitsLoss  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402

SINGLE_LAYER_CEILING = 0.75  # three of four points: the best a straight line can do
HIDDEN_LAYER_TARGET = 1.0
EPOCHS = 300  # full-batch: one Adam step per epoch on all four points
HIDDEN = 8


def xor_points():
    """The four corners of the unit square, float32, labelled 1 where exactly one input is 1."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)  # (4, 1): one target per logit
    return x, y


def train(model, title: str, target: float, verbose: bool, verdict: bool = True) -> dict:
    x, y = xor_points()
    return common.run(model, BCEWithLogitsLoss(), Adam(model.parameters(), lr=0.05),
                      train_batches=lambda: [(x, y)], eval_batches=[(x, y)], epochs=EPOCHS,
                      metric=common.binary_accuracy, target=target, report_every=50, verbose=verbose,
                      title=title, verdict=verdict)


def main(verbose: bool = True) -> dict:
    """Train one layer, then two; return both runs and whether each did what history says it does."""
    say = print if verbose else (lambda *args, **kwargs: None)
    single = train(Linear(2, 1, rng=np.random.default_rng(1969)),
                   "1969 · part 1: a single layer, Linear(2, 1), on XOR", target=1.0, verbose=verbose,
                   verdict=False)  # judged below: this one must fail
    say("")
    rng = np.random.default_rng(1986)
    hidden = train(Sequential(Linear(2, HIDDEN, rng=rng), Tanh(), Linear(HIDDEN, 1, rng=rng)),
                   f"1969 · part 2: one hidden layer, Linear(2, {HIDDEN}) -> Tanh -> Linear({HIDDEN}, 1), on XOR",
                   target=HIDDEN_LAYER_TARGET, verbose=verbose)
    single_stuck = single["final_accuracy"] <= SINGLE_LAYER_CEILING
    reached = single_stuck and hidden["reached"]
    say(f"\nsingle layer: {single['final_accuracy']:.0%} "
        f"({'stuck at or under 75%, as it must be' if single_stuck else 'ABOVE 75%: something is wrong'});"
        f" hidden layer: {hidden['final_accuracy']:.0%}")
    say("milestone reached" if reached else "milestone NOT reached")
    return {"single": single, "hidden": hidden, "single_accuracy": single["final_accuracy"],
            "final_accuracy": hidden["final_accuracy"], "reached": reached}


if __name__ == "__main__":
    common.finish(main)

"""1998 · Convolutions: a LeNet-style network reads the digits with fewer parameters than the MLP.

LeCun, Bottou, Bengio and Haffner (1998) read handwritten digits with LeNet-5: small
filters slid over the image (convolutions, whose weights every position shares),
subsampling (pooling), and a classifier on top, all trained by backpropagation. Here
that recipe runs on your tinytorch: two Conv2d + ReLU + MaxPool2d stages and one
Linear layer read the 8x8 digits of the 1986 milestone, on the same split.

    python katas/milestones/1998_cnn_digits.py                    # your tinytorch
    python katas/milestones/1998_cnn_digits.py --impl=reference   # the reference, to compare

The targets: at least 98% accuracy on the 359 held-out images, with fewer parameters
than the 1986 MLP (9,610), filters that visibly learned (each conv layer's weights move
by at least a fifth of their initial norm), and training under 60 seconds. The lesson
is katas/milestones/README.md, section '1998: convolutions on digits'.
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
from tinytorch.convolutions import Conv2d, Flatten, MaxPool2d  # noqa: E402
from tinytorch.dataloader import DataLoader, TensorDataset, load_digits, train_test_split  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
from tinytorch.training import accuracy  # noqa: E402

TARGET = 0.98  # test accuracy
SECONDS = 60.0  # training time allowed
MIN_FILTER_CHANGE = 0.2  # |W_end - W_start| / |W_start| for each conv layer
EPOCHS = 20
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
ART = " .:-=+*#%@"  # from the most negative weight of a filter to the most positive


def build_model(rng: np.random.Generator) -> Sequential:
    """Two convolution stages and a linear classifier: 6,090 parameters."""
    return Sequential(
        Conv2d(1, 16, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),  # (N, 1, 8, 8) -> (N, 16, 8, 8) -> (N, 16, 4, 4)
        Conv2d(16, 32, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),  # -> (N, 32, 4, 4) -> (N, 32, 2, 2)
        Flatten(), Linear(32 * 2 * 2, 10, rng=rng),  # -> (N, 128) -> (N, 10)
    )


def mlp_parameters() -> int:
    """The parameter count of the 1986 milestone's MLP, built the way that milestone builds it."""
    hidden = common.load_script("1986_mlp_digits").HIDDEN
    return Sequential(Linear(64, hidden), ReLU(), Linear(hidden, 10)).num_parameters()


def filter_art(filters: np.ndarray, per_row: int = 8) -> str:
    """3x3 filters (F, 1, 3, 3) as text, side by side: each filter scaled from its own minimum to maximum."""
    filters = filters[:, 0]  # (F, 3, 3)
    low = filters.min(axis=(1, 2), keepdims=True)
    span = np.maximum(filters.max(axis=(1, 2), keepdims=True) - low, 1e-12)
    levels = np.round((filters - low) / span * (len(ART) - 1)).astype(int)  # (F, 3, 3) in 0..9
    blocks = []
    for start in range(0, len(filters), per_row):
        group = levels[start:start + per_row]
        rows = ["  ".join("".join(ART[v] * 2 for v in row) for row in group[:, r]) for r in range(group.shape[1])]
        blocks.append("\n".join("    " + line for line in rows))
    return "\n\n".join(blocks)


def main(verbose: bool = True, split_seed: int = 0) -> dict:
    """Train the CNN on 80% of the digits, measure on the rest; return the run's metrics.

    split_seed 0 is the milestone's split (the 1986 milestone's); the lesson's table uses others.
    """
    images, labels = load_digits()  # (1797, 8, 8) in [0, 1], (1797,) digits
    images = images[:, None]  # (1797, 1, 8, 8): one channel
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=split_seed)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH_SIZE, shuffle=True,
                        rng=np.random.default_rng(1998))
    model = build_model(np.random.default_rng(98))
    convs = [module for module in model.modules() if isinstance(module, Conv2d)]
    initial = [conv.weight.data.copy() for conv in convs]
    parameters, mlp = model.num_parameters(), mlp_parameters()
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"the CNN learns {parameters:,} parameters; the 1986 MLP learned {mlp:,}\n")
    if verbose:
        say(f"its first layer's 16 filters at the start (random):\n{filter_art(initial[0])}\n")
    results = common.run(model, CrossEntropyLoss(), Adam(model.parameters(), lr=LEARNING_RATE),
                         train_batches=lambda: list(loader), eval_batches=[(x_test, y_test)], epochs=EPOCHS,
                         metric=accuracy, target=TARGET, report_every=2, verbose=verbose, verdict=False,
                         title=f"1998 · a CNN, conv-pool-conv-pool-linear, on {len(x_train)} digits "
                               f"(tested on {len(x_test)} it never sees)")
    changes = [float(np.linalg.norm(conv.weight.data - start) / np.linalg.norm(start))
               for conv, start in zip(convs, initial)]
    results.update(parameters=parameters, mlp_parameters=mlp, filter_change=changes)
    checks = {
        f"test accuracy {results['final_accuracy']:.2%} (target {TARGET:.0%})": results["reached"],
        f"{parameters:,} parameters, fewer than the MLP's {mlp:,}": parameters < mlp,
        "filters moved by " + " and ".join(f"{c:.0%}" for c in changes)
        + f" of their initial norm (at least {MIN_FILTER_CHANGE:.0%} each)": min(changes) >= MIN_FILTER_CHANGE,
        f"training took {results['train_seconds']:.1f} s (allowed {SECONDS:.0f} s)": results["train_seconds"] < SECONDS,
    }
    results["reached"] = all(checks.values())
    if verbose:
        say(f"\nthe same 16 filters, learned (each scaled from its own darkest to brightest weight):\n"
            f"{filter_art(convs[0].weight.data)}\n")
        for what, ok in checks.items():
            say(f"  [{'x' if ok else ' '}] {what}")
        say("\nmilestone reached" if results["reached"] else "\nmilestone NOT reached")
    return results


if __name__ == "__main__":
    common.finish(main)

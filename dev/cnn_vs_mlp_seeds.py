"""The 1998 CNN against the 1986 MLP on several train/test splits of the digits: the lesson's table.

    python dev/cnn_vs_mlp_seeds.py              # split seeds 0-9, the reference
    python dev/cnn_vs_mlp_seeds.py --seeds 5

Each model is trained exactly as its milestone script trains it (the same seeds for the
weights and the shuffles); only the split changes. Seed 0 is the milestones' own split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import implementation  # noqa: E402

implementation.install("reference")

import numpy as np  # noqa: E402

from katas.milestones import common  # noqa: E402
from tinytorch.activations import ReLU  # noqa: E402
from tinytorch.dataloader import DataLoader, TensorDataset, load_digits, train_test_split  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
from tinytorch.training import accuracy  # noqa: E402


def mlp_run(mlp, split_seed: int) -> dict:
    """The 1986 milestone's recipe (its main(), with the split seed changed)."""
    images, labels = load_digits(flatten=True)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=split_seed)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=mlp.BATCH_SIZE, shuffle=True,
                        rng=np.random.default_rng(1986))
    rng = np.random.default_rng(86)
    model = Sequential(Linear(64, mlp.HIDDEN, rng=rng), ReLU(), Linear(mlp.HIDDEN, 10, rng=rng))
    return common.run(model, CrossEntropyLoss(), Adam(model.parameters(), lr=2e-3), train_batches=lambda: list(loader),
                      eval_batches=[(x_test, y_test)], epochs=mlp.EPOCHS, metric=accuracy, target=mlp.TARGET,
                      title="", verbose=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python dev/cnn_vs_mlp_seeds.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="split seeds 0 .. N-1 (default 10)")
    args = parser.parse_args(argv)
    mlp, cnn = common.load_script("1986_mlp_digits"), common.load_script("1998_cnn_digits")
    rows = []
    print(f"{'split seed':>10}  {'MLP':>7}  {'CNN':>7}  {'MLP s':>6}  {'CNN s':>6}")
    for seed in range(args.seeds):
        a, b = mlp_run(mlp, seed), cnn.main(verbose=False, split_seed=seed)
        rows.append((a["final_accuracy"], b["final_accuracy"], a["train_seconds"], b["train_seconds"]))
        print(f"{seed:>10}  {a['final_accuracy']:>7.2%}  {b['final_accuracy']:>7.2%}  "
              f"{a['train_seconds']:>6.1f}  {b['train_seconds']:>6.1f}", flush=True)
    table = np.array(rows)
    for name, column in (("MLP", 0), ("CNN", 1)):
        values = table[:, column]
        print(f"{name}: mean {values.mean():.2%}, range {values.min():.2%} - {values.max():.2%}, "
              f"at least 98% on {int((values >= 0.98).sum())} of {len(values)} splits")
    wins = int((table[:, 1] > table[:, 0]).sum())
    ties = int((table[:, 1] == table[:, 0]).sum())
    print(f"the CNN beats the MLP on {wins} splits, ties on {ties}, loses on {len(table) - wins - ties}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

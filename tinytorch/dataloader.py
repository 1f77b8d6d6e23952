"""Kata 08 · DataLoader: from a pile of examples to a stream of shuffled mini-batches.

A `Dataset` is anything with a length and an item per index. A `DataLoader` walks a
dataset in mini-batches, in order or in a seeded random order, and stacks each
batch into numpy arrays: `for images, labels in loader: ...`. Batches are plain
numpy arrays; wrap them in a `Tensor` where the model needs one.

Also here: a seeded train/test split, three transforms for image batches, and the
8x8 handwritten digits that ship with the repository (`katas/data/digits.npz`).
"""

# Kata 08_dataloader: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/08_dataloader/README.md    Tests: python -m pytest katas/08_dataloader

from __future__ import annotations

from pathlib import Path

import numpy as np


class Dataset:
    """The loader's whole contract: `len(dataset)` and `dataset[i]` for 0 <= i < len."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Arrays that share their first dimension; item i is the tuple of their rows i.

    `TensorDataset(images, labels)[3]` is `(images[3], labels[3])`. Like numpy, it
    also accepts an array of indices and returns one array of rows per input array.
    """

    def __init__(self, *arrays):
        raise NotImplementedError("08_dataloader · dataset: store the arrays as numpy arrays in self.arrays; raise ValueError naming the lengths if they differ")

    def __len__(self) -> int:
        raise NotImplementedError("08_dataloader · dataset: return the number of examples (the shared first dimension)")

    def __getitem__(self, index) -> tuple:
        raise NotImplementedError("08_dataloader · dataset: return a tuple with every array indexed by `index`")


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size`: each batch is a tuple of arrays.

    shuffle:   visit the examples in a new random order every epoch.
    drop_last: leave out a last batch smaller than `batch_size`.
    rng:       the `np.random.Generator` that shuffles; with None, numpy's global
               generator (so `np.random.seed` makes runs repeatable).
    """

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = False, drop_last: bool = False,
                 rng: np.random.Generator | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a whole number of at least 1, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = rng

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        raise NotImplementedError("08_dataloader · dataloader: count the batches: full ones, plus a partial one unless drop_last")

    def epoch_order(self) -> np.ndarray:
        """The indices of one epoch, in the order they will be visited."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        raise NotImplementedError("08_dataloader · shuffle: return a new permutation of 0..n-1 from self.rng, or from numpy's global generator if it is None")

    def __iter__(self):
        raise NotImplementedError("08_dataloader · dataloader: take this epoch's order and yield one fetched batch per slice of batch_size indices")

    def fetch(self, indices: np.ndarray):
        """The batch of the examples at `indices`, stacked: a tuple of arrays (or one array)."""
        if isinstance(self.dataset, TensorDataset):
            raise NotImplementedError("08_dataloader · optimize: index the dataset with the whole index array at once: one copy per array, no loop")
        raise NotImplementedError("08_dataloader · dataloader: fetch each item and stack: a tuple of stacked arrays if items are tuples, else one array")


def train_test_split(*arrays, test_fraction: float = 0.2, seed: int = 0) -> list:
    """Split arrays of equal length into a seeded random train part and test part.

    Returns [a_train, a_test, b_train, b_test, ...]: `x_train, x_test, y_train, y_test
    = train_test_split(x, y)`. The test part has round(n * test_fraction) examples.
    """
    raise NotImplementedError("08_dataloader · split: check the lengths and fraction, permute 0..n-1 with default_rng(seed), cut off the test part")


# -- transforms: each takes a batch and returns a new one; the input is never changed --------


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std. mean and std are scalars or hold one value per channel (axis 1).

    For images of shape (N, C, H, W), a mean of shape (C,) is reshaped to (1, C, 1, 1)
    so it lines up with the channels, not with the width. Integer input becomes float32.
    """
    raise NotImplementedError("08_dataloader · transforms: reject std <= 0, reshape per-channel mean and std to line up with axis 1, return (x - mean) / std")


def random_flip(images: np.ndarray, rng: np.random.Generator | None = None, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right (its last axis) with probability p, independently."""
    raise NotImplementedError("08_dataloader · transforms: draw one uniform number per image, copy the batch, and reverse the last axis of the chosen images")


def random_crop(images: np.ndarray, size: int, padding: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad the last two axes with `padding` zeros on every side, then cut a random size x size window from each image."""
    raise NotImplementedError("08_dataloader · transforms: pad, draw a top-left corner per image, and gather every window at once (sliding_window_view)")


# -- the digits ----------------------------------------------------------------------------


def find_data_file(name: str) -> Path:
    """The path of katas/data/<name>: searched for above this module, then above the working directory."""
    here, cwd = Path(__file__).resolve().parent, Path.cwd().resolve()
    for folder in (here, *here.parents, cwd, *cwd.parents):
        candidate = folder / "katas" / "data" / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} is not in katas/data/ above {here} or above the working directory {cwd}. "
                            "It ships with the repository (see katas/data/README.md): run from the repository.")


def load_digits(flatten: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits: (images, labels).

    images: float32 in [0, 1] (the stored counts 0..16 divided by 16), shape (1797, 8, 8),
            or (1797, 64) with flatten=True.  labels: int64 digits 0..9, shape (1797,).
    """
    path = find_data_file("digits.npz")
    raise NotImplementedError("08_dataloader · digits: np.load the file, scale images to float32 in [0, 1], labels to int64, flatten if asked")

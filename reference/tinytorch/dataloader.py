"""Kata 08 · DataLoader: from a pile of examples to a stream of shuffled mini-batches.

A `Dataset` is anything with a length and an item per index. A `DataLoader` walks a
dataset in mini-batches, in order or in a seeded random order, and stacks each
batch into numpy arrays: `for images, labels in loader: ...`. Batches are plain
numpy arrays; wrap them in a `Tensor` where the model needs one.

Also here: a seeded train/test split, three transforms for image batches, and the
8x8 handwritten digits that ship with the repository (`katas/data/digits.npz`).
"""

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
        # BEGIN SOLUTION dataset: store the arrays as numpy arrays in self.arrays; raise ValueError naming the lengths if they differ
        self.arrays = tuple(np.asarray(array) for array in arrays)
        if not self.arrays or any(array.ndim == 0 for array in self.arrays):
            raise ValueError("TensorDataset needs one or more arrays, each with a first dimension")
        lengths = [len(array) for array in self.arrays]
        if len(set(lengths)) > 1:
            raise ValueError(f"TensorDataset: every array needs the same first dimension, got lengths {lengths}")
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION dataset: return the number of examples (the shared first dimension)
        return len(self.arrays[0])
        # END SOLUTION

    def __getitem__(self, index) -> tuple:
        # BEGIN SOLUTION dataset: return a tuple with every array indexed by `index`
        return tuple(array[index] for array in self.arrays)
        # END SOLUTION


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
        # BEGIN SOLUTION dataloader: count the batches: full ones, plus a partial one unless drop_last
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)
        # END SOLUTION

    def epoch_order(self) -> np.ndarray:
        """The indices of one epoch, in the order they will be visited."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        # BEGIN SOLUTION shuffle: return a new permutation of 0..n-1 from self.rng, or from numpy's global generator if it is None
        if self.rng is None:
            return np.random.permutation(n)
        return self.rng.permutation(n)
        # END SOLUTION

    def __iter__(self):
        # BEGIN SOLUTION dataloader: take this epoch's order and yield one fetched batch per slice of batch_size indices
        order = self.epoch_order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.fetch(order[start:start + self.batch_size])
        # END SOLUTION

    def fetch(self, indices: np.ndarray):
        """The batch of the examples at `indices`, stacked: a tuple of arrays (or one array)."""
        if isinstance(self.dataset, TensorDataset):
            # BEGIN SOLUTION optimize: index the dataset with the whole index array at once: one copy per array, no loop
            return self.dataset[indices]
            # END SOLUTION
        # BEGIN SOLUTION dataloader: fetch each item and stack: a tuple of stacked arrays if items are tuples, else one array
        items = [self.dataset[int(i)] for i in indices]
        if isinstance(items[0], tuple):
            return tuple(np.stack(column) for column in zip(*items))
        return np.stack(items)
        # END SOLUTION


def train_test_split(*arrays, test_fraction: float = 0.2, seed: int = 0) -> list:
    """Split arrays of equal length into a seeded random train part and test part.

    Returns [a_train, a_test, b_train, b_test, ...]: `x_train, x_test, y_train, y_test
    = train_test_split(x, y)`. The test part has round(n * test_fraction) examples.
    """
    # BEGIN SOLUTION split: check the lengths and fraction, permute 0..n-1 with default_rng(seed), cut off the test part
    arrays = [np.asarray(array) for array in arrays]
    lengths = [len(array) for array in arrays]
    if not arrays or len(set(lengths)) > 1:
        raise ValueError(f"train_test_split: needs arrays of equal length, got lengths {lengths}")
    n = lengths[0]
    n_test = round(n * test_fraction)
    if not 0 < n_test < n:
        raise ValueError(f"train_test_split: test_fraction={test_fraction} of {n} examples leaves "
                         f"{n_test} for testing and {n - n_test} for training; both need at least one")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return [part for array in arrays for part in (array[train], array[test])]
    # END SOLUTION


# -- transforms: each takes a batch and returns a new one; the input is never changed --------


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std. mean and std are scalars or hold one value per channel (axis 1).

    For images of shape (N, C, H, W), a mean of shape (C,) is reshaped to (1, C, 1, 1)
    so it lines up with the channels, not with the width. Integer input becomes float32.
    """
    # BEGIN SOLUTION transforms: reject std <= 0, reshape per-channel mean and std to line up with axis 1, return (x - mean) / std
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    mean, std = np.asarray(mean, dtype=dtype), np.asarray(std, dtype=dtype)
    if np.any(std <= 0):
        raise ValueError(f"normalize: std must be positive, got {std}")
    channels = (1, -1) + (1,) * (x.ndim - 2)  # (C,) -> (1, C, 1, 1) for (N, C, H, W)
    if mean.ndim == 1:
        mean = mean.reshape(channels)
    if std.ndim == 1:
        std = std.reshape(channels)
    return (x - mean) / std
    # END SOLUTION


def random_flip(images: np.ndarray, rng: np.random.Generator | None = None, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right (its last axis) with probability p, independently."""
    # BEGIN SOLUTION transforms: draw one uniform number per image, copy the batch, and reverse the last axis of the chosen images
    uniform = rng.random(len(images)) if rng is not None else np.random.random(len(images))
    flip = uniform < p  # (N,)
    out = images.copy()
    out[flip] = images[flip][..., ::-1]
    return out
    # END SOLUTION


def random_crop(images: np.ndarray, size: int, padding: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad the last two axes with `padding` zeros on every side, then cut a random size x size window from each image."""
    # BEGIN SOLUTION transforms: pad, draw a top-left corner per image, and gather every window at once (sliding_window_view)
    height, width = images.shape[-2] + 2 * padding, images.shape[-1] + 2 * padding
    if size > min(height, width):
        raise ValueError(f"random_crop: a {size}x{size} window does not fit images of {images.shape[-2:]} "
                         f"padded by {padding} (giving {height}x{width})")
    pad = [(0, 0)] * (images.ndim - 2) + [(padding, padding)] * 2
    padded = np.pad(images, pad)
    draw = rng.integers if rng is not None else np.random.randint
    top = draw(0, height - size + 1, size=len(images))  # (N,)
    left = draw(0, width - size + 1, size=len(images))  # (N,)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(-2, -1))  # (N, ..., H', W', size, size), a view
    middle = (slice(None),) * (images.ndim - 3)  # the channel axes, if any
    return windows[(np.arange(len(images)),) + middle + (top, left)]  # (N, ..., size, size)
    # END SOLUTION


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
    # BEGIN SOLUTION digits: np.load the file, scale images to float32 in [0, 1], labels to int64, flatten if asked
    with np.load(path) as data:
        images = data["images"].astype(np.float32) / 16  # (1797, 8, 8)
        labels = data["labels"].astype(np.int64)
    if flatten:
        images = images.reshape(len(images), -1)  # (1797, 64)
    return images, labels
    # END SOLUTION

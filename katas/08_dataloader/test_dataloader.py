"""Kata 08 · DataLoader: the ordered suite. Run `python -m pytest katas/08_dataloader`."""

import numpy as np
import pytest

from harness.budgets import assert_time_ratio, count_calls, peak_bytes
from harness.checks import assert_close, assert_shape
from tinytorch.dataloader import (
    DataLoader, Dataset, TensorDataset, load_digits, normalize, random_crop, random_flip, train_test_split,
)


class Squares(Dataset):
    """Item i is (features [i, i] as float32, label i*i): every batch says which items it holds."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"Squares({self.n}) has no item {i}")
        return np.array([i, i], dtype=np.float32), np.int64(i * i)


class Rows(Dataset):
    """Item i is one array (not a tuple): row i of a (n, 3) array of `dtype` (float32 unless told)."""

    def __init__(self, n: int, dtype=np.float32):
        self.data = np.arange(n * 3, dtype=dtype).reshape(n, 3)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


class Triples(Dataset):
    """Item i is a 3-tuple (features [i, i], label i, weight i / 10): batches hold three arrays."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.array([i, i], dtype=np.float32), np.int64(i), np.float64(i / 10)


def batches(loader) -> list:
    return list(iter(loader))


def order_of(loader) -> np.ndarray:
    """The item indices one epoch of a loader over Squares visits, in order."""
    return np.concatenate([features[:, 0] for features, _ in loader]).astype(np.int64)


# -- dataset --------------------------------------------------------------------------


@pytest.mark.checkpoint("dataset")
class TestDataset:
    def test_length_is_the_first_dimension(self):
        """len(TensorDataset(x, y)) is the shared first dimension."""
        dataset = TensorDataset(np.zeros((5, 3), np.float32), np.arange(5))
        assert len(dataset) == 5, f"len of a TensorDataset of 5 rows: expected 5, got {len(dataset)}"

    def test_item_is_a_tuple_of_rows(self):
        """dataset[i] is (x[i], y[i]); negative indices count from the end like numpy."""
        x, y = np.arange(12, dtype=np.float32).reshape(4, 3), np.array([7, 8, 9, 10])
        dataset = TensorDataset(x, y)
        item = dataset[2]
        assert isinstance(item, tuple) and len(item) == 2, f"dataset[2]: expected a tuple (x[2], y[2]), got {item!r}"
        assert_close(item[0], x[2], "dataset[2][0], the features of row 2")
        assert item[1] == 9, f"dataset[2][1]: expected the label 9, got {item[1]!r}"
        assert_close(dataset[-1][0], x[3], "dataset[-1][0], the features of the last row")

    def test_one_array_gives_one_tuples(self):
        """TensorDataset(x)[i] is the 1-tuple (x[i],)."""
        item = TensorDataset(np.arange(6).reshape(3, 2))[1]
        assert isinstance(item, tuple) and len(item) == 1, f"TensorDataset(x)[1]: expected (x[1],), got {item!r}"
        assert_close(item[0], [2, 3], "TensorDataset(x)[1][0]")

    def test_index_array_gives_rows_of_every_array(self):
        """dataset[np.array([3, 0])] is (x[[3, 0]], y[[3, 0]]): a whole batch in one call."""
        x, y = np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 10, 20, 30])
        got = TensorDataset(x, y)[np.array([3, 0])]
        assert isinstance(got, tuple) and len(got) == 2, f"dataset[[3, 0]]: expected a tuple of 2 arrays, got {got!r}"
        assert_close(got[0], [[6, 7], [0, 1]], "dataset[[3, 0]][0]")
        assert_close(got[1], [30, 0], "dataset[[3, 0]][1]")

    def test_lists_become_arrays(self):
        """TensorDataset of Python lists keeps numpy arrays: items are arrays, and an index array works."""
        dataset = TensorDataset([[1, 2], [3, 4], [5, 6]], [0, 1, 2])
        features, label = dataset[1]
        assert isinstance(features, np.ndarray), (
            f"dataset[1][0] of a TensorDataset made from lists: expected a numpy array, got {type(features).__name__} "
            "(keep np.asarray(array) of each input)")
        assert_close(features, [3, 4], "dataset[1][0]")
        got = dataset[np.array([2, 0])]
        assert_close(got[0], [[5, 6], [1, 2]], "dataset[[2, 0]][0] of a TensorDataset made from lists")

    @pytest.mark.parametrize("lengths", [(5, 4), (5, 5, 4), (4, 5, 5)])
    def test_mismatched_lengths_are_rejected(self, lengths):
        """TensorDataset of arrays whose first dimensions differ (in any position) raises ValueError naming the lengths."""
        arrays = [np.zeros((n, 2)) for n in lengths]
        with pytest.raises(ValueError) as error:
            TensorDataset(*arrays)
        assert "5" in str(error.value) and "4" in str(error.value), (
            f"TensorDataset of arrays with {len(lengths)} first dimensions {list(lengths)}: the ValueError should name "
            f"the lengths (5 and 4); it says: {error.value}")

    def test_needs_arrays_with_a_first_dimension(self):
        """TensorDataset() with no arrays, or with a bare scalar in any position, raises ValueError."""
        for bad in ((), (np.float32(3.0),), (np.zeros(3), np.float32(3.0))):
            with pytest.raises(ValueError):
                TensorDataset(*bad)


# -- dataloader -----------------------------------------------------------------------


@pytest.mark.checkpoint("dataloader")
class TestDataLoader:
    def test_batches_in_order(self):
        """Without shuffling, 10 items in batches of 4 come as items 0-3, 4-7, 8-9."""
        got = [features[:, 0].tolist() for features, _ in DataLoader(Squares(10), batch_size=4)]
        assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], f"items per batch: expected [[0..3], [4..7], [8, 9]], got {got}"

    def test_batches_are_stacked_arrays(self):
        """Each batch is a tuple (features of shape (B, 2), labels of shape (B,)) of numpy arrays."""
        batch = batches(DataLoader(Squares(10), batch_size=4))[0]
        assert isinstance(batch, tuple) and len(batch) == 2, (
            f"a batch of a dataset whose items are (features, label) pairs: expected a tuple of 2 arrays, "
            f"got {type(batch).__name__} of length {len(batch)}")
        features, labels = batch
        assert isinstance(features, np.ndarray) and isinstance(labels, np.ndarray), (
            f"a batch should hold numpy arrays, got {type(features).__name__} and {type(labels).__name__}")
        assert_shape(features, (4, 2), "the features of the first batch of 4")
        assert_shape(labels, (4,), "the labels of the first batch of 4")
        assert features.dtype == np.float32 and labels.dtype == np.int64, (
            f"stacking keeps dtypes: expected float32 and int64, got {features.dtype} and {labels.dtype}")
        assert_close(labels, [0, 1, 4, 9], "the labels of the first batch (i*i)")

    def test_length_counts_the_partial_batch(self):
        """len(loader) of 10 items in batches of 4 is 3 (4 + 4 + 2)."""
        loader = DataLoader(Squares(10), batch_size=4)
        assert len(loader) == 3, f"len(DataLoader) for 10 items, batch_size 4: expected 3, got {len(loader)}"
        assert len(batches(loader)) == 3, f"iterating gave {len(batches(loader))} batches, expected 3"

    def test_drop_last_leaves_out_the_partial_batch(self):
        """With drop_last, 10 items in batches of 4 give two batches of 4, and len(loader) is 2."""
        loader = DataLoader(Squares(10), batch_size=4, drop_last=True)
        sizes = [len(labels) for _, labels in loader]
        assert sizes == [4, 4], f"batch sizes with drop_last: expected [4, 4], got {sizes}"
        assert len(loader) == 2, f"len(DataLoader) with drop_last: expected 2, got {len(loader)}"

    @pytest.mark.parametrize("drop_last", [False, True])
    def test_exact_multiple(self, drop_last):
        """8 items in batches of 4 give exactly 2 full batches, with or without drop_last."""
        loader = DataLoader(Squares(8), batch_size=4, drop_last=drop_last)
        assert len(loader) == 2, (
            f"len(DataLoader) for 8 items, batch_size 4, drop_last={drop_last}: expected 2, got {len(loader)} "
            "(n // b is already right when b divides n: add one only for a partial batch)")
        sizes = [len(labels) for _, labels in loader]
        assert sizes == [4, 4] and len(loader) == 2, (
            f"8 items, batch_size 4, drop_last={drop_last}: expected sizes [4, 4] and len 2, "
            f"got sizes {sizes} and len {len(loader)}")

    def test_batch_larger_than_the_dataset(self):
        """5 items with batch_size 8 give one batch of 5, or none with drop_last."""
        sizes = [len(labels) for _, labels in DataLoader(Squares(5), batch_size=8)]
        assert sizes == [5], f"5 items, batch_size 8: expected one batch of 5, got sizes {sizes}"
        loader = DataLoader(Squares(5), batch_size=8, drop_last=True)
        assert len(loader) == 0 and batches(loader) == [], (
            f"5 items, batch_size 8, drop_last: expected no batches, got len {len(loader)}")

    @pytest.mark.parametrize("n,batch_size,drop_last,expected", [
        (10, 4, False, 3), (10, 4, True, 2), (8, 4, False, 2), (8, 4, True, 2), (5, 8, False, 1), (5, 8, True, 0),
        (5, 5, True, 1), (7, 1, False, 7), (7, 1, True, 7), (0, 4, False, 0), (0, 4, True, 0), (1, 3, False, 1)])
    def test_length_for_every_case(self, n, batch_size, drop_last, expected):
        """len(loader) is n // b full batches plus one partial batch unless drop_last, and iterating agrees."""
        loader = DataLoader(Squares(n), batch_size=batch_size, drop_last=drop_last)
        assert len(loader) == expected, (
            f"len(DataLoader) for {n} items, batch_size {batch_size}, drop_last={drop_last}: expected {expected}, "
            f"got {len(loader)}")
        sizes = [len(labels) for _, labels in loader]
        assert len(loader) == expected and len(sizes) == expected, (
            f"{n} items, batch_size {batch_size}, drop_last={drop_last}: expected {expected} batches, "
            f"got len(loader) = {len(loader)} and {len(sizes)} batches when iterating (sizes {sizes})")
        assert sum(sizes) == (n if not drop_last else expected * batch_size), (
            f"{n} items, batch_size {batch_size}, drop_last={drop_last}: the batches hold {sum(sizes)} items, sizes {sizes}")

    def test_bad_batch_sizes_are_refused(self):
        """A batch_size of 1 works; 0, -1, 2.5 and True are refused with ValueError naming batch_size."""
        assert len(DataLoader(Squares(3), batch_size=1)) == 3, "batch_size 1 over 3 items should give 3 batches"
        for bad in (0, -1, 2.5, True):
            with pytest.raises(ValueError, match="batch_size"):
                DataLoader(Squares(3), batch_size=bad)

    def test_items_with_three_parts(self):
        """Items (features, label, weight) give batches of three stacked arrays, each keeping its dtype."""
        features, labels, weights = batches(DataLoader(Triples(5), batch_size=3))[1]
        assert_close(features, [[3, 3], [4, 4]], "features of the second batch of Triples(5)")
        assert_close(labels, [3, 4], "labels of the second batch")
        assert_close(weights, [0.3, 0.4], "weights of the second batch")
        dtypes = (features.dtype, labels.dtype, weights.dtype)
        assert dtypes == (np.float32, np.int64, np.float64), f"dtypes: expected (float32, int64, float64), got {dtypes}"

    def test_batch_size_one(self):
        """batch_size 1 gives n batches of shape (1, 2) and (1,): a batch keeps its batch axis."""
        got = batches(DataLoader(Squares(3), batch_size=1))
        assert len(got) == 3, f"3 items with batch_size 1: expected 3 batches, got {len(got)}"
        for features, labels in got:
            assert_shape(features, (1, 2), "the features of a batch of one")
            assert_shape(labels, (1,), "the labels of a batch of one")

    def test_items_that_are_single_arrays(self):
        """A dataset whose items are single arrays gives batches that are single (B, 3) arrays."""
        got = batches(DataLoader(Rows(5), batch_size=2))
        assert all(isinstance(batch, np.ndarray) for batch in got), (
            f"items that are arrays should stack into one array per batch, got {[type(b).__name__ for b in got]}")
        assert_close(got[0], [[0, 1, 2], [3, 4, 5]], "the first batch of Rows(5)")
        assert_shape(got[-1], (1, 3), "the last batch of Rows(5) with batch_size 2")

    def test_single_array_items_keep_their_dtype(self):
        """Items that are int64 arrays (token ids, say) stack into int64 batches: [[0, 1, 2], [3, 4, 5]], not floats."""
        got = batches(DataLoader(Rows(2, dtype=np.int64), batch_size=2))[0]
        assert isinstance(got, np.ndarray) and got.dtype == np.int64, (
            f"a batch of int64 items should be an int64 array, got {getattr(got, 'dtype', type(got).__name__)}: "
            "np.stack keeps the items' dtype; casting them makes token ids or labels floats")
        assert got.tolist() == [[0, 1, 2], [3, 4, 5]], f"the batch of int64 Rows(2): got {got.tolist()}"

    def test_every_epoch_covers_every_item_once(self):
        """Iterating the same loader twice gives the same complete epoch both times."""
        loader = DataLoader(Squares(23), batch_size=5)
        first, second = order_of(loader), order_of(loader)
        assert first.tolist() == list(range(23)), f"an unshuffled epoch should visit 0..22 in order, got {first.tolist()}"
        assert second.tolist() == first.tolist(), "the second epoch of an unshuffled loader differs from the first"


# -- shuffle --------------------------------------------------------------------------


@pytest.mark.checkpoint("shuffle")
class TestShuffle:
    def test_shuffled_epoch_is_a_permutation(self):
        """A shuffled epoch of 100 items visits each item exactly once, not in the original order."""
        got = order_of(DataLoader(Squares(100), batch_size=16, shuffle=True, rng=np.random.default_rng(0)))
        assert sorted(got.tolist()) == list(range(100)), (
            f"a shuffled epoch should visit each of the 100 items once; visited {len(got)} items, "
            f"{len(set(got.tolist()))} distinct")
        assert got.tolist() != list(range(100)), "shuffle=True gave the items in their original order"

    def test_features_and_labels_stay_together(self):
        """Shuffling moves whole items: every label is still the square of its features."""
        for features, labels in DataLoader(Squares(50), batch_size=8, shuffle=True, rng=np.random.default_rng(1)):
            assert_close(labels, features[:, 0] ** 2, "labels against features**2 in a shuffled batch")

    def test_same_seed_same_order(self):
        """Two loaders with generators seeded alike give the same order, epoch after epoch."""
        a = DataLoader(Squares(60), batch_size=7, shuffle=True, rng=np.random.default_rng(42))
        b = DataLoader(Squares(60), batch_size=7, shuffle=True, rng=np.random.default_rng(42))
        for epoch in range(3):
            got_a, got_b = order_of(a), order_of(b)
            assert got_a.tolist() == got_b.tolist(), (
                f"epoch {epoch}: two loaders with default_rng(42) visited items in different orders "
                f"({got_a[:6].tolist()}... vs {got_b[:6].tolist()}...): shuffle with self.rng")

    def test_each_epoch_is_a_new_order(self):
        """Iterating a shuffled loader again draws a new permutation."""
        loader = DataLoader(Squares(60), batch_size=7, shuffle=True, rng=np.random.default_rng(3))
        first, second = order_of(loader), order_of(loader)
        assert first.tolist() != second.tolist(), (
            "two epochs of a shuffled loader visited the items in the same order: draw the permutation "
            "when an epoch starts, not once in __init__")

    def test_different_seeds_differ(self):
        """Loaders seeded 1 and 2 shuffle differently."""
        a = order_of(DataLoader(Squares(60), batch_size=7, shuffle=True, rng=np.random.default_rng(1)))
        b = order_of(DataLoader(Squares(60), batch_size=7, shuffle=True, rng=np.random.default_rng(2)))
        assert a.tolist() != b.tolist(), "loaders with default_rng(1) and default_rng(2) gave the same order"

    def test_global_seed_when_no_generator(self):
        """With rng=None, np.random.seed(s) makes the shuffle repeatable, and epochs still differ."""
        np.random.seed(7)
        loader = DataLoader(Squares(60), batch_size=7, shuffle=True)
        first, second = order_of(loader), order_of(loader)
        np.random.seed(7)
        again = order_of(DataLoader(Squares(60), batch_size=7, shuffle=True))
        assert first.tolist() == again.tolist(), (
            "after np.random.seed(7), two loaders without an rng shuffled differently: use np.random's "
            "global functions when rng is None")
        assert first.tolist() != second.tolist(), "with rng=None, two epochs visited the items in the same order"

    def test_an_empty_dataset_gives_no_batches(self):
        """A shuffled loader over 0 items has length 0 and yields nothing, epoch after epoch."""
        loader = DataLoader(Squares(0), batch_size=4, shuffle=True, rng=np.random.default_rng(5))
        assert len(loader) == 0 and batches(loader) == [] and batches(loader) == [], (
            f"an empty dataset: expected no batches, got len {len(loader)}")

    def test_drop_last_reaches_every_item_over_epochs(self):
        """With shuffle and drop_last, each epoch leaves out different items: over 12 epochs all 10 are seen.

        Hint: shuffle all n indices first, then cut batches and drop the short tail; dropping before
        shuffling (or shuffling only the first n - n % b items) leaves the same items out every epoch.
        """
        loader = DataLoader(Squares(10), batch_size=4, shuffle=True, drop_last=True, rng=np.random.default_rng(6))
        seen = set()
        for epoch in range(12):
            order = order_of(loader)
            assert len(order) == 8 and len(set(order.tolist())) == 8, (
                f"epoch {epoch}: expected 2 full batches of 4 distinct items, got {order.tolist()}")
            seen.update(order.tolist())
        assert seen == set(range(10)), (
            f"over 12 shuffled epochs with drop_last, items {sorted(set(range(10)) - seen)} were never visited")

    def test_drop_last_with_shuffle(self):
        """A shuffled loader with drop_last still yields only full batches of distinct items."""
        loader = DataLoader(Squares(30), batch_size=8, shuffle=True, drop_last=True, rng=np.random.default_rng(4))
        sizes = [len(labels) for _, labels in loader]
        got = order_of(loader)
        assert sizes == [8, 8, 8], f"30 items, batch_size 8, drop_last: expected sizes [8, 8, 8], got {sizes}"
        assert len(set(got.tolist())) == 24, f"a shuffled epoch repeated items: {sorted(got.tolist())}"


# -- split ----------------------------------------------------------------------------


@pytest.mark.checkpoint("split")
class TestSplit:
    def test_inputs_are_left_alone(self):
        """train_test_split returns new arrays and never shuffles the caller's arrays in place."""
        x, y = np.arange(20), np.arange(20) * 10
        train_test_split(x, y, test_fraction=0.25, seed=3)
        assert x.tolist() == list(range(20)) and y.tolist() == [10 * i for i in range(20)], (
            f"after train_test_split the caller's x is {x.tolist()}: index with the permutation (x[order]), "
            "never shuffle the input in place")

    def test_sizes(self):
        """100 examples with test_fraction=0.2 split into a list: 80 for training and 20 for testing."""
        parts = train_test_split(np.arange(100), test_fraction=0.2, seed=0)
        assert isinstance(parts, list) and all(isinstance(part, np.ndarray) for part in parts), (
            f"train_test_split should return a list of numpy arrays, got {type(parts).__name__} of "
            f"{[type(part).__name__ for part in parts]}")
        x_train, x_test = parts
        assert (len(x_train), len(x_test)) == (80, 20), (
            f"train_test_split of 100 with test_fraction 0.2: expected 80 and 20, got {len(x_train)} and {len(x_test)}")

    @pytest.mark.parametrize("n,fraction,n_test", [(9, 0.3, 3), (11, 0.3, 3), (30, 0.1, 3), (7, 0.2, 1), (10, 0.46, 5)])
    def test_the_test_part_is_rounded_to_the_nearest_count(self, n, fraction, n_test):
        """The test part has round(n * test_fraction) examples: 9 x 0.3 = 2.7 gives 3, 11 x 0.3 = 3.3 gives 3, 30 x 0.1 gives 3."""
        x_train, x_test = train_test_split(np.arange(n), test_fraction=fraction, seed=4)
        assert (len(x_train), len(x_test)) == (n - n_test, n_test), (
            f"train_test_split of {n} with test_fraction {fraction} ({n} x {fraction} = {n * fraction!r}): expected "
            f"{n - n_test} for training and round({n * fraction!r}) = {n_test} for testing, got {len(x_train)} and "
            f"{len(x_test)} (int() rounds down and math.ceil up; use round)")

    def test_disjoint_and_covering(self):
        """The train and test parts share no example and together hold every example once."""
        x_train, x_test = train_test_split(np.arange(97), test_fraction=0.3, seed=5)
        both = np.concatenate([x_train, x_test]).tolist()
        assert not set(x_train.tolist()) & set(x_test.tolist()), (
            f"examples in both parts: {sorted(set(x_train.tolist()) & set(x_test.tolist()))[:10]}")
        assert sorted(both) == list(range(97)), f"the two parts hold {len(both)} examples, expected each of 0..96 once"

    def test_arrays_split_alike(self):
        """x and y are split with the same rows: y_train == 10 * x_train; order is x_train, x_test, y_train, y_test."""
        x = np.arange(40)
        x_train, x_test, y_train, y_test = train_test_split(x, 10 * x, test_fraction=0.25, seed=1)
        assert_close(y_train, 10 * x_train, "y_train against 10 * x_train")
        assert_close(y_test, 10 * x_test, "y_test against 10 * x_test")

    def test_three_arrays_split_alike(self):
        """Three arrays (one of them 2-D) come back as a_train, a_test, b_train, b_test, c_train, c_test, row for row."""
        a = np.arange(12)
        b = np.stack([a, -a], axis=1)  # (12, 2)
        c = a.astype(np.float32) / 2
        parts = train_test_split(a, b, c, test_fraction=0.25, seed=2)
        shapes = [part.shape for part in parts]
        assert shapes == [(9,), (3,), (9, 2), (3, 2), (9,), (3,)], (
            f"shapes of the six parts: expected [(9,), (3,), (9, 2), (3, 2), (9,), (3,)], got {shapes}")
        a_train, a_test, b_train, b_test, c_train, c_test = parts
        assert_close(b_train, np.stack([a_train, -a_train], axis=1), "b_train against the rows a_train")
        assert_close(c_test, a_test / 2, "c_test against a_test / 2")
        assert c_train.dtype == np.float32, f"each part keeps its array's dtype: c_train is {c_train.dtype}, expected float32"

    def test_seeded(self):
        """The same seed gives the same split, also with the default seed; seeds 0 and 1 give different splits."""
        x = np.arange(50)
        a, b, c = (train_test_split(x, seed=s)[1] for s in (0, 0, 1))
        assert a.tolist() == b.tolist(), "two splits with seed 0 differ: use np.random.default_rng(seed)"
        assert a.tolist() != c.tolist(), "seeds 0 and 1 gave the same test part: the split should be random"
        np.random.seed(1)
        first = train_test_split(x)[1]
        np.random.seed(2)
        assert first.tolist() == train_test_split(x)[1].tolist() == a.tolist(), (
            "train_test_split(x) without a seed should use seed=0: the same test part every time, whatever the global state")

    def test_the_test_part_comes_first_in_the_seeded_permutation(self):
        """The test part is the start of default_rng(seed).permutation(n), the train part the rest; np.random is untouched.

        For n = 10, test_fraction = 0.3 and seed = 3: test = order[:3], train = order[3:], in that order.

        Hint: order = np.random.default_rng(seed).permutation(n); test, train = order[:n_test], order[n_test:].
        Seeding the global generator (np.random.seed) changes every later draw of the caller's program.
        """
        order = np.random.default_rng(3).permutation(10)
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        x_train, x_test = train_test_split(np.arange(10), test_fraction=0.3, seed=3)
        assert x_test.tolist() == order[:3].tolist() and x_train.tolist() == order[3:].tolist(), (
            f"train_test_split(arange(10), test_fraction=0.3, seed=3): expected test {order[:3].tolist()} and train "
            f"{order[3:].tolist()} (default_rng(3).permutation(10) cut after 3), got test {x_test.tolist()} and "
            f"train {x_train.tolist()}")
        assert np.array_equal(np.random.get_state()[1], before), (
            "train_test_split changed numpy's global generator: draw from np.random.default_rng(seed), "
            "do not call np.random.seed")

    def test_rows_of_2d_arrays(self):
        """Splitting (n, 3) features keeps whole rows."""
        x = np.arange(60).reshape(20, 3)
        x_train, x_test = train_test_split(x, test_fraction=0.5, seed=2)
        assert_shape(x_train, (10, 3), "x_train")
        assert np.all(x_test[:, 1] == x_test[:, 0] + 1), "rows were broken up: each row should stay [3k, 3k+1, 3k+2]"

    def test_bad_input(self):
        """Arrays of different lengths (in any position), or no arrays at all, raise ValueError naming the lengths."""
        for arrays in ((np.arange(10), np.arange(9)), (np.arange(10), np.arange(10), np.arange(9))):
            with pytest.raises(ValueError) as error:
                train_test_split(*arrays)
            assert "10" in str(error.value) and "9" in str(error.value), (
                f"train_test_split of arrays of lengths {[len(a) for a in arrays]}: name the lengths; the error says: {error.value}")
        with pytest.raises(ValueError):
            train_test_split()

    @pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, 0.04, 0.96])
    def test_a_fraction_that_leaves_a_part_empty_is_refused(self, fraction):
        """Of 10 examples, test fractions 0, 1, -0.2, 1.5, 0.04 (0.4 rounds to 0) and 0.96 raise ValueError naming test_fraction.

        Hint: check the COUNTS, not only the fraction: 0.04 is strictly between 0 and 1, yet
        round(10 * 0.04) = 0 leaves nothing to test on. Both parts need at least one example.
        """
        with pytest.raises(ValueError) as error:
            train_test_split(np.arange(10), test_fraction=fraction)
        assert "test_fraction" in str(error.value), (
            f"train_test_split(10 examples, test_fraction={fraction}): the ValueError should name test_fraction; "
            f"it says: {error.value}")


# -- transforms -----------------------------------------------------------------------


def channel_images(seed: int, shape=(16, 3, 5, 4)) -> np.ndarray:
    """float32 images (N, 3, H, W) whose channel c has mean c + 1 and standard deviation c + 2."""
    z = np.random.default_rng(seed).standard_normal(shape)
    z = (z - z.mean(axis=(0, 2, 3), keepdims=True)) / z.std(axis=(0, 2, 3), keepdims=True)
    return (z * np.array([2, 3, 4]).reshape(1, 3, 1, 1) + np.array([1, 2, 3]).reshape(1, 3, 1, 1)).astype(np.float32)


def assert_new_and_input_unchanged(got, images, before, what: str) -> None:
    assert_close(images, before, f"the input of {what} after the call")
    assert not np.shares_memory(got, images), (
        f"{what} returned (a view of) its input: return a new array, so that changing the result cannot change the input")


def positional_images(n: int, height: int, width: int) -> np.ndarray:
    """n identical float32 images whose pixel (r, c) holds 16 * r + c + 1: a crop's pixel tells where it came from."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.broadcast_to(16 * rows + cols + 1, (n, height, width)).astype(np.float32)


@pytest.mark.checkpoint("transforms")
class TestTransforms:
    def test_normalize_leaves_input_alone(self):
        """normalize returns a new array and does not change its input (scalar or per-feature mean and std)."""
        x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
        for mean, std in ((1, 1), (np.array([1.0, 2.0]), np.array([0.5, 2.0]))):
            got = normalize(x, mean, std)
            assert_new_and_input_unchanged(got, x, np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32),
                                           f"normalize(x, mean={mean}, std={std})")

    def test_normalize_with_scalars(self):
        """normalize([[2, 4], [6, 8]], mean=5, std=2) is [[-1.5, -0.5], [0.5, 1.5]], still float32."""
        got = normalize(np.array([[2, 4], [6, 8]], dtype=np.float32), 5, 2)
        assert_close(got, [[-1.5, -0.5], [0.5, 1.5]], "normalize(x, 5, 2)")
        assert got.dtype == np.float32, f"normalize of float32 data should stay float32, got {got.dtype}"

    def test_normalize_per_channel_images(self):
        """For (N, 3, 5, 4) images, a mean and std of shape (3,) apply per channel (axis 1), not per column."""
        images = channel_images(seed=6)
        before = images.copy()
        try:
            got = normalize(images, mean=np.array([1, 2, 3]), std=np.array([2, 3, 4]))
        except ValueError as error:
            raise AssertionError(f"normalize of (16, 3, 5, 4) images with a mean and std of shape (3,) raised "
                                 f"ValueError: {error}. Broadcasting lines (3,) up with the LAST axis (the width, 4); "
                                 "reshape mean and std to (1, 3, 1, 1) to line them up with the channels") from None
        assert_new_and_input_unchanged(got, images, before, "normalize of (16, 3, 5, 4) images per channel")
        assert_shape(got, images.shape, "normalize of (16, 3, 5, 4) images")
        assert_close(got.mean(axis=(0, 2, 3)), np.zeros(3), "per-channel means after normalize", atol=1e-5)
        assert_close(got.std(axis=(0, 2, 3)), np.ones(3), "per-channel standard deviations after normalize")

    def test_normalize_per_channel_when_width_equals_channels(self):
        """Images (N, 3, 4, 3): a (3,) mean must still go with axis 1, though it would also broadcast with the width.

        Hint: broadcasting lines shapes up from the RIGHT, so (3,) meets the width axis and numpy
        raises no error when the width happens to be 3. Reshape to (1, C, 1, 1) yourself.
        """
        images = channel_images(seed=7, shape=(16, 3, 4, 3))
        got = normalize(images, mean=[1, 2, 3], std=[2, 3, 4])
        assert_close(got.mean(axis=(0, 2, 3)), np.zeros(3), "per-channel means after normalize of (16, 3, 4, 3) images",
                     atol=1e-5)
        assert_close(got, (images - np.array([1, 2, 3]).reshape(1, 3, 1, 1)) / np.array([2, 3, 4]).reshape(1, 3, 1, 1),
                     "normalize of (16, 3, 4, 3) images, mean and std lined up with axis 1")

    def test_normalize_per_feature(self):
        """For (N, F) data a mean and std of shape (F,) apply per feature; for (N, C, L) signals, per channel (axis 1)."""
        x = np.array([[1, 10], [3, 30]], dtype=np.float32)
        assert_close(normalize(x, np.array([2, 20]), np.array([1, 10])), [[-1, -1], [1, 1]], "normalize per feature")
        signals = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)  # (N, C, L)
        got = normalize(signals, np.array([1.0, 2.0]), np.array([2.0, 4.0]))
        expected = (signals - np.array([1.0, 2.0]).reshape(1, 2, 1)) / np.array([2.0, 4.0]).reshape(1, 2, 1)
        assert_close(got, expected, "normalize of (2, 2, 3) signals with a (2,) mean and std: per channel, axis 1")

    def test_normalize_dtypes(self):
        """Integer images (uint8) become float32; float64 data stays float64, computed in float64."""
        pixels = np.array([[[[0, 255]]]], dtype=np.uint8)  # (1, 1, 1, 2)
        got = normalize(pixels, mean=[127.5], std=[127.5])
        assert got.dtype == np.float32, f"normalize of uint8 images should give float32, got {got.dtype}"
        assert_close(got, [[[[-1.0, 1.0]]]], "normalize(uint8 [0, 255], 127.5, 127.5)")
        x = np.array([[0.5, 1.5]])
        wide = normalize(x, 0.1, 0.3)
        assert wide.dtype == np.float64, f"normalize of float64 data should stay float64, got {wide.dtype}"
        assert_close(wide, (x - 0.1) / 0.3, "normalize(float64 [0.5, 1.5], 0.1, 0.3), to float64 precision "
                     "(mean and std in the data's dtype, not float32)", rtol=1e-12, atol=0)

    @pytest.mark.parametrize("std", [0.0, -1.0, [1.0, 0.0, 2.0], [1.0, 2.0, -3.0]], ids=["0", "-1", "[1,0,2]", "[1,2,-3]"])
    def test_normalize_rejects_a_std_that_is_not_positive(self, std):
        """A std of 0 or below, in any channel, raises ValueError naming std rather than filling the batch with inf."""
        with pytest.raises(ValueError) as error:
            normalize(np.ones((2, 3), np.float32), 0.0, std)
        assert "std" in str(error.value), f"normalize(x, 0, std={std}): the ValueError should name std; it says: {error.value}"

    def test_flip_leaves_input_alone(self):
        """random_flip returns a new array, even when nothing flips, and never changes its input."""
        images = np.random.default_rng(8).standard_normal((20, 2, 3)).astype(np.float32)
        before = images.copy()
        for p in (0.0, 0.5, 1.0):
            got = random_flip(images, np.random.default_rng(9), p=p)
            assert_new_and_input_unchanged(got, images, before, f"random_flip(p={p})")

    def test_flip_all_or_none(self):
        """random_flip with p=1 mirrors every image left-right; with p=0 it changes none."""
        images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        assert_close(random_flip(images, np.random.default_rng(0), p=1.0), images[..., ::-1], "random_flip(p=1)")
        assert_close(random_flip(images, np.random.default_rng(0), p=0.0), images, "random_flip(p=0)")

    def test_flip_keeps_the_dtype(self):
        """random_flip of float64 or uint8 images returns float64 or uint8 images, flipped or not."""
        for dtype in (np.float64, np.uint8):
            images = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
            for p in (0.0, 1.0):
                got = random_flip(images, np.random.default_rng(0), p=p)
                assert got.dtype == dtype, (
                    f"random_flip(p={p}) of {np.dtype(dtype).name} images returned {got.dtype}: copy the batch "
                    "(images.copy()), do not convert it")

    def test_flip_about_half_each_image_whole(self):
        """With p=0.5, about half of 1000 images flip, each whole or not at all (one decision per image, not per batch)."""
        images = np.random.default_rng(8).standard_normal((1000, 1, 2, 3)).astype(np.float32)
        got = random_flip(images, np.random.default_rng(9))
        flipped = np.all(got == images[..., ::-1], axis=(1, 2, 3))
        kept = np.all(got == images, axis=(1, 2, 3))
        assert np.all(flipped | kept), "some images were neither flipped whole nor left as they were"
        assert 400 <= flipped.sum() <= 600, f"p=0.5 flipped {flipped.sum()} of 1000 images; expected about 500"

    def test_flip_keeps_the_channels_of_an_image_together(self):
        """Images (N, 3, H, W): a flipped image has all three channels flipped, p=0.3 flips about 30% of them."""
        images = np.random.default_rng(10).standard_normal((400, 3, 2, 4)).astype(np.float32)
        got = random_flip(images, np.random.default_rng(11), p=0.3)
        flipped = np.all(got == images[..., ::-1], axis=(1, 2, 3))
        kept = np.all(got == images, axis=(1, 2, 3))
        assert np.all(flipped | kept), (
            f"{int(np.sum(~(flipped | kept)))} of 400 RGB images have some channels flipped and others not: draw one "
            "number per image (len(images)), not one per channel")
        assert 80 <= flipped.sum() <= 160, f"p=0.3 flipped {flipped.sum()} of 400 images; expected about 120"

    def test_flip_is_seeded(self):
        """The same seed flips the same images; with rng=None, np.random.seed decides."""
        images = np.random.default_rng(10).standard_normal((50, 4, 4))
        a = random_flip(images, np.random.default_rng(11))
        b = random_flip(images, np.random.default_rng(11))
        assert_close(a, b, "random_flip twice with default_rng(11)")
        np.random.seed(12)
        c = random_flip(images)
        np.random.seed(12)
        assert_close(random_flip(images), c, "random_flip twice after np.random.seed(12)")

    def test_crop_leaves_input_alone(self):
        """random_crop returns a new array (also a full-size crop without padding) and never changes its input."""
        images = np.random.default_rng(13).standard_normal((5, 8, 8)).astype(np.float32)
        before = images.copy()
        for size, padding in ((8, 0), (6, 0), (8, 2)):
            got = random_crop(images, size, padding=padding, rng=np.random.default_rng(0))
            assert_new_and_input_unchanged(got, images, before, f"random_crop(size={size}, padding={padding})")

    def test_crop_without_padding_to_full_size_is_identity(self):
        """random_crop(images, size=8, padding=0) of 8x8 images returns them unchanged, with their dtype."""
        images = np.random.default_rng(13).standard_normal((5, 8, 8)).astype(np.float32)
        got = random_crop(images, 8, padding=0, rng=np.random.default_rng(0))
        assert_close(got, images, "random_crop(size=8)")
        assert got.dtype == np.float32, f"random_crop should keep float32, got {got.dtype}"

    def test_crop_as_large_as_the_padded_image(self):
        """A 6x6 window of 4x4 images padded by 1 is the whole padded image: allowed, and exactly np.pad's result."""
        images = np.random.default_rng(16).uniform(1, 2, size=(3, 4, 4)).astype(np.float32)
        try:
            got = random_crop(images, 6, padding=1, rng=np.random.default_rng(0))
        except ValueError as error:
            raise AssertionError(f"random_crop(size=6, padding=1) of 4x4 images raised ValueError({error}); the "
                                 "window must fit the PADDED image (4 + 2 * 1 = 6), not the original") from None
        assert_close(got, np.pad(images, ((0, 0), (1, 1), (1, 1))), "random_crop(size=6, padding=1) of 4x4 images")

    def test_crop_windows_come_from_the_padded_images(self):
        """Each 8x8 crop of 2-padded 8x8 images is a window of that image padded with zeros; crops differ."""
        images = np.random.default_rng(14).uniform(1, 2, size=(40, 8, 8)).astype(np.float32)
        got = random_crop(images, 8, padding=2, rng=np.random.default_rng(15))
        assert_shape(got, (40, 8, 8), "random_crop(size=8, padding=2) of (40, 8, 8) images")
        padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
        corners = []
        for n in range(40):
            found = [(i, j) for i in range(5) for j in range(5) if np.array_equal(padded[n, i:i + 8, j:j + 8], got[n])]
            assert found, f"crop {n} is not any 8x8 window of image {n} padded by 2"
            corners.append(found[0])
        assert len(set(corners)) > 5, f"the 40 crops used only {len(set(corners))} distinct positions: draw one per image"

    @pytest.mark.parametrize("height,width,size,padding", [(5, 9, 4, 0), (9, 5, 4, 0), (4, 7, 4, 1)])
    def test_crop_of_non_square_images_reaches_every_position(self, height, width, size, padding):
        """Crops of non-square images are windows at every possible top (0..H+2p-size) and left (0..W+2p-size).

        Hint: a non-square image has its own range for each axis: the top corner goes up to
        H + 2 * padding - size and the left corner up to W + 2 * padding - size, both included.
        """
        images = positional_images(300, height, width)
        got = random_crop(images, size, padding=padding, rng=np.random.default_rng(16))
        assert_shape(got, (300, size, size), f"random_crop(size={size}, padding={padding}) of (300, {height}, {width}) images")
        code = got[:, padding, padding].astype(np.int64) - 1  # the original pixel at the crop's (padding, padding)
        top, left = code // 16, code % 16
        padded = np.pad(images[0], padding)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))  # (H', W', size, size)
        assert_close(got, windows[top, left], f"crops of ({height}, {width}) images against the windows at their corners")
        reach = (height + 2 * padding - size, width + 2 * padding - size)
        assert (set(top.tolist()), set(left.tolist())) == (set(range(reach[0] + 1)), set(range(reach[1] + 1))), (
            f"({height}, {width}) images, size {size}, padding {padding}: top corners used {sorted(set(top.tolist()))} and "
            f"left corners {sorted(set(left.tolist()))}; expected every top 0..{reach[0]} and every left 0..{reach[1]}")

    def test_crop_keeps_channels(self):
        """random_crop of (N, C, H, W) images crops H and W (padding them only) and keeps each image's channels together."""
        images = np.random.default_rng(16).standard_normal((6, 3, 10, 10)).astype(np.float32)
        images[:, 1] = images[:, 0] + 100  # channel 1 is channel 0 shifted: a crop must keep that
        got = random_crop(images, 6, padding=0, rng=np.random.default_rng(17))
        assert_shape(got, (6, 3, 6, 6), "random_crop(size=6) of (6, 3, 10, 10) images")
        assert_close(got[:, 1], got[:, 0] + 100, "channel 1 against channel 0 + 100 after the crop", atol=1e-4)
        padded = random_crop(images, 10, padding=1, rng=np.random.default_rng(18))
        assert_shape(padded, (6, 3, 10, 10), "random_crop(size=10, padding=1) of (6, 3, 10, 10) images")
        inside = padded[:, 0] != 0
        assert_close(padded[:, 1][inside], padded[:, 0][inside] + 100, "channel 1 against channel 0 + 100 after a padded crop",
                     atol=1e-4)

    def test_crop_is_seeded(self):
        """The same rng seed gives the same crops; with rng=None, np.random.seed decides."""
        images = np.random.default_rng(19).standard_normal((30, 6, 6))
        a = random_crop(images, 4, padding=1, rng=np.random.default_rng(20))
        assert_close(random_crop(images, 4, padding=1, rng=np.random.default_rng(20)), a, "random_crop twice with default_rng(20)")
        np.random.seed(21)
        c = random_crop(images, 4, padding=1)
        np.random.seed(21)
        assert_close(random_crop(images, 4, padding=1), c, "random_crop twice after np.random.seed(21)")

    @pytest.mark.parametrize("shape,size,padding", [((2, 8, 8), 13, 2), ((2, 8, 5), 6, 0), ((2, 5, 8), 6, 0)])
    def test_crop_too_large(self, shape, size, padding):
        """A window larger than the padded image in either direction raises ValueError naming the size."""
        with pytest.raises(ValueError) as error:
            random_crop(np.zeros(shape), size, padding=padding, rng=np.random.default_rng(0))
        assert str(size) in str(error.value), (
            f"random_crop of {shape} images, size {size}, padding {padding}: name the size; the error says: {error.value}")


# -- digits ---------------------------------------------------------------------------


@pytest.mark.checkpoint("digits")
class TestDigits:
    def test_shapes_and_dtypes(self):
        """load_digits() gives float32 images (1797, 8, 8) and int64 labels (1797,)."""
        images, labels = load_digits()
        assert_shape(images, (1797, 8, 8), "the digit images")
        assert_shape(labels, (1797,), "the digit labels")
        assert images.dtype == np.float32 and labels.dtype == np.int64, (
            f"expected float32 images and int64 labels, got {images.dtype} and {labels.dtype}")

    def test_pixels_scaled_to_unit_range(self):
        """Pixels are the stored counts 0..16 divided by 16: from 0 to 1 in steps of 1/16."""
        images, _ = load_digits()
        assert images.min() == 0.0 and images.max() == 1.0, (
            f"pixels should span [0, 1], got [{images.min()}, {images.max()}]; divide the counts 0..16 by 16")
        assert np.all(images * 16 == np.round(images * 16)), "pixels should be multiples of 1/16"

    def test_first_digit_is_a_zero(self):
        """The first image is a 0 whose pixel counts sum to 294."""
        images, labels = load_digits()
        assert labels[0] == 0, f"the first label should be 0, got {labels[0]}"
        assert_close(images[0].sum() * 16, 294.0, "the sum of the first image's counts")
        assert_close(images[0, 0] * 16, [0, 0, 5, 13, 9, 1, 0, 0], "the first row of the first image, as counts")

    def test_classes_are_balanced(self):
        """Each digit 0..9 appears 174 to 183 times (1,797 in all)."""
        _, labels = load_digits()
        counts = np.bincount(labels, minlength=10).tolist()
        assert counts == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180], f"examples per digit: {counts}"

    def test_flatten(self):
        """load_digits(flatten=True) gives (1797, 64) rows, row-major from the 8x8 images."""
        flat, labels = load_digits(flatten=True)
        images, _ = load_digits()
        assert_shape(flat, (1797, 64), "the flattened digits")
        assert flat.dtype == np.float32 and labels.dtype == np.int64, (
            f"flatten=True should keep float32 images and int64 labels, got {flat.dtype} and {labels.dtype}")
        assert_close(flat[5], images[5].reshape(64), "flattened image 5 against image 5 reshaped")
        assert_shape(labels, (1797,), "the labels with flatten=True")


# -- optimize -------------------------------------------------------------------------

BATCH = 256
FEATURES = 64
TIME_BUDGET = 3.0  # the reference runs at about 1.0-1.2x the numpy baseline; item-by-item is about 40x


def big_dataset(n: int):
    x = np.arange(n * FEATURES, dtype=np.float32).reshape(n, FEATURES)  # row i starts with i * 64
    return x, np.arange(n, dtype=np.int64)


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_tensor_dataset_batches_are_right(self):
        """Shuffled batches of a TensorDataset hold the rows at their labels' indices, each row once."""
        x, y = big_dataset(1000)
        seen = []
        for batch in DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, rng=np.random.default_rng(20)):
            assert isinstance(batch, tuple) and len(batch) == 2, (
                f"a batch of TensorDataset(x, y): expected a tuple (x rows, y rows), got {type(batch).__name__}")
            xb, yb = batch
            assert_close(xb, x[yb], "each batch's rows against x[labels]")
            seen.extend(yb.tolist())
        assert sorted(seen) == list(range(1000)), f"an epoch visited {len(seen)} rows, {len(set(seen))} distinct"

    def test_tensor_dataset_is_visited_in_the_shuffled_order(self):
        """With the same seed, a TensorDataset is visited in the same order as an item-by-item dataset, within batches too.

        Hint: index the arrays with the slice of the permutation as it is; sorting the indices (for
        faster memory access) undoes the shuffle inside every batch.
        """
        n = 50
        x, y = np.stack([np.arange(n), np.arange(n)], axis=1).astype(np.float32), np.arange(n, dtype=np.int64)
        expected = order_of(DataLoader(Squares(n), batch_size=8, shuffle=True, rng=np.random.default_rng(22)))
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, rng=np.random.default_rng(22))
        got = np.concatenate([labels for _, labels in loader])
        assert got.tolist() == expected.tolist(), (
            f"a TensorDataset with default_rng(22) visited {got[:10].tolist()}..., an item-by-item dataset with the "
            f"same seed {expected[:10].tolist()}...: both should follow the epoch's permutation exactly")

    @pytest.mark.budget
    def test_one_fetch_per_batch(self):
        """An epoch over a TensorDataset calls its __getitem__ at most once per batch, not once per item."""
        x, y = big_dataset(2000)
        loader = DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True, rng=np.random.default_rng(21))
        with count_calls(TensorDataset, "__getitem__") as getitem:
            count = sum(1 for _ in loader)
        assert count == 20, f"expected 20 batches, got {count}"
        assert getitem.calls <= 20, (
            f"one epoch of 20 batches called TensorDataset.__getitem__ {getitem.calls} times; at most 20 "
            "(one fancy index per batch): pass the whole index array")

    @pytest.mark.budget
    def test_memory_holds_a_few_batches(self):
        """An epoch over 100,000 x 64 float32 rows (25 MiB) keeps a few batches, not a copy of the data."""
        n = 100_000
        x, y = big_dataset(n)
        loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, rng=np.random.default_rng(22))

        def epoch():
            for xb, yb in loader:
                pass

        peak, _ = peak_bytes(epoch)
        batch_bytes = BATCH * (FEATURES * 4 + 8)
        budget = 16 * n + 4 * batch_bytes + 256 * 1024  # the epoch's order (int64, twice), 4 batches, a little slack
        assert peak <= budget, (
            f"one epoch over a {(x.nbytes + y.nbytes) / 2**20:.0f} MiB dataset peaked at {peak / 2**20:.2f} MiB; "
            f"the budget is {budget / 2**20:.2f} MiB (the shuffled order plus 4 batches of "
            f"{batch_bytes / 1024:.0f} KiB). Copy only the current batch, never the whole shuffled dataset")

    @pytest.mark.budget
    def test_time_within_budget_of_numpy_indexing(self):
        """An epoch over 50,000 x 64 rows in shuffled batches of 256 takes at most 3x plain numpy fancy indexing."""
        n = 50_000
        x, y = big_dataset(n)
        dataset = TensorDataset(x, y)

        def loader_epoch():
            for xb, yb in DataLoader(dataset, batch_size=BATCH, shuffle=True, rng=np.random.default_rng(23)):
                pass

        def numpy_epoch():
            order = np.random.default_rng(23).permutation(n)
            for start in range(0, n, BATCH):
                xb, yb = x[order[start:start + BATCH]], y[order[start:start + BATCH]]

        assert_time_ratio(loader_epoch, numpy_epoch, TIME_BUDGET,
                          "one shuffled epoch of 50,000 x 64 rows in batches of 256, against numpy fancy indexing "
                          "of the same batches", advice="Fetching item by item is the usual cause")

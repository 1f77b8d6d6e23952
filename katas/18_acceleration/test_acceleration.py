"""Kata 18 · Acceleration: the ordered suite. Run it with `python -m pytest katas/18_acceleration`.

Checkpoints, in order: vectorise, layout, tiling, linear, fusion, fusion_gradient,
fused_attention, in_place, fast_path, optimize. The lesson is katas/18_acceleration/README.md.

Every technique is measured here, with an assertion: a time ratio taken in this process
(harness.budgets.assert_time_ratio: interleaved, best of several rounds), or a count that
does not depend on the machine (bytes traced by tracemalloc, calls, recorded ops).
"""

import collections
import gc
import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from harness import implementation
from harness import manifest as manifest_module
from harness.budgets import assert_time_ratio, peak_bytes
from harness.checks import assert_close, assert_made_by_op, assert_shape, assert_tensor, gradcheck, raises_naming
from tinytorch import acceleration
from tinytorch.acceleration import (
    InPlaceAdam, causal_self_attention, contiguous, fast_block_forward, fast_linear_forward, fast_mlp_forward,
    fast_path, is_contiguous, linear, linear_gelu, row_major_strides, squared_distances, squared_distances_loop,
    tile_size, tiled_matmul,
)
from tinytorch.activations import gelu
from tinytorch.attention import merge_heads, scaled_dot_product_attention, split_heads
from tinytorch.autograd import BACKWARD_RULES, topological_order
from tinytorch.layers import Linear
from tinytorch.losses import cross_entropy
from tinytorch.optimizers import Adam
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT, MLP, Block, GPTConfig

GELU_SCALE = math.sqrt(2 / math.pi)


def random_array(shape, seed: int, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def random_ids(shape, vocabulary: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocabulary, size=shape)


def tensor(values, dtype=np.float64, requires_grad=False) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def assert_array(got, what: str, shape=None, dtype=None) -> None:
    """`got` is a numpy array (not a Tensor, a list or a number), of `shape` and `dtype` if given."""
    assert isinstance(got, np.ndarray), f"{what}: expected a numpy array, got {type(got).__name__}"
    if shape is not None:
        assert_shape(got, shape, what)
    if dtype is not None:
        assert got.dtype == np.dtype(dtype), f"{what}: expected dtype {np.dtype(dtype)}, got {got.dtype}"


def retained_bytes(fn):
    """(bytes still allocated when fn() returns, above what was allocated before; fn's result)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = fn()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, result


def numpy_gelu(x):
    return 0.5 * x * (1 + np.tanh(GELU_SCALE * (x + 0.044715 * x ** 3)))


def numpy_gelu_slope(x):
    """d GELU(x) / dx of the tanh approximation, written out."""
    t = np.tanh(GELU_SCALE * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * GELU_SCALE * (1 + 3 * 0.044715 * x ** 2)


def graph_ops(root: Tensor) -> collections.Counter:
    """How many times each op appears in the graph behind `root`."""
    return collections.Counter(node.op for node in topological_order(root) if node.op is not None)


# -- vectorise ---------------------------------------------------------------------------------------------

VECTORISE_BUDGET = 0.05  # the vectorised twin over the loop on 64 x 64 pairs; the reference measures 0.003-0.01


@pytest.mark.checkpoint("vectorise")
class TestVectorise:
    def test_inputs_are_left_alone(self):
        """Neither the loop nor its twin writes into x or y."""
        x, y = random_array((4, 3), 1), random_array((5, 3), 2)
        copies = x.copy(), y.copy()
        for function in (squared_distances_loop, squared_distances):
            function(x, y)
            assert_close(x, copies[0], f"x after {function.__name__}", rtol=0, atol=0)
            assert_close(y, copies[1], f"y after {function.__name__}", rtol=0, atol=0)

    def test_the_loop_follows_the_definition(self):
        """Hand-checked: x = [[0, 0], [1, 1]], y = [[1, 0], [3, 4], [1, 1]] gives [[1, 25, 2], [1, 13, 0]]."""
        x, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
        got = squared_distances_loop(x, y)
        assert_array(got, "squared_distances_loop of (2, 2) and (3, 2)", shape=(2, 3), dtype=np.float64)
        assert_close(got, [[1.0, 25.0, 2.0], [1.0, 13.0, 0.0]], "squared_distances_loop, hand-checked")

    def test_the_twin_follows_the_definition(self):
        """The vectorised twin on the same hand-checked example: [[1, 25, 2], [1, 13, 0]], a numpy array."""
        x, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
        got = squared_distances(x, y)
        assert_array(got, "squared_distances of (2, 2) and (3, 2)", shape=(2, 3), dtype=np.float64)
        assert_close(got, [[1.0, 25.0, 2.0], [1.0, 13.0, 0.0]], "squared_distances, hand-checked", atol=1e-12)

    def test_the_twin_equals_the_loop(self):
        """Random x (7, 5) and y (9, 5) at three scales: the twin gives the loop's numbers, and both the definition's."""
        for seed, scale in ((3, 1.0), (4, 100.0), (5, 1e-3)):
            x, y = random_array((7, 5), seed, scale), random_array((9, 5), seed + 10, scale)
            expected = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)
            loop = squared_distances_loop(x, y)
            assert_close(loop, expected, f"squared_distances_loop at scale {scale} (seed {seed})", rtol=1e-12, atol=0)
            assert_close(squared_distances(x, y), loop, f"squared_distances vs the loop at scale {scale} (seed {seed})",
                         rtol=1e-9, atol=1e-12 * scale * scale)

    def test_edges_empty_and_single_rows(self):
        """No rows in x or in y, one row each, and rows of no features (D = 0): both give the definition's (N, M).

        Hint: an array made by collecting rows in a list (np.array(rows)) has shape (0,) when there are no
        rows, not (0, M). Make the (N, M) result first (np.empty or zeros) and fill it.
        """
        cases = [((0, 3), (4, 3)), ((4, 3), (0, 3)), ((0, 3), (0, 3)), ((1, 3), (1, 3)), ((1, 3), (5, 3)),
                 ((5, 3), (1, 3)), ((2, 0), (3, 0))]
        for index, (x_shape, y_shape) in enumerate(cases):
            x, y = random_array(x_shape, 20 + index), random_array(y_shape, 40 + index)
            expected = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)  # (N, M), zeros when D = 0
            for function in (squared_distances_loop, squared_distances):
                got = function(x, y)
                what = f"{function.__name__} of x {x_shape} and y {y_shape}"
                assert_array(got, what, shape=expected.shape, dtype=np.float64)
                assert_close(got, expected, what, rtol=1e-9, atol=1e-12)

    def test_a_row_and_itself_are_at_distance_zero_never_below(self):
        """The twin on 40 rows against themselves: every distance >= 0, the diagonal within rounding of 0.

        Hint: |x|^2 + |x|^2 - 2 x.x is 0 in exact arithmetic, but rounding can leave -1e-7 in float32. A
        squared distance below zero is nonsense (its square root is nan): clip with np.maximum(d, 0).
        """
        x = random_array((40, 16), 50, scale=3.0, dtype=np.float32)
        got = squared_distances(x, x)
        assert (got >= 0).all(), (
            f"squared_distances(x, x): {int((got < 0).sum())} negative distances, the lowest {got.min()!r}")
        diagonal = np.diagonal(got)
        assert diagonal.max() <= 1e-3, f"squared_distances(x, x): a row's distance to itself is {diagonal.max()!r}"

    def test_nan_stays_nan(self):
        """A nan in row 1 of x makes row 1 of the distances nan (both functions); the other rows stay finite.

        Hint: np.fmax(d, 0) or np.nan_to_num turn a nan into a number, and a broken input then looks like a
        near neighbour; np.maximum(d, 0) keeps the nan.
        """
        x, y = random_array((3, 4), 55), random_array((5, 4), 56)
        x[1, 2] = np.nan
        for function in (squared_distances_loop, squared_distances):
            got = function(x, y)
            assert np.isnan(got[1]).all(), f"{function.__name__}: row 1 of x holds a nan, so should row 1; got {got[1]}"
            assert np.isfinite(got[[0, 2]]).all(), f"{function.__name__}: rows 0 and 2 should stay finite"

    def test_float32_stays_float32_and_integers_become_float64(self):
        """float32 rows give float32 distances (both functions); integer rows give float64 ones."""
        x, y = random_array((3, 4), 60, dtype=np.float32), random_array((2, 4), 61, dtype=np.float32)
        expected = ((x.astype(np.float64)[:, None] - y.astype(np.float64)[None]) ** 2).sum(axis=-1)
        for function in (squared_distances_loop, squared_distances):
            got = function(x, y)
            assert_array(got, f"{function.__name__} of float32 rows", shape=(3, 2), dtype=np.float32)
            assert_close(got, expected, f"{function.__name__} of float32 rows", rtol=1e-5, atol=1e-5)
            whole = function(np.array([[1, 2], [3, 4]]), np.array([[0, 0]]))
            assert_array(whole, f"{function.__name__} of integer rows", shape=(2, 1), dtype=np.float64)
            assert_close(whole, [[5.0], [25.0]], f"{function.__name__} of integer rows")

    def test_views_and_tensors(self):
        """A transposed view, a strided slice and a Tensor are rows like any other."""
        base = random_array((6, 8), 70)
        x, y = base.T[::2], base[:, ::2].T  # (4, 6) and (4, 6), neither contiguous
        expected = ((x[:, None] - y[None]) ** 2).sum(axis=-1)
        for function in (squared_distances_loop, squared_distances):
            assert_close(function(x, y), expected, f"{function.__name__} of non-contiguous views", atol=1e-12)
            assert_close(function(tensor(x), tensor(y)), expected, f"{function.__name__} of Tensors", atol=1e-12)

    def test_shapes_are_checked(self):
        """Rows of different lengths, or 1-D inputs, are a ValueError naming both shapes (both functions)."""
        for function in (squared_distances_loop, squared_distances):
            raises_naming(lambda: function(np.zeros((2, 3)), np.zeros((2, 4))), ValueError, ["(2, 3)", "(2, 4)"],
                          f"{function.__name__} of (2, 3) and (2, 4)")
            raises_naming(lambda: function(np.zeros(3), np.zeros((2, 3))), ValueError, ["(3,)"],
                          f"{function.__name__} of a 1-D x")

    @pytest.mark.budget
    def test_no_n_by_m_by_d_temporary(self):
        """squared_distances of (200, 64) and (300, 64) float64 peaks below 2x its (200, 300) result."""
        x, y = random_array((200, 64), 80), random_array((300, 64), 81)
        peak, result = peak_bytes(lambda: squared_distances(x, y))
        budget = 2 * 200 * 300 * 8
        assert peak <= budget, (
            f"squared_distances of (200, 64) and (300, 64): peak memory {peak / 2**20:.2f} MiB; the budget is "
            f"{budget / 2**20:.2f} MiB, twice the result. x[:, None, :] - y[None, :, :] makes an (N, M, D) array, "
            f"64 times the result: expand |x - y|^2 instead, so that the cross terms are one product x @ y.T")
        assert_shape(result, (200, 300), "squared_distances of (200, 64) and (300, 64)")

    @pytest.mark.budget
    def test_vectorised_is_much_faster_than_the_loop(self):
        """On 64 x 64 float32 pairs of 32 features the twin takes at most 1/20 of the loop's time (the reference: 1/100 to 1/300)."""
        x, y = random_array((64, 32), 90, dtype=np.float32), random_array((64, 32), 91, dtype=np.float32)
        assert_time_ratio(lambda: squared_distances(x, y), lambda: squared_distances_loop(x, y), VECTORISE_BUDGET,
                          "squared_distances vs squared_distances_loop, 64 x 64 pairs of 32 float32 features",
                          advice="a Python loop over the rows, or over the pairs, in the twin keeps its per-call cost")


# -- layout ---------------------------------------------------------------------------------------------------

LAYOUT_BUDGET = 0.6  # copy once + 4 additions over 4 additions of the transposed view; the reference measures ~0.3


def layouts():
    """(name, array) pairs of many layouts: fresh arrays, views that keep or break contiguity, odd strides."""
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    matrix = np.arange(48, dtype=np.float64).reshape(6, 8)
    return [
        ("a fresh (2, 3, 4) float32", base),
        ("a fresh (6, 8) float64", matrix),
        ("a 0-d array", np.array(3.0)),
        ("a transposed (8, 6)", matrix.T),
        ("a row slice (2:5)", matrix[2:5]),
        ("a column slice (:, 2:5)", matrix[:, 2:5]),
        ("every other row", matrix[::2]),
        ("every other column", matrix[:, ::2]),
        ("reversed rows", matrix[::-1]),
        ("one row of every other row, shape (1, 8)", matrix[::2][1:2]),
        ("a new axis, shape (6, 1, 8)", matrix[:, None, :]),
        ("one column as (6, 1)", matrix[:, 3:4]),
        ("a broadcast (3, 8) of one row", np.broadcast_to(matrix[0], (3, 8))),
        ("an empty (0, 8) slice of every other column", matrix[:0, ::2]),
        ("a (3, 2, 4) swapaxes view", base.swapaxes(0, 1)),
        ("a (2, 1, 4) slice of the middle axis", base[:, 1:2, :]),
        ("a (1, 3, 4) slice of the first axis", base[1:2]),
        ("a transposed (4, 1)", np.ones((1, 4)).T),
        ("a Fortran-ordered (3, 5)", np.asfortranarray(np.ones((3, 5)))),
    ]


@pytest.mark.checkpoint("layout")
class TestLayout:
    def test_row_major_strides_by_hand(self):
        """(2, 3, 4) of 4-byte items: (48, 16, 4); (5,) of 8 bytes: (8,); a 0-d shape: ()."""
        for shape, itemsize, expected in (((2, 3, 4), 4, (48, 16, 4)), ((5,), 8, (8,)), ((), 4, ()),
                                          ((3, 1, 2), 2, (4, 4, 2)), ((7, 5), 1, (5, 1))):
            got = row_major_strides(shape, itemsize)
            assert isinstance(got, tuple), f"row_major_strides{shape, itemsize}: expected a tuple, got {type(got).__name__}"
            assert got == expected, f"row_major_strides({shape}, {itemsize}): expected {expected}, got {got}"

    def test_row_major_strides_match_numpy(self):
        """For fresh C-ordered arrays of many shapes and dtypes, the strides numpy gives them."""
        for shape in ((4,), (3, 5), (2, 3, 4), (6, 1, 7), (1, 1), (2, 2, 2, 2, 3)):
            for dtype in (np.float32, np.float64, np.int16, np.complex128):
                array = np.empty(shape, dtype=dtype)
                got = row_major_strides(shape, array.itemsize)
                assert got == array.strides, (
                    f"row_major_strides({shape}, {array.itemsize}) for {np.dtype(dtype)}: expected numpy's "
                    f"{array.strides}, got {got}")

    def test_is_contiguous_agrees_with_numpy(self):
        """For fresh arrays, views, slices, transposes, broadcasts and empties: numpy's flags.c_contiguous.

        Hint: numpy ignores the stride of an axis of length 1 (it is never stepped), and calls any array with
        no elements contiguous. Comparing the strides with row_major_strides as a whole misses both.
        """
        for name, array in layouts():
            got = is_contiguous(array.shape, array.strides, array.itemsize)
            assert isinstance(got, (bool, np.bool_)), f"is_contiguous of {name}: expected a bool, got {type(got).__name__}"
            assert got == array.flags.c_contiguous, (
                f"is_contiguous of {name} (shape {array.shape}, strides {array.strides}): numpy says "
                f"{array.flags.c_contiguous}, got {got}")

    def test_contiguous_keeps_a_contiguous_array(self):
        """contiguous(a) of an already contiguous array is that very array: no copy, no allocation."""
        array = random_array((64, 64), 100)
        peak, got = peak_bytes(lambda: contiguous(array))
        assert got is array, "contiguous() of a contiguous array should return the array itself, not a copy"
        assert peak < array.nbytes // 4, f"contiguous() of a contiguous (64, 64) array allocated {peak} bytes"
        row = array[3:4]
        assert contiguous(row) is row, "contiguous() of a contiguous row slice should return the slice itself"

    def test_contiguous_copies_what_is_not(self):
        """A transposed view, a strided slice and a broadcast come back as row-major copies with the same values."""
        for name, array in layouts():
            if array.flags.c_contiguous:
                continue
            before = np.array(array)
            got = contiguous(array)
            assert_array(got, f"contiguous of {name}", shape=array.shape, dtype=array.dtype)
            assert got.flags.c_contiguous, f"contiguous of {name}: the result is not C-contiguous (strides {got.strides})"
            assert_close(got, before, f"contiguous of {name}", rtol=0, atol=0)
            assert not np.shares_memory(got, array), f"contiguous of {name}: the result shares memory with the input"
            assert_close(array, before, f"{name} after contiguous()", rtol=0, atol=0)

    @pytest.mark.budget
    def test_a_copy_pays_for_itself_when_it_is_read_often(self):
        """Adding a transposed (512, 512) float32 Tensor 4 times: copy it once with contiguous() first in at most 0.6x the time.

        An elementwise op between a row-major and a column-major operand walks one of them across its
        rows: every element read from a different cache line. The copy makes that walk once.
        """
        u = Tensor(random_array((512, 512), 110, dtype=np.float32))
        v = Tensor(random_array((512, 512), 111, dtype=np.float32)).transpose()  # a view: column-major

        def add_the_view():
            for _ in range(4):
                u + v

        def copy_then_add():
            copied = Tensor(contiguous(v.data))
            for _ in range(4):
                u + copied

        assert_time_ratio(copy_then_add, add_the_view, LAYOUT_BUDGET,
                          "contiguous(v.T) once and 4 additions vs 4 additions of the view v.T, (512, 512) float32",
                          advice="contiguous() must return a row-major copy of a transposed view")


# -- tiling -------------------------------------------------------------------------------------------------


class TileSpy:
    """Stands in for acceleration.multiply_tile: records each call's shapes and output tile, then does the work."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, a_tile, b_tile, out_tile):
        self.calls.append((a_tile.shape, b_tile.shape, out_tile))
        return self.real(a_tile, b_tile, out_tile)


@pytest.mark.checkpoint("tiling")
class TestTiling:
    def test_tile_size_for_caches(self):
        """Three tiles in a 32 KiB L1: t = 52 (float32), 36 (float64); in a 1 MiB L2: 295; one operand in 32 KiB: 90."""
        for arguments, expected in (((32 * 1024, 4), 52), ((32 * 1024, 8), 36), ((1024 * 1024, 4), 295),
                                    ((32 * 1024, 4, 1), 90), ((2 * 1024 * 1024, 4, 2), 512), ((12, 4), 1)):
            got = tile_size(*arguments)
            assert isinstance(got, int), f"tile_size{arguments}: expected an int, got {type(got).__name__}"
            assert got == expected, f"tile_size{arguments}: expected {expected}, got {got}"

    def test_tile_size_is_the_largest_that_fits(self):
        """For many caches: operands * t^2 * itemsize fits, and (t + 1) does not (an exact integer square root)."""
        for cache in (1000, 4096, 48 * 1024, 10**9 + 7, 3 * 2**40):
            for itemsize, operands in ((2, 3), (4, 3), (8, 2)):
                t = tile_size(cache, itemsize, operands)
                assert operands * t * t * itemsize <= cache < operands * (t + 1) ** 2 * itemsize, (
                    f"tile_size({cache}, {itemsize}, {operands}) = {t}: {operands} tiles of {t}^2 items should fit "
                    f"in {cache} bytes and tiles of {t + 1}^2 should not")

    def test_tile_size_arguments_are_checked(self):
        """A non-positive size, or a cache smaller than one item per operand, is a ValueError naming it."""
        raises_naming(lambda: tile_size(0, 4), ValueError, ["cache_bytes=0"], "tile_size(0, 4)")
        raises_naming(lambda: tile_size(1024, -4), ValueError, ["itemsize=-4"], "tile_size(1024, -4)")
        raises_naming(lambda: tile_size(1024, 4, 0), ValueError, ["operands=0"], "tile_size(1024, 4, 0)")
        raises_naming(lambda: tile_size(8, 4), ValueError, ["8"], "tile_size(8, 4): 3 float32 items need 12 bytes")

    def test_multiply_tile_adds_into_the_output_tile(self):
        """multiply_tile adds a_tile @ b_tile INTO a view of a larger output, leaves the rest alone, returns None."""
        a_tile, b_tile = random_array((3, 4), 120), random_array((4, 2), 121)
        out = random_array((5, 6), 122)
        before = out.copy()
        result = acceleration.multiply_tile(a_tile, b_tile, out[1:4, 2:4])
        assert result is None, f"multiply_tile should work in place and return None, got {type(result).__name__}"
        expected = before.copy()
        expected[1:4, 2:4] += a_tile @ b_tile
        assert_close(out, expected, "the output after multiply_tile into its [1:4, 2:4] tile")

    def test_equals_matmul_when_the_tile_divides(self):
        """(64, 48) @ (48, 32) with tile 16, float64: A @ B to 1e-12."""
        a, b = random_array((64, 48), 130), random_array((48, 32), 131)
        got = tiled_matmul(a, b, 16)
        assert_array(got, "tiled_matmul((64, 48), (48, 32), tile=16)", shape=(64, 32), dtype=np.float64)
        assert_close(got, a @ b, "tiled_matmul((64, 48), (48, 32), tile=16)", rtol=1e-12, atol=1e-12)

    def test_edge_tiles(self):
        """Sizes the tile does not divide: (37, 29) @ (29, 45) with tiles 8, 10 and 16 equal A @ B (float32 to 1e-5).

        Hint: range(0, M, tile) starts a last, smaller tile at the edge, and a[i:i + tile] stops at the end by
        itself. range(M // tile) or a padded-away remainder drops the last rows, columns or inner products.
        """
        a, b = random_array((37, 29), 140, dtype=np.float32), random_array((29, 45), 141, dtype=np.float32)
        for tile in (8, 10, 16):
            got = tiled_matmul(a, b, tile)
            assert_array(got, f"tiled_matmul((37, 29), (29, 45), tile={tile})", shape=(37, 45), dtype=np.float32)
            assert_close(got, a @ b, f"tiled_matmul((37, 29), (29, 45), tile={tile})", rtol=1e-5, atol=1e-5)

    def test_tiles_larger_than_the_matrix_and_of_one(self):
        """A tile larger than every size is one product; a tile of 1 is the triple loop; both equal A @ B."""
        a, b = random_array((5, 7), 150), random_array((7, 3), 151)
        for tile in (64, 1, 3):
            assert_close(tiled_matmul(a, b, tile), a @ b, f"tiled_matmul((5, 7), (7, 3), tile={tile})", atol=1e-12)

    def test_one_call_per_tile_product_with_k_innermost(self, monkeypatch):
        """(37, 29) @ (29, 45), tile 8: 5 x 6 x 4 = 120 calls of multiply_tile, each on tiles of at most 8 x 8,
        each adding into a view of the result, with the inner axis innermost (4 calls per output tile in a row).

        Hint: the output tile (i, j) stays in the cache while k runs over the inner axis; call multiply_tile by its
        module-level name, on slices, with out[i:i + tile, j:j + tile] as the output tile.
        """
        spy = TileSpy(acceleration.multiply_tile)
        monkeypatch.setattr(acceleration, "multiply_tile", spy)
        a, b = random_array((37, 29), 160), random_array((29, 45), 161)
        result = tiled_matmul(a, b, 8)
        expected_calls = math.ceil(37 / 8) * math.ceil(45 / 8) * math.ceil(29 / 8)
        assert len(spy.calls) == expected_calls, (
            f"tiled_matmul((37, 29), (29, 45), tile=8): {len(spy.calls)} calls of multiply_tile; expected "
            f"ceil(37/8) ceil(45/8) ceil(29/8) = {expected_calls}")
        for a_shape, b_shape, out_tile in spy.calls:
            assert max(a_shape + b_shape) <= 8, f"a tile product of {a_shape} @ {b_shape}: larger than the 8 x 8 tile"
            assert np.shares_memory(out_tile, result), "multiply_tile was given an output tile outside the result"
        starts = [out_tile.__array_interface__["data"][0] for _, _, out_tile in spy.calls]  # where each tile begins
        runs = [starts[i:i + 4] for i in range(0, len(starts), 4)]
        assert all(len(set(run)) == 1 for run in runs) and len(set(starts)) == 5 * 6, (
            "multiply_tile's output tile should stay the same for 4 calls in a row (ceil(29/8) inner tiles), once for "
            "each of the 5 x 6 output tiles: loop i and j over output tiles outside, k inside")
        assert_close(result, a @ b, "tiled_matmul with multiply_tile counted", atol=1e-12)

    def test_an_empty_inner_axis_gives_zeros(self):
        """(3, 0) @ (0, 4) is a (3, 4) matrix of zeros: nothing is ever added, so the output must start at 0."""
        for tile in (1, 2):
            got = tiled_matmul(np.ones((3, 0)), np.ones((0, 4)), tile)
            assert_array(got, "tiled_matmul((3, 0), (0, 4))", shape=(3, 4), dtype=np.float64)
            assert_close(got, np.zeros((3, 4)), f"tiled_matmul((3, 0), (0, 4), tile={tile})", rtol=0, atol=0)

    def test_dtypes_views_and_inputs_left_alone(self):
        """float32 @ float64 gives float64; transposed and sliced views work; A and B are not written to."""
        base = random_array((20, 30), 170)
        a = base.T[::2].astype(np.float32)  # (15, 20)
        b = base[:, ::3]  # (20, 10), a view
        copies = a.copy(), b.copy()
        got = tiled_matmul(a, b, 6)
        assert_array(got, "tiled_matmul(float32 (15, 20), float64 view (20, 10))", shape=(15, 10), dtype=np.float64)
        assert_close(got, a.astype(np.float64) @ b, "tiled_matmul of views", rtol=1e-6, atol=1e-6)
        assert_close(a, copies[0], "A after tiled_matmul", rtol=0, atol=0)
        assert_close(b, copies[1], "B after tiled_matmul", rtol=0, atol=0)

    def test_bad_arguments(self):
        """1-D operands, inner sizes that differ, and tiles of 0, 2.5 or True are ValueErrors naming them."""
        raises_naming(lambda: tiled_matmul(np.ones(3), np.ones((3, 2))), ValueError, ["(3,)"], "tiled_matmul of 1-D A")
        raises_naming(lambda: tiled_matmul(np.ones((2, 3)), np.ones((4, 2))), ValueError, ["(2, 3)", "(4, 2)"],
                      "tiled_matmul((2, 3), (4, 2))")
        for tile in (0, 2.5, True, -3):
            raises_naming(lambda: tiled_matmul(np.ones((2, 3)), np.ones((3, 2)), tile), ValueError, [repr(tile)],
                          f"tiled_matmul with tile={tile!r}")

    @pytest.mark.budget
    def test_working_memory_is_a_few_tiles(self):
        """(200, 150) @ (150, 180) float64, tile 32: peak memory at most the result plus 4 tiles (and 16 KiB).

        Hint: padding A and B to multiples of the tile, or computing a @ b whole and copying it in, costs
        memory the size of the matrices; a tiled product needs only tile-sized temporaries.
        """
        a, b = random_array((200, 150), 180), random_array((150, 180), 181)
        peak, _ = peak_bytes(lambda: tiled_matmul(a, b, 32))
        budget = 200 * 180 * 8 + 4 * 32 * 32 * 8 + 16 * 1024
        assert peak <= budget, (
            f"tiled_matmul((200, 150), (150, 180), tile=32): peak memory {peak / 1024:.0f} KiB; the budget is "
            f"{budget / 1024:.0f} KiB: the (200, 180) result plus four 32 x 32 tiles")


# -- linear ---------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("linear")
class TestLinear:
    def test_inputs_are_left_alone(self):
        """linear(x, weight, bias) writes into none of them (the bias is added into the product, not into x)."""
        x, w, b = random_array((3, 4), 200), random_array((4, 5), 201), random_array(5, 202)
        copies = [a.copy() for a in (x, w, b)]
        linear(tensor(x), tensor(w), tensor(b))
        for name, before, after in zip(("x", "weight", "bias"), copies, (x, w, b)):
            assert_close(after, before, f"{name} after linear", rtol=0, atol=0)

    def test_one_recorded_op(self):
        """linear is one op, "linear", with parents (x, weight, bias), or (x, weight) without a bias."""
        x, w, b = (tensor(random_array(s, seed), requires_grad=True) for s, seed in (((2, 4), 203), ((4, 3), 204), (3, 205)))
        out = assert_made_by_op(lambda: linear(x, w, b), "linear(x (2, 4), weight (4, 3), bias)", op="linear",
                                parents=(x, w, b))
        assert_shape(out, (2, 3), "linear of (2, 4) and (4, 3)")
        assert_made_by_op(lambda: linear(x, w), "linear(x, weight) without a bias", op="linear", parents=(x, w))
        assert "linear" in BACKWARD_RULES, 'no backward rule is registered for "linear"'

    def test_values(self):
        """x @ weight + bias for x (2, 3, 4), (5, 4), (4,), with and without a bias."""
        w, b = random_array((4, 6), 210), random_array(6, 211)
        for shape in ((2, 3, 4), (5, 4), (4,)):
            x = random_array(shape, 212)
            got = linear(tensor(x), tensor(w), tensor(b))
            assert_tensor(got, f"linear of x {shape}", shape=shape[:-1] + (6,), dtype=np.float64)
            assert_close(got, x @ w + b, f"linear of x {shape} with a bias", atol=1e-12)
            assert_close(linear(tensor(x), tensor(w)), x @ w, f"linear of x {shape} without a bias", atol=1e-12)

    def test_float32_stays_float32(self):
        """float32 x, weight and bias give a float32 result."""
        got = linear(Tensor(random_array((3, 4), 213)), Tensor(random_array((4, 2), 214)), Tensor(np.ones(2)))
        assert_tensor(got, "linear of float32", shape=(3, 2), dtype=np.float32)

    def test_gradients_with_a_bias(self):
        """Gradients of x (2, 3, 4), weight (4, 5) and bias (5,) match float64 central differences."""
        gradcheck(linear, random_array((2, 3, 4), 220), random_array((4, 5), 221), random_array(5, 222),
                  seed=223, name="linear(x, weight, bias)")

    def test_gradients_without_a_bias_and_of_a_vector(self):
        """Without a bias (x (3, 4)), and for a single vector x (4,), the gradients match central differences."""
        gradcheck(lambda x, w: linear(x, w), random_array((3, 4), 224), random_array((4, 2), 225), seed=226,
                  name="linear(x, weight)")
        gradcheck(linear, random_array(4, 227), random_array((4, 3), 228), random_array(3, 229), seed=230,
                  name="linear of a vector")

    def test_a_transposed_input_and_gradient(self):
        """x arriving as a transposed view, and the upstream gradient arriving transposed: still central differences."""
        gradcheck(lambda x, w, b: linear(x.transpose(0, 1), w, b).transpose(0, 1), random_array((3, 2, 4), 235),
                  random_array((4, 5), 236), random_array(5, 237), seed=238, name="linear of a transposed view")

    def test_gradients_equal_kata_04s_two_ops(self):
        """For x (2, 3, 4) and an upstream gradient other than 1: the gradients of x @ weight + bias recorded as two ops."""
        x, w, b = random_array((2, 3, 4), 231), random_array((4, 5), 232), random_array(5, 233)
        upstream = random_array((2, 3, 5), 234)
        fused = [tensor(a, requires_grad=True) for a in (x, w, b)]
        linear(*fused).backward(upstream)
        plain = [tensor(a, requires_grad=True) for a in (x, w, b)]
        (plain[0] @ plain[1] + plain[2]).backward(upstream)
        for name, got, expected in zip(("x", "weight", "bias"), fused, plain):
            assert_close(got.grad, expected.grad, f"linear: the gradient of {name}", atol=1e-12)

    def test_shapes_are_checked(self):
        """x whose last axis is not weight's first, a 1-D weight, or a bias not (out,): ValueError naming the shapes."""
        x, w = tensor(np.ones((2, 4))), tensor(np.ones((4, 3)))
        raises_naming(lambda: linear(tensor(np.ones((2, 5))), w), ValueError, ["(2, 5)", "(4, 3)"], "linear of x (2, 5)")
        raises_naming(lambda: linear(x, tensor(np.ones(4))), ValueError, ["(4,)"], "linear with a 1-D weight")
        raises_naming(lambda: linear(x, w, tensor(np.ones(4))), ValueError, ["(4,)"], "linear with a (4,) bias")
        raises_naming(lambda: linear(x, w, tensor(np.ones((1, 3)))), ValueError, ["(1, 3)"], "linear with a (1, 3) bias")

    @pytest.mark.budget
    def test_forward_makes_one_output_array(self):
        """linear for x (16, 32, 64), weight (64, 256) and a bias, float32: peak memory at most 1.1 outputs.

        Hint: `x @ weight + bias` makes the product, then a second (..., out) array for the sum. Add the
        bias INTO the product's own buffer (`data += bias`): one output array, as a BLAS epilogue would.
        """
        x = tensor(random_array((16, 32, 64), 244), dtype=np.float32)
        w = tensor(random_array((64, 256), 245), dtype=np.float32)
        b = tensor(random_array(256, 246), dtype=np.float32)
        output_bytes = 16 * 32 * 256 * 4
        peak, out = peak_bytes(lambda: linear(x, w, b))
        assert_tensor(out, "linear of float32 (16, 32, 64)", shape=(16, 32, 256), dtype=np.float32)
        assert peak <= 1.1 * output_bytes, (
            f"linear of (16, 32, 64) @ (64, 256) + bias: peak memory {peak / output_bytes:.2f} outputs "
            f"({peak / 2**20:.2f} MiB); the budget is 1.1 outputs: one array for the product with the bias added into it")

    @pytest.mark.budget
    def test_backward_makes_one_weight_gradient(self):
        """The rule of linear for x (16, 32, 64), weight (64, 256): at most the three gradients plus one weight of memory.

        Hint: grad @ weight.T is fine, but x^T @ grad on (B, T, in) and (B, T, out) arrays is a stack of B products,
        a (B, in, out) array summed afterwards. Flatten every leading axis into rows first: one (in, out) product.
        """
        x = tensor(random_array((16, 32, 64), 240), dtype=np.float32, requires_grad=True)
        w = tensor(random_array((64, 256), 241), dtype=np.float32, requires_grad=True)
        b = tensor(random_array(256, 242), dtype=np.float32, requires_grad=True)
        out = linear(x, w, b)
        upstream = random_array(out.shape, 243, dtype=np.float32)
        peak, grads = peak_bytes(lambda: BACKWARD_RULES["linear"](out, upstream))
        needed = x.nbytes + w.nbytes + b.nbytes
        budget = needed + w.nbytes + 16 * 1024
        assert peak <= budget, (
            f"the backward rule of linear for x (16, 32, 64) and weight (64, 256): peak memory {peak / 1024:.0f} KiB; "
            f"its gradients take {needed / 1024:.0f} KiB and the budget is {budget / 1024:.0f} KiB")
        assert_shape(grads[1], (64, 256), "the gradient of the weight")


# -- fusion ---------------------------------------------------------------------------------------------------


def unfused_linear_gelu(x, w, b):
    """The same function from earlier katas' ops: matmul, add, GELU (three recorded ops)."""
    return gelu(x @ w + b)


@pytest.mark.checkpoint("fusion")
class TestFusion:
    def test_inputs_are_left_alone(self):
        """linear_gelu writes into none of x, weight and bias."""
        x, w, b = random_array((3, 4), 300), random_array((4, 5), 301), random_array(5, 302)
        copies = [a.copy() for a in (x, w, b)]
        linear_gelu(tensor(x), tensor(w), tensor(b))
        for name, before, after in zip(("x", "weight", "bias"), copies, (x, w, b)):
            assert_close(after, before, f"{name} after linear_gelu", rtol=0, atol=0)

    def test_one_recorded_op(self):
        """linear_gelu is one op, "linear_gelu", with parents (x, weight, bias), of shape (..., out)."""
        x, w, b = (tensor(random_array(s, seed), requires_grad=True) for s, seed in (((2, 3, 4), 303), ((4, 6), 304), (6, 305)))
        out = assert_made_by_op(lambda: linear_gelu(x, w, b), "linear_gelu(x (2, 3, 4), weight (4, 6), bias)",
                                op="linear_gelu", parents=(x, w, b))
        assert_shape(out, (2, 3, 6), "linear_gelu of (2, 3, 4) and (4, 6)")
        assert "linear_gelu" in BACKWARD_RULES, 'no backward rule is registered for "linear_gelu"'

    def test_values_equal_the_unfused_ops(self):
        """For x (2, 3, 4), (5, 4) and (4,): GELU(x @ weight + bias), as kata 02's gelu of kata 01's ops gives it."""
        w, b = random_array((4, 6), 310, scale=1.5), random_array(6, 311)
        for shape in ((2, 3, 4), (5, 4), (4,)):
            x = random_array(shape, 312)
            got = linear_gelu(tensor(x), tensor(w), tensor(b))
            assert_tensor(got, f"linear_gelu of x {shape}", shape=shape[:-1] + (6,), dtype=np.float64)
            if x.ndim >= 2:  # kata 01's matmul takes matrices
                assert_close(got, unfused_linear_gelu(tensor(x), tensor(w), tensor(b)), f"linear_gelu of x {shape}",
                             atol=1e-12)
            assert_close(got, numpy_gelu(x @ w + b), f"linear_gelu of x {shape} vs the formula", atol=1e-12)

    def test_at_the_kink_and_in_the_tails(self):
        """Pre-activations -30, -3, -0.5, 0, 0.5, 3, 30 (identity weight, zero bias): GELU's values, 0 at 0."""
        pre = np.array([[-30.0, -3.0, -0.5, 0.0, 0.5, 3.0, 30.0]])
        got = linear_gelu(tensor(pre), tensor(np.eye(7)), tensor(np.zeros(7)))
        assert_close(got, numpy_gelu(pre), "linear_gelu at -30 .. 30", atol=1e-12)
        assert got.data[0, 3] == 0 and abs(got.data[0, 6] - 30) < 1e-9 and abs(got.data[0, 0]) < 1e-9, (
            f"GELU(0) = 0, GELU(30) = 30 and GELU(-30) = 0 (to rounding); got {got.data[0, [3, 6, 0]]}")

    def test_the_bias_is_added_before_gelu(self):
        """A bias of 2 with a zero weight gives GELU(2) = 1.9546 everywhere, not GELU(0) + 2."""
        got = linear_gelu(tensor(np.ones((2, 3))), tensor(np.zeros((3, 4))), tensor(np.full(4, 2.0)))
        assert_close(got, np.full((2, 4), numpy_gelu(2.0)), "linear_gelu with a zero weight and a bias of 2")

    def test_float32_stays_float32(self):
        """float32 x, weight and bias give a float32 result, close to the float64 one."""
        x, w, b = random_array((4, 8), 313), random_array((8, 16), 314), random_array(16, 315)
        got = linear_gelu(Tensor(x), Tensor(w), Tensor(b))
        assert_tensor(got, "linear_gelu of float32", shape=(4, 16), dtype=np.float32)
        x, w, b = (a.astype(np.float32).astype(np.float64) for a in (x, w, b))  # the values float32 holds
        assert_close(got, numpy_gelu(x @ w + b), "linear_gelu of float32", rtol=1e-4, atol=1e-5)

    def test_shapes_are_checked(self):
        """x whose last axis is not weight's first, or a bias not (out,): ValueError naming the shapes."""
        w, b = tensor(np.ones((4, 3))), tensor(np.ones(3))
        raises_naming(lambda: linear_gelu(tensor(np.ones((2, 5))), w, b), ValueError, ["(2, 5)", "(4, 3)"],
                      "linear_gelu of x (2, 5)")
        raises_naming(lambda: linear_gelu(tensor(np.ones((2, 4))), w, tensor(np.ones(4))), ValueError, ["(4,)"],
                      "linear_gelu with a (4,) bias")

    @pytest.mark.budget
    def test_two_arrays_at_the_peak(self):
        """For x (16, 32, 64) and weight (64, 256), float32: peak memory at most 2.1 outputs (the unfused ops: about 6).

        Hint: every operator in `0.5 * pre * (1 + np.tanh(...))` makes a new (..., out) array. Two are needed (pre,
        kept for backward, and the output); compute every step of GELU inside the output's buffer with out= and
        in-place operators.
        """
        x = Tensor(random_array((16, 32, 64), 320))
        w, b = Tensor(random_array((64, 256), 321, scale=0.2)), Tensor(random_array(256, 322))
        output_bytes = 16 * 32 * 256 * 4
        unfused, _ = peak_bytes(lambda: unfused_linear_gelu(x, w, b))
        fused, out = peak_bytes(lambda: linear_gelu(x, w, b))
        assert_tensor(out, "linear_gelu of float32 (16, 32, 64)", shape=(16, 32, 256), dtype=np.float32)
        budget = 2.1 * output_bytes
        assert fused <= budget, (
            f"linear_gelu of (16, 32, 64) @ (64, 256): peak memory {fused / output_bytes:.2f} outputs "
            f"({fused / 2**20:.2f} MiB); the budget is 2.1 outputs ({budget / 2**20:.2f} MiB). The unfused ops "
            f"peak at {unfused / output_bytes:.2f} outputs")

    @pytest.mark.budget
    def test_keeps_only_the_pre_activation_for_backward(self):
        """After the forward, at most 2.05 outputs stay allocated: the output and the pre-activation (unfused: 3).

        Hint: the backward rule can recompute tanh(u) from the pre-activation; keeping it too costs another
        (..., out) array for every MLP until the backward pass.
        """
        x = Tensor(random_array((16, 32, 64), 330), requires_grad=True)
        w = Tensor(random_array((64, 256), 331, scale=0.2), requires_grad=True)
        b = Tensor(random_array(256, 332), requires_grad=True)
        output_bytes = 16 * 32 * 256 * 4
        kept, out = retained_bytes(lambda: linear_gelu(x, w, b))
        assert kept <= 2.05 * output_bytes, (
            f"linear_gelu of (16, 32, 64) @ (64, 256) keeps {kept / output_bytes:.2f} outputs alive for backward; "
            f"the budget is 2.05: the output and `pre`, nothing else")
        out.backward(np.ones(out.shape, dtype=np.float32))


# -- fusion_gradient -------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("fusion_gradient")
class TestFusionGradient:
    def test_gradcheck(self):
        """Gradients of x (2, 3, 4), weight (4, 5) and bias (5,) match float64 central differences."""
        gradcheck(linear_gelu, random_array((2, 3, 4), 400), random_array((4, 5), 401, scale=0.8),
                  random_array(5, 402), seed=403, name="linear_gelu")

    def test_gradcheck_of_a_matrix_and_a_vector(self):
        """x (5, 3) and a single vector x (3,): gradients match central differences."""
        gradcheck(linear_gelu, random_array((5, 3), 404), random_array((3, 4), 405), random_array(4, 406),
                  seed=407, name="linear_gelu of (5, 3)")
        gradcheck(linear_gelu, random_array(3, 408), random_array((3, 4), 409), random_array(4, 410),
                  seed=411, name="linear_gelu of a vector")

    def test_gradients_equal_the_unfused_ops(self):
        """x (2, 3, 4), an upstream gradient other than 1: the gradients kata 03's engine gives the unfused ops."""
        x, w, b = random_array((2, 3, 4), 420), random_array((4, 6), 421), random_array(6, 422)
        upstream = random_array((2, 3, 6), 423)
        fused = [tensor(a, requires_grad=True) for a in (x, w, b)]
        linear_gelu(*fused).backward(upstream)
        plain = [tensor(a, requires_grad=True) for a in (x, w, b)]
        unfused_linear_gelu(*plain).backward(upstream)
        for name, got, expected in zip(("x", "weight", "bias"), fused, plain):
            assert got.grad is not None, f"linear_gelu: backward() never reached {name}"
            assert_close(got.grad, expected.grad, f"linear_gelu: the gradient of {name}", atol=1e-12)

    def test_a_transposed_input_and_gradient(self):
        """x arriving as a transposed view, and the upstream gradient arriving transposed: still central differences."""
        gradcheck(lambda x, w, b: linear_gelu(x.transpose(0, 1), w, b).transpose(0, 1), random_array((3, 2, 4), 424),
                  random_array((4, 5), 425), random_array(5, 426), seed=427, name="linear_gelu of a transposed view")

    def test_the_slope_at_the_kink_and_in_the_tails(self):
        """At pre-activations -30 .. 30 the gradient of x is GELU'(pre): 0.5 at 0, 1 far right, 0 far left.

        Hint: GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx with du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
        Dropping the 0.5 x (1 - t^2) term, or the 3 * 0.044715 x^2 inside du/dx, is right at 0 and wrong elsewhere.
        """
        pre = np.array([[-30.0, -3.0, -1.2, -0.5, 0.0, 0.5, 1.2, 3.0, 30.0]])
        x = tensor(pre, requires_grad=True)
        linear_gelu(x, tensor(np.eye(9)), tensor(np.zeros(9))).backward(np.ones((1, 9)))
        assert_close(x.grad, numpy_gelu_slope(pre), "the gradient of linear_gelu at -30 .. 30", atol=1e-12)

    def test_the_bias_gradient_sums_every_row_of_every_batch(self):
        """Upstream gradient 1 on (3, 4, 2) outputs with a zero weight: the bias gets 12 * GELU'(bias), per unit."""
        b = tensor([0.3, -1.1], requires_grad=True)
        out = linear_gelu(tensor(random_array((3, 4, 5), 430)), tensor(np.zeros((5, 2))), b)
        out.backward(np.ones((3, 4, 2)))
        assert_shape(b.grad, (2,), "the gradient of the bias")
        assert_close(b.grad, 12 * numpy_gelu_slope(np.array([0.3, -1.1])), "the gradient of the bias", atol=1e-12)

    def test_float32_gradients_stay_float32(self):
        """float32 inputs get float32 gradients."""
        tensors = [Tensor(random_array(s, seed), requires_grad=True) for s, seed in (((3, 4), 440), ((4, 2), 441), (2, 442))]
        linear_gelu(*tensors).backward(np.ones((3, 2), dtype=np.float32))
        for name, t in zip(("x", "weight", "bias"), tensors):
            assert t.grad is not None and t.grad.dtype == np.float32, (
                f"the gradient of {name} should be float32, got {None if t.grad is None else t.grad.dtype}")


# -- fused_attention ----------------------------------------------------------------------------------------------


def kata_12_attention(qkv: Tensor, heads: int) -> Tensor:
    """Kata 12's way from qkv (B, T, 3C) to the merged heads: slices, split_heads, causal attention, merge_heads."""
    dim = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[..., part * dim:(part + 1) * dim], heads) for part in range(3))
    return merge_heads(scaled_dot_product_attention(q, k, v, causal=True))


@pytest.mark.checkpoint("fused_attention")
class TestFusedAttention:
    def test_input_is_left_alone(self):
        """causal_self_attention does not write into qkv."""
        qkv = random_array((2, 4, 12), 500)
        before = qkv.copy()
        causal_self_attention(tensor(qkv), 2)
        assert_close(qkv, before, "qkv after causal_self_attention", rtol=0, atol=0)

    def test_one_recorded_op(self):
        """causal_self_attention(qkv (2, 4, 12), heads=2) is one op, "causal_self_attention", parent qkv, shape (2, 4, 4)."""
        qkv = tensor(random_array((2, 4, 12), 501), requires_grad=True)
        out = assert_made_by_op(lambda: causal_self_attention(qkv, 2), "causal_self_attention(qkv (2, 4, 12), 2)",
                                op="causal_self_attention", parents=(qkv,))
        assert_tensor(out, "causal_self_attention of (2, 4, 12)", shape=(2, 4, 4), dtype=np.float64)
        assert "causal_self_attention" in BACKWARD_RULES, 'no backward rule is registered for "causal_self_attention"'

    def test_equals_kata_12s_path(self):
        """For 1, 2 and 4 heads, B = 3, T = 5, C = 8: the slices, heads and causal attention of kata 12.

        Hint: the last axis of qkv is q (C columns), then k, then v, and inside each, head 0's head_dim columns,
        then head 1's. Reshape to (B, T, 3, heads, head_dim), not (B, T, heads, 3, head_dim).
        """
        qkv = random_array((3, 5, 24), 510)
        for heads in (1, 2, 4):
            got = causal_self_attention(tensor(qkv), heads)
            assert_close(got, kata_12_attention(tensor(qkv), heads), f"causal_self_attention with {heads} heads",
                         atol=1e-12)

    def test_causal(self):
        """Changing token 3's q, k and v leaves the outputs of tokens 0..2 exactly as they were."""
        qkv = random_array((2, 6, 12), 520)
        before = causal_self_attention(tensor(qkv), 2).data
        qkv[:, 3] += 5.0
        after = causal_self_attention(tensor(qkv), 2).data
        assert_close(after[:, :3], before[:, :3], "outputs 0..2 after changing token 3", rtol=0, atol=1e-12)
        assert not np.allclose(after[:, 3:], before[:, 3:]), "outputs 3..5 should change when token 3 changes"

    def test_one_token_attends_to_itself(self):
        """With T = 1, each token's output is its own value vector v."""
        qkv = random_array((4, 1, 12), 530)
        assert_close(causal_self_attention(tensor(qkv), 2), qkv[..., 8:], "causal_self_attention of one token")

    def test_float32_stays_float32(self):
        """float32 qkv gives a float32 output, close to the float64 one."""
        qkv = random_array((2, 5, 24), 540)
        got = causal_self_attention(Tensor(qkv), 4)
        assert_tensor(got, "causal_self_attention of float32", shape=(2, 5, 8), dtype=np.float32)
        assert_close(got, kata_12_attention(tensor(qkv), 4), "causal_self_attention of float32", rtol=1e-4, atol=1e-5)

    def test_gradcheck(self):
        """The gradient of qkv (2, 3, 12), 2 heads, matches float64 central differences on every element."""
        gradcheck(lambda qkv: causal_self_attention(qkv, 2), random_array((2, 3, 12), 550), seed=551,
                  name="causal_self_attention")

    def test_a_transposed_input_and_gradient(self):
        """qkv arriving as a transposed view (T, B, 3C -> B, T, 3C), the gradient arriving transposed: central differences."""
        gradcheck(lambda qkv: causal_self_attention(qkv.transpose(0, 1), 2).transpose(0, 1),
                  random_array((3, 2, 12), 555), seed=556, name="causal_self_attention of a transposed view")

    def test_gradient_equals_kata_12s_path(self):
        """qkv (3, 5, 24), 4 heads, an upstream gradient other than 1: the gradient kata 12's ops give it."""
        qkv, upstream = random_array((3, 5, 24), 560), random_array((3, 5, 8), 561)
        fused, plain = tensor(qkv, requires_grad=True), tensor(qkv, requires_grad=True)
        causal_self_attention(fused, 4).backward(upstream)
        kata_12_attention(plain, 4).backward(upstream)
        assert fused.grad is not None, "causal_self_attention: backward() never reached qkv"
        assert_shape(fused.grad, (3, 5, 24), "the gradient of qkv")
        for part, name in enumerate("qkv"):
            columns = slice(part * 8, (part + 1) * 8)
            assert_close(fused.grad[..., columns], plain.grad[..., columns],
                         f"causal_self_attention: the gradient of the {name} columns of qkv", atol=1e-12)

    def test_shapes_are_checked(self):
        """A 2-D qkv, a last axis that is not 3 x heads x head_dim, or heads of 0: ValueError naming the shape."""
        raises_naming(lambda: causal_self_attention(tensor(np.ones((4, 12))), 2), ValueError, ["(4, 12)"],
                      "causal_self_attention of a 2-D qkv")
        raises_naming(lambda: causal_self_attention(tensor(np.ones((1, 4, 12))), 3), ValueError, ["(1, 4, 12)"],
                      "causal_self_attention(qkv (1, 4, 12), heads=3): C = 4 does not split into 3 heads")
        raises_naming(lambda: causal_self_attention(tensor(np.ones((1, 4, 10))), 1), ValueError, ["(1, 4, 10)"],
                      "causal_self_attention of a last axis of 10, not a multiple of 3")
        raises_naming(lambda: causal_self_attention(tensor(np.ones((1, 4, 12))), 0), ValueError, ["heads=0"],
                      "causal_self_attention with heads=0")


# -- in_place -----------------------------------------------------------------------------------------------------


def parameters_with_gradients(seed: int, dtype=np.float32, shapes=((64, 64), (4096,), (32, 128))):
    """Parameters (Tensors that require grad) of 16 KiB each in float32, without gradients yet."""
    return [Tensor(random_array(shape, seed + index, dtype=dtype), dtype=dtype, requires_grad=True)
            for index, shape in enumerate(shapes)]


def set_gradients(params, seed: int) -> None:
    for index, p in enumerate(params):
        p.grad = random_array(p.shape, seed + index, dtype=p.dtype)


@pytest.mark.checkpoint("in_place")
class TestInPlace:
    def test_gradients_are_left_alone(self):
        """A step reads p.grad and never writes into it: the gradients are the same after three steps.

        Hint: p.grad is not scratch space; the caller may still read it (to log its norm, to clip it, to accumulate
        into it). Keep the temporaries in the optimizer's own buffers.
        """
        params = parameters_with_gradients(590)
        optimizer = InPlaceAdam(params, lr=0.01)
        for step in range(3):
            set_gradients(params, 595 + step)
            copies = [p.grad.copy() for p in params]
            optimizer.step()
            for index, (p, before) in enumerate(zip(params, copies)):
                assert_close(p.grad, before, f"the gradient of parameter {index} after step {step + 1}", rtol=0, atol=0)

    def test_same_updates_as_adam(self):
        """Three steps with lr 0.01, betas (0.8, 0.95), eps 1e-6, float64: the parameters kata 06's Adam reaches."""
        ours, theirs = parameters_with_gradients(600, np.float64), parameters_with_gradients(600, np.float64)
        mine = InPlaceAdam(ours, lr=0.01, betas=(0.8, 0.95), eps=1e-6)
        adam = Adam(theirs, lr=0.01, betas=(0.8, 0.95), eps=1e-6)
        for step in range(3):
            set_gradients(ours, 610 + 10 * step)
            set_gradients(theirs, 610 + 10 * step)
            mine.step()
            adam.step()
            for index, (p, q) in enumerate(zip(ours, theirs)):
                assert_close(p.data, q.data, f"parameter {index} after step {step + 1} (InPlaceAdam vs Adam)",
                             rtol=1e-12, atol=1e-14)

    def test_float32_stays_float32_and_matches_adam(self):
        """float32 parameters stay float32 arrays, equal to Adam's after 3 default steps."""
        ours, theirs = parameters_with_gradients(620), parameters_with_gradients(620)
        mine, adam = InPlaceAdam(ours), Adam(theirs)
        for step in range(3):
            set_gradients(ours, 630 + step)
            set_gradients(theirs, 630 + step)
            mine.step()
            adam.step()
        for index, (p, q) in enumerate(zip(ours, theirs)):
            assert p.data.dtype == np.float32, f"parameter {index}: float32 became {p.data.dtype}"
            assert_close(p.data, q.data, f"float32 parameter {index} after 3 steps", rtol=1e-6, atol=1e-7)

    def test_writes_into_the_same_arrays(self):
        """Every step updates p.data, m and v where they are: the same array objects before and after.

        Hint: `p.data = p.data - ...` makes a new array and puts it in place of the parameter's; anything that
        holds the old one (a view, a tied weight, an optimizer's reference) no longer sees the updates.
        """
        params = parameters_with_gradients(640)
        arrays = [p.data for p in params]
        optimizer = InPlaceAdam(params, lr=0.1)
        set_gradients(params, 641)
        optimizer.step()
        moments = [(optimizer.state[i]["exp_avg"], optimizer.state[i]["exp_avg_sq"]) for i in range(len(params))]
        for step in range(2):
            set_gradients(params, 650 + step)
            optimizer.step()
        for index, p in enumerate(params):
            assert p.data is arrays[index], f"parameter {index}: .data was replaced by a new array instead of updated"
            assert optimizer.state[index]["exp_avg"] is moments[index][0], f"parameter {index}: m was replaced"
            assert optimizer.state[index]["exp_avg_sq"] is moments[index][1], f"parameter {index}: v was replaced"
            assert optimizer.state[index]["step"] == 3, f"parameter {index}: step {optimizer.state[index]['step']} after 3"

    def test_state_is_adams_and_the_scratch_is_not_saved(self):
        """After a step: exactly Adam's state (m, v and the step, 2x the parameter bytes) and Adam's state_dict."""
        params, others = parameters_with_gradients(660), parameters_with_gradients(660)
        optimizer, adam = InPlaceAdam(params), Adam(others)
        set_gradients(params, 661)
        set_gradients(others, 661)
        optimizer.step()
        adam.step()
        parameter_bytes = sum(p.nbytes for p in params)
        assert optimizer.state_bytes() == 2 * parameter_bytes, (
            f"state_bytes() is {optimizer.state_bytes()}; m and v make {2 * parameter_bytes}. Keep the scratch "
            f"buffers in self.scratch, not in self.state: they are work space, not state to save")
        ours, theirs = optimizer.state_dict(), adam.state_dict()
        assert sorted(ours) == sorted(theirs), f"InPlaceAdam saves {sorted(ours)}; Adam saves {sorted(theirs)}"
        for key in theirs:
            if key != "optimizer":
                assert_close(ours[key], theirs[key], f"state_dict()[{key!r}] vs Adam's", rtol=1e-6, atol=1e-7)

    def test_resumes_after_load_state_dict(self):
        """Two steps, save, load into a fresh InPlaceAdam, a third step: the parameters of three steps in a row."""
        straight, resumed = parameters_with_gradients(670), parameters_with_gradients(670)
        first = InPlaceAdam(straight, lr=0.05)
        second = InPlaceAdam(resumed, lr=0.05)
        for step in range(2):
            for params in (straight, resumed):
                set_gradients(params, 680 + step)
            first.step()
            second.step()
        fresh = InPlaceAdam(resumed, lr=0.05)
        fresh.load_state_dict(second.state_dict())
        for params in (straight, resumed):
            set_gradients(params, 690)
        first.step()
        fresh.step()
        for index, (p, q) in enumerate(zip(straight, resumed)):
            assert_close(q.data, p.data, f"parameter {index} after a resumed third step", rtol=1e-6, atol=1e-7)

    def test_parameters_without_gradients_are_skipped(self):
        """A parameter whose grad is None is not moved and gets no state."""
        params = parameters_with_gradients(700)
        before = params[1].data.copy()
        optimizer = InPlaceAdam(params)
        set_gradients(params, 701)
        params[1].grad = None
        optimizer.step()
        assert_close(params[1].data, before, "a parameter without a gradient after a step", rtol=0, atol=0)
        assert not optimizer.state[1], f"a parameter without a gradient got state {list(optimizer.state[1])}"

    @pytest.mark.budget
    def test_no_allocation_after_the_first_step(self):
        """Steps 2 to 4 over 12,288 float32 parameters (48 KiB): peak memory under 4 KiB each (kata 06's Adam: 16 KiB).

        Hint: every expression that is not an in-place operator or an out= call makes a new array, and so does
        np.empty_like inside the step. Make the scratch buffer once per parameter, on its first update.
        """
        params = parameters_with_gradients(710)
        optimizer = InPlaceAdam(params)
        set_gradients(params, 711)
        first, _ = peak_bytes(optimizer.step)
        for step in range(3):
            set_gradients(params, 720 + step)
            peak, _ = peak_bytes(optimizer.step)
            assert peak <= 4096, (
                f"InPlaceAdam step {step + 2}: peak memory {peak:,} bytes; the budget is 4,096 (the parameters take "
                f"{sum(p.nbytes for p in params):,}, the first step {first:,})")


# -- fast_path -------------------------------------------------------------------------------------------------


def tiny_config(**changes) -> GPTConfig:
    fields = dict(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8)
    fields.update(changes)
    return GPTConfig(**fields)


def float64_gpt(seed: int, **changes) -> GPT:
    """A tiny GPT in float64, its LayerNorms and biases moved off 1 and 0 so that mistakes in using them show."""
    model = GPT(tiny_config(**changes), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for name, parameter in model.named_parameters():
        parameter.data = parameter.data.astype(np.float64)
        if name.endswith("bias"):
            parameter.data += 0.1 * rng.standard_normal(parameter.shape)
        elif parameter.ndim == 1:
            parameter.data += 0.3 * rng.standard_normal(parameter.shape)
    return model


def own_forwards(model) -> list:
    """The modules of `model` that hold a forward of their own (in their instance __dict__)."""
    return [type(module).__name__ for module in model.modules() if "forward" in vars(module)]


class Boom(Exception):
    """An error raised inside a with-block on purpose."""


class ConcatCache:
    """The simplest KV cache: it keeps every key and value it is given and appends new ones on the T axis."""

    def __init__(self):
        self.k = self.v = None

    def append(self, k, v):
        if self.k is not None:
            k = Tensor(np.concatenate([self.k.data, k.data], axis=2), dtype=k.dtype)
            v = Tensor(np.concatenate([self.v.data, v.data], axis=2), dtype=v.dtype)
        self.k, self.v = k, v
        return k, v


FUSED_OPS = {"linear", "linear_gelu", "causal_self_attention"}
UNFUSED_OPS = {"matmul", "gelu", "getitem", "transpose", "scaled_dot_product_attention"}


@pytest.mark.checkpoint("fast_path")
class TestFastPath:
    def test_fast_linear_forward(self):
        """fast_linear_forward(layer, x) is one "linear" op equal to the layer's own forward, with or without a bias."""
        for bias in (True, False):
            layer = Linear(4, 3, bias=bias, rng=np.random.default_rng(800))
            x = Tensor(random_array((2, 5, 4), 801), requires_grad=True)
            got = assert_made_by_op(lambda: fast_linear_forward(layer, x), f"fast_linear_forward (bias={bias})", op="linear")
            assert_close(got, layer(x), f"fast_linear_forward vs Linear.forward (bias={bias})", rtol=1e-6, atol=1e-6)

    def test_fast_mlp_forward(self):
        """fast_mlp_forward(mlp, x) equals the MLP's own forward and goes through linear_gelu."""
        mlp = MLP(8, rng=np.random.default_rng(810))
        x = Tensor(random_array((2, 3, 8), 811), requires_grad=True)
        got = fast_mlp_forward(mlp, x)
        assert_close(got, mlp(x), "fast_mlp_forward vs MLP.forward", rtol=1e-5, atol=1e-6)
        ops = graph_ops(got)
        assert ops["linear_gelu"] == 1, f"fast_mlp_forward should record one linear_gelu op; recorded {dict(ops)}"

    def test_fast_block_forward(self):
        """fast_block_forward(block, x) equals the block's own forward (float64), with one causal_self_attention op;
        with a mask, a cache or causal=False it gives the block's own result."""
        block = Block(8, 2, rng=np.random.default_rng(820))
        for p in block.parameters():
            p.data = p.data.astype(np.float64)
        x = tensor(random_array((2, 5, 8), 821), requires_grad=True)
        got = fast_block_forward(block, x)
        assert_close(got, block(x), "fast_block_forward vs Block.forward", atol=1e-12)
        assert graph_ops(got)["causal_self_attention"] == 1, (
            f"fast_block_forward should record one causal_self_attention op; recorded {dict(graph_ops(got))}")
        assert_close(fast_block_forward(block, x, causal=False), block(x, causal=False),
                     "fast_block_forward with causal=False", atol=1e-12)
        mask = np.ones((2, 1, 1, 5), dtype=bool)
        mask[0, ..., 3:] = False
        assert_close(fast_block_forward(block, x, mask=mask), block(x, mask=mask), "fast_block_forward with a mask",
                     atol=1e-12)

    def test_inside_the_block_the_model_runs_the_fused_ops(self):
        """A 2-layer GPT inside fast_path: 7 linear, 2 linear_gelu, 2 causal_self_attention ops and none of
        matmul, gelu, getitem, transpose or scaled_dot_product_attention; outside, kata 13's ops again."""
        model = GPT(tiny_config(), rng=np.random.default_rng(830))
        ids = random_ids((2, 6), 7, 831)
        with fast_path(model) as inside:
            assert inside is model, "fast_path(model) should yield the model itself"
            fast = graph_ops(model(ids))
        expected = {"linear": 7, "linear_gelu": 2, "causal_self_attention": 2}
        got = {op: fast[op] for op in expected}
        assert got == expected, f"inside fast_path the logits' graph should hold {expected}; it holds {dict(fast)}"
        left = sorted(UNFUSED_OPS & set(fast))
        assert not left, f"inside fast_path the graph still records {left}: some module kept its unfused forward"
        plain = graph_ops(model(ids))
        assert not FUSED_OPS & set(plain), f"after fast_path the model still records fused ops: {dict(plain)}"
        assert not own_forwards(model), f"after fast_path these modules still hold a forward: {own_forwards(model)}"

    def test_same_logits_and_gradients(self):
        """A float64 GPT, untied and tied: the same logits and the same gradient of every parameter as outside."""
        for tied in (False, True):
            model = float64_gpt(840, tie_weights=tied)
            ids, targets = random_ids((3, 6), 7, 841), random_ids(18, 7, 842)

            def loss_and_gradients():
                model.zero_grad()
                logits = model(ids)
                cross_entropy(logits.reshape(-1, 7), targets).backward()
                return logits.data, {name: p.grad.copy() for name, p in model.named_parameters()}

            plain_logits, plain_grads = loss_and_gradients()
            with fast_path(model):
                fast_logits, fast_grads = loss_and_gradients()
            assert_close(fast_logits, plain_logits, f"logits inside fast_path (tied={tied})", atol=1e-12)
            for name, grad in plain_grads.items():
                assert_close(fast_grads[name], grad, f"the gradient of {name} inside fast_path (tied={tied})",
                             atol=1e-12)

    def test_same_losses_over_training_steps(self):
        """The small float32 GPT, 3 steps: kata 13's step with Adam and the fast path with InPlaceAdam lose the same."""
        config = tiny_config(vocab_size=11, block_size=8, n_embd=16)
        plain, fast = GPT(config, rng=np.random.default_rng(850)), GPT(config, rng=np.random.default_rng(850))
        ids, targets = random_ids((4, 8), 11, 851), random_ids(32, 11, 852)
        adam, in_place = Adam(plain.parameters(), lr=0.01), InPlaceAdam(fast.parameters(), lr=0.01)
        for step in range(3):
            adam.zero_grad()
            loss = cross_entropy(plain(ids).reshape(-1, 11), targets)
            loss.backward()
            adam.step()
            in_place.zero_grad()
            with fast_path(fast):
                fast_loss = cross_entropy(fast(ids).reshape(-1, 11), targets)
                fast_loss.backward()
            in_place.step()
            assert_close(fast_loss, loss, f"the loss at step {step + 1}, fast path vs kata 13", rtol=1e-5, atol=1e-6)

    def test_restored_after_an_error(self):
        """An error inside the with-block leaves the model as it was: no module keeps a fast forward."""
        model = GPT(tiny_config(), rng=np.random.default_rng(860))
        ids = random_ids((1, 4), 7, 861)
        with pytest.raises(Boom):
            with fast_path(model):
                assert own_forwards(model), "inside fast_path some modules should hold a fast forward of their own"
                raise Boom()
        assert not own_forwards(model), f"after an error in fast_path these modules kept a forward: {own_forwards(model)}"
        assert not FUSED_OPS & set(graph_ops(model(ids))), "after an error the model still records fused ops"

    def test_every_block_mlp_and_linear_and_nothing_else(self):
        """A 2-layer GPT has 2 Blocks, 2 MLPs and 9 Linears: those 13 get a forward of their own, nothing else."""
        model = GPT(tiny_config(), rng=np.random.default_rng(870))
        with fast_path(model):
            counts = collections.Counter(own_forwards(model))
        assert counts == {"Block": 2, "MLP": 2, "Linear": 9}, (
            f"inside fast_path these modules hold a forward of their own: {dict(counts)}; expected the 2 Blocks, "
            f"2 MLPs and 9 Linears")

    def test_nested_fast_paths(self):
        """Leaving an inner fast_path of the same model leaves the outer one in force until it ends."""
        model = GPT(tiny_config(), rng=np.random.default_rng(880))
        ids = random_ids((1, 5), 7, 881)
        with fast_path(model):
            with fast_path(model):
                pass
            assert graph_ops(model(ids))["linear_gelu"] == 2, "after an inner fast_path ends, the outer one should hold"
        assert not own_forwards(model), f"after both fast_paths these modules kept a forward: {own_forwards(model)}"

    def test_decoding_with_caches_still_works(self):
        """Inside fast_path, decoding with a KV cache per block gives the logits of the full forward."""
        model = float64_gpt(890)
        ids = random_ids((2, 6), 7, 891)
        full = model(ids).data
        with fast_path(model):
            caches = [ConcatCache() for _ in range(model.config.n_layer)]
            parts = [model(ids[:, :4], caches=caches), model(ids[:, 4:5], start=4, caches=caches),
                     model(ids[:, 5:6], start=5, caches=caches)]
        got = np.concatenate([part.data for part in parts], axis=1)
        assert_close(got, full, "logits decoded with caches inside fast_path vs the full forward", atol=1e-12)


# -- optimize ----------------------------------------------------------------------------------------------------

BATCH, LENGTH, VOCAB = 16, 32, 65
SMALL = dict(vocab_size=VOCAB, block_size=LENGTH, n_layer=2, n_head=4, n_embd=64)
# Kata 13's table counts B T (4 C + L (30 C + H T) + 2 V) numbers of activations; on the fast path each block
# keeps 20 C + H T per token instead of 30 C + H T (the lesson's table).
KATA_13_ACTIVATION_BYTES = 4 * BATCH * LENGTH * (4 * 64 + 2 * (30 * 64 + 4 * LENGTH) + 2 * VOCAB)
FAST_ACTIVATION_BYTES = 4 * BATCH * LENGTH * (4 * 64 + 2 * (20 * 64 + 4 * LENGTH) + 2 * VOCAB)
ACTIVATION_BUDGET = 1.1  # the reference keeps about 1.00x the fast-path count
# The fast training step over kata 13's, timed in a fresh process with glibc's policy held fixed (FAST_STEP_CHILD):
# the reference measures 0.26-0.81 there on a loaded two-core machine (0.4-0.5 idle). In a long-lived process
# whose allocator keeps freed memory it is only 0.87-0.95, which is why the step is not timed in the test's own
# process. The op census (fast_path) and the activation bytes above check the rest deterministically.
TIME_BUDGET = 0.95


def measure_the_fast_step() -> float:
    """The fast step's time over kata 13's, asserted against TIME_BUDGET (run by FAST_STEP_CHILD)."""
    ids, targets = random_ids((BATCH, LENGTH), VOCAB, 900), random_ids(BATCH * LENGTH, VOCAB, 901)
    plain, fast = GPT(GPTConfig(**SMALL), rng=np.random.default_rng(920)), GPT(GPTConfig(**SMALL), rng=np.random.default_rng(920))
    adam, in_place = Adam(plain.parameters(), lr=1e-3), InPlaceAdam(fast.parameters(), lr=1e-3)

    def kata_13_step():
        adam.zero_grad()
        cross_entropy(plain(ids).reshape(-1, VOCAB), targets).backward()
        adam.step()

    def fast_step():
        in_place.zero_grad()
        with fast_path(fast):
            cross_entropy(fast(ids).reshape(-1, VOCAB), targets).backward()
        in_place.step()

    return assert_time_ratio(fast_step, kata_13_step, TIME_BUDGET,
                             f"a fast training step vs kata 13's, GPT {SMALL}, B={BATCH}",
                             advice="count the ops of the loss's graph inside fast_path: an unfused op left is time left")


# Most of what the fast step saves is memory the allocator must fetch again, and how much that costs
# depends on what the allocator has done before: in a long-lived process glibc raises its thresholds
# and keeps freed memory, and the fast step is only 5-11% faster; in a fresh one it is about twice as
# fast. So the step is timed in a fresh process, with MALLOC_MMAP_THRESHOLD_ set, which holds glibc's
# policy fixed: large arrays come from the heap, and freed memory at its top goes back to the system.
FAST_STEP_CHILD = """
import sys
root, kata_dir, mode, learner, student_dir = sys.argv[1:6]
sys.path[:0] = [root, kata_dir]
from harness import implementation
implementation.install(mode, [kata for kata in learner.split(",") if kata], student_dir)
import test_acceleration
try:
    test_acceleration.measure_the_fast_step()
except AssertionError as error:
    print(error)
    sys.exit(1)
except NotImplementedError as error:
    print(error)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def small_batch():
    return random_ids((BATCH, LENGTH), VOCAB, 900), random_ids(BATCH * LENGTH, VOCAB, 901)


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    @pytest.mark.budget
    def test_the_fast_path_keeps_fewer_activations(self, small_batch):
        """The small GPT's forward and loss on the fast path keep at most 1.1x the lesson's 6.56 MB (kata 13: 9.18 MB)."""
        ids, targets = small_batch
        model = GPT(GPTConfig(**SMALL), rng=np.random.default_rng(910))
        with fast_path(model):
            kept, loss = retained_bytes(lambda: cross_entropy(model(ids).reshape(-1, VOCAB), targets))
            budget = ACTIVATION_BUDGET * FAST_ACTIVATION_BYTES
            assert kept <= budget, (
                f"the fast forward keeps {kept / 1e6:.2f} MB alive for backward; the lesson counts "
                f"{FAST_ACTIVATION_BYTES / 1e6:.2f} MB (kata 13's ops: {KATA_13_ACTIVATION_BYTES / 1e6:.2f} MB) and the "
                f"budget is {budget / 1e6:.2f} MB. Look for a fused op that saves more than it needs")
            loss.backward()

    @pytest.mark.budget
    def test_the_fast_training_step_is_faster(self):
        """A training step on the fast path with InPlaceAdam takes at most 0.95x kata 13's step with Adam (B=16, T=32).

        Measured in a fresh process whose allocator keeps one policy throughout (see FAST_STEP_CHILD).
        """
        finder = implementation.current()
        manifest = manifest_module.load()
        learner = [manifest.kata_for_module(module).id for module in sorted(finder.learner_modules)]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}
        done = subprocess.run([sys.executable, "-c", FAST_STEP_CHILD, str(manifest_module.ROOT),
                               str(Path(__file__).resolve().parent), finder.mode, ",".join(learner),
                               str(finder.student_dir)],
                              env=env, capture_output=True, text=True, timeout=25, stdin=subprocess.DEVNULL)
        said = (done.stdout + done.stderr).strip()[-2000:]
        if done.returncode == 3:
            raise NotImplementedError(f"timing the fast step: {said}")
        assert done.returncode == 0, said

"""Kata 11 · Embeddings: the ordered suite. Run it with `python -m pytest katas/11_embeddings`."""

import math

import numpy as np
import pytest

from harness.budgets import assert_time_ratio, peak_bytes
from harness.checks import assert_close, assert_made_by_op, assert_shape, assert_tensor, gradcheck, raises_naming
from tinytorch.autograd import BACKWARD_RULES
from tinytorch.embeddings import (
    POSITION_KINDS, Embedding, PositionalEmbedding, TokenAndPositionEmbedding, check_ids, embedding,
    sinusoidal_positions,
)
from tinytorch.layers import Parameter
from tinytorch.tensor import Tensor


def random_array(shape, seed: int, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def random_ids(shape, vocabulary: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocabulary, size=shape)


def table(rows: int, dim: int, seed: int, dtype=np.float64, requires_grad=False) -> Tensor:
    """A (rows, dim) Tensor of random values: an embedding table to look up."""
    return Tensor(random_array((rows, dim), seed, dtype), dtype=dtype, requires_grad=requires_grad)


def one_hot(ids: np.ndarray, vocabulary: int) -> np.ndarray:
    """Only the tests build one-hot matrices, and only small ones: (*ids.shape, vocabulary) float64."""
    return np.eye(vocabulary)[ids]


def formula_positions(length: int, dim: int, start: int = 0, base: float = 10000.0) -> np.ndarray:
    """The sinusoidal table, one number at a time from the paper's formula, in float64."""
    values = np.zeros((length, dim))
    for row in range(length):
        t = start + row
        for column in range(dim):
            angle = t / base ** (2 * (column // 2) / dim)
            values[row, column] = math.sin(angle) if column % 2 == 0 else math.cos(angle)
    return values


def backward_of(out: Tensor, grad: np.ndarray):
    """The gradients the "embedding" backward rule returns for `out` and upstream `grad`."""
    return BACKWARD_RULES["embedding"](out, grad)


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.checkpoint("ids")
class TestIds:
    def test_integer_ids_come_back_as_an_index_array(self):
        """check_ids([[3, 0], [9, 3]], 10) returns the same ids as an integer numpy array of shape (2, 2)."""
        ids = check_ids(np.array([[3, 0], [9, 3]]), 10)
        assert isinstance(ids, np.ndarray) and np.issubdtype(ids.dtype, np.integer), (
            f"check_ids should return an integer numpy array, got {type(ids).__name__} of dtype "
            f"{getattr(ids, 'dtype', None)}")
        assert_shape(ids, (2, 2), "check_ids of a (2, 2) array")
        assert np.array_equal(ids, [[3, 0], [9, 3]]), f"check_ids changed the ids: got {ids.tolist()}"

    def test_lists_tensors_and_whole_floats(self):
        """A list, a float32 Tensor of whole numbers, a float64 array and a single int are all accepted as ids."""
        for given in ([4, 1, 1], Tensor([4.0, 1.0, 1.0]), np.array([4.0, 1.0, 1.0])):
            ids = check_ids(given, 5)
            assert np.issubdtype(np.asarray(ids).dtype, np.integer), (
                f"check_ids({given!r}, 5) should give integers, got dtype {np.asarray(ids).dtype}")
            assert np.array_equal(ids, [4, 1, 1]), f"check_ids({given!r}, 5) gave {np.asarray(ids).tolist()}"
        single = check_ids(3, 5)
        assert np.shape(single) == () and int(single) == 3, f"check_ids(3, 5) should be a 0-d 3, got {single!r}"

    def test_id_too_large_names_the_id_its_position_and_the_vocabulary(self):
        """An id of 12 at position (1, 1) for a vocabulary of 10 is an IndexError naming 12, (1, 1) and 10."""
        raises_naming(lambda: check_ids(np.array([[1, 2], [3, 12]]), 10), IndexError, ["12", "(1, 1)", "10"],
                      "check_ids with id 12 for a vocabulary of 10")

    def test_id_equal_to_the_vocabulary_size_is_out_of_range(self):
        """With 10 ids the last valid one is 9: id 10 is an IndexError, id 9 is fine."""
        raises_naming(lambda: check_ids(np.array([0, 10]), 10), IndexError, ["10"],
                      "check_ids with id 10 for a vocabulary of 10 (valid: 0..9)")
        assert np.array_equal(check_ids(np.array([9, 0]), 10), [9, 0]), "id 9 is valid for a vocabulary of 10"

    def test_negative_id_is_out_of_range(self):
        """An id of -1 is an IndexError naming -1 and the vocabulary size: numpy would quietly read the last row.

        Hint: `table[-1]` is valid numpy (the last row), so no error comes by itself; check ids < 0 yourself.
        """
        raises_naming(lambda: check_ids(np.array([[0, 1], [-1, 2]]), 7), IndexError, ["-1", "7"],
                      "check_ids with id -1 for a vocabulary of 7")

    def test_fractional_id_is_a_value_error(self):
        """An id of 2.5 is a ValueError naming 2.5 and the vocabulary size, not a silent round-down to 2."""
        raises_naming(lambda: check_ids(np.array([1.0, 2.5, 3.0]), 8), ValueError, ["2.5", "8"],
                      "check_ids with id 2.5 for a vocabulary of 8")

    def test_nan_and_inf_ids_are_value_errors(self):
        """A nan or an inf among float ids is a ValueError naming it, not an IndexError or a wrapped integer."""
        raises_naming(lambda: check_ids(np.array([1.0, np.nan]), 8), ValueError, ["nan"], "check_ids with id nan")
        raises_naming(lambda: check_ids(np.array([np.inf, 1.0]), 8), ValueError, ["inf"], "check_ids with id inf")

    def test_huge_float_id_is_out_of_range_not_wrapped(self):
        """The float id 1e20 is an IndexError for a vocabulary of 8: checked before any cast to integers.

        Hint: `np.array([1e20]).astype(np.intp)` is a large negative number; compare the values first, convert last.
        """
        raises_naming(lambda: check_ids(np.array([1.0, 1e20]), 8), IndexError, ["1e+20", "8"],
                      "check_ids with the float id 1e20")

    def test_boolean_ids_are_a_type_error(self):
        """A boolean array is not a list of ids (True would read row 1): a TypeError naming the dtype bool."""
        raises_naming(lambda: check_ids(np.array([True, False]), 4), TypeError, ["bool"], "check_ids of booleans")

    def test_empty_ids(self):
        """No ids at all, shape (2, 0), is not an error: check_ids returns an empty integer array of that shape."""
        ids = check_ids(np.zeros((2, 0), dtype=np.int64), 5)
        assert_shape(ids, (2, 0), "check_ids of a (2, 0) array")

    def test_ids_are_left_alone(self):
        """check_ids does not change the caller's array."""
        given = np.array([[1.0, 2.0], [3.0, 0.0]])
        check_ids(given, 4)
        assert np.array_equal(given, [[1.0, 2.0], [3.0, 0.0]]) and given.dtype == np.float64, (
            f"check_ids changed its input: {given!r}")


# -- lookup -------------------------------------------------------------------------------------


@pytest.mark.checkpoint("lookup")
class TestLookup:
    def test_lookup_leaves_the_table_and_the_ids_alone(self):
        """embedding(ids, weight) changes neither the weight nor the ids, and its output is not a view of the weight."""
        weight = table(5, 3, seed=1)
        before = weight.data.copy()
        ids = np.array([[4, 0], [2, 2]])
        out = embedding(ids, weight)
        assert_close(weight.data, before, "the weight after a lookup", rtol=0, atol=0)
        assert np.array_equal(ids, [[4, 0], [2, 2]]), f"the ids changed: {ids.tolist()}"
        assert not np.shares_memory(out.data, weight.data), (
            "the output shares memory with the weight: an optimizer's in-place update would change it")

    def test_rows_are_gathered(self):
        """With a (5, 3) table, ids [[4, 0], [2, 2]] give the rows 4, 0, 2, 2 as one recorded op, shape (2, 2, 3)."""
        weight = table(5, 3, seed=2, dtype=np.float32, requires_grad=True)
        ids = np.array([[4, 0], [2, 2]])
        out = assert_made_by_op(lambda: embedding(ids, weight), "embedding(ids, weight)", op="embedding",
                                parents=(weight,))
        assert_tensor(out, "embedding(ids of shape (2, 2), weight (5, 3))", shape=(2, 2, 3), dtype=np.float32)
        expected = np.stack([np.stack([weight.data[4], weight.data[0]]), np.stack([weight.data[2], weight.data[2]])])
        assert_close(out, expected, "embedding([[4, 0], [2, 2]], weight)", rtol=0, atol=0)

    def test_ids_of_any_shape(self):
        """ids of shape (), (6,), (2, 3) and (2, 1, 3) give outputs of shape (dim,), (6, dim), (2, 3, dim), (2, 1, 3, dim)."""
        weight = table(7, 4, seed=3)
        for shape in [(), (6,), (2, 3), (2, 1, 3)]:
            ids = random_ids(shape, 7, seed=4)
            out = embedding(ids, weight)
            assert_tensor(out, f"embedding of ids with shape {shape}", shape=shape + (4,))
            assert_close(out, np.asarray(weight.data)[np.asarray(ids)], f"embedding of ids with shape {shape}")

    def test_ids_as_a_list_or_a_float_tensor(self):
        """The ids may be a list or a float32 Tensor of whole numbers; the rows are the same."""
        weight = table(6, 2, seed=5)
        expected = weight.data[[5, 0, 5]]
        for given in ([5, 0, 5], Tensor([5.0, 0.0, 5.0])):
            assert_close(embedding(given, weight), expected, f"embedding({given!r}, weight)")

    def test_dtype_of_the_table_is_kept(self):
        """A float64 table gives float64 rows and a float32 table float32 rows."""
        for dtype in (np.float32, np.float64):
            out = embedding(np.array([1, 0]), table(3, 2, seed=6, dtype=dtype))
            assert out.dtype == dtype, f"embedding with a {np.dtype(dtype).name} table gave dtype {out.dtype}"

    def test_ids_are_checked(self):
        """embedding() checks its ids: id 9 for a table of 6 rows is an IndexError naming 9 and 6."""
        raises_naming(lambda: embedding(np.array([1, 9]), table(6, 2, seed=7)), IndexError, ["9", "6"],
                      "embedding with id 9 and a (6, 2) table")

    def test_negative_id_is_refused_not_read_from_the_end(self):
        """embedding() refuses the id -1 with an IndexError: numpy alone would quietly return the LAST row."""
        raises_naming(lambda: embedding(np.array([[0, -1]]), table(6, 2, seed=70)), IndexError, ["-1", "6"],
                      "embedding with id -1 and a (6, 2) table")

    def test_weight_must_be_a_matrix(self):
        """A 1-D weight of shape (10,) is a ValueError naming its shape: a table has one row per id."""
        raises_naming(lambda: embedding(np.array([1, 2]), Tensor(np.zeros(10))), ValueError, ["(10,)"],
                      "embedding with a weight of shape (10,)")
        raises_naming(lambda: embedding(np.array([1, 2]), Tensor(np.zeros((10, 4, 2)))), ValueError, ["(10, 4, 2)"],
                      "embedding with a 3-D weight of shape (10, 4, 2)")

    def test_embedding_module_owns_its_table(self):
        """Embedding(10, 4): one float32 Parameter `weight` of shape (10, 4), and calling it looks ids up."""
        layer = Embedding(10, 4, rng=np.random.default_rng(8))
        assert isinstance(layer.weight, Parameter), f"Embedding.weight should be a Parameter, got {type(layer.weight)}"
        assert_tensor(layer.weight, "Embedding(10, 4).weight", shape=(10, 4), dtype=np.float32)
        names = [name for name, _ in layer.named_parameters()]
        assert names == ["weight"], f"Embedding(10, 4) should register exactly ['weight'], got {names}"
        ids = np.array([[3, 9, 3]])
        out = assert_made_by_op(lambda: layer(ids), "Embedding(10, 4)(ids)", op="embedding", parents=(layer.weight,))
        assert_close(out, layer.weight.data[[[3, 9, 3]]], "Embedding(10, 4)([[3, 9, 3]])")

    def test_initial_values_are_standard_normal(self):
        """The table starts as N(0, 1) values (mean 0, std 1), or N(0, std^2) with std=0.02, drawn from `rng`."""
        layer = Embedding(2000, 50, rng=np.random.default_rng(9))
        mean, std = float(layer.weight.data.mean()), float(layer.weight.data.std())
        assert abs(mean) < 0.01 and abs(std - 1) < 0.01, f"Embedding(2000, 50): mean {mean:.4f}, std {std:.4f}; expected 0 and 1"
        small = Embedding(2000, 50, std=0.02, rng=np.random.default_rng(9))
        assert abs(float(small.weight.data.std()) - 0.02) < 0.0005, (
            f"Embedding(2000, 50, std=0.02): std {float(small.weight.data.std()):.5f}; expected 0.02")
        again = Embedding(2000, 50, rng=np.random.default_rng(9))
        assert_close(again.weight, layer.weight, "two Embeddings drawn with default_rng(9)", rtol=0, atol=0)

    def test_sizes_must_be_positive_integers(self):
        """Embedding(0, 4), Embedding(10, -1) and Embedding(10, 2.5) are ValueErrors naming the bad size."""
        raises_naming(lambda: Embedding(0, 4), ValueError, ["num_embeddings"], "Embedding(0, 4)")
        raises_naming(lambda: Embedding(10, -1), ValueError, ["dim"], "Embedding(10, -1)")
        raises_naming(lambda: Embedding(10, 2.5), ValueError, ["dim"], "Embedding(10, 2.5)")


# -- gradient ------------------------------------------------------------------------------------


@pytest.mark.checkpoint("gradient")
class TestGradient:
    def test_backward_leaves_the_upstream_gradient_alone(self):
        """The backward rule returns a new (num_embeddings, dim) array and leaves the upstream gradient unchanged."""
        weight = table(5, 3, seed=10, requires_grad=True)
        out = embedding(np.array([1, 1, 4]), weight)
        grad = random_array((3, 3), 11)
        before = grad.copy()
        grads = backward_of(out, grad)
        assert isinstance(grads, tuple) and len(grads) == 1, (
            f"the rule should return a tuple with one gradient (the weight's), got {type(grads).__name__} "
            f"of length {len(grads) if hasattr(grads, '__len__') else '?'}")
        assert_shape(grads[0], (5, 3), "the gradient of the (5, 3) weight")
        assert_close(grad, before, "the upstream gradient after the backward rule", rtol=0, atol=0)

    def test_each_row_receives_its_tokens_gradient(self):
        """For ids [0, 3] the gradient of the (5, 3) table is the upstream row 0 in row 0, row 1 in row 3, zeros elsewhere."""
        weight = table(5, 3, seed=12, requires_grad=True)
        grad = random_array((2, 3), 13)
        embedding(np.array([0, 3]), weight).backward(grad)
        expected = np.zeros((5, 3))
        expected[0], expected[3] = grad[0], grad[1]
        assert_close(weight.grad, expected, "d loss/d weight for ids [0, 3] (seed 13)")

    def test_repeated_ids_accumulate(self):
        """For ids [2, 2, 2, 0] row 2 of the gradient is the SUM of the first three upstream rows, not the last one.

        Hint: `grad_weight[ids] += grad` does not accumulate: numpy buffers it, so for a repeated id only
        one row lands. `np.add.at(grad_weight, ids, grad)` adds every row.
        """
        weight = table(4, 3, seed=14, requires_grad=True)
        grad = random_array((4, 3), 15)
        embedding(np.array([2, 2, 2, 0]), weight).backward(grad)
        expected = np.zeros((4, 3))
        expected[2] = grad[0] + grad[1] + grad[2]
        expected[0] = grad[3]
        assert_close(weight.grad, expected, "d loss/d weight for ids [2, 2, 2, 0] (seed 15)")

    def test_matches_a_one_hot_matmul_in_float64(self):
        """On ids (4, 6) over 7 words (many repeats) the gradient equals that of one_hot(ids) @ weight, in float64."""
        ids, grad = random_ids((4, 6), 7, seed=16), random_array((4, 6, 5), 17)
        weight = table(7, 5, seed=18, requires_grad=True)
        embedding(ids, weight).backward(grad)
        expected = one_hot(ids, 7).reshape(-1, 7).T @ grad.reshape(-1, 5)  # (7, 5)
        assert_close(weight.grad, expected, "d loss/d weight vs the one-hot matmul (seeds 16, 17)", rtol=1e-10, atol=1e-12)

    def test_gradcheck(self):
        """The gradient matches float64 central differences on every element of the table (repeated ids included)."""
        ids = np.array([[1, 4, 1], [0, 1, 5]])
        gradcheck(lambda w: embedding(ids, w), random_array((6, 3), 19), name="embedding(ids, weight)")

    def test_a_single_id(self):
        """A single id (a 0-d index) sends its (dim,) gradient to its row."""
        weight = table(3, 4, seed=20, requires_grad=True)
        grad = random_array(4, 21)
        embedding(2, weight).backward(grad)
        expected = np.zeros((3, 4))
        expected[2] = grad
        assert_close(weight.grad, expected, "d loss/d weight for the single id 2")

    def test_two_lookups_of_one_table_add_up(self):
        """Looking up the same Embedding twice (ids a and b) gives the sum of both scatters in weight.grad."""
        layer = Embedding(5, 2, rng=np.random.default_rng(22))
        a, b = np.array([0, 4]), np.array([4, 4, 1])
        (layer(a).sum() * 2 + layer(b).sum()).backward()
        expected = np.zeros((5, 2), dtype=np.float32)
        expected[[0, 4]] += 2
        expected[4] += 2
        expected[1] += 1
        assert_close(layer.weight.grad, expected, "weight.grad after 2 * sum(emb(a)) + sum(emb(b))")

    def test_float32_gradient_for_a_float32_table(self):
        """A float32 table gets a float32 gradient."""
        weight = table(4, 3, seed=23, dtype=np.float32, requires_grad=True)
        embedding(np.array([[1, 2], [2, 3]]), weight).backward(random_array((2, 2, 3), 24, np.float32))
        assert weight.grad.dtype == np.float32, f"expected a float32 gradient, got {weight.grad.dtype}"

    def test_a_transposed_table(self):
        """A table that is a transposed (non-contiguous) view still gets its gradient, through the transpose.

        Hint: np.zeros_like keeps the layout of a transposed table, and reshape(-1) of that is a COPY:
        adding into the copy leaves the gradient all zeros. Make the gradient table with np.zeros(shape).
        """
        base = table(3, 5, seed=25, requires_grad=True)  # (3, 5); its transpose is the (5, 3) table
        ids = np.array([[4, 0], [4, 2]])
        grad = random_array((2, 2, 3), 26)
        embedding(ids, base.transpose()).backward(grad)
        expected = one_hot(ids, 5).reshape(-1, 5).T @ grad.reshape(-1, 3)  # (5, 3)
        assert_close(base.grad, expected.T, "the gradient of a (3, 5) table looked up through its transpose (seed 26)")


# -- sinusoidal -------------------------------------------------------------------------------------


@pytest.mark.checkpoint("sinusoidal")
class TestSinusoidal:
    def test_a_float32_tensor_of_shape_length_by_dim(self):
        """sinusoidal_positions(6, 8) is a float32 Tensor (6, 8) that requires no grad; dtype=np.float64 gives float64."""
        positions = sinusoidal_positions(6, 8)
        assert_tensor(positions, "sinusoidal_positions(6, 8)", shape=(6, 8), dtype=np.float32)
        assert not positions.requires_grad, "the sinusoidal table is a constant: it must not require grad"
        assert_tensor(sinusoidal_positions(3, 4, dtype=np.float64), "sinusoidal_positions(3, 4, dtype=float64)",
                      shape=(3, 4), dtype=np.float64)

    def test_position_zero_is_sin_0_cos_0(self):
        """Row 0 is [0, 1, 0, 1, ...]: sin(0) in every even column, cos(0) in every odd one."""
        assert_close(sinusoidal_positions(1, 6), np.array([[0, 1, 0, 1, 0, 1]], dtype=np.float32),
                     "sinusoidal_positions(1, 6)")

    def test_first_pair_is_sin_t_and_cos_t(self):
        """Columns 0 and 1 turn at one radian per position: column 0 is sin(t), column 1 is cos(t).

        Hint: the paper puts the SINE in even columns (2i) and the cosine in odd ones (2i + 1).
        """
        values = sinusoidal_positions(10, 4, dtype=np.float64).data
        t = np.arange(10)
        assert_close(values[:, 0], np.sin(t), "column 0 of sinusoidal_positions(10, 4): sin(t)")
        assert_close(values[:, 1], np.cos(t), "column 1 of sinusoidal_positions(10, 4): cos(t)")

    def test_values_equal_the_formula(self):
        """Every value of sinusoidal_positions(12, 16) equals sin or cos of t / 10000^(2i/16), to 1e-6."""
        assert_close(sinusoidal_positions(12, 16), formula_positions(12, 16), "sinusoidal_positions(12, 16)",
                     rtol=0, atol=1e-6)

    def test_pairs_share_one_frequency(self):
        """The last pair of dim 8 (columns 6 and 7) both use the frequency 1/10000^(6/8): sin and cos of the same angle."""
        values = sinusoidal_positions(20, 8, dtype=np.float64).data
        angle = np.arange(20) / 10000 ** (6 / 8)
        assert_close(values[:, 6], np.sin(angle), "column 6 of sinusoidal_positions(20, 8)", atol=1e-9)
        assert_close(values[:, 7], np.cos(angle), "column 7 of sinusoidal_positions(20, 8)", atol=1e-9)

    def test_odd_dim(self):
        """An odd dim works: sinusoidal_positions(9, 5) has sines in columns 0, 2, 4 and cosines in 1, 3, per the formula."""
        assert_close(sinusoidal_positions(9, 5), formula_positions(9, 5), "sinusoidal_positions(9, 5)",
                     rtol=0, atol=1e-6)

    def test_start_gives_later_positions(self):
        """sinusoidal_positions(4, 6, start=10) equals rows 10..13 of sinusoidal_positions(14, 6)."""
        assert_close(sinusoidal_positions(4, 6, start=10), sinusoidal_positions(14, 6).data[10:],
                     "sinusoidal_positions(4, 6, start=10)", atol=1e-7)

    def test_accurate_at_large_positions(self):
        """Positions 10,000..10,007 are within 1e-6 of the float64 formula: the angles are computed in float64.

        Hint: in float32 the number 10000 is only known to within about 0.001, and so is sin(10000).
        Compute the angles in float64 and convert the finished table.
        """
        assert_close(sinusoidal_positions(8, 16, start=10_000), formula_positions(8, 16, start=10_000),
                     "sinusoidal_positions(8, 16, start=10000)", rtol=0, atol=1e-6)

    def test_another_base(self):
        """base=100 changes every frequency to 1/100^(2i/dim)."""
        assert_close(sinusoidal_positions(7, 6, base=100.0), formula_positions(7, 6, base=100.0),
                     "sinusoidal_positions(7, 6, base=100)", rtol=0, atol=1e-6)

    def test_similarity_depends_only_on_the_distance(self):
        """The dot product of the vectors of positions t and t + 5 is the same for every t (a relative position)."""
        values = sinusoidal_positions(30, 16, dtype=np.float64).data
        dots = np.sum(values[:-5] * values[5:], axis=1)  # (25,)
        assert_close(dots, np.full(25, dots[0]), "PE[t] . PE[t + 5] for t = 0..24", atol=1e-9)

    def test_no_positions(self):
        """sinusoidal_positions(0, 4) is an empty (0, 4) table."""
        assert_tensor(sinusoidal_positions(0, 4), "sinusoidal_positions(0, 4)", shape=(0, 4))

    def test_bad_arguments(self):
        """A length of -1, a dim of 0 and a start of -3 are ValueErrors that name the argument."""
        raises_naming(lambda: sinusoidal_positions(-1, 4), ValueError, ["length"], "sinusoidal_positions(-1, 4)")
        raises_naming(lambda: sinusoidal_positions(5, 0), ValueError, ["dim"], "sinusoidal_positions(5, 0)")
        raises_naming(lambda: sinusoidal_positions(5, 4, start=-3), ValueError, ["start"],
                      "sinusoidal_positions(5, 4, start=-3)")


# -- positions --------------------------------------------------------------------------------------


@pytest.mark.checkpoint("positions")
class TestPositions:
    def test_learned_table_is_a_parameter(self):
        """PositionalEmbedding(16, 4) owns one float32 Parameter `weight` (16, 4), N(0, 1) from `rng`."""
        positions = PositionalEmbedding(16, 4, rng=np.random.default_rng(30))
        assert isinstance(positions.weight, Parameter), (
            f"a learned position table must be a Parameter, got {type(positions.weight).__name__}")
        assert_tensor(positions.weight, "PositionalEmbedding(16, 4).weight", shape=(16, 4), dtype=np.float32)
        assert [n for n, _ in positions.named_parameters()] == ["weight"], "expected exactly one parameter, 'weight'"
        again = PositionalEmbedding(16, 4, rng=np.random.default_rng(30))
        assert_close(again.weight, positions.weight, "two tables drawn with default_rng(30)", rtol=0, atol=0)
        wide = PositionalEmbedding(500, 40, std=0.5, rng=np.random.default_rng(31))
        assert abs(float(wide.weight.data.std()) - 0.5) < 0.01, f"std=0.5 gave std {float(wide.weight.data.std()):.4f}"

    def test_rows_start_to_start_plus_length(self):
        """positions(5) is rows 0..4 of the table and positions(3, start=7) rows 7..9, each one embedding op."""
        positions = PositionalEmbedding(16, 4, rng=np.random.default_rng(32))
        first = assert_made_by_op(lambda: positions(5), "PositionalEmbedding(16, 4)(5)", op="embedding",
                                  parents=(positions.weight,))
        assert_close(first, positions.weight.data[:5], "PositionalEmbedding(16, 4)(5)", rtol=0, atol=0)
        later = positions(3, start=7)
        assert_tensor(later, "PositionalEmbedding(16, 4)(3, start=7)", shape=(3, 4))
        assert_close(later, positions.weight.data[7:10], "PositionalEmbedding(16, 4)(3, start=7)", rtol=0, atol=0)
        assert not np.shares_memory(later.data, positions.weight.data), "the output must not be a view of the table"

    def test_gradient_reaches_only_those_rows(self):
        """The gradient of positions(3, start=2) lands in rows 2..4 of the table; every other row stays 0."""
        positions = PositionalEmbedding(6, 2, rng=np.random.default_rng(33))
        grad = random_array((3, 2), 34, np.float32)
        positions(3, start=2).backward(grad)
        expected = np.zeros((6, 2), dtype=np.float32)
        expected[2:5] = grad
        assert_close(positions.weight.grad, expected, "weight.grad after positions(3, start=2)")

    def test_sinusoidal_kind_is_fixed(self):
        """kind='sinusoidal': weight is the sinusoidal table (16, 6) as a plain Tensor; no parameters, empty state_dict."""
        positions = PositionalEmbedding(16, 6, kind="sinusoidal")
        assert isinstance(positions.weight, Tensor) and not isinstance(positions.weight, Parameter), (
            f"the sinusoidal table must be a plain Tensor, not a Parameter; got {type(positions.weight).__name__}")
        assert positions.parameters() == [] and positions.state_dict() == {}, (
            "a sinusoidal PositionalEmbedding has nothing to train or save")
        assert_close(positions.weight, formula_positions(16, 6), "the sinusoidal table", rtol=0, atol=1e-6)
        out = positions(4, start=3)
        assert_tensor(out, "PositionalEmbedding(16, 6, kind='sinusoidal')(4, start=3)", shape=(4, 6))
        assert_close(out, formula_positions(4, 6, start=3), "sinusoidal positions 3..6", rtol=0, atol=1e-6)

    def test_positions_must_fit_in_max_len(self):
        """With max_len 16: 16 positions and positions 14..15 work; 17 positions, 14..17 and a start of -1 are ValueErrors naming 16."""
        positions = PositionalEmbedding(16, 2, rng=np.random.default_rng(35))
        assert_shape(positions(16), (16, 2), "PositionalEmbedding(16, 2)(16)")
        assert_shape(positions(2, start=14), (2, 2), "PositionalEmbedding(16, 2)(2, start=14)")
        raises_naming(lambda: positions(17), ValueError, ["16"], "PositionalEmbedding(16, 2)(17)")
        raises_naming(lambda: positions(4, start=14), ValueError, ["16", "14"], "PositionalEmbedding(16, 2)(4, start=14)")
        raises_naming(lambda: positions(2, start=-1), ValueError, ["-1"], "PositionalEmbedding(16, 2)(2, start=-1)")
        raises_naming(lambda: positions(-2, start=3), ValueError, ["-2"], "PositionalEmbedding(16, 2)(-2, start=3)")

    def test_unknown_kind(self):
        """kind='rotary' is a ValueError that lists the kinds there are, 'learned' and 'sinusoidal'."""
        assert POSITION_KINDS == ("learned", "sinusoidal"), f"POSITION_KINDS changed: {POSITION_KINDS}"
        raises_naming(lambda: PositionalEmbedding(8, 4, kind="rotary"), ValueError, ["rotary", "learned", "sinusoidal"],
                      "PositionalEmbedding(8, 4, kind='rotary')")

    def test_sizes_must_be_positive_integers(self):
        """PositionalEmbedding(0, 4) and PositionalEmbedding(8, 0) are ValueErrors naming max_len and dim."""
        raises_naming(lambda: PositionalEmbedding(0, 4), ValueError, ["max_len"], "PositionalEmbedding(0, 4)")
        raises_naming(lambda: PositionalEmbedding(8, 0, kind="sinusoidal"), ValueError, ["dim"],
                      "PositionalEmbedding(8, 0, kind='sinusoidal')")


# -- token_and_position ---------------------------------------------------------------------------


def float64_model(*args, **kwargs) -> TokenAndPositionEmbedding:
    """A TokenAndPositionEmbedding whose tables are float64, for exact comparisons."""
    model = TokenAndPositionEmbedding(*args, **kwargs)
    for parameter in model.parameters():
        parameter.data = parameter.data.astype(np.float64)
    return model


@pytest.mark.checkpoint("token_and_position")
class TestTokenAndPosition:
    def test_parts(self):
        """TokenAndPositionEmbedding(10, 4, 8) holds token = Embedding(10, 4) and position = PositionalEmbedding(8, 4)."""
        model = TokenAndPositionEmbedding(10, 4, 8, rng=np.random.default_rng(40))
        assert isinstance(model.token, Embedding), f"model.token should be an Embedding, got {type(model.token)}"
        assert isinstance(model.position, PositionalEmbedding), (
            f"model.position should be a PositionalEmbedding, got {type(model.position)}")
        assert model.position.kind == "learned", f"positions are learned by default, got {model.position.kind!r}"
        names = [name for name, _ in model.named_parameters()]
        assert names == ["token.weight", "position.weight"], f"expected ['token.weight', 'position.weight'], got {names}"
        assert_shape(model.token.weight, (10, 4), "model.token.weight")
        assert_shape(model.position.weight, (8, 4), "model.position.weight")

    def test_std_reaches_both_tables(self):
        """TokenAndPositionEmbedding(400, 50, 300, std=0.02) draws BOTH tables with std 0.02, as GPT-2 does."""
        model = TokenAndPositionEmbedding(400, 50, 300, std=0.02, rng=np.random.default_rng(41))
        for name, weight in (("token.weight", model.token.weight), ("position.weight", model.position.weight)):
            std = float(weight.data.std())
            assert abs(std - 0.02) < 0.001, f"{name} with std=0.02: its values have std {std:.4f}; pass std on"

    def test_tokens_plus_positions(self):
        """For ids (2, 5) the output (2, 5, 4) is token row ids[b, t] plus position row t."""
        model = float64_model(10, 4, 8, rng=np.random.default_rng(41))
        ids = random_ids((2, 5), 10, seed=42)
        out = model(ids)
        assert_tensor(out, "TokenAndPositionEmbedding(10, 4, 8)(ids of shape (2, 5))", shape=(2, 5, 4))
        expected = model.token.weight.data[ids] + model.position.weight.data[:5]
        assert_close(out, expected, "token + position for ids (2, 5)", rtol=1e-12, atol=0)

    def test_every_sequence_gets_the_same_positions(self):
        """Two sequences of the same ids give the same vectors; the same id at two positions gives two different vectors."""
        model = TokenAndPositionEmbedding(10, 4, 8, rng=np.random.default_rng(43))
        out = model(np.array([[3, 3, 7], [3, 3, 7]])).data
        assert_close(out[1], out[0], "the second of two identical sequences", rtol=0, atol=0)
        assert not np.allclose(out[0, 0], out[0, 1]), "id 3 at positions 0 and 1 must differ: positions were not added"

    def test_start_continues_a_sequence(self):
        """model(ids[:, 5:], start=5) equals the last positions of model(ids): a decoder can feed new tokens later."""
        model = float64_model(12, 6, 16, rng=np.random.default_rng(44))
        ids = random_ids((2, 8), 12, seed=45)
        assert_close(model(ids[:, 5:], start=5), model(ids).data[:, 5:], "model(ids[:, 5:], start=5)", rtol=1e-12)

    def test_one_sequence_without_a_batch_axis(self):
        """ids of shape (T,) give (T, dim)."""
        model = float64_model(10, 3, 8, rng=np.random.default_rng(46))
        ids = np.array([4, 1, 4])
        assert_close(model(ids), model.token.weight.data[ids] + model.position.weight.data[:3], "model(ids (3,))")

    def test_gradients_reach_both_tables(self):
        """The token table gets each token's gradient row; the position table the gradient summed over the batch."""
        model = float64_model(6, 3, 8, rng=np.random.default_rng(47))
        ids = np.array([[1, 5, 1, 0], [5, 5, 2, 1]])
        grad = random_array((2, 4, 3), 48)
        model(ids, start=2).backward(grad)
        expected_token = one_hot(ids, 6).reshape(-1, 6).T @ grad.reshape(-1, 3)
        expected_position = np.zeros((8, 3))
        expected_position[2:6] = grad.sum(axis=0)
        assert_close(model.token.weight.grad, expected_token, "token.weight.grad (seed 48)")
        assert_close(model.position.weight.grad, expected_position, "position.weight.grad (start=2, seed 48)")

    def test_sinusoidal_positions(self):
        """positions='sinusoidal': only token.weight is a parameter, and the output is token rows + the sinusoidal table."""
        model = TokenAndPositionEmbedding(10, 4, 8, positions="sinusoidal", rng=np.random.default_rng(49))
        names = [name for name, _ in model.named_parameters()]
        assert names == ["token.weight"], f"expected only ['token.weight'], got {names}"
        ids = np.array([[2, 9, 0]])
        expected = model.token.weight.data[ids] + formula_positions(3, 4, start=1)
        assert_close(model(ids, start=1), expected, "sinusoidal model(ids, start=1)", rtol=0, atol=1e-6)

    def test_too_long_and_empty(self):
        """A sequence longer than max_len (9 > 8, or 4 tokens from start 6) is a ValueError naming 8; a single id is a ValueError."""
        model = TokenAndPositionEmbedding(10, 4, 8, rng=np.random.default_rng(50))
        raises_naming(lambda: model(np.zeros((2, 9), dtype=int)), ValueError, ["8"], "9 tokens with max_len 8")
        raises_naming(lambda: model(np.zeros((1, 4), dtype=int), start=6), ValueError, ["8"],
                      "4 tokens from start 6 with max_len 8")
        with pytest.raises(ValueError):
            model(3)

    def test_ids_as_a_tensor(self):
        """ids may be a float32 Tensor of whole numbers (as a tokenizer's output wrapped in Tensor would be)."""
        model = TokenAndPositionEmbedding(10, 4, 8, rng=np.random.default_rng(51))
        ids = np.array([[1, 2, 3]])
        assert_close(model(Tensor(ids)), model(ids), "model(Tensor(ids)) vs model(ids)", rtol=0, atol=0)


# -- optimize ----------------------------------------------------------------------------------------

VOCABULARY, DIM = 50_000, 64
# The reference peaks at 1.0x the output for a lookup (plus a few KB of checks) and at 1.0x the weight
# for the backward; a float32 one-hot of 512 tokens x 50,000 words is 102 MB, 8x the weight.
# Time: the reference measures 1.1x the baseline; np.add.at row by row 9-13x, a Python loop over
# the tokens 15-23x, a sort and np.add.reduceat 5-7x.
LOOKUP_BUDGET = 2.0  # in units of the output's bytes
BACKWARD_BUDGET = 1.5  # in units of the weight's bytes
TIME_BUDGET = 3.0


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    @pytest.fixture(scope="class")
    def big_table(self):
        rng = np.random.default_rng(60)
        weight = Tensor(rng.standard_normal((VOCABULARY, DIM), dtype=np.float32), requires_grad=True)
        return weight, rng.integers(0, VOCABULARY, size=(4, 128))

    def test_lookup_is_a_gather(self, big_table):
        """Looking up 512 ids in a (50000, 64) float32 table allocates at most 2x the 131 KB output: no one-hot, no matmul."""
        weight, ids = big_table
        embedding(ids, weight)  # warm up
        peak, out = peak_bytes(lambda: embedding(ids, weight))
        assert_close(out.data[1, 7], weight.data[ids[1, 7]], "row (1, 7) of the lookup", rtol=0, atol=0)
        budget = LOOKUP_BUDGET * out.nbytes
        assert peak <= budget, (
            f"embedding of (4, 128) ids in a (50000, 64) table: peak memory {peak / 2**10:.0f} KiB; the budget is "
            f"{budget / 2**10:.0f} KiB ({LOOKUP_BUDGET}x the {out.nbytes / 2**10:.0f} KiB output). A one-hot "
            "(512 x 50000) is 100 MB in float32: gather the rows with one fancy index instead")

    def test_backward_builds_no_one_hot(self, big_table):
        """The backward of 512 lookups in a (50000, 64) table allocates at most 1.5x the weight's 12.8 MB."""
        weight, ids = big_table
        out = embedding(ids, weight)
        grad = np.random.default_rng(61).standard_normal(out.shape, dtype=np.float32)
        peak, (grad_weight,) = peak_bytes(lambda: backward_of(out, grad))
        assert_close(grad_weight[ids[0, 0]], grad[(ids == ids[0, 0])].sum(axis=0), "gradient row of id ids[0, 0]",
                     rtol=1e-5, atol=1e-5)
        budget = BACKWARD_BUDGET * weight.nbytes
        assert peak <= budget, (
            f"the embedding backward for 512 tokens and a (50000, 64) float32 weight: peak memory "
            f"{peak / 2**20:.1f} MiB; the budget is {budget / 2**20:.1f} MiB ({BACKWARD_BUDGET}x the weight's "
            f"{weight.nbytes / 2**20:.1f} MiB). Scatter-add into one zero table; never build tokens x vocabulary")

    def test_forward_and_backward_within_budget_of_numpy(self):
        """Lookup and backward of 16 x 512 ids in a (1000, 64) table take at most 3x numpy's take + a 1-D np.add.at.

        Hint: `np.add.at(table, ids, rows)` adds row by row through numpy's slow general path (4-5x
        numpy's time here, over the budget). Read the table as one long row: value (token, column) adds to element
        id * dim + column, and a 1-D np.add.at takes numpy's fast path.
        """
        rng = np.random.default_rng(62)
        weight = Tensor(rng.standard_normal((1000, 64), dtype=np.float32), requires_grad=True)
        ids = rng.integers(0, 1000, size=(16, 512))
        grad = rng.standard_normal((16, 512, 64), dtype=np.float32)
        w = weight.data

        def candidate():
            return backward_of(embedding(ids, weight), grad)

        def baseline():
            out = np.take(w, ids, axis=0)
            grad_weight = np.zeros_like(w)
            flat = (ids[..., None] * 64 + np.arange(64)).ravel()  # the table element each gradient value adds to
            np.add.at(grad_weight.ravel(), flat, grad.ravel())
            return out, grad_weight

        (got,) = candidate()
        assert_close(got, baseline()[1], "the gradient of the (1000, 64) table", rtol=1e-4, atol=1e-4)
        assert_time_ratio(candidate, baseline, TIME_BUDGET, "embedding forward + backward, 8192 ids", rounds=15)

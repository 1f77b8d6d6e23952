"""Kata 12 · Attention: the ordered suite. Run it with `python -m pytest katas/12_attention`."""

import math

import numpy as np
import pytest

import tinytorch.attention as attention_module
from harness import checks
from harness.budgets import assert_time_ratio, count_calls, peak_bytes
from harness.checks import (
    assert_close, assert_finite, assert_made_by_op, assert_shape, assert_tensor, gradcheck, raises_naming,
)
from tinytorch.attention import (
    MultiHeadAttention, attention_mask, causal_mask, masked_softmax, merge_heads, padding_mask,
    scaled_dot_product_attention, split_heads,
)
from tinytorch.autograd import BACKWARD_RULES
from tinytorch.layers import Linear
from tinytorch.tensor import Tensor


def no_overflow(what: str):
    """harness.checks.no_overflow, with this kata's advice."""
    return checks.no_overflow(what, "Shift each row by its maximum before np.exp, and never compute -inf - -inf "
                                    "or 0 / 0: a row with no allowed key needs its own care")


def random_array(shape, seed: int, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def tensor(values, dtype=np.float64, requires_grad=False) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def qkv(shape_q, shape_k, shape_v, seed: int, dtype=np.float64):
    """Three random arrays for q, k and v (seeds seed, seed + 1, seed + 2)."""
    return (random_array(shape_q, seed, dtype=dtype), random_array(shape_k, seed + 1, dtype=dtype),
            random_array(shape_v, seed + 2, dtype=dtype))


def lower_right(length_q: int, length_k: int) -> np.ndarray:
    """The causal pattern written out: query i sits at key position i + length_k - length_q and sees keys up to it."""
    allowed = np.zeros((length_q, length_k), dtype=bool)
    for i in range(length_q):
        for j in range(length_k):
            allowed[i, j] = j <= i + length_k - length_q
    return allowed


def numpy_attention(q, k, v, allowed=None) -> np.ndarray:
    """The textbook formula one query at a time, in float64, over the allowed keys only (none: a zero row)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (np.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v))
    length_q, length_k = q.shape[-2], k.shape[-2]
    allowed = np.ones((length_q, length_k), dtype=bool) if allowed is None else np.asarray(allowed)
    allowed = np.broadcast_to(allowed, lead + (length_q, length_k))
    out = np.zeros(lead + (length_q, v.shape[-1]))
    for index in np.ndindex(*lead):
        for i in range(length_q):
            keys = np.flatnonzero(allowed[index][i])
            if len(keys) == 0:
                continue
            scores = k[index][keys] @ q[index][i] / math.sqrt(q.shape[-1])
            weights = np.exp(scores - scores.max())
            out[index][i] = (weights / weights.sum()) @ v[index][keys]
    return out


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attend(q, k, v, **options) -> Tensor:
    """scaled_dot_product_attention on numpy arrays (each becomes a Tensor of its own dtype)."""
    return scaled_dot_product_attention(*(Tensor(a, dtype=a.dtype) for a in (q, k, v)), **options)


# -- masks ----------------------------------------------------------------------------------------


@pytest.mark.checkpoint("masks")
class TestMasks:
    def test_the_callers_mask_is_left_alone(self):
        """attention_mask(mask, causal=True, ...) combines into a new array: the caller's mask is unchanged."""
        mask = np.ones((2, 3), dtype=bool)
        attention_mask(mask, True, (2, 2, 3))
        assert mask.all(), (
            f"attention_mask changed the caller's mask to {mask.tolist()}: combine with `mask & causal`, not `&=`")

    def test_causal_square(self):
        """causal_mask(4, 4) is the lower triangle, diagonal included: token i sees tokens 0..i."""
        got = causal_mask(4, 4)
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_, (
            f"causal_mask should return a boolean numpy array, got {type(got).__name__} of dtype {getattr(got, 'dtype', None)}")
        assert np.array_equal(got, lower_right(4, 4)), f"causal_mask(4, 4):\nexpected\n{lower_right(4, 4)}\ngot\n{got}"

    def test_a_token_sees_itself_and_not_the_next(self):
        """On the diagonal of causal_mask(5, 5) every entry is True (a token sees itself); just above it every entry is False.

        Hint: key j is allowed for query i when j <= i, not j < i (a token cannot see itself) nor j <= i + 1 (it sees the next).
        """
        got = causal_mask(5, 5)
        assert np.all(np.diag(got)), f"the diagonal of causal_mask(5, 5) should be all True, got {np.diag(got)}"
        assert not np.any(np.diag(got, k=1)), f"above the diagonal should be all False, got {np.diag(got, k=1)}"

    def test_decode_step_queries_are_the_last_positions(self):
        """causal_mask(1, 5) lets the single new query see all 5 keys; causal_mask(2, 5) is [[T T T T F], [T T T T T]].

        Hint: with T_q < T_k the queries are the LAST T_q of the T_k positions: query i sits at i + T_k - T_q.
        """
        assert np.array_equal(causal_mask(1, 5), np.ones((1, 5), dtype=bool)), f"causal_mask(1, 5): got {causal_mask(1, 5)}"
        assert np.array_equal(causal_mask(2, 5), lower_right(2, 5)), f"causal_mask(2, 5): got {causal_mask(2, 5)}"

    def test_more_queries_than_keys(self):
        """causal_mask(4, 2): the first two queries see no key, then [T F] and [T T] (the same alignment)."""
        assert np.array_equal(causal_mask(4, 2), lower_right(4, 2)), f"causal_mask(4, 2): got {causal_mask(4, 2)}"

    def test_negative_length(self):
        """causal_mask(3, -1) and causal_mask(-2, 3) are ValueErrors naming the negative length.

        Hint: check both lengths: np.arange of a negative number is silently empty.
        """
        raises_naming(lambda: causal_mask(3, -1), ValueError, ["-1"], "causal_mask(3, -1)")
        raises_naming(lambda: causal_mask(-2, 3), ValueError, ["-2"], "causal_mask(-2, 3)")

    def test_zero_lengths(self):
        """causal_mask(0, 3) is an empty (0, 3) mask and causal_mask(2, 0) a (2, 0) one: 0 is a length, not an error.

        Hint: refuse only negative lengths; a cache with no keys yet, or no new queries, is a valid (empty) case.
        """
        for length_q, length_k in ((0, 3), (2, 0), (0, 0)):
            got = causal_mask(length_q, length_k)
            assert isinstance(got, np.ndarray) and got.shape == (length_q, length_k), (
                f"causal_mask({length_q}, {length_k}) should be an empty array of shape {(length_q, length_k)}, "
                f"got {got!r}")

    def test_padding_mask(self):
        """padding_mask([3, 1, 4], 4) is (3, 1, 1, 4): True at the first 3, 1 and 4 positions of each sequence."""
        got = padding_mask([3, 1, 4], 4)
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_, f"padding_mask should give booleans, got {got!r}"
        assert_shape(got, (3, 1, 1, 4), "padding_mask([3, 1, 4], 4)")
        expected = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
        assert np.array_equal(got[:, 0, 0], expected), f"padding_mask([3, 1, 4], 4)[:, 0, 0]: got {got[:, 0, 0]}"

    def test_padding_mask_lengths_are_checked(self):
        """Lengths of 5 for 4 positions, -1, or 2.5 are ValueErrors naming the lengths; 0 and 4 are fine."""
        assert not padding_mask([0, 4], 4)[0].any(), "a sequence of length 0 has no real tokens"
        raises_naming(lambda: padding_mask([2, 5], 4), ValueError, ["5"], "padding_mask([2, 5], 4)")
        raises_naming(lambda: padding_mask([-1, 2], 4), ValueError, ["-1"], "padding_mask([-1, 2], 4)")
        raises_naming(lambda: padding_mask([2.5, 2], 4), ValueError, ["2.5"], "padding_mask([2.5, 2], 4)")

    def test_padding_mask_wants_one_length_per_sequence(self):
        """padding_mask(3, 4), a single number instead of a list of lengths, is a ValueError naming it.

        Hint: check lengths.ndim == 1 along with the values: a bare number has no sequence axis to index.
        """
        raises_naming(lambda: padding_mask(3, 4), ValueError, ["3"], "padding_mask(3, 4) (a number, not a list)")

    def test_nothing_to_mask_is_none(self):
        """attention_mask(None, False, shape) is None: no mask at all costs nothing."""
        assert attention_mask(None, False, (2, 3, 4)) is None, "with no mask and causal=False, return None"

    def test_causal_alone(self):
        """attention_mask(None, True, (2, 3, 5)) is causal_mask(3, 5), broadcastable to the scores."""
        got = attention_mask(None, True, (2, 3, 5))
        assert np.array_equal(np.broadcast_to(got, (2, 3, 5))[1], lower_right(3, 5)), f"got {got}"

    def test_mask_and_causal_together(self):
        """With a padding mask (2, 1, 4) and causal=True, a key is allowed only if both allow it."""
        mask = padding_mask([2, 4], 4)[:, 0]  # (2, 1, 4)
        got = np.broadcast_to(attention_mask(mask, True, (2, 4, 4)), (2, 4, 4))
        expected = mask & lower_right(4, 4)
        assert np.array_equal(got, expected), f"padding & causal:\nexpected\n{expected}\ngot\n{got}"

    def test_a_boolean_tensor_is_a_mask(self):
        """A Tensor holding booleans works as a mask, like a numpy array."""
        mask = np.array([[True, False, True]])
        got = attention_mask(Tensor(mask, dtype=bool), False, (2, 3))
        assert np.array_equal(np.broadcast_to(got, (2, 3)), np.broadcast_to(mask, (2, 3))), f"got {got}"

    def test_a_float_mask_is_refused(self):
        """A float mask of 0s and 1s is a TypeError naming its dtype: booleans only (True = may attend).

        Hint: a float mask is ambiguous: PyTorch reads it as scores to ADD (0 or -inf), not as 0 = hide, 1 = show.
        """
        raises_naming(lambda: attention_mask(np.ones((2, 3)), False, (2, 3)), TypeError, ["float64"],
                      "attention_mask with a float64 mask")

    def test_an_integer_mask_is_refused(self):
        """An integer mask of 0s and 1s is a TypeError naming its dtype too: only booleans are masks.

        Hint: test `dtype != np.bool_`, not `dtype is float`: an int 0/1 mask is just as ambiguous.
        """
        mask = np.ones((2, 3), dtype=np.int64)
        raises_naming(lambda: attention_mask(mask, False, (2, 3)), TypeError, ["int64"], "attention_mask with an int64 mask")

    def test_a_mask_that_does_not_fit(self):
        """A (3, 5) mask for (2, 3, 4) scores, or a (2, 2, 3, 4) mask that would grow them, is a ValueError naming both shapes."""
        raises_naming(lambda: attention_mask(np.ones((3, 5), dtype=bool), False, (2, 3, 4)), ValueError,
                      ["(3, 5)", "(2, 3, 4)"], "a (3, 5) mask for (2, 3, 4) scores")
        raises_naming(lambda: attention_mask(np.ones((2, 2, 3, 4), dtype=bool), True, (2, 3, 4)), ValueError,
                      ["(2, 2, 3, 4)", "(2, 3, 4)"], "a (2, 2, 3, 4) mask for (2, 3, 4) scores")


# -- masked_softmax --------------------------------------------------------------------------------


@pytest.mark.checkpoint("masked_softmax")
class TestMaskedSoftmax:
    def test_softmax_over_the_last_axis(self):
        """For random scores (2, 3, 5) and no mask, each row over the LAST axis (the keys) is a softmax summing to 1.

        Hint: axis=-1 everywhere: the maximum, the sum, and keepdims=True so (2, 3, 1) broadcasts against (2, 3, 5).
        """
        scores = random_array((2, 3, 5), 1, scale=3.0)
        got = masked_softmax(scores.copy())
        assert isinstance(got, np.ndarray), f"masked_softmax returns the numpy array of weights, got {type(got).__name__}"
        assert_close(got, numpy_softmax(scores), "masked_softmax of random (2, 3, 5) scores")

    def test_stable_for_huge_scores(self):
        """Scores [1e4, 0, -1e4] give weights [1, 0, 0] without overflow."""
        with no_overflow("masked_softmax([[1e4, 0, -1e4]])"):
            got = masked_softmax(np.array([[1e4, 0.0, -1e4]]))
        assert_close(got, [[1.0, 0.0, 0.0]], "masked_softmax([[1e4, 0, -1e4]])")

    def test_each_row_is_shifted_by_its_own_maximum(self):
        """Rows [1000, 999] and [-1000, -1001] both give weights [0.731, 0.269]: each row is shifted by ITS maximum.

        Hint: max(axis=-1, keepdims=True), one maximum per row. Shifting every row by the maximum of the whole
        array sends the row far below it to exp(-2000) = 0, and its weights to zeros.
        """
        with no_overflow("masked_softmax([[1000, 999], [-1000, -1001]])"):
            got = masked_softmax(np.array([[1000.0, 999.0], [-1000.0, -1001.0]]))
        expected = 1 / (1 + math.exp(-1))
        assert_close(got, [[expected, 1 - expected]] * 2, "masked_softmax of rows [1000, 999] and [-1000, -1001]")

    def test_no_keys_at_all(self):
        """Scores of shape (2, 0), queries over zero keys, give an empty (2, 0) array of weights, no error.

        Hint: the maximum of an empty axis needs a starting value: max(..., initial=-np.inf), then treat that
        row like a fully masked one.
        """
        with no_overflow("masked_softmax of (2, 0) scores"):
            got = masked_softmax(np.zeros((2, 0)))
        assert isinstance(got, np.ndarray) and got.shape == (2, 0), f"masked_softmax of (2, 0) scores: got {got!r}"

    def test_masked_keys_get_exactly_zero(self):
        """Where allowed is False the weight is exactly 0, and the allowed keys share the whole weight 1.

        Hint: fill masked scores with -inf before the exponential: exp(-inf) is 0. A fill of 0 is an ordinary
        score, and a masked key would still get weight.
        """
        scores = np.array([[-5.0, 0.3, -6.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
        allowed = np.array([[True, False, True, False], [False, True, True, True]])
        got = masked_softmax(scores.copy(), allowed)
        assert np.all(got[~allowed] == 0), f"weights of masked keys should be exactly 0, got {got[~allowed]}"
        expected = np.zeros((2, 4))
        expected[0, [0, 2]] = numpy_softmax(np.array([-5.0, -6.0]))
        expected[1, 1:] = 1 / 3
        assert_close(got, expected, "masked_softmax with a mask")

    def test_a_row_with_no_allowed_key_is_all_zeros(self):
        """A row whose keys are all masked gets weights 0 (not nan, not uniform), and no numpy warning.

        Hint: the maximum of a row of -inf is -inf, and -inf - -inf is nan. Shift such a row by 0 instead;
        after the exponential it sums to 0, so divide it by 1.
        """
        scores = random_array((3, 4), 2)
        allowed = np.array([[True, True, False, True], [False, False, False, False], [True, False, False, False]])
        with no_overflow("masked_softmax with a fully masked row"):
            got = masked_softmax(scores.copy(), allowed)
        assert_finite(got, "masked_softmax with a fully masked row")
        assert np.all(got[1] == 0), f"the fully masked row should be all zeros, got {got[1]}"
        assert_close(got[2], [1.0, 0.0, 0.0, 0.0], "a row with one allowed key")

    def test_the_mask_broadcasts(self):
        """An allowed mask of shape (1, 5) or (4, 1) broadcasts over scores of shape (3, 4, 5)."""
        scores = random_array((3, 4, 5), 3)
        for allowed in (np.array([[True, False, True, True, False]]), np.array([[True], [False], [True], [True]])):
            full = np.broadcast_to(allowed, scores.shape)
            got = masked_softmax(scores.copy(), allowed)
            expected = np.where(full, np.exp(scores - scores.max()), 0.0)
            sums = expected.sum(axis=-1, keepdims=True)
            expected = np.divide(expected, sums, out=np.zeros_like(expected), where=sums > 0)
            assert_close(got, expected, f"masked_softmax with an allowed mask of shape {allowed.shape}")

    def test_float32_stays_float32(self):
        """float32 scores give float32 weights."""
        got = masked_softmax(random_array((2, 6), 4, dtype=np.float32), causal_mask(2, 6))
        assert got.dtype == np.float32, f"masked_softmax of float32 scores gave {got.dtype}"


# -- attention ----------------------------------------------------------------------------------------


@pytest.mark.checkpoint("attention")
class TestAttention:
    def test_inputs_are_left_alone(self):
        """Attention changes neither q, k, v nor the mask it is given."""
        q, k, v = qkv((2, 3, 4), (2, 5, 4), (2, 5, 2), seed=10)
        mask = padding_mask([5, 3], 5)[:, 0]  # (2, 1, 5)
        copies = [a.copy() for a in (q, k, v, mask)]
        tensors = [Tensor(a, dtype=np.float64) for a in (q, k, v)]
        scaled_dot_product_attention(*tensors, mask=mask, causal=True)
        for name, before, after in zip("qkv", copies, (q, k, v)):
            assert_close(after, before, f"{name} after attention", rtol=0, atol=0)
        assert np.array_equal(mask, copies[3]), "the mask changed during attention"

    def test_one_recorded_op(self):
        """The result is one op, 'scaled_dot_product_attention', with parents (q, k, v), of shape (..., T_q, d_v)."""
        q, k, v = (tensor(a, requires_grad=True) for a in qkv((2, 3, 4), (2, 5, 4), (2, 5, 6), seed=11))
        out = assert_made_by_op(lambda: scaled_dot_product_attention(q, k, v), "scaled_dot_product_attention(q, k, v)",
                                op="scaled_dot_product_attention", parents=(q, k, v))
        assert_tensor(out, "attention of q (2, 3, 4), k (2, 5, 4), v (2, 5, 6)", shape=(2, 3, 6), dtype=np.float64)

    def test_matches_the_formula(self):
        """On random q, k, v of shape (2, 3, 4, 5) (batch, heads, T, d) the output equals softmax(q k^T / sqrt(d)) v."""
        q, k, v = qkv((2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5), seed=12)
        assert_close(attend(q, k, v), numpy_attention(q, k, v), "attention of random (2, 3, 4, 5) inputs (seeds 12-14)")

    def test_scores_are_scaled_by_one_over_sqrt_d(self):
        """With d = 4, q = [2, 0, 0, 0] scores keys [2, 0, 0, 0] and 0 as 4 / sqrt(4) = 2 and 0: weights 0.8808 and 0.1192.

        Hint: divide the dot products by sqrt(d), the square root of the LAST axis of q. Without it the score
        here is 4, and the weights become 0.982 and 0.018.
        """
        q = np.array([[2.0, 0.0, 0.0, 0.0]])
        k = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
        v = np.array([[1.0], [0.0]])
        assert_close(attend(q, k, v), [[1 / (1 + math.exp(-2))]], "attention with one score of 4 / sqrt(4)")

    def test_weights_sum_to_one_over_the_keys(self):
        """With values all 1 every output is 1: each query's weights over the KEYS sum to 1 (T_q = 3, T_k = 5).

        Hint: the softmax runs along the last axis of the (T_q, T_k) scores, one row per query.
        """
        q, k, _ = qkv((3, 4), (5, 4), (5, 2), seed=15)
        assert_close(attend(q, k, np.ones((5, 2))), np.ones((3, 2)), "attention over values that are all 1")

    def test_more_keys_than_queries(self):
        """q (2, 2, 3), k and v (2, 7, 3): two queries over seven keys each, per the formula."""
        q, k, v = qkv((2, 2, 3), (2, 7, 3), (2, 7, 3), seed=16)
        assert_close(attend(q, k, v), numpy_attention(q, k, v), "attention of 2 queries over 7 keys")

    def test_leading_axes_broadcast(self):
        """q (2, 3, 4, 5) with k and v (3, 6, 5) shared by both sequences of the batch."""
        q, k, v = qkv((2, 3, 4, 5), (3, 6, 5), (3, 6, 5), seed=17)
        assert_close(attend(q, k, v), numpy_attention(q, k, v), "attention with k, v shared across the batch")

    def test_a_single_sequence(self):
        """2-D inputs (T, d) with no batch axis work too."""
        q, k, v = qkv((4, 3), (4, 3), (4, 2), seed=18)
        assert_close(attend(q, k, v), numpy_attention(q, k, v), "attention of (4, 3) inputs")

    def test_numpy_inputs(self):
        """q, k, v may be numpy arrays: they become float32 Tensors, as everywhere in tinytorch."""
        q, k, v = qkv((3, 4), (5, 4), (5, 2), seed=28)
        out = scaled_dot_product_attention(q, k, v, causal=True)
        assert_tensor(out, "attention of numpy q, k, v", shape=(3, 2), dtype=np.float32)
        assert_close(out, numpy_attention(q, k, v, lower_right(3, 5)), "attention of numpy q, k, v", rtol=1e-4,
                     atol=1e-5)

    def test_float32_in_float32_out(self):
        """float32 q, k, v give a float32 output."""
        out = attend(*qkv((2, 3, 4), (2, 3, 4), (2, 3, 4), seed=19, dtype=np.float32), causal=True)
        assert out.dtype == np.float32, f"attention of float32 inputs gave {out.dtype}"

    def test_causal_values(self):
        """causal=True on (2, 5, 3) inputs equals the formula over keys 0..i for query i."""
        q, k, v = qkv((2, 5, 3), (2, 5, 3), (2, 5, 3), seed=20)
        assert_close(attend(q, k, v, causal=True), numpy_attention(q, k, v, lower_right(5, 5)), "causal attention")

    def test_a_token_sees_itself(self):
        """With causal=True the first token can only attend itself, so its output is exactly its own value."""
        q, k, v = qkv((6, 4), (6, 4), (6, 3), seed=21)
        out = attend(q, k, v, causal=True).data
        assert_close(out[0], v[0], "causal output of token 0 (it sees only itself)")
        assert_close(out[1], numpy_attention(q[1:2], k[:2], v[:2])[0], "causal output of token 1 (keys 0 and 1)")

    def test_changing_a_future_token_never_changes_an_earlier_output(self):
        """With causal=True, changing token 4's query, key and value changes output 4 and none of outputs 0..3."""
        q, k, v = qkv((2, 6, 4), (2, 6, 4), (2, 6, 4), seed=22)
        before = attend(q, k, v, causal=True).data
        q2, k2, v2 = q.copy(), k.copy(), v.copy()
        for changed in (q2, k2, v2):
            changed[:, 4] += 5.0
        after = attend(q2, k2, v2, causal=True).data
        assert_close(after[:, :4], before[:, :4], "causal outputs 0..3 after changing token 4", rtol=0, atol=1e-12)
        assert not np.allclose(after[:, 4], before[:, 4]), "output 4 should change when token 4 changes"

    def test_decode_step_equals_the_last_rows(self):
        """causal=True with the last 1 or 2 queries over all 6 keys equals the last rows of full causal attention."""
        q, k, v = qkv((2, 6, 4), (2, 6, 4), (2, 6, 4), seed=23)
        full = attend(q, k, v, causal=True).data
        for new in (1, 2):
            step = attend(q[:, -new:], k, v, causal=True)
            assert_close(step, full[:, -new:], f"causal attention of the last {new} queries over all 6 keys")

    def test_true_means_may_attend(self):
        """A mask [[True, False]] lets the query see key 0 only: the output is value 0.

        Hint: PyTorch's convention: True = may attend, False = hidden.
        """
        q, k = np.ones((1, 2)), np.array([[1.0, 0.0], [5.0, 5.0]])
        v = np.array([[1.0, 2.0], [30.0, 40.0]])
        assert_close(attend(q, k, v, mask=np.array([[True, False]])), [[1.0, 2.0]], "attention with mask [[T, F]]")

    def test_a_padding_mask_hides_the_padding(self):
        """With padding_mask([3, 5], 5), sequence 0 gives the same outputs as attention over its first 3 keys alone."""
        q, k, v = qkv((2, 2, 4, 3), (2, 2, 5, 3), (2, 2, 5, 3), seed=24)
        out = attend(q, k, v, mask=padding_mask([3, 5], 5)).data
        assert_close(out[0], numpy_attention(q[0], k[0, :, :3], v[0, :, :3]), "sequence 0 with 2 padded keys")
        assert_close(out[1], numpy_attention(q[1], k[1], v[1]), "sequence 1, no padding")

    def test_a_mask_and_causal_together(self):
        """mask and causal=True together allow only the keys both allow."""
        q, k, v = qkv((2, 4, 3), (2, 4, 3), (2, 4, 3), seed=25)
        mask = np.array([[[True, False, True, True]], [[True, True, True, False]]])  # (2, 1, 4)
        assert_close(attend(q, k, v, mask=mask, causal=True), numpy_attention(q, k, v, mask & lower_right(4, 4)),
                     "attention with a mask and causal=True")

    def test_a_query_with_no_key_gets_zeros(self):
        """A query whose keys are all masked gets a zero output row, finite, and no numpy warning."""
        q, k, v = qkv((3, 4), (5, 4), (5, 2), seed=26)
        mask = np.ones((3, 5), dtype=bool)
        mask[1] = False
        with no_overflow("attention with a fully masked query"):
            out = attend(q, k, v, mask=mask)
        assert_finite(out, "attention with a fully masked query")
        assert_close(out.data[1], [0.0, 0.0], "the output of the fully masked query", rtol=0, atol=0)
        assert_close(out, numpy_attention(q, k, v, mask), "attention with a fully masked query")

    def test_shapes_that_do_not_fit(self):
        """Different d for q and k, different T_k for k and v, 1-D inputs, or batches 2 and 3 are ValueErrors naming the shapes."""
        cases = [((2, 4, 5), (2, 6, 3), (2, 6, 3)), ((2, 4, 5), (2, 6, 5), (2, 7, 5)), ((5,), (6, 5), (6, 5)),
                 ((2, 4, 5), (3, 6, 5), (3, 6, 5))]
        for shapes in cases:
            q, k, v = (Tensor(np.zeros(s)) for s in shapes)
            raises_naming(lambda: scaled_dot_product_attention(q, k, v), ValueError, [str(s) for s in shapes],
                          f"attention of q {shapes[0]}, k {shapes[1]}, v {shapes[2]}")

    def test_the_mask_is_checked(self):
        """A float mask is a TypeError, a mask of the wrong shape a ValueError, as attention_mask says."""
        q, k, v = qkv((3, 4), (5, 4), (5, 2), seed=27)
        raises_naming(lambda: attend(q, k, v, mask=np.ones((3, 5))), TypeError, ["float64"], "a float mask")
        raises_naming(lambda: attend(q, k, v, mask=np.ones((3, 4), dtype=bool)), ValueError, ["(3, 4)", "(3, 5)"],
                      "a (3, 4) mask for (3, 5) scores")


# -- gradient ------------------------------------------------------------------------------------------


def backward_of(out: Tensor, grad: np.ndarray):
    return BACKWARD_RULES["scaled_dot_product_attention"](out, grad)


@pytest.mark.checkpoint("gradient")
class TestGradient:
    def test_three_gradients_and_the_upstream_gradient_left_alone(self):
        """The rule returns (grad_q, grad_k, grad_v) shaped like q, k, v, and leaves the upstream gradient unchanged."""
        q, k, v = (tensor(a, requires_grad=True) for a in qkv((2, 3, 4), (2, 5, 4), (2, 5, 6), seed=30))
        out = scaled_dot_product_attention(q, k, v, causal=True)
        grad = random_array(out.shape, 31)
        before = grad.copy()
        grads = backward_of(out, grad)
        assert isinstance(grads, tuple) and len(grads) == 3, "the rule should return a tuple of three gradients"
        for name, g, shape in zip("qkv", grads, [(2, 3, 4), (2, 5, 4), (2, 5, 6)]):
            assert_shape(g, shape, f"the gradient of {name}")
        assert_close(grad, before, "the upstream gradient after the rule", rtol=0, atol=0)

    def test_gradcheck(self):
        """Gradients of q (2, 3, 4), k (2, 5, 4) and v (2, 5, 3) match central differences on every element."""
        gradcheck(scaled_dot_product_attention, *qkv((2, 3, 4), (2, 5, 4), (2, 5, 3), seed=32),
                  name="scaled_dot_product_attention")

    def test_gradcheck_causal(self):
        """causal=True on (1, 2, 4, 3) (batch, heads, T, d): gradients match central differences."""
        gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=True),
                  *qkv((1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 3), seed=35), name="causal attention")

    def test_gradcheck_causal_decode_step(self):
        """causal=True with 2 queries over 5 keys: gradients match central differences."""
        gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=True),
                  *qkv((2, 2, 3), (2, 5, 3), (2, 5, 3), seed=38), name="causal attention, T_q=2, T_k=5")

    def test_gradcheck_with_a_padding_mask(self):
        """A padding mask [5, 2] on (2, 1, 3, 4) queries over 5 keys: gradients match central differences."""
        mask = padding_mask([5, 2], 5)
        gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, mask=mask),
                  *qkv((2, 1, 3, 4), (2, 1, 5, 4), (2, 1, 5, 2), seed=41), name="attention with a padding mask")

    def test_gradcheck_with_shared_keys_and_values(self):
        """k and v (1, 4, 3) shared by a batch of 2 queries: their gradients sum over the batch."""
        gradcheck(scaled_dot_product_attention, *qkv((2, 3, 3), (1, 4, 3), (1, 4, 3), seed=44),
                  name="attention with shared k, v")

    def test_large_scores_give_finite_gradients(self):
        """With scores in the thousands (a saturated softmax) the gradients are finite and computed without overflow."""
        q, k, v = (tensor(a, requires_grad=True) for a in qkv((3, 4), (3, 4), (3, 4), seed=47))
        q.data *= 300
        with no_overflow("attention backward with scores in the thousands"):
            scaled_dot_product_attention(q, k, v).backward(random_array((3, 4), 48))
        for name, t in zip("qkv", (q, k, v)):
            assert_finite(t.grad, f"the gradient of {name} at large scores")

    def test_a_query_with_no_key_has_zero_gradient(self):
        """A fully masked query gets a zero q gradient, and sends nothing to k and v."""
        q, k, v = qkv((3, 4), (5, 4), (5, 2), seed=49)
        mask = np.ones((3, 5), dtype=bool)
        mask[1] = False
        grad = random_array((3, 2), 50)
        tensors = [tensor(a, requires_grad=True) for a in (q, k, v)]
        with no_overflow("attention backward with a fully masked query"):
            scaled_dot_product_attention(*tensors, mask=mask).backward(grad)
        assert_close(tensors[0].grad[1], np.zeros(4), "the q gradient of the fully masked query", rtol=0, atol=0)
        kept = [tensor(a, requires_grad=True) for a in (q[[0, 2]], k, v)]
        scaled_dot_product_attention(*kept).backward(grad[[0, 2]])
        assert_close(tensors[1].grad, kept[1].grad, "k gradient: the masked query must contribute nothing")
        assert_close(tensors[2].grad, kept[2].grad, "v gradient: the masked query must contribute nothing")

    def test_a_hidden_key_gets_no_gradient(self):
        """A key that every query is masked from gets zero gradients for its key and value rows."""
        q, k, v = qkv((3, 4), (5, 4), (5, 2), seed=51)
        mask = np.ones((3, 5), dtype=bool)
        mask[:, 2] = False
        tensors = [tensor(a, requires_grad=True) for a in (q, k, v)]
        scaled_dot_product_attention(*tensors, mask=mask).backward(random_array((3, 2), 52))
        assert_close(tensors[1].grad[2], np.zeros(4), "the gradient of hidden key 2", rtol=0, atol=0)
        assert_close(tensors[2].grad[2], np.zeros(2), "the gradient of hidden value 2", rtol=0, atol=0)

    def test_float32_gradients(self):
        """float32 inputs get float32 gradients."""
        tensors = [tensor(a, np.float32, requires_grad=True) for a in qkv((2, 3, 4), (2, 3, 4), (2, 3, 4), seed=53)]
        scaled_dot_product_attention(*tensors, causal=True).backward(random_array((2, 3, 4), 54, dtype=np.float32))
        for name, t in zip("qkv", tensors):
            assert t.grad.dtype == np.float32, f"the gradient of float32 {name} is {t.grad.dtype}"


# -- heads -----------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("heads")
class TestHeads:
    def test_split_gives_each_head_its_columns(self):
        """split_heads of (2, 3, 8) into 2 heads is (2, 2, 3, 4), and head h holds columns 4h..4h+3 of every token.

        Hint: reshaping (B, T, dim) straight to (B, heads, T, head_dim) mixes tokens into heads. Reshape to
        (B, T, heads, head_dim) first, then swap the T and heads axes.
        """
        x = random_array((2, 3, 8), 60)
        out = split_heads(Tensor(x, dtype=np.float64), 2)
        assert_tensor(out, "split_heads((2, 3, 8), 2)", shape=(2, 2, 3, 4))
        for h in range(2):
            assert_close(out.data[:, h], x[..., 4 * h:4 * h + 4], f"head {h} of split_heads", rtol=0, atol=0)

    def test_merge_puts_head_h_back_in_its_columns(self):
        """merge_heads of (2, 3, 4, 2) is (2, 4, 6), with head h in columns 2h, 2h+1 of every token.

        Hint: swap the heads and T axes back before the reshape, or tokens and heads get mixed.
        """
        y = random_array((2, 3, 4, 2), 61)
        out = merge_heads(Tensor(y, dtype=np.float64))
        assert_tensor(out, "merge_heads((2, 3, 4, 2))", shape=(2, 4, 6))
        for h in range(3):
            assert_close(out.data[..., 2 * h:2 * h + 2], y[:, h], f"columns of head {h} after merge_heads", rtol=0, atol=0)

    def test_merge_undoes_split(self):
        """merge_heads(split_heads(x, 4)) is x again, for x of shape (3, 5, 12)."""
        x = random_array((3, 5, 12), 62)
        assert_close(merge_heads(split_heads(Tensor(x, dtype=np.float64), 4)), x, "merge_heads(split_heads(x))",
                     rtol=0, atol=0)

    def test_split_is_a_view(self):
        """split_heads copies nothing: its result shares memory with x."""
        x = Tensor(random_array((2, 3, 8), 63), dtype=np.float64)
        assert np.shares_memory(split_heads(x, 2).data, x.data), "split_heads should be a reshape and a transpose: views"

    def test_gradients_flow_through_both(self):
        """merge_heads(split_heads(x) * w): gradients match central differences (both are differentiable ops)."""
        w = random_array((1, 2, 1, 3), 64)
        gradcheck(lambda x: merge_heads(split_heads(x, 2) * w), random_array((2, 4, 6), 65), name="split and merge")

    def test_shapes_are_checked(self):
        """Splitting dim 10 into 3 heads or a 2-D input, or merging a 3-D input, is a ValueError naming the shape."""
        raises_naming(lambda: split_heads(Tensor(np.zeros((2, 4, 10))), 3), ValueError, ["(2, 4, 10)", "3"],
                      "split_heads of (2, 4, 10) into 3 heads")
        raises_naming(lambda: split_heads(Tensor(np.zeros((4, 10))), 2), ValueError, ["(4, 10)"],
                      "split_heads of a 2-D (4, 10) input")
        raises_naming(lambda: merge_heads(Tensor(np.zeros((2, 4, 10)))), ValueError, ["(2, 4, 10)"],
                      "merge_heads of a 3-D input")

    def test_zero_heads(self):
        """split_heads(x, 0) is a ValueError naming heads 0, not a ZeroDivisionError.

        Hint: check heads >= 1 before using it in dim % heads.
        """
        raises_naming(lambda: split_heads(Tensor(np.zeros((2, 3, 8))), 0), ValueError, ["0"], "split_heads(x, 0)")


# -- multi_head ------------------------------------------------------------------------------------------


def float64_attention(dim: int, heads: int, seed: int, bias: bool = True) -> MultiHeadAttention:
    """A MultiHeadAttention with float64 parameters and random (non-zero) biases."""
    rng = np.random.default_rng(seed)
    attn = MultiHeadAttention(dim, heads, bias=bias, rng=rng)
    for parameter in attn.parameters():
        parameter.data = parameter.data.astype(np.float64) + (0.1 * rng.standard_normal(parameter.shape)
                                                              if parameter.ndim == 1 else 0.0)
    return attn


def numpy_multi_head(attn: MultiHeadAttention, x: np.ndarray, allowed=None) -> np.ndarray:
    """Multi-head attention head by head, with explicit weight slices, in float64."""
    dim, heads = attn.dim, attn.heads
    hd = dim // heads
    w, b = attn.qkv_proj.weight.data, attn.qkv_proj.bias.data
    outputs = []
    for h in range(heads):
        columns = [slice(part * dim + h * hd, part * dim + (h + 1) * hd) for part in range(3)]
        q, k, v = (x @ w[:, c] + b[c] for c in columns)  # (B, T, hd) each
        outputs.append(numpy_attention(q, k, v, None if allowed is None else allowed[:, 0]))
    concatenated = np.concatenate(outputs, axis=-1)  # (B, T, dim)
    return concatenated @ attn.out_proj.weight.data + attn.out_proj.bias.data


@pytest.mark.checkpoint("multi_head")
class TestMultiHead:
    def test_parts(self):
        """MultiHeadAttention(8, 2): qkv_proj = Linear(8, 24), out_proj = Linear(8, 8), head_dim 4, parameters in that order."""
        attn = MultiHeadAttention(8, 2, rng=np.random.default_rng(70))
        assert isinstance(attn.qkv_proj, Linear) and isinstance(attn.out_proj, Linear), (
            "qkv_proj and out_proj should both be Linear layers")
        assert_shape(attn.qkv_proj.weight, (8, 24), "qkv_proj.weight: W_Q, W_K, W_V side by side")
        assert_shape(attn.out_proj.weight, (8, 8), "out_proj.weight")
        assert attn.head_dim == 4, f"head_dim should be 8 // 2 = 4, got {attn.head_dim}"
        names = [name for name, _ in attn.named_parameters()]
        assert names == ["qkv_proj.weight", "qkv_proj.bias", "out_proj.weight", "out_proj.bias"], f"got {names}"
        plain = MultiHeadAttention(8, 2, bias=False)
        assert [n for n, _ in plain.named_parameters()] == ["qkv_proj.weight", "out_proj.weight"], (
            "bias=False: no biases")

    def test_the_same_seed_gives_the_same_weights(self):
        """Two MultiHeadAttention(8, 2, rng=default_rng(5)) have equal parameters: both Linears draw from rng.

        Hint: pass rng on to BOTH Linear layers; one left without it draws from the global np.random.
        """
        first, second = (MultiHeadAttention(8, 2, rng=np.random.default_rng(5)) for _ in range(2))
        for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
            assert np.array_equal(a.data, b.data), f"{name} differs between two models built with the same rng seed"

    def test_heads_must_divide_dim(self):
        """MultiHeadAttention(10, 3) and MultiHeadAttention(8, 0) are ValueErrors naming dim and heads."""
        raises_naming(lambda: MultiHeadAttention(10, 3), ValueError, ["10", "3"], "MultiHeadAttention(10, 3)")
        raises_naming(lambda: MultiHeadAttention(8, 0), ValueError, ["8", "0"], "MultiHeadAttention(8, 0)")

    def test_project_qkv(self):
        """project_qkv(x (2, 3, 8)) with 2 heads gives q, k, v (2, 2, 3, 4): the three thirds of x @ W + b, split."""
        attn = float64_attention(8, 2, seed=71)
        x = random_array((2, 3, 8), 72)
        q, k, v = attn.project_qkv(Tensor(x, dtype=np.float64))
        fused = x @ attn.qkv_proj.weight.data + attn.qkv_proj.bias.data  # (2, 3, 24)
        for part, (name, got) in enumerate(zip("qkv", (q, k, v))):
            assert_tensor(got, f"project_qkv: {name}", shape=(2, 2, 3, 4))
            expected = fused[..., part * 8:(part + 1) * 8].reshape(2, 3, 2, 4).transpose(0, 2, 1, 3)
            assert_close(got, expected, f"project_qkv: {name} (columns {part * 8}..{part * 8 + 7} of x W + b, split)")

    def test_matches_attention_head_by_head(self):
        """The output on x (2, 5, 8) with 2 heads equals attention computed head by head with slices of the weights."""
        attn = float64_attention(8, 2, seed=73)
        x = random_array((2, 5, 8), 74)
        out = attn(Tensor(x, dtype=np.float64))
        assert_tensor(out, "MultiHeadAttention(8, 2) of (2, 5, 8)", shape=(2, 5, 8))
        assert_close(out, numpy_multi_head(attn, x), "multi-head attention vs head by head")

    def test_causal_and_padding_masks(self):
        """causal=True, and a padding mask (2, 1, 1, 5), give attention head by head with those masks."""
        attn = float64_attention(6, 3, seed=75)
        x = random_array((2, 5, 6), 76)
        causal = lower_right(5, 5)[None, None]
        assert_close(attn(Tensor(x, dtype=np.float64), causal=True), numpy_multi_head(attn, x, causal),
                     "causal multi-head attention")
        mask = padding_mask([5, 3], 5)
        assert_close(attn(Tensor(x, dtype=np.float64), mask=mask), numpy_multi_head(attn, x, mask),
                     "multi-head attention with a padding mask")

    def test_forward_is_attend_of_project_qkv(self):
        """forward(x, causal=True) equals attend(*project_qkv(x), causal=True)."""
        attn = float64_attention(8, 4, seed=77)
        x = Tensor(random_array((2, 3, 8), 78), dtype=np.float64)
        assert_close(attn.attend(*attn.project_qkv(x), causal=True), attn(x, causal=True), "attend(project_qkv(x))")

    def test_one_attention_call_for_every_head_and_sequence(self):
        """A forward over 3 sequences and 4 heads calls scaled_dot_product_attention once: no loop over heads or batch."""
        attn = MultiHeadAttention(8, 4, rng=np.random.default_rng(79))
        x = Tensor(random_array((3, 5, 8), 80, dtype=np.float32))
        with count_calls(attention_module, "scaled_dot_product_attention") as counter:
            attn(x, causal=True)
        assert counter.calls == 1, f"scaled_dot_product_attention was called {counter.calls} times; expected 1"

    def test_decode_step_equals_full_causal_attention(self):
        """attend(q of the last token, all keys, all values, causal=True) equals the last row of forward(x, causal=True)."""
        attn = float64_attention(8, 2, seed=81)
        x = Tensor(random_array((2, 6, 8), 82), dtype=np.float64)
        q, k, v = attn.project_qkv(x)
        step = attn.attend(q[:, :, -1:], k, v, causal=True)
        assert_tensor(step, "attend(q (2, 2, 1, 4), k, v (2, 2, 6, 4))", shape=(2, 1, 8))
        assert_close(step, attn(x, causal=True).data[:, -1:], "one decode step vs full causal attention")

    def test_changing_a_future_token_never_changes_an_earlier_output(self):
        """With causal=True, changing token 3 of x changes output 3 and none of outputs 0..2."""
        attn = float64_attention(6, 2, seed=83)
        x = random_array((2, 5, 6), 84)
        before = attn(Tensor(x, dtype=np.float64), causal=True).data
        x[:, 3] += 2.0
        after = attn(Tensor(x, dtype=np.float64), causal=True).data
        assert_close(after[:, :3], before[:, :3], "causal outputs 0..2 after changing token 3", rtol=0, atol=1e-12)
        assert not np.allclose(after[:, 3], before[:, 3]), "output 3 should change when token 3 changes"

    def test_gradients_of_the_input_and_every_weight(self):
        """Causal attention (dim 4, 2 heads) on x (2, 3, 4): gradients of x and all four parameters match central differences."""
        attn = float64_attention(4, 2, seed=85)
        x = random_array((2, 3, 4), 86)
        weight = random_array((2, 3, 4), 87)
        x_tensor = Tensor(x, dtype=np.float64, requires_grad=True)
        (attn(x_tensor, causal=True) * weight).sum().backward()

        def loss() -> float:
            return float(np.sum(attn(Tensor(x, dtype=np.float64), causal=True).data * weight))

        for name, array, got in [("x", x, x_tensor.grad)] + [(n, p.data, p.grad) for n, p in attn.named_parameters()]:
            expected = checks.numerical_gradient(lambda *_: loss(), [array], 0)
            assert got is not None, f"the gradient of {name} is None: backward never reached it"
            assert_close(got, expected, f"the gradient of {name} (seed 87)", rtol=1e-5, atol=1e-7)

    def test_the_input_shape_is_checked(self):
        """An input of shape (5, 8) (no batch axis) or (2, 5, 6) for dim 8 is a ValueError naming its shape."""
        attn = MultiHeadAttention(8, 2)
        raises_naming(lambda: attn(Tensor(np.zeros((5, 8)))), ValueError, ["(5, 8)"], "MultiHeadAttention(8, 2) of (5, 8)")
        raises_naming(lambda: attn(Tensor(np.zeros((2, 5, 6)))), ValueError, ["(2, 5, 6)"],
                      "MultiHeadAttention(8, 2) of (2, 5, 6)")

    def test_float32_model_float32_output(self):
        """A float32 model on a float32 input gives a float32 output; a numpy input works too."""
        attn = MultiHeadAttention(8, 2, rng=np.random.default_rng(88))
        out = attn(random_array((2, 3, 8), 89, dtype=np.float32))
        assert_tensor(out, "MultiHeadAttention(8, 2) of a float32 numpy array", shape=(2, 3, 8), dtype=np.float32)


# -- optimize ----------------------------------------------------------------------------------------------

SHAPE = (8, 4, 128, 32)  # (batch, heads, T, head_dim)
SCORE_BYTES = 8 * 4 * 128 * 128 * 4  # one float32 (B, H, T, T) array: 2 MiB
# The reference peaks at 1.25x a score array in the forward (the scores, turned into probabilities in
# place, plus the output) and at 1.75x in the backward (the score gradient plus the three input
# gradients); each extra float32 (B, H, T, T) temporary adds 1.0x (a full-size boolean mask 0.25x).
FORWARD_BUDGET = 1.75
BACKWARD_BUDGET = 2.0
TIME_BUDGET = 2.5  # the reference measures about 1.0x the numpy baseline


@pytest.fixture(scope="module")
def causal_workload():
    rng = np.random.default_rng(90)
    q, k, v, grad = (rng.standard_normal(SHAPE, dtype=np.float32) for _ in range(4))
    return q, k, v, grad


def numpy_causal_step(q, k, v, grad, lower):
    """Plain numpy: causal attention forward and backward, the same math, one working (T, T) buffer each way."""
    scale = 1 / math.sqrt(q.shape[-1])
    probs = q @ np.swapaxes(k, -1, -2)
    probs *= scale
    np.copyto(probs, -np.inf, where=~lower)
    probs -= probs.max(axis=-1, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=-1, keepdims=True)
    out = probs @ v
    grad_v = np.swapaxes(probs, -1, -2) @ grad
    d_scores = grad @ np.swapaxes(v, -1, -2)
    d_scores -= np.sum(grad * out, axis=-1, keepdims=True)
    d_scores *= probs
    d_scores *= scale
    return out, d_scores @ k, np.swapaxes(d_scores, -1, -2) @ q, grad_v


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_masked_softmax_works_in_place(self):
        """masked_softmax writes the weights into the scores array it is given and returns that array."""
        scores = random_array((2, 3, 4), 91)
        got = masked_softmax(scores, causal_mask(3, 4))
        assert got is scores or np.shares_memory(got, scores), (
            "masked_softmax should overwrite `scores` (np.exp(scores, out=scores), /=) and return it: a second "
            "(..., T_q, T_k) array costs as much memory as the scores")

    @pytest.mark.budget
    def test_forward_peak_memory(self, causal_workload):
        """Causal attention forward on (8, 4, 128, 32) float32 peaks at most 1.75x one 2 MiB score array."""
        q, k, v, _ = (Tensor(a) for a in causal_workload)
        peak, out = peak_bytes(lambda: scaled_dot_product_attention(q, k, v, causal=True))
        assert_close(out.data[0, 0, :2], numpy_attention(q.data[0, 0, :2], k.data[0, 0, :2], v.data[0, 0, :2],
                                                         lower_right(2, 2)), "the first two outputs", rtol=1e-4, atol=1e-5)
        budget = FORWARD_BUDGET * SCORE_BYTES
        assert peak <= budget, (
            f"causal attention forward on {SHAPE}: peak memory {peak / 2**20:.2f} MiB; the budget is "
            f"{budget / 2**20:.2f} MiB ({FORWARD_BUDGET}x one (8, 4, 128, 128) float32 score array). Scale, mask and "
            "softmax the scores in place: every np.where or new exp(...) costs another 2 MiB")

    @pytest.mark.budget
    def test_backward_peak_memory(self, causal_workload):
        """Causal attention backward on (8, 4, 128, 32) allocates at most 2x one score array."""
        q, k, v = (Tensor(a, requires_grad=True) for a in causal_workload[:3])
        grad = causal_workload[3]
        out = scaled_dot_product_attention(q, k, v, causal=True)
        peak, (grad_q, _, _) = peak_bytes(lambda: backward_of(out, grad))
        _, expected_q, _, _ = numpy_causal_step(*(a[:1, :1] for a in causal_workload), lower_right(128, 128))
        assert_close(grad_q[:1, :1], expected_q, "grad_q of sequence 0, head 0", rtol=1e-3, atol=1e-4)
        budget = BACKWARD_BUDGET * SCORE_BYTES
        assert peak <= budget, (
            f"causal attention backward on {SHAPE}: peak memory {peak / 2**20:.2f} MiB; the budget is "
            f"{budget / 2**20:.2f} MiB ({BACKWARD_BUDGET}x one score array). Make g V^T once and turn it into the "
            "score gradient in place; rowsum(P * dP) is rowsum(g * out), which needs no (T, T) temporary")

    @pytest.mark.budget
    def test_time_within_budget_of_numpy(self, causal_workload):
        """Causal attention forward + backward on (8, 4, 128, 32) takes at most 2.5x plain numpy doing the same math."""
        q, k, v = (Tensor(a, requires_grad=True) for a in causal_workload[:3])
        grad = causal_workload[3]
        lower = lower_right(128, 128)

        def candidate():
            return backward_of(scaled_dot_product_attention(q, k, v, causal=True), grad)

        def baseline():
            return numpy_causal_step(*causal_workload, lower)

        assert_time_ratio(candidate, baseline, TIME_BUDGET, f"causal attention forward + backward, {SHAPE}")

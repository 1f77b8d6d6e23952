"""Kata 12 · Attention: every token looks at the others and takes a weighted average of what it finds.

Scaled dot-product attention ("Attention Is All You Need", Vaswani et al., 2017):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V

Each query row of Q scores every key row of K (a dot product, scaled by 1/sqrt(d)),
the softmax over the keys turns a query's scores into weights that sum to 1, and
the output is that weighted average of the value rows of V. A boolean mask (True =
may attend, PyTorch's convention) removes keys from a query's view: future tokens
(causal), padding, anything.

`scaled_dot_product_attention` is ONE differentiable op with its own backward rule,
registered through `backward_rule` (see `tinytorch/autograd.py`); it works over any
leading axes, so one call serves every sequence of a batch and every head.
`MultiHeadAttention` projects its input to queries, keys and values with one fused
Linear, splits them into heads with a reshape and a transpose, attends, merges the
heads back and projects the result:

    attn = MultiHeadAttention(dim=128, heads=4)
    y = attn(x, causal=True)                 # x (B, T, 128) -> y (B, T, 128)

    q, k, v = attn.project_qkv(x)            # each (B, 4, T, 32): the half a KV cache keeps
    y = attn.attend(q, k, v, causal=True)    # the other half; keys may be longer than queries
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.autograd import backward_rule
from tinytorch.layers import Linear, Module
from tinytorch.tensor import Tensor

# -- masks: which keys a query may attend -----------------------------------------------------


def causal_mask(length_q: int, length_k: int) -> np.ndarray:
    """(T_q, T_k) booleans: True where query i may attend key j, that is where j <= i + (T_k - T_q).

    The T_q queries are the LAST T_q positions of the T_k keys. With T_q == T_k this is
    the lower triangle, diagonal included: token i sees tokens 0..i. With T_q < T_k it
    is the decode step of a KV cache: the keys hold T_k - T_q earlier tokens plus the
    new ones, and new token i sits at position i + T_k - T_q. (PyTorch's is_causal
    aligns the triangle to the top-left instead; for T_q == T_k the two agree.)
    With T_q > T_k the first T_q - T_k queries see no key at all.
    """
    # BEGIN SOLUTION masks: refuse negative lengths (ValueError naming both), then compare key positions (1, T_k) with each query's last visible key (T_q, 1)
    if length_q < 0 or length_k < 0:
        raise ValueError(f"causal_mask: lengths must be >= 0; got T_q={length_q}, T_k={length_k}")
    last_visible = np.arange(length_q)[:, None] + (length_k - length_q)  # (T_q, 1): query i's position among the keys
    return np.arange(length_k)[None, :] <= last_visible  # (T_q, T_k)
    # END SOLUTION


def padding_mask(lengths, length: int) -> np.ndarray:
    """(B, 1, 1, T) booleans: True where key t < lengths[b], a real token of sequence b rather than padding.

    The two axes of size 1 let it broadcast over heads and queries: pass it as `mask`
    to scaled_dot_product_attention on (B, heads, T_q, T) scores, or to MultiHeadAttention.
    """
    # BEGIN SOLUTION masks: check every length is a whole number in [0, length] (ValueError naming it), then compare positions 0..length-1 with each sequence's length
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or np.any((lengths < 0) | (lengths > length) | (lengths != np.round(lengths))):
        raise ValueError(f"padding_mask: lengths must be a 1-D array of whole numbers in [0, {length}]; "
                         f"got {np.array2string(lengths, threshold=8)}")
    return (np.arange(length) < lengths[:, None])[:, None, None, :]  # (B, T) -> (B, 1, 1, T)
    # END SOLUTION


def attention_mask(mask, causal: bool, scores_shape: tuple):
    """The keys each query may attend, as booleans that broadcast to `scores_shape` (..., T_q, T_k); None for all.

    `mask` (a numpy array or a Tensor) must be boolean, True = may attend, and must
    broadcast to the scores' shape without growing it. `causal` adds causal_mask(T_q, T_k).
    With both, a key must be allowed by both.
    """
    # BEGIN SOLUTION masks: check the mask (TypeError unless boolean, ValueError naming both shapes unless it broadcasts to scores_shape), then AND it with causal_mask(T_q, T_k) when causal; None when there is nothing to mask
    allowed = None
    if mask is not None:
        allowed = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if allowed.dtype != np.bool_:
            raise TypeError(f"attention mask: expected booleans (True = may attend), got dtype {allowed.dtype}. "
                            f"For 0/1 floats use mask.astype(bool); for an additive 0/-inf mask use mask == 0")
        try:
            fits = np.broadcast_shapes(allowed.shape, tuple(scores_shape)) == tuple(scores_shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"attention mask: a mask of shape {allowed.shape} does not broadcast to the scores' "
                             f"shape {tuple(scores_shape)} (..., T_q, T_k); a padding mask is (B, 1, 1, T_k)")
    if causal:
        lower = causal_mask(scores_shape[-2], scores_shape[-1])  # (T_q, T_k)
        allowed = lower if allowed is None else allowed & lower
    return allowed
    # END SOLUTION


# -- softmax over the keys, with masked keys removed ------------------------------------------


def masked_softmax(scores: np.ndarray, allowed=None) -> np.ndarray:
    """Softmax over the last axis (the keys), IN PLACE: `scores` is overwritten with the weights and returned.

    Where `allowed` (booleans that broadcast to scores) is False the weight is exactly 0.
    A row with no allowed key at all gets all zeros, never nan. No (..., T_q, T_k)
    array is allocated besides `scores` itself.
    """
    # BEGIN SOLUTION masked_softmax: set disallowed scores to -inf, subtract each row's maximum (0 for a row that is all -inf), exponentiate, divide by the row sums (1 for a row that sums to 0); all in place
    if allowed is not None:
        np.copyto(scores, -np.inf, where=~allowed)  # exp(-inf) = 0: a masked key gets no weight
    row_max = scores.max(axis=-1, keepdims=True, initial=-np.inf)  # (..., T_q, 1); -inf for a row with no key
    row_max[np.isneginf(row_max)] = 0  # so that -inf - max stays -inf instead of -inf - -inf = nan
    scores -= row_max
    np.exp(scores, out=scores)
    row_sum = scores.sum(axis=-1, keepdims=True)  # (..., T_q, 1); 0 only for a row with no key
    row_sum[row_sum == 0] = 1  # that row stays all zeros: 0 / 1 instead of 0 / 0
    scores /= row_sum
    return scores
    # END SOLUTION


# -- scaled dot-product attention: one op ----------------------------------------------------------


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask=None, causal: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(d)) v over the last two axes, as one op.

    q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v); the leading
    axes (batch, heads) broadcast, and T_q may differ from T_k. `mask`: booleans, True
    = may attend, broadcasting to (..., T_q, T_k). `causal=True`: query i may attend key
    j only if j <= i + T_k - T_q (see causal_mask: the queries are the LAST T_q positions).
    A query that may attend no key at all gets a zero output and zero gradients.
    """
    q, k, v = (x if isinstance(x, Tensor) else Tensor(x) for x in (q, k, v))
    # BEGIN SOLUTION attention: refuse shapes that do not fit (ValueError naming all three), compute the scores q k^T * (1/sqrt(d)), turn them into `probs` with masked_softmax(scores, attention_mask(...)), and compute `data` = probs @ v; keep `scale` for backward
    fits = min(q.ndim, k.ndim, v.ndim) >= 2 and q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2]
    if fits:
        try:
            np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])  # the batch and head axes
        except ValueError:
            fits = False
    if not fits:
        raise ValueError(f"scaled_dot_product_attention: expected q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) "
                         f"with batch axes that broadcast; got q {q.shape}, k {k.shape}, v {v.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1])  # a Python float: float32 stays float32
    scores = q.data @ np.swapaxes(k.data, -1, -2)  # (..., T_q, T_k): every query against every key
    scores *= scale  # in place: without it, scores grow like sqrt(d) and the softmax saturates
    probs = masked_softmax(scores, attention_mask(mask, causal, scores.shape))  # (..., T_q, T_k), same buffer
    data = probs @ v.data  # (..., T_q, d_v): each query's weighted average of the values
    # END SOLUTION
    return Tensor.from_op(data, "scaled_dot_product_attention", (q, k, v), probs=probs, scale=scale)


@backward_rule("scaled_dot_product_attention")
def scaled_dot_product_attention_backward(out, grad):
    q, k, v = out.parents
    probs, scale = out.saved["probs"], out.saved["scale"]  # probs (..., T_q, T_k)
    # BEGIN SOLUTION gradient: grad_v = P^T g; d_probs = g V^T; the softmax rule d_scores = P * (d_probs - rowsum(P * d_probs)), where rowsum(P * d_probs) = rowsum(g * out); then grad_q = d_scores K * scale and grad_k = d_scores^T Q * scale
    grad_v = np.swapaxes(probs, -1, -2) @ grad  # (..., T_k, d_v)
    grad_scores = grad @ np.swapaxes(v.data, -1, -2)  # (..., T_q, T_k): d loss / d probs, for now
    # The softmax rule needs sum_j P_ij dP_ij per query; it equals sum_d g_id out_id, a (T_q, d) product.
    grad_scores -= np.sum(grad * out.data, axis=-1, keepdims=True)
    grad_scores *= probs  # P * (dP - rowsum): masked keys (P = 0) and empty rows get exactly 0
    grad_scores *= scale
    grad_q = grad_scores @ k.data  # (..., T_q, d)
    grad_k = np.swapaxes(grad_scores, -1, -2) @ q.data  # (..., T_k, d)
    return grad_q, grad_k, grad_v
    # END SOLUTION


# -- heads -----------------------------------------------------------------------------------------


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, T, dim) -> (B, heads, T, dim // heads): head h holds columns h*head_dim .. (h+1)*head_dim - 1.

    A reshape and a transpose, both views: no copy, no loop over heads.
    """
    # BEGIN SOLUTION heads: refuse x that is not 3-D or whose last axis heads does not divide (ValueError naming both); reshape to (B, T, heads, head_dim), then swap the T and heads axes
    if x.ndim != 3 or heads < 1 or x.shape[-1] % heads:
        raise ValueError(f"split_heads: expected (B, T, dim) with dim divisible by heads={heads}; got shape {x.shape}")
    batch, length, dim = x.shape
    return x.reshape(batch, length, heads, dim // heads).transpose(1, 2)  # (B, heads, T, head_dim)
    # END SOLUTION


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, T, head_dim) -> (B, T, heads * head_dim): the inverse of split_heads."""
    # BEGIN SOLUTION heads: refuse x that is not 4-D (ValueError naming its shape); swap the heads and T axes back, then reshape to (B, T, heads * head_dim)
    if x.ndim != 4:
        raise ValueError(f"merge_heads: expected (B, heads, T, head_dim); got shape {x.shape}")
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)  # (B, T, dim)
    # END SOLUTION


# -- multi-head attention ---------------------------------------------------------------------------


class MultiHeadAttention(Module):
    """Multi-head self-attention with a fused QKV projection.

    qkv_proj = Linear(dim, 3 * dim) computes queries, keys and values in one matmul;
    each is split into `heads` heads of head_dim = dim // heads; one
    scaled_dot_product_attention call covers every batch and head; the heads are
    merged back and out_proj = Linear(dim, dim) mixes them.

    forward(x) is attend(*project_qkv(x)). The halves are public so that a KV cache can
    keep the keys and values of earlier tokens and attend over them with only the new
    tokens' queries:

        q, k_new, v_new = attn.project_qkv(x_new)   # (B, heads, T_new, head_dim) each
        # k, v: the cached keys and values with k_new, v_new appended on axis 2 (T_past + T_new of them)
        y = attn.attend(q, k, v, causal=True)       # (B, T_new, dim)
    """

    def __init__(self, dim: int, heads: int, bias: bool = True, rng: np.random.Generator | None = None):
        super().__init__()
        # BEGIN SOLUTION multi_head: refuse heads < 1 or a dim that heads does not divide (ValueError naming both); self.qkv_proj = Linear(dim, 3 * dim), self.out_proj = Linear(dim, dim), with bias and rng
        if heads < 1 or dim % heads:
            raise ValueError(f"MultiHeadAttention: dim={dim} must split evenly into heads={heads} "
                             f"(dim % heads == 0); try heads in {[h for h in range(1, dim + 1) if dim % h == 0]}")
        self.qkv_proj = Linear(dim, 3 * dim, bias=bias, rng=rng)  # W_Q, W_K and W_V side by side
        self.out_proj = Linear(dim, dim, bias=bias, rng=rng)  # W_O
        # END SOLUTION
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads

    def project_qkv(self, x) -> tuple:
        """x (B, T, dim) -> (q, k, v), each (B, heads, T, head_dim), from one matmul with qkv_proj."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        # BEGIN SOLUTION multi_head: refuse x that is not (B, T, dim) (ValueError naming its shape); project with qkv_proj (B, T, 3 dim), slice q, k and v out of the last axis, and split each into heads
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"MultiHeadAttention: expected x of shape (B, T, {self.dim}); got {x.shape}")
        qkv = self.qkv_proj(x)  # (B, T, 3 * dim): queries, keys and values side by side
        q, k, v = (qkv[..., part * self.dim:(part + 1) * self.dim] for part in range(3))  # (B, T, dim) each
        return split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads)
        # END SOLUTION

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask=None, causal: bool = False) -> Tensor:
        """q (B, heads, T_q, head_dim) over k, v (B, heads, T_k, head_dim) -> (B, T_q, dim), heads merged and projected."""
        # BEGIN SOLUTION multi_head: one scaled_dot_product_attention call for every sequence and head, then merge_heads and out_proj
        heads_out = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)  # (B, heads, T_q, head_dim)
        return self.out_proj(merge_heads(heads_out))  # (B, T_q, dim)
        # END SOLUTION

    def forward(self, x, mask=None, causal: bool = False) -> Tensor:
        """Self-attention: x (B, T, dim) -> (B, T, dim). `mask` broadcasts to (B, heads, T, T), e.g. padding_mask."""
        q, k, v = self.project_qkv(x)
        return self.attend(q, k, v, mask=mask, causal=causal)

    def __repr__(self) -> str:
        return f"MultiHeadAttention(dim={self.dim}, heads={self.heads})"

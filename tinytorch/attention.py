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

# Kata 12_attention: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/12_attention/README.md    Tests: python -m pytest katas/12_attention

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
    raise NotImplementedError("12_attention · masks: refuse negative lengths (ValueError naming both), then compare key positions (1, T_k) with each query's last visible key (T_q, 1)")


def padding_mask(lengths, length: int) -> np.ndarray:
    """(B, 1, 1, T) booleans: True where key t < lengths[b], a real token of sequence b rather than padding.

    The two axes of size 1 let it broadcast over heads and queries: pass it as `mask`
    to scaled_dot_product_attention on (B, heads, T_q, T) scores, or to MultiHeadAttention.
    """
    raise NotImplementedError("12_attention · masks: check every length is a whole number in [0, length] (ValueError naming it), then compare positions 0..length-1 with each sequence's length")


def attention_mask(mask, causal: bool, scores_shape: tuple):
    """The keys each query may attend, as booleans that broadcast to `scores_shape` (..., T_q, T_k); None for all.

    `mask` (a numpy array or a Tensor) must be boolean, True = may attend, and must
    broadcast to the scores' shape without growing it. `causal` adds causal_mask(T_q, T_k).
    With both, a key must be allowed by both.
    """
    raise NotImplementedError("12_attention · masks: check the mask (TypeError unless boolean, ValueError naming both shapes unless it broadcasts to scores_shape), then AND it with causal_mask(T_q, T_k) when causal; None when there is nothing to mask")


# -- softmax over the keys, with masked keys removed ------------------------------------------


def masked_softmax(scores: np.ndarray, allowed=None) -> np.ndarray:
    """Softmax over the last axis (the keys), IN PLACE: `scores` is overwritten with the weights and returned.

    Where `allowed` (booleans that broadcast to scores) is False the weight is exactly 0.
    A row with no allowed key at all gets all zeros, never nan. No (..., T_q, T_k)
    array is allocated besides `scores` itself.
    """
    raise NotImplementedError("12_attention · masked_softmax: set disallowed scores to -inf, subtract each row's maximum (0 for a row that is all -inf), exponentiate, divide by the row sums (1 for a row that sums to 0); all in place")


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
    raise NotImplementedError("12_attention · attention: refuse shapes that do not fit (ValueError naming all three), compute the scores q k^T * (1/sqrt(d)), turn them into `probs` with masked_softmax(scores, attention_mask(...)), and compute `data` = probs @ v; keep `scale` for backward")
    return Tensor.from_op(data, "scaled_dot_product_attention", (q, k, v), probs=probs, scale=scale)


@backward_rule("scaled_dot_product_attention")
def scaled_dot_product_attention_backward(out, grad):
    q, k, v = out.parents
    probs, scale = out.saved["probs"], out.saved["scale"]  # probs (..., T_q, T_k)
    raise NotImplementedError("12_attention · gradient: grad_v = P^T g; d_probs = g V^T; the softmax rule d_scores = P * (d_probs - rowsum(P * d_probs)), where rowsum(P * d_probs) = rowsum(g * out); then grad_q = d_scores K * scale and grad_k = d_scores^T Q * scale")


# -- heads -----------------------------------------------------------------------------------------


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, T, dim) -> (B, heads, T, dim // heads): head h holds columns h*head_dim .. (h+1)*head_dim - 1.

    A reshape and a transpose, both views: no copy, no loop over heads.
    """
    raise NotImplementedError("12_attention · heads: refuse x that is not 3-D or whose last axis heads does not divide (ValueError naming both); reshape to (B, T, heads, head_dim), then swap the T and heads axes")


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, T, head_dim) -> (B, T, heads * head_dim): the inverse of split_heads."""
    raise NotImplementedError("12_attention · heads: refuse x that is not 4-D (ValueError naming its shape); swap the heads and T axes back, then reshape to (B, T, heads * head_dim)")


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
        raise NotImplementedError("12_attention · multi_head: refuse heads < 1 or a dim that heads does not divide (ValueError naming both); self.qkv_proj = Linear(dim, 3 * dim), self.out_proj = Linear(dim, dim), with bias and rng")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads

    def project_qkv(self, x) -> tuple:
        """x (B, T, dim) -> (q, k, v), each (B, heads, T, head_dim), from one matmul with qkv_proj."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        raise NotImplementedError("12_attention · multi_head: refuse x that is not (B, T, dim) (ValueError naming its shape); project with qkv_proj (B, T, 3 dim), slice q, k and v out of the last axis, and split each into heads")

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask=None, causal: bool = False) -> Tensor:
        """q (B, heads, T_q, head_dim) over k, v (B, heads, T_k, head_dim) -> (B, T_q, dim), heads merged and projected."""
        raise NotImplementedError("12_attention · multi_head: one scaled_dot_product_attention call for every sequence and head, then merge_heads and out_proj")

    def forward(self, x, mask=None, causal: bool = False) -> Tensor:
        """Self-attention: x (B, T, dim) -> (B, T, dim). `mask` broadcasts to (B, heads, T, T), e.g. padding_mask."""
        q, k, v = self.project_qkv(x)
        return self.attend(q, k, v, mask=mask, causal=causal)

    def __repr__(self) -> str:
        return f"MultiHeadAttention(dim={self.dim}, heads={self.heads})"

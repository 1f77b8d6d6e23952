"""Kata 13 · Transformer: LayerNorm, an MLP, a pre-norm block, and a small GPT that writes.

A decoder-only transformer (GPT, Radford et al., 2018-2019) is a stack of identical
blocks on a residual stream. Ids become vectors (kata 11), every block lets each
token read the tokens before it (attention, kata 12) and then think on its own (an
MLP), each adding what it found to the stream, and a last projection turns each
token's vector into scores (logits) for the token that comes next:

    config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = GPT(config, rng=np.random.default_rng(0))
    logits = model(ids)                               # ids (B, T) -> logits (B, T, 65)
    model.generate([[1, 2, 3]], max_new_tokens=20, temperature=0.8, top_k=10, seed=0)

The block is pre-norm, as in GPT-2: x = x + attn(ln1(x)), then x = x + mlp(ln2(x)).
`layer_norm` is one differentiable op with its own backward rule, registered through
`backward_rule` (see `tinytorch/autograd.py`).
"""

# Kata 13_transformer: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/13_transformer/README.md    Tests: python -m pytest katas/13_transformer

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinytorch.activations import gelu
from tinytorch.attention import MultiHeadAttention
from tinytorch.autograd import backward_rule, no_grad
from tinytorch.embeddings import POSITION_KINDS, TokenAndPositionEmbedding
from tinytorch.layers import Linear, Module, Parameter, Sequential
from tinytorch.tensor import Tensor

EMBEDDING_STD = 0.02  # GPT-2's initial spread of the token and position tables


# -- LayerNorm: one op --------------------------------------------------------------------------------


def layer_norm(x, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each row of x (..., C) over its last axis, then scale and shift it:

        y = (x - mean) / sqrt(var + eps) * weight + bias

    with mean and var the row's mean and BIASED variance (divided by C, not C - 1),
    weight and bias of shape (C,). One recorded op, "layer_norm".
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    raise NotImplementedError("13_transformer · layer_norm: refuse weight or bias that is not (C,) for x (..., C) (ValueError naming the shapes); compute the row mean and biased variance, `x_hat` = (x - mean) / sqrt(var + eps), `rstd` = 1 / sqrt(var + eps), and `data` = x_hat * weight + bias")
    return Tensor.from_op(data, "layer_norm", (x, weight, bias), x_hat=x_hat, rstd=rstd)


@backward_rule("layer_norm")
def layer_norm_backward(out, grad):
    x, weight, bias = out.parents
    x_hat, rstd = out.saved["x_hat"], out.saved["rstd"]  # (..., C) and (..., 1)
    raise NotImplementedError("13_transformer · layer_norm_gradient: grad_bias and grad_weight sum grad and grad * x_hat over every row; with d = grad * weight, grad_x = rstd * (d - mean(d) - x_hat * mean(d * x_hat)), the means over the last axis")


class LayerNorm(Module):
    """Layer normalisation (Ba et al., 2016) over the last axis, with a learned scale and shift.

    weight (C,) starts at ones and bias (C,) at zeros, so a fresh LayerNorm only normalises.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        raise NotImplementedError("13_transformer · layer_norm: self.weight = a Parameter of ones (dim,), self.bias = a Parameter of zeros (dim,), both float32")
        self.dim, self.eps = dim, eps

    def forward(self, x) -> Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({self.dim}, eps={self.eps})"


# -- the MLP ----------------------------------------------------------------------------------------------


class MLP(Module):
    """The position-wise feed-forward network: Linear(dim, 4 dim), GELU, Linear(4 dim, dim).

    Each token goes through it on its own; attention is where tokens meet. `hidden`
    defaults to 4 * dim, as in the original Transformer and GPT-2.
    """

    def __init__(self, dim: int, hidden: int | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        hidden = 4 * dim if hidden is None else hidden
        raise NotImplementedError("13_transformer · mlp: self.fc = Linear(dim, hidden), self.proj = Linear(hidden, dim), both with rng")
        self.dim, self.hidden = dim, hidden

    def forward(self, x) -> Tensor:
        raise NotImplementedError("13_transformer · mlp: fc, GELU, proj")

    def __repr__(self) -> str:
        return f"MLP({self.dim}, hidden={self.hidden})"


# -- the block --------------------------------------------------------------------------------------------


class Block(Module):
    """A pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)).

    The residual stream x is never normalised itself: each branch reads a normalised
    copy and ADDS its result, so a block whose branches output zero passes x through
    unchanged, and the gradient has a straight path from the loss to the embeddings.

    `cache`, if given, is an object with `append(k, v) -> (k, v)`: it receives the new
    tokens' keys and values (B, heads, T_new, head_dim) and returns the keys and values of
    every token so far, which the new queries then attend over: a KV cache.
    """

    def __init__(self, dim: int, heads: int, rng: np.random.Generator | None = None):
        super().__init__()
        raise NotImplementedError("13_transformer · block: self.ln1 = LayerNorm(dim), self.attn = MultiHeadAttention(dim, heads), self.ln2 = LayerNorm(dim), self.mlp = MLP(dim), in that order, with rng")

    def forward(self, x: Tensor, mask=None, causal: bool = True, cache=None) -> Tensor:
        """x (B, T, C) -> (B, T, C)."""
        raise NotImplementedError("13_transformer · block: q, k, v = attn.project_qkv(ln1(x)); let the cache (if any) extend k and v; x + attn.attend(q, k, v, mask, causal); then x + mlp(ln2(x))")


# -- the GPT ------------------------------------------------------------------------------------------------


@dataclass
class GPTConfig:
    """The shape of a GPT. block_size is the longest context it reads; n_embd is C, the width."""

    vocab_size: int
    block_size: int
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    positions: str = "learned"  # or "sinusoidal": a fixed table that holds no parameters
    tie_weights: bool = False  # the LM head reuses the token table (transposed) instead of its own weight

    def __post_init__(self):
        raise NotImplementedError("13_transformer · gpt: refuse a size that is not a positive integer, an n_embd that n_head does not divide, or an unknown `positions` (ValueError naming the field and its value)")

    def num_parameters(self) -> int:
        """The parameter count of GPT(self), from the formula (the lesson derives it), without building it."""
        raise NotImplementedError("13_transformer · gpt: V C token rows (+ block_size C learned positions), n_layer (12 C^2 + 13 C), 2 C for the final LayerNorm, and C V for an untied head")


class GPT(Module):
    """A decoder-only transformer: embeddings, n_layer pre-norm blocks, a final LayerNorm, an LM head.

        ids (B, T) -> embed (B, T, C) -> blocks (B, T, C) -> ln_f (B, T, C) -> logits (B, T, vocab_size)

    With config.tie_weights the LM head has no weight of its own: logits = h @ W_token^T,
    the token table read the other way, so one Parameter serves both ends.
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        self.config = config
        raise NotImplementedError("13_transformer · gpt: self.embed = TokenAndPositionEmbedding (std EMBEDDING_STD, the config's positions), self.blocks = a Sequential of n_layer Blocks, self.ln_f = LayerNorm, self.lm_head = Linear(n_embd, vocab_size, bias=False), or None when the weights are tied")

    def forward(self, ids, start: int = 0, caches=None) -> Tensor:
        """Logits (B, T, vocab_size) for ids (B, T) at positions start..start+T-1.

        Position t's logits score the token at position t + 1, from tokens start..t only.
        `caches`: one KV cache per block (see Block), when decoding with a cache.
        """
        raise NotImplementedError("13_transformer · gpt: refuse ids that are not (B, T) or positions past block_size (ValueError naming T, start and block_size); embed at `start`, run every block causally (with its cache), ln_f, and the LM head")

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> np.ndarray:
        """The prompt followed by `max_new_tokens` tokens, each sampled from the model's next-token logits.

        prompt_ids: (T,) or (B, T) ids; the result has the same number of axes, int64.
        temperature 0 is greedy (the most likely token, ties to the lowest id); otherwise see
        sample_next. Only the last block_size tokens are read at each step. The same seed
        gives the same tokens. No graph is recorded.
        """
        ids = np.asarray(prompt_ids)
        raise NotImplementedError("13_transformer · generate: refuse a prompt that is not (T,) or (B, T) with T >= 1, and max_new_tokens < 0 (ValueError); then, without recording a graph, repeat: crop to the last block_size ids, take the logits of the last position, sample_next, append the new ids")

    def __repr__(self) -> str:
        return f"GPT({self.config})"


# -- sampling ---------------------------------------------------------------------------------------------------


def check_sampling(temperature: float, top_k: int | None) -> None:
    """ValueError unless temperature >= 0 and top_k is None or a positive integer."""
    raise NotImplementedError("13_transformer · sampling: refuse a negative (or nan) temperature and a top_k that is not None or an integer >= 1, naming the value")


def next_token_probs(logits, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """Logits (..., V) -> the probabilities (..., V) of the next token, float64.

    softmax(logits / temperature) over the top_k largest logits only (all of them when
    top_k is None or >= V); every other token gets exactly 0. Exactly top_k tokens stay:
    among equal logits at the boundary, the lower ids are kept. temperature must be > 0.
    """
    logits = np.asarray(logits.data if isinstance(logits, Tensor) else logits, dtype=np.float64)
    raise NotImplementedError("13_transformer · sampling: check the arguments (temperature 0 is greedy, not a distribution: ValueError); divide by the temperature; with top_k, set every logit outside the top_k (a stable argsort of the negated logits) to -inf; then a stable softmax over the last axis")


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """One next-token id per row of logits (..., V): an int64 array (...,).

    temperature 0: greedy, the argmax (ties go to the lowest id), and no random number is drawn.
    Otherwise one uniform draw per row from `rng`, read against the cumulative next_token_probs.
    """
    logits = np.asarray(logits.data if isinstance(logits, Tensor) else logits)
    raise NotImplementedError("13_transformer · sampling: greedy argmax when temperature == 0; else probs = next_token_probs(...), cumulative sums over the last axis, one rng.random() per row scaled by the row's total, and the first id whose cumulative sum exceeds it")

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
    # BEGIN SOLUTION layer_norm: refuse weight or bias that is not (C,) for x (..., C) (ValueError naming the shapes); compute the row mean and biased variance, `x_hat` = (x - mean) / sqrt(var + eps), `rstd` = 1 / sqrt(var + eps), and `data` = x_hat * weight + bias
    dim = x.shape[-1] if x.ndim else None
    if dim is None or weight.shape != (dim,) or bias.shape != (dim,):
        raise ValueError(f"layer_norm: x (..., C) needs weight and bias of shape (C,); got x {x.shape}, "
                         f"weight {weight.shape}, bias {bias.shape}")
    mean = x.data.mean(axis=-1, keepdims=True)  # (..., 1)
    x_hat = x.data - mean  # (..., C): a new array, so x is never written to
    var = np.mean(np.square(x_hat), axis=-1, keepdims=True)  # (..., 1), biased: divided by C
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1); eps inside the root keeps a constant row finite
    x_hat *= rstd  # (..., C): each row now has mean 0 and variance var / (var + eps)
    data = x_hat * weight.data + bias.data  # (..., C)
    # END SOLUTION
    return Tensor.from_op(data, "layer_norm", (x, weight, bias), x_hat=x_hat, rstd=rstd)


@backward_rule("layer_norm")
def layer_norm_backward(out, grad):
    x, weight, bias = out.parents
    x_hat, rstd = out.saved["x_hat"], out.saved["rstd"]  # (..., C) and (..., 1)
    # BEGIN SOLUTION layer_norm_gradient: grad_bias and grad_weight sum grad and grad * x_hat over every row; with d = grad * weight, grad_x = rstd * (d - mean(d) - x_hat * mean(d * x_hat)), the means over the last axis
    dim = x_hat.shape[-1]
    grad_bias = grad.reshape(-1, dim).sum(axis=0)  # (C,): every row added the same bias
    grad_weight = (grad * x_hat).reshape(-1, dim).sum(axis=0)  # (C,)
    d_hat = grad * weight.data  # (..., C): the gradient reaching x_hat
    # x_hat depends on the whole row through the mean and the variance: remove the part of d_hat that
    # only shifts the row (its mean) and the part along x_hat (which only rescales it).
    grad_x = d_hat - d_hat.mean(axis=-1, keepdims=True)
    grad_x -= x_hat * np.mean(d_hat * x_hat, axis=-1, keepdims=True)
    grad_x *= rstd
    return grad_x, grad_weight, grad_bias
    # END SOLUTION


class LayerNorm(Module):
    """Layer normalisation (Ba et al., 2016) over the last axis, with a learned scale and shift.

    weight (C,) starts at ones and bias (C,) at zeros, so a fresh LayerNorm only normalises.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        # BEGIN SOLUTION layer_norm: self.weight = a Parameter of ones (dim,), self.bias = a Parameter of zeros (dim,), both float32
        self.weight = Parameter(np.ones(dim, dtype=np.float32))
        self.bias = Parameter(np.zeros(dim, dtype=np.float32))
        # END SOLUTION
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
        # BEGIN SOLUTION mlp: self.fc = Linear(dim, hidden), self.proj = Linear(hidden, dim), both with rng
        self.fc = Linear(dim, hidden, rng=rng)
        self.proj = Linear(hidden, dim, rng=rng)
        # END SOLUTION
        self.dim, self.hidden = dim, hidden

    def forward(self, x) -> Tensor:
        # BEGIN SOLUTION mlp: fc, GELU, proj
        h = gelu(self.fc(x))  # (B, T, 4C)
        return self.proj(h)  # (B, T, C)
        # END SOLUTION

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
        # BEGIN SOLUTION block: self.ln1 = LayerNorm(dim), self.attn = MultiHeadAttention(dim, heads), self.ln2 = LayerNorm(dim), self.mlp = MLP(dim), in that order, with rng
        self.ln1 = LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, rng=rng)
        self.ln2 = LayerNorm(dim)
        self.mlp = MLP(dim, rng=rng)
        # END SOLUTION

    def forward(self, x: Tensor, mask=None, causal: bool = True, cache=None) -> Tensor:
        """x (B, T, C) -> (B, T, C)."""
        # BEGIN SOLUTION block: q, k, v = attn.project_qkv(ln1(x)); let the cache (if any) extend k and v; x + attn.attend(q, k, v, mask, causal); then x + mlp(ln2(x))
        q, k, v = self.attn.project_qkv(self.ln1(x))  # (B, heads, T, head_dim) each
        if cache is not None:
            k, v = cache.append(k, v)  # (B, heads, T_past + T, head_dim): every token so far
        x = x + self.attn.attend(q, k, v, mask=mask, causal=causal)  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)
        # END SOLUTION


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
        # BEGIN SOLUTION gpt: refuse a size that is not a positive integer, an n_embd that n_head does not divide, or an unknown `positions` (ValueError naming the field and its value)
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must split evenly into n_head={self.n_head} heads")
        if self.positions not in POSITION_KINDS:
            raise ValueError(f"GPTConfig: positions must be one of {POSITION_KINDS}, got {self.positions!r}")
        # END SOLUTION

    def num_parameters(self) -> int:
        """The parameter count of GPT(self), from the formula (the lesson derives it), without building it."""
        # BEGIN SOLUTION gpt: V C token rows (+ block_size C learned positions), n_layer (12 C^2 + 13 C), 2 C for the final LayerNorm, and C V for an untied head
        vocab, width = self.vocab_size, self.n_embd
        embeddings = vocab * width + (self.block_size * width if self.positions == "learned" else 0)
        per_block = 12 * width * width + 13 * width  # attention 4 C^2 + 4 C, MLP 8 C^2 + 5 C, two LayerNorms 4 C
        head = 0 if self.tie_weights else width * vocab
        return embeddings + self.n_layer * per_block + 2 * width + head
        # END SOLUTION


class GPT(Module):
    """A decoder-only transformer: embeddings, n_layer pre-norm blocks, a final LayerNorm, an LM head.

        ids (B, T) -> embed (B, T, C) -> blocks (B, T, C) -> ln_f (B, T, C) -> logits (B, T, vocab_size)

    With config.tie_weights the LM head has no weight of its own: logits = h @ W_token^T,
    the token table read the other way, so one Parameter serves both ends.
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None):
        super().__init__()
        self.config = config
        # BEGIN SOLUTION gpt: self.embed = TokenAndPositionEmbedding (std EMBEDDING_STD, the config's positions), self.blocks = a Sequential of n_layer Blocks, self.ln_f = LayerNorm, self.lm_head = Linear(n_embd, vocab_size, bias=False), or None when the weights are tied
        width = config.n_embd
        self.embed = TokenAndPositionEmbedding(config.vocab_size, width, config.block_size,
                                               positions=config.positions, std=EMBEDDING_STD, rng=rng)
        self.blocks = Sequential(*(Block(width, config.n_head, rng=rng) for _ in range(config.n_layer)))
        self.ln_f = LayerNorm(width)
        self.lm_head = None if config.tie_weights else Linear(width, config.vocab_size, bias=False, rng=rng)
        # END SOLUTION

    def forward(self, ids, start: int = 0, caches=None) -> Tensor:
        """Logits (B, T, vocab_size) for ids (B, T) at positions start..start+T-1.

        Position t's logits score the token at position t + 1, from tokens start..t only.
        `caches`: one KV cache per block (see Block), when decoding with a cache.
        """
        # BEGIN SOLUTION gpt: refuse ids that are not (B, T) or positions past block_size (ValueError naming T, start and block_size); embed at `start`, run every block causally (with its cache), ln_f, and the LM head
        if np.ndim(ids) != 2:
            raise ValueError(f"GPT: ids must be (B, T), a batch of sequences; got shape {np.shape(ids)}")
        length = np.shape(ids)[1]
        if start < 0 or start + length > self.config.block_size:
            raise ValueError(f"GPT: positions {start}..{start + length - 1} (T={length}, start={start}) do not fit "
                             f"in block_size={self.config.block_size}; crop the context to its last "
                             f"{self.config.block_size} tokens")
        x = self.embed(ids, start=start)  # (B, T, C)
        for index, block in enumerate(self.blocks.layers):
            x = block(x, causal=True, cache=None if caches is None else caches[index])  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        if self.lm_head is None:
            return x @ self.embed.token.weight.transpose()  # (B, T, C) @ (C, V) -> (B, T, V)
        return self.lm_head(x)  # (B, T, V)
        # END SOLUTION

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> np.ndarray:
        """The prompt followed by `max_new_tokens` tokens, each sampled from the model's next-token logits.

        prompt_ids: (T,) or (B, T) ids; the result has the same number of axes, int64.
        temperature 0 is greedy (the most likely token, ties to the lowest id); otherwise see
        sample_next. Only the last block_size tokens are read at each step. The same seed
        gives the same tokens. No graph is recorded.
        """
        ids = np.asarray(prompt_ids)
        # BEGIN SOLUTION generate: refuse a prompt that is not (T,) or (B, T) with T >= 1, and max_new_tokens < 0 (ValueError); then, without recording a graph, repeat: crop to the last block_size ids, take the logits of the last position, sample_next, append the new ids
        if ids.ndim not in (1, 2) or ids.shape[-1] == 0:
            raise ValueError(f"generate: prompt_ids must be (T,) or (B, T) with T >= 1; got shape {ids.shape}")
        if max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
        check_sampling(temperature, top_k)  # before the first step, not after a long prompt
        single = ids.ndim == 1
        ids = ids.astype(np.int64).reshape(-1, ids.shape[-1])  # (B, T)
        rng = np.random.default_rng(seed)
        with no_grad():
            for _ in range(max_new_tokens):
                context = ids[:, -self.config.block_size:]  # (B, <= block_size): the model sees no further back
                logits = self(context).data[:, -1, :]  # (B, V): the next token after each sequence
                next_ids = sample_next(logits, temperature, top_k, rng)  # (B,)
                ids = np.concatenate([ids, next_ids[:, None]], axis=1)  # (B, T + 1)
        return ids[0] if single else ids
        # END SOLUTION

    def __repr__(self) -> str:
        return f"GPT({self.config})"


# -- sampling ---------------------------------------------------------------------------------------------------


def check_sampling(temperature: float, top_k: int | None) -> None:
    """ValueError unless temperature >= 0 and top_k is None or a positive integer."""
    # BEGIN SOLUTION sampling: refuse a negative (or nan) temperature and a top_k that is not None or an integer >= 1, naming the value
    if not temperature >= 0:
        raise ValueError(f"sampling: temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"sampling: top_k must be None or an integer >= 1, got {top_k!r}")
    # END SOLUTION


def next_token_probs(logits, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """Logits (..., V) -> the probabilities (..., V) of the next token, float64.

    softmax(logits / temperature) over the top_k largest logits only (all of them when
    top_k is None or >= V); every other token gets exactly 0. Exactly top_k tokens stay:
    among equal logits at the boundary, the lower ids are kept. temperature must be > 0.
    """
    logits = np.asarray(logits.data if isinstance(logits, Tensor) else logits, dtype=np.float64)
    # BEGIN SOLUTION sampling: check the arguments (temperature 0 is greedy, not a distribution: ValueError); divide by the temperature; with top_k, set every logit outside the top_k (a stable argsort of the negated logits) to -inf; then a stable softmax over the last axis
    check_sampling(temperature, top_k)
    if temperature == 0:
        raise ValueError("next_token_probs: temperature 0 means greedy decoding, which has no distribution; "
                         "use sample_next or generate with temperature=0")
    scaled = logits / temperature  # (..., V), a new array: the caller's logits stay as they were
    if top_k is not None and top_k < scaled.shape[-1]:
        ranked = np.argsort(-scaled, axis=-1, kind="stable")  # (..., V) best first; equal logits by id
        np.put_along_axis(scaled, ranked[..., top_k:], -np.inf, axis=-1)  # only the best top_k remain
    scaled -= scaled.max(axis=-1, keepdims=True)
    probs = np.exp(scaled, out=scaled)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs
    # END SOLUTION


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """One next-token id per row of logits (..., V): an int64 array (...,).

    temperature 0: greedy, the argmax (ties go to the lowest id), and no random number is drawn.
    Otherwise one uniform draw per row from `rng`, read against the cumulative next_token_probs.
    """
    logits = np.asarray(logits.data if isinstance(logits, Tensor) else logits)
    # BEGIN SOLUTION sampling: greedy argmax when temperature == 0; else probs = next_token_probs(...), cumulative sums over the last axis, one rng.random() per row scaled by the row's total, and the first id whose cumulative sum exceeds it
    check_sampling(temperature, top_k)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    rng = np.random.default_rng() if rng is None else rng
    cumulative = np.cumsum(next_token_probs(logits, temperature, top_k), axis=-1)  # (..., V)
    draws = rng.random(cumulative.shape[:-1] + (1,)) * cumulative[..., -1:]  # (..., 1) in [0, total)
    # The first id whose cumulative sum passes the draw: the count of ids at or below it.
    # A token of probability 0 never passes it first, so top-k's exclusions hold.
    return np.sum(cumulative <= draws, axis=-1).astype(np.int64)
    # END SOLUTION

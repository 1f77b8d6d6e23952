"""Kata 17 · KV cache: decode one token at a time without recomputing the past.

A GPT writes one token per step, and at each step every block needs the keys and
values of every token so far. Under a causal mask those never change once computed:
token 5's key is the same at step 6 as at step 600. So keep them. Each block gets a
`KVCache`, arrays (B, heads, max_len, head_dim) for the keys and for the values,
allocated once; the prompt fills the first T positions (the prefill), and every
decode step writes the one new token's key and value at the next position and
attends over the filled part, a view of the arrays, never a copy:

    cache = ModelCache.for_model(model, batch=1, max_len=64)  # one KVCache per block
    logits = forward_with_cache(model, prompt, cache)        # prefill: (1, T, V), positions 0..T-1
    logits = forward_with_cache(model, [[next_id]], cache)   # one token at position T: (1, 1, V)
    generate(model, prompt, max_new_tokens=40, temperature=0)   # the same tokens as model.generate

A decode step then costs work linear in the tokens so far (one query against t keys)
instead of rerunning the model over all t tokens. The price is memory:
2 x layers x B x heads x max_len x head_dim numbers, whose bytes `nbytes` counts.

The seams are kata 13's: `Block.forward(x, cache=c)` hands the new keys and values
to `c.append(k, v)` and attends over what it returns; `GPT.forward(ids, start,
caches)` gives the new tokens their positions and each block its cache.
"""

# Kata 17_kv_cache: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/17_kv_cache/README.md    Tests: python -m pytest katas/17_kv_cache

from __future__ import annotations

import numpy as np

from tinytorch.autograd import no_grad
from tinytorch.tensor import Tensor
from tinytorch.transformer import check_sampling, sample_next


def check_size(owner: str, name: str, value) -> None:
    """ValueError unless `value` is a positive integer (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


# -- one layer's cache ------------------------------------------------------------------------------------


class KVCache:
    """The keys and values of one attention layer, for up to max_len tokens.

    keys, values: (B, heads, max_len, head_dim) arrays, allocated once, of which
    positions 0..length-1 are filled. append(k, v) writes the new tokens' keys and
    values at positions length.. and returns views of everything filled so far.
    The cache is for inference: what it returns carries no gradient back to k and v.
    """

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, dtype=np.float32):
        raise NotImplementedError("17_kv_cache · kv_cache: refuse a batch, heads, max_len or head_dim that is not a positive integer (check_size); allocate self.keys and self.values once, zeros (batch, heads, max_len, head_dim) of `dtype`; nothing is filled yet: self.length = 0")
        self.batch, self.heads, self.max_len, self.head_dim = batch, heads, max_len, head_dim

    @property
    def dtype(self) -> np.dtype:
        return self.keys.dtype

    def append(self, k, v) -> tuple[Tensor, Tensor]:
        """Store the keys and values of T_new new tokens; return those of all tokens so far.

        k, v: Tensors (or arrays) (B, heads, T_new, head_dim), as `project_qkv` makes them.
        Returns (keys, values), Tensors (B, heads, length, head_dim) of the cache's dtype
        whose data are views of self.keys and self.values, positions 0..length-1.
        ValueError naming the shapes if k or v does not fit, and naming max_len if the
        cache has no room for T_new more tokens; a refused append changes nothing.
        """
        k = k.data if isinstance(k, Tensor) else np.asarray(k)
        v = v.data if isinstance(v, Tensor) else np.asarray(v)
        raise NotImplementedError("17_kv_cache · append: check k and v are both (batch, heads, T_new, head_dim) (ValueError naming the expected and the given shapes) and that length + T_new <= max_len (ValueError naming max_len); write k and v at positions length..length+T_new-1 of axis 2, advance length, and return Tensors (of the cache's dtype) wrapping the views keys[:, :, :length] and values[:, :, :length]")

    def reset(self) -> None:
        """Forget every token: the next append writes at position 0 again. Nothing is reallocated."""
        raise NotImplementedError("17_kv_cache · reset: the filled part is whatever length says, so setting it to 0 forgets everything (the arrays are overwritten before they are read again)")

    @property
    def nbytes(self) -> int:
        """The bytes this cache holds: keys and values, all max_len positions, filled or not.

        2 x B x heads x max_len x head_dim x itemsize: the memory is taken when the cache is
        made, so this does not change as tokens are appended.
        """
        raise NotImplementedError("17_kv_cache · nbytes: the bytes of the keys' array plus the bytes of the values' array (each B x heads x max_len x head_dim x itemsize)")

    def __repr__(self) -> str:
        return (f"KVCache(batch={self.batch}, heads={self.heads}, max_len={self.max_len}, "
                f"head_dim={self.head_dim}, dtype={self.dtype}, length={self.length})")


# -- one cache per layer -----------------------------------------------------------------------------------


class ModelCache:
    """One KVCache per block of a GPT, each with arrays of its own; pass it as GPT.forward's `caches`.

    cache[i] is block i's KVCache; len(cache) is the number of layers; cache.length is the
    number of tokens cached so far (the position the next token gets).
    """

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int, dtype=np.float32):
        raise NotImplementedError("17_kv_cache · model_cache: refuse `layers` that is not a positive integer (check_size); self.layers = a list of `layers` separate KVCaches, each made by its own KVCache(...) call")

    @classmethod
    def for_model(cls, model, batch: int, max_len: int | None = None) -> "ModelCache":
        """A cache that fits `model` (a GPT): its layers, heads, head_dim and dtype, for `batch` sequences.

        max_len defaults to the model's block_size; a longer cache would hold positions the
        model has no embedding for (ValueError naming max_len and block_size).
        """
        config = model.config
        raise NotImplementedError("17_kv_cache · model_cache: max_len defaults to config.block_size and may not exceed it (ValueError naming both); one KVCache per layer of (batch, n_head, max_len, n_embd // n_head), in the dtype of the model's token table")

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> KVCache:
        return self.layers[index]

    @property
    def batch(self) -> int:
        return self.layers[0].batch

    @property
    def max_len(self) -> int:
        return self.layers[0].max_len

    @property
    def length(self) -> int:
        """Tokens cached so far: the position of the next token."""
        raise NotImplementedError("17_kv_cache · model_cache: every layer holds the same tokens, so ask the first layer")

    def reset(self) -> None:
        """Forget every token in every layer."""
        raise NotImplementedError("17_kv_cache · model_cache: reset every layer's cache")

    @property
    def nbytes(self) -> int:
        """2 x layers x B x heads x max_len x head_dim x itemsize: the bytes of every layer's cache."""
        raise NotImplementedError("17_kv_cache · model_cache: the sum of every layer's nbytes")

    def __repr__(self) -> str:
        return f"ModelCache({len(self.layers)} x {self.layers[0]!r})"


# -- cached decoding -----------------------------------------------------------------------------------------


def forward_with_cache(model, ids, cache: ModelCache) -> Tensor:
    """Logits (B, T, V) of `model` for ids (B, T) that come after the cache.length tokens already cached.

    The new tokens get positions cache.length .. cache.length + T - 1 and attend over every
    cached token and each other (causally); their keys and values are added to the cache.
    ValueError for ids that are not (B, T) and for a cache whose number of layers is not the
    model's. A cache without room for T more tokens, or made for another batch size, is
    refused by the first block's KVCache.append, before anything is stored.
    """
    ids = np.asarray(ids)
    raise NotImplementedError("17_kv_cache · cached_forward: refuse ids that are not (B, T) and a cache whose len() is not the model's n_layer (ValueError naming both numbers); then run the model with start = cache.length (the position of the first new token) and caches=cache")


def generate(model, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = None, use_cache: bool = True, cache: ModelCache | None = None) -> np.ndarray:
    """model.generate(...) with a KV cache: the same tokens, each step one token's work.

    The prompt (T,) or (B, T) goes through the model once (prefill, positions 0..T-1);
    then each new token is sampled from the last logits and fed in alone at the next
    position. The cache must hold T + max_new_tokens - 1 tokens (the last new token is
    never fed back): `cache` if given (it is reset first, so one cache serves many
    calls), else one made for exactly that many (ValueError naming max_len, or
    block_size, when it does not fit: a cache cannot slide its window as
    model.generate does). use_cache=False is model.generate itself. Sampling as in
    kata 13: temperature 0 is greedy; the same seed gives the same tokens.
    """
    ids = np.asarray(prompt_ids)
    raise NotImplementedError("17_kv_cache · generate: without a cache, return model.generate(...); otherwise check the prompt ((T,) or (B, T), T >= 1), max_new_tokens >= 0 and the sampling arguments; return the prompt as int64 if there is nothing to generate; a cache must hold T + max_new_tokens - 1 tokens (ValueError naming max_len, or block_size when you make the cache); make one of exactly that size, or reset the given one; then, without a graph, prefill the whole prompt, and repeat: sample from the last logits, store the token, and (unless it was the last) feed it alone")

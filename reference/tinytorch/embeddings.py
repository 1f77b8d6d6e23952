"""Kata 11 · Embeddings: token ids become vectors, and positions become vectors too.

A language model reads integers (token ids from a tokenizer) but computes with
vectors. An `Embedding` is a table of `num_embeddings` rows of `dim` numbers, and
looking up id 7 means reading row 7: a gather, not arithmetic. Its gradient is the
reverse, a scatter: the gradient of each token's output row is ADDED into the row
of the table it came from, so an id that appears twice gets both contributions.

Attention (kata 12) does not know the order of its inputs, so each position gets
a vector as well, added to its token's vector:

    embed = TokenAndPositionEmbedding(vocab_size=65, dim=128, max_len=256)
    x = embed(ids)              # ids (B, T) -> token rows + position rows (B, T, 128)
    x = embed(ids, start=40)    # the positions 40 .. 40+T-1 (decoding after a prompt of 40)

Positions are either learned (a trained table, as in GPT-2) or sinusoidal (a fixed
table of sines and cosines, as in "Attention Is All You Need"); `PositionalEmbedding`
serves both. The lookup is one differentiable op, "embedding", registered with
autograd through `backward_rule` (see `tinytorch/autograd.py`).
"""

from __future__ import annotations

import numpy as np

from tinytorch.autograd import backward_rule
from tinytorch.layers import Module, Parameter
from tinytorch.tensor import Tensor

POSITION_KINDS = ("learned", "sinusoidal")


def normal_table(rows: int, dim: int, std: float = 1.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """A float32 (rows, dim) table of N(0, std^2) values, from `rng` (or numpy's global generator)."""
    draw = np.random.standard_normal if rng is None else rng.standard_normal
    return (draw((rows, dim)) * std).astype(np.float32)


def check_size(value, name: str, where: str) -> int:
    """`value` as an int if it is a whole number >= 1, else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


# -- ids: the integers a lookup reads ---------------------------------------------------------


def check_ids(ids, num_embeddings: int) -> np.ndarray:
    """Token ids (a list, an array or a Tensor, any shape) as an integer index array, checked.

    Every id must be a whole number in [0, num_embeddings). Whole-number floats are
    accepted (a Tensor stores float32); 2.5, nan or a boolean array are not. An id out
    of range is an IndexError (as in PyTorch) naming the id, its position and the
    vocabulary size; numpy would read row -1 as the LAST row without complaint.
    """
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    # BEGIN SOLUTION ids: refuse non-numeric dtypes (TypeError) and fractional or non-finite floats (ValueError), then ids outside [0, num_embeddings) (IndexError), each naming the id and the vocabulary size; return the ids as np.intp
    if not np.issubdtype(ids.dtype, np.integer):
        if not np.issubdtype(ids.dtype, np.floating):
            raise TypeError(f"embedding: ids must be integers that index the {num_embeddings} rows of the "
                            f"table; got an array of dtype {ids.dtype}")
        fractional = ~(np.isfinite(ids) & (ids == np.round(ids)))
        if fractional.any():
            position = tuple(int(i) for i in np.argwhere(fractional)[0])
            raise ValueError(f"embedding: id {ids[position]} at position {position} is not a whole number; "
                             f"ids index the rows 0..{num_embeddings - 1} of a vocabulary of {num_embeddings}")
    outside = (ids < 0) | (ids >= num_embeddings)  # checked before the cast, which would wrap huge floats
    if outside.any():
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        raise IndexError(f"embedding: id {ids[position]} at position {position} is out of range for a vocabulary "
                         f"of {num_embeddings} ids; valid ids are 0..{num_embeddings - 1}")
    return ids.astype(np.intp, copy=False)
    # END SOLUTION


# -- the lookup: one differentiable op ----------------------------------------------------------


def embedding(ids, weight: Tensor) -> Tensor:
    """The rows of `weight` (num_embeddings, dim) at `ids` of any shape: a Tensor of shape (*ids.shape, dim).

    A gather: one fancy index into the table, never a one-hot matrix times the table.
    """
    # BEGIN SOLUTION lookup: refuse a weight that is not 2-D (ValueError naming its shape), check the ids with check_ids, and gather `data`, the rows of the weight at those ids
    if weight.ndim != 2:
        raise ValueError(f"embedding: the weight must be a 2-D table (num_embeddings, dim); got shape {weight.shape}")
    ids = check_ids(ids, weight.shape[0])
    data = weight.data[ids]  # (*ids.shape, dim): one gather, row by row
    # END SOLUTION
    return Tensor.from_op(data, "embedding", (weight,), ids=ids)


@backward_rule("embedding")
def embedding_backward(out, grad):
    (weight,) = out.parents
    ids = out.saved["ids"]  # (*ids.shape,) np.intp
    # BEGIN SOLUTION gradient: scatter-ADD every token's gradient row (grad is (*ids.shape, dim)) into zeros shaped like the weight, so a repeated id receives the sum of its rows; for speed, add element by element into the flattened table
    # (num_embeddings, dim), the only table-sized array; C order whatever the weight's layout, so that the
    # reshape(-1) below is a view to add into (zeros_like of a transposed table would make it a copy)
    grad_weight = np.zeros(weight.shape, dtype=weight.dtype)
    dim = grad_weight.shape[1]
    # Each gradient value lands on element (id, column) of the table, number id * dim + column when the
    # table is read as one long row. np.add.at on 1-D arrays takes numpy's fast path; on rows, a slow one.
    elements = (ids[..., None] * dim + np.arange(dim)).reshape(-1)  # (tokens * dim,)
    np.add.at(grad_weight.reshape(-1), elements, grad.reshape(-1))  # unbuffered: repeated ids add up
    return (grad_weight,)
    # END SOLUTION


class Embedding(Module):
    """A learned table of `num_embeddings` vectors of size `dim`; calling it looks up ids.

    The weight, shape (num_embeddings, dim), starts as N(0, std^2) values, std = 1 as in
    PyTorch's nn.Embedding (GPT-2 uses std = 0.02).

        tokens = Embedding(50_257, 768)
        tokens(ids)                        # ids (B, T) -> (B, T, 768)
    """

    def __init__(self, num_embeddings: int, dim: int, std: float = 1.0, rng: np.random.Generator | None = None):
        super().__init__()
        # BEGIN SOLUTION lookup: check both sizes are positive integers (check_size), then self.weight = a Parameter holding normal_table(num_embeddings, dim, std, rng)
        num_embeddings = check_size(num_embeddings, "num_embeddings", "Embedding")
        dim = check_size(dim, "dim", "Embedding")
        self.weight = Parameter(normal_table(num_embeddings, dim, std, rng))
        # END SOLUTION
        self.num_embeddings, self.dim = num_embeddings, dim

    def forward(self, ids) -> Tensor:
        return embedding(ids, self.weight)

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.dim})"


# -- positions -------------------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int, start: int = 0, base: float = 10000.0,
                         dtype=np.float32) -> Tensor:
    """The fixed position vectors of "Attention Is All You Need": a Tensor (length, dim) for positions start..start+length-1.

    Column 2i holds sin(t / base^(2i/dim)) and column 2i+1 holds cos(t / base^(2i/dim)):
    each pair of columns turns at its own frequency, from one radian per position
    (i = 0) down to one turn every 2*pi*base positions. An odd `dim` ends on a sine column.
    Computed in float64 (angles reach thousands of radians), returned in `dtype`.
    """
    # BEGIN SOLUTION sinusoidal: refuse a negative length or start and a dim below 1 (ValueError naming them); compute `table` (length, dim) in float64: angle t / base^(2i/dim) for column pair i, sine in even columns, cosine in odd ones
    if length < 0 or start < 0:
        raise ValueError(f"sinusoidal_positions: length and start must be >= 0; got length={length}, start={start}")
    dim = check_size(dim, "dim", "sinusoidal_positions")
    positions = np.arange(start, start + length, dtype=np.float64)  # (length,)
    pair = np.arange(dim) // 2  # (dim,) the pair index i of each column: 0, 0, 1, 1, 2, 2, ...
    angles = positions[:, None] / base ** (2 * pair / dim)  # (length, dim)
    table = np.empty_like(angles)
    table[:, 0::2] = np.sin(angles[:, 0::2])  # even columns: sine
    table[:, 1::2] = np.cos(angles[:, 1::2])  # odd columns: cosine of the same angle as their left neighbour
    # END SOLUTION
    return Tensor(table, dtype=dtype)


class PositionalEmbedding(Module):
    """One vector per position 0..max_len-1; `forward(length, start)` returns the rows for start..start+length-1.

    kind="learned" (GPT-2): the table is a Parameter of N(0, std^2) values, trained with the model.
    kind="sinusoidal" (the original Transformer): the table is sinusoidal_positions(max_len, dim),
    kept in `self.weight` as a plain Tensor, not a Parameter: nothing trains it and
    state_dict() leaves it out. Either way the lookup is the same embedding op.
    """

    def __init__(self, max_len: int, dim: int, kind: str = "learned", std: float = 1.0,
                 rng: np.random.Generator | None = None):
        super().__init__()
        # BEGIN SOLUTION positions: check the sizes and `kind` (ValueError listing POSITION_KINDS); self.weight = a Parameter of normal_table(...) for "learned", the plain Tensor sinusoidal_positions(max_len, dim) for "sinusoidal"
        max_len = check_size(max_len, "max_len", "PositionalEmbedding")
        dim = check_size(dim, "dim", "PositionalEmbedding")
        if kind == "learned":
            self.weight = Parameter(normal_table(max_len, dim, std, rng))
        elif kind == "sinusoidal":
            self.weight = sinusoidal_positions(max_len, dim)  # a Tensor, not a Parameter: fixed
        else:
            raise ValueError(f"PositionalEmbedding: kind must be one of {POSITION_KINDS}; got {kind!r}")
        # END SOLUTION
        self.max_len, self.dim, self.kind = max_len, dim, kind

    def forward(self, length: int, start: int = 0) -> Tensor:
        """The position vectors of positions start .. start+length-1: (length, dim)."""
        # BEGIN SOLUTION positions: refuse positions outside [0, max_len) (ValueError naming start, length and max_len), then look up rows start..start+length-1 with the embedding op
        if start < 0 or length < 0 or start + length > self.max_len:
            raise ValueError(f"PositionalEmbedding: positions {start}..{start + length - 1} (start={start}, "
                             f"length={length}) do not fit in max_len={self.max_len} positions (0..{self.max_len - 1})")
        return embedding(np.arange(start, start + length), self.weight)  # (length, dim)
        # END SOLUTION

    def __repr__(self) -> str:
        return f"PositionalEmbedding({self.max_len}, {self.dim}, kind={self.kind!r})"


class TokenAndPositionEmbedding(Module):
    """The input of a transformer: token vectors plus position vectors, (B, T) ids -> (B, T, dim).

    `self.token` is an Embedding(vocab_size, dim) and `self.position` a
    PositionalEmbedding(max_len, dim, kind=positions). `forward(ids, start)` gives the
    tokens of ids[..., t] the position start + t: a decoder that has already processed
    `start` tokens passes start so the new tokens get their true positions.
    """

    def __init__(self, vocab_size: int, dim: int, max_len: int, positions: str = "learned", std: float = 1.0,
                 rng: np.random.Generator | None = None):
        super().__init__()
        # BEGIN SOLUTION token_and_position: self.token = an Embedding(vocab_size, dim), self.position = a PositionalEmbedding(max_len, dim) of kind `positions`, both with std and rng
        self.token = Embedding(vocab_size, dim, std=std, rng=rng)
        self.position = PositionalEmbedding(max_len, dim, kind=positions, std=std, rng=rng)
        # END SOLUTION

    def forward(self, ids, start: int = 0) -> Tensor:
        """token(ids) + position(T, start), for ids of shape (..., T): (..., T, dim)."""
        # BEGIN SOLUTION token_and_position: refuse 0-d ids (ValueError), look up the tokens (..., T, dim) and the positions of the last axis (T, dim), and add them (the positions broadcast over the batch)
        if np.ndim(ids) == 0:
            raise ValueError("TokenAndPositionEmbedding: ids need at least one axis (a sequence of T ids); got a single id")
        tokens = self.token(ids)  # (..., T, dim)
        positions = self.position(np.shape(ids)[-1], start)  # (T, dim)
        return tokens + positions  # (..., T, dim): every sequence in the batch gets the same positions
        # END SOLUTION

    def __repr__(self) -> str:
        return f"TokenAndPositionEmbedding(\n  (token): {self.token!r}\n  (position): {self.position!r}\n)"

"""Kata 16 · Compression: the same network in fewer bytes and fewer FLOPs, with the cost in accuracy measured.

A trained network holds far more numbers than it needs. This module removes them in
four ways, each with its own trade:

- **Unstructured pruning** zeroes the weights of smallest magnitude, one ranking per
  layer or one over the whole model. Masks remember which are gone, and
  `MaskedOptimizer` keeps them at exactly zero while the rest fine-tune.
- **Structured pruning** removes whole neurons of a Linear or channels of a Conv2d
  (with the matching inputs of the next layer), so the weights themselves shrink and
  every matmul is cheaper.
- **A packed format** (`CSRMatrix`) keeps only the nonzero weights and their
  positions, and multiplies with them: the bytes shrink with the sparsity.
- **Low rank** replaces one Linear by two thin ones whose product is the best rank-r
  approximation of its weight (the SVD); **distillation** trains a small student on a
  big teacher's softened predictions.

    masks = magnitude_masks(model, amount=0.9, scope="global")      # {weight name: keep-mask}
    optimizer = MaskedOptimizer(Adam(model.parameters(), lr=1e-2), model, masks)  # prunes, then keeps it pruned
    smaller = prune_structured(model, amount=0.5)                    # half the hidden neurons, removed
    packed = CSRMatrix.from_dense(model[0].weight.data.T)            # y.T = packed.matmul(x.T)
    two_layers = low_rank(model[0], energy=0.9)                      # Linear(64, r), Linear(r, 128)
    loss = distillation_loss(student(x), teacher_logits, y, temperature=4.0, alpha=0.7)

Weights are the parameters with two or more dimensions (a Linear's matrix, a Conv2d's
filters); biases are never pruned and never counted.
"""

from __future__ import annotations

import copy

import numpy as np

from tinytorch.autograd import backward_rule
from tinytorch.convolutions import Conv2d
from tinytorch.layers import Linear, Module, Parameter, Sequential
from tinytorch.losses import cross_entropy
from tinytorch.tensor import Tensor

SCOPES = ("global", "layer")


# -- sparsity: which weights, and how many are zero ------------------------------------------------


def prunable_weights(model: Module) -> list:
    """(name, Parameter) for every weight pruning may zero, in named_parameters order.

    A weight is a parameter with two or more dimensions: a Linear's (in, out) matrix, a
    convolution's filters. Biases and other vectors are left out: they are a sliver of
    the bytes, and zeroing one shifts a whole unit's output.
    """
    # BEGIN SOLUTION sparsity: keep the (name, parameter) pairs of model.named_parameters() whose parameter has ndim >= 2
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.ndim >= 2]
    # END SOLUTION


def sparsity(model: Module) -> float:
    """The fraction of the prunable weights that are exactly zero, as a Python float. Biases do not count.

    Raises ValueError if the model has no prunable weight.
    """
    # BEGIN SOLUTION sparsity: count the zeros over prunable_weights(model) and divide by their total size; ValueError naming the model when there is nothing to count
    weights = prunable_weights(model)
    total = sum(parameter.size for _, parameter in weights)
    if total == 0:
        raise ValueError(f"sparsity: {type(model).__name__} has no weights (parameters of 2 or more dimensions) "
                         "to count")
    zeros = sum(int(np.count_nonzero(parameter.data == 0)) for _, parameter in weights)
    return zeros / total
    # END SOLUTION


# -- magnitude pruning: the smallest weights go -----------------------------------------------------


def keep_largest(magnitudes: np.ndarray, amount: float) -> np.ndarray:
    """Booleans of the shape of `magnitudes`: False at the round(amount * size) smallest entries, True elsewhere.

    Ties are broken by position: among equal magnitudes, the entry that comes first in
    row-major order is pruned first. So exactly round(amount * size) entries are False,
    whatever the values (a threshold `magnitudes <= t` would prune every tied entry).
    """
    # BEGIN SOLUTION magnitude: a stable argsort of the flattened magnitudes; the first round(amount * size) positions become False
    count = round(amount * magnitudes.size)
    order = np.argsort(magnitudes, axis=None, kind="stable")  # flat positions, smallest first; ties in position order
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[order[:count]] = False
    return keep.reshape(magnitudes.shape)
    # END SOLUTION


def magnitude_masks(model: Module, amount: float, scope: str = "global") -> dict:
    """{weight name: keep-mask}, pruning the fraction `amount` of the weights with the smallest |w|.

    A keep-mask is a boolean array of its weight's shape: True = kept, False = pruned.
    scope="layer": each weight loses round(amount * its size) entries, its own smallest.
    scope="global": all prunable weights are ranked together (one threshold for the whole
    model), round(amount * their total) go, and a layer of small weights loses more than
    a layer of large ones. Weights that are already zero rank first. The model is not
    changed: `apply_masks` or `MaskedOptimizer` does that.
    """
    # BEGIN SOLUTION magnitude: check amount in [0, 1], scope in SCOPES and that there are weights (ValueError naming them); per layer keep_largest(|w|) of each weight, or globally keep_largest of all |w| concatenated, split back into the weights' shapes
    if not 0 <= amount <= 1:
        raise ValueError(f"magnitude_masks: amount is the fraction of weights to prune and must be in [0, 1], "
                         f"got {amount}")
    if scope not in SCOPES:
        raise ValueError(f"magnitude_masks: scope must be one of {SCOPES}, got {scope!r}")
    weights = prunable_weights(model)
    if not weights:
        raise ValueError(f"magnitude_masks: {type(model).__name__} has no weights (parameters of 2 or more "
                         "dimensions) to prune")
    if scope == "layer":
        return {name: keep_largest(np.abs(parameter.data), amount) for name, parameter in weights}
    magnitudes = np.concatenate([np.abs(parameter.data).ravel() for _, parameter in weights])  # one ranking for all
    keep = keep_largest(magnitudes, amount)
    ends = np.cumsum([parameter.size for _, parameter in weights])[:-1]  # where each weight's part ends
    return {name: part.reshape(parameter.shape) for (name, parameter), part in zip(weights, np.split(keep, ends))}
    # END SOLUTION


def masked_parameters(model: Module, masks: dict) -> list:
    """[(Parameter, keep-mask)] for every entry of `masks`, checked against the model.

    Raises KeyError for a name that is not one of the model's parameters, TypeError for
    a mask that is not boolean, and ValueError for a mask whose shape is not its weight's.
    """
    # BEGIN SOLUTION magnitude: look every name up in dict(model.named_parameters()) (KeyError naming it and the model's names); refuse non-boolean masks (TypeError) and shapes that differ (ValueError naming both)
    parameters = dict(model.named_parameters())
    pairs = []
    for name, keep in masks.items():
        if name not in parameters:
            raise KeyError(f"masks: {name!r} is not a parameter of the model; its parameters are {list(parameters)}")
        keep = np.asarray(keep)
        if keep.dtype != np.bool_:
            raise TypeError(f"masks: the mask of {name!r} has dtype {keep.dtype}; masks are booleans, "
                            "True = kept, False = pruned")
        if keep.shape != parameters[name].shape:
            raise ValueError(f"masks: the mask of {name!r} has shape {keep.shape}, but the weight has shape "
                             f"{parameters[name].shape}")
        pairs.append((parameters[name], keep))
    return pairs
    # END SOLUTION


def apply_masks(model: Module, masks: dict) -> None:
    """Set every pruned weight (mask False) to exactly 0, in place: the model's own arrays change."""
    # BEGIN SOLUTION magnitude: for each (parameter, keep) of masked_parameters, write 0 into parameter.data where keep is False
    for parameter, keep in masked_parameters(model, masks):
        parameter.data[~keep] = 0
    # END SOLUTION


# -- fine-tuning a pruned model: the masks must hold ---------------------------------------------------


class MaskedOptimizer:
    """Wraps an optimizer so that pruned weights stay exactly zero while the others fine-tune.

    Creating it applies the masks. Then each step:
      1. zeroes the gradient of every pruned weight, so the optimizer's state (velocity,
         Adam's moments) learns nothing about it;
      2. steps the wrapped optimizer;
      3. zeroes every pruned weight again: state built before pruning (a velocity, Adam's
         moments) would otherwise move it away from zero, and the pruned weights regrow.
    `zero_grad`, `lr` (which schedules set), `state_dict` and `load_state_dict` are the
    wrapped optimizer's, so `train_epoch` and `fit` take a MaskedOptimizer unchanged.
    """

    def __init__(self, optimizer, model: Module, masks: dict):
        self.optimizer = optimizer
        # BEGIN SOLUTION fine_tuning: keep the checked (parameter, keep-mask) pairs of masked_parameters in self.masked, and apply the masks now
        self.masked = masked_parameters(model, masks)
        for parameter, keep in self.masked:
            parameter.data[~keep] = 0
        # END SOLUTION

    def step(self) -> None:
        """Zero the pruned weights' gradients, step the wrapped optimizer, zero the pruned weights again."""
        # BEGIN SOLUTION fine_tuning: for each pair, zero grad[~keep] (if there is a grad); self.optimizer.step(); then zero data[~keep]
        for parameter, keep in self.masked:
            if parameter.grad is not None:
                parameter.grad[~keep] = 0  # the optimizer's moments never see a pruned weight
        self.optimizer.step()
        for parameter, keep in self.masked:
            parameter.data[~keep] = 0  # state from before pruning may still have moved it
        # END SOLUTION

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state) -> None:
        self.optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"MaskedOptimizer({type(self.optimizer).__name__}, {len(self.masked)} masked weights)"


# -- structured pruning: remove whole neurons and channels ---------------------------------------------


def rebuild(layer, weight: np.ndarray, bias) -> Module:
    """A new layer of the kind of `layer` holding copies of `weight` and `bias` (None: no bias), in their own dtype.

    A Linear's weight is (in, out); a Conv2d's is (out, in, kh, kw), and the new Conv2d
    keeps the stride and padding of `layer`.
    """
    rng = np.random.default_rng(0)  # the new layer's random init is replaced at once
    if isinstance(layer, Conv2d):
        out_channels, in_channels, kh, kw = weight.shape
        new = Conv2d(in_channels, out_channels, (kh, kw), layer.stride, layer.padding, bias=bias is not None, rng=rng)
    else:
        new = Linear(*weight.shape, bias=bias is not None, rng=rng)
    new.weight = Parameter(np.array(weight), dtype=weight.dtype)
    new.bias = None if bias is None else Parameter(np.array(bias), dtype=bias.dtype)
    return new


def unit_importance(layer) -> np.ndarray:
    """The L1 norm of each output unit's weights.

    A Linear's units are the columns of its (in, out) weight: (out_features,). A Conv2d's
    are its filters, weight[o] of shape (in, kh, kw): (out_channels,).
    """
    # BEGIN SOLUTION structured: the sum of |weight| over every axis but the units' axis: axis 0 of a Linear's (in, out) weight, axes 1, 2 and 3 of a Conv2d's (out, in, kh, kw)
    magnitudes = np.abs(layer.weight.data)
    if isinstance(layer, Conv2d):
        return magnitudes.sum(axis=(1, 2, 3))  # (out_channels,): one number per filter
    return magnitudes.sum(axis=0)  # (out_features,): one number per column
    # END SOLUTION


def units_to_keep(layer, amount: float) -> np.ndarray:
    """The indices of the output units that stay, ascending: all but the round(amount * units) least important.

    Importance is `unit_importance`; among equal ones the lower index goes first. Raises
    ValueError if amount is outside [0, 1] or would remove every unit.
    """
    # BEGIN SOLUTION structured: check amount (ValueError); n - round(amount * n) must be at least 1 (ValueError naming the layer); a stable argsort of the importance, drop the first round(amount * n), sort what is left
    if not 0 <= amount <= 1:
        raise ValueError(f"units_to_keep: amount is the fraction of units to remove and must be in [0, 1], "
                         f"got {amount}")
    importance = unit_importance(layer)
    count = round(amount * len(importance))
    if count == len(importance):
        raise ValueError(f"units_to_keep: amount={amount} would remove all {len(importance)} units of {layer!r}; "
                         "a layer needs at least one")
    order = np.argsort(importance, kind="stable")  # least important first; ties: the lower index first
    return np.sort(order[count:])  # ascending: the kept units stay in their order
    # END SOLUTION


def keep_outputs(layer, keep: np.ndarray):
    """A new, smaller layer computing only the output units `keep` of `layer`, with their bias entries.

    A Linear keeps the columns `keep` of its weight, a Conv2d the filters `keep`.
    """
    # BEGIN SOLUTION structured: rebuild the layer from the units `keep` of its weight (columns of a Linear's, filters of a Conv2d's) and the entries `keep` of its bias (or None)
    bias = None if layer.bias is None else layer.bias.data[keep]
    if isinstance(layer, Conv2d):
        return rebuild(layer, layer.weight.data[keep], bias)  # (kept, in, kh, kw)
    return rebuild(layer, layer.weight.data[:, keep], bias)  # (in, kept)
    # END SOLUTION


def keep_inputs(layer, keep: np.ndarray, per_unit: int = 1):
    """A new, smaller layer reading only the inputs `keep` of `layer`, with the same bias.

    A Conv2d keeps the input channels `keep` (weight[:, keep]). A Linear keeps rows of its
    weight: with per_unit = 1 the rows `keep`; after a Flatten, input unit k is a channel
    of per_unit = H*W values, rows k*per_unit .. (k+1)*per_unit - 1, and all of them go together.
    """
    # BEGIN SOLUTION structured: rebuild with the whole bias and, for a Conv2d, the input channels `keep` of the weight; for a Linear, the rows of each kept unit's block of per_unit rows
    bias = None if layer.bias is None else layer.bias.data
    if isinstance(layer, Conv2d):
        return rebuild(layer, layer.weight.data[:, keep], bias)  # (out, kept, kh, kw)
    rows = (keep[:, None] * per_unit + np.arange(per_unit)).ravel()  # (kept * per_unit,): each kept unit's block
    return rebuild(layer, layer.weight.data[rows], bias)  # (kept * per_unit, out)
    # END SOLUTION


def prune_structured(model: Sequential, amount: float) -> Sequential:
    """A new, smaller Sequential: every Linear or Conv2d but the last loses the fraction `amount` of its units.

    The units (neurons, channels) with the smallest L1 norm go, each layer's ranked on its
    original weights, and the next Linear or Conv2d loses the matching inputs (after a
    Flatten, a channel's whole block of H*W inputs), so the pruned model computes exactly
    what the original computes with those units' outputs set to zero. The last layer's
    outputs are the model's and stay. Layers between must hold no parameters (activations,
    pooling, Dropout, Flatten); they are copied. A Linear feeding a Conv2d is refused.
    The original model is not changed, and the two share nothing.
    """
    # BEGIN SOLUTION structured: TypeError unless a Sequential; ValueError for fewer than two Linear/Conv2d layers, a layer with parameters between them, or a Linear feeding a Conv2d; then for each such layer and the next: keep = units_to_keep(original, amount), keep_outputs on the one, keep_inputs on the next (per_unit = H*W when a Conv2d feeds a Linear)
    if not isinstance(model, Sequential):
        raise TypeError(f"prune_structured: expected a Sequential, got {type(model).__name__}")
    layers = list(model.layers)
    weighted = [index for index, layer in enumerate(layers) if isinstance(layer, (Linear, Conv2d))]
    if len(weighted) < 2:
        raise ValueError(f"prune_structured: the model has {len(weighted)} Linear or Conv2d layer(s); removing units "
                         "needs a layer whose outputs feed another (the last layer's outputs are the model's)")
    for index, layer in enumerate(layers):
        if index not in weighted and isinstance(layer, Module) and layer.parameters():
            raise ValueError(f"prune_structured: layer {index} ({type(layer).__name__}) holds parameters; only Linear "
                             "and Conv2d layers, with parameter-free layers between them, can be pruned")
    pruned = [layer if index in weighted else copy.deepcopy(layer) for index, layer in enumerate(layers)]
    for producer, consumer in zip(weighted, weighted[1:]):
        source, reader = layers[producer], layers[consumer]
        per_unit = 1
        if isinstance(source, Conv2d) and isinstance(reader, Linear):  # a Flatten between: H*W inputs per channel
            per_unit, left = divmod(reader.in_features, source.out_channels)
            if left:
                raise ValueError(f"prune_structured: {reader!r} reads {reader.in_features} inputs, not a whole number "
                                 f"per channel of {source!r}")
        elif isinstance(source, Linear) and isinstance(reader, Conv2d):
            raise ValueError(f"prune_structured: {source!r} feeds {reader!r}; which outputs make a channel is not "
                             "known, so this pair cannot be pruned")
        keep = units_to_keep(source, amount)  # ranked on the original weights
        pruned[producer] = keep_outputs(pruned[producer], keep)  # fewer neurons or channels ...
        pruned[consumer] = keep_inputs(pruned[consumer], keep, per_unit)  # ... and the next layer stops reading them
    return Sequential(*pruned)
    # END SOLUTION


# -- a packed format: compressed sparse rows ---------------------------------------------------------------


class CSRMatrix:
    """A sparse matrix in compressed sparse row (CSR) form: only the nonzero values and where they sit.

        values (nnz,)             the nonzero entries, row by row, in the dense matrix's dtype
        column_indices (nnz,)     int32: the column of each value
        row_pointers (rows + 1,)  int32: row r's values are values[row_pointers[r]:row_pointers[r + 1]]
        shape                     (rows, columns)

    A float32 value costs 4 bytes and its column index 4 more, so CSR is smaller than the
    dense matrix only below half full; at 90% zeros it takes about a fifth of the bytes.
    """

    def __init__(self, values: np.ndarray, column_indices: np.ndarray, row_pointers: np.ndarray, shape: tuple):
        self.values, self.column_indices, self.row_pointers = values, column_indices, row_pointers
        self.shape = tuple(shape)

    @classmethod
    def from_dense(cls, dense) -> "CSRMatrix":
        """Pack a 2-D array (or Tensor): its nonzeros row by row, columns ascending. ValueError unless 2-D."""
        dense = np.asarray(getattr(dense, "data", dense))
        # BEGIN SOLUTION sparse_format: ValueError naming the shape unless 2-D; np.nonzero gives (rows, columns) in row-major order; row_pointers = 0 followed by the running count per row (np.bincount with minlength = rows); int32 indices
        if dense.ndim != 2:
            raise ValueError(f"CSRMatrix.from_dense: expected a 2-D matrix, got shape {dense.shape}")
        rows, columns = np.nonzero(dense)  # row by row, columns ascending within a row
        per_row = np.bincount(rows, minlength=dense.shape[0])  # (rows,): an empty row counts 0, the last ones too
        row_pointers = np.zeros(dense.shape[0] + 1, dtype=np.int32)
        np.cumsum(per_row, out=row_pointers[1:])
        return cls(dense[rows, columns], columns.astype(np.int32), row_pointers, dense.shape)
        # END SOLUTION

    @property
    def nnz(self) -> int:
        """The number of stored values."""
        return len(self.values)

    @property
    def nbytes(self) -> int:
        """The bytes of everything the matrix keeps: values, column indices and row pointers."""
        # BEGIN SOLUTION sparse_format: add up the nbytes of the three arrays
        return self.values.nbytes + self.column_indices.nbytes + self.row_pointers.nbytes
        # END SOLUTION

    def to_dense(self) -> np.ndarray:
        """The dense matrix again: zeros of `shape` in the values' dtype, with every value put back."""
        # BEGIN SOLUTION sparse_format: the row of every value is its row repeated by that row's count (np.repeat of np.diff(row_pointers)); scatter the values into zeros
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.row_pointers))  # (nnz,): each value's row
        dense = np.zeros(self.shape, dtype=self.values.dtype)
        dense[rows, self.column_indices] = self.values
        return dense
        # END SOLUTION

    def matmul(self, x) -> np.ndarray:
        """self @ x for a dense x of shape (columns,) or (columns, k), touching only the stored values.

        Returns (rows,) or (rows, k), in the dtype numpy gives the pair. A row with no values
        gives 0. Raises ValueError naming both shapes if they do not fit.
        """
        x = np.asarray(getattr(x, "data", x))
        # BEGIN SOLUTION sparse_format: check x is 1-D or 2-D with shape[0] == columns (ValueError naming both shapes); multiply each value by its column's row of x, then sum each nonempty row's products with np.add.reduceat at the row starts; empty rows stay 0
        if x.ndim not in (1, 2) or x.shape[0] != self.shape[1]:
            raise ValueError(f"CSRMatrix.matmul: a {self.shape} matrix cannot multiply x of shape {x.shape}; "
                             f"x must be ({self.shape[1]},) or ({self.shape[1]}, k)")
        columns = x.reshape(self.shape[1], -1)  # (columns, k): a vector is one column
        out = np.zeros((self.shape[0], columns.shape[1]), dtype=np.result_type(self.values, x))
        starts = self.row_pointers[:-1]
        filled = self.row_pointers[1:] > starts  # (rows,): rows holding at least one value
        if filled.any():
            products = self.values[:, None] * columns[self.column_indices]  # (nnz, k)
            # reduceat sums from each start to the next start given; an empty row's start equals the
            # next row's, and reduceat would hand it one product instead of 0, so only filled rows go in.
            out[filled] = np.add.reduceat(products, starts[filled], axis=0)
        return out.reshape((self.shape[0],) + x.shape[1:])
        # END SOLUTION

    def __repr__(self) -> str:
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, nbytes={self.nbytes})"


# -- low rank: one Linear becomes two thin ones ---------------------------------------------------------------


def rank_for_energy(singular_values, energy: float) -> int:
    """The smallest rank r whose r largest singular values hold at least `energy` of the total energy sum(s**2).

    `singular_values` are in descending order, as np.linalg.svd returns them. Raises
    ValueError unless 0 < energy <= 1.
    """
    singular_values = np.asarray(singular_values, dtype=np.float64)
    # BEGIN SOLUTION low_rank: check 0 < energy <= 1 (ValueError naming it); the running sum of s**2; the first position where it reaches energy * total (np.searchsorted), plus 1
    if not 0 < energy <= 1:
        raise ValueError(f"rank_for_energy: energy is the fraction of sum(s**2) to keep and must be in (0, 1], "
                         f"got {energy}")
    kept = np.cumsum(singular_values ** 2)  # kept[r - 1]: the energy of the best rank-r approximation
    return int(np.searchsorted(kept, energy * kept[-1])) + 1
    # END SOLUTION


def low_rank(layer: Linear, rank: int | None = None, energy: float | None = None) -> Sequential:
    """Sequential(Linear(in, r, bias=False), Linear(r, out)): the best rank-r approximation of `layer`.

    With the SVD W = U diag(s) V^T (s descending), the first weight is U_r sqrt(s_r)
    (in, r) and the second sqrt(s_r) V_r^T (r, out); their product is the rank-r
    truncation of W, which (Eckart-Young) is off by exactly s_r in the spectral norm and
    sqrt(s_r^2 + s_{r+1}^2 + ...) in the Frobenius norm, the smallest error of any rank r.
    The bias moves to the second layer. Give exactly one of `rank` and `energy` (then r
    is rank_for_energy(s, energy)); r must lie in 1 .. min(in, out).
    """
    # BEGIN SOLUTION low_rank: TypeError unless layer is a Linear; ValueError unless exactly one of rank and energy is given; np.linalg.svd(full_matrices=False); the rank from energy if asked; ValueError unless 1 <= rank <= len(s); rebuild two Linears from the factors, the bias on the second
    if not isinstance(layer, Linear):
        raise TypeError(f"low_rank: factorises a Linear, got {type(layer).__name__}")
    if (rank is None) == (energy is None):
        raise ValueError(f"low_rank: give exactly one of rank and energy, got rank={rank}, energy={energy}")
    u, s, vt = np.linalg.svd(layer.weight.data, full_matrices=False)  # (in, k), (k,), (k, out); s descending
    if energy is not None:
        rank = rank_for_energy(s, energy)
    if not 1 <= rank <= len(s):
        raise ValueError(f"low_rank: rank must be between 1 and {len(s)} for a {layer.weight.shape} weight, got {rank}")
    root = np.sqrt(s[:rank])  # split each singular value between the two factors
    first = rebuild(layer, u[:, :rank] * root, None)  # (in, r): the r largest directions, scaled
    bias = None if layer.bias is None else layer.bias.data
    second = rebuild(layer, root[:, None] * vt[:rank], bias)  # (r, out)
    return Sequential(first, second)
    # END SOLUTION


# -- distillation: a student learns from a teacher's softened predictions ------------------------------------


def distillation_kl(student_logits, teacher_logits, temperature: float = 2.0) -> Tensor:
    """T^2 KL(p || q), averaged over the rows, as one op: p = softmax(teacher / T), q = softmax(student / T).

    Both logits are (N, C). The teacher is a fixed target: its logits (a Tensor or an
    array) take no gradient. The factor T^2 keeps the gradient's size independent of T,
    so the mix with the hard-label loss means the same at any temperature.
    """
    student = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
    teacher = np.asarray(getattr(teacher_logits, "data", teacher_logits), dtype=student.dtype)
    # BEGIN SOLUTION distillation: check temperature > 0 and that both logits are 2-D of one shape (ValueError naming them); log-softmax both divided by T (the max trick); row sums of p * (log p - log q), their mean, times T^2; keep q - p for backward
    if not temperature > 0:
        raise ValueError(f"distillation_kl: temperature must be > 0, got {temperature}")
    if student.ndim != 2 or teacher.shape != student.shape:
        raise ValueError(f"distillation_kl: student and teacher logits must both be (N, C); got student "
                         f"{student.shape} and teacher {teacher.shape}")

    def log_softmax(logits):  # (N, C), each row shifted by its maximum: exp never overflows
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    log_q = log_softmax(student.data / temperature)  # the student, softened
    log_p = log_softmax(teacher / temperature)  # the teacher, softened the same way
    p = np.exp(log_p)
    kl = np.sum(p * (log_p - log_q), axis=1)  # (N,): KL(teacher || student) per row
    data = temperature ** 2 * kl.mean()
    difference = np.exp(log_q) - p  # (N, C): q - p, all that backward needs
    # END SOLUTION
    return Tensor.from_op(np.asarray(data, dtype=student.dtype), "distillation_kl", (student,),
                          difference=difference, temperature=temperature)


@backward_rule("distillation_kl")
def distillation_kl_backward(out, grad):
    difference, temperature = out.saved["difference"], out.saved["temperature"]
    # BEGIN SOLUTION distillation_gradient: the gradient of the student's logits is T (q - p) / N times the upstream gradient
    return (difference * (grad * temperature / len(difference)),)
    # END SOLUTION


def distillation_loss(student_logits, teacher_logits, targets, temperature: float = 2.0, alpha: float = 0.5) -> Tensor:
    """alpha * distillation_kl(student, teacher, T) + (1 - alpha) * cross_entropy(student, targets).

    alpha = 1 learns from the teacher alone, alpha = 0 from the labels alone. Raises
    ValueError unless 0 <= alpha <= 1.
    """
    student = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
    # BEGIN SOLUTION distillation: check 0 <= alpha <= 1 (ValueError naming it), then mix the two losses with Tensor ops so both gradients reach the student
    if not 0 <= alpha <= 1:
        raise ValueError(f"distillation_loss: alpha weighs the teacher against the labels and must be in [0, 1], "
                         f"got {alpha}")
    soft = distillation_kl(student, teacher_logits, temperature)
    hard = cross_entropy(student, targets)
    return soft * alpha + hard * (1 - alpha)
    # END SOLUTION

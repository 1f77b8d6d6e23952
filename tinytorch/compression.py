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

# Kata 16_compression: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/16_compression/README.md    Tests: python -m pytest katas/16_compression

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
    raise NotImplementedError("16_compression · sparsity: keep the (name, parameter) pairs of model.named_parameters() whose parameter has ndim >= 2")


def sparsity(model: Module) -> float:
    """The fraction of the prunable weights that are exactly zero, as a Python float. Biases do not count.

    Raises ValueError if the model has no prunable weight.
    """
    raise NotImplementedError("16_compression · sparsity: count the zeros over prunable_weights(model) and divide by their total size; ValueError naming the model when there is nothing to count")


# -- magnitude pruning: the smallest weights go -----------------------------------------------------


def keep_largest(magnitudes: np.ndarray, amount: float) -> np.ndarray:
    """Booleans of the shape of `magnitudes`: False at the round(amount * size) smallest entries, True elsewhere.

    Ties are broken by position: among equal magnitudes, the entry that comes first in
    row-major order is pruned first. So exactly round(amount * size) entries are False,
    whatever the values (a threshold `magnitudes <= t` would prune every tied entry).
    """
    raise NotImplementedError("16_compression · magnitude: a stable argsort of the flattened magnitudes; the first round(amount * size) positions become False")


def magnitude_masks(model: Module, amount: float, scope: str = "global") -> dict:
    """{weight name: keep-mask}, pruning the fraction `amount` of the weights with the smallest |w|.

    A keep-mask is a boolean array of its weight's shape: True = kept, False = pruned.
    scope="layer": each weight loses round(amount * its size) entries, its own smallest.
    scope="global": all prunable weights are ranked together (one threshold for the whole
    model), round(amount * their total) go, and a layer of small weights loses more than
    a layer of large ones. Weights that are already zero rank first. The model is not
    changed: `apply_masks` or `MaskedOptimizer` does that.
    """
    raise NotImplementedError("16_compression · magnitude: check amount in [0, 1], scope in SCOPES and that there are weights (ValueError naming them); per layer keep_largest(|w|) of each weight, or globally keep_largest of all |w| concatenated, split back into the weights' shapes")


def masked_parameters(model: Module, masks: dict) -> list:
    """[(Parameter, keep-mask)] for every entry of `masks`, checked against the model.

    Raises KeyError for a name that is not one of the model's parameters, TypeError for
    a mask that is not boolean, and ValueError for a mask whose shape is not its weight's.
    """
    raise NotImplementedError("16_compression · magnitude: look every name up in dict(model.named_parameters()) (KeyError naming it and the model's names); refuse non-boolean masks (TypeError) and shapes that differ (ValueError naming both)")


def apply_masks(model: Module, masks: dict) -> None:
    """Set every pruned weight (mask False) to exactly 0, in place: the model's own arrays change."""
    raise NotImplementedError("16_compression · magnitude: for each (parameter, keep) of masked_parameters, write 0 into parameter.data where keep is False")


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
        raise NotImplementedError("16_compression · fine_tuning: keep the checked (parameter, keep-mask) pairs of masked_parameters in self.masked, and apply the masks now")

    def step(self) -> None:
        """Zero the pruned weights' gradients, step the wrapped optimizer, zero the pruned weights again."""
        raise NotImplementedError("16_compression · fine_tuning: for each pair, zero grad[~keep] (if there is a grad); self.optimizer.step(); then zero data[~keep]")

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
    raise NotImplementedError("16_compression · structured: the sum of |weight| over every axis but the units' axis: axis 0 of a Linear's (in, out) weight, axes 1, 2 and 3 of a Conv2d's (out, in, kh, kw)")


def units_to_keep(layer, amount: float) -> np.ndarray:
    """The indices of the output units that stay, ascending: all but the round(amount * units) least important.

    Importance is `unit_importance`; among equal ones the lower index goes first. Raises
    ValueError if amount is outside [0, 1] or would remove every unit.
    """
    raise NotImplementedError("16_compression · structured: check amount (ValueError); n - round(amount * n) must be at least 1 (ValueError naming the layer); a stable argsort of the importance, drop the first round(amount * n), sort what is left")


def keep_outputs(layer, keep: np.ndarray):
    """A new, smaller layer computing only the output units `keep` of `layer`, with their bias entries.

    A Linear keeps the columns `keep` of its weight, a Conv2d the filters `keep`.
    """
    raise NotImplementedError("16_compression · structured: rebuild the layer from the units `keep` of its weight (columns of a Linear's, filters of a Conv2d's) and the entries `keep` of its bias (or None)")


def keep_inputs(layer, keep: np.ndarray, per_unit: int = 1):
    """A new, smaller layer reading only the inputs `keep` of `layer`, with the same bias.

    A Conv2d keeps the input channels `keep` (weight[:, keep]). A Linear keeps rows of its
    weight: with per_unit = 1 the rows `keep`; after a Flatten, input unit k is a channel
    of per_unit = H*W values, rows k*per_unit .. (k+1)*per_unit - 1, and all of them go together.
    """
    raise NotImplementedError("16_compression · structured: rebuild with the whole bias and, for a Conv2d, the input channels `keep` of the weight; for a Linear, the rows of each kept unit's block of per_unit rows")


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
    raise NotImplementedError("16_compression · structured: TypeError unless a Sequential; ValueError for fewer than two Linear/Conv2d layers, a layer with parameters between them, or a Linear feeding a Conv2d; then for each such layer and the next: keep = units_to_keep(original, amount), keep_outputs on the one, keep_inputs on the next (per_unit = H*W when a Conv2d feeds a Linear)")


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
        raise NotImplementedError("16_compression · sparse_format: ValueError naming the shape unless 2-D; np.nonzero gives (rows, columns) in row-major order; row_pointers = 0 followed by the running count per row (np.bincount with minlength = rows); int32 indices")

    @property
    def nnz(self) -> int:
        """The number of stored values."""
        return len(self.values)

    @property
    def nbytes(self) -> int:
        """The bytes of everything the matrix keeps: values, column indices and row pointers."""
        raise NotImplementedError("16_compression · sparse_format: add up the nbytes of the three arrays")

    def to_dense(self) -> np.ndarray:
        """The dense matrix again: zeros of `shape` in the values' dtype, with every value put back."""
        raise NotImplementedError("16_compression · sparse_format: the row of every value is its row repeated by that row's count (np.repeat of np.diff(row_pointers)); scatter the values into zeros")

    def matmul(self, x) -> np.ndarray:
        """self @ x for a dense x of shape (columns,) or (columns, k), touching only the stored values.

        Returns (rows,) or (rows, k), in the dtype numpy gives the pair. A row with no values
        gives 0. Raises ValueError naming both shapes if they do not fit.
        """
        x = np.asarray(getattr(x, "data", x))
        raise NotImplementedError("16_compression · sparse_format: check x is 1-D or 2-D with shape[0] == columns (ValueError naming both shapes); multiply each value by its column's row of x, then sum each nonempty row's products with np.add.reduceat at the row starts; empty rows stay 0")

    def __repr__(self) -> str:
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, nbytes={self.nbytes})"


# -- low rank: one Linear becomes two thin ones ---------------------------------------------------------------


def rank_for_energy(singular_values, energy: float) -> int:
    """The smallest rank r whose r largest singular values hold at least `energy` of the total energy sum(s**2).

    `singular_values` are in descending order, as np.linalg.svd returns them. Raises
    ValueError unless 0 < energy <= 1.
    """
    singular_values = np.asarray(singular_values, dtype=np.float64)
    raise NotImplementedError("16_compression · low_rank: check 0 < energy <= 1 (ValueError naming it); the running sum of s**2; the first position where it reaches energy * total (np.searchsorted), plus 1")


def low_rank(layer: Linear, rank: int | None = None, energy: float | None = None) -> Sequential:
    """Sequential(Linear(in, r, bias=False), Linear(r, out)): the best rank-r approximation of `layer`.

    With the SVD W = U diag(s) V^T (s descending), the first weight is U_r sqrt(s_r)
    (in, r) and the second sqrt(s_r) V_r^T (r, out); their product is the rank-r
    truncation of W, which (Eckart-Young) is off by exactly s_r in the spectral norm and
    sqrt(s_r^2 + s_{r+1}^2 + ...) in the Frobenius norm, the smallest error of any rank r.
    The bias moves to the second layer. Give exactly one of `rank` and `energy` (then r
    is rank_for_energy(s, energy)); r must lie in 1 .. min(in, out).
    """
    raise NotImplementedError("16_compression · low_rank: TypeError unless layer is a Linear; ValueError unless exactly one of rank and energy is given; np.linalg.svd(full_matrices=False); the rank from energy if asked; ValueError unless 1 <= rank <= len(s); rebuild two Linears from the factors, the bias on the second")


# -- distillation: a student learns from a teacher's softened predictions ------------------------------------


def distillation_kl(student_logits, teacher_logits, temperature: float = 2.0) -> Tensor:
    """T^2 KL(p || q), averaged over the rows, as one op: p = softmax(teacher / T), q = softmax(student / T).

    Both logits are (N, C). The teacher is a fixed target: its logits (a Tensor or an
    array) take no gradient. The factor T^2 keeps the gradient's size independent of T,
    so the mix with the hard-label loss means the same at any temperature.
    """
    student = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
    teacher = np.asarray(getattr(teacher_logits, "data", teacher_logits), dtype=student.dtype)
    raise NotImplementedError("16_compression · distillation: check temperature > 0 and that both logits are 2-D of one shape (ValueError naming them); log-softmax both divided by T (the max trick); row sums of p * (log p - log q), their mean, times T^2; keep q - p for backward")
    return Tensor.from_op(np.asarray(data, dtype=student.dtype), "distillation_kl", (student,),
                          difference=difference, temperature=temperature)


@backward_rule("distillation_kl")
def distillation_kl_backward(out, grad):
    difference, temperature = out.saved["difference"], out.saved["temperature"]
    raise NotImplementedError("16_compression · distillation_gradient: the gradient of the student's logits is T (q - p) / N times the upstream gradient")


def distillation_loss(student_logits, teacher_logits, targets, temperature: float = 2.0, alpha: float = 0.5) -> Tensor:
    """alpha * distillation_kl(student, teacher, T) + (1 - alpha) * cross_entropy(student, targets).

    alpha = 1 learns from the teacher alone, alpha = 0 from the labels alone. Raises
    ValueError unless 0 <= alpha <= 1.
    """
    student = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
    raise NotImplementedError("16_compression · distillation: check 0 <= alpha <= 1 (ValueError naming it), then mix the two losses with Tensor ops so both gradients reach the student")

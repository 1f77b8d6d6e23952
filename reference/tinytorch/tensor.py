"""Kata 01 · Tensor: an n-dimensional array that remembers how it was made.

A `Tensor` wraps a numpy array (`.data`). Every operation computes its result with
numpy and hands it to `Tensor.from_op`, which records the op and its inputs when a
gradient will be needed. Kata 03 (autograd) walks those records backwards.
"""

from __future__ import annotations

import numpy as np


class Tensor:
    # Makes `numpy_array + tensor` call Tensor.__radd__ instead of numpy's own loop.
    __array_priority__ = 1000

    def __init__(self, data, dtype=None, requires_grad=False):
        """Wrap `data` (a list, scalar, numpy array or Tensor) as an array.

        The dtype is float32 unless `dtype` says otherwise. An array that already
        has the right dtype is wrapped without a copy, like `torch.from_numpy`.
        """
        # BEGIN SOLUTION creation: store `data` in self.data as a numpy array (float32 unless `dtype` is given)
        if isinstance(data, Tensor):
            data = data.data
        self.data = np.asarray(data, dtype=np.float32 if dtype is None else dtype)
        # END SOLUTION
        self.requires_grad = bool(requires_grad)
        self.grad = None  # a numpy array once backward() has reached this tensor
        self.op = None  # the name of the op that made this tensor; None for a leaf
        self.parents = ()  # the tensors the op read
        self.saved = {}  # whatever the op's backward rule needs (axes, indices, ...)

    # -- properties ---------------------------------------------------------------

    @property
    def shape(self) -> tuple:
        # BEGIN SOLUTION creation: return the shape of the data as a tuple
        return self.data.shape
        # END SOLUTION

    @property
    def ndim(self) -> int:
        # BEGIN SOLUTION creation: return the number of dimensions
        return self.data.ndim
        # END SOLUTION

    @property
    def size(self) -> int:
        # BEGIN SOLUTION creation: return the number of elements
        return self.data.size
        # END SOLUTION

    @property
    def dtype(self) -> np.dtype:
        # BEGIN SOLUTION creation: return the numpy dtype of the data
        return self.data.dtype
        # END SOLUTION

    @property
    def nbytes(self) -> int:
        # BEGIN SOLUTION creation: return the bytes the elements occupy (size times itemsize)
        return self.data.nbytes
        # END SOLUTION

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    # -- the graph (scaffolding: explained in the lesson, used by kata 03) ----------

    @staticmethod
    def from_op(data, op: str, parents: tuple, **saved) -> "Tensor":
        """Wrap an op's result; record `op`, `parents` and `saved` if a gradient will need them."""
        out = Tensor.__new__(Tensor)
        out.data = np.asarray(data)
        out.requires_grad = False
        out.grad = None
        out.op, out.parents, out.saved = None, (), {}
        if any(parent.requires_grad for parent in parents):
            from tinytorch import autograd  # kata 03 decides what is recorded

            autograd.record(out, op, parents, saved)
        return out

    def backward(self, grad=None) -> None:
        """Fill `.grad` of every leaf this tensor depends on (kata 03)."""
        from tinytorch import autograd

        autograd.backward(self, grad)

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> "Tensor":
        """The same data, cut off from the graph."""
        return Tensor.from_op(self.data, "detach", ())

    def _operand(self, other) -> "Tensor":
        """Turn a scalar or array into a Tensor of this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        return Tensor(other, dtype=self.dtype)

    # -- arithmetic -----------------------------------------------------------------

    def __add__(self, other) -> "Tensor":
        other = self._operand(other)
        # BEGIN SOLUTION arithmetic: compute `data`, the broadcast sum of the two tensors' data
        check_broadcast("add", self, other)
        data = self.data + other.data
        # END SOLUTION
        return Tensor.from_op(data, "add", (self, other))

    def __sub__(self, other) -> "Tensor":
        other = self._operand(other)
        # BEGIN SOLUTION arithmetic: compute `data`, the broadcast difference
        check_broadcast("sub", self, other)
        data = self.data - other.data
        # END SOLUTION
        return Tensor.from_op(data, "sub", (self, other))

    def __mul__(self, other) -> "Tensor":
        other = self._operand(other)
        # BEGIN SOLUTION arithmetic: compute `data`, the broadcast elementwise product
        check_broadcast("mul", self, other)
        data = self.data * other.data
        # END SOLUTION
        return Tensor.from_op(data, "mul", (self, other))

    def __truediv__(self, other) -> "Tensor":
        other = self._operand(other)
        # BEGIN SOLUTION arithmetic: compute `data`, the broadcast quotient
        check_broadcast("div", self, other)
        data = self.data / other.data
        # END SOLUTION
        return Tensor.from_op(data, "div", (self, other))

    def __pow__(self, other) -> "Tensor":
        other = self._operand(other)
        # BEGIN SOLUTION arithmetic: compute `data`, self raised elementwise to the power `other`
        check_broadcast("pow", self, other)
        data = self.data ** other.data
        # END SOLUTION
        return Tensor.from_op(data, "pow", (self, other))

    def __neg__(self) -> "Tensor":
        # BEGIN SOLUTION arithmetic: compute `data`, the negated values
        data = -self.data
        # END SOLUTION
        return Tensor.from_op(data, "neg", (self,))

    def exp(self) -> "Tensor":
        # BEGIN SOLUTION arithmetic: compute `data`, e raised to each element
        data = np.exp(self.data)
        # END SOLUTION
        return Tensor.from_op(data, "exp", (self,))

    def log(self) -> "Tensor":
        # BEGIN SOLUTION arithmetic: compute `data`, the natural log of each element
        data = np.log(self.data)
        # END SOLUTION
        return Tensor.from_op(data, "log", (self,))

    # Scalars on the left: 2 - x becomes Tensor(2) - x, so the op and its rule are the same.
    def __radd__(self, other) -> "Tensor":
        return self._operand(other) + self

    def __rsub__(self, other) -> "Tensor":
        return self._operand(other) - self

    def __rmul__(self, other) -> "Tensor":
        return self._operand(other) * self

    def __rtruediv__(self, other) -> "Tensor":
        return self._operand(other) / self

    def __rpow__(self, other) -> "Tensor":
        return self._operand(other) ** self

    # -- shapes and views -----------------------------------------------------------

    def reshape(self, *shape) -> "Tensor":
        """Reshape to `shape` (one entry may be -1); a view of the same memory when possible."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        # BEGIN SOLUTION shapes: compute `data`, the data reshaped (a view when numpy can make one)
        try:
            data = self.data.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} "
                             f"({self.size} elements) into shape {shape}") from None
        # END SOLUTION
        return Tensor.from_op(data, "reshape", (self,))

    def permute(self, *axes) -> "Tensor":
        """Reorder all axes: `x.permute(0, 2, 1)`. A view, never a copy."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        # BEGIN SOLUTION shapes: make `axes` the full order of all axes with no negatives (or raise ValueError naming the shape), then compute `data`
        given = axes
        axes = tuple(a + self.ndim if a < 0 else a for a in axes)  # kata 03 inverts this order: no negatives
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {given} is not an ordering of the {self.ndim} axes of shape {self.shape}")
        data = self.data.transpose(axes)
        # END SOLUTION
        return Tensor.from_op(data, "transpose", (self,), axes=axes)

    def transpose(self, axis1: int = -2, axis2: int = -1) -> "Tensor":
        """Swap two axes (the last two by default), as in `k.transpose(-2, -1)`."""
        # BEGIN SOLUTION shapes: build the axis order with axis1 and axis2 swapped and call permute
        if self.ndim < 2:
            raise ValueError(f"transpose: needs at least 2 dimensions, got shape {self.shape}")
        axes = list(range(self.ndim))
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return self.permute(axes)
        # END SOLUTION

    @property
    def T(self) -> "Tensor":
        """All axes reversed, like numpy's `.T` (for a matrix: its transpose)."""
        return self.permute(tuple(reversed(range(self.ndim))))

    def __getitem__(self, index) -> "Tensor":
        # BEGIN SOLUTION shapes: replace every Tensor in `index` by its array (floats become integers, a boolean mask stays a mask), then compute `data`
        def as_numpy_index(i):
            if not isinstance(i, Tensor):
                return i
            return i.data.astype(np.intp) if np.issubdtype(i.dtype, np.floating) else i.data

        index = tuple(map(as_numpy_index, index)) if isinstance(index, tuple) else as_numpy_index(index)
        data = self.data[index]
        # END SOLUTION
        return Tensor.from_op(data, "getitem", (self,), index=index)

    # -- reductions -----------------------------------------------------------------

    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        # BEGIN SOLUTION reductions: compute `data`, the sum over `axis` (all axes if None)
        data = np.sum(self.data, axis=axis, keepdims=keepdims)
        # END SOLUTION
        return Tensor.from_op(data, "sum", (self,), axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        # BEGIN SOLUTION reductions: compute `data`, the mean over `axis` (all axes if None)
        data = np.mean(self.data, axis=axis, keepdims=keepdims)
        # END SOLUTION
        return Tensor.from_op(data, "mean", (self,), axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims: bool = False) -> "Tensor":
        # BEGIN SOLUTION reductions: compute `data`, the maximum over `axis` (all axes if None)
        data = np.max(self.data, axis=axis, keepdims=keepdims)
        # END SOLUTION
        return Tensor.from_op(data, "max", (self,), axis=axis, keepdims=keepdims)

    # -- matrix multiplication --------------------------------------------------------

    def __matmul__(self, other) -> "Tensor":
        other = self._operand(other)
        # BEGIN SOLUTION matmul: check both operands are at least 2-D with matching inner dimensions, then compute `data`
        if self.ndim < 2 or other.ndim < 2:
            raise ValueError(f"matmul: both operands need at least 2 dimensions, got shapes {self.shape} and {other.shape}")
        if self.shape[-1] != other.shape[-2]:
            raise ValueError(f"matmul: inner dimensions differ: {self.shape} @ {other.shape} "
                             f"({self.shape[-1]} != {other.shape[-2]})")
        try:
            data = np.matmul(self.data, other.data)
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {self.shape} and {other.shape} do not broadcast") from None
        # END SOLUTION
        return Tensor.from_op(data, "matmul", (self, other))

    def __rmatmul__(self, other) -> "Tensor":
        return self._operand(other) @ self


def check_broadcast(op: str, a: Tensor, b: Tensor) -> None:
    """Raise a ValueError naming `op` and both shapes if they cannot broadcast."""
    # BEGIN SOLUTION arithmetic: raise ValueError naming the op and both shapes when they do not broadcast
    # Line the shapes up from the right: each pair of sizes must be equal or contain a 1.
    # zip stops at the shorter shape; its missing leading axes count as 1, which always fits.
    for size_a, size_b in zip(reversed(a.shape), reversed(b.shape)):
        if size_a != size_b and size_a != 1 and size_b != 1:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together "
                             f"(sizes {size_a} and {size_b} differ and neither is 1)")
    # END SOLUTION

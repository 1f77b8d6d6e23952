"""Kata 04 · Layers: modules that own parameters, composed into networks.

A `Parameter` is a Tensor that a model learns: it always requires grad. A `Module`
is a container of state: assigning a Parameter or another Module to one of its
attributes registers it, so `parameters()` can find every learnable array in a
network, `train()`/`eval()` can switch every layer's mode, and `state_dict()` can
save them all by name. `Linear`, `Sequential` and `Dropout` are the first modules.

    model = Sequential(Linear(784, 256), ReLU(), Dropout(0.2), Linear(256, 10))
    logits = model(x)                      # (batch, 10)
    model.named_parameters()               # [("0.weight", ...), ("0.bias", ...), ("3.weight", ...), ...]
"""

# Kata 04_layers: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/04_layers/README.md    Tests: python -m pytest katas/04_layers

from __future__ import annotations

import itertools

import numpy as np

from tinytorch.tensor import Tensor


class Parameter(Tensor):
    """A Tensor a model learns: requires grad, float32 unless `dtype` says otherwise."""

    def __init__(self, data, dtype=None):
        raise NotImplementedError("04_layers · parameter: initialise as a Tensor of `data` that requires grad (float32 unless dtype is given)")

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__().removeprefix("Tensor")


# -- Module: a container of state ---------------------------------------------------------


class Module:
    """Base class of every layer and model. Subclasses call `super().__init__()` first.

    Assigning a Parameter or a Module to an attribute registers it, in assignment order.
    Calling a module calls its `forward`.
    """

    def __init__(self):
        # object.__setattr__ skips our own __setattr__, which needs these registries to exist.
        object.__setattr__(self, "_parameters", {})  # name -> Parameter, in assignment order
        object.__setattr__(self, "_modules", {})  # name -> child Module, in assignment order
        object.__setattr__(self, "_buffers", {})  # name -> numpy array saved but not learned (register_buffer)
        object.__setattr__(self, "_forward_hooks", {})  # handle id -> hook(module, inputs, output), in registration order
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() at the start of __init__, "
                                 f"before assigning self.{name}")
        if name in self._buffers:  # a buffer re-assigned: see register_buffer
            raise NotImplementedError("04_layers · state_dict: an array keeps the name a buffer with the new value; anything else unregisters it")
        raise NotImplementedError("04_layers · module: record a Parameter in self._parameters or a Module in self._modules (and drop the name from both otherwise), then set the attribute")

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} needs a forward(...) method")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):  # a copy: a hook may remove itself
            hook(self, args, output)
        return output

    def register_forward_hook(self, hook) -> "HookHandle":
        """Call `hook(module, inputs, output)` after every forward through this module's __call__.

        `inputs` is the tuple of positional arguments; the hook's return value is ignored.
        Hooks run in registration order. Returns a handle: `handle.remove()` unregisters it.
        (Given, not written by the learner: kata 14's profiler sees inside a model through it.)
        """
        handle = HookHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # -- walking the tree ---------------------------------------------------------------

    def children(self) -> list:
        """The modules assigned directly to this one, in assignment order."""
        raise NotImplementedError("04_layers · module: return the registered child modules as a list")

    def named_modules(self, prefix: str = "") -> list:
        """(dotted name, module) for this module ("" for itself) and every descendant, depth-first."""
        raise NotImplementedError("04_layers · module: list (prefix, self), then each child's named_modules with the child's dotted name")

    def modules(self) -> list:
        """This module and every descendant, depth-first."""
        raise NotImplementedError("04_layers · module: the modules of named_modules, without their names")

    def named_parameters(self) -> list:
        """(dotted name, Parameter) pairs: own parameters first, then each child's, depth-first.

        A Parameter shared by two modules is listed once, under the first name it was found by.
        """
        raise NotImplementedError("04_layers · module: walk named_modules in order and list each module's parameters with dotted names, skipping ones already seen")

    def parameters(self) -> list:
        """Every Parameter of this module and its descendants, in a stable order."""
        raise NotImplementedError("04_layers · module: the parameters of named_parameters, without their names")

    # -- modes and gradients --------------------------------------------------------------

    def train(self, mode: bool = True) -> "Module":
        """Set `training` on this module and every descendant; return self."""
        raise NotImplementedError("04_layers · module: set training = mode on every module in the tree, then return self")

    def eval(self) -> "Module":
        """Evaluation mode (dropout off): the same as train(False)."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None) before the next backward."""
        raise NotImplementedError("04_layers · module: set .grad to None on every parameter")

    # -- what the parameters cost ---------------------------------------------------------

    def num_parameters(self) -> int:
        """How many numbers the model learns (a shared Parameter counts once)."""
        raise NotImplementedError("04_layers · module: add up the sizes of all parameters")

    def parameter_bytes(self) -> int:
        """How many bytes the parameters occupy (4 per float32 number)."""
        raise NotImplementedError("04_layers · module: add up the nbytes of all parameters")

    # -- saving and loading -----------------------------------------------------------------

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Keep the numpy array `value` as `self.<name>`: state that is saved but not learned.

        BatchNorm's running statistics are buffers: state_dict() saves them and
        load_state_dict() restores them, but they are not parameters (no gradient, no
        optimizer). Re-assigning `self.<name>` an array keeps it a buffer with the new
        value; assigning anything else unregisters it, as for a parameter.
        """
        raise NotImplementedError("04_layers · state_dict: refuse a name with a dot or already used (KeyError) and a value that is not a numpy array (TypeError); record it in self._buffers and set the attribute")

    def named_buffers(self) -> list:
        """(dotted name, array) for every buffer of this module and its descendants, in the order of named_parameters."""
        raise NotImplementedError("04_layers · state_dict: walk named_modules in order and list each module's buffers with dotted names, skipping arrays already seen")

    def state_dict(self) -> dict:
        """{dotted name: a numpy COPY of the values}, parameters then buffers: a snapshot that training cannot change."""
        raise NotImplementedError("04_layers · state_dict: map each dotted parameter name to a copy of its array, then each dotted buffer name to a copy of the buffer")

    def load_state_dict(self, state: dict) -> None:
        """Copy the values in `state` into the existing parameters and buffers, in place.

        Raises KeyError if a parameter or buffer has no entry or an entry names neither, and
        ValueError if an entry's shape differs; nothing is changed unless everything fits.
        """
        raise NotImplementedError("04_layers · state_dict: check every key (KeyError) and shape (ValueError) first, then copy each value into the existing array of its parameter or buffer")

    def __repr__(self) -> str:
        children = "".join(f"\n  ({name}): " + repr(child).replace("\n", "\n  ")
                           for name, child in self._modules.items())
        return f"{type(self).__name__}({children}\n)" if children else f"{type(self).__name__}()"


class HookHandle:
    """What register_forward_hook returns: `remove()` unregisters the hook; removing twice is harmless."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        self.hooks, self.id = hooks, next(HookHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


# -- initialisation -----------------------------------------------------------------------


def kaiming_uniform(shape: tuple, fan_in: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """He (Kaiming) uniform init for layers followed by ReLU: U(-b, b) with b = sqrt(6 / fan_in).

    The standard deviation is b / sqrt(3) = sqrt(2 / fan_in), so the variance of the
    activations stays the same from layer to layer. Float32. Draws from `rng`, or from
    the global `np.random` when `rng` is None.
    """
    raise NotImplementedError("04_layers · init: draw float32 values of `shape` uniformly from [-b, b] with b = sqrt(6 / fan_in)")


# -- layers -----------------------------------------------------------------------------------


class Linear(Module):
    """y = x @ weight + bias, with weight of shape (in_features, out_features): no transpose."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        raise NotImplementedError("04_layers · linear: self.weight = a Parameter from kaiming_uniform of shape (in_features, out_features); self.bias = a Parameter of zeros (out_features,), or None when bias is False")

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        raise NotImplementedError("04_layers · linear: reject a last dimension other than in_features (ValueError), then return x @ weight, plus bias if there is one")

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


class Sequential(Module):
    """Run layers one after another. Modules among them are registered as children "0", "1", ...

    Plain callables (such as `ReLU()` from tinytorch.activations) are run but own no state.
    """

    def __init__(self, *layers):
        super().__init__()
        raise NotImplementedError("04_layers · sequential: reject a layer that is not callable (TypeError); register each Module under its position as a string; keep all layers, in order, in self.layers")

    def forward(self, x):
        raise NotImplementedError("04_layers · sequential: feed x through every layer in order and return the result")

    def __getitem__(self, index):
        raise NotImplementedError("04_layers · sequential: return the layer at `index`; a slice gives a new Sequential of those layers")

    def __len__(self) -> int:
        raise NotImplementedError("04_layers · sequential: the number of layers")

    def __repr__(self) -> str:
        lines = "".join(f"\n  ({index}): " + repr(layer).replace("\n", "\n  ") for index, layer in enumerate(self.layers))
        return f"Sequential({lines}\n)"


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p).

    The expected value of every element is unchanged, so evaluation (where dropout does
    nothing) needs no rescaling. Draws from `rng`, or from the global `np.random` when None.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        raise NotImplementedError("04_layers · dropout: raise ValueError unless 0 <= p <= 1 (p is the probability of dropping a unit)")
        self.p = float(p)
        self.rng = rng

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        raise NotImplementedError("04_layers · dropout: identity in eval mode or when p == 0; zeros when p == 1; otherwise x times a fresh mask of 0s and 1/(1-p)s")

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

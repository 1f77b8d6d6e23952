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

from __future__ import annotations

import itertools

import numpy as np

from tinytorch.tensor import Tensor


class Parameter(Tensor):
    """A Tensor a model learns: requires grad, float32 unless `dtype` says otherwise."""

    def __init__(self, data, dtype=None):
        # BEGIN SOLUTION parameter: initialise as a Tensor of `data` that requires grad (float32 unless dtype is given)
        super().__init__(data, dtype=dtype, requires_grad=True)
        # END SOLUTION

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
            # BEGIN SOLUTION state_dict: an array keeps the name a buffer with the new value; anything else unregisters it
            if isinstance(value, np.ndarray):
                self._buffers[name] = value
            else:
                del self._buffers[name]
            # END SOLUTION
        # BEGIN SOLUTION module: record a Parameter in self._parameters or a Module in self._modules (and drop the name from both otherwise), then set the attribute
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        else:  # re-assigned to something else: no longer a parameter or a child
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)
        # END SOLUTION

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
        # BEGIN SOLUTION module: return the registered child modules as a list
        return list(self._modules.values())
        # END SOLUTION

    def named_modules(self, prefix: str = "") -> list:
        """(dotted name, module) for this module ("" for itself) and every descendant, depth-first."""
        # BEGIN SOLUTION module: list (prefix, self), then each child's named_modules with the child's dotted name
        found = [(prefix, self)]
        for name, child in self._modules.items():
            found.extend(child.named_modules(f"{prefix}.{name}" if prefix else name))
        return found
        # END SOLUTION

    def modules(self) -> list:
        """This module and every descendant, depth-first."""
        # BEGIN SOLUTION module: the modules of named_modules, without their names
        return [module for _, module in self.named_modules()]
        # END SOLUTION

    def named_parameters(self) -> list:
        """(dotted name, Parameter) pairs: own parameters first, then each child's, depth-first.

        A Parameter shared by two modules is listed once, under the first name it was found by.
        """
        # BEGIN SOLUTION module: walk named_modules in order and list each module's parameters with dotted names, skipping ones already seen
        named, seen = [], set()
        for prefix, module in self.named_modules():
            for name, parameter in module._parameters.items():
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    named.append((f"{prefix}.{name}" if prefix else name, parameter))
        return named
        # END SOLUTION

    def parameters(self) -> list:
        """Every Parameter of this module and its descendants, in a stable order."""
        # BEGIN SOLUTION module: the parameters of named_parameters, without their names
        return [parameter for _, parameter in self.named_parameters()]
        # END SOLUTION

    # -- modes and gradients --------------------------------------------------------------

    def train(self, mode: bool = True) -> "Module":
        """Set `training` on this module and every descendant; return self."""
        # BEGIN SOLUTION module: set training = mode on every module in the tree, then return self
        for module in self.modules():
            module.training = bool(mode)
        return self
        # END SOLUTION

    def eval(self) -> "Module":
        """Evaluation mode (dropout off): the same as train(False)."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None) before the next backward."""
        # BEGIN SOLUTION module: set .grad to None on every parameter
        for parameter in self.parameters():
            parameter.grad = None
        # END SOLUTION

    # -- what the parameters cost ---------------------------------------------------------

    def num_parameters(self) -> int:
        """How many numbers the model learns (a shared Parameter counts once)."""
        # BEGIN SOLUTION module: add up the sizes of all parameters
        return sum(parameter.size for parameter in self.parameters())
        # END SOLUTION

    def parameter_bytes(self) -> int:
        """How many bytes the parameters occupy (4 per float32 number)."""
        # BEGIN SOLUTION module: add up the nbytes of all parameters
        return sum(parameter.nbytes for parameter in self.parameters())
        # END SOLUTION

    # -- saving and loading -----------------------------------------------------------------

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Keep the numpy array `value` as `self.<name>`: state that is saved but not learned.

        BatchNorm's running statistics are buffers: state_dict() saves them and
        load_state_dict() restores them, but they are not parameters (no gradient, no
        optimizer). Re-assigning `self.<name>` an array keeps it a buffer with the new
        value; assigning anything else unregisters it, as for a parameter.
        """
        # BEGIN SOLUTION state_dict: refuse a name with a dot or already used (KeyError) and a value that is not a numpy array (TypeError); record it in self._buffers and set the attribute
        if "." in name or name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: {name!r} cannot name a buffer: it contains a dot or already names "
                           f"a parameter or a child module")
        if not isinstance(value, np.ndarray):
            raise TypeError(f"register_buffer: buffer {name!r} must be a numpy array, got {type(value).__name__}")
        self._buffers[name] = value
        object.__setattr__(self, name, value)
        # END SOLUTION

    def named_buffers(self) -> list:
        """(dotted name, array) for every buffer of this module and its descendants, in the order of named_parameters."""
        # BEGIN SOLUTION state_dict: walk named_modules in order and list each module's buffers with dotted names, skipping arrays already seen
        buffers, seen = [], set()
        for prefix, module in self.named_modules():
            for name, buffer in module._buffers.items():
                if id(buffer) not in seen:
                    seen.add(id(buffer))
                    buffers.append((f"{prefix}.{name}" if prefix else name, buffer))
        return buffers
        # END SOLUTION

    def state_dict(self) -> dict:
        """{dotted name: a numpy COPY of the values}, parameters then buffers: a snapshot that training cannot change."""
        # BEGIN SOLUTION state_dict: map each dotted parameter name to a copy of its array, then each dotted buffer name to a copy of the buffer
        return {name: parameter.data.copy() for name, parameter in self.named_parameters()} | {
            name: buffer.copy() for name, buffer in self.named_buffers()}
        # END SOLUTION

    def load_state_dict(self, state: dict) -> None:
        """Copy the values in `state` into the existing parameters and buffers, in place.

        Raises KeyError if a parameter or buffer has no entry or an entry names neither, and
        ValueError if an entry's shape differs; nothing is changed unless everything fits.
        """
        # BEGIN SOLUTION state_dict: check every key (KeyError) and shape (ValueError) first, then copy each value into the existing array of its parameter or buffer
        # name -> the array to write into: every parameter's, then every buffer
        parameters = {name: parameter.data for name, parameter in self.named_parameters()} | dict(self.named_buffers())
        missing = [name for name in parameters if name not in state]
        unexpected = [name for name in state if name not in parameters]
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}; "
                           f"the model's keys are {list(parameters)}")
        for name, value in state.items():
            if np.shape(value) != parameters[name].shape:
                raise ValueError(f"load_state_dict: {name!r} has shape {np.shape(value)} in the state dict "
                                 f"but {parameters[name].shape} in the model")
        for name, value in state.items():
            parameters[name][...] = value  # into the existing array: anything holding it sees the new values
        # END SOLUTION

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
    # BEGIN SOLUTION init: draw float32 values of `shape` uniformly from [-b, b] with b = sqrt(6 / fan_in)
    bound = np.sqrt(6.0 / fan_in)
    draw = np.random.uniform if rng is None else rng.uniform
    return draw(-bound, bound, size=shape).astype(np.float32)
    # END SOLUTION


# -- layers -----------------------------------------------------------------------------------


class Linear(Module):
    """y = x @ weight + bias, with weight of shape (in_features, out_features): no transpose."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # BEGIN SOLUTION linear: self.weight = a Parameter from kaiming_uniform of shape (in_features, out_features); self.bias = a Parameter of zeros (out_features,), or None when bias is False
        self.weight = Parameter(kaiming_uniform((in_features, out_features), fan_in=in_features, rng=rng))
        self.bias = Parameter(np.zeros(out_features, dtype=np.float32)) if bias else None
        # END SOLUTION

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        # BEGIN SOLUTION linear: reject a last dimension other than in_features (ValueError), then return x @ weight, plus bias if there is one
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected an input whose last dimension is in_features = {self.in_features}, "
                             f"got shape {x.shape}")
        if x.ndim == 1:  # a single sample: treat it as a batch of one
            return self.forward(x.reshape(1, -1)).reshape(self.out_features)
        out = x @ self.weight  # (..., in_features) @ (in_features, out_features) -> (..., out_features)
        if self.bias is not None:
            out = out + self.bias  # broadcast over every leading axis
        return out
        # END SOLUTION

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


class Sequential(Module):
    """Run layers one after another. Modules among them are registered as children "0", "1", ...

    Plain callables (such as `ReLU()` from tinytorch.activations) are run but own no state.
    """

    def __init__(self, *layers):
        super().__init__()
        # BEGIN SOLUTION sequential: reject a layer that is not callable (TypeError); register each Module under its position as a string; keep all layers, in order, in self.layers
        for index, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {index} is {layer!r}, which cannot be called; "
                                f"pass layers such as Linear(2, 3) or ReLU(), not a list of them")
            if isinstance(layer, Module):
                setattr(self, str(index), layer)
        self.layers = list(layers)
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION sequential: feed x through every layer in order and return the result
        for layer in self.layers:
            x = layer(x)
        return x
        # END SOLUTION

    def __getitem__(self, index):
        # BEGIN SOLUTION sequential: return the layer at `index`; a slice gives a new Sequential of those layers
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION sequential: the number of layers
        return len(self.layers)
        # END SOLUTION

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
        # BEGIN SOLUTION dropout: raise ValueError unless 0 <= p <= 1 (p is the probability of dropping a unit)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p is the probability of dropping each unit and must be in [0, 1], got {p}")
        # END SOLUTION
        self.p = float(p)
        self.rng = rng

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        # BEGIN SOLUTION dropout: identity in eval mode or when p == 0; zeros when p == 1; otherwise x times a fresh mask of 0s and 1/(1-p)s
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0  # everything dropped; 1/(1-p) would divide by zero
        draw = np.random.random if self.rng is None else self.rng.random
        keep = draw(x.shape) >= self.p  # True with probability 1 - p
        mask = keep.astype(x.dtype) / (1.0 - self.p)  # 0 or 1/(1-p): the expected value stays x
        return x * mask  # a recorded mul: the gradient is the same mask
        # END SOLUTION

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

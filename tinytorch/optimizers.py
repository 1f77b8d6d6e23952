"""Kata 06 · Optimizers: turning gradients into better parameters, and what that costs.

After `loss.backward()` every parameter holds `.grad`. An optimizer reads those
gradients and changes each parameter's `.data` in place:

    optimizer = Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        optimizer.zero_grad()          # forget last step's gradients
        loss = loss_fn(model(x), y)
        loss.backward()                # fill p.grad
        optimizer.step()               # p.data <- p.data - (something built from p.grad)

SGD keeps no state (or one velocity buffer with momentum); Adam keeps two moving
averages per parameter, which is why training with Adam needs three times the memory
of the weights alone. The updates work on numpy arrays (`p.data`, `p.grad`), so they
record no graph: this is what `torch.no_grad()` around an update is for.
"""

# Kata 06_optimizers: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/06_optimizers/README.md    Tests: python -m pytest katas/06_optimizers

from __future__ import annotations

import numpy as np

from tinytorch.tensor import Tensor


class Optimizer:
    """What every optimizer shares: the parameters, `zero_grad`, and saving its state.

    Per-parameter state lives in `self.state[i]`, a dict for parameter i that stays
    empty until that parameter's first update: numpy buffers (`velocity`, `exp_avg`,
    ...) and integer counters (`step`).
    """

    # The learning rate, set by each optimizer; LR schedules change it between steps.
    lr: float
    # The attribute names `state_dict` saves and `load_state_dict` restores.
    hyperparameters: tuple = ("lr",)

    def __init__(self, params):
        """Keep `params` (any iterable of Tensors, e.g. `model.parameters()`) as a list."""
        raise NotImplementedError("06_optimizers · base: store list(params) in self.params; ValueError if it is empty or lists a tensor twice, TypeError naming any entry that is not a Tensor")
        self.state = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None) before the next backward."""
        raise NotImplementedError("06_optimizers · base: set .grad of every parameter to None")

    def step(self) -> None:
        """Update every parameter that has a gradient. Each optimizer defines its own."""
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    # -- the memory the optimizer holds -----------------------------------------------

    def state_bytes(self) -> int:
        """Bytes held in the per-parameter state arrays (counters are ints and not counted)."""
        raise NotImplementedError("06_optimizers · state_memory: add up .nbytes of every numpy array in self.state")

    # -- saving and resuming ------------------------------------------------------------

    def state_dict(self) -> dict:
        """A flat dict of name -> numpy array, ready for `np.savez(path, **state)`.

        Holds the optimizer's class name, the number of parameters, every
        hyper-parameter, and a copy of each state entry as "<name>.<parameter index>".
        """
        raise NotImplementedError("06_optimizers · state_dict: build the flat dict of COPIES: \"optimizer\", \"param_count\", each hyper-parameter, and \"<name>.<i>\" for every entry of self.state[i]")

    def load_state_dict(self, state) -> None:
        """Restore exactly what `state_dict` saved (a dict, or what `np.load` returns).

        A state that does not fit is refused with a ValueError, and then nothing has changed.
        """
        raise NotImplementedError("06_optimizers · state_dict: check everything first (optimizer, param_count, every hyper-parameter present, buffer shapes; ValueError), then restore the hyper-parameters and replace self.state with copies (ints for integer counters)")


# -- SGD: step against the gradient, optionally with momentum ---------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent: p <- p - lr * g, with optional momentum and weight decay.

    With weight decay, g = grad + weight_decay * p (L2 regularisation). With momentum mu,
    a velocity v <- mu * v + g is stepped along instead of g; Nesterov momentum steps
    along g + mu * v, the gradient seen from one velocity step ahead.
    """

    hyperparameters = ("lr", "momentum", "weight_decay", "nesterov")

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params)
        raise NotImplementedError("06_optimizers · sgd: check (ValueError) lr > 0, 0 <= momentum < 1, weight_decay >= 0, nesterov only with momentum; store all four")

    def step(self) -> None:
        """p.data -= lr * direction for every parameter whose grad is not None."""
        raise NotImplementedError("06_optimizers · sgd: skip parameters without a gradient; add weight_decay * p.data to the gradient; use self.apply_momentum when momentum is on; update p.data in place")

    def apply_momentum(self, index: int, p: Tensor, grad: np.ndarray) -> np.ndarray:
        """Advance parameter `index`'s velocity with `grad`; return the direction to step along."""
        raise NotImplementedError("06_optimizers · momentum: create the velocity (zeros) on the first call, update it in place (v = mu v + g), and return v, or g + mu v with Nesterov")


# -- Adam and AdamW: a step size for every parameter ----------------------------------------


class Adam(Optimizer):
    """Adam: steps along a moving average of the gradient, scaled per element by its typical size.

        m <- beta1 m + (1 - beta1) g              (first moment: the mean gradient)
        v <- beta2 v + (1 - beta2) g^2            (second moment: the mean squared gradient)
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)     (bias correction)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    t counts the updates of each parameter. Weight decay here is L2: g = grad + weight_decay * p.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params)
        raise NotImplementedError("06_optimizers · adam: check (ValueError) lr > 0, both betas in [0, 1), eps >= 0, weight_decay >= 0; store lr, betas (a tuple), eps, weight_decay")

    def apply_weight_decay(self, p: Tensor, grad: np.ndarray) -> np.ndarray:
        """Adam's weight decay is L2 regularisation: it is added to the gradient."""
        raise NotImplementedError("06_optimizers · adam: return grad + weight_decay * p.data (grad itself when weight_decay is 0)")

    def step(self) -> None:
        """One Adam update of every parameter that has a gradient, in place, without extra copies."""
        raise NotImplementedError("06_optimizers · adam: per parameter with a gradient: apply weight decay, create zero moments and step 0 on its first update, advance its step, update m and v in place, then p.data -= lr * m_hat / (sqrt(v_hat) + eps)")


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p - lr * weight_decay * p, then the Adam step.

    The decay no longer passes through the gradient, so Adam's per-element scaling
    cannot shrink it: every weight decays by the same factor (1 - lr * weight_decay).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def apply_weight_decay(self, p: Tensor, grad: np.ndarray) -> np.ndarray:
        """Decoupled decay: shrink p.data in place by the factor (1 - lr * weight_decay); the gradient is untouched."""
        raise NotImplementedError("06_optimizers · adamw: scale p.data in place by (1 - lr * weight_decay) and return grad unchanged")

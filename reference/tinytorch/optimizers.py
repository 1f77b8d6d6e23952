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
        # BEGIN SOLUTION base: store list(params) in self.params; ValueError if it is empty or lists a tensor twice, TypeError naming any entry that is not a Tensor
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list; "
                             "pass model.parameters() or a list of Tensors")
        for index, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {index} is a {type(p).__name__}, not a Tensor")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a tensor appears twice in the parameter list; "
                             "it would be updated twice per step")
        # END SOLUTION
        self.state = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None) before the next backward."""
        # BEGIN SOLUTION base: set .grad of every parameter to None
        for p in self.params:
            p.grad = None
        # END SOLUTION

    def step(self) -> None:
        """Update every parameter that has a gradient. Each optimizer defines its own."""
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    # -- the memory the optimizer holds -----------------------------------------------

    def state_bytes(self) -> int:
        """Bytes held in the per-parameter state arrays (counters are ints and not counted)."""
        # BEGIN SOLUTION state_memory: add up .nbytes of every numpy array in self.state
        return sum(value.nbytes for buffers in self.state for value in buffers.values()
                   if isinstance(value, np.ndarray))
        # END SOLUTION

    # -- saving and resuming ------------------------------------------------------------

    def state_dict(self) -> dict:
        """A flat dict of name -> numpy array, ready for `np.savez(path, **state)`.

        Holds the optimizer's class name, the number of parameters, every
        hyper-parameter, and a copy of each state entry as "<name>.<parameter index>".
        """
        # BEGIN SOLUTION state_dict: build the flat dict of COPIES: "optimizer", "param_count", each hyper-parameter, and "<name>.<i>" for every entry of self.state[i]
        state = {"optimizer": np.array(type(self).__name__), "param_count": np.array(len(self.params))}
        for name in self.hyperparameters:
            state[name] = np.array(getattr(self, name))
        for index, buffers in enumerate(self.state):
            for name, value in buffers.items():
                state[f"{name}.{index}"] = np.array(value)  # a copy: later steps must not change it
        return state
        # END SOLUTION

    def load_state_dict(self, state) -> None:
        """Restore exactly what `state_dict` saved (a dict, or what `np.load` returns).

        A state that does not fit is refused with a ValueError, and then nothing has changed.
        """
        # BEGIN SOLUTION state_dict: check everything first (optimizer, param_count, every hyper-parameter present, buffer shapes; ValueError), then restore the hyper-parameters and replace self.state with copies (ints for integer counters)
        state = dict(state)
        name = type(self).__name__
        saved_by = str(state.get("optimizer", "something that is not an optimizer"))
        if saved_by != name:
            raise ValueError(f"{name}.load_state_dict: this state was saved by {saved_by}, not {name}")
        missing = [key for key in ("param_count", *self.hyperparameters) if key not in state]
        if missing:
            raise ValueError(f"{name}.load_state_dict: the state has no {', '.join(map(repr, missing))}")
        if int(state["param_count"]) != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state holds {int(state['param_count'])} parameters; "
                             f"this optimizer has {len(self.params)}")
        buffers = [{} for _ in self.params]  # built aside: self.state changes only once all is checked
        for key, value in state.items():
            entry, _, index = key.rpartition(".")
            if not index.isdigit():
                continue  # the header and the hyper-parameters
            p = self.params[int(index)]
            if np.issubdtype(value.dtype, np.integer):
                buffers[int(index)][entry] = int(value)  # a counter such as Adam's step
            elif value.shape != p.shape:
                raise ValueError(f"{name}.load_state_dict: {key} has shape {value.shape}, "
                                 f"but parameter {index} has shape {p.shape}")
            else:
                buffers[int(index)][entry] = np.array(value, dtype=p.dtype)  # a private copy
        for hyperparameter in self.hyperparameters:  # Python numbers again: a float, a bool, a tuple
            value = state[hyperparameter]
            setattr(self, hyperparameter, value.item() if value.ndim == 0 else tuple(value.tolist()))
        self.state = buffers
        # END SOLUTION


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
        # BEGIN SOLUTION sgd: check (ValueError) lr > 0, 0 <= momentum < 1, weight_decay >= 0, nesterov only with momentum; store all four
        if not lr > 0:
            raise ValueError(f"SGD: lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.lr, self.momentum, self.weight_decay, self.nesterov = lr, momentum, weight_decay, nesterov
        # END SOLUTION

    def step(self) -> None:
        """p.data -= lr * direction for every parameter whose grad is not None."""
        # BEGIN SOLUTION sgd: skip parameters without a gradient; add weight_decay * p.data to the gradient; use self.apply_momentum when momentum is on; update p.data in place
        for index, p in enumerate(self.params):
            if p.grad is None:
                continue
            direction = p.grad
            if self.weight_decay:
                direction = direction + self.weight_decay * p.data  # the gradient of (wd / 2) * |p|^2
            if self.momentum:
                direction = self.apply_momentum(index, p, direction)
            p.data -= self.lr * direction
        # END SOLUTION

    def apply_momentum(self, index: int, p: Tensor, grad: np.ndarray) -> np.ndarray:
        """Advance parameter `index`'s velocity with `grad`; return the direction to step along."""
        # BEGIN SOLUTION momentum: create the velocity (zeros) on the first call, update it in place (v = mu v + g), and return v, or g + mu v with Nesterov
        buffers = self.state[index]
        if "velocity" not in buffers:
            buffers["velocity"] = np.zeros_like(p.data)
        velocity = buffers["velocity"]
        velocity *= self.momentum
        velocity += grad
        if self.nesterov:
            return grad + self.momentum * velocity
        return velocity
        # END SOLUTION


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
        # BEGIN SOLUTION adam: check (ValueError) lr > 0, both betas in [0, 1), eps >= 0, weight_decay >= 0; store lr, betas (a tuple), eps, weight_decay
        name = type(self).__name__
        if not lr > 0:
            raise ValueError(f"{name}: lr must be > 0, got {lr}")
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
        if not eps >= 0:
            raise ValueError(f"{name}: eps must be >= 0, got {eps}")
        if not weight_decay >= 0:
            raise ValueError(f"{name}: weight_decay must be >= 0, got {weight_decay}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        # END SOLUTION

    def apply_weight_decay(self, p: Tensor, grad: np.ndarray) -> np.ndarray:
        """Adam's weight decay is L2 regularisation: it is added to the gradient."""
        # BEGIN SOLUTION adam: return grad + weight_decay * p.data (grad itself when weight_decay is 0)
        if self.weight_decay:
            return grad + self.weight_decay * p.data
        return grad
        # END SOLUTION

    def step(self) -> None:
        """One Adam update of every parameter that has a gradient, in place, without extra copies."""
        # BEGIN SOLUTION adam: per parameter with a gradient: apply weight decay, create zero moments and step 0 on its first update, advance its step, update m and v in place, then p.data -= lr * m_hat / (sqrt(v_hat) + eps)
        beta1, beta2 = self.betas
        for index, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = self.apply_weight_decay(p, p.grad)
            buffers = self.state[index]
            if not buffers:
                buffers.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
            buffers["step"] += 1
            t = buffers["step"]
            m, v = buffers["exp_avg"], buffers["exp_avg_sq"]
            bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
            # Every line below writes into an existing array: one parameter-sized scratch
            # array, alive for one parameter at a time, is all the memory a step allocates.
            scratch = np.empty_like(p.data)
            m *= beta1
            m += np.multiply(grad, 1 - beta1, out=scratch)  # m = beta1 m + (1 - beta1) g
            v *= beta2
            np.multiply(grad, grad, out=scratch)
            scratch *= 1 - beta2
            v += scratch  # v = beta2 v + (1 - beta2) g^2
            np.divide(v, bias2, out=scratch)
            np.sqrt(scratch, out=scratch)
            scratch += self.eps  # sqrt(v_hat) + eps
            np.divide(m, scratch, out=scratch)
            scratch *= self.lr / bias1  # lr * m_hat / (sqrt(v_hat) + eps)
            p.data -= scratch
            del scratch  # free it now, not when the next parameter's scratch replaces it
        # END SOLUTION


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
        # BEGIN SOLUTION adamw: scale p.data in place by (1 - lr * weight_decay) and return grad unchanged
        p.data *= 1 - self.lr * self.weight_decay
        return grad
        # END SOLUTION

"""Kata 06 · Optimizers: SGD, momentum, Adam, AdamW, and what their state costs.

Run `python -m pytest katas/06_optimizers` and fix the first red test.
Exact steps are checked against values worked out by hand in float64: the
arithmetic is in each test's comments, so you can redo it on paper. A few
longer runs (several steps, a learning rate changed between them) are checked
against numbers PyTorch computed once, copied into the test.
"""


import numpy as np
import pytest

from harness.budgets import assert_peak_bytes, assert_time_ratio, time_ratio
from harness.checks import assert_close
from tinytorch.optimizers import SGD, Adam, AdamW, Optimizer
from tinytorch.tensor import Tensor

EPS = 1e-8  # Adam's default eps


def param(values, grad=None):
    """A float64 parameter (exact arithmetic) with an optional gradient."""
    p = Tensor(values, dtype=np.float64, requires_grad=True)
    if grad is not None:
        p.grad = np.array(grad, dtype=np.float64)
    return p


def assert_rejected(make, what, names=()):
    """make() must raise ValueError, and its message must mention every one of `names`."""
    try:
        make()
    except ValueError as error:
        missing = [name for name in names if name not in str(error)]
        assert not missing, f"{what}: the ValueError should name {missing}; it said: {str(error)!r}"
        return
    raise AssertionError(f"{what}: expected a ValueError, but the optimizer was created")


def assert_gradient_untouched(p, before, what):
    """p.grad still holds `before`: the step read the gradient and wrote nothing into it."""
    assert np.array_equal(p.grad, before), (
        f"{what}: the step changed p.grad from {before.tolist()} to {np.asarray(p.grad).tolist()}. The gradient "
        "belongs to autograd (it accumulates into it); build the step's direction in a new array: "
        "`direction = grad + wd * p.data`, not `grad += ...`")


def run_with_lrs(optimizer, params, grads, lrs):
    """Step once per entry of `grads` (None skips a parameter), with optimizer.lr set to each of `lrs` first."""
    for step_grads, lr in zip(grads, lrs):
        optimizer.lr = lr
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else np.array(g, dtype=np.float64)
        optimizer.step()


# -- base --------------------------------------------------------------------------------


@pytest.mark.checkpoint("base")
class TestBase:
    def test_params_are_kept_as_a_list(self):
        """Optimizer(a generator of tensors).params is a list of those same tensors."""
        a, b = param([1.0]), param([2.0, 3.0])
        optimizer = Optimizer(p for p in (a, b))
        assert isinstance(optimizer.params, list), f"params should be a list, got {type(optimizer.params).__name__}"
        assert len(optimizer.params) == 2 and optimizer.params[0] is a and optimizer.params[1] is b, (
            "params should hold the very tensors passed in, in order (not copies)")

    def test_params_are_the_optimizers_own_list(self):
        """Optimizer(a list) keeps its own copy of the list: the caller adding or removing entries later changes nothing."""
        a, b = param([1.0]), param([2.0, 3.0])
        given = [a, b]
        optimizer = Optimizer(given)
        given.append(param([4.0]))
        given.remove(a)
        assert len(optimizer.params) == 2 and optimizer.params[0] is a and optimizer.params[1] is b, (
            f"after the caller changed its list, optimizer.params holds {len(optimizer.params)} tensors "
            f"(expected a and b): keep list(params), not the caller's list itself, which also skips the checks "
            "for entries added later")

    def test_empty_parameter_list_is_rejected(self):
        """Optimizer([]) raises ValueError: there is nothing to optimize."""
        with pytest.raises(ValueError, match="empty"):
            Optimizer([])
        with pytest.raises(ValueError, match="empty"):
            Optimizer(iter([]))  # an empty generator is truthy: check the list

    def test_non_tensor_parameter_is_rejected(self):
        """A numpy array in the parameter list raises TypeError naming its position."""
        with pytest.raises(TypeError, match="parameter 1"):
            Optimizer([param([1.0]), np.zeros(3)])
        with pytest.raises(TypeError, match="parameter 2"):
            Optimizer([param([1.0]), param([2.0]), [3.0]])

    def test_duplicate_parameter_is_rejected(self):
        """The same tensor listed twice raises ValueError (it would be updated twice per step)."""
        a = param([1.0])
        with pytest.raises(ValueError, match="twice"):
            Optimizer([a, param([2.0]), a])

    def test_equal_but_distinct_tensors_are_two_parameters(self):
        """Two different tensors with equal values are two parameters, not a duplicate: compare by identity."""
        a, b = param([1.0, 2.0]), param([1.0, 2.0])
        assert len(Optimizer([a, b]).params) == 2, "two distinct tensors with equal values should both be kept"

    def test_zero_grad_sets_every_grad_to_none(self):
        """zero_grad() sets .grad of every parameter to None (also one whose grad is None already), data untouched."""
        a, b, c = param([1.0], grad=[0.5]), param([2.0], grad=[-1.0]), param([3.0])
        Optimizer([a, b, c]).zero_grad()
        assert a.grad is None and b.grad is None and c.grad is None, (
            f"after zero_grad: grads {a.grad}, {b.grad}, {c.grad}; expected None, None, None")
        assert a.data.tolist() == [1.0] and b.data.tolist() == [2.0], "zero_grad changed a parameter's data"


# -- SGD ---------------------------------------------------------------------------------


@pytest.mark.checkpoint("sgd")
class TestSGD:
    def test_step_leaves_the_gradient_alone(self):
        """SGD with weight decay changes p.data only: p.grad keeps its values.

        Hint: `direction = p.grad` then `direction += wd * p.data` writes into the gradient itself;
        `direction = p.grad + wd * p.data` makes a new array.
        """
        p = param([2.0, -4.0], grad=[0.5, 1.0])
        SGD([p], lr=0.1, weight_decay=0.1).step()
        assert_gradient_untouched(p, np.array([0.5, 1.0]), "SGD(lr=0.1, weight_decay=0.1)")

    def test_one_step_is_p_minus_lr_times_grad(self):
        """One SGD step: p - lr * g."""
        # [1, 2, 3] - 0.1 * [0.5, -1, 2] = [0.95, 2.1, 2.8]
        p = param([1.0, 2.0, 3.0], grad=[0.5, -1.0, 2.0])
        SGD([p], lr=0.1).step()
        assert_close(p.data, [0.95, 2.1, 2.8], "SGD(lr=0.1), p = [1, 2, 3], g = [0.5, -1, 2]", rtol=1e-12)

    def test_update_is_in_place(self):
        """step() writes into p.data: the same array object, the same dtype."""
        p = Tensor(np.ones(4, dtype=np.float32), requires_grad=True)
        p.grad = np.full(4, 2.0, dtype=np.float32)
        data = p.data
        SGD([p], lr=0.25).step()
        assert p.data is data, "step() replaced p.data with a new array; update it in place with `p.data -= ...`"
        assert p.dtype == np.float32, f"a float32 parameter became {p.dtype}"
        assert_close(p.data, np.full(4, 0.5, dtype=np.float32), "SGD(lr=0.25), p = 1, g = 2")

    def test_every_parameter_is_updated(self):
        """Three parameters of different shapes each take their own step, p - lr * g."""
        a, b, c = param([1.0], grad=[1.0]), param([[1.0, 2.0]], grad=[[2.0, 4.0]]), param(0.5, grad=-1.0)
        SGD([a, b, c], lr=0.5).step()
        assert_close(a.data, [0.5], "parameter 0 after one step", rtol=1e-12)
        assert_close(b.data, [[0.0, 0.0]], "parameter 1 (shape (1, 2)) after one step", rtol=1e-12, atol=0)
        assert_close(c.data, 1.0, "parameter 2 (a 0-d tensor) after one step", rtol=1e-12)

    def test_weight_decay_pulls_toward_zero(self):
        """Weight decay adds weight_decay * p to the gradient."""
        # g' = g + 0.1 p = [0 + 0.2, 0 - 0.4, 1 + 0.1] = [0.2, -0.4, 1.1]
        # p - 0.5 g' = [2 - 0.1, -4 + 0.2, 1 - 0.55] = [1.9, -3.8, 0.45]
        p = param([2.0, -4.0, 1.0], grad=[0.0, 0.0, 1.0])
        SGD([p], lr=0.5, weight_decay=0.1).step()
        assert_close(p.data, [1.9, -3.8, 0.45], "SGD(lr=0.5, weight_decay=0.1), p = [2, -4, 1], g = [0, 0, 1]",
                     rtol=1e-12)

    def test_parameter_without_grad_is_skipped(self):
        """A parameter whose grad is None is left exactly as it was (not even decayed); the ones after it still step."""
        a, b = param([1.0, 1.0], grad=[1.0, 1.0]), param([3.0, -3.0])
        SGD([b, a], lr=0.1, weight_decay=0.5).step()
        assert_close(b.data, [3.0, -3.0], "parameter with grad None after a step", rtol=0, atol=0)
        assert_close(a.data, [0.85, 0.85], "parameter with a gradient: 1 - 0.1 * (1 + 0.5 * 1)", rtol=1e-12)

    def test_lr_is_read_at_every_step(self):
        """Changing optimizer.lr between steps (an LR schedule) changes the next step."""
        # 0 - 0.1 * 1 = -0.1, then -0.1 - 0.01 * 1 = -0.11
        p = param([0.0], grad=[1.0])
        optimizer = SGD([p], lr=0.1)
        optimizer.step()
        optimizer.lr = 0.01
        optimizer.step()
        assert_close(p.data, [-0.11], "two steps, lr 0.1 then 0.01, g = 1", rtol=1e-12)

    def test_bad_hyperparameters_are_rejected(self):
        """lr <= 0 or NaN, momentum outside [0, 1), weight_decay < 0 and nesterov without momentum: a ValueError naming it.

        Hint: `if lr <= 0` lets NaN through (every comparison with NaN is False); ask for what is good,
        `if not lr > 0: raise ...`.
        """
        p = param([1.0])
        assert_rejected(lambda: SGD([p], lr=0.0), "SGD(lr=0)", ["lr"])
        assert_rejected(lambda: SGD([p], lr=-0.1), "SGD(lr=-0.1)", ["lr"])
        assert_rejected(lambda: SGD([p], lr=float("nan")), "SGD(lr=nan)", ["lr"])
        assert_rejected(lambda: SGD([p], lr=0.1, momentum=-0.5), "SGD(lr=0.1, momentum=-0.5)", ["momentum"])
        assert_rejected(lambda: SGD([p], lr=0.1, momentum=1.0), "SGD(lr=0.1, momentum=1.0)", ["momentum"])
        assert_rejected(lambda: SGD([p], lr=0.1, momentum=0.9, weight_decay=-1e-4),
                        "SGD(lr=0.1, momentum=0.9, weight_decay=-1e-4)", ["weight_decay"])
        assert_rejected(lambda: SGD([p], lr=0.1, nesterov=True), "SGD(lr=0.1, nesterov=True) with momentum 0",
                        ["nesterov"])

    def test_trains_a_quadratic_with_autograd(self):
        """zero_grad, backward, step: 100 steps fit x to a target, and x stays a leaf (no graph recorded)."""
        target = np.array([1.0, -2.0, 3.0])
        x = Tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
        optimizer = SGD([x], lr=0.1)
        for _ in range(100):
            optimizer.zero_grad()
            loss = ((x - target) ** 2).sum()
            loss.backward()
            optimizer.step()
        assert x.op is None and x.parents == () and x.requires_grad, (
            "after step() x should still be a leaf that requires grad; did the update build a graph?")
        assert_close(x.data, target, "x after 100 SGD steps on |x - target|^2", atol=1e-6)


# -- momentum ----------------------------------------------------------------------------


@pytest.mark.checkpoint("momentum")
class TestMomentum:
    def test_velocity_is_not_the_gradient_array(self):
        """Momentum steps leave p.grad's values alone: the velocity is the optimizer's own array.

        Hint: `buffers["velocity"] = grad` keeps the gradient array itself as the velocity, and the
        next `velocity *= mu` rewrites p.grad. Start from `np.zeros_like(p.data)` and add into it.
        """
        p = param([1.0, -2.0], grad=[1.0, -2.0])
        optimizer = SGD([p], lr=0.1, momentum=0.9)
        for step in (1, 2, 3):
            optimizer.step()
            assert_gradient_untouched(p, np.array([1.0, -2.0]), f"SGD(momentum=0.9), step {step}")

    def test_two_momentum_steps_by_hand(self):
        """Momentum 0.9: v = 0.9 v + g, p -= lr v, worked out for two steps."""
        # g = [1, -2] both steps, lr = 0.1, mu = 0.9, p0 = [1, 1]
        # step 1: v = g = [1, -2];                      p = [1 - 0.1, 1 + 0.2]   = [0.9, 1.2]
        # step 2: v = 0.9 [1, -2] + [1, -2] = [1.9, -3.8]; p = [0.9 - 0.19, 1.2 + 0.38] = [0.71, 1.58]
        p = param([1.0, 1.0], grad=[1.0, -2.0])
        optimizer = SGD([p], lr=0.1, momentum=0.9)
        optimizer.step()
        assert_close(p.data, [0.9, 1.2], "after step 1 (v = g: the first step is plain SGD)", rtol=1e-12)
        optimizer.step()
        assert_close(p.data, [0.71, 1.58], "after step 2 (v = 0.9 v + g = 1.9 g)", rtol=1e-12)

    def test_nesterov_two_steps_by_hand(self):
        """Nesterov: v = mu v + g, then p -= lr (g + mu v), worked out for two steps."""
        # g = 1 both steps, lr = 0.1, mu = 0.9, p0 = 1
        # step 1: v = 1;                 direction = 1 + 0.9 * 1   = 1.9;  p = 1 - 0.19     = 0.81
        # step 2: v = 0.9 + 1 = 1.9;     direction = 1 + 0.9 * 1.9 = 2.71; p = 0.81 - 0.271 = 0.539
        p = param([1.0], grad=[1.0])
        optimizer = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
        optimizer.step()
        assert_close(p.data, [0.81], "Nesterov after step 1", rtol=1e-12)
        optimizer.step()
        assert_close(p.data, [0.539], "Nesterov after step 2", rtol=1e-12)

    def test_nesterov_with_weight_decay_by_hand(self):
        """Nesterov with weight decay: the decayed gradient g' enters the velocity AND the look-ahead g' + mu v."""
        # g = 1 both steps, wd = 0.2, mu = 0.5, lr = 0.1, p0 = 2
        # step 1: g' = 1 + 0.2 * 2 = 1.4;      v = 1.4;                  direction = 1.4 + 0.5 * 1.4 = 2.1
        #         p = 2 - 0.21 = 1.79
        # step 2: g' = 1 + 0.2 * 1.79 = 1.358; v = 0.7 + 1.358 = 2.058;  direction = 1.358 + 1.029 = 2.387
        #         p = 1.79 - 0.2387 = 1.5513
        # (Adding the raw g instead of g' in the look-ahead gives 2 - 0.1 * 1.7 = 1.83 after step 1.)
        p = param([2.0], grad=[1.0])
        optimizer = SGD([p], lr=0.1, momentum=0.5, weight_decay=0.2, nesterov=True)
        optimizer.step()
        assert_close(p.data, [1.79], "Nesterov + weight decay after step 1", rtol=1e-12)
        optimizer.step()
        assert_close(p.data, [1.5513], "Nesterov + weight decay after step 2", rtol=1e-12)

    def test_velocity_carries_on_after_the_gradient_turns(self):
        """With momentum the parameter keeps moving the old way when a smaller gradient points back."""
        # lr = 0.1, mu = 0.9, p0 = 0
        # step 1: g = 1:    v = 1;              p = -0.1
        # step 2: g = -0.5: v = 0.9 - 0.5 = 0.4; p = -0.1 - 0.04 = -0.14  (still moving down)
        p = param([0.0], grad=[1.0])
        optimizer = SGD([p], lr=0.1, momentum=0.9)
        optimizer.step()
        p.grad = np.array([-0.5])
        optimizer.step()
        assert_close(p.data, [-0.14], "momentum 0.9, g = 1 then -0.5", rtol=1e-12)

    def test_momentum_with_weight_decay(self):
        """Weight decay joins the gradient before it enters the velocity."""
        # g = 0, wd = 0.1, mu = 0.5, lr = 1, p0 = 2
        # step 1: g' = 0.2;  v = 0.2;               p = 2 - 0.2  = 1.8
        # step 2: g' = 0.18; v = 0.1 + 0.18 = 0.28; p = 1.8 - 0.28 = 1.52
        p = param([2.0], grad=[0.0])
        optimizer = SGD([p], lr=1.0, momentum=0.5, weight_decay=0.1)
        optimizer.step()
        optimizer.step()
        assert_close(p.data, [1.52], "two steps with momentum 0.5 and weight decay 0.1 on g = 0", rtol=1e-12)

    def test_each_parameter_has_its_own_velocity(self):
        """Two parameters with gradients 1 and 10: each velocity builds from its own gradients only."""
        # lr = 0.1, mu = 0.9, both from 0. Step 1: v = g; step 2: v = 1.9 g.
        # a: -0.1 - 0.19 = -0.29;  b: -1 - 1.9 = -2.9
        a, b = param([0.0], grad=[1.0]), param([0.0], grad=[10.0])
        optimizer = SGD([a, b], lr=0.1, momentum=0.9)
        optimizer.step()
        optimizer.step()
        assert_close(a.data, [-0.29], "parameter a (g = 1) after two steps", rtol=1e-12)
        assert_close(b.data, [-2.9], "parameter b (g = 10) after two steps", rtol=1e-12)

    @pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
    def test_matches_pytorch_over_three_steps(self, nesterov):
        """SGD(lr=0.1, momentum=0.9, weight_decay=0.01) over three gradients, lr 0.05 at step 3: PyTorch's numbers.

        Hint: PyTorch's momentum has no damping by default: v = mu v + g (not mu v + (1 - mu) g), and lr
        multiplies the velocity when stepping (v does not hold lr, so a new lr acts at once).
        """
        # Computed once with torch.optim.SGD(..., dampening=0) in float64 (PyTorch 2.13), starting from
        # p = [1, -2, 0.5], setting param_groups[0]["lr"] before each step.
        expected = {False: [[0.949, -1.898, 0.2995],
                            [0.927151, -1.8793019999999998, 0.018750499999999944],
                            [0.8418553744999999, -1.8949482489999998, -0.08259615025000008]],
                    True: [[0.9031, -1.8062, 0.11904999999999999],
                           [0.90757411, -1.86264822, -0.23358119500000005],
                           [0.7553816590955, -1.9008431931910001, -0.29948975811475004]]}[nesterov]
        grads = [[0.5, -1.0, 2.0], [-0.25, 0.75, 1.0], [1.5, 0.5, -0.5]]
        p = param([1.0, -2.0, 0.5])
        optimizer = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
        for step, (g, lr) in enumerate(zip(grads, [0.1, 0.1, 0.05])):
            run_with_lrs(optimizer, [p], [[g]], [lr])
            assert_close(p.data, expected[step], f"SGD(nesterov={nesterov}) after step {step + 1} (lr {lr})",
                         rtol=1e-12, atol=1e-15)

    def test_skipped_parameter_keeps_its_velocity(self):
        """A step where grad is None neither moves the parameter nor decays its velocity."""
        # lr = 0.1, mu = 0.9
        # step 1: g = 1:    v = 1;               p = -0.1
        # step 2: g = None: skipped;             p = -0.1   (v stays 1, not 0.9)
        # step 3: g = 1:    v = 0.9 + 1 = 1.9;   p = -0.1 - 0.19 = -0.29
        p = param([0.0], grad=[1.0])
        optimizer = SGD([p], lr=0.1, momentum=0.9)
        optimizer.step()
        p.grad = None
        optimizer.step()
        assert_close(p.data, [-0.1], "after a step with grad None", rtol=1e-12)
        p.grad = np.array([1.0])
        optimizer.step()
        assert_close(p.data, [-0.29], "after g = 1, None, 1 (the skipped step must not touch v)", rtol=1e-12)

    def test_momentum_beats_plain_sgd_in_a_narrow_valley(self):
        """On f = (x^2 + 100 y^2)/2, 200 steps with momentum 0.9 get far closer to 0 than plain SGD."""
        # The gradient is (x, 100 y). lr = 0.015 is near the limit the steep y direction allows
        # (lr < 2/100), so plain SGD crawls along x: |x| = 0.985^200 = 0.049. Momentum gathers
        # speed along x and ends below 1e-3.
        def run(momentum):
            p = param([1.0, 1.0])
            optimizer = SGD([p], lr=0.015, momentum=momentum)
            for _ in range(200):
                p.grad = np.array([1.0, 100.0]) * p.data
                optimizer.step()
            return float(np.linalg.norm(p.data))

        plain, heavy = run(0.0), run(0.9)
        assert plain > 1e-2, f"plain SGD should still be far from 0 after 200 steps, got distance {plain:.2e}"
        assert heavy < 1e-3, f"SGD with momentum 0.9 should be within 1e-3 of 0, got distance {heavy:.2e}"


# -- Adam --------------------------------------------------------------------------------


@pytest.mark.checkpoint("adam")
class TestAdam:
    def test_step_leaves_the_gradient_alone(self):
        """Adam with weight decay changes p.data and its own moments only: p.grad keeps its values.

        Hint: L2 decay must build a new gradient, `grad + wd * p.data`; `grad += wd * p.data` writes
        into p.grad, and the next step (or an accumulating backward) starts from a wrong gradient.
        """
        p = param([2.0, -1.0], grad=[3.0, 0.5])
        optimizer = Adam([p], lr=0.1, weight_decay=0.5)
        for step in (1, 2):
            optimizer.step()
            assert_gradient_untouched(p, np.array([3.0, 0.5]), f"Adam(weight_decay=0.5), step {step}")

    def test_first_step_moves_each_element_by_lr(self):
        """Adam's first step is lr * g / (|g| + eps), about lr * sign(g), whatever the size of g."""
        # t = 1: m = 0.1 g, v = 0.001 g^2; bias correction divides by 1 - 0.9 = 0.1 and 1 - 0.999 = 0.001:
        # m_hat = g, v_hat = g^2, step = lr * g / (|g| + eps).
        # Without bias correction the step would be lr * 0.1 g / (0.0316 |g|) = 3.16 lr sign(g).
        g = np.array([0.5, -3.0, 1e-3, 100.0])
        p = param(np.zeros(4), grad=g)
        data = p.data
        Adam([p], lr=0.01).step()
        assert p.data is data, "step() replaced p.data with a new array; update it in place"
        assert_close(p.data, -0.01 * g / (np.abs(g) + EPS), "Adam(lr=0.01) first step from 0", rtol=1e-12)

    def test_constant_gradient_steps_by_lr_every_time(self):
        """With a constant gradient, bias-corrected Adam steps by lr * g / (|g| + eps) every step."""
        # g = 2: m_t = (1 - 0.9^t) * 2 and v_t = (1 - 0.999^t) * 4, so m_hat = 2 and v_hat = 4 for every t:
        # each step is 0.1 * 2 / (2 + eps).
        p = param([1.0], grad=[2.0])
        optimizer = Adam([p], lr=0.1)
        for t in range(1, 4):
            optimizer.step()
            assert_close(p.data, [1.0 - t * 0.1 * 2 / (2 + EPS)], f"after step {t} with g = 2", rtol=1e-12)

    def test_two_steps_with_a_sign_flip_by_hand(self):
        """Two Adam steps, g = 1 then g = -1, worked out by hand."""
        # lr = 0.1, betas = (0.9, 0.999), p0 = 1
        # step 1: m = 0.1, v = 0.001; m_hat = 1, v_hat = 1;  p1 = 1 - 0.1 / (1 + eps)
        # step 2: m = 0.9 * 0.1 - 0.1 = -0.01;  v = 0.999 * 0.001 + 0.001 = 0.001999
        #         m_hat = -0.01 / (1 - 0.81) = -0.0526315...;  v_hat = 0.001999 / (1 - 0.998001) = 1
        #         p2 = p1 + 0.1 * 0.0526315... / (1 + eps)
        p = param([1.0], grad=[1.0])
        optimizer = Adam([p], lr=0.1)
        optimizer.step()
        p1 = 1 - 0.1 / (1 + EPS)
        assert_close(p.data, [p1], "after step 1 (g = 1)", rtol=1e-12)
        p.grad = np.array([-1.0])
        optimizer.step()
        assert_close(p.data, [p1 + 0.1 * (0.01 / 0.19) / (1 + EPS)], "after step 2 (g = -1)", rtol=1e-10)

    def test_its_own_betas_and_eps_by_hand(self):
        """Adam(lr=0.1, betas=(0.5, 0.75), eps=0.25): two steps, g = 1 then 3, use the given betas and eps."""
        # step 1: m = 0.5 * 1 = 0.5, v = 0.25 * 1 = 0.25; m_hat = 0.5 / 0.5 = 1, v_hat = 0.25 / 0.25 = 1
        #         p1 = 0 - 0.1 * 1 / (1 + 0.25) = -0.08
        # step 2: m = 0.5 * 0.5 + 0.5 * 3 = 1.75;  v = 0.75 * 0.25 + 0.25 * 9 = 2.4375
        #         m_hat = 1.75 / (1 - 0.25) = 7/3;  v_hat = 2.4375 / (1 - 0.5625) = 39/7
        #         p2 = -0.08 - 0.1 * (7/3) / (sqrt(39/7) + 0.25) = -0.1693865
        # eps goes after the square root: inside it, sqrt(v_hat + eps), the step would differ.
        p = param([0.0], grad=[1.0])
        optimizer = Adam([p], lr=0.1, betas=(0.5, 0.75), eps=0.25)
        optimizer.step()
        assert_close(p.data, [-0.08], "after step 1 (g = 1)", rtol=1e-12)
        p.grad = np.array([3.0])
        optimizer.step()
        assert_close(p.data, [-0.08 - 0.1 * (7 / 3) / (np.sqrt(39 / 7) + 0.25)], "after step 2 (g = 3)",
                     rtol=1e-12)

    def test_each_parameter_counts_its_own_steps(self):
        """Every parameter's first update is lr * sign(g), even one that had no gradient until step 2."""
        # a and b: g = 1 at both steps (constant: every step is lr / (1 + eps)).
        # c: grad None at step 1 (skipped: no state, no step counted), g = 4 at step 2: its first step,
        # so it moves by lr * 4 / (4 + eps). A step counter shared between parameters breaks all three.
        lr = 0.1
        a, b, c = param([0.0], grad=[1.0]), param([0.0], grad=[1.0]), param([5.0])
        optimizer = Adam([c, a, b], lr=lr)  # c first: skipping it must not skip the others
        optimizer.step()
        assert_close(a.data, [-lr / (1 + EPS)], "a after step 1", rtol=1e-12)
        assert_close(b.data, [-lr / (1 + EPS)], "b after step 1 (b's own first step)", rtol=1e-12)
        assert_close(c.data, [5.0], "c after step 1, where c.grad is None", rtol=0, atol=0)
        c.grad = np.array([4.0])
        optimizer.step()
        assert_close(a.data, [-2 * lr / (1 + EPS)], "a after step 2", rtol=1e-12)
        assert_close(c.data, [5.0 - lr * 4 / (4 + EPS)], "c after step 2 (its first update: t = 1)", rtol=1e-12)

    def test_weight_decay_is_added_to_the_gradient(self):
        """Adam's weight_decay is L2: g' = g + wd * p goes through the adaptive scaling like any gradient."""
        # lr = 0.1, wd = 0.5, p0 = 2: g' = g + 1.
        # g = 3: g' = 4, first step 0.1 * 4 / (4 + eps): the decay vanished into the normalisation.
        # g = 0: g' = 1, first step 0.1 * 1 / (1 + eps): the decay alone moves p by lr.
        p, q = param([2.0], grad=[3.0]), param([2.0], grad=[0.0])
        Adam([p, q], lr=0.1, weight_decay=0.5).step()
        assert_close(p.data, [2 - 0.1 * 4 / (4 + EPS)], "Adam(wd=0.5): p = 2, g = 3", rtol=1e-12)
        assert_close(q.data, [2 - 0.1 * 1 / (1 + EPS)], "Adam(wd=0.5): p = 2, g = 0", rtol=1e-12)

    def test_matches_pytorch_over_four_steps(self):
        """Adam(lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1), lr 0.1, 0.1, 0.05, 0.02: PyTorch's numbers."""
        # Computed once with torch.optim.Adam in float64 (PyTorch 2.13), setting param_groups[0]["lr"]
        # before each step. The second parameter has no gradient at step 1, the first none at step 3.
        expected = [
            [[0.9001663893510815, -1.9000832639467111, 0.4000487567040468], [0.25, -0.75]],
            [[0.8593124787129203, -1.8761784005396296, 0.3078050724899441], [0.15003304692663583, -0.650173611111111]],
            [[0.8593124787129203, -1.8761784005396296, 0.3078050724899441], [0.13213483475728446, -0.6785548461270818]],
            [[0.851407658702512, -1.8624472594317385, 0.292650779943549], [0.12465532346718725, -0.6896462282890413]],
        ]
        params = [param([1.0, -2.0, 0.5]), param([0.25, -0.75])]
        optimizer = Adam(params, lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)
        for step, (grads, lr) in enumerate(zip(ADAM_GRADS, [0.1, 0.1, 0.05, 0.02])):
            run_with_lrs(optimizer, params, [grads], [lr])
            for index, p in enumerate(params):
                assert_close(p.data, expected[step][index], f"Adam: parameter {index} after step {step + 1} (lr {lr})",
                             rtol=1e-12, atol=1e-15)

    def test_float32_parameters_stay_float32(self):
        """Adam on float32 parameters updates them in place and keeps float32 (moments too)."""
        p = Tensor(np.array([1.0, -2.0], dtype=np.float32), requires_grad=True)
        p.grad = np.array([0.5, 0.5], dtype=np.float32)
        data = p.data
        optimizer = Adam([p], lr=0.1)
        optimizer.step()
        optimizer.step()
        assert p.data is data and p.dtype == np.float32, (
            f"after two Adam steps p.data is {'the same' if p.data is data else 'a new'} array of dtype {p.dtype}; "
            "expected the same float32 array")
        assert_close(p.data, np.array([1.0 - 0.2, -2.0 - 0.2], dtype=np.float32), "two float32 Adam steps, g = 0.5")

    def test_betas_and_eps_of_zero_are_valid(self):
        """betas=(0, 0) and eps=0 are allowed: then m = g and v = g^2, and every step is lr * sign(g)."""
        # t = 1, 2: m_hat = g, v_hat = g^2 (the bias corrections are 1 - 0 = 1): each step is lr * g / |g|.
        p = param([1.0, 1.0], grad=[2.0, -0.5])
        optimizer = Adam([p], lr=0.1, betas=(0.0, 0.0), eps=0.0)
        optimizer.step()
        optimizer.step()
        assert_close(p.data, [0.8, 1.2], "two Adam steps with betas (0, 0) and eps 0, g = [2, -0.5]", rtol=1e-12)

    def test_betas_given_as_a_list_are_kept_as_a_tuple(self):
        """Adam(betas=[0.8, 0.9]) stores betas as the tuple (0.8, 0.9), for Adam and AdamW alike.

        Hint: a list is mutable and shared with the caller, and compares unequal to the tuple a
        loaded state restores; store `tuple(betas)`.
        """
        for cls in (Adam, AdamW):
            betas = [0.8, 0.9]
            optimizer = cls([param([1.0])], lr=0.01, betas=betas)
            assert type(optimizer.betas) is tuple and optimizer.betas == (0.8, 0.9), (
                f"{cls.__name__}(betas=[0.8, 0.9]).betas should be the tuple (0.8, 0.9), "
                f"got {optimizer.betas!r} ({type(optimizer.betas).__name__})")
            betas[0] = 0.0
            assert optimizer.betas == (0.8, 0.9), (
                f"{cls.__name__}: changing the caller's list changed betas to {optimizer.betas!r}")

    def test_bad_hyperparameters_are_rejected(self):
        """lr <= 0 or NaN, a beta outside [0, 1), not two betas, eps < 0, weight_decay < 0: a ValueError naming it (AdamW too)."""
        p = param([1.0])
        assert_rejected(lambda: Adam([p], lr=0.0), "Adam(lr=0)", ["lr"])
        assert_rejected(lambda: Adam([p], lr=float("nan")), "Adam(lr=nan)", ["lr"])
        assert_rejected(lambda: Adam([p], lr=0.01, betas=(1.0, 0.999)), "Adam(betas=(1.0, 0.999))", ["betas"])
        assert_rejected(lambda: Adam([p], lr=0.01, betas=(0.9, -0.1)), "Adam(lr=0.01, betas=(0.9, -0.1))", ["betas"])
        assert_rejected(lambda: Adam([p], lr=0.01, betas=(0.9, 1.0)), "Adam(lr=0.01, betas=(0.9, 1.0))", ["betas"])
        assert_rejected(lambda: Adam([p], lr=0.01, betas=(0.9,)), "Adam(betas=(0.9,))", ["betas"])
        assert_rejected(lambda: Adam([p], lr=0.01, betas=(0.9, 0.999), eps=-1e-8), "Adam(eps=-1e-8)", ["eps"])
        assert_rejected(lambda: Adam([p], lr=0.01, eps=1e-8, weight_decay=-0.01), "Adam(weight_decay=-0.01)",
                        ["weight_decay"])
        assert_rejected(lambda: AdamW([p], lr=0.01, betas=(0.9, 1.5)), "AdamW(lr=0.01, betas=(0.9, 1.5))", ["betas"])

    def test_solves_the_rosenbrock_valley(self):
        """Adam(lr=0.02) takes (-1.5, 2) to within 1e-2 of the minimum (1, 1) of Rosenbrock's function in 3000 steps."""
        # f(x, y) = (1 - x)^2 + 100 (y - x^2)^2: a curved, flat-bottomed valley.
        # df/dx = -2 (1 - x) - 400 x (y - x^2),  df/dy = 200 (y - x^2).
        p = param([-1.5, 2.0])
        optimizer = Adam([p], lr=0.02)
        for _ in range(3000):
            x, y = p.data
            p.grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
            optimizer.step()
        assert_close(p.data, [1.0, 1.0], "Adam on Rosenbrock after 3000 steps", rtol=0, atol=1e-2)


# Gradients for the PyTorch comparisons of Adam and AdamW: two parameters, four steps; None = no gradient
# (the second parameter at step 1, the first at step 3: each counts only its own steps).
ADAM_GRADS = [[[0.5, -1.0, 2.0], None], [[-0.25, 0.75, 1.0], [3.0, -0.5]],
              [None, [-1.0, 2.0]], [[0.0, -2.0, 0.25], [0.5, 0.5]]]


# -- AdamW -------------------------------------------------------------------------------


@pytest.mark.checkpoint("adamw")
class TestAdamW:
    def test_decay_is_decoupled_from_the_adaptive_scaling(self):
        """AdamW shrinks p by (1 - lr * wd) and then takes the Adam step of the raw gradient."""
        # lr = 0.1, wd = 0.5, p0 = 2, g = 3:
        # AdamW: p = 2 * (1 - 0.05) - 0.1 * 3 / (3 + eps) = 1.9 - 0.1 = 1.8
        # (Adam with L2 gives 2 - 0.1 * 4 / (4 + eps) = 1.9: the decay there is normalised away.)
        p = param([2.0], grad=[3.0])
        data = p.data
        AdamW([p], lr=0.1, weight_decay=0.5).step()
        assert p.data is data, "the decay replaced p.data with a new array; scale it in place with `*=`"
        assert_close(p.data, [2 * (1 - 0.05) - 0.1 * 3 / (3 + EPS)], "AdamW(lr=0.1, wd=0.5): p = 2, g = 3",
                     rtol=1e-12)

    def test_zero_gradient_decays_geometrically(self):
        """With g = 0 every AdamW step multiplies p by (1 - lr * wd), with the lr of that step."""
        # m = v = 0, so the Adam part is 0 / (0 + eps) = 0. lr = 0.1, wd = 0.2: 10 steps of x0.98,
        # then lr = 0.05: 10 steps of x0.99.
        p = param([1.0, -3.0], grad=[0.0, 0.0])
        optimizer = AdamW([p], lr=0.1, weight_decay=0.2)
        for _ in range(10):
            optimizer.step()
        assert_close(p.data, np.array([1.0, -3.0]) * 0.98 ** 10, "10 steps of pure decay, lr 0.1, wd 0.2",
                     rtol=1e-12)
        optimizer.lr = 0.05
        for _ in range(10):
            optimizer.step()
        assert_close(p.data, np.array([1.0, -3.0]) * 0.98 ** 10 * 0.99 ** 10, "then 10 more with lr 0.05",
                     rtol=1e-12)

    def test_defaults_decay_by_one_in_a_hundred_thousand(self):
        """AdamW(params) uses lr 1e-3 and weight_decay 0.01: a step with g = 0 multiplies p by 1 - 1e-5."""
        p = param([4.0], grad=[0.0])
        AdamW([p]).step()
        assert_close(p.data, [4.0 * (1 - 1e-5)], "one default AdamW step with g = 0", rtol=1e-12)

    def test_parameter_without_grad_is_not_decayed(self):
        """A parameter whose grad is None is neither decayed nor stepped."""
        a, b = param([1.0], grad=[1.0]), param([3.0])
        AdamW([b, a], lr=0.1, weight_decay=0.5).step()
        assert_close(b.data, [3.0], "AdamW: parameter with grad None", rtol=0, atol=0)
        assert_close(a.data, [1.0 * 0.95 - 0.1 / (1 + EPS)], "AdamW: the parameter after it, p = 1, g = 1", rtol=1e-12)

    def test_matches_pytorch_over_four_steps(self):
        """AdamW(lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1), lr 0.1, 0.1, 0.05, 0.02: PyTorch's numbers."""
        # Computed once with torch.optim.AdamW in float64 (PyTorch 2.13), setting param_groups[0]["lr"]
        # before each step; the same gradients as Adam's comparison. A parameter without a gradient is
        # not decayed either (the first one at step 3).
        expected = [
            [[0.8901996007984032, -1.8800999000999001, 0.3950499750124937], [0.25, -0.75]],
            [[0.8601057190698588, -1.8581484389112355, 0.29909248833354946], [0.1475333222259247, -0.6426996007984032]],
            [[0.8601057190698588, -1.8581484389112355, 0.29909248833354946], [0.1292307850624262, -0.6696151516982201]],
            [[0.8552835203078165, -1.8423291142753069, 0.2835033438707224], [0.12163121489307786, -0.6801833670902697]],
        ]
        params = [param([1.0, -2.0, 0.5]), param([0.25, -0.75])]
        optimizer = AdamW(params, lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)
        for step, (grads, lr) in enumerate(zip(ADAM_GRADS, [0.1, 0.1, 0.05, 0.02])):
            run_with_lrs(optimizer, params, [grads], [lr])
            for index, p in enumerate(params):
                assert_close(p.data, expected[step][index], f"AdamW: parameter {index} after step {step + 1} (lr {lr})",
                             rtol=1e-12, atol=1e-15)


# -- state memory ------------------------------------------------------------------------


def float32_params(*shapes, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = [Tensor(rng.standard_normal(shape).astype(dtype), dtype=dtype, requires_grad=True) for shape in shapes]
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(dtype)
    return params


@pytest.mark.checkpoint("state_memory")
class TestStateMemory:
    def test_plain_sgd_holds_no_state(self):
        """SGD without momentum keeps nothing between steps: state_bytes() is the int 0."""
        params = float32_params((100, 10), (10,))
        optimizer = SGD(params, lr=0.1)
        for _ in range(3):
            optimizer.step()
        used = optimizer.state_bytes()
        assert isinstance(used, (int, np.integer)) and not isinstance(used, bool), (
            f"state_bytes() should be a whole number of bytes (an int), got {type(used).__name__} {used!r}")
        assert used == 0, f"plain SGD: state_bytes() = {used}, expected 0"

    def test_momentum_holds_one_buffer_per_parameter(self):
        """SGD with momentum holds one velocity per parameter: exactly the parameters' bytes, from the first step on."""
        params = float32_params((100, 10), (10,), (3, 4, 5))
        weights = sum(p.nbytes for p in params)  # 4 bytes x 1070 elements = 4280
        optimizer = SGD(params, lr=0.1, momentum=0.9)
        assert optimizer.state_bytes() == 0, "no state should exist before the first step"
        for _ in range(3):
            optimizer.step()
        assert optimizer.state_bytes() == weights, (
            f"SGD with momentum: state_bytes() = {optimizer.state_bytes()}, expected {weights} (1x the parameters)")

    def test_adam_holds_two_buffers_per_parameter(self):
        """Adam holds m and v for every parameter: exactly 2x the parameters' bytes, step after step."""
        params = float32_params((100, 10), (10,), (3, 4, 5))
        weights = sum(p.nbytes for p in params)
        optimizer = Adam(params)
        for step in range(1, 4):
            optimizer.step()
            assert optimizer.state_bytes() == 2 * weights, (
                f"Adam after step {step}: state_bytes() = {optimizer.state_bytes()}, expected {2 * weights} "
                f"(2x the {weights} bytes of float32 parameters)")

    def test_bytes_follow_each_parameters_dtype(self):
        """A float64 parameter's moments take 8 bytes an element, a float32 one's 4: Adam holds 2 x (80 + 40) bytes."""
        (a,), (b,) = float32_params((10,), dtype=np.float64), float32_params((10,), seed=1)
        optimizer = Adam([a, b])
        optimizer.step()
        expected = 2 * (a.nbytes + b.nbytes)  # 2 x (10 x 8 + 10 x 4) = 240
        assert optimizer.state_bytes() == expected, (
            f"Adam over a float64 (10,) and a float32 (10,) parameter: state_bytes() = {optimizer.state_bytes()}, "
            f"expected {expected}: count each array's own .nbytes, and make buffers with np.zeros_like(p.data)")

    def test_parameter_never_updated_holds_no_state(self):
        """A parameter whose grad is None gets no buffers: the state counts only the parameters that were updated."""
        a, b = float32_params((50,), (1000,))
        b.grad = None
        optimizer = Adam([b, a])
        optimizer.step()
        assert optimizer.state_bytes() == 2 * a.nbytes, (
            f"Adam: state_bytes() = {optimizer.state_bytes()}, expected {2 * a.nbytes}: m and v of the 50-element "
            "parameter only")
        optimizer = SGD([b, a], lr=0.1, momentum=0.9)
        optimizer.step()
        assert optimizer.state_bytes() == a.nbytes, (
            f"SGD with momentum: state_bytes() = {optimizer.state_bytes()}, expected {a.nbytes}: the velocity of the "
            "50-element parameter only")


# -- state_dict --------------------------------------------------------------------------


def run_steps(optimizer, params, grads):
    """Give each parameter its gradient (None skips it) and step, once per entry of `grads`."""
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g
        optimizer.step()


def gradient_sequence(shapes, steps, seed):
    """Seeded float32 gradients; the last parameter has no gradient at the first step."""
    rng = np.random.default_rng(seed)
    sequence = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    sequence[0][-1] = None
    return sequence


MAKERS = {
    "SGD": lambda params: SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "Adam": lambda params: Adam(params, lr=0.01, betas=(0.85, 0.98), eps=1e-6, weight_decay=1e-3),
    "AdamW": lambda params: AdamW(params, lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.05),
}
# The same classes made with other (default) hyper-parameters: loading must replace every one of them.
OTHER_MAKERS = {
    "SGD": lambda params: SGD(params, lr=1.0),
    "Adam": lambda params: Adam(params),
    "AdamW": lambda params: AdamW(params),
}


def assert_same_state(optimizer, before: dict, what: str) -> None:
    """optimizer.state_dict() still equals `before`: the same keys, the same values."""
    after = optimizer.state_dict()
    assert sorted(after) == sorted(before), (
        f"{what}: the optimizer's state changed: keys {sorted(before)} became {sorted(after)}. Check everything "
        "before changing anything: a refused state must leave the optimizer as it was")
    for key, value in before.items():
        assert np.array_equal(after[key], value), (
            f"{what}: the optimizer's {key!r} changed from {value!r} to {after[key]!r}. Check everything before "
            "changing anything: a refused state must leave the optimizer as it was")


def stepped_adam(*shapes, steps=2, seed=5):
    """An Adam (lr 0.01) over float32 parameters of `shapes`, after `steps` steps."""
    params = float32_params(*shapes, seed=seed)
    optimizer = Adam(params, lr=0.01)
    for _ in range(steps):
        optimizer.step()
    return optimizer


@pytest.mark.checkpoint("state_dict")
class TestStateDict:
    def test_state_dict_is_a_flat_dict_of_arrays_that_savez_can_store(self, tmp_path):
        """state_dict() maps str -> numpy array (class, count, hyper-parameters, buffers, steps) and survives np.savez."""
        params = float32_params((4, 3), (3,))
        optimizer = Adam(params, lr=0.01)
        optimizer.step()
        state = optimizer.state_dict()
        assert isinstance(state, dict), f"state_dict() should return a dict, got {type(state).__name__}"
        for key, value in state.items():
            assert isinstance(key, str) and isinstance(value, np.ndarray), (
                f"entry {key!r} is a {type(value).__name__}; every value should be a numpy array")
        for key in ("optimizer", "param_count", "lr", "betas", "eps", "weight_decay", "exp_avg.0", "exp_avg_sq.1",
                    "step.0"):
            assert key in state, f"state_dict() has no {key!r}; keys: {sorted(state)}"
        assert str(state["optimizer"]) == "Adam" and int(state["param_count"]) == 2, (
            f"state_dict()['optimizer'] and ['param_count'] should be 'Adam' and 2, got {state['optimizer']!r} "
            f"and {state['param_count']!r}")
        assert np.issubdtype(state["step.0"].dtype, np.integer) and int(state["step.0"]) == 1, (
            f"state_dict()['step.0'] should be the integer 1 after one step, got {state['step.0']!r}")
        np.savez(tmp_path / "optimizer.npz", **state)
        with np.load(tmp_path / "optimizer.npz", allow_pickle=False) as saved:
            assert sorted(saved.files) == sorted(state), "np.savez lost or renamed entries"

    def test_state_dict_holds_copies(self):
        """The dict state_dict() returns does not change when the optimizer steps again."""
        params = float32_params((6,), (2, 2))
        optimizer = Adam(params, lr=0.01)
        optimizer.step()
        state = optimizer.state_dict()
        snapshot = {key: value.copy() for key, value in state.items()}
        optimizer.step()
        for key, value in state.items():
            assert np.array_equal(value, snapshot[key]), (
                f"state_dict()[{key!r}] changed when the optimizer stepped: it is the live buffer, not a copy")

    @pytest.mark.parametrize("kind", sorted(MAKERS))
    def test_load_state_dict_keeps_its_own_copies(self, kind):
        """Stepping after load_state_dict(state) leaves every entry of `state` unchanged, step counters included."""
        params = float32_params((6,), (2, 2))
        optimizer = MAKERS[kind](params)
        optimizer.step()
        state = optimizer.state_dict()
        snapshot = {key: value.copy() for key, value in state.items()}
        optimizer.load_state_dict(state)
        optimizer.lr *= 0.5
        optimizer.step()
        for key, value in state.items():
            assert np.array_equal(value, snapshot[key]), (
                f"{kind}: the loaded dict's {key!r} changed from {snapshot[key]!r} to {value!r} on the next step: "
                "load_state_dict kept the array itself, not a copy (or an int)")

    @pytest.mark.parametrize("kind", sorted(MAKERS))
    def test_resumed_run_is_bit_identical(self, kind, tmp_path):
        """Save after 3 steps (np.savez), load into a fresh optimizer: the next 3 steps match an uninterrupted run bit for bit."""
        shapes = [(5, 4), (4,), (3,)]
        grads = gradient_sequence(shapes, 6, seed=6)
        params = float32_params(*shapes, seed=1)
        optimizer = MAKERS[kind](params)
        run_steps(optimizer, params, grads[:3])
        optimizer.lr *= 0.5  # a schedule changed lr: the saved state must carry it
        np.savez(tmp_path / "optimizer.npz", **optimizer.state_dict())
        saved_params = [p.data.copy() for p in params]
        run_steps(optimizer, params, grads[3:])

        resumed_params = [Tensor(data, requires_grad=True) for data in saved_params]
        resumed = MAKERS[kind](resumed_params)
        with np.load(tmp_path / "optimizer.npz", allow_pickle=False) as saved:
            resumed.load_state_dict(saved)
        run_steps(resumed, resumed_params, grads[3:])
        for index, (p, q) in enumerate(zip(params, resumed_params)):
            assert np.array_equal(p.data, q.data), (
                f"{kind}: parameter {index} after resuming differs from the uninterrupted run by up to "
                f"{np.max(np.abs(p.data - q.data)):.3g}; some state (a buffer, a step count, lr) was not restored")

    @pytest.mark.parametrize("kind", sorted(MAKERS))
    def test_loading_restores_every_hyperparameter(self, kind):
        """Loaded into an optimizer made with other hyper-parameters, the state brings all of them back, as Python values."""
        shapes = [(3, 2), (2,)]
        grads = gradient_sequence(shapes, 4, seed=7)
        params = float32_params(*shapes, seed=2)
        optimizer = MAKERS[kind](params)
        run_steps(optimizer, params, grads[:2])
        state = optimizer.state_dict()
        saved_params = [p.data.copy() for p in params]
        run_steps(optimizer, params, grads[2:])

        resumed_params = [Tensor(data, requires_grad=True) for data in saved_params]
        resumed = OTHER_MAKERS[kind](resumed_params)
        resumed.load_state_dict(state)
        for name in type(resumed).hyperparameters:
            mine, theirs = getattr(resumed, name), getattr(optimizer, name)
            assert mine == theirs and type(mine) is type(theirs), (
                f"{kind}.load_state_dict: {name} is {mine!r} ({type(mine).__name__}); expected {theirs!r} "
                f"({type(theirs).__name__}). Turn 0-d arrays back into Python numbers (`.item()`) and betas into a "
                "tuple: a 0-d array shared with the loaded dict would change it when a schedule scales lr")
        run_steps(resumed, resumed_params, grads[2:])
        for index, (p, q) in enumerate(zip(params, resumed_params)):
            assert np.array_equal(p.data, q.data), (
                f"{kind}: parameter {index} after loading into {kind} made with other hyper-parameters differs "
                "from the uninterrupted run: every hyper-parameter in the state must be restored")

    def test_loaded_buffers_are_like_the_ones_a_step_makes(self):
        """After loading, the step counter is a Python int and every buffer has its parameter's dtype (float32 here).

        The state loaded comes from the same optimizer run in float64.

        Hint: np.savez turns the counter into a 0-d integer array: give it back as `int(value)`. Cast
        each buffer to its parameter's dtype (`np.array(value, dtype=p.dtype)`), as a fresh step would make it.
        """
        source_params = float32_params((3, 2), (2,), dtype=np.float64)
        source = Adam(source_params, lr=0.01)
        source.step()
        source.step()
        params = float32_params((3, 2), (2,))
        optimizer = Adam(params, lr=0.01)
        optimizer.load_state_dict(source.state_dict())
        for index, (p, buffers) in enumerate(zip(params, optimizer.state)):
            step = buffers.get("step")
            assert type(step) is int and step == 2, (
                f"Adam.load_state_dict: parameter {index}'s step counter is {step!r} ({type(step).__name__}); "
                "expected the Python int 2")
            for name in ("exp_avg", "exp_avg_sq"):
                buffer = buffers.get(name)
                assert isinstance(buffer, np.ndarray) and buffer.dtype == p.dtype, (
                    f"Adam.load_state_dict: parameter {index}'s {name} is "
                    f"{getattr(buffer, 'dtype', type(buffer).__name__)}, expected the parameter's {p.dtype}: "
                    "float64 moments double the state's memory and turn the float32 update into float64")

    def test_loading_restores_exactly_even_an_empty_state(self):
        """Loading the state of an optimizer that never stepped wipes the buffers: the next step is a first step."""
        p = param([0.0], grad=[1.0])
        optimizer = Adam([p], lr=0.1)
        fresh = optimizer.state_dict()
        for _ in range(3):
            optimizer.step()
        optimizer.load_state_dict(fresh)
        assert optimizer.state_bytes() == 0, f"after loading an empty state, state_bytes() = {optimizer.state_bytes()}"
        p.data[...] = 0.0
        p.grad = np.array([-2.0])
        optimizer.step()  # t = 1 again: m_hat = g, v_hat = g^2
        assert_close(p.data, [0.1 * 2 / (2 + EPS)], "first step after loading a fresh state, g = -2", rtol=1e-12)

    def test_load_rejects_a_different_number_of_parameters(self):
        """Loading the state of 2 parameters into an optimizer of 3 raises ValueError naming both counts."""
        state = Adam(float32_params((3,), (3,))).state_dict()
        with pytest.raises(ValueError, match="2.*3"):
            Adam(float32_params((3,), (3,), (3,))).load_state_dict(state)

    def test_load_rejects_a_different_shape_and_changes_nothing(self):
        """A state whose SECOND buffer has another shape ((5,) for a (4,) parameter) is refused, and nothing changes."""
        optimizer = stepped_adam((3,), (4,), seed=8)
        before = optimizer.state_dict()
        other = stepped_adam((3,), (5,), steps=3, seed=9).state_dict()
        other["lr"] = np.array(0.5)
        with pytest.raises(ValueError, match=r"\(5,\)"):
            optimizer.load_state_dict(other)
        assert_same_state(optimizer, before, "after refusing a state with a (5,) buffer for a (4,) parameter")
        assert optimizer.lr == 0.01, f"after refusing a state, lr is {optimizer.lr}; it should still be 0.01"

    def test_load_rejects_a_state_missing_a_hyperparameter(self):
        """A state without 'weight_decay' (not the first hyper-parameter) is a ValueError naming it; nothing changes."""
        params = float32_params((3,))
        optimizer = SGD(params, lr=0.1, momentum=0.9)
        optimizer.step()
        before = optimizer.state_dict()
        other = SGD(float32_params((3,), seed=3), lr=0.5, momentum=0.5).state_dict()
        del other["weight_decay"]
        with pytest.raises(ValueError, match="weight_decay"):
            optimizer.load_state_dict(other)
        assert_same_state(optimizer, before, "after refusing a state without 'weight_decay'")

    def test_load_rejects_another_optimizer_state(self):
        """Loading an SGD state into Adam raises ValueError naming SGD."""
        state = SGD(float32_params((3,)), lr=0.1).state_dict()
        with pytest.raises(ValueError, match="SGD"):
            Adam(float32_params((3,))).load_state_dict(state)


# -- optimize ----------------------------------------------------------------------------

MILLION = [(250_000,)] * 4  # a million float32 parameters in four tensors: 4 MB of weights


def numpy_adam(params, grads, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """The baseline: Adam written directly in numpy, in place, with one preallocated scratch array."""
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    scratch = np.empty_like(params[0])
    steps = [0]

    def step():
        steps[0] += 1
        bias1, bias2 = 1 - beta1 ** steps[0], 1 - beta2 ** steps[0]
        for p, g, (m, v) in zip(params, grads, moments):
            m *= beta1
            m += np.multiply(g, 1 - beta1, out=scratch)
            v *= beta2
            v += np.multiply(np.square(g, out=scratch), 1 - beta2, out=scratch)
            np.sqrt(np.divide(v, bias2, out=scratch), out=scratch)
            np.divide(m, np.add(scratch, eps, out=scratch), out=scratch)
            p -= np.multiply(scratch, lr / bias1, out=scratch)

    return step


@pytest.mark.checkpoint("optimize")
@pytest.mark.budget
class TestOptimize:
    def test_adam_step_is_vectorised(self):
        """An Adam step over a million parameters costs at most 3x the same update written in plain numpy."""
        params = float32_params(*MILLION, seed=2)
        optimizer = Adam(params)
        optimizer.step()  # the first step allocates m and v
        baseline = numpy_adam([p.data.copy() for p in params], [p.grad for p in params])
        baseline()
        ratio, one_step, numpy_step = time_ratio(optimizer.step, baseline, rounds=1)
        assert ratio < 50 or one_step < 0.05, (  # a Python loop over a million elements is ~1000x, whatever the load
            f"one Adam step over 1M parameters took {one_step * 1e3:.0f} ms, {ratio:.0f}x plain numpy "
            f"({numpy_step * 1e3:.1f} ms): is there a Python loop over elements?")
        assert_time_ratio(optimizer.step, baseline, budget=3.0, what="Adam.step() over 1M parameters vs plain numpy")

    def test_adam_step_allocates_one_scratch_array_at_most(self):
        """After the first step, an Adam step allocates at most one parameter-sized temporary at a time."""
        params = float32_params(*MILLION, seed=3)
        optimizer = Adam(params)
        optimizer.step()  # m and v are allocated here, once
        largest = max(p.nbytes for p in params)  # 1 MB
        budget = int(1.5 * largest) + 64 * 1024

        def three_steps():
            for _ in range(3):
                optimizer.step()

        assert_peak_bytes(three_steps, budget, "Adam steps over 4 x 0.95 MiB parameters (one 0.95 MiB scratch at a time)")

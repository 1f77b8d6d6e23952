"""Kata 03 · Autograd: the ordered suite. Run it with `python -m pytest katas/03_autograd`.

Gradients are checked with `gradcheck`: float64 central differences over every
element of small seeded random inputs.
"""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

from harness.budgets import assert_time_ratio
from harness.checks import assert_close, assert_shape, gradcheck, no_overflow
from tinytorch import autograd
from tinytorch.activations import gelu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.autograd import backward_rule, is_grad_enabled, no_grad, topological_order, unbroadcast
from tinytorch.tensor import Tensor


@pytest.fixture(autouse=True)
def _recording_back_on():
    """A broken no_grad() must not switch recording off for every test after it."""
    yield
    autograd._recording = True


def leaf(shape, seed, dtype=np.float64):
    """A seeded random tensor that requires grad."""
    return Tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype, requires_grad=True)


# -- ops of the suite's own --------------------------------------------------------------
# The engine is tested before any built-in rule exists, with ops defined here through the
# same two steps every later kata uses: `Tensor.from_op` forward, `@backward_rule` backward.


def double(x):
    return Tensor.from_op(x.data * 2, "test_double", (x,))


@backward_rule("test_double")
def _double_backward(out, grad):
    return (grad * 2,)


def square(x):
    return Tensor.from_op(x.data ** 2, "test_square", (x,))


@backward_rule("test_square")
def _square_backward(out, grad):
    (x,) = out.parents
    return (grad * 2 * x.data,)


def scale(x, factor):
    """x * factor, with the factor kept in `saved` for the rule."""
    return Tensor.from_op(x.data * factor, "test_scale", (x,), factor=factor)


@backward_rule("test_scale")
def _scale_backward(out, grad):
    return (grad * out.saved["factor"],)


def increment(x):
    return Tensor.from_op(x.data + 1, "test_increment", (x,))


@backward_rule("test_increment")
def _increment_backward(out, grad):
    return (grad,)


SEEN = []  # the gradients `spy` was handed, in order


def spy(x):
    return Tensor.from_op(x.data, "test_spy", (x,))


@backward_rule("test_spy")
def _spy_backward(out, grad):
    SEEN.append(np.array(grad))
    return (grad,)


def times_constant(x, constant):
    """x * constant, where only x takes a gradient."""
    return Tensor.from_op(x.data * constant.data, "test_times_constant", (x, constant))


@backward_rule("test_times_constant")
def _times_constant_backward(out, grad):
    x, constant = out.parents
    # The second gradient has x's shape, not the constant's: the engine must skip it unread.
    return grad * constant.data, grad * x.data


def first_only(x, y):
    """x + y, whose rule declines to give y a gradient (returns None for it)."""
    return Tensor.from_op(x.data + y.data, "test_first_only", (x, y))


@backward_rule("test_first_only")
def _first_only_backward(out, grad):
    return grad, None


def widen(x):
    return Tensor.from_op(x.data, "test_widen", (x,))


@backward_rule("test_widen")
def _widen_backward(out, grad):
    return (grad.astype(np.float64),)  # a float64 gradient for a float32 leaf


# -- graph ----------------------------------------------------------------------------------


@pytest.mark.checkpoint("graph")
class TestGraph:
    def test_result_records_op_parents_and_saved(self):
        """a * b with a requiring grad records op 'mul', parents (a, b) and requires_grad; sum saves its axis."""
        a = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        b = Tensor([[5.0, 6.0], [7.0, 8.0]])
        c = a * b
        assert c.op == "mul", f"a * b: expected op 'mul', got {c.op!r}"
        assert isinstance(c.parents, tuple) and len(c.parents) == 2 and c.parents[0] is a and c.parents[1] is b, (
            f"a * b: expected parents to be the tuple (a, b) of the very same objects, b included although it "
            f"needs no grad (the rule unpacks both); got {c.parents!r}")
        assert c.requires_grad, "a * b: a requires grad, so the result must too"
        s = a.sum(axis=1, keepdims=True)
        assert s.saved == {"axis": 1, "keepdims": True}, (
            f"a.sum(axis=1, keepdims=True): expected saved {{'axis': 1, 'keepdims': True}}, got {s.saved!r}")

    def test_nothing_recorded_without_grad_and_requires_grad_propagates(self):
        """No input requires grad: op None, parents (). One does: the flag flows down the whole chain."""
        a, b = Tensor([1.0, 2.0]), Tensor([3.0, 4.0])
        c = a * b
        assert c.op is None and c.parents == () and not c.requires_grad, (
            f"a * b with no input requiring grad must record nothing; got op={c.op!r}, "
            f"{len(c.parents)} parents, requires_grad={c.requires_grad}")
        x = Tensor([0.5, 1.5], requires_grad=True)
        h = x.exp()
        y = a * h
        z = (y + b).log()
        for name, t in (("x.exp()", h), ("a * h", y), ("(y + b).log()", z)):
            assert t.requires_grad and t.op is not None, f"{name} depends on x (requires grad) but recorded nothing"
        assert z.parents[0].parents[0] is y and y.parents[1] is h and h.parents[0] is x, (
            "the parents do not lead back from z through y and h to x")

    def test_no_grad_stops_recording(self):
        """Inside `with no_grad():` nothing is recorded; after it, recording is back on."""
        x = Tensor([1.0, 2.0], requires_grad=True)
        with no_grad():
            assert not is_grad_enabled(), "is_grad_enabled() must be False inside no_grad()"
            y = x * 3
        assert y.op is None and y.parents == () and not y.requires_grad, (
            f"x * 3 under no_grad() must record nothing; got op={y.op!r}, requires_grad={y.requires_grad}")
        assert is_grad_enabled(), "is_grad_enabled() must be True again after the with-block"
        assert (x * 3).op == "mul", "after no_grad(), ops must record again"

    def test_no_grad_restores_after_exception(self):
        """An exception inside no_grad() still switches recording back on."""
        with pytest.raises(ZeroDivisionError):
            with no_grad():
                1 / 0
        assert is_grad_enabled(), (
            "an exception left recording off: restore the previous state in a `finally:` around the `yield`")

    def test_no_grad_nested(self):
        """Leaving an inner no_grad() inside an outer one keeps recording off until the outer one ends."""
        x = Tensor([1.0], requires_grad=True)
        with no_grad():
            with no_grad():
                pass
            assert not is_grad_enabled(), (
                "after an inner no_grad() inside an outer one, recording must still be off: "
                "restore the state saved on entry, do not just switch it on")
            assert (x * 2).op is None, "still inside the outer no_grad(): x * 2 must record nothing"
        assert is_grad_enabled(), "after both blocks recording must be on"

    def test_no_grad_nested_exception_restores_the_outer_state(self):
        """An exception leaving an inner no_grad() inside an outer one keeps recording off until the outer one ends."""
        with no_grad():
            with pytest.raises(KeyError):
                with no_grad():
                    {}["missing"]
            assert not is_grad_enabled(), (
                "an exception left an inner no_grad() and switched recording on inside the outer one: "
                "in the `finally:` put back the state saved on entry")
        assert is_grad_enabled(), "after the outer no_grad() recording must be on"

    def test_topological_order_puts_parents_first(self):
        """topological_order lists every node of the graph, each after all of its parents, the root last."""
        x = Tensor([1.0, 2.0], requires_grad=True)
        y = Tensor([3.0, 4.0], requires_grad=True)
        a = x * y
        b = a.exp()
        c = a + b
        d = c * x
        order = topological_order(d)
        names = {id(x): "x", id(y): "y", id(a): "a", id(b): "b", id(c): "c", id(d): "d"}
        got = [names.get(id(t), "?") for t in order]
        assert sorted(got) == ["a", "b", "c", "d", "x", "y"], (
            f"expected the 6 nodes x, y, a=x*y, b=a.exp(), c=a+b, d=c*x once each; got {got}")
        position = {id(t): i for i, t in enumerate(order)}
        for node in order:
            for parent in node.parents:
                assert position[id(parent)] < position[id(node)], (
                    f"{names[id(parent)]} is a parent of {names[id(node)]} but comes after it in {got}")
        assert order[-1] is d, f"the root d must come last; got {got}"
        lone = topological_order(x)
        assert len(lone) == 1 and lone[0] is x, f"a leaf alone: expected [x], got a list of {len(lone)}"

    def test_topological_order_lists_shared_nodes_once(self):
        """In diamonds (x feeding two ops that meet again) each node is listed once, even 12 diamonds deep."""
        x = Tensor([0.5, 2.0], requires_grad=True)
        top = x.exp() * x.log()
        order = topological_order(top)
        assert len(order) == 4, f"x, x.exp(), x.log(), their product: expected 4 nodes, got {len(order)}"
        h = x
        for _ in range(12):
            h = h + h  # both parents are the same node
        count = len(topological_order(h))
        assert count == 13, (
            f"12 stacked (h + h): expected 13 nodes, got {count}.\nKeep a set of visited nodes: "
            "without one every shared node is listed again, and the list doubles with each diamond")

    def test_topological_order_of_long_chain(self):
        """A chain of 10,000 ops is ordered without hitting Python's recursion limit."""
        x = Tensor([1.0], requires_grad=True)
        h = x
        for _ in range(10_000):
            h = -h
        order = topological_order(h)
        assert len(order) == 10_001, f"expected 10001 nodes, got {len(order)}"
        assert order[0] is x and order[-1] is h, "the leaf must come first and the root last"


# -- engine ----------------------------------------------------------------------------------


@pytest.mark.checkpoint("engine")
class TestEngine:
    def test_scalar_output_is_seeded_with_one(self):
        """backward() on a single-value output starts from a gradient of 1 and reaches the leaf."""
        SEEN.clear()
        x = Tensor(3.0, dtype=np.float64, requires_grad=True)
        spy(double(x)).backward()
        assert len(SEEN) == 1, f"the spy op's rule should run once, ran {len(SEEN)} times"
        assert_close(SEEN[0], np.array(1.0), "the seed gradient handed to the last op's rule")
        assert x.grad is not None, "x.grad is None: backward() never reached the leaf"
        assert_close(x.grad, np.array(2.0), "x.grad for y = 2x")

    def test_loss_of_shape_1_1_is_seeded_with_ones_of_its_shape_and_dtype(self):
        """backward() on a (1, 1) float32 loss seeds np.ones((1, 1), float32): the leaf's .grad is (1, 1) float32."""
        SEEN.clear()
        x = leaf((1, 1), seed=22, dtype=np.float32)
        spy(double(x)).backward()
        seed = SEEN[0]
        assert seed.shape == (1, 1), (
            f"the seed handed to the last rule has shape {seed.shape}; a (1, 1) loss needs a (1, 1) seed: "
            "np.ones_like(root.data), not 1.0")
        assert seed.dtype == np.float32, (
            f"a float32 loss was seeded with {seed.dtype}: every rule after it then works in {seed.dtype}. "
            "np.ones_like(root.data) keeps the loss's dtype")
        assert_close(seed, np.ones((1, 1)), "the seed of a (1, 1) loss")
        assert_shape(x.grad, (1, 1), "x.grad for a (1, 1) leaf")
        assert x.grad.dtype == np.float32, f"x.grad: expected float32 (the leaf's dtype), got {x.grad.dtype}"
        assert_close(x.grad, np.full((1, 1), 2.0), "x.grad for y = 2x")

    def test_explicit_gradient_for_non_scalar(self):
        """backward(grad) on a non-scalar output uses the given gradient (a numpy array or a Tensor)."""
        x = leaf((3, 2), seed=10)
        g = np.random.default_rng(11).standard_normal((3, 2))
        double(x).backward(g)
        assert_close(x.grad, 2 * g, "x.grad for y = 2x, backward(g)")
        z = leaf((3, 2), seed=12)
        double(z).backward(Tensor(g, dtype=np.float64))
        assert_close(z.grad, 2 * g, "z.grad for y = 2z, backward(Tensor(g))")

    def test_given_gradient_takes_the_output_dtype(self):
        """backward(float64 g) on a float32 output hands the rules float32 (np.asarray(g, dtype=root.dtype))."""
        SEEN.clear()
        x = leaf((2, 3), seed=23, dtype=np.float32)
        spy(double(x)).backward(np.ones((2, 3)))  # np.ones is float64
        assert SEEN[0].dtype == np.float32, (
            f"the gradient given to backward() reached the rules as {SEEN[0].dtype}; convert it to the output's "
            "dtype (float32), or a whole float32 graph runs backward in float64")
        assert_close(x.grad, np.full((2, 3), 2.0), "x.grad for y = 2x, backward(float64 ones)")

    def test_a_leaf_can_be_the_root(self):
        """x.backward(g) on a leaf x itself gives x.grad = g, a copy of g."""
        x = leaf((2, 2), seed=24)
        g = np.random.default_rng(25).standard_normal((2, 2))
        x.backward(g)
        assert x.grad is not None, "x.backward(g) on a leaf left x.grad None: the root can be a leaf too"
        assert_close(x.grad, g, "x.grad after x.backward(g)")
        assert not np.shares_memory(x.grad, g), "x.grad is the array passed to backward(): store a copy"

    def test_only_leaves_keep_a_gradient(self):
        """After backward(), intermediate results keep .grad None, as in PyTorch: only leaves store one."""
        x = leaf((3,), seed=26)
        h = double(x)
        y = spy(h)
        y.backward(np.ones(3))
        assert h.grad is None and y.grad is None, (
            "an intermediate result (an op's output) got a .grad: pass its gradient on and drop it. "
            "Keeping it holds a second array the size of every activation")
        assert_close(x.grad, np.full(3, 2.0), "x.grad for y = 2x")

    def test_chain_rule_through_custom_ops(self):
        """Rules run from the output back: y = (3 * x**2) * 2 gives dy/dx = 12x; a rule reads out.saved."""
        x = leaf((4,), seed=13)
        double(scale(square(x), 3.0)).backward(np.ones(4))
        assert_close(x.grad, 12 * x.data, "x.grad for y = 2 * (3 * x**2)")

    def test_backward_needs_a_seed_and_a_graph(self):
        """backward() with no gradient on a (3, 2) output, or on a tensor needing no grad, raises a clear RuntimeError."""
        y = double(leaf((3, 2), seed=14))
        with pytest.raises(RuntimeError, match=r"\(3, 2\)"):
            y.backward()
        with pytest.raises(RuntimeError, match="require"):
            Tensor([1.0, 2.0]).sum().backward()  # nothing here requires grad: there is no graph

    def test_wrong_shape_gradient_raises(self):
        """A gradient of shape (2, 3) for a (3, 2) output raises a ValueError naming both shapes."""
        y = double(leaf((3, 2), seed=15))
        with pytest.raises(ValueError) as error:
            y.backward(np.ones((2, 3)))
        assert "(2, 3)" in str(error.value) and "(3, 2)" in str(error.value), (
            f"the message should name both shapes (2, 3) and (3, 2); got: {error.value}")

    def test_missing_rule_raises_naming_op(self):
        """An op with no registered backward rule raises a RuntimeError that names the op."""
        y = Tensor.from_op(np.ones(2), "test_unregistered", (leaf((2,), seed=16),))
        with pytest.raises(RuntimeError, match="test_unregistered"):
            y.backward(np.ones(2))

    def test_leaf_grad_is_array_of_leaf_shape_and_dtype(self):
        """A leaf's .grad is a numpy array with the leaf's shape and dtype, whatever dtype the rule returned."""
        x = leaf((2, 3), seed=17, dtype=np.float32)
        widen(x).backward(np.ones((2, 3), dtype=np.float32))
        assert isinstance(x.grad, np.ndarray), f"x.grad should be a numpy array, got {type(x.grad).__name__}"
        assert_shape(x.grad, (2, 3), "x.grad")
        assert x.grad.dtype == np.float32, f"x.grad: expected dtype float32 (the leaf's), got {x.grad.dtype}"

    def test_parents_without_grad_are_skipped(self):
        """A parent that does not require grad gets no .grad (its rule output is not even looked at); nor does a None."""
        x = leaf((2, 3), seed=18)
        constant = Tensor(2.0, dtype=np.float64)
        times_constant(x, constant).backward(np.ones((2, 3)))
        assert_close(x.grad, np.full((2, 3), 2.0), "x.grad for y = x * 2")
        assert constant.grad is None, (
            "a parent with requires_grad=False got a .grad; skip it before anything else, "
            "even before reducing the gradient to its shape")
        a, b = leaf((2,), seed=19), leaf((2,), seed=20)
        first_only(a, b).backward(np.ones(2))
        assert_close(a.grad, np.ones(2), "a.grad when the rule returns (grad, None)")
        assert b.grad is None, "the rule returned None for b: b.grad must stay None"
        SEEN.clear()
        c, d = leaf((2,), seed=27), leaf((2,), seed=28)
        first_only(c, spy(d)).backward(np.ones(2))
        assert not SEEN and d.grad is None, (
            "a None gradient must stop the walk: the op behind it got a gradient anyway "
            f"(its rule ran {len(SEEN)} time(s), d.grad is {d.grad!r}); skip nodes no gradient reached")

    def test_long_chain_backward(self):
        """backward() through a chain of 10,000 ops works (no recursion) and gives the right gradient."""
        x = leaf((2,), seed=21)
        h = x
        for _ in range(10_000):
            h = increment(h)
        h.backward(np.ones(2))
        assert_close(x.grad, np.ones(2), "x.grad for x + 1 + 1 + ... (10,000 times)")


# -- arithmetic rules --------------------------------------------------------------------------


def _rng(seed):
    return np.random.default_rng(seed)


def positive(shape, seed):
    return _rng(seed).uniform(0.5, 2.0, shape)


def frozen(values):
    """A read-only float64 copy: writing into it raises."""
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


def check_rule(fn, *inputs, name, seed=0):
    """First purity: the rules leave alone every array they are handed; then `gradcheck`.

    The inputs' data, the output's data and the incoming gradient are read-only while
    backward() runs (and compared with copies after it, for writes numpy lets through).
    """
    tensors = [Tensor(frozen(x), dtype=np.float64, requires_grad=True) for x in inputs]
    out = fn(*tensors)
    out.data.setflags(write=False)
    upstream = frozen(_rng(seed + 1000).standard_normal(out.shape))
    before = [t.data.copy() for t in tensors] + [out.data.copy(), upstream.copy()]
    try:
        out.backward(upstream)
    except ValueError as error:
        if "read-only" not in str(error):
            raise
        raise AssertionError(
            f"{name}: a backward rule wrote into an array it was handed ({error}).\nThe incoming gradient, "
            "the parents' .data and the output's .data belong to others (add's rule hands one gradient to both "
            "parents; sum's rule returns a read-only view): build a new array, `grad * mask`, never "
            "`grad[...] = 0` or `grad *= ...`") from None
    after = [t.data for t in tensors] + [out.data, upstream]
    for what, old, new in zip([f"input {i}" for i in range(len(tensors))] + ["the output", "the incoming gradient"],
                              before, after):
        assert np.array_equal(old, new, equal_nan=True), (
            f"{name}: backward() changed {what}'s values; a rule must compute new arrays, not write into these")
    gradcheck(fn, *inputs, seed=seed, name=name)


@pytest.mark.checkpoint("arithmetic_rules")
class TestArithmeticRules:
    def test_add(self):
        """The gradients of a + b match central differences."""
        check_rule(lambda a, b: a + b, _rng(30).standard_normal((3, 4)), _rng(31).standard_normal((3, 4)), name="a + b")

    def test_sub(self):
        """The gradients of a - b match central differences."""
        check_rule(lambda a, b: a - b, _rng(32).standard_normal((3, 4)), _rng(33).standard_normal((3, 4)), name="a - b")

    def test_mul(self):
        """The gradients of a * b match central differences."""
        check_rule(lambda a, b: a * b, _rng(34).standard_normal((3, 4)), _rng(35).standard_normal((3, 4)), name="a * b")

    def test_div(self):
        """The gradients of a / b match central differences (b kept away from 0)."""
        b = positive((3, 4), 37) * np.where(_rng(38).random((3, 4)) < 0.5, -1, 1)
        check_rule(lambda a, b: a / b, _rng(36).standard_normal((3, 4)), b, name="a / b")

    def test_pow_scalar_exponent(self):
        """The gradient of x ** 3, x ** 2.5 and x ** -1 matches central differences."""
        check_rule(lambda x: x ** 3, _rng(39).standard_normal((3, 4)), name="x ** 3")
        check_rule(lambda x: x ** 2.5, positive((3, 4), 40), name="x ** 2.5")
        check_rule(lambda x: x ** -1, positive((3, 4), 41), name="x ** -1")

    def test_pow_tensor_exponent(self):
        """The gradients of a ** b with both a (positive) and b requiring grad match central differences."""
        check_rule(lambda a, b: a ** b, positive((3, 4), 42), _rng(43).standard_normal((3, 4)), name="a ** b")

    def test_pow_at_zero_base_and_zero_exponent(self):
        """a ** b at a = 0 or b = 0 has exact gradients, 0 where 0 * inf would be nan, as in PyTorch (no warnings)."""
        a = Tensor([0.0, 0.0, 0.0, 0.0, 1.5], dtype=np.float64, requires_grad=True)
        b = Tensor([2.0, 1.0, 0.0, 3.0, 0.0], dtype=np.float64, requires_grad=True)
        g = np.array([2.0, -3.0, 0.5, 4.0, -1.5])
        advice = ("b * a**(b-1) is 0 * 0**-1 = nan at b = 0, and out * log(a) is 0 * log(0) = nan at a = 0: "
                  "before the power and the log, put 1 in place of a where the answer is 0 "
                  "(b == 0 for a's gradient; a == 0 and b >= 0 for b's), e.g. with np.where")
        with no_overflow("the gradients of a ** b with a = [0, 0, 0, 0, 1.5], b = [2, 1, 0, 3, 0]", advice):
            (a ** b).backward(g)
        assert_close(a.grad, np.array([0.0, -3.0, 0.0, 0.0, 0.0]),
                     "a.grad = g * b * a**(b-1): 0 wherever b == 0 (a**0 is the constant 1)")
        assert_close(b.grad, np.array([0.0, 0.0, 0.0, 0.0, -1.5 * np.log(1.5)]),
                     "b.grad = g * a**b * log(a): 0 where a == 0 and b >= 0 (0**b does not change with b)")
        x = Tensor([0.0, 0.0, 2.0], dtype=np.float64, requires_grad=True)
        with no_overflow("the gradient of x ** 0 at x = [0, 0, 2]", advice):
            (x ** 0).backward(np.array([3.0, -1.0, 2.0]))
        assert_close(x.grad, np.zeros(3), "x.grad for x ** 0 (a constant: 0 everywhere, also at x = 0)")

    def test_neg(self):
        """The gradient of -x matches central differences."""
        check_rule(lambda x: -x, _rng(44).standard_normal((3, 4)), name="-x")

    def test_exp(self):
        """The gradient of x.exp() matches central differences."""
        check_rule(lambda x: x.exp(), _rng(45).standard_normal((3, 4)), name="x.exp()")

    def test_log(self):
        """The gradient of x.log() matches central differences (x positive)."""
        check_rule(lambda x: x.log(), positive((3, 4), 46), name="x.log()")

    def test_reflected_forms(self):
        """Scalars on the left (2 + x, 2 - x, 3 * x, 2 / x, 2 ** x) give the right gradients."""
        x = _rng(47).standard_normal((3, 4))
        check_rule(lambda x: 2 + x, x, name="2 + x")
        check_rule(lambda x: 2 - x, x, name="2 - x")
        check_rule(lambda x: 3 * x, x, name="3 * x")
        check_rule(lambda x: 2 / x, positive((3, 4), 48), name="2 / x")
        check_rule(lambda x: 2 ** x, x, name="2 ** x")


# -- unbroadcast -------------------------------------------------------------------------------


@pytest.mark.checkpoint("unbroadcast")
class TestUnbroadcast:
    def test_leading_axis(self):
        """unbroadcast of a (3, 4) gradient to (4,) or to (1, 4) sums over the rows."""
        g = frozen(_rng(50).standard_normal((3, 4)))  # read-only: unbroadcast must not write into it
        assert_close(unbroadcast(g, (4,)), g.sum(axis=0), "unbroadcast((3, 4) -> (4,))")
        assert_close(unbroadcast(g, (1, 4)), g.sum(axis=0, keepdims=True), "unbroadcast((3, 4) -> (1, 4))")

    def test_added_and_stretched_axes(self):
        """unbroadcast of a (2, 3, 4) gradient to (3, 1) sums the added axis 0 and the stretched last axis."""
        g = frozen(_rng(51).standard_normal((2, 3, 4)))
        assert_close(unbroadcast(g, (3, 1)), g.sum(axis=0).sum(axis=1, keepdims=True), "unbroadcast((2, 3, 4) -> (3, 1))")

    def test_stretched_axes_anywhere(self):
        """A stretched middle or first axis is summed too: (2, 3, 4) to (2, 1, 4), to (1, 3, 1); (4, 2, 3, 5) to (2, 1, 5)."""
        g = frozen(_rng(64).standard_normal((2, 3, 4)))
        assert_close(unbroadcast(g, (2, 1, 4)), g.sum(axis=1, keepdims=True), "unbroadcast((2, 3, 4) -> (2, 1, 4))")
        assert_close(unbroadcast(g, (1, 3, 1)), g.sum(axis=(0, 2), keepdims=True), "unbroadcast((2, 3, 4) -> (1, 3, 1))")
        h = frozen(_rng(65).standard_normal((4, 2, 3, 5)))
        assert_close(unbroadcast(h, (2, 1, 5)), h.sum(axis=0).sum(axis=1, keepdims=True),
                     "unbroadcast((4, 2, 3, 5) -> (2, 1, 5))")

    def test_keeps_the_dtype(self):
        """unbroadcast of a float32 gradient is float32: summing must not switch to float64."""
        g = _rng(66).standard_normal((3, 4)).astype(np.float32)
        for shape in ((4,), (3, 1), ()):
            result = np.asarray(unbroadcast(g, shape))
            assert result.dtype == np.float32, f"unbroadcast((3, 4) float32 -> {shape}): got dtype {result.dtype}"

    def test_to_scalar(self):
        """unbroadcast to shape () sums everything."""
        g = frozen(_rng(52).standard_normal((2, 3)))
        assert_close(unbroadcast(g, ()), np.array(g.sum()), "unbroadcast((2, 3) -> ())")

    def test_same_shape_unchanged(self):
        """unbroadcast to the gradient's own shape, or one with a real size-1 axis, changes nothing."""
        g = frozen(_rng(53).standard_normal((2, 1, 3)))
        assert_close(unbroadcast(g, (2, 1, 3)), g, "unbroadcast((2, 1, 3) -> (2, 1, 3))")

    def test_broadcast_add_and_sub(self):
        """Gradients of a + b and a - b where b was broadcast: shapes (4,), (3, 1) and ()."""
        a = _rng(54).standard_normal((3, 4))
        gradcheck(lambda a, b: a + b, a, _rng(55).standard_normal(4), name="(3, 4) + (4,)")
        gradcheck(lambda a, b: a - b, a, _rng(56).standard_normal((3, 1)), name="(3, 4) - (3, 1)")
        gradcheck(lambda a, b: b - a, a, _rng(57).standard_normal(()), name="() - (3, 4)")

    def test_broadcast_mul_div_pow(self):
        """Gradients of *, / and ** where one input was broadcast along several axes."""
        gradcheck(lambda a, b: a * b, _rng(58).standard_normal((2, 3, 4)), _rng(59).standard_normal((3, 1)),
                  name="(2, 3, 4) * (3, 1)")
        gradcheck(lambda a, b: a / b, _rng(60).standard_normal((3, 4)), positive((1, 4), 61), name="(3, 4) / (1, 4)")
        gradcheck(lambda a, b: a ** b, positive((2, 3), 62), _rng(63).standard_normal((2, 1)), name="(2, 3) ** (2, 1)")
        gradcheck(lambda a, b: a * b, _rng(67).standard_normal((1, 3, 1)), _rng(68).standard_normal((2, 3, 4)),
                  name="(1, 3, 1) * (2, 3, 4)")


# -- accumulation ------------------------------------------------------------------------------


@pytest.mark.checkpoint("accumulation")
class TestAccumulation:
    def test_square_by_self_multiplication(self):
        """x * x sends two gradients to x: d(x*x)/dx = 2x, not x."""
        x = leaf((4,), seed=70)
        (x * x).backward(np.ones(4))
        assert_close(x.grad, 2 * x.data, "x.grad for x * x (2x; x means one gradient overwrote the other)")

    def test_diamond(self):
        """A node used by two ops (h = x * x feeding h.exp() and h * x) gets the sum of both gradients."""

        def diamond(x):
            h = x * x
            return h.exp() + h * x

        gradcheck(diamond, _rng(71).standard_normal((3, 2)), name="diamond h.exp() + h * x, h = x * x")

    def test_two_losses_accumulate(self):
        """Two backward() calls add into .grad: x.grad = d(3x)/dx + d(x*x)/dx."""
        x = leaf((3,), seed=72)
        (x * 3).backward(np.ones(3))
        (x * x).backward(np.ones(3))
        assert_close(x.grad, 3 + 2 * x.data, "x.grad after backward of 3x, then of x*x (must add up)")

    def test_accumulating_keeps_the_leaf_dtype(self):
        """A float32 leaf times a float64 constant, backward twice: x.grad stays float32 and holds 2 * y * g.

        Hint: the sum of a float32 .grad and a float64 gradient is float64; add the new gradient
        into the existing array in place (`+=`), so the leaf's gradient keeps the leaf's dtype.
        """
        x = leaf((3,), seed=78, dtype=np.float32)
        y = Tensor(np.array([0.5, -2.0, 3.0]), dtype=np.float64)
        g = np.array([1.0, -1.0, 2.0])
        for step in (1, 2):
            (x * y).backward(g)  # the product and its gradients are float64
            assert x.grad is not None and x.grad.dtype == np.float32, (
                f"x.grad after backward #{step} through float32 x * float64 y: expected float32 (the leaf's "
                f"dtype), got {None if x.grad is None else x.grad.dtype}")
        assert_close(x.grad, 2 * y.data * g, "x.grad after two backward() of x * y (upstream g)", rtol=1e-6)

    def test_zero_grad_clears(self):
        """After x.zero_grad() the next backward() starts from nothing."""
        x = leaf((3,), seed=73)
        (x * 2).backward(np.ones(3))
        x.zero_grad()
        assert x.grad is None, "zero_grad() should leave x.grad as None"
        (x * 5).backward(np.ones(3))
        assert_close(x.grad, np.full(3, 5.0), "x.grad after zero_grad() and backward of 5x")

    def test_leaves_never_share_a_gradient_array(self):
        """y = a + b: a.grad, b.grad and your gradient are three arrays; changing one leaves the others alone."""
        a, b = leaf((3,), seed=74), leaf((3,), seed=75)
        g = np.array([1.0, 2.0, 3.0])
        (a + b).backward(g)
        assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad), (
            "a.grad and b.grad are the same array: store a copy the first time a leaf gets a gradient")
        assert not np.shares_memory(a.grad, g), "a.grad is the gradient passed to backward(): store a copy"
        a.grad += 100
        assert_close(b.grad, g, "b.grad after changing a.grad in place")
        assert_close(g, np.array([1.0, 2.0, 3.0]), "the gradient passed to backward() after changing a.grad")
        (a + a).backward(np.broadcast_to(1.0, (3,)))  # a read-only gradient
        assert_close(a.grad, g + 100 + 2, "a.grad after a further backward of a + a")

    def test_pending_gradients_added_out_of_place(self):
        """out = (a + b) + a: a.grad = 2 and b.grad = 1 (adding in place into a shared array gives b 2)."""
        a, b = leaf((2,), seed=76), leaf((2,), seed=77)
        g = np.ones(2)
        ((a + b) + a).backward(g)
        assert_close(a.grad, np.full(2, 2.0), "a.grad for (a + b) + a")
        assert_close(b.grad, np.ones(2), "b.grad for (a + b) + a (2: a sum went in place into a shared array)")
        assert_close(g, np.ones(2), "the gradient passed to backward() must not change")


# -- shape rules -------------------------------------------------------------------------------


@pytest.mark.checkpoint("shape_rules")
class TestShapeRules:
    def test_reshape(self):
        """The gradient of reshape (including -1) is the gradient reshaped back."""
        x = _rng(80).standard_normal((2, 6))
        check_rule(lambda x: x.reshape(3, 4), x, name="x.reshape(3, 4)")
        check_rule(lambda x: x.reshape(-1), x, name="x.reshape(-1)")

    def test_transpose_and_permute(self):
        """The gradients of permute(2, 0, 1), transpose(0, 2) and .T undo the permutation."""
        x = _rng(81).standard_normal((2, 3, 4))
        check_rule(lambda x: x.permute(2, 0, 1), x, name="x.permute(2, 0, 1)")
        check_rule(lambda x: x.transpose(0, 2), x, name="x.transpose(0, 2)")
        check_rule(lambda x: x.T, _rng(82).standard_normal((3, 5)), name="x.T")

    def test_transpose_and_permute_with_negative_axes(self):
        """The gradients of permute(-1, 0, -2), transpose(-1, 0) and transpose(-3, -2) undo the permutation."""
        x = _rng(79).standard_normal((2, 3, 4))
        check_rule(lambda x: x.permute(-1, 0, -2), x, name="x.permute(-1, 0, -2)")
        check_rule(lambda x: x.transpose(-1, 0), x, name="x.transpose(-1, 0)")
        check_rule(lambda x: x.transpose(-3, -2), x, name="x.transpose(-3, -2)")

    def test_getitem_slices(self):
        """Basic indexing (x[0], x[1:, ::2], x[:, -1]) sends gradient back to the picked elements only."""
        x = _rng(83).standard_normal((3, 4))
        check_rule(lambda x: x[0], x, name="x[0]")
        check_rule(lambda x: x[1:, ::2], x, name="x[1:, ::2]")
        check_rule(lambda x: x[:, -1], x, name="x[:, -1]")

    def test_getitem_negative_steps_ellipsis_and_new_axes(self):
        """x[::-1, ::-2], x[-1:0:-1, -2], x[..., 1] and x[None, 1] send gradient back to the picked elements only."""
        x = _rng(78).standard_normal((3, 4))
        check_rule(lambda x: x[::-1, ::-2], x, name="x[::-1, ::-2]")
        check_rule(lambda x: x[-1:0:-1, -2], x, name="x[-1:0:-1, -2]")
        check_rule(lambda x: x[..., 1], x, name="x[..., 1]")
        check_rule(lambda x: x[None, 1], x, name="x[None, 1]")

    def test_getitem_repeated_indices_accumulate(self):
        """Fancy indexing with repeats (x[[0, 2, 0, 0]], pairs, masks) adds the gradient of every copy."""
        x = _rng(84).standard_normal((3, 4))
        check_rule(lambda x: x[[0, 2, 0, 0]], x, name="x[[0, 2, 0, 0]]")
        check_rule(lambda x: x[np.array([1, 1, 2]), np.array([3, 3, 0])], x, name="x[[1, 1, 2], [3, 3, 0]]")
        check_rule(lambda x: x[[-1, 0, -1]], x, name="x[[-1, 0, -1]]")
        check_rule(lambda x: x[[0, 0, 2], 1:], x, name="x[[0, 0, 2], 1:]")
        mask = _rng(85).random((3, 4)) < 0.5
        check_rule(lambda x: x[mask], x, name="x[mask]")
        check_rule(lambda x: x[np.array([True, False, True])], x, name="x[[True, False, True]] (rows)")
        check_rule(lambda x: x[Tensor(mask, dtype=np.bool_)], x, name="x[Tensor(mask, dtype=bool)]")
        check_rule(lambda x: x[Tensor([2.0, 2.0, 0.0])], x, name="x[Tensor([2., 2., 0.])] (float ids)")

    def test_sum(self):
        """The gradient of sum over everything, one axis, two axes and keepdims; .grad accumulates after it."""
        x = _rng(86).standard_normal((2, 3, 4))
        check_rule(lambda x: x.sum(), x, name="x.sum()")
        check_rule(lambda x: x.sum(axis=1), x, name="x.sum(axis=1)")
        check_rule(lambda x: x.sum(axis=(0, 2)), x, name="x.sum(axis=(0, 2))")
        check_rule(lambda x: x.sum(axis=-1, keepdims=True), x, name="x.sum(axis=-1, keepdims=True)")
        check_rule(lambda x: x.sum(axis=(0, -1), keepdims=True), x, name="x.sum(axis=(0, -1), keepdims=True)")
        check_rule(lambda x: x.sum(axis=-2), x, name="x.sum(axis=-2)")
        y = leaf((2, 3), seed=87)
        y.sum().backward()
        y.sum().backward()  # fails if .grad holds the read-only view sum's rule returned
        assert_close(y.grad, np.full((2, 3), 2.0), "y.grad after backward of y.sum() twice")

    def test_mean(self):
        """The gradient of mean over everything, one axis, two axes (negative ones too) and keepdims."""
        x = _rng(88).standard_normal((2, 3, 4))
        check_rule(lambda x: x.mean(), x, name="x.mean()")
        check_rule(lambda x: x.mean(axis=0), x, name="x.mean(axis=0)")
        check_rule(lambda x: x.mean(axis=(1, 2)), x, name="x.mean(axis=(1, 2))")
        check_rule(lambda x: x.mean(axis=1, keepdims=True), x, name="x.mean(axis=1, keepdims=True)")
        check_rule(lambda x: x.mean(axis=(-1, 0)), x, name="x.mean(axis=(-1, 0))")
        check_rule(lambda x: x.mean(axis=(0, 2), keepdims=True), x, name="x.mean(axis=(0, 2), keepdims=True)")

    def test_max(self):
        """The gradient of max goes to the maximum only: over everything, an axis, negative and tuple axes, keepdims."""
        x = _rng(89).standard_normal((3, 4))
        check_rule(lambda x: x.max(), x, name="x.max()")
        check_rule(lambda x: x.max(axis=1), x, name="x.max(axis=1)")
        check_rule(lambda x: x.max(axis=0, keepdims=True), x, name="x.max(axis=0, keepdims=True)")
        y = _rng(75).standard_normal((2, 3, 4))
        check_rule(lambda y: y.max(axis=-2), y, name="y.max(axis=-2)")
        check_rule(lambda y: y.max(axis=(0, 2)), y, name="y.max(axis=(0, 2))")
        check_rule(lambda y: y.max(axis=(-2, -1), keepdims=True), y, name="y.max(axis=(-2, -1), keepdims=True)")

    def test_max_ties_split_the_gradient_evenly(self):
        """Tied maxima share the incoming gradient equally (like torch.amax): with g = [2, -3], each of two ties gets 1 or -1.5."""
        t = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], dtype=np.float64, requires_grad=True)
        t.max(axis=1).backward(np.array([2.0, -3.0]))
        assert_close(t.grad, np.array([[0.0, 1.0, 1.0], [-1.5, 0.0, -1.5]]),
                     "grad of max(axis=1) with tied maxima, upstream [2, -3]: each tie gets g / (number of ties)")
        u = Tensor([[3.0, 3.0], [3.0, 1.0]], dtype=np.float64, requires_grad=True)
        u.max().backward(np.array(6.0))
        assert_close(u.grad, np.array([[2.0, 2.0], [2.0, 0.0]]), "grad of max() over three tied 3s, upstream 6")
        v = Tensor([[5.0, 1.0], [5.0, 2.0]], dtype=np.float64, requires_grad=True)
        v.max(axis=0, keepdims=True).backward(np.array([[4.0, -1.0]]))
        assert_close(v.grad, np.array([[2.0, 0.0], [2.0, -1.0]]), "grad of max(axis=0, keepdims=True) with a tie")

    def test_matmul_2d(self):
        """The gradients of (3, 4) @ (4, 5): grad @ B^T and A^T @ grad."""
        check_rule(lambda a, b: a @ b, _rng(90).standard_normal((3, 4)), _rng(91).standard_normal((4, 5)),
                   name="(3, 4) @ (4, 5)")

    def test_matmul_batched(self):
        """The gradients of batched matmul, including a broadcast batch: (2,3,4)@(2,4,5), (2,3,4)@(4,5), (1,3,4)@(2,4,5)."""
        check_rule(lambda a, b: a @ b, _rng(92).standard_normal((2, 3, 4)), _rng(93).standard_normal((2, 4, 5)),
                   name="(2, 3, 4) @ (2, 4, 5)")
        check_rule(lambda a, b: a @ b, _rng(94).standard_normal((2, 3, 4)), _rng(95).standard_normal((4, 5)),
                   name="(2, 3, 4) @ (4, 5)")
        check_rule(lambda a, b: a @ b, _rng(96).standard_normal((1, 3, 4)), _rng(97).standard_normal((2, 4, 5)),
                   name="(1, 3, 4) @ (2, 4, 5)")

    def test_gradients_through_non_contiguous_views(self):
        """A leaf whose data is a transposed view, indexed with repeats and handed a transposed gradient, gets the right .grad."""
        rng = _rng(76)
        x = Tensor(rng.standard_normal((4, 3)).T, dtype=np.float64, requires_grad=True)  # (3, 4), not C-contiguous
        g = np.asfortranarray(rng.standard_normal((3, 4)))  # column-major: not C-contiguous either
        x[[0, 0, 2]].backward(g)
        expected = np.zeros((3, 4))
        np.add.at(expected, [0, 0, 2], g)
        assert_close(x.grad, expected, "x.grad for x[[0, 0, 2]] with x a transposed view (a scatter into a "
                     "reshaped copy of the zeros is lost: write into the zeros array itself)")
        y = _rng(77).standard_normal((3, 4))
        check_rule(lambda y: y.T[1:].reshape(-1), y, name="y.T[1:].reshape(-1)")
        check_rule(lambda y: (y.T @ y)[::-1, 1:], y, name="(y.T @ y)[::-1, 1:]")
        check_rule(lambda y: y.permute(1, 0)[:, [0, 0, 2]].sum(axis=0), y, name="y.permute(1, 0)[:, [0, 0, 2]].sum(axis=0)")


# -- activation rules --------------------------------------------------------------------------


@pytest.mark.checkpoint("activation_rules")
class TestActivationRules:
    def test_relu(self):
        """The gradient of relu matches central differences (1 where x > 0, else 0)."""
        check_rule(relu, _rng(100).standard_normal((3, 5)), name="relu")

    def test_relu_at_the_kink(self):
        """At exactly x = 0 relu passes no gradient (as PyTorch): relu([-1, 0, 2]) with g = [3, 5, 7] gives [0, 0, 7]."""
        x = Tensor([-1.0, 0.0, 2.0], dtype=np.float64, requires_grad=True)
        relu(x).backward(np.array([3.0, 5.0, 7.0]))
        assert_close(x.grad, np.array([0.0, 0.0, 7.0]), "relu gradient at x = -1, 0, 2 (x > 0, not x >= 0)")

    def test_sigmoid(self):
        """The gradient of sigmoid matches central differences, and is 0 (not nan) at x = -1000."""
        check_rule(sigmoid, _rng(101).standard_normal((3, 5)) * 3, name="sigmoid")
        x = Tensor([-1000.0, 0.0, 1000.0], dtype=np.float64, requires_grad=True)
        sigmoid(x).backward(np.ones(3))
        assert_close(x.grad, np.array([0.0, 0.25, 0.0]), "sigmoid gradient at -1000, 0, 1000")

    def test_tanh(self):
        """The gradient of tanh matches central differences."""
        check_rule(tanh, _rng(102).standard_normal((3, 5)) * 2, name="tanh")

    def test_gelu(self):
        """The gradient of GELU (tanh approximation) matches central differences."""
        check_rule(gelu, _rng(103).standard_normal((3, 5)) * 2, name="gelu")

    def test_softmax(self):
        """The gradient of softmax along the last axis, axis 0, and the middle axis of a 3-D input matches central differences."""
        x = _rng(104).standard_normal((3, 5)) * 2
        check_rule(lambda x: softmax(x, axis=-1), x, name="softmax(axis=-1)")
        check_rule(lambda x: softmax(x, axis=0), x, name="softmax(axis=0)")
        check_rule(lambda x: softmax(x, axis=1), _rng(106).standard_normal((2, 3, 4)), name="softmax(axis=1) of (2, 3, 4)")

    def test_log_softmax(self):
        """The gradient of log_softmax along the last axis and along axis 0 matches central differences."""
        x = _rng(105).standard_normal((3, 5)) * 2
        check_rule(lambda x: log_softmax(x, axis=-1), x, name="log_softmax(axis=-1)")
        check_rule(lambda x: log_softmax(x, axis=0), x, name="log_softmax(axis=0)")
        check_rule(lambda x: log_softmax(x, axis=1), _rng(107).standard_normal((2, 3, 4)),
                   name="log_softmax(axis=1) of (2, 3, 4)")

    def test_softmax_rules_at_extreme_logits(self):
        """With logits [1000, 0, -1000] the softmax and log_softmax gradients are finite and exact (no overflow)."""
        logits = np.array([[1000.0, 0.0, -1000.0], [0.5, 0.5, 0.5]])
        g = np.array([[1.0, -2.0, 3.0], [2.0, 0.0, -1.0]])
        y = np.exp(logits - logits.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)  # softmax, computed stably
        advice = "use the output you already have (softmax = y, or exp(log_softmax)), never exp of the raw logits"
        for name, op, expected in (("softmax", softmax, y * (g - (g * y).sum(axis=1, keepdims=True))),
                                   ("log_softmax", log_softmax, g - y * g.sum(axis=1, keepdims=True))):
            x = Tensor(logits, dtype=np.float64, requires_grad=True)
            with no_overflow(f"the gradient of {name} at logits [1000, 0, -1000]", advice):
                op(x).backward(g)
            assert_close(x.grad, expected, f"{name} gradient at logits [[1000, 0, -1000], [0.5, 0.5, 0.5]]")


# -- optimize ----------------------------------------------------------------------------------


def mlp(batch, sizes, seed):
    """A float32 MLP: input x (no grad), parameters, and forward() giving a scalar loss."""
    rng = _rng(seed)
    x = Tensor(rng.standard_normal((batch, sizes[0])))
    layers = [(Tensor(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), requires_grad=True),
               Tensor(np.zeros(n_out), requires_grad=True))
              for n_in, n_out in zip(sizes[:-1], sizes[1:])]

    def forward():
        h = x
        for i, (w, b) in enumerate(layers):
            h = h @ w + b  # (batch, n_out)
            if i < len(layers) - 1:
                h = relu(h)
        return -log_softmax(h).mean()

    return forward, [p for layer in layers for p in layer]


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    @pytest.mark.budget
    def test_backward_costs_small_multiple_of_forward(self):
        """Forward + backward of a 48x64-64-64-64-10 MLP takes at most 5x its forward alone (about 2.4x is typical)."""
        forward, _ = mlp(48, [64, 64, 64, 64, 10], seed=110)
        # Short timed chunks, many rounds: on a busy machine a chunk longer than the
        # scheduler's time slice is always interrupted, and the minimum stops being honest.
        assert_time_ratio(lambda: forward().backward(), forward, 5.0, "forward + backward against the forward alone",
                          rounds=15, min_seconds=0.0005,
                          advice="Backward should do about the work of its rules and little else: sort the graph "
                                 "once, no Python loops over rows")

    @pytest.mark.budget
    def test_backward_of_long_graph_stays_linear(self):
        """Forward + backward of a 50-step recurrent net (about 200 ops) takes at most 5x its forward (about 2.3x is typical)."""
        rng = _rng(114)
        inputs = [Tensor(rng.standard_normal((4, 8))) for _ in range(50)]
        w_hidden = Tensor(rng.standard_normal((16, 16)) / 4, requires_grad=True)
        w_input = Tensor(rng.standard_normal((8, 16)) / 3, requires_grad=True)

        def forward():
            h = Tensor(np.zeros((4, 16)))
            for x in inputs:
                h = tanh(h @ w_hidden + x @ w_input)  # (4, 16); the same weights at every step
            return h.mean()

        assert_time_ratio(lambda: forward().backward(), forward, 5.0,
                          "forward + backward of a 50-step recurrent net against its forward alone",
                          rounds=15, min_seconds=0.0005,
                          advice="Work that grows faster than the graph shows here: sort it once, look gradients "
                                 "up in a dict, never rescan a list")

    @pytest.mark.budget
    def test_intermediates_die_after_backward(self):
        """Once backward() is done, holding only the loss keeps none of the graph's intermediate tensors alive."""
        forward, _ = mlp(4, [6, 5, 3], seed=111)

        def build():
            loss = forward()
            intermediates = topological_order(loss)[:-1]
            return loss, [weakref.ref(t) for t in intermediates if t.op is not None]

        loss, refs = build()
        assert len(refs) >= 6, f"expected at least 6 intermediate tensors in the graph, found {len(refs)}"
        loss.backward()
        gc.collect()
        alive = sum(ref() is not None for ref in refs)
        assert alive == 0, (
            f"{alive} of {len(refs)} intermediate tensors are still alive after backward(), held through loss.parents.\n"
            "Once a node has passed its gradient on, set its parents to () and its saved to {}")

    @pytest.mark.budget
    def test_graph_memory_released_after_backward(self):
        """After backward() of a 200x32-32-32-10 MLP only the parameters' gradients stay allocated, not the activations."""
        forward, params = mlp(200, [32, 32, 32, 10], seed=112)
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            loss = forward()
            graph = tracemalloc.get_traced_memory()[0] - start
            loss.backward()
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()
        grads = sum(p.grad.nbytes for p in params)
        extra = held - grads
        assert extra <= 32 * 1024, (  # about one (200, 32) float32 activation; the graph holds 178 KiB
            f"after backward() {held / 1024:.0f} KiB is still allocated; the parameters' gradients are "
            f"{grads / 1024:.0f} KiB,\nand the forward pass had built {graph / 1024:.0f} KiB of graph. "
            f"The {extra / 1024:.0f} KiB extra is activations the graph still holds (the budget is 32 KiB): "
            "free it as backward() goes")

    def test_float32_graph_keeps_float32_gradients(self):
        """Every rule hands float32 gradients on in a float32 graph: a float64 detour doubles their memory and time."""
        ops = {
            "add": lambda x: x + x, "sub": lambda x: x - 1, "mul": lambda x: x * 3, "div": lambda x: 1 / x,
            "pow": lambda x: x ** 2, "neg": lambda x: -x, "exp": lambda x: x.exp(), "log": lambda x: x.log(),
            "reshape": lambda x: x.reshape(-1), "transpose": lambda x: x.T, "getitem": lambda x: x[[0, 0, 1]],
            "sum": lambda x: x.sum(axis=0), "mean": lambda x: x.mean(), "max": lambda x: x.max(axis=1),
            "matmul": lambda x: x @ x.T, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "gelu": gelu,
            "softmax": softmax, "log_softmax": log_softmax,
        }
        x = Tensor(positive((3, 4), 115), requires_grad=True)  # float32
        widened = []
        for name, op in ops.items():
            SEEN.clear()
            out = op(spy(x))
            out.backward(np.ones(out.shape, dtype=np.float32))
            if SEEN[-1].dtype != np.float32:
                widened.append(f"{name} ({SEEN[-1].dtype})")
        assert not widened, (
            f"these rules turned float32 gradients into another dtype: {', '.join(widened)}.\nLook for numpy "
            "float64 scalars (np.sqrt(2 / np.pi) is one; math.sqrt gives a Python float)\nand for bool or int "
            "arrays divided by each other")

    def test_second_backward_through_freed_graph_raises(self):
        """A second backward() through a graph an earlier backward() freed raises a RuntimeError naming the op."""
        x = leaf((3,), seed=113)
        h = x * 2
        (h * 3).backward(np.ones(3))
        with pytest.raises(RuntimeError, match="'mul'"):
            (h * h).backward(np.ones(3))

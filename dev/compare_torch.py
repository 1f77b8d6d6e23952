"""The reference against PyTorch on the CPU: same answers, and how much slower.

    python dev/compare_torch.py            # check values, then time each workload
    python dev/compare_torch.py --quick    # fewer repeats

For maintainers only. PyTorch is not a dependency of the project: without it, this
script says so and exits 0. Both sides run on one thread (numpy's BLAS through the
environment variables below, PyTorch through `torch.set_num_threads(1)`), and each
time is the best of several interleaved repeats, so the ratio compares the code, not
the machine's mood. The README's table comes from this script.
"""

from __future__ import annotations

import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # before numpy loads its BLAS

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import implementation  # noqa: E402

implementation.install("reference")

from tinytorch.activations import ReLU, softmax  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss  # noqa: E402
from tinytorch.optimizers import SGD, Adam, AdamW  # noqa: E402
from tinytorch.tensor import Tensor  # noqa: E402


def best_of(functions: dict, repeats: int) -> dict:
    """Interleave the functions `repeats` times; the fastest run of each, in seconds."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def close(name: str, ours, theirs, tolerance: float = 1e-4) -> bool:
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    error = float(np.max(np.abs(ours - theirs) / (1 + np.abs(theirs))))
    ok = ours.shape == theirs.shape and error <= tolerance
    print(f"  {'ok ' if ok else 'BAD'} {name:<44} largest relative difference {error:.1e}")
    return ok


def workloads(torch, rng):
    """(name, ours, theirs, check) for each workload; check() compares the values and returns True if close."""
    found = []

    a, b = rng.standard_normal((512, 512), dtype=np.float32), rng.standard_normal((512, 512), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    found.append(("matmul 512x512 @ 512x512", lambda: Tensor(a) @ Tensor(b), lambda: ta @ tb,
                  lambda: close("matmul", (Tensor(a) @ Tensor(b)).data, (ta @ tb).numpy(), 1e-4)))

    x = rng.standard_normal((1024, 1024), dtype=np.float32) * 10
    tx = torch.from_numpy(x)
    found.append(("softmax 1024x1024", lambda: softmax(Tensor(x)), lambda: torch.softmax(tx, dim=-1),
                  lambda: close("softmax", softmax(Tensor(x)).data, torch.softmax(tx, dim=-1).numpy(), 1e-5)))

    logits = rng.standard_normal((4096, 1000), dtype=np.float32)
    targets = rng.integers(0, 1000, size=4096)
    t_targets = torch.from_numpy(targets)

    def ours_ce():
        z = Tensor(logits, requires_grad=True)
        loss = cross_entropy(z, targets)
        loss.backward()
        return loss, z

    def theirs_ce():
        z = torch.from_numpy(logits).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(z, t_targets)
        loss.backward()
        return loss, z

    def check_ce():
        (loss, z), (t_loss, tz) = ours_ce(), theirs_ce()
        return (close("cross-entropy loss", loss.data, t_loss.detach().numpy(), 1e-5)
                & close("cross-entropy gradient", z.grad, tz.grad.numpy(), 1e-6))
    found.append(("cross-entropy 4096x1000, forward + backward", ours_ce, theirs_ce, check_ce))

    batch = rng.standard_normal((32, 64), dtype=np.float32)
    labels = rng.integers(0, 10, size=32)
    ours_mlp = Sequential(Linear(64, 128, rng=np.random.default_rng(1)), ReLU(), Linear(128, 10, rng=np.random.default_rng(2)))
    theirs_mlp = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    with torch.no_grad():  # the same weights on both sides; ours are (in, out), torch's (out, in)
        for ours_layer, theirs_layer in ((ours_mlp[0], theirs_mlp[0]), (ours_mlp[2], theirs_mlp[2])):
            theirs_layer.weight.copy_(torch.from_numpy(ours_layer.weight.data.T.copy()))
            theirs_layer.bias.copy_(torch.from_numpy(ours_layer.bias.data.copy()))
    ours_adam, theirs_adam = Adam(ours_mlp.parameters(), lr=1e-3), torch.optim.Adam(theirs_mlp.parameters(), lr=1e-3)
    t_batch, t_labels = torch.from_numpy(batch), torch.from_numpy(labels)

    def ours_step():
        ours_adam.zero_grad()
        loss = cross_entropy(ours_mlp(Tensor(batch)), labels)
        loss.backward()
        ours_adam.step()
        return loss

    def theirs_step():
        theirs_adam.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs_mlp(t_batch), t_labels)
        loss.backward()
        theirs_adam.step()
        return loss

    def check_step():
        ok = True
        for _ in range(3):  # three identical steps on both sides
            ok &= close("MLP training step: loss", ours_step().data, theirs_step().detach().numpy(), 1e-4)
        return ok & close("MLP training step: first-layer weights after 3 steps", ours_mlp[0].weight.data,
                          theirs_mlp[0].weight.detach().numpy().T, 1e-4)
    found.append(("MLP 64-128-10 training step, batch 32 (Adam)", ours_step, theirs_step, check_step))

    params = Linear(1000, 1000, rng=np.random.default_rng(3)).parameters()
    for p in params:
        p.grad = np.ones_like(p.data)
    t_params = [torch.from_numpy(p.data.copy()).requires_grad_(True) for p in params]
    for p in t_params:
        p.grad = torch.ones_like(p)
    big_ours, big_theirs = Adam(params, lr=1e-3), torch.optim.Adam(t_params, lr=1e-3, foreach=True)

    def check_adam():
        big_ours.step()
        big_theirs.step()
        return close("Adam step: weights after one step", params[0].data, t_params[0].detach().numpy(), 1e-6)
    found.append((f"Adam step over {sum(p.data.size for p in params):,} parameters", big_ours.step,
                  big_theirs.step, check_adam))
    return found


# -- losses and optimizers, float64, every option --------------------------------------------


def same(name: str, ours, theirs, tolerance: float = 1e-12) -> bool:
    """Like close(), in float64 and with NaN and infinities required in the same places."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    finite = np.isfinite(theirs)
    ok = ours.shape == theirs.shape and np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ok and np.array_equal(np.where(finite, 0, ours), np.where(finite, 0, theirs), equal_nan=True)
    error = float(np.max(np.abs(ours - theirs)[finite] / (1 + np.abs(theirs[finite])), initial=0.0)) if ok else np.inf
    ok = ok and error <= tolerance
    print(f"  {'ok ' if ok else 'BAD'} {name:<44} largest relative difference {error:.1e}")
    return ok


def loss_checks(torch, rng) -> bool:
    """Every loss and reduction, values and the gradients of every input, with a random upstream gradient."""
    functional, ok = torch.nn.functional, True
    x = rng.standard_normal((5, 4)) * 3
    x[1] += 1000.0  # rows of very different scale in one batch
    classes = rng.integers(0, 4, size=5)
    soft = rng.uniform(0.05, 0.95, (5, 4))
    bce_logits = np.concatenate([rng.standard_normal((4, 4)) * 4, [[30.0, -30.0, 1e4, -1e4]]])
    cases = {  # name -> (ours, theirs, (input arrays), which inputs require grad)
        "mse_loss": (lambda a, b, r: mse_loss(a, b, reduction=r), lambda a, b, r: functional.mse_loss(a, b, reduction=r),
                     (x, soft), (True, True)),
        "cross_entropy": (lambda a, r: cross_entropy(a, classes, reduction=r),
                          lambda a, r: functional.cross_entropy(a, torch.from_numpy(classes), reduction=r),
                          (x,), (True,)),
        "binary_cross_entropy_with_logits": (
            lambda a, b, r: binary_cross_entropy_with_logits(a, b, reduction=r),
            lambda a, b, r: functional.binary_cross_entropy_with_logits(a, b, reduction=r),
            (bce_logits, soft), (True, True)),
    }
    for name, (ours_fn, theirs_fn, arrays, grads) in cases.items():
        for reduction in ("mean", "sum", "none"):
            mine = [Tensor(a.copy(), dtype=np.float64, requires_grad=g) for a, g in zip(arrays, grads)]
            theirs = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)]
            out, t_out = ours_fn(*mine, reduction), theirs_fn(*theirs, reduction)
            upstream = rng.standard_normal(out.shape)
            out.backward(upstream)
            t_out.backward(torch.from_numpy(upstream))
            ok &= same(f"{name} {reduction!r}: loss", out.data, t_out.detach().numpy())
            for index, (m, t) in enumerate(zip(mine, theirs)):
                ok &= same(f"{name} {reduction!r}: gradient of input {index}", m.grad, t.grad.numpy())

    edges = np.array([[0.0, -np.inf, 1.0], [0.5, np.nan, -0.5], [1e4, 0.0, -1e4]])
    targets = np.array([2, 0, 1])
    mine = Tensor(edges.copy(), dtype=np.float64, requires_grad=True)
    theirs = torch.tensor(edges, requires_grad=True)
    losses = cross_entropy(mine, targets, reduction="none")
    t_losses = functional.cross_entropy(theirs, torch.from_numpy(targets), reduction="none")
    losses.backward(np.ones(3))
    t_losses.backward(torch.ones(3, dtype=torch.float64))
    ok &= same("cross_entropy: -inf mask, NaN row, +-1e4", losses.data, t_losses.detach().numpy())
    ok &= same("cross_entropy: their gradient", mine.grad, theirs.grad.numpy())
    empty = cross_entropy(Tensor(np.zeros((0, 3)), dtype=np.float64), np.zeros(0, dtype=int), reduction="sum")
    t_empty = functional.cross_entropy(torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.long),
                                       reduction="sum")
    ok &= same("cross_entropy of an empty batch, 'sum'", empty.data, t_empty.numpy())
    return ok


def optimizer_checks(torch, rng) -> bool:
    """Every optimizer and option over five steps: lr changed between steps, a parameter skipped at some."""
    shapes = [(3, 4), (4,), (2,)]
    starts = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(5)]
    for step, index in ((0, 2), (3, 2), (1, 0)):  # no gradient: the last parameter at steps 1 and 4, the first at 2
        grads[step][index] = None
    lrs = [0.1, 0.1, 0.05, 0.02, 0.02]
    configurations = {
        "SGD": (lambda ps: SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
        "SGD weight_decay": (lambda ps: SGD(ps, lr=0.1, weight_decay=0.05),
                             lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05)),
        "SGD momentum": (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)),
        "SGD Nesterov": (lambda ps: SGD(ps, lr=0.1, momentum=0.8, weight_decay=0.02, nesterov=True),
                         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, weight_decay=0.02, nesterov=True)),
        "Adam": (lambda ps: Adam(ps, lr=0.1), lambda ps: torch.optim.Adam(ps, lr=0.1)),
        "Adam betas, eps, L2 decay": (
            lambda ps: Adam(ps, lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1),
            lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)),
        "AdamW": (lambda ps: AdamW(ps, lr=0.1), lambda ps: torch.optim.AdamW(ps, lr=0.1)),
        "AdamW betas, eps, decay": (
            lambda ps: AdamW(ps, lr=0.1, betas=(0.7, 0.9), eps=1e-4, weight_decay=0.3),
            lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=(0.7, 0.9), eps=1e-4, weight_decay=0.3)),
    }
    ok = True
    for name, (make_ours, make_theirs) in configurations.items():
        mine = [Tensor(start.copy(), dtype=np.float64, requires_grad=True) for start in starts]
        theirs = [torch.tensor(start, requires_grad=True) for start in starts]
        ours_optimizer, theirs_optimizer = make_ours(mine), make_theirs(theirs)
        worst = 0.0
        for step_grads, lr in zip(grads, lrs):
            ours_optimizer.lr = lr
            theirs_optimizer.param_groups[0]["lr"] = lr
            for m, t, g in zip(mine, theirs, step_grads):
                m.grad = None if g is None else g.copy()
                t.grad = None if g is None else torch.tensor(g)
            ours_optimizer.step()
            theirs_optimizer.step()
            for m, t in zip(mine, theirs):
                difference = np.abs(m.data - t.detach().numpy()) / (1 + np.abs(t.detach().numpy()))
                worst = max(worst, float(difference.max()))
        ok &= same(f"{name}: parameters after 5 steps", np.concatenate([m.data.ravel() for m in mine]),
                   np.concatenate([t.detach().numpy().ravel() for t in theirs]))
        if worst > 1e-12:
            print(f"  BAD {name}: some step on the way differed by {worst:.1e}")
            ok = False
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python dev/compare_torch.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 20")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed, so there is nothing to compare with: skipped. "
              "(`python -m pip install torch` to run it; the project itself never needs it.)")
        return 0
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    repeats = 5 if args.quick else 20
    print(f"reference (numpy {np.__version__}) against PyTorch {torch.__version__}, one thread each, "
          f"Python {platform.python_version()}, {platform.machine()}\n")
    print("values:")
    found = workloads(torch, rng)
    ok = all([check() for _, _, _, check in found])
    print("\nlosses and optimizers in float64, every option:")
    ok &= loss_checks(torch, np.random.default_rng(1))
    ok &= optimizer_checks(torch, np.random.default_rng(2))
    print("\ntimes (best of %d, interleaved):" % repeats)
    print(f"  {'workload':<46}{'reference':>11}{'PyTorch':>11}{'ratio':>8}")
    for name, ours, theirs, _ in found:
        ours(), theirs()  # warm up
        best = best_of({"ours": ours, "theirs": theirs}, repeats)
        print(f"  {name:<46}{best['ours'] * 1e3:>9.2f}ms{best['theirs'] * 1e3:>9.2f}ms"
              f"{best['ours'] / best['theirs']:>7.1f}x")
    if not ok:
        print("\nsome values differ from PyTorch's: see BAD above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

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
from tinytorch.losses import cross_entropy  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
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


def training_and_data_edges(torch) -> tuple[bool, list[str]]:
    """Katas 07-08 at their edges, in float64: clipping, schedules, accuracy ties, loader lengths.

    Returns (all agree, the deliberate differences seen). A deliberate difference is printed as
    `by design` and does not fail the comparison; the lessons of katas 07 and 08 explain each.
    """
    import math

    from tinytorch.dataloader import DataLoader as OurLoader
    from tinytorch.dataloader import TensorDataset as OurDataset
    from tinytorch.layers import Parameter
    from tinytorch.training import accuracy, clip_grad_norm, step_lr, warmup_cosine_lr

    ok, by_design = True, []

    def clip_both(grads, max_norm, dtype=np.float64):
        ours, theirs = [], []
        for g in grads:
            p = Parameter(np.zeros(1), dtype=dtype)
            p.grad = None if g is None else np.array(g, dtype=dtype)
            ours.append(p)
            t = torch.zeros(np.shape(g) if g is not None else 1, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype,
                            requires_grad=True)
            t.grad = None if g is None else torch.from_numpy(np.array(g, dtype=dtype))
            theirs.append(t)
        with np.errstate(all="ignore"):
            norm = clip_grad_norm(ours, max_norm)
        t_norm = float(torch.nn.utils.clip_grad_norm_(theirs, max_norm))
        got = np.concatenate([p.grad.ravel() for p in ours if p.grad is not None] or [np.zeros(0)])
        expected = np.concatenate([t.grad.numpy().ravel() for t in theirs if t.grad is not None] or [np.zeros(0)])
        return norm, t_norm, got, expected

    rng = np.random.default_rng(7)
    big = [rng.standard_normal((3, 4)), None, rng.standard_normal(5)]
    total = math.sqrt(sum(float(np.sum(g ** 2)) for g in big if g is not None))
    for name, grads, max_norm in (("above the limit (None grads skipped)", big, total / 3),
                                  ("below the limit", big, total * 2),
                                  ("no gradients at all", [None, None], 1.0)):
        norm, t_norm, got, expected = clip_both(grads, max_norm)
        ok &= close(f"clip_grad_norm {name}: norm", norm, t_norm, 1e-12)
        if got.size:
            ok &= close(f"clip_grad_norm {name}: gradients", got, expected, 1e-6)  # torch's epsilon: 1e-6 / norm

    def design(name: str, ours, theirs, why: str) -> None:
        print(f"  by design {name:<38} ours {ours}, PyTorch {theirs}: {why}")
        by_design.append(name)

    norm, t_norm, got, expected = clip_both([[3.0, 4.0]], 5.0)
    design("clip_grad_norm at exactly max_norm", got.tolist(), expected.tolist(),
           "no epsilon, so a norm at the limit is left alone")
    norm, t_norm, got, expected = clip_both([[3e-6, 4e-6]], 2.5e-6)
    design("clip_grad_norm of tiny gradients", got.tolist(), expected.tolist(),
           "PyTorch's factor max_norm / (norm + 1e-6) scales by 0.42 here, not 0.5")
    norm, t_norm, got, expected = clip_both([np.full(4, 1e20)], 1.0, dtype=np.float32)
    design("clip_grad_norm of float32 grads of 1e20", f"norm {norm:.1e}, grads {got[0]:.2f}",
           f"norm {t_norm}, grads {expected[0]:.2f}", "squares summed in float64, no overflow")
    norm, t_norm, got, expected = clip_both([[np.nan, 1.0], [3.0, 4.0]], 1.0)
    design("clip_grad_norm with a NaN gradient", f"norm {norm}, grads {got.tolist()}",
           f"norm {t_norm}, grads {expected.tolist()}", "the NaN norm is returned, the gradients are left alone")

    def torch_lrs(make_scheduler, steps: int, base_lr: float) -> list:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
        scheduler = make_scheduler(optimizer)
        lrs = []
        for _ in range(steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return lrs

    lr = torch.optim.lr_scheduler
    ok &= close("step_lr vs StepLR, 40 steps", [step_lr(s, 0.1, 7, 0.5) for s in range(40)],
                torch_lrs(lambda o: lr.StepLR(o, step_size=7, gamma=0.5), 40, 0.1), 1e-12)
    for warmup, total, min_lr in ((4, 30, 0.0), (5, 23, 0.01), (1, 10, 0.001)):
        ours = [warmup_cosine_lr(s, 0.1, warmup, total, min_lr) for s in range(total + 1)]
        theirs = torch_lrs(lambda o: lr.SequentialLR(o, [
            lr.LinearLR(o, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1)),
            lr.CosineAnnealingLR(o, T_max=total - warmup, eta_min=min_lr)], milestones=[warmup]), total + 1, 0.1)
        ok &= close(f"warmup_cosine_lr({warmup}, {total}, {min_lr}) vs LinearLR + cosine", ours, theirs, 1e-12)
    ours = [warmup_cosine_lr(s, 0.1, 0, 10, 0.0) for s in range(11)]
    ok &= close("warmup_cosine_lr without warm-up vs CosineAnnealingLR", ours,
                torch_lrs(lambda o: lr.CosineAnnealingLR(o, T_max=10), 11, 0.1), 1e-12)
    theirs = torch_lrs(lambda o: lr.CosineAnnealingLR(o, T_max=10), 16, 0.1)
    design("warmup_cosine_lr after total_steps", f"{warmup_cosine_lr(15, 0.1, 0, 10):.4f} at step 15",
           f"{theirs[15]:.4f}", "min_lr from total_steps on; PyTorch's cosine turns back up")

    ties = np.random.default_rng(8).integers(0, 3, size=(200, 4)).astype(np.float64)  # many tied maxima
    targets = np.random.default_rng(9).integers(0, 4, size=200)
    theirs = float((torch.from_numpy(ties).argmax(dim=1) == torch.from_numpy(targets)).double().mean())
    ok &= close("accuracy with tied logits vs argmax", accuracy(ties, targets), theirs, 0.0)

    ours, theirs = [], []
    for n, batch_size, drop_last in ((10, 4, False), (10, 4, True), (8, 4, False), (5, 8, True), (7, 1, False), (0, 3, False)):
        ours.append(len(OurLoader(OurDataset(np.arange(n)), batch_size=batch_size, drop_last=drop_last)))
        theirs.append(len(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(n)),
                                                      batch_size=batch_size, drop_last=drop_last)))
    ok &= close("DataLoader lengths, 6 cases", ours, theirs, 0.0)
    try:
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(0)), shuffle=True)
        theirs = "no batches"
    except ValueError:
        theirs = "ValueError"
    design("a shuffled loader over 0 items", f"{len(list(OurLoader(OurDataset(np.arange(0)), shuffle=True)))} batches",
           theirs, "an empty epoch, not an error")
    return ok, by_design


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
    print("\nvalues at the edges, katas 07-08 (float64):")
    edges_ok, _ = training_and_data_edges(torch)
    ok &= edges_ok
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

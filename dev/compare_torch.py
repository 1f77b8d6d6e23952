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

import itertools  # noqa: E402

from tinytorch.activations import ReLU, softmax  # noqa: E402
from tinytorch.convolutions import avg_pool2d, batch_norm2d, col2im, conv2d, im2col, max_pool2d  # noqa: E402
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

    for x_shape, out_channels, label in (((32, 3, 32, 32), 16, "conv2d (32,3,32,32) -> 16, 3x3, pad 1, fwd+bwd"),
                                         ((64, 1, 8, 8), 16, "conv2d (64,1,8,8) -> 16, 3x3, pad 1, fwd+bwd"),
                                         ((64, 16, 4, 4), 32, "conv2d (64,16,4,4) -> 32, 3x3, pad 1, fwd+bwd")):
        found.append(conv_workload(torch, rng, x_shape, out_channels, label))

    images = rng.standard_normal((32, 16, 32, 32), dtype=np.float32)
    pool_grad = rng.standard_normal((32, 16, 16, 16), dtype=np.float32)
    t_pool_grad = torch.from_numpy(pool_grad)

    def ours_pool():
        x = Tensor(images, requires_grad=True)
        out = max_pool2d(x, 2)
        out.backward(pool_grad)
        return out, x

    def theirs_pool():
        x = torch.from_numpy(images).requires_grad_(True)
        out = torch.nn.functional.max_pool2d(x, 2)
        out.backward(t_pool_grad)
        return out, x

    def check_pool():
        (out, x), (t_out, tx) = ours_pool(), theirs_pool()
        return (close("max_pool2d output", out.data, t_out.detach().numpy(), 1e-6)
                & close("max_pool2d input gradient", x.grad, tx.grad.numpy(), 1e-6))
    found.append(("max_pool2d 2x2 of (32,16,32,32), fwd+bwd", ours_pool, theirs_pool, check_pool))
    return found


def conv_workload(torch, rng, x_shape, out_channels, label):
    """(name, ours, theirs, check) for conv2d forward + backward, float32, 3x3 kernel, padding 1, with bias."""
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal((out_channels, x_shape[1], 3, 3), dtype=np.float32) * 0.2
    b = rng.standard_normal(out_channels, dtype=np.float32)
    grad = rng.standard_normal((x_shape[0], out_channels) + x_shape[2:], dtype=np.float32)
    t_grad = torch.from_numpy(grad)

    def ours():
        tensors = [Tensor(a, requires_grad=True) for a in (x, w, b)]
        out = conv2d(*tensors, stride=1, padding=1)
        out.backward(grad)
        return out, tensors

    def theirs():
        tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
        out = torch.nn.functional.conv2d(*tensors, stride=1, padding=1)
        out.backward(t_grad)
        return out, tensors

    def check():
        (out, mine), (t_out, their) = ours(), theirs()
        ok = close(f"{label.split(' ->')[0]}: output", out.data, t_out.detach().numpy(), 1e-4)
        for name, a, t in zip(("input", "weight", "bias"), mine, their):
            ok &= close(f"{label.split(' ->')[0]}: {name} gradient", a.grad, t.grad.numpy(), 1e-3)
        return ok
    return label, ours, theirs, check


def float64_options(torch, rng) -> bool:
    """Every option of the convolution kata against PyTorch in float64: values and every gradient."""
    def worst(pairs):
        return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0)) for a, b in pairs)

    def run(ours, theirs, arrays, *args):
        mine = [Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
        their = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
        out, t_out = ours(*mine, *args), theirs(*their, *args)
        grad = rng.standard_normal(out.shape)
        out.backward(grad)
        t_out.backward(torch.from_numpy(grad))
        same_inf = np.isinf(out.data) & (out.data == t_out.detach().numpy())
        values = np.where(same_inf, 0.0, out.data - np.where(same_inf, 0.0, t_out.detach().numpy()))
        return [(values, 0.0)] + [(a.grad, t.grad.numpy()) for a, t in zip(mine, their)]

    ok, errors = True, {}
    for (h, w), (kh, kw), stride, padding, bias in itertools.product(
            [(7, 7), (6, 9)], [(3, 3), (1, 1), (2, 3)], [1, 2, 3, (2, 1)], [0, 1, 2, (1, 0)], [True, False]):
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        if kh > h + 2 * ph or kw > w + 2 * pw:
            continue
        arrays = [rng.standard_normal((2, 3, h, w)), rng.standard_normal((4, 3, kh, kw))] + \
            ([rng.standard_normal(4)] if bias else [])
        pairs = run(lambda *t: conv2d(*t[:len(arrays)], stride=stride, padding=padding),
                    lambda *t: torch.nn.functional.conv2d(*t[:len(arrays)], stride=stride, padding=padding), arrays)
        errors["conv2d"] = max(errors.get("conv2d", 0.0), worst(pairs))
        x, kernel, size = arrays[0], (kh, kw), (h, w)
        cols = rng.standard_normal(im2col(x, kernel, stride, padding).shape)
        unfold = torch.nn.functional.unfold(torch.from_numpy(x), kernel, stride=stride, padding=padding).numpy()
        fold = torch.nn.functional.fold(torch.from_numpy(cols), size, kernel, stride=stride, padding=padding).numpy()
        errors["im2col, col2im (unfold, fold)"] = max(errors.get("im2col, col2im (unfold, fold)", 0.0), worst(
            [(im2col(x, kernel, stride, padding), unfold), (col2im(cols, x.shape, kernel, stride, padding), fold)]))
    pool_cases = list(itertools.product([(7, 7), (6, 9)], [2, 3, (2, 3)], [None, 1, 2, (1, 2)], [0, 1, (1, 0)]))
    inputs = [lambda shape: rng.standard_normal(shape), lambda shape: np.round(rng.standard_normal(shape)),
              lambda shape: np.where(rng.random(shape) < 0.7, -np.inf, rng.standard_normal(shape))]
    for (h, w), kernel, stride, padding in pool_cases:
        k, p = ((kernel, kernel) if isinstance(kernel, int) else kernel), (padding, padding) if isinstance(padding, int) else padding
        if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
            continue
        for make in inputs:  # random values; integers (ties); mostly -inf
            pairs = run(lambda x: max_pool2d(x, kernel, stride, padding),
                        lambda x: torch.nn.functional.max_pool2d(x, kernel, stride, padding), [make((2, 3, h, w))])
            errors["max_pool2d (ties, -inf)"] = max(errors.get("max_pool2d (ties, -inf)", 0.0), worst(pairs))
        for include in (True, False):
            pairs = run(lambda x: avg_pool2d(x, kernel, stride, padding, include),
                        lambda x: torch.nn.functional.avg_pool2d(x, kernel, stride, padding, count_include_pad=include),
                        [rng.standard_normal((2, 3, h, w))])
            errors["avg_pool2d (count_include_pad both)"] = max(
                errors.get("avg_pool2d (count_include_pad both)", 0.0), worst(pairs))
    for training in (True, False):
        running = [rng.standard_normal(3), rng.random(3) + 0.5]
        t_running = [torch.from_numpy(r.copy()) for r in running]
        pairs = run(lambda x, g, b: batch_norm2d(x, g, b, running[0], running[1], training, 0.1, 1e-5),
                    lambda x, g, b: torch.nn.functional.batch_norm(x, t_running[0], t_running[1], g, b, training, 0.1, 1e-5),
                    [rng.standard_normal((4, 3, 5, 6)) * 2 + 1, rng.standard_normal(3), rng.standard_normal(3)])
        pairs += [(running[0], t_running[0].numpy()), (running[1], t_running[1].numpy())]
        name = f"batch_norm2d ({'training' if training else 'eval'}, running stats)"
        errors[name] = worst(pairs)
    for name, error in errors.items():
        good = error <= 1e-9
        ok &= good
        print(f"  {'ok ' if good else 'BAD'} {name:<44} largest difference {error:.1e} (float64, every option)")
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
    ok &= float64_options(torch, np.random.default_rng(1))
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

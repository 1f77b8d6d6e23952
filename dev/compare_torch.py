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
import itertools  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import implementation  # noqa: E402

implementation.install("reference")

from tinytorch.acceleration import (  # noqa: E402
    InPlaceAdam, causal_self_attention, fast_path, linear_gelu, squared_distances,
)
from tinytorch.activations import ReLU, gelu, log_softmax, relu, sigmoid, softmax, tanh  # noqa: E402
from tinytorch.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention  # noqa: E402
from tinytorch.autograd import no_grad  # noqa: E402
from tinytorch.compression import (  # noqa: E402
    CSRMatrix, distillation_kl, distillation_loss, low_rank, magnitude_masks, units_to_keep,
)
from tinytorch.convolutions import avg_pool2d, batch_norm2d, col2im, conv2d, im2col, max_pool2d  # noqa: E402
from tinytorch.embeddings import embedding  # noqa: E402
from tinytorch.kv_cache import ModelCache, forward_with_cache  # noqa: E402
from tinytorch.layers import Dropout, Linear, Sequential, kaiming_uniform  # noqa: E402
from tinytorch.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss  # noqa: E402
from tinytorch.optimizers import Adam, AdamW, SGD  # noqa: E402
from tinytorch.quantization import (  # noqa: E402
    MinMaxObserver, QuantizedLinear, choose_qparams, dequantize, quantize, quantize_with,
)
from tinytorch.tensor import Tensor  # noqa: E402
from tinytorch.transformer import GPT, Block, GPTConfig, LayerNorm  # noqa: E402


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


def same_at_edges(name: str, ours, theirs, tolerance: float = 1e-12) -> bool:
    """Like close(), for values that may hold nan and infinities: those must sit at the same places, and match."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        print(f"  BAD {name:<44} shape {ours.shape} {ours.dtype}, PyTorch's {theirs.shape} {theirs.dtype}")
        return False
    finite = np.isfinite(theirs)
    special_ok = bool(np.array_equal(ours[~finite], theirs[~finite], equal_nan=True))
    error = float(np.max(np.abs(ours[finite] - theirs[finite]) / (1 + np.abs(theirs[finite])), initial=0.0))
    ok = special_ok and error <= tolerance
    print(f"  {'ok ' if ok else 'BAD'} {name:<44} largest relative difference {error:.1e}"
          + ("" if special_ok else ", nan/inf in different places"))
    return ok


def tensor_and_activation_edges(torch, rng) -> list:
    """Value checks (not timed) of katas 01-02 at their edges, in float64: each a callable returning True if equal."""
    F = torch.nn.functional
    checks = []

    def add(name, ours, theirs, tolerance=1e-12):
        """ours() gives a Tensor or a list of them, theirs() a torch tensor or a list of them."""
        def check():
            mine, torch_s = ours(), theirs()
            mine = np.stack([t.data for t in mine]) if isinstance(mine, list) else mine.data
            torch_s = torch.stack(torch_s) if isinstance(torch_s, list) else torch_s
            return same_at_edges(name, mine, torch_s.numpy(), tolerance)
        checks.append(check)

    base, exponent = np.array([0, 0, -2, -1.5, 3, 4.0]), np.array([2, 0, 3, 2, 0.5, -1.0])
    add("pow: zero and negative bases", lambda: Tensor(base, dtype=np.float64) ** Tensor(exponent, dtype=np.float64),
        lambda: torch.from_numpy(base) ** torch.from_numpy(exponent))
    x = rng.standard_normal((3, 4))
    mask = x > 0
    add("getitem: a boolean Tensor mask", lambda: Tensor(x, dtype=np.float64)[Tensor(mask, dtype=bool)],
        lambda: torch.from_numpy(x)[torch.from_numpy(mask)])
    add("getitem: float Tensor indices, a slice", lambda: Tensor(x, dtype=np.float64)[Tensor([2, 0]), 1:3],
        lambda: torch.from_numpy(x)[torch.tensor([2, 0]), 1:3])
    cube = rng.standard_normal((2, 3, 4))
    ours_cube, theirs_cube = Tensor(cube, dtype=np.float64), torch.from_numpy(cube)
    add("permute(-1, 0, -2)", lambda: ours_cube.permute(-1, 0, -2), lambda: theirs_cube.permute(-1, 0, -2))
    add("reshape of a transposed tensor", lambda: ours_cube.transpose(0, 2).reshape(4, -1),
        lambda: theirs_cube.transpose(0, 2).reshape(4, -1))
    for axis, keepdims in [(None, False), ((0, 2), True), ((-1, 0), False), (-2, True)]:
        dim = tuple(range(3)) if axis is None else axis
        add(f"sum/mean/max(axis={axis}, keepdims={keepdims})",
            lambda axis=axis, keepdims=keepdims: [ours_cube.sum(axis, keepdims), ours_cube.mean(axis, keepdims),
                                                  ours_cube.max(axis, keepdims)],
            lambda dim=dim, keepdims=keepdims: [theirs_cube.sum(dim, keepdims), theirs_cube.mean(dim, keepdims),
                                                theirs_cube.amax(dim, keepdims)])
    holed = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]])
    add("max(axis=1) with a nan", lambda: Tensor(holed, dtype=np.float64).max(axis=1),
        lambda: torch.from_numpy(holed).amax(1))
    left, right = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))
    add("matmul (2, 1, 3, 4) @ (5, 4, 2)", lambda: Tensor(left, dtype=np.float64) @ Tensor(right, dtype=np.float64),
        lambda: torch.from_numpy(left) @ torch.from_numpy(right), 1e-10)

    edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, -20.0, -40.0, -80.0, -800.0, 1e-10, 3.0])
    for name, ours, theirs in [("relu", relu, torch.relu), ("sigmoid", sigmoid, torch.sigmoid),
                               ("tanh", tanh, torch.tanh)]:
        add(f"{name} at nan, +-inf, 0, +-1e300, tails", lambda ours=ours: ours(Tensor(edges, dtype=np.float64)),
            lambda theirs=theirs: theirs(torch.from_numpy(edges)))
    gelu_points = np.concatenate([np.linspace(-6, 6, 49), [np.nan, np.inf, 1000.0, -1000.0, 1e4, -1e4]])
    add("gelu (tanh form): nan, inf, large, [-6, 6]", lambda: gelu(Tensor(gelu_points, dtype=np.float64)),
        lambda: F.gelu(torch.from_numpy(gelu_points), approximate="tanh"))
    for axis in (0, 1, 2, -1):
        add(f"softmax and log_softmax, axis={axis}",
            lambda axis=axis: [softmax(ours_cube, axis), log_softmax(ours_cube, axis)],
            lambda axis=axis: [torch.softmax(theirs_cube, axis), torch.log_softmax(theirs_cube, axis)])
    special = np.array([[0.0, -np.inf, 1.0], [2.0, -np.inf, -np.inf], [1.0, np.nan, 2.0], [1000.0, 999.0, -1000.0],
                        [-1000.0, -1001.0, -3000.0]])
    add("softmax: -inf masks, a nan row, +-1000", lambda: softmax(Tensor(special, dtype=np.float64)),
        lambda: torch.softmax(torch.from_numpy(special), -1))
    add("log_softmax: -inf masks, a nan row, +-1000", lambda: log_softmax(Tensor(special, dtype=np.float64)),
        lambda: torch.log_softmax(torch.from_numpy(special), -1))
    return checks


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
    found += embedding_workloads(torch, rng)
    found += attention_workloads(torch, rng)
    found += transformer_workloads(torch, rng)
    found += quantization_workloads(torch, rng)
    found += acceleration_workloads(torch, rng)
    return found


def embedding_workloads(torch, rng):
    """An embedding lookup and its scatter-add gradient (repeated ids included) against F.embedding."""
    table = rng.standard_normal((50_257, 256), dtype=np.float32)
    ids = rng.integers(0, 50_257, size=(8, 512))
    ids[0, :16] = 7  # a repeated id: its gradient rows must add up
    grad = rng.standard_normal((8, 512, 256), dtype=np.float32)
    t_ids, t_grad = torch.from_numpy(ids), torch.from_numpy(grad)

    def ours():
        weight = Tensor(table, requires_grad=True)
        out = embedding(ids, weight)
        out.backward(grad)
        return out, weight

    def theirs():
        weight = torch.from_numpy(table).requires_grad_(True)
        out = torch.nn.functional.embedding(t_ids, weight)
        out.backward(t_grad)
        return out, weight

    def check():
        (out, weight), (t_out, t_weight) = ours(), theirs()
        return (close("embedding lookup", out.data, t_out.detach().numpy(), 0)
                & close("embedding gradient (scatter-add)", weight.grad, t_weight.grad.numpy(), 1e-5))
    return [("embedding 8x512 ids, 50257x256, fwd+bwd", ours, theirs, check)]


def attention_workloads(torch, rng):
    """Scaled dot-product attention (causal, padding, a decode step) and multi-head attention against PyTorch."""
    functional = torch.nn.functional
    found = []
    shape = (8, 4, 128, 32)
    q, k, v, grad = (rng.standard_normal(shape, dtype=np.float32) for _ in range(4))

    def ours_sdpa(mask=None, causal=False, queries=None):
        tensors = [Tensor(a if queries is None or i else a[..., -queries:, :], requires_grad=True)
                   for i, a in enumerate((q, k, v))]
        out = scaled_dot_product_attention(*tensors, mask=mask, causal=causal)
        out.backward(grad[..., -out.shape[-2]:, :])
        return [out.data] + [t.grad for t in tensors]

    def theirs_sdpa(mask=None, causal=False, queries=None):
        tensors = [torch.from_numpy(a if queries is None or i else a[..., -queries:, :].copy()).requires_grad_(True)
                   for i, a in enumerate((q, k, v))]
        out = functional.scaled_dot_product_attention(
            *tensors, attn_mask=None if mask is None else torch.from_numpy(mask), is_causal=causal)
        out.backward(torch.from_numpy(grad[..., -out.shape[-2]:, :].copy()))
        return [out.detach().numpy()] + [t.grad.numpy() for t in tensors]

    def compare(name, ours_result, theirs_result):
        ok = True
        for part, a, b in zip(("output", "grad q", "grad k", "grad v"), ours_result, theirs_result):
            ok &= close(f"{name}: {part}", a, b, 1e-4)
        return ok

    found.append(("attention (8,4,128,32) causal, fwd+bwd", lambda: ours_sdpa(causal=True),
                  lambda: theirs_sdpa(causal=True),
                  lambda: compare("causal attention", ours_sdpa(causal=True), theirs_sdpa(causal=True))))
    padding = padding_mask(rng.integers(1, 129, size=8), 128)  # (8, 1, 1, 128), True = may attend in both
    found.append(("attention (8,4,128,32) padding, fwd+bwd", lambda: ours_sdpa(mask=padding),
                  lambda: theirs_sdpa(mask=padding),
                  lambda: compare("attention with a padding mask", ours_sdpa(mask=padding),
                                  theirs_sdpa(mask=padding))))
    # Decode: 4 new queries over all 128 keys. PyTorch's is_causal aligns to the top-left, so pass our
    # bottom-right causal mask explicitly.
    decode = causal_mask(4, 128)
    found.append(("attention decode: 4 queries, 128 keys", lambda: ours_sdpa(causal=True, queries=4),
                  lambda: theirs_sdpa(mask=decode, queries=4),
                  lambda: compare("decode step (causal, T_q=4, T_k=128)", ours_sdpa(causal=True, queries=4),
                                  theirs_sdpa(mask=decode, queries=4))))

    x = rng.standard_normal((8, 128, 128), dtype=np.float32)
    ours_mha = MultiHeadAttention(128, 4, rng=np.random.default_rng(4))
    ours_mha.qkv_proj.bias.data[...] = rng.standard_normal(384, dtype=np.float32) * 0.1
    theirs_mha = torch.nn.MultiheadAttention(128, 4, batch_first=True)
    with torch.no_grad():  # the same weights: ours are (in, out), PyTorch's (out, in)
        theirs_mha.in_proj_weight.copy_(torch.from_numpy(ours_mha.qkv_proj.weight.data.T.copy()))
        theirs_mha.in_proj_bias.copy_(torch.from_numpy(ours_mha.qkv_proj.bias.data.copy()))
        theirs_mha.out_proj.weight.copy_(torch.from_numpy(ours_mha.out_proj.weight.data.T.copy()))
        theirs_mha.out_proj.bias.copy_(torch.from_numpy(ours_mha.out_proj.bias.data.copy()))
    hidden = torch.from_numpy(~causal_mask(128, 128))  # nn.MultiheadAttention's boolean mask: True = ignore
    mha_grad = rng.standard_normal(x.shape, dtype=np.float32)

    def ours_multi_head():
        ours_mha.zero_grad()
        inputs = Tensor(x, requires_grad=True)
        out = ours_mha(inputs, causal=True)
        out.backward(mha_grad)
        return out.data, inputs.grad, ours_mha.qkv_proj.weight.grad

    def theirs_multi_head():
        theirs_mha.zero_grad()
        inputs = torch.from_numpy(x).requires_grad_(True)
        out, _ = theirs_mha(inputs, inputs, inputs, attn_mask=hidden, need_weights=False)
        out.backward(torch.from_numpy(mha_grad))
        return out.detach().numpy(), inputs.grad.numpy(), theirs_mha.in_proj_weight.grad.numpy().T

    def check_multi_head():
        ok = True
        for part, a, b in zip(("output", "grad x", "grad of W_QKV"), ours_multi_head(), theirs_multi_head()):
            ok &= close(f"multi-head attention: {part}", a, b, 1e-4)
        return ok
    found.append(("MHA (8,128,128) 4 heads causal, fwd+bwd", ours_multi_head,
                  theirs_multi_head, check_multi_head))
    return found


# -- gradients (katas 03 and 04), float64, edges included ------------------------------------


def quantization_workloads(torch, rng):
    """Kata 15: an int8 Linear(1024, 1024) on a batch of 256, ours (exact, float64 BLAS) against PyTorch's int8 kernel.

    PyTorch's dynamic quantization picks the input's range per batch (and 7-bit input levels on x86), ours is
    calibrated once; calibrated on the same batch, the outputs agree to 2-3% of their range.
    """
    layer = Linear(1024, 1024, rng=np.random.default_rng(15))
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    ours_layer = QuantizedLinear(layer, *choose_qparams(x.min(), x.max()))
    t_layer = torch.nn.Linear(1024, 1024)
    with torch.no_grad():
        t_layer.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
        t_layer.bias.zero_()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        t_int8 = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(t_layer), {torch.nn.Linear},
                                                        dtype=torch.qint8)
    tx = torch.from_numpy(x)

    def theirs():
        with torch.no_grad():
            return t_int8(tx)

    def check():
        ours, t_out = ours_layer(x).data, theirs().numpy()
        error = float(np.abs(ours - t_out).max() / np.abs(t_out).max())
        ok = error < 0.05  # measured 0.02-0.03: their 7-bit input levels have twice our step
        print(f"  {'ok ' if ok else 'BAD'} {'int8 Linear(1024, 1024) vs dynamic int8':<44} "
              f"largest difference {error:.1e} of the output range")
        return ok

    return [("int8 Linear(1024, 1024) on (256, 1024)", lambda: ours_layer(x), theirs, check)]


def quantization_checks(torch, rng) -> bool:
    """Kata 15 against torch.quantize_per_tensor / quantize_per_channel (rounding, saturation, zero points) and
    torch's MinMaxObserver (affine). Symmetric parameters differ on purpose: PyTorch spreads [-m, m] over
    [-128, 127] (scale m / 127.5, so m itself clips to 127), ours over [-127, 127] (scale m / 127)."""
    ok = True
    x = (rng.standard_normal((64, 33)) * 3 + 0.5).astype(np.float32)
    x[0, :3] = [1000.0, -1000.0, 0.0]  # saturation at both ends, and an exact zero
    tx = torch.from_numpy(x)
    for scale, zero_point in ((0.05, 0), (0.037, -20), (0.11, 100)):
        ours = quantize_with(x, np.float32(scale), zero_point)
        theirs = torch.quantize_per_tensor(tx, float(np.float32(scale)), zero_point, torch.qint8)
        ok &= same(f"quantize_per_tensor, zero point {zero_point}: levels", ours.values, theirs.int_repr().numpy(), 0)
        ok &= same(f"quantize_per_tensor, zero point {zero_point}: dequantize", dequantize(ours),
                   theirs.dequantize().numpy(), 1e-7)
    scales = np.abs(rng.standard_normal(33)).astype(np.float32) * 0.1 + 0.01
    zero_points = rng.integers(-100, 100, 33).astype(np.int32)
    ours = quantize_with(x, scales, zero_points, axis=1)
    theirs = torch.quantize_per_channel(tx, torch.from_numpy(scales.astype(np.float64)),
                                        torch.from_numpy(zero_points.astype(np.int64)), 1, torch.qint8)
    ok &= same("quantize_per_channel, axis 1: levels", ours.values, theirs.int_repr().numpy(), 0)
    ok &= same("quantize_per_channel, axis 1: dequantize", dequantize(ours), theirs.dequantize().numpy(), 1e-7)
    for name, values in (("all positive [1, 6]", rng.uniform(1, 6, 200)), ("all negative", rng.uniform(-6, -1, 200)),
                         ("mixed", rng.standard_normal(200) * 2)):
        values = values.astype(np.float32)
        observer = MinMaxObserver()
        observer.observe(values)
        t_observer = torch.ao.quantization.MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_affine)
        t_observer(torch.from_numpy(values))
        (scale, zero_point), (t_scale, t_zero_point) = observer.qparams(), t_observer.calculate_qparams()
        ok &= close(f"MinMaxObserver affine, {name}: scale", scale, t_scale.numpy()[0], 1e-6)
        ok &= same(f"MinMaxObserver affine, {name}: zero point", zero_point, t_zero_point.numpy()[0], 0)
        ok &= same(f"quantize affine, {name}: levels", quantize(values).values,
                   torch.quantize_per_tensor(torch.from_numpy(values), float(scale), int(zero_point),
                                             torch.qint8).int_repr().numpy(), 0)

    def design(name: str, ours, theirs, why: str) -> None:
        print(f"  by design {name:<38} ours {ours}, PyTorch {theirs}: {why}")

    values = np.array([-6.0, -1.0], dtype=np.float32)  # [-6, 0] over 255 steps: -1.0 is 42.499999 steps below 0
    scale, zero_point = choose_qparams(-6.0, 0.0)
    t_levels = torch.quantize_per_tensor(torch.from_numpy(values), float(scale), int(zero_point), torch.qint8)
    design("quantize -1.0 with scale 6/255", quantize_with(values, scale, zero_point).values.tolist(),
           t_levels.int_repr().tolist(), "x / scale in float64 is -42.4999992, nearer -42; float32 makes it a tie")
    symmetric = np.array([-1.0, 3.0], dtype=np.float32)
    t_observer = torch.ao.quantization.MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    t_observer(torch.from_numpy(symmetric))
    design("symmetric scale of [-1, 3]", f"{float(choose_qparams(-1.0, 3.0, symmetric=True)[0]):.6f}",
           f"{float(t_observer.calculate_qparams()[0]):.6f}", "[-127, 127] (3/127) rather than [-128, 127] (3/127.5)")
    return ok


def gradient_cases(torch, rng):
    """(name, ours, theirs, inputs): `ours` takes tinytorch Tensors, `theirs` torch tensors, same math."""
    F = torch.nn.functional
    normal = rng.standard_normal
    positive = rng.uniform(0.5, 2.0, (3, 4))
    x34, x234 = normal((3, 4)), normal((2, 3, 4))
    mask = rng.random((3, 4)) < 0.5
    zero_base = (np.array([0.0, 0.0, 0.0, 0.0, 1.5, 2.0]), np.array([2.0, 1.0, 0.0, 3.0, 0.0, -1.0]))
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    all_tied = np.array([[3.0, 3.0], [3.0, 1.0]])
    logits = np.array([[1000.0, 0.0, -1000.0], [0.5, 0.5, 0.5]])
    return [
        # arithmetic
        ("a + b", lambda a, b: a + b, lambda a, b: a + b, (x34, normal((3, 4)))),
        ("a - b", lambda a, b: a - b, lambda a, b: a - b, (x34, normal((3, 4)))),
        ("a * b", lambda a, b: a * b, lambda a, b: a * b, (x34, normal((3, 4)))),
        ("a / b", lambda a, b: a / b, lambda a, b: a / b, (x34, positive)),
        ("a ** b", lambda a, b: a ** b, lambda a, b: a ** b, (positive, normal((3, 4)))),
        ("a ** b at a zero base or exponent", lambda a, b: a ** b, lambda a, b: a ** b, zero_base),
        ("x ** 3", lambda x: x ** 3, lambda x: x ** 3, (x34,)),
        ("x ** 0 and x ** 2 at x = 0", lambda x: x ** 0 + x ** 2, lambda x: x ** 0 + x ** 2,
         (np.array([0.0, 0.0, 2.0]),)),
        ("-x", lambda x: -x, lambda x: -x, (x34,)),
        ("x.exp()", lambda x: x.exp(), lambda x: x.exp(), (x34,)),
        ("x.log()", lambda x: x.log(), lambda x: x.log(), (positive,)),
        ("2 - x, 2 / x, 2 ** x", lambda x: (2 - x) * (2 / x) + 2 ** x, lambda x: (2 - x) * (2 / x) + 2 ** x,
         (positive,)),
        # broadcasting
        ("(3, 4) + (4,)", lambda a, b: a + b, lambda a, b: a + b, (x34, normal(4))),
        ("(2, 3, 4) * (3, 1)", lambda a, b: a * b, lambda a, b: a * b, (x234, normal((3, 1)))),
        ("(1, 3, 1) * (2, 3, 4)", lambda a, b: a * b, lambda a, b: a * b, (normal((1, 3, 1)), x234)),
        ("(3, 4) / (1, 4)", lambda a, b: a / b, lambda a, b: a / b, (x34, rng.uniform(0.5, 2.0, (1, 4)))),
        ("() - (3, 4)", lambda a, b: a - b, lambda a, b: a - b, (normal(()), x34)),
        # shapes
        ("x.reshape(3, 4)", lambda x: x.reshape(3, 4), lambda x: x.reshape(3, 4), (normal((2, 6)),)),
        ("x.permute(2, 0, 1)", lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1), (x234,)),
        ("x.permute(-1, 0, -2)", lambda x: x.permute(-1, 0, -2), lambda x: x.permute(-1, 0, -2), (x234,)),
        ("x.transpose(-1, 0)", lambda x: x.transpose(-1, 0), lambda x: x.transpose(-1, 0), (x234,)),
        ("x.T", lambda x: x.T, lambda x: x.T, (x34,)),
        ("x[1:, ::2]", lambda x: x[1:, ::2], lambda x: x[1:, ::2], (x34,)),
        ("x[::-1, ::-2]", lambda x: x[::-1, ::-2], lambda x: x.flip((0, 1))[:, ::2], (x34,)),
        ("x[..., 1] and x[None, 1]", lambda x: x[..., 1] * x[None, 1][0, :3], lambda x: x[..., 1] * x[None, 1][0, :3],
         (x34,)),
        ("x[[0, 2, 0, 0]]", lambda x: x[[0, 2, 0, 0]], lambda x: x[[0, 2, 0, 0]], (x34,)),
        ("x[[-1, 0, -1]]", lambda x: x[[-1, 0, -1]], lambda x: x[[-1, 0, -1]], (x34,)),
        ("x[[1, 1, 2], [3, 3, 0]]", lambda x: x[np.array([1, 1, 2]), np.array([3, 3, 0])],
         lambda x: x[[1, 1, 2], [3, 3, 0]], (x34,)),
        ("x[mask]", lambda x: x[mask], lambda x: x[torch.from_numpy(mask)], (x34,)),
        # reductions
        ("x.sum()", lambda x: x.sum(), lambda x: x.sum(), (x234,)),
        ("x.sum(axis=(0, -1), keepdims=True)", lambda x: x.sum(axis=(0, -1), keepdims=True),
         lambda x: x.sum(dim=(0, -1), keepdim=True), (x234,)),
        ("x.mean(axis=(-1, 0))", lambda x: x.mean(axis=(-1, 0)), lambda x: x.mean(dim=(-1, 0)), (x234,)),
        ("x.mean(axis=1, keepdims=True)", lambda x: x.mean(axis=1, keepdims=True),
         lambda x: x.mean(dim=1, keepdim=True), (x234,)),
        ("x.max(axis=-2)", lambda x: x.max(axis=-2), lambda x: x.amax(dim=-2), (x234,)),
        ("x.max(axis=(0, 2))", lambda x: x.max(axis=(0, 2)), lambda x: x.amax(dim=(0, 2)), (x234,)),
        ("max(axis=1) with ties (torch.amax)", lambda x: x.max(axis=1), lambda x: x.amax(dim=1), (ties,)),
        ("max() with three ties (torch.max)", lambda x: x.max(), lambda x: x.max(), (all_tied,)),
        # matmul
        ("(3, 4) @ (4, 5)", lambda a, b: a @ b, lambda a, b: a @ b, (x34, normal((4, 5)))),
        ("(2, 3, 4) @ (4, 5)", lambda a, b: a @ b, lambda a, b: a @ b, (x234, normal((4, 5)))),
        ("(1, 3, 4) @ (2, 4, 5)", lambda a, b: a @ b, lambda a, b: a @ b, (normal((1, 3, 4)), normal((2, 4, 5)))),
        # activations
        ("relu, at 0 too", relu, torch.relu, (np.array([-1.0, 0.0, 2.0, -0.5, 3.0]),)),
        ("sigmoid, at +-1000 too", sigmoid, torch.sigmoid, (np.array([-1000.0, -2.0, 0.0, 1.5, 1000.0]),)),
        ("tanh", tanh, torch.tanh, (x34 * 2,)),
        ("gelu (tanh approximation)", gelu, lambda x: F.gelu(x, approximate="tanh"), (x34 * 2,)),
        ("softmax(axis=0)", lambda x: softmax(x, axis=0), lambda x: torch.softmax(x, dim=0), (x34,)),
        ("softmax(axis=1) of (2, 3, 4)", lambda x: softmax(x, axis=1), lambda x: torch.softmax(x, dim=1), (x234,)),
        ("log_softmax(axis=-1)", lambda x: log_softmax(x, axis=-1), lambda x: torch.log_softmax(x, dim=-1), (x34,)),
        ("softmax at logits +-1000", lambda x: softmax(x, axis=-1), lambda x: torch.softmax(x, dim=-1), (logits,)),
        ("log_softmax at logits +-1000", lambda x: log_softmax(x, axis=-1), lambda x: torch.log_softmax(x, dim=-1),
         (logits,)),
    ]


def gradient_checks(torch, rng) -> bool:
    """Every op's value and gradients against torch in float64, with a random upstream gradient."""
    ok = True
    for name, ours, theirs, inputs in gradient_cases(torch, rng):
        mine = [Tensor(np.array(x), dtype=np.float64, requires_grad=True) for x in inputs]
        their = [torch.tensor(np.array(x), dtype=torch.float64, requires_grad=True) for x in inputs]
        out, t_out = ours(*mine), theirs(*their)
        upstream = rng.standard_normal(out.shape)
        out.backward(upstream)
        t_out.backward(torch.from_numpy(upstream))
        ok &= close(f"{name}: value", out.data, t_out.detach().numpy(), 1e-12)
        for i, (m, t) in enumerate(zip(mine, their)):
            ok &= close(f"{name}: gradient of input {i}", m.grad, t.grad.numpy(), 1e-12)
    return ok


def layer_checks(torch, rng) -> bool:
    """Kata 04 against torch.nn: Linear (weights transposed), Dropout at p = 0 and 1, init bound, state_dict keys."""
    ok = True
    for shape in ((5, 4), (2, 5, 4), (4,)):
        layer = Linear(4, 3, rng=np.random.default_rng(7))
        layer.bias.data[...] = rng.standard_normal(3)
        x = rng.standard_normal(shape).astype(np.float32)
        weight = torch.from_numpy(layer.weight.data.T.copy()).requires_grad_(True)  # torch keeps (out, in)
        bias = torch.from_numpy(layer.bias.data.copy()).requires_grad_(True)
        t_x = torch.from_numpy(x).requires_grad_(True)
        mine_x = Tensor(x, requires_grad=True)
        out, t_out = layer(mine_x), torch.nn.functional.linear(t_x, weight, bias)
        upstream = rng.standard_normal(out.shape).astype(np.float32)
        out.backward(upstream)
        t_out.backward(torch.from_numpy(upstream))
        ok &= close(f"Linear(4, 3) on {shape}: value", out.data, t_out.detach().numpy(), 1e-5)
        ok &= close(f"Linear(4, 3) on {shape}: weight.grad (transposed)", layer.weight.grad.T, weight.grad.numpy(), 1e-5)
        ok &= close(f"Linear(4, 3) on {shape}: bias.grad", layer.bias.grad, bias.grad.numpy(), 1e-5)
        ok &= close(f"Linear(4, 3) on {shape}: x.grad", mine_x.grad, t_x.grad.numpy(), 1e-5)
    x = rng.standard_normal((6, 5))
    for p, training in ((0.0, True), (1.0, True), (0.0, False), (1.0, False), (0.5, False)):
        dropout, t_dropout = Dropout(p), torch.nn.Dropout(p)
        dropout.train(training), t_dropout.train(training)
        mine_x, t_x = Tensor(x, dtype=np.float64, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, t_out = dropout(mine_x), t_dropout(t_x)
        out.backward(np.ones(x.shape))
        t_out.backward(torch.ones(x.shape, dtype=torch.float64))
        mode = "training" if training else "eval"
        ok &= close(f"Dropout({p}) in {mode}: value", out.data, t_out.detach().numpy(), 0)
        ok &= close(f"Dropout({p}) in {mode}: gradient", mine_x.grad, t_x.grad.numpy(), 0)
    t_weight = torch.empty(512, 1024)
    torch.nn.init.kaiming_uniform_(t_weight, nonlinearity="relu")  # fan_in = 1024 (torch's weight is (out, in))
    ours_weight = kaiming_uniform((1024, 512), fan_in=1024, rng=np.random.default_rng(8))
    ok &= close("kaiming_uniform bound sqrt(6/fan_in): largest |w|", np.abs(ours_weight).max(),
                t_weight.abs().max().item(), 1e-3)
    model = Sequential(Linear(4, 8), ReLU(), Linear(8, 3))
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    same_keys = list(model.state_dict()) == list(t_model.state_dict())
    print(f"  {'ok ' if same_keys else 'BAD'} {'state_dict keys of Sequential(Linear, ReLU, Linear)':<44} "
          f"{list(model.state_dict())}")
    big, t_big = Linear(512, 512), torch.nn.Linear(512, 512)
    same_count = big.num_parameters() == sum(p.numel() for p in t_big.parameters())
    print(f"  {'ok ' if same_count else 'BAD'} {'Linear(512, 512) parameter count':<44} {big.num_parameters():,}")
    return ok and same_keys and same_count
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


def compression_checks(torch, rng) -> bool:
    """Kata 16 against torch.nn.utils.prune, torch.sparse and F.kl_div, in float64, on tie-free random weights."""
    import warnings

    import torch.nn.utils.prune as prune

    functional, ok = torch.nn.functional, True

    def torch_linears(model):  # PyTorch's Linear weight is (out, in): ours transposed
        linears = [torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
                   for layer in model.layers if isinstance(layer, Linear)]
        for theirs, ours in zip(linears, [layer for layer in model.layers if isinstance(layer, Linear)]):
            with torch.no_grad():
                theirs.weight.copy_(torch.from_numpy(ours.weight.data.T.copy()))
        return linears

    model = Sequential(Linear(12, 9, rng=rng), ReLU(), Linear(9, 5, rng=rng))
    for layer in (model[0], model[2]):
        layer.weight.data = layer.weight.data.astype(np.float64) * rng.uniform(0.1, 3.0)  # layers of different scale
    for amount in (0.37, 0.5, 0.9):
        ours = magnitude_masks(model, amount, "layer")
        linears = torch_linears(model)
        for linear in linears:
            prune.l1_unstructured(linear, "weight", amount=amount)
        ok &= all([same(f"l1_unstructured, amount {amount}: mask of {name}", ours[name].T.astype(float),
                        linear.weight_mask.numpy()) for name, linear in zip(("0.weight", "2.weight"), linears)])
        ours = magnitude_masks(model, amount, "global")
        linears = torch_linears(model)
        prune.global_unstructured([(linear, "weight") for linear in linears], prune.L1Unstructured, amount=amount)
        ok &= all([same(f"global_unstructured, amount {amount}: mask of {name}", ours[name].T.astype(float),
                        linear.weight_mask.numpy()) for name, linear in zip(("0.weight", "2.weight"), linears)])
    for amount in (0.3, 0.5):
        linear = torch_linears(model)[0]
        prune.ln_structured(linear, "weight", amount=amount, n=1, dim=0)  # zeroes whole rows (units) of (out, in)
        kept = np.flatnonzero(linear.weight_mask.numpy().any(axis=1))
        ok &= same(f"ln_structured(n=1), amount {amount}: the units kept", units_to_keep(model[0], amount), kept)

    dense = rng.standard_normal((6, 5)) * (rng.random((6, 5)) < 0.4)
    dense[[0, 3, 5]] = 0.0  # empty rows first, in the middle and last
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch calls its sparse CSR support beta
        theirs = torch.from_numpy(dense).to_sparse_csr()
    packed = CSRMatrix.from_dense(dense)
    ok &= same("CSR row pointers (crow_indices)", packed.row_pointers, theirs.crow_indices().numpy())
    ok &= same("CSR column indices (col_indices)", packed.column_indices, theirs.col_indices().numpy())
    ok &= same("CSR values", packed.values, theirs.values().numpy())
    x = rng.standard_normal((5, 3))
    ok &= same("CSR matmul vs torch.sparse.mm", packed.matmul(x), torch.sparse.mm(theirs, torch.from_numpy(x)).numpy())

    weight = rng.standard_normal((7, 5))
    layer = Linear(7, 5, rng=rng)
    layer.weight.data = weight
    u, s, vh = torch.linalg.svd(torch.from_numpy(weight), full_matrices=False)
    for rank in (1, 3):
        factors = low_rank(layer, rank=rank)
        ok &= same(f"low_rank, rank {rank}: the product of the factors", factors[0].weight.data @ factors[1].weight.data,
                   (u[:, :rank] * s[:rank] @ vh[:rank]).numpy(), tolerance=1e-10)

    student, teacher = rng.standard_normal((6, 4)) * 3, rng.standard_normal((6, 4)) * 3
    targets = rng.integers(0, 4, size=6)
    for temperature in (1.0, 2.5, 6.0):
        for alpha in (1.0, 0.3):
            mine = Tensor(student.copy(), dtype=np.float64, requires_grad=True)
            t_student = torch.tensor(student, requires_grad=True)
            out = distillation_loss(mine, teacher, targets, temperature=temperature, alpha=alpha)
            soft = temperature ** 2 * functional.kl_div(functional.log_softmax(t_student / temperature, dim=1),
                                                        functional.log_softmax(torch.from_numpy(teacher) / temperature, dim=1),
                                                        reduction="batchmean", log_target=True)
            t_out = alpha * soft + (1 - alpha) * functional.cross_entropy(t_student, torch.from_numpy(targets))
            upstream = rng.standard_normal()
            out.backward(np.array(upstream))
            t_out.backward(torch.tensor(upstream, dtype=torch.float64))
            ok &= same(f"distillation_loss T={temperature} alpha={alpha}: value vs T^2 kl_div", out.data,
                       t_out.detach().numpy())
            ok &= same(f"distillation_loss T={temperature} alpha={alpha}: gradient", mine.grad, t_student.grad.numpy())
    alone = distillation_kl(Tensor(student, dtype=np.float64), teacher, 2.0)
    reverse = 4.0 * functional.kl_div(functional.log_softmax(torch.from_numpy(teacher) / 2, dim=1),
                                      functional.log_softmax(torch.from_numpy(student) / 2, dim=1),
                                      reduction="batchmean", log_target=True)
    direction = not np.isclose(float(alone.data), float(reverse))
    print(f"  {'ok ' if direction else 'BAD'} {'distillation_kl is not KL(student || teacher)':<44}")
    return ok and direction


def torch_parameters(torch, module) -> dict:
    """{dotted name: a PyTorch leaf tensor holding a copy of that parameter}; our Linear weights are (in, out) as well."""
    return {name: torch.from_numpy(p.data.copy()).requires_grad_(True) for name, p in module.named_parameters()}


def torch_block(torch, params: dict, prefix: str, x, heads: int):
    """Our pre-norm Block written with PyTorch's functional ops: x + attn(ln1(x)), then x + mlp(ln2(x))."""
    functional = torch.nn.functional
    batch, length, dim = x.shape
    p = {name[len(prefix):]: value for name, value in params.items() if name.startswith(prefix)}
    h = functional.layer_norm(x, (dim,), p["ln1.weight"], p["ln1.bias"], 1e-5)
    qkv = h @ p["attn.qkv_proj.weight"] + p["attn.qkv_proj.bias"]
    q, k, v = (part.view(batch, length, heads, dim // heads).transpose(1, 2) for part in qkv.split(dim, dim=-1))
    attended = functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(x.shape)
    x = x + attended @ p["attn.out_proj.weight"] + p["attn.out_proj.bias"]
    h = functional.layer_norm(x, (dim,), p["ln2.weight"], p["ln2.bias"], 1e-5)
    hidden = functional.gelu(h @ p["mlp.fc.weight"] + p["mlp.fc.bias"], approximate="tanh")
    return x + hidden @ p["mlp.proj.weight"] + p["mlp.proj.bias"]


def torch_gpt(torch, params: dict, config: GPTConfig, ids):
    """Our GPT (learned positions, untied head) with PyTorch's ops: logits (B, T, V)."""
    functional = torch.nn.functional
    x = params["embed.token.weight"][ids] + params["embed.position.weight"][:ids.shape[1]]
    for index in range(config.n_layer):
        x = torch_block(torch, params, f"blocks.{index}.", x, config.n_head)
    x = functional.layer_norm(x, (config.n_embd,), params["ln_f.weight"], params["ln_f.bias"], 1e-5)
    return x @ params["lm_head.weight"]


def transformer_workloads(torch, rng):
    """LayerNorm, a pre-norm Block and a GPT training step against the same computations in PyTorch."""
    functional = torch.nn.functional
    found = []

    x = rng.standard_normal((8, 512, 768), dtype=np.float32) * 3 + 1
    grad = rng.standard_normal(x.shape, dtype=np.float32)
    norm = LayerNorm(768)
    norm.weight.data[...] = rng.standard_normal(768, dtype=np.float32)
    norm.bias.data[...] = rng.standard_normal(768, dtype=np.float32)
    t_norm = torch_parameters(torch, norm)

    def ours_norm():
        norm.zero_grad()
        inputs = Tensor(x, requires_grad=True)
        out = norm(inputs)
        out.backward(grad)
        return out.data, inputs.grad, norm.weight.grad, norm.bias.grad

    def theirs_norm():
        inputs = torch.from_numpy(x).requires_grad_(True)
        for value in t_norm.values():
            value.grad = None
        out = functional.layer_norm(inputs, (768,), t_norm["weight"], t_norm["bias"], 1e-5)
        out.backward(torch.from_numpy(grad))
        return out.detach().numpy(), inputs.grad.numpy(), t_norm["weight"].grad.numpy(), t_norm["bias"].grad.numpy()

    def check_norm():
        ok = True
        for part, a, b in zip(("output", "grad x", "grad weight", "grad bias"), ours_norm(), theirs_norm()):
            ok &= close(f"layer norm: {part}", a, b, 1e-4)
        return ok
    found.append(("LayerNorm (8,512,768), fwd+bwd", ours_norm, theirs_norm, check_norm))

    block = Block(128, 4, rng=np.random.default_rng(5))
    for name, parameter in block.named_parameters():
        if parameter.ndim == 1:  # LayerNorms and biases away from 1 and 0
            parameter.data += rng.standard_normal(parameter.shape, dtype=np.float32) * 0.1
    t_block = torch_parameters(torch, block)
    x_block = rng.standard_normal((8, 128, 128), dtype=np.float32)
    grad_block = rng.standard_normal(x_block.shape, dtype=np.float32)

    def ours_block():
        block.zero_grad()
        inputs = Tensor(x_block, requires_grad=True)
        out = block(inputs)
        out.backward(grad_block)
        return out.data, inputs.grad, block.ln1.weight.grad, block.mlp.fc.weight.grad

    def theirs_block():
        for value in t_block.values():
            value.grad = None
        inputs = torch.from_numpy(x_block).requires_grad_(True)
        out = torch_block(torch, t_block, "", inputs, 4)
        out.backward(torch.from_numpy(grad_block))
        return (out.detach().numpy(), inputs.grad.numpy(), t_block["ln1.weight"].grad.numpy(),
                t_block["mlp.fc.weight"].grad.numpy())

    def check_block():
        ok = True
        for part, a, b in zip(("output", "grad x", "grad ln1.weight", "grad mlp.fc.weight"), ours_block(),
                              theirs_block()):
            ok &= close(f"pre-norm block: {part}", a, b, 1e-4)
        return ok
    found.append(("Block (8,128,128) 4 heads causal, fwd+bwd", ours_block, theirs_block, check_block))

    config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = GPT(config, rng=np.random.default_rng(6))
    t_model = torch_parameters(torch, model)
    ids = rng.integers(0, 65, size=(16, 32))
    targets = rng.integers(0, 65, size=16 * 32)
    t_ids, t_targets = torch.from_numpy(ids), torch.from_numpy(targets)
    ours_adam = Adam(model.parameters(), lr=1e-3)
    theirs_adam = torch.optim.Adam(list(t_model.values()), lr=1e-3)

    def ours_gpt_step():
        ours_adam.zero_grad()
        loss = cross_entropy(model(ids).reshape(-1, 65), targets)
        loss.backward()
        ours_adam.step()
        return loss

    def theirs_gpt_step():
        theirs_adam.zero_grad()
        loss = functional.cross_entropy(torch_gpt(torch, t_model, config, t_ids).reshape(-1, 65), t_targets)
        loss.backward()
        theirs_adam.step()
        return loss

    def check_gpt():
        ok = True
        for _ in range(3):  # three identical steps on both sides
            ok &= close("GPT training step: loss", ours_gpt_step().data, theirs_gpt_step().detach().numpy(), 1e-4)
        return ok & close("GPT training step: blocks.0.attn.qkv_proj.weight after 3 steps",
                          model.blocks[0].attn.qkv_proj.weight.data,
                          t_model["blocks.0.attn.qkv_proj.weight"].detach().numpy(), 1e-4)
    found.append(("GPT 2x64, B=16 T=32, training step (Adam)", ours_gpt_step, theirs_gpt_step, check_gpt))
    return found


def acceleration_workloads(torch, rng):
    """Kata 18's vectorised distances and fused ops, and the GPT step on its fast path, against PyTorch."""
    functional = torch.nn.functional
    found = []

    x, y = rng.standard_normal((512, 64), dtype=np.float32), rng.standard_normal((1024, 64), dtype=np.float32)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    found.append(("squared distances (512,64) x (1024,64)", lambda: squared_distances(x, y),
                  lambda: torch.cdist(tx, ty) ** 2,
                  lambda: close("squared distances vs cdist ** 2", squared_distances(x, y),
                                (torch.cdist(tx, ty) ** 2).numpy(), 1e-4)))

    h = rng.standard_normal((8, 128, 128), dtype=np.float32)
    w = rng.standard_normal((128, 512), dtype=np.float32) * 0.1
    b = rng.standard_normal(512, dtype=np.float32)
    grad = rng.standard_normal((8, 128, 512), dtype=np.float32)

    def ours_gelu():
        inputs = [Tensor(a, requires_grad=True) for a in (h, w, b)]
        out = linear_gelu(*inputs)
        out.backward(grad)
        return [out.data] + [t.grad for t in inputs]

    def theirs_gelu():
        inputs = [torch.from_numpy(a).requires_grad_(True) for a in (h, w, b)]
        out = functional.gelu(inputs[0] @ inputs[1] + inputs[2], approximate="tanh")
        out.backward(torch.from_numpy(grad))
        return [out.detach().numpy()] + [t.grad.numpy() for t in inputs]

    def check_gelu():
        ok = True
        for part, a, c in zip(("output", "grad x", "grad weight", "grad bias"), ours_gelu(), theirs_gelu()):
            ok &= close(f"linear_gelu: {part}", a, c, 1e-4)
        return ok
    found.append(("linear_gelu (8,128,128)@(128,512), fwd+bwd", ours_gelu, theirs_gelu, check_gelu))

    qkv = rng.standard_normal((8, 128, 384), dtype=np.float32)
    grad_attention = rng.standard_normal((8, 128, 128), dtype=np.float32)

    def ours_attention():
        inputs = Tensor(qkv, requires_grad=True)
        out = causal_self_attention(inputs, 4)
        out.backward(grad_attention)
        return out.data, inputs.grad

    def theirs_attention():
        inputs = torch.from_numpy(qkv).requires_grad_(True)
        q, k, v = (part.view(8, 128, 4, 32).transpose(1, 2) for part in inputs.split(128, dim=-1))
        out = functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(8, 128, 128)
        out.backward(torch.from_numpy(grad_attention))
        return out.detach().numpy(), inputs.grad.numpy()

    def check_attention():
        (out, grad_qkv), (t_out, t_grad) = ours_attention(), theirs_attention()
        return (close("causal_self_attention: output", out, t_out, 1e-4)
                & close("causal_self_attention: grad qkv", grad_qkv, t_grad, 1e-4))
    found.append(("causal_self_attention (8,128,384) 4 heads, fwd+bwd", ours_attention, theirs_attention,
                  check_attention))

    config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = GPT(config, rng=np.random.default_rng(7))
    t_model = torch_parameters(torch, model)
    ids = rng.integers(0, 65, size=(16, 32))
    targets = rng.integers(0, 65, size=16 * 32)
    t_ids, t_targets = torch.from_numpy(ids), torch.from_numpy(targets)
    ours_adam = InPlaceAdam(model.parameters(), lr=1e-3)
    theirs_adam = torch.optim.Adam(list(t_model.values()), lr=1e-3)

    def ours_fast_step():
        ours_adam.zero_grad()
        with fast_path(model):
            loss = cross_entropy(model(ids).reshape(-1, 65), targets)
            loss.backward()
        ours_adam.step()
        return loss

    def theirs_step():
        theirs_adam.zero_grad()
        loss = functional.cross_entropy(torch_gpt(torch, t_model, config, t_ids).reshape(-1, 65), t_targets)
        loss.backward()
        theirs_adam.step()
        return loss

    def check_fast_gpt():
        ok = True
        for _ in range(3):
            ok &= close("GPT fast path step: loss", ours_fast_step().data, theirs_step().detach().numpy(), 1e-4)
        return ok & close("GPT fast path: blocks.1.mlp.fc.weight after 3 steps", model.blocks[1].mlp.fc.weight.data,
                          t_model["blocks.1.mlp.fc.weight"].detach().numpy(), 1e-4)
    found.append(("GPT 2x64, B=16 T=32, fast path (InPlaceAdam)", ours_fast_step, theirs_step, check_fast_gpt))
    return found
def kv_cache_checks(torch, rng) -> bool:
    """Kata 17 (float64): decoding with a KV cache, a prefill and then one token at a time, against PyTorch's full
    forward of the same GPT; and the causal alignment a decode step needs, which PyTorch's is_causal does not give."""
    functional = torch.nn.functional
    config = GPTConfig(vocab_size=65, block_size=24, n_layer=2, n_head=4, n_embd=32)
    model = GPT(config, rng=np.random.default_rng(7))
    for parameter in model.parameters():
        parameter.data = parameter.data.astype(np.float64)
    ids = rng.integers(0, 65, size=(3, 24))
    cache = ModelCache.for_model(model, 3)
    with no_grad():
        steps = [forward_with_cache(model, ids[:, :5], cache).data]
        steps += [forward_with_cache(model, ids[:, t:t + 1], cache).data for t in range(5, 24)]
    theirs = torch_gpt(torch, torch_parameters(torch, model), config, torch.from_numpy(ids)).detach().numpy()
    ok = close("KV-cached decoding vs PyTorch's full forward", np.concatenate(steps, axis=1), theirs, 1e-10)
    q, k, v = (rng.standard_normal(shape) for shape in ((1, 2, 1, 8), (1, 2, 5, 8), (1, 2, 5, 8)))
    t_q, t_k, t_v = (torch.from_numpy(a) for a in (q, k, v))
    every_key = functional.scaled_dot_product_attention(t_q, t_k, t_v).numpy()
    ok &= close("one query after 4 cached keys, causal=True", scaled_dot_product_attention(
        Tensor(q, dtype=np.float64), Tensor(k, dtype=np.float64), Tensor(v, dtype=np.float64), causal=True).data,
        every_key, 1e-12)
    first_key_only = functional.scaled_dot_product_attention(t_q, t_k, t_v, is_causal=True).numpy()
    ok &= close("PyTorch's is_causal there: key 0 alone", first_key_only, v[:, :, :1], 1e-12)
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
    print("\nedge cases, float64 (katas 01-02):")
    ok &= all([check() for check in tensor_and_activation_edges(torch, rng)])
    print("\ngradients, float64 (katas 03 and 04):")
    ok &= gradient_checks(torch, np.random.default_rng(1))
    ok &= layer_checks(torch, np.random.default_rng(2))
    print("\nlosses and optimizers in float64, every option:")
    ok &= loss_checks(torch, np.random.default_rng(1))
    ok &= optimizer_checks(torch, np.random.default_rng(2))
    print("\nvalues at the edges, katas 07-08 (float64):")
    edges_ok, _ = training_and_data_edges(torch)
    ok &= edges_ok
    ok &= float64_options(torch, np.random.default_rng(1))
    print("\nquantization (kata 15):")
    ok &= quantization_checks(torch, np.random.default_rng(15))
    print("\ncompression against torch.nn.utils.prune, torch.sparse and F.kl_div (kata 16, float64):")
    ok &= compression_checks(torch, np.random.default_rng(3))
    print("\ncached decoding, float64 (kata 17):")
    ok &= kv_cache_checks(torch, np.random.default_rng(3))
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

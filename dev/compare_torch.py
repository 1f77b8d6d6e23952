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
from tinytorch.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention  # noqa: E402
from tinytorch.embeddings import embedding  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import cross_entropy  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
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
    found += embedding_workloads(torch, rng)
    found += attention_workloads(torch, rng)
    found += transformer_workloads(torch, rng)
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

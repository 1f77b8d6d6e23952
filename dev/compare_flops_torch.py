"""Kata 14's FLOP counts against PyTorch's FlopCounterMode, on the same shapes. Development only.

    python dev/compare_flops_torch.py

Both count 2 FLOPs per multiply-accumulate of a matrix product or convolution and
nothing for bias adds or element-wise work, so the counts must agree exactly. PyTorch
counts at the level of its ops; the reference counts modules through forward hooks. The
attention products are written out as two matmuls on the PyTorch side (its fused
scaled_dot_product_attention is not counted on every CPU backend). Skips when PyTorch
is not installed: the project never needs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import implementation  # noqa: E402

implementation.install("reference")

from tinytorch.attention import MultiHeadAttention  # noqa: E402
from tinytorch.convolutions import Conv2d  # noqa: E402
from tinytorch.layers import Linear  # noqa: E402
from tinytorch.profiling import count_flops  # noqa: E402
from tinytorch.transformer import Block  # noqa: E402


def torch_cases(torch):
    """(name, our module, input shape, a function running the same products in PyTorch)."""
    functional = torch.nn.functional
    cases = []
    for shape, bias in (((32, 784), True), ((32, 784), False), ((4, 9, 784), True)):
        layer = torch.nn.Linear(784, 10, bias=bias)
        cases.append((f"Linear(784, 10, bias={bias}) on {shape}", Linear(784, 10, bias=bias), shape,
                      lambda layer=layer, shape=shape: layer(torch.zeros(shape))))
    for channels, out, kernel, stride, padding, shape in ((3, 5, (3, 2), (2, 1), (1, 0), (2, 3, 9, 7)),
                                                          (1, 2, (3, 3), (3, 3), (2, 2), (1, 1, 10, 10)),
                                                          (8, 16, (3, 3), (2, 2), (1, 1), (4, 8, 4, 4))):
        layer = torch.nn.Conv2d(channels, out, kernel, stride=stride, padding=padding)
        cases.append((f"Conv2d({channels}, {out}, {kernel}, stride={stride}, padding={padding}) on {shape}",
                      Conv2d(channels, out, kernel, stride=stride, padding=padding), shape,
                      lambda layer=layer, shape=shape: layer(torch.zeros(shape))))

    def attention(x, dim, heads, qkv, out):
        batch, length, _ = x.shape
        q, k, v = (part.view(batch, length, heads, dim // heads).transpose(1, 2) for part in qkv(x).split(dim, -1))
        mixed = torch.softmax(q @ k.transpose(-1, -2) / (dim // heads) ** 0.5, -1) @ v  # the two T x T products
        return out(mixed.transpose(1, 2).reshape(batch, length, dim))

    for batch, length, dim in ((2, 5, 16), (1, 64, 32)):
        qkv, out = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        cases.append((f"MultiHeadAttention({dim}, 4) on {(batch, length, dim)}", MultiHeadAttention(dim, 4),
                      (batch, length, dim),
                      lambda qkv=qkv, out=out, shape=(batch, length, dim), dim=dim:
                      attention(torch.zeros(shape), dim, 4, qkv, out)))
        fc, proj = torch.nn.Linear(dim, 4 * dim), torch.nn.Linear(4 * dim, dim)

        def block(qkv=qkv, out=out, fc=fc, proj=proj, shape=(batch, length, dim), dim=dim):
            x = torch.zeros(shape)
            x = x + attention(functional.layer_norm(x, (dim,)), dim, 4, qkv, out)
            return x + proj(functional.gelu(fc(functional.layer_norm(x, (dim,)))))
        cases.append((f"Block({dim}, 4) on {(batch, length, dim)}", Block(dim, 4), (batch, length, dim), block))
    return cases


def main() -> int:
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        print("PyTorch is not installed, so there is nothing to compare with: skipped.")
        return 0
    ok = True
    for name, ours, shape, theirs in torch_cases(torch):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            theirs()
        mine, reference = count_flops(ours, shape), counter.get_total_flops()
        ok &= mine == reference
        print(f"  {'ok ' if mine == reference else 'BAD'} {name:<70} ours {mine:>12,}  PyTorch {reference:>12,}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

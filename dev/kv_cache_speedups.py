"""The table of lesson 17: cached against uncached generation of the small GPT, measured.

    python dev/kv_cache_speedups.py                  # 32 .. 512 new tokens, batches 1 and 8
    python dev/kv_cache_speedups.py --new 32 128     # only these lengths
    python dev/kv_cache_speedups.py --batch 1

For maintainers. The reference's `kv_cache.generate` (greedy) against kata 13's
`GPT.generate`, on kata 13's small GPT (2 layers, width 64, 4 heads, 65 ids; block_size
large enough that nothing is cropped), from a one-token prompt. Each time is the best of
interleaved runs on one BLAS thread, in CPU seconds of this process (time.process_time),
which a busy machine inflates far less than wall time. Both generations are checked to
give the same tokens before anything is timed.
"""

from __future__ import annotations

import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # before numpy loads its BLAS

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import implementation  # noqa: E402

implementation.install("reference")

import time  # noqa: E402

from tinytorch.kv_cache import ModelCache, generate  # noqa: E402
from tinytorch.transformer import GPT, GPTConfig  # noqa: E402


def best_cpu_seconds(functions: dict, rounds: int) -> dict:
    """Run the functions in turn, `rounds` times; the least CPU time each took."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.process_time()
            function()
            best[name] = min(best[name], time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = GPTConfig(vocab_size=65, block_size=max(args.new), n_layer=2, n_head=4, n_embd=64)
    model = GPT(config, rng=np.random.default_rng(0))
    print(f"GPT {config}, float32, greedy, one-token prompt; CPU time, best of {args.rounds} interleaved rounds\n")
    print("| B | new tokens | uncached | cached | speed-up | cache bytes |")
    print("|---|---|---|---|---|---|")
    for batch in args.batch:
        prompt = np.random.default_rng(1).integers(0, config.vocab_size, size=(batch, 1))
        for new in args.new:
            cached = generate(model, prompt, new, temperature=0)
            assert np.array_equal(cached, model.generate(prompt, new, temperature=0)), "the tokens differ"
            best = best_cpu_seconds({"cached": lambda: generate(model, prompt, new, temperature=0),
                                     "uncached": lambda: model.generate(prompt, new, temperature=0)}, args.rounds)
            cached_s, uncached_s = best["cached"], best["uncached"]
            cache_bytes = ModelCache.for_model(model, batch, max_len=new).nbytes  # prompt + new - 1 = new tokens
            print(f"| {batch} | {new} | {uncached_s * 1e3:,.1f} ms | {cached_s * 1e3:,.1f} ms | {uncached_s / cached_s:.1f}x "
                  f"| {cache_bytes:,} |", flush=True)


if __name__ == "__main__":
    main()

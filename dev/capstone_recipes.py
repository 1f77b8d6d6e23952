"""Lesson 20's table: recipes for the capstone event, each verified as a participant's would be.

    python dev/capstone_recipes.py                 # every recipe, 2 s of latency timing each
    python dev/capstone_recipes.py --seconds 5

Each recipe runs on the reference (shrink, fine_tune, export_arrays of tinytorch.capstone),
is written with export_submission, and goes through harness/capstone.py's verify, so the
numbers are the verifier's: accuracy, bytes, its latency ratio and the score. The FLOPs are
kata 14's for a batch of 32, and the fine-tuning time is wall-clock on this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import capstone as verifier  # noqa: E402  (sets one BLAS thread before numpy is imported)
from harness import implementation  # noqa: E402

implementation.install("reference")

from tinytorch import capstone  # noqa: E402

# (label, amount, fc_rank, epochs, storage)
RECIPES = [
    ("the baseline, float32", 0.0, None, 0, "float32"),
    ("float16 weights", 0.0, None, 0, "float16"),
    ("int8 weights", 0.0, None, 0, "int8"),
    ("25% of channels pruned, no fine-tuning, int8", 0.25, None, 0, "int8"),
    ("25% pruned, 2 epochs, float32", 0.25, None, 2, "float32"),
    ("25% pruned, 2 epochs, int8 (optimise's default)", 0.25, None, 2, "int8"),
    ("25% pruned, rank-5 head, 2 epochs, int8", 0.25, 5, 2, "int8"),
    ("37.5% pruned, 3 epochs, int8", 0.375, None, 3, "int8"),
    ("50% pruned, 3 epochs, int8", 0.5, None, 3, "int8"),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python dev/capstone_recipes.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="latency timing per recipe (default 2)")
    args = parser.parse_args(argv)
    baseline = capstone.load_baseline()
    x_train, x_test, y_train, y_test = capstone.event_data()
    print("| recipe | channels | accuracy | bytes | FLOPs (batch of 32) | latency ratio | score | status | fine-tuning |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for index, (label, amount, rank, epochs, storage) in enumerate(RECIPES):
            smaller = capstone.shrink(baseline, amount, rank)
            start = time.perf_counter()
            if epochs:
                capstone.fine_tune(smaller, x_train, y_train, epochs=epochs)
            seconds = time.perf_counter() - start
            arrays = capstone.export_arrays(smaller, storage)
            result = capstone.measure(arrays, baseline, x_test, y_test)
            path = capstone.export_submission(folder, f"recipe{index}", arrays, result, "Lesson", [label])
            verdict = verifier.verify(path, seconds=args.seconds)
            measured = verdict["measured"]
            named = capstone.weighted_layers(smaller)
            channels = f"{named['conv1'].out_channels}, {named['conv2'].out_channels}" + (f", r={rank}" if rank else "")
            ratio = "not timed" if measured["latency_ratio"] is None else f"{measured['latency_ratio']:.2f}"
            score = "-" if verdict["score"] is None else f"{verdict['score']:.1f}"
            print(f"| {label} | {channels} | {measured['accuracy']:.2%} ({measured['correct']}) | {measured['bytes']:,} "
                  f"| {result.flops:,} | {ratio} | {score} | {verdict['status']} | "
                  f"{f'{seconds:.2f} s' if epochs else '-'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

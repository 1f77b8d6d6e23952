"""What the milestone scripts share: choosing whose tinytorch runs, the training run, a text plot.

A milestone script imports this module first, calls `choose_implementation()` when it
runs as a program (before anything imports tinytorch), builds its data and model, and
hands them to `run`. Nothing here imports tinytorch at module level, so importing
this module never decides which implementation answers `import tinytorch.<module>`.
"""

from __future__ import annotations

import sys
import time

import numpy as np

# -- the command line ---------------------------------------------------------------------------


def choose_implementation() -> None:
    """Honour the implementation switches of the command line (harness.implementation says which)."""
    from harness import implementation

    implementation.choose_for_script(sys.argv)


def finish(main) -> None:
    """Run `main(verbose=True)` as a program: exit 0 if every target was reached, 1 if not."""
    try:
        results = main(verbose=True)
    except NotImplementedError as error:
        from harness import implementation

        raise SystemExit(implementation.not_finished_message(sys.argv[0], error)) from None
    raise SystemExit(0 if results["reached"] else 1)


def load_script(name: str):
    """Import katas/milestones/<name>.py as a module (its name starts with a digit, so `import` cannot)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"milestone_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- metrics --------------------------------------------------------------------------------------


def binary_accuracy(logits, targets) -> float:
    """The fraction of rows whose single logit has the sign of its 0/1 target (logit > 0 means 1)."""
    logits = np.asarray(getattr(logits, "data", logits)).reshape(-1)
    targets = np.asarray(getattr(targets, "data", targets)).reshape(-1)
    return float(np.mean((logits > 0) == (targets > 0.5)))


# -- the run ---------------------------------------------------------------------------------------


def run(model, loss_fn, optimizer, train_batches, eval_batches, epochs: int, metric, target: float,
        title: str, report_every: int = 1, verbose: bool = True, verdict: bool = True) -> dict:
    """Train for `epochs` epochs, measuring after each; print progress, a loss plot and a verdict.

    train_batches: a function returning one epoch's (inputs, targets) batches (called once per epoch,
                   so a shuffling loader shuffles anew). eval_batches: a list of batches to measure on.
    metric: a function of (outputs, targets) returning a batch accuracy. target: the accuracy to reach.
    verdict: print whether the target was reached (off when the caller judges the run itself).
    Returns {"loss": [...per epoch], "accuracy": [...per epoch], "final_accuracy", "train_seconds", "reached"}.
    """
    from tinytorch.training import evaluate, train_epoch

    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"{title}\n{'-' * len(title)}")
    losses, accuracies, seconds = [], [], 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        losses.append(train_epoch(model, loss_fn, optimizer, train_batches()))
        seconds += time.perf_counter() - start
        accuracies.append(evaluate(model, loss_fn, eval_batches, {"accuracy": metric})["accuracy"])
        if epoch % report_every == 0 or epoch in (1, epochs):
            say(f"epoch {epoch:4d}   train loss {losses[-1]:.4f}   accuracy {accuracies[-1]:7.2%}")
    reached = accuracies[-1] >= target
    say(f"\ntraining loss per epoch ({seconds:.2f} s of training):")
    say(text_plot(losses))
    if verdict:
        outcome = "target reached" if reached else "target NOT reached"
        say(f"\n{outcome}: final accuracy {accuracies[-1]:.2%} (target {target:.0%})")
    return {"loss": losses, "accuracy": accuracies, "final_accuracy": accuracies[-1],
            "train_seconds": seconds, "reached": reached}


# -- the plot --------------------------------------------------------------------------------------


def text_plot(values, rows: int = 10, columns: int = 50) -> str:
    """A curve as `rows` lines of text: one column per group of points, `*` at the group's mean.

    The y axis is labelled with the largest and smallest values; the x axis with the first
    and last epoch. Non-finite values (a run that diverged) are drawn as `!` on the top row.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.array_split(values, min(columns, len(values)))  # at most `columns` columns
    means = np.array([group.mean() for group in groups])
    finite = np.isfinite(means)
    low, high = (means[finite].min(), means[finite].max()) if finite.any() else (0.0, 1.0)
    span = high - low or 1.0
    # Row 0 is the top line: the highest value lands there, the lowest on the bottom line.
    levels = np.where(finite, np.round((high - np.where(finite, means, high)) / span * (rows - 1)), 0).astype(int)
    grid = [[" "] * len(means) for _ in range(rows)]
    for column, (level, ok) in enumerate(zip(levels, finite)):
        grid[level][column] = "*" if ok else "!"
    labels = [f"{high:9.4f} |"] + [" " * 9 + " |"] * (rows - 2) + [f"{low:9.4f} |"]
    lines = [label + "".join(row) for label, row in zip(labels, grid)]
    lines.append(" " * 10 + "+" + "-" * len(means))
    lines.append(" " * 11 + "epoch 1" + f"epoch {len(values)}".rjust(max(len(means) - 7, 0)))
    return "\n".join(lines)

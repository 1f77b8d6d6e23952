"""Milestone 1998: a CNN built and trained with your tinytorch reads held-out digits with fewer parameters than the MLP."""

import pytest

from katas.milestones.common import load_script


@pytest.fixture(scope="module")
def run():
    script = load_script("1998_cnn_digits")
    return script, script.main(verbose=False)


@pytest.mark.milestone
@pytest.mark.timeout(120)
def test_the_cnn_reaches_98_percent_on_digits_it_never_trained_on(run):
    """Conv-pool-conv-pool-linear trained with Adam classifies at least 98% of the 359 held-out digits."""
    script, results = run
    assert results["final_accuracy"] >= script.TARGET, (
        f"test accuracy {results['final_accuracy']:.2%} after {script.EPOCHS} epochs, below {script.TARGET:.0%}; "
        "run `python katas/milestones/1998_cnn_digits.py` to see the loss per epoch")


@pytest.mark.milestone
@pytest.mark.timeout(120)
def test_the_cnn_has_fewer_parameters_than_the_mlp(run):
    """The CNN learns fewer parameters (6,090) than the 1986 milestone's 64-128-10 MLP (9,610)."""
    _, results = run
    assert results["parameters"] < results["mlp_parameters"], (
        f"the CNN has {results['parameters']:,} parameters and the MLP {results['mlp_parameters']:,}; "
        "Conv2d's weight is (out, in, kh, kw) and its bias (out,): check num_parameters() and the layers' shapes")


@pytest.mark.milestone
@pytest.mark.timeout(120)
def test_the_filters_learned(run):
    """Each conv layer's weights move by at least 20% of their initial norm: the filters learned, not just the head."""
    script, results = run
    changes = results["filter_change"]
    assert len(changes) == 2 and min(changes) >= script.MIN_FILTER_CHANGE, (
        f"the conv layers' weights moved by {', '.join(f'{c:.1%}' for c in changes)} of their initial norm, "
        f"expected at least {script.MIN_FILTER_CHANGE:.0%} each; a conv2d backward rule that returns no or a zero "
        "weight gradient leaves the filters where they started (gradcheck it in kata 09)")


@pytest.mark.milestone
@pytest.mark.timeout(120)
def test_training_takes_under_a_minute(run):
    """The 20 epochs of training take under 60 s (the reference needs a few seconds)."""
    script, results = run
    assert results["train_seconds"] < script.SECONDS, (
        f"training took {results['train_seconds']:.1f} s, over {script.SECONDS:.0f} s; profile one epoch: a Python "
        "loop over images or pixels in conv2d, im2col or pooling is the usual cause")

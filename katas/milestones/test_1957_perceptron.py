"""Milestone 1957: one Linear layer, trained by your tinytorch, separates two clouds of points."""

import pytest

from katas.milestones.common import load_script


@pytest.mark.milestone
def test_a_single_linear_layer_classifies_separable_points_perfectly():
    """Linear(2, 1) with BCEWithLogitsLoss and SGD gets every one of 200 separable points right."""
    script = load_script("1957_perceptron")
    results = script.main(verbose=False)
    assert results["final_accuracy"] == 1.0, (
        f"after {script.EPOCHS} epochs the perceptron gets {results['final_accuracy']:.1%} of the points right, "
        "not 100%; run `python katas/milestones/1957_perceptron.py` to watch the loss")

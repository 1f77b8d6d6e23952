"""Milestone 1969: XOR defeats a single layer, and one hidden layer solves it, in your tinytorch."""

import pytest

from katas.milestones.common import load_script


@pytest.fixture(scope="module")
def runs():
    return load_script("1969_xor").main(verbose=False)


@pytest.mark.milestone
def test_a_single_layer_gets_at_most_three_of_four_points(runs):
    """Linear(2, 1) trained on XOR ends at or under 75%: no straight line separates the classes."""
    accuracy = runs["single_accuracy"]
    assert accuracy <= 0.75, (
        f"a single Linear(2, 1) got {accuracy:.0%} of XOR right, more than any straight line can; "
        "check that the accuracy compares the logit's sign with the 0/1 target")


@pytest.mark.milestone
def test_one_hidden_layer_gets_all_four_points(runs):
    """Linear(2, 8) -> Tanh -> Linear(8, 1) trained on XOR ends at 100%."""
    accuracy = runs["final_accuracy"]
    assert accuracy == 1.0, (
        f"with one hidden layer XOR should be solved, but it ends at {accuracy:.0%}; "
        "run `python katas/milestones/1969_xor.py` to watch the loss (is Tanh's gradient right? does Adam step?)")

"""Milestone 2017: a GPT built and trained with your tinytorch reverses digits and models English text."""

import pytest

from katas.milestones.common import load_script


@pytest.fixture(scope="module")
def run():
    script = load_script("2017_transformer")
    return script, script.main(verbose=False, quick=True)


@pytest.mark.milestone
@pytest.mark.timeout(180)
def test_the_gpt_reverses_99_percent_of_held_out_digit_sequences(run):
    """A 2-layer GPT trained on fresh random sequences reverses at least 99% of 1,000 held-out ones exactly, decoding greedily."""
    script, results = run
    accuracy = results["sequence"]["accuracy"]
    assert accuracy >= script.SEQUENCE_TARGET, (
        f"{accuracy:.2%} of the held-out sequences reversed exactly, below {script.SEQUENCE_TARGET:.0%}; run "
        "`python katas/milestones/2017_transformer.py` to watch the loss (is the model causal? does generate feed "
        "each token back?)")


@pytest.mark.milestone
@pytest.mark.timeout(180)
def test_the_character_gpt_beats_the_bigram_model_on_held_out_text(run):
    """A character-level GPT's validation loss on the last 10% of the text is at least 0.2 nats below a bigram model's."""
    script, results = run
    text = results["text"]
    assert text["validation_loss"] <= text["bigram_loss"] - script.MARGIN_NATS, (
        f"validation loss {text['validation_loss']:.3f} nats per character; the bigram model's is "
        f"{text['bigram_loss']:.3f}, and the target is at least {script.MARGIN_NATS} below it. Run "
        "`python katas/milestones/2017_transformer.py` to watch the validation loss and the samples")

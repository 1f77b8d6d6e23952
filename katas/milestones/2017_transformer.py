"""2017 · Attention is all you need: a GPT you built learns a sequence task and writes English.

Vaswani et al. (2017) replaced recurrence with attention; a year later GPT stacked the
decoder half of their Transformer into a language model. Here every part is yours:
the tokenizer (kata 10), the embeddings (11), attention (12), the GPT and its sampling
(13), trained with your losses, Adam and learning-rate schedule (05-07). Two parts,
each measured on data the model never trains on:

1. **Reversing digits.** Sequences of 8 random digits, made on the fly from a seed. The
   model reads "d1 .. d8 |" and must write the digits backwards, one token at a time,
   decoding greedily with the causal model. Target: at least 99% of 1,000 held-out
   sequences exactly right (none of them ever appears in training).
2. **A character-level GPT on Pride and Prejudice.** The first 90% of Volume I (231 KB,
   shipped in katas/data/) trains it; the last 10% measures it. Target: a validation
   loss clearly below (at least 0.2 nats per character below) a bigram model's, counted
   from the same training text. Samples are printed as it trains.

    python katas/milestones/2017_transformer.py                    # your tinytorch

Each part takes well under a minute with the reference. The lesson is
katas/milestones/README.md, section '2017: a transformer, end to end'.
"""

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])  # the repository root: `harness` and `katas` live there
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from katas.milestones import common  # noqa: E402

if __name__ == "__main__":
    common.choose_implementation()  # before the first tinytorch import

import numpy as np  # noqa: E402

from tinytorch.autograd import no_grad  # noqa: E402
from tinytorch.losses import cross_entropy  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
from tinytorch.tokenization import CharTokenizer, load_text  # noqa: E402
from tinytorch.training import clip_grad_norm, warmup_cosine_lr  # noqa: E402
from tinytorch.transformer import GPT, GPTConfig  # noqa: E402

SEQUENCE_TARGET = 0.99  # exact-sequence accuracy on held-out sequences
MARGIN_NATS = 0.2  # the GPT's validation loss must be at least this far below the bigram model's
DIGITS = 8
SEPARATOR = 10  # the token between the digits and their reversal; digits are tokens 0..9
HELD_OUT = 1_000
PROGRESS_SAMPLE = 200  # held-out sequences decoded for the progress lines; the verdict decodes all of them
VALIDATION_FRACTION = 0.1
BIGRAM_SMOOTHING = 0.1  # add-k: every pair is counted 0.1 times more than it was seen
SAMPLE_PROMPT = "Elizabeth"


@dataclass
class Run:
    """One training run's shape: the model, the batches, the steps and the learning rate."""

    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    batch_size: int
    steps: int
    lr: float
    warmup: int
    report_every: int


# The script's runs, and the shorter ones the milestone's test uses (the same targets).
REVERSAL = Run(n_layer=2, n_embd=48, n_head=4, block_size=2 * DIGITS, batch_size=64, steps=80, lr=3e-3,
               warmup=10, report_every=10)
REVERSAL_QUICK = Run(n_layer=2, n_embd=32, n_head=4, block_size=2 * DIGITS, batch_size=64, steps=80, lr=3e-3,
                     warmup=10, report_every=80)
TEXT = Run(n_layer=2, n_embd=48, n_head=4, block_size=32, batch_size=32, steps=450, lr=1e-2, warmup=20,
           report_every=50)
TEXT_QUICK = Run(n_layer=1, n_embd=48, n_head=4, block_size=32, batch_size=32, steps=300, lr=1e-2, warmup=20,
                 report_every=50)


def make_model(run: Run, vocab_size: int, seed: int) -> GPT:
    config = GPTConfig(vocab_size=vocab_size, block_size=run.block_size, n_layer=run.n_layer, n_head=run.n_head,
                       n_embd=run.n_embd)
    return GPT(config, rng=np.random.default_rng(seed))


def train_step(model: GPT, optimizer: Adam, run: Run, step: int, loss_fn) -> float:
    """One update: the learning rate for this step, forward, loss, backward, clipping, step."""
    optimizer.lr = warmup_cosine_lr(step, run.lr, run.warmup, run.steps, min_lr=run.lr / 10)
    optimizer.zero_grad()
    loss = loss_fn()
    loss.backward()
    clip_grad_norm(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.data)


def step_plot(losses) -> str:
    """common.text_plot of the loss, its x axis counted in steps rather than epochs."""
    lines = common.text_plot(losses).splitlines()
    width = len(lines[-2]) - 10
    lines[-1] = " " * 11 + "step 1" + f"step {len(losses)}".rjust(max(width - 6, 0))
    return "\n".join(lines)


# -- part 1: reversing digits ----------------------------------------------------------------------------


def digit_sequences(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 2 DIGITS + 1) token rows: DIGITS random digits, the separator, the digits reversed."""
    digits = rng.integers(0, 10, size=(count, DIGITS))
    return np.concatenate([digits, np.full((count, 1), SEPARATOR), digits[:, ::-1]], axis=1)


def as_numbers(sequences: np.ndarray) -> np.ndarray:
    """Each row's first DIGITS digits read as one integer: how held-out sequences are recognised."""
    return sequences[:, :DIGITS] @ (10 ** np.arange(DIGITS - 1, -1, -1))


def reversal_accuracy(model: GPT, sequences: np.ndarray) -> float:
    """The fraction of rows whose reversal the model writes exactly, greedily, one token at a time."""
    written = model.generate(sequences[:, :DIGITS + 1], DIGITS, temperature=0)  # (N, 2 DIGITS + 1)
    return float(np.mean(np.all(written[:, DIGITS + 1:] == sequences[:, DIGITS + 1:], axis=1)))


def reverse_digits(run: Run, verbose: bool) -> dict:
    """Train on fresh random sequences every step (none from the held-out set); measure on the held-out set."""
    say = print if verbose else (lambda *args, **kwargs: None)
    held_out = digit_sequences(np.random.default_rng(2017), HELD_OUT)
    held_out_numbers = as_numbers(held_out)
    model = make_model(run, vocab_size=11, seed=17)
    optimizer = Adam(model.parameters(), lr=run.lr)
    rng = np.random.default_rng(1706)  # the training stream
    title = (f"2017 · part 1: reversing {DIGITS} digits, a GPT of {run.n_layer} layers, width {run.n_embd} "
             f"({model.num_parameters():,} parameters)")
    say(f"{title}\n{'-' * len(title)}")

    def loss_on(batch: np.ndarray):
        logits = model(batch[:, :-1])  # (B, 2 DIGITS, 11): position t predicts token t + 1
        answer = logits[:, DIGITS:, :]  # (B, DIGITS, 11): the predictions of the reversed digits only
        return cross_entropy(answer.reshape(-1, 11), batch[:, DIGITS + 1:].reshape(-1))

    losses, seconds, seen = [], 0.0, 0
    for step in range(run.steps):
        batch = digit_sequences(rng, run.batch_size)
        batch = batch[~np.isin(as_numbers(batch), held_out_numbers)]  # never train on a held-out sequence
        seen += len(batch)
        start = time.perf_counter()
        losses.append(train_step(model, optimizer, run, step, lambda: loss_on(batch)))
        seconds += time.perf_counter() - start
        if verbose and (step + 1) % run.report_every == 0:
            progress = reversal_accuracy(model, held_out[:PROGRESS_SAMPLE])
            say(f"step {step + 1:4d}   loss {losses[-1]:.4f}   exactly right: {progress:7.2%} of the first "
                f"{PROGRESS_SAMPLE} held-out sequences")
    accuracy = reversal_accuracy(model, held_out)
    example = held_out[:1]
    written = model.generate(example[:, :DIGITS + 1], DIGITS, temperature=0)[0]
    say(f"\nloss per step ({seconds:.1f} s of training on {seen:,} sequences):")
    say(step_plot(losses))
    say(f"\nfor example: {' '.join(map(str, example[0, :DIGITS]))} | -> "
        f"{' '.join(map(str, written[DIGITS + 1:]))}")
    reached = accuracy >= SEQUENCE_TARGET
    say(f"{'target reached' if reached else 'target NOT reached'}: {accuracy:.2%} of {HELD_OUT:,} held-out "
        f"sequences reversed exactly (target {SEQUENCE_TARGET:.0%})")
    return {"accuracy": accuracy, "loss": losses, "train_seconds": seconds, "reached": reached}


# -- part 2: a character-level GPT on Pride and Prejudice ---------------------------------------------------


def bigram_loss(train: np.ndarray, inputs: np.ndarray, targets: np.ndarray, vocab_size: int) -> float:
    """Mean -ln P(target | input) of a bigram model counted from `train`, with add-k smoothing, in nats."""
    counts = np.full((vocab_size, vocab_size), BIGRAM_SMOOTHING)
    np.add.at(counts, (train[:-1], train[1:]), 1)  # counts[a, b]: how often b followed a
    probs = counts / counts.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(probs[inputs, targets])))


def windows(ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every whole, non-overlapping window of `length` inputs, with its targets (the next ids)."""
    count = (len(ids) - 1) // length
    inputs = ids[:count * length].reshape(count, length)
    targets = ids[1:count * length + 1].reshape(count, length)
    return inputs, targets


def gpt_loss(model: GPT, inputs: np.ndarray, targets: np.ndarray, batch_size: int = 128) -> float:
    """The model's mean cross-entropy over every (input, target) pair, in nats, without a graph."""
    total = 0.0
    with no_grad():
        for start in range(0, len(inputs), batch_size):
            x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
            logits = model(x)  # (b, T, V)
            total += float(cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).data) * y.size
    return total / targets.size


def sample(model: GPT, tokenizer: CharTokenizer, length: int, seed: int) -> str:
    prompt = tokenizer.encode(SAMPLE_PROMPT)
    ids = model.generate(prompt, length, temperature=0.8, top_k=10, seed=seed)
    return tokenizer.decode(ids.tolist())


def bits(nats: float) -> float:
    return nats / math.log(2)


def char_gpt(run: Run, verbose: bool) -> dict:
    """Train on the first 90% of the text, measure on the rest; compare with a bigram model of the same text."""
    say = print if verbose else (lambda *args, **kwargs: None)
    text = load_text()
    tokenizer = CharTokenizer(text)
    vocab = tokenizer.vocab_size
    ids = np.array(tokenizer.encode(text), dtype=np.int64)
    split = int(len(ids) * (1 - VALIDATION_FRACTION))
    train, validation = ids[:split], ids[split:]
    val_inputs, val_targets = windows(validation, run.block_size)
    bigram = bigram_loss(train, val_inputs.reshape(-1), val_targets.reshape(-1), vocab)
    target = bigram - MARGIN_NATS
    model = make_model(run, vocab_size=vocab, seed=1813)
    optimizer = Adam(model.parameters(), lr=run.lr)
    rng = np.random.default_rng(1797)  # which windows of the training text each batch reads
    title = (f"2017 · part 2: a character-level GPT of {run.n_layer} layer(s), width {run.n_embd} "
             f"({model.num_parameters():,} parameters) on Pride and Prejudice")
    say(f"{title}\n{'-' * len(title)}")
    say(f"{len(train):,} characters to train on, {val_targets.size:,} held out; {vocab} distinct characters")
    say(f"uniform guess: {math.log(vocab):.3f} nats = {bits(math.log(vocab)):.2f} bits per character; "
        f"bigram model: {bigram:.3f} nats = {bits(bigram):.2f} bits; target: {target:.3f} nats or less\n")
    offsets = np.arange(run.block_size + 1)

    def loss_on(starts: np.ndarray):
        chunk = train[starts[:, None] + offsets]  # (B, T + 1)
        logits = model(chunk[:, :-1])  # (B, T, V)
        return cross_entropy(logits.reshape(-1, vocab), chunk[:, 1:].reshape(-1))

    losses, history, seconds = [], [], 0.0
    for step in range(run.steps):
        starts = rng.integers(0, len(train) - run.block_size - 1, size=run.batch_size)
        start = time.perf_counter()
        losses.append(train_step(model, optimizer, run, step, lambda: loss_on(starts)))
        seconds += time.perf_counter() - start
        if (verbose and (step + 1) % run.report_every == 0) or step + 1 == run.steps:
            history.append((step + 1, gpt_loss(model, val_inputs, val_targets)))
            say(f"step {step + 1:4d}   train loss {losses[-1]:.3f}   validation {history[-1][1]:.3f} nats "
                f"= {bits(history[-1][1]):.2f} bits per character")
            if verbose and (step + 1) % (2 * run.report_every) == 0:
                say("    " + sample(model, tokenizer, 80, seed=step).replace("\n", "\n    "))
    validation_loss = history[-1][1]
    say(f"\ntraining loss per step ({seconds:.1f} s of training):")
    say(step_plot(losses))
    say(f"\na sample of 300 characters (temperature 0.8, top-k 10):\n{sample(model, tokenizer, 300, seed=2017)}\n")
    reached = validation_loss <= target
    say(f"validation loss {validation_loss:.3f} nats = {bits(validation_loss):.2f} bits per character; bigram "
        f"{bigram:.3f} nats = {bits(bigram):.2f} bits; {bigram - validation_loss:.3f} nats below it "
        f"(target: at least {MARGIN_NATS})")
    say(f"{'target reached' if reached else 'target NOT reached'}")
    return {"validation_loss": validation_loss, "bigram_loss": bigram, "history": history, "loss": losses,
            "train_seconds": seconds, "reached": reached}


def main(verbose: bool = True, quick: bool = False) -> dict:
    """Both parts; `quick` runs the smaller models the milestone's test uses (the same targets)."""
    say = print if verbose else (lambda *args, **kwargs: None)
    started = time.perf_counter()
    sequence = reverse_digits(REVERSAL_QUICK if quick else REVERSAL, verbose)
    sequence_seconds = time.perf_counter() - started
    say("")
    text = char_gpt(TEXT_QUICK if quick else TEXT, verbose)
    text_seconds = time.perf_counter() - started - sequence_seconds
    reached = sequence["reached"] and text["reached"]
    say(f"\npart 1: {sequence['accuracy']:.2%} of held-out reversals exactly right ({sequence_seconds:.0f} s); "
        f"part 2: validation {text['validation_loss']:.3f} nats vs bigram {text['bigram_loss']:.3f} "
        f"({text_seconds:.0f} s)")
    say("milestone reached" if reached else "milestone NOT reached")
    return {"sequence": sequence, "text": text, "sequence_seconds": sequence_seconds, "text_seconds": text_seconds,
            "final_accuracy": sequence["accuracy"], "reached": reached}


if __name__ == "__main__":
    common.finish(main)

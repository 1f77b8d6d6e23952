"""2018 · MLPerf-style: your benchmark harness measures your models, fast ones and small ones, honestly.

MLPerf (2018) set the rules by which the industry measures machine-learning systems:
a model must first reach its accuracy target, then it is timed by fixed rules (a
minimum number of queries and a minimum duration), and the result names the machine.
Here your benchmark harness (kata 19) measures the models your framework trained and
the faster or smaller versions you made of them:

- the 1986 MLP and the 1998 CNN on the digits, in float32 (the baselines);
- the same networks in int8 (kata 15), and the MLP with three quarters of its hidden
  units removed and fine-tuned (kata 16);
- a GPT that continues a pattern of digits for 120 tokens, without and with a KV
  cache (kata 17).

For each model, as the table is printed: the accuracy first (a model below its target
is reported, never timed), then its outputs checked against its baseline's (within
what its technique allows), then single-stream latency (median and p90) and offline
throughput, and the bytes of every array it keeps, measured. Then each optimised model
is compared with its baseline: bytes, and a speed-up with its 95% interval.

    python katas/milestones/2018_mlperf.py                    # your tinytorch, scaled-down rules
    python katas/milestones/2018_mlperf.py --full             # MLPerf's own minimums: about 5 minutes
    python katas/milestones/2018_mlperf.py --json=bench.json  # also write the harness's JSON report

The default rules are MLPerf's scaled down: single-stream runs of at least 100 queries
and 1 s, offline runs of at least 5 batches and 1 s. --full asks for MLPerf's
minimums: 1,024 queries (MLPerf Inference) and 10 s (MLPerf Tiny) for every
single-stream run, 10 s for every offline run. Numpy's BLAS gets one thread unless you
set OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) yourself. The lesson is
katas/milestones/README.md, section '2018: benchmarking, MLPerf-style'.
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # before numpy starts its BLAS: one thread, steadier latencies

ROOT = str(Path(__file__).resolve().parents[2])  # the repository root: `harness` and `katas` live there
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from katas.milestones import common  # noqa: E402

OPTIONS = {"--full": False, "--json": None}  # this script's own options, read before the implementation's
if __name__ == "__main__":
    for argument in list(sys.argv[1:]):
        if argument == "--full":
            OPTIONS["--full"] = True
            sys.argv.remove(argument)
        elif argument.startswith("--json="):
            OPTIONS["--json"] = argument.split("=", 1)[1]
            sys.argv.remove(argument)
        elif argument in ("-h", "--help"):
            print("options: --full (MLPerf's minimum query count and duration), --json=PATH (the JSON report)")
    common.choose_implementation()  # before the first tinytorch import

import types  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402

from tinytorch.activations import ReLU  # noqa: E402
from tinytorch.autograd import no_grad  # noqa: E402
from tinytorch.benchmarking import compare, environment, interleaved, offline, single_stream, to_json  # noqa: E402
from tinytorch.compression import prune_structured  # noqa: E402
from tinytorch.dataloader import DataLoader, TensorDataset, load_digits, train_test_split  # noqa: E402
from tinytorch.kv_cache import ModelCache, forward_with_cache  # noqa: E402
from tinytorch.kv_cache import generate as cached_generate  # noqa: E402
from tinytorch.layers import Linear, Sequential  # noqa: E402
from tinytorch.losses import CrossEntropyLoss, cross_entropy  # noqa: E402
from tinytorch.optimizers import Adam  # noqa: E402
from tinytorch.quantization import quantize_model  # noqa: E402
from tinytorch.training import accuracy, clip_grad_norm, warmup_cosine_lr  # noqa: E402
from tinytorch.transformer import GPT, GPTConfig  # noqa: E402

# The quality an optimised model must keep: 99% of its baseline's, MLPerf Inference's closed-division rule.
KEEP_FRACTION = 0.99
INT8_MIN_REDUCTION = 3.0  # int8 must keep a model in at most a third of its float32 bytes
PRUNE_AMOUNT = 0.75  # the fraction of the MLP's hidden units removed
PRUNE_EPOCHS, PRUNE_LEARNING_RATE = 2, 3e-3  # the fine-tuning that follows

# The GPT's task: a prompt of PATTERN random digits; the model writes NEW more, each the digit PATTERN places back.
PATTERN = 8
NEW = 120
LENGTH = PATTERN + NEW  # 128 tokens: the GPT's block_size
GPT_TARGET = 0.99  # of the held-out prompts continued exactly, all NEW tokens right
HELD_OUT = 200
OFFLINE_PROMPTS = 8  # the offline scenario's batch of prompts
CHECKED_PROMPTS = 4  # prompts whose cached generation is compared token by token with the uncached one
GPT_STEPS, GPT_BATCH, GPT_LEARNING_RATE, GPT_WARMUP = 100, 12, 5e-3, 10


@dataclass(frozen=True)
class Rules:
    """How long each measurement runs: MLPerf's rules, or a scaled-down version of them."""

    name: str
    warmup: int  # untimed calls before each run
    min_count: int  # single-stream: at least this many queries ...
    min_seconds: float  # ... and at least this many seconds
    offline_min_count: int  # offline: at least this many batches ...
    offline_min_seconds: float  # ... and seconds
    pairs: int  # interleaved (baseline, candidate) pairs behind each speed-up
    generation_pairs: int  # the same for the GPT, whose queries take a tenth of a second or more


FULL = Rules("MLPerf's own minimums", warmup=10, min_count=1024, min_seconds=10.0, offline_min_count=5,
             offline_min_seconds=10.0, pairs=1024, generation_pairs=100)
SCALED = Rules("scaled down", warmup=10, min_count=100, min_seconds=1.0, offline_min_count=5, offline_min_seconds=1.0,
               pairs=200, generation_pairs=20)
QUICK = Rules("the test's (quick)", warmup=1, min_count=10, min_seconds=0.05, offline_min_count=2,
              offline_min_seconds=0.01, pairs=30, generation_pairs=8)


# -- what a model keeps ----------------------------------------------------------------------------------


def kept_bytes(*objects) -> int:
    """The bytes of every numpy array reachable from `objects`, each array's memory counted once.

    The walk follows attributes, lists, tuples, sets and dict values, so it finds a layer's
    weights, a quantized layer's int8 values and scales, a cache's arrays, and anything else
    a model holds on to, whatever it is called. A view counts the array whose memory it
    shows (that memory is kept alive). Modules of Python itself, classes and functions are
    not followed.
    """
    seen, owners, total = set(), set(), 0
    stack = list(objects)
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            owner = item
            while isinstance(owner.base, np.ndarray):
                owner = owner.base
            if id(owner) not in owners:
                owners.add(id(owner))
                total += owner.nbytes
        elif id(item) in seen or isinstance(item, (type, types.ModuleType, types.FunctionType, types.MethodType)):
            continue
        elif isinstance(item, dict):
            seen.add(id(item))
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            seen.add(id(item))
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            seen.add(id(item))
            stack.extend(vars(item).values())
    return total


# -- checking an optimised model against its baseline ------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """What an optimised model's outputs may differ by from its baseline's, for its technique.

    agreement: the fraction of outputs whose prediction (top-1 class, or the whole generated
    sequence) must be the baseline's. logits: the largest |difference| of any logit allowed,
    as a fraction of the baseline's largest |logit|; None when the technique changes the
    logits freely (fine-tuning retrains them).
    """

    agreement: float
    logits: float | None
    why: str


INT8 = Tolerance(0.99, 0.03, "int8 rounds every weight and input to 1 of 256 levels: the same class for 99% of "
                             "the images, no logit moved by more than 3% of the largest")
PRUNED = Tolerance(0.97, None, "pruning removes units and fine-tuning moves the rest: the same class for 97% of "
                               "the images")
CACHED = Tolerance(1.0, 1e-4, "a cache changes no arithmetic, only the order of sums: every token the same, every "
                              "logit within float32 rounding (1e-4 of the largest)")


@dataclass(frozen=True)
class Check:
    """How an optimised model's outputs compared with its baseline's."""

    agreement: float  # the fraction of predictions that are the baseline's
    logit_change: float  # the largest |logit difference| over the baseline's largest |logit|
    tolerance: Tolerance

    @property
    def passed(self) -> bool:
        bound = self.tolerance.logits
        return self.agreement >= self.tolerance.agreement and (bound is None or self.logit_change <= bound)

    def __str__(self) -> str:
        return f"same {self.agreement:.1%}, |Δ| {self.logit_change:.2g}{'' if self.passed else ' DIFFERS'}"


def check_outputs(baseline: tuple, candidate: tuple, tolerance: Tolerance) -> Check:
    """Compare (predictions, logits) of a candidate with its baseline's: the same inputs, the same shapes."""
    base_predictions, base_logits = (np.asarray(part) for part in baseline)
    predictions, logits = (np.asarray(part) for part in candidate)
    if predictions.shape != base_predictions.shape or logits.shape != base_logits.shape:
        raise ValueError(f"check_outputs: the candidate gave predictions {predictions.shape} and logits "
                         f"{logits.shape}; its baseline {base_predictions.shape} and {base_logits.shape}")
    same = predictions == base_predictions  # (N,) or (N, tokens): one prediction per item
    agreement = float(np.mean(same.reshape(len(same), -1).all(axis=1)))
    change = float(np.abs(logits - base_logits).max() / np.abs(base_logits).max())
    return Check(agreement, change, tolerance)


# -- the entries and their rows ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One model to benchmark, and everything the benchmark needs to know about it."""

    name: str
    technique: str
    predict: object  # one query -> its answer: what single-stream times
    predict_batch: object  # the offline batch -> its answers: what offline times
    queries: list  # single-stream queries, used in turn
    batch: object  # the offline batch
    score: object  # () -> the model's quality on held-out data, a fraction: the accuracy check
    keeps: tuple  # the objects whose arrays are the model's bytes
    outputs: object  # () -> (predictions, logits) on the inputs the check uses
    target: float | None = None  # a baseline's own target; an optimised model's is KEEP_FRACTION of its baseline's
    tolerance: Tolerance | None = None  # None for a baseline
    generates: bool = False  # a query writes many tokens: fewer pairs for its speed-up


@dataclass
class Row:
    """What was measured for one entry. single and offline are None when the model was never handed to the harness."""

    entry: Entry
    baseline: object  # the baseline's Row; None for a baseline
    score: float
    target: float
    bytes: int
    check: Check | None = None
    single: object = None  # the harness's Result
    offline: object = None
    comparison: object = None  # the harness's Comparison with the baseline, when both were timed
    outputs: tuple | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        """"timed", or why not: what the table prints in place of the times."""
        if self.single is not None and self.single.timed:
            return "timed"
        if not self.score >= self.target:
            return "below target: not timed"
        if self.baseline is not None and self.baseline.outputs is None:
            return "no baseline to check against: not timed"
        if self.check is not None and not self.check.passed:
            return "differs from its baseline: not timed"
        return "not timed"


def measure(entry: Entry, rules: Rules, baseline: Row | None = None) -> Row:
    """Accuracy first; then the outputs against the baseline's; then the harness's two scenarios; then the bytes.

    The bytes are counted last, so that anything the model holds on to after answering
    queries counts too.
    """
    score = float(entry.score())
    target = entry.target if baseline is None else KEEP_FRACTION * baseline.score
    row = Row(entry, baseline, score, target, bytes=0)
    if timeable(row):
        time_row(row, rules)
    row.bytes = kept_bytes(*entry.keeps)
    return row


def timeable(row: Row) -> bool:
    """Check an optimised model's outputs against its baseline's (a baseline's are kept for that)."""
    entry, baseline = row.entry, row.baseline
    if not row.score >= row.target:
        return True  # the harness itself must refuse to time it
    if baseline is None:
        row.outputs = entry.outputs()
        return True
    if baseline.outputs is None:
        return False  # a baseline below its target: nothing to check against
    row.check = check_outputs(baseline.outputs, entry.outputs(), entry.tolerance)
    return row.check.passed  # a model that is not its baseline's equal is never handed to the harness


def time_row(row: Row, rules: Rules) -> None:
    """The harness's single-stream and offline runs (it checks the accuracy before any timing), and the speed-up."""
    entry, baseline = row.entry, row.baseline
    options = dict(accuracy=lambda: row.score, target=row.target, warmup=rules.warmup)
    row.single = single_stream(entry.predict, entry.queries, name=entry.name, min_count=rules.min_count,
                               min_seconds=rules.min_seconds, **options)
    row.offline = offline(entry.predict_batch, entry.batch, name=entry.name, min_count=rules.offline_min_count,
                          min_seconds=rules.offline_min_seconds, **options)
    if baseline is not None and row.single.timed and baseline.single is not None and baseline.single.timed:
        query = entry.queries[0]
        pairs = rules.generation_pairs if entry.generates else rules.pairs
        times = interleaved(lambda: baseline.entry.predict(query), lambda: entry.predict(query), count=pairs,
                            warmup=rules.warmup)
        row.comparison = compare(*times, paired=True)


# -- the table -------------------------------------------------------------------------------------------------

COLUMNS = (("model", 16), ("technique", 24), ("quality (target)", 18), ("vs baseline", 28), ("bytes", 9),
           ("queries", 8), ("p50 ms", 9), ("p90 ms", 9), ("offline items/s", 16))


def table_line(cells) -> str:
    return "  ".join(str(cell).ljust(width) if index < 4 else str(cell).rjust(width)
                     for index, (cell, (_, width)) in enumerate(zip(cells, COLUMNS)))


def table_header() -> str:
    header = table_line(name for name, _ in COLUMNS)
    return f"{header}\n{'-' * len(header)}"


def table_row(row: Row) -> str:
    quality = f"{row.score:.2%} ({row.target:.2%})"
    versus = "baseline" if row.baseline is None else "-" if row.check is None else str(row.check)
    cells = [row.entry.name, row.entry.technique, quality, versus, f"{row.bytes:,}"]
    if row.status != "timed":
        return table_line(cells + [row.status])
    single = row.single.summary
    cells += [f"{single.count:,}", f"{single.median * 1e3:.4f}", f"{single.p90 * 1e3:.4f}",
              f"{row.offline.throughput:,.0f}"]
    return table_line(cells)


def against_baseline(row: Row) -> str:
    """One line: the bytes and the single-stream speed-up of an optimised model against its baseline."""
    base = row.baseline
    size = (f"{base.bytes / row.bytes:.2f}x fewer bytes" if base.bytes >= row.bytes
            else f"{row.bytes / base.bytes:.2f}x more bytes")
    line = f"  {row.entry.name:<16} {size:>18} than {base.entry.name}"
    if row.comparison is None:
        return f"{line}; not timed ({row.status})"
    return f"{line}; one query: {row.comparison}"


# -- the digits models ----------------------------------------------------------------------------------------


def train_digits(model, x_train, y_train, x_test, y_test, epochs, batch_size, learning_rate, seed):
    """Train as the 1986 and 1998 milestones do; then forget the gradients (an inference model keeps none)."""
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True,
                        rng=np.random.default_rng(seed))
    common.run(model, CrossEntropyLoss(), Adam(model.parameters(), lr=learning_rate),
               train_batches=lambda: list(loader), eval_batches=[(x_test, y_test)], epochs=epochs,
               metric=accuracy, target=0.0, title="", verbose=False, verdict=False)
    model.zero_grad()
    return model.eval()


def digits_entry(name, technique, model, x_test, y_test, target=None, tolerance=None) -> Entry:
    """An Entry for a digits classifier: one image per query, the whole test set offline."""

    def outputs():
        with no_grad():
            logits = model(x_test).data  # (N, 10)
        return logits.argmax(axis=1), logits

    return Entry(name, technique, predict=model, predict_batch=model, queries=[x[None] for x in x_test],
                 batch=x_test, score=lambda: accuracy(outputs()[1], y_test), keeps=(model,), outputs=outputs,
                 target=target, tolerance=tolerance)


def digits_split() -> tuple:
    """The 1986 and 1998 milestones' split: x_train (1438, 8, 8), x_test (359, 8, 8), y_train, y_test."""
    images, labels = load_digits()  # (1797, 8, 8) in [0, 1]
    return train_test_split(images, labels, test_fraction=0.2, seed=0)


def digits_entries(say) -> list:
    """The float32 MLP and CNN as their milestones train them, and their int8 and pruned versions."""
    mlp_script, cnn_script = common.load_script("1986_mlp_digits"), common.load_script("1998_cnn_digits")
    x_train, x_test, y_train, y_test = digits_split()
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)  # (N, 64)
    say(f"training the 1986 MLP and the 1998 CNN on {len(x_train):,} digits ...")
    rng = np.random.default_rng(86)
    mlp = Sequential(Linear(64, mlp_script.HIDDEN, rng=rng), ReLU(), Linear(mlp_script.HIDDEN, 10, rng=rng))
    mlp = train_digits(mlp, flat_train, y_train, flat_test, y_test, mlp_script.EPOCHS, mlp_script.BATCH_SIZE, 2e-3,
                       seed=1986)
    cnn = train_digits(cnn_script.build_model(np.random.default_rng(98)), x_train[:, None], y_train, x_test[:, None],
                       y_test, cnn_script.EPOCHS, cnn_script.BATCH_SIZE, cnn_script.LEARNING_RATE, seed=1998)
    pruned = prune_structured(mlp, PRUNE_AMOUNT)
    pruned = train_digits(pruned, flat_train, y_train, flat_test, y_test, PRUNE_EPOCHS, mlp_script.BATCH_SIZE,
                          PRUNE_LEARNING_RATE, seed=16)
    calibration = [flat_train[start:start + 256] for start in range(0, len(flat_train), 256)]
    cnn_calibration = [batch.reshape(-1, 1, 8, 8) for batch in calibration]
    return [
        digits_entry("mlp", "float32 (1986)", mlp, flat_test, y_test, target=mlp_script.TARGET),
        digits_entry("mlp int8", "int8 (kata 15)", quantize_model(mlp, calibration), flat_test, y_test,
                     tolerance=INT8),
        digits_entry("mlp pruned", f"{PRUNE_AMOUNT:.0%} units off (kata 16)", pruned, flat_test, y_test,
                     tolerance=PRUNED),
        digits_entry("cnn", "float32 (1998)", cnn, x_test[:, None], y_test, target=cnn_script.TARGET),
        digits_entry("cnn int8", "int8 (kata 15)", quantize_model(cnn, cnn_calibration), x_test[:, None], y_test,
                     tolerance=INT8),
    ]


# -- the GPT ----------------------------------------------------------------------------------------------------


def patterns(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, LENGTH) token rows: PATTERN random digits, repeated until the row is LENGTH long."""
    digits = rng.integers(0, 10, size=(count, PATTERN))
    return np.tile(digits, (1, LENGTH // PATTERN + 1))[:, :LENGTH]


def as_numbers(rows: np.ndarray) -> np.ndarray:
    """Each row's first PATTERN digits read as one integer: how held-out patterns are recognised."""
    return rows[:, :PATTERN] @ (10 ** np.arange(PATTERN - 1, -1, -1))


def train_gpt(held_out: np.ndarray) -> GPT:
    """A 2-layer GPT trained on fresh patterns every step (never a held-out one), the loss on the answers only."""
    config = GPTConfig(vocab_size=10, block_size=LENGTH, n_layer=2, n_head=4, n_embd=64)
    model = GPT(config, rng=np.random.default_rng(18))
    optimizer = Adam(model.parameters(), lr=GPT_LEARNING_RATE)
    rng, excluded = np.random.default_rng(2018), as_numbers(held_out)
    for step in range(GPT_STEPS):
        rows = patterns(rng, GPT_BATCH)
        rows = rows[~np.isin(as_numbers(rows), excluded)]
        optimizer.lr = warmup_cosine_lr(step, GPT_LEARNING_RATE, GPT_WARMUP, GPT_STEPS, min_lr=GPT_LEARNING_RATE / 10)
        optimizer.zero_grad()
        logits = model(rows[:, :-1])[:, PATTERN - 1:, :]  # (B, NEW, 10): the predictions of the answers only
        loss = cross_entropy(logits.reshape(-1, 10), rows[:, PATTERN:].reshape(-1))
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
    model.zero_grad()
    return model.eval()


def gpt_entries(say) -> list:
    """The GPT generating NEW tokens without a cache (the baseline), then with one."""
    held_out = patterns(np.random.default_rng(1998), HELD_OUT)
    say(f"training a GPT to continue {PATTERN}-digit patterns for {NEW} tokens ...")
    model = train_gpt(held_out)
    prompts = held_out[:, :PATTERN]  # (HELD_OUT, PATTERN)
    checked = prompts[:CHECKED_PROMPTS]

    def written_exactly() -> float:
        # With the true prefix as input, the model's best next token at every position is the true one
        # if and only if greedy decoding writes the whole row: one forward instead of NEW.
        with no_grad():
            best = model(held_out[:, :-1]).data[:, PATTERN - 1:].argmax(axis=-1)  # (N, NEW)
        return float(np.mean(np.all(best == held_out[:, PATTERN:], axis=1)))

    def outputs():
        with no_grad():
            written = model.generate(checked, NEW, temperature=0)  # (n, LENGTH)
            logits = model(written[:, :-1]).data  # (n, LENGTH - 1, 10): the logits each token was chosen from
        return written, logits

    uncached = Entry("gpt", "no cache (kata 13)", predict=lambda prompt: model.generate(prompt, NEW, temperature=0),
                     predict_batch=lambda batch: model.generate(batch, NEW, temperature=0),
                     queries=list(prompts), batch=prompts[:OFFLINE_PROMPTS], score=written_exactly, keeps=(model,),
                     outputs=outputs, target=GPT_TARGET, generates=True)
    return [uncached, cached_entry(model, uncached, held_out)]


def cached_entry(model: GPT, uncached: Entry, held_out: np.ndarray) -> Entry:
    """The same GPT generating with a KV cache: the same queries, its quality measured through the cache."""
    cache = ModelCache.for_model(model, batch=1, max_len=LENGTH - 1)  # kept: what one query needs
    checked = held_out[:CHECKED_PROMPTS, :PATTERN]

    def written_exactly() -> float:
        written = cached_generate(model, held_out[:, :PATTERN], NEW, temperature=0)  # (N, LENGTH), decoded
        return float(np.mean(np.all(written == held_out, axis=1)))

    def outputs():
        written = cached_generate(model, checked, NEW, temperature=0)  # (n, LENGTH)
        # The logits each token was chosen from: the prompt in one prefill, then one token per step.
        steps = ModelCache.for_model(model, batch=len(checked), max_len=LENGTH - 1)
        logits = [forward_with_cache(model, written[:, :PATTERN], steps).data]  # (n, PATTERN, 10)
        logits += [forward_with_cache(model, written[:, t:t + 1], steps).data for t in range(PATTERN, LENGTH - 1)]
        return written, np.concatenate(logits, axis=1)  # (n, LENGTH - 1, 10)

    return Entry("gpt cached", "KV cache (kata 17)",
                 predict=lambda prompt: cached_generate(model, prompt, NEW, temperature=0, cache=cache),
                 predict_batch=lambda batch: cached_generate(model, batch, NEW, temperature=0),
                 queries=uncached.queries, batch=uncached.batch, score=written_exactly, keeps=(model, cache),
                 outputs=outputs, tolerance=CACHED, generates=True)


# -- the run ------------------------------------------------------------------------------------------------------


def main(verbose: bool = True, rules: Rules = SCALED, json_path: str | None = None) -> dict:
    """Build, check and time every model; print the table row by row; return the rows and the verdict."""
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"2018 · MLPerf-style benchmarks of your models, with your harness\nthe rules, {rules.name}: single-stream "
        f"at least {rules.min_count:,} queries and {rules.min_seconds:g} s, offline at least "
        f"{rules.offline_min_count} batches and {rules.offline_min_seconds:g} s, {rules.warmup} warm-up calls\n")
    entries = digits_entries(say) + gpt_entries(say)
    say("")
    say(table_header())
    rows, baselines = [], {}
    with no_grad():
        for entry in entries:
            family = entry.name.split()[0]  # "mlp int8" is compared with "mlp"
            row = measure(entry, rules, baselines.get(family))
            baselines.setdefault(family, row)
            rows.append(row)
            say(table_row(row), flush=True)
    optimised = [row for row in rows if row.baseline is not None]
    say("\nagainst the baseline (one query at a time, interleaved pairs, speed-up > 1 is faster):")
    for row in optimised:
        say(against_baseline(row))
    checks = verdicts(rows)
    env = environment()
    threads = ", ".join(f"{name}={value}" for name, value in env["threads"].items() if value is not None)
    say(f"\nmeasured with Python {env['python']}, numpy {env['numpy']}, BLAS {env['blas'] or 'unknown'}, "
        f"threads {threads or 'not set'}, CPU {env['cpu_model'] or 'unknown'} ({env['cpus_usable']} usable)")
    for what, ok in checks.items():
        say(f"  [{'x' if ok else ' '}] {what}")
    reached = all(checks.values())
    say("\nmilestone reached" if reached else "\nmilestone NOT reached")
    if json_path:
        results = [result for row in rows for result in (row.single, row.offline) if result is not None]
        Path(json_path).write_text(to_json(results, env), encoding="utf-8")
        say(f"the harness's JSON report: {json_path}")
    return {"rows": rows, "checks": checks, "reached": reached, "rules": rules}


def verdicts(rows) -> dict:
    """The milestone's claims, each True or False."""
    by_name = {row.entry.name: row for row in rows}
    baselines = [row for row in rows if row.baseline is None]
    optimised = [row for row in rows if row.baseline is not None]
    int8 = [row for row in optimised if "int8" in row.entry.name]
    return {
        "every baseline reached its target and was timed: " + ", ".join(
            f"{row.entry.name} {row.score:.1%} (at least {row.target:.0%})" for row in baselines):
            all(row.score >= row.target and row.status == "timed" for row in baselines),
        f"every optimised model kept {KEEP_FRACTION:.0%} of its baseline's quality, matched its outputs within "
        "its tolerance, and was timed": all(row.check is not None and row.status == "timed" for row in optimised),
        f"int8 keeps each model in at most 1/{INT8_MIN_REDUCTION:g} of its float32 bytes: " + ", ".join(
            f"{row.entry.name} {row.baseline.bytes / row.bytes:.2f}x" for row in int8):
            bool(int8) and all(row.baseline.bytes >= INT8_MIN_REDUCTION * row.bytes for row in int8),
        "the KV cache makes generation measurably faster": (
            "gpt cached" in by_name and by_name["gpt cached"].comparison is not None
            and by_name["gpt cached"].comparison.low > 1),
    }


if __name__ == "__main__":
    common.finish(lambda verbose: main(verbose, rules=FULL if OPTIONS["--full"] else SCALED,
                                       json_path=OPTIONS["--json"]))

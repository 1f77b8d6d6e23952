"""Kata 17 · KV cache: the ordered suite. Run it with `python -m pytest katas/17_kv_cache`.

Checkpoints, in order: kv_cache, append, reset, nbytes, model_cache, cached_forward, generate,
optimize. The lesson is katas/17_kv_cache/README.md.

Most tests compare cached decoding with the plain model of kata 13 on float64 GPTs, whose
logits agree to rounding (atol 1e-9), so any mistake in what the cache holds, where it
writes or which positions the new tokens get shows as a wrong logit or token.
"""

import gc
import math
import tracemalloc

import numpy as np
import pytest

import tinytorch.attention as attention_module
from harness.budgets import assert_time_ratio, count_calls
from harness.checks import assert_close, assert_shape, assert_tensor, raises_naming
from tinytorch.autograd import is_grad_enabled
from tinytorch.kv_cache import KVCache, ModelCache, forward_with_cache, generate
from tinytorch.tensor import Tensor
from tinytorch.transformer import GPT, GPTConfig

VOCAB = 11
EQUAL = dict(rtol=0, atol=1e-9)  # cached and uncached float64 logits: equal but for rounding
SLACK = 4096  # bytes of Python objects around the arrays, when allocations are measured


def random_array(shape, seed: int, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def random_ids(shape, seed: int, vocabulary: int = VOCAB) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocabulary, size=shape)


def coded_keys(batch: int, heads: int, length: int, head_dim: int, offset: int = 0) -> np.ndarray:
    """(B, heads, T, head_dim) whose every number says where it belongs: 1000 b + 100 h + 10 t + d (+ offset)."""
    b, h, t, d = np.meshgrid(np.arange(batch), np.arange(heads), np.arange(length), np.arange(head_dim),
                             indexing="ij")
    return (1000.0 * b + 100 * h + 10 * t + d + offset).astype(np.float64)


def split_like_attention(x: np.ndarray, heads: int) -> np.ndarray:
    """(B, T, C) -> (B, heads, T, C // heads) as kata 12's split_heads makes it: a transposed view, not contiguous."""
    batch, length, dim = x.shape
    return x.reshape(batch, length, heads, dim // heads).transpose(0, 2, 1, 3)


def allocated_bytes(make):
    """(bytes still allocated after make() returns, above what was allocated before; make's result)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        made = make()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, made


def float64_gpt(seed: int, n_layer: int = 2, **changes) -> GPT:
    """A small GPT in float64 with LayerNorms and biases away from 1 and 0, so that every part counts."""
    fields = dict(vocab_size=VOCAB, block_size=12, n_layer=n_layer, n_head=2, n_embd=8)
    fields.update(changes)
    model = GPT(GPTConfig(**fields), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for name, parameter in model.named_parameters():
        parameter.data = parameter.data.astype(np.float64)
        if name.endswith("bias"):
            parameter.data += 0.1 * rng.standard_normal(parameter.shape)
        elif parameter.ndim == 1:  # a LayerNorm's weight
            parameter.data += 0.3 * rng.standard_normal(parameter.shape)
        else:
            parameter.data *= 10  # larger weights: attention weights far from uniform
    return model


class ForwardSpy:
    """Records every call of model.forward: the ids' shape, `start`, and whether a graph was being recorded."""

    def __init__(self, model):
        self.calls = []
        forward = model.forward

        def spy(ids, start=0, caches=None):
            self.calls.append((tuple(np.shape(ids)), start, caches is not None, is_grad_enabled()))
            return forward(ids, start=start, caches=caches)

        model.forward = spy  # an instance attribute: Module.__call__ finds it first


# -- kv_cache -------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("kv_cache")
class TestKVCache:
    def test_keys_and_values_are_allocated_once(self):
        """KVCache(2, 3, 10, 4): keys and values are two separate float32 arrays (2, 3, 10, 4); length 0."""
        cache = KVCache(2, 3, 10, 4)
        for name in ("keys", "values"):
            array = getattr(cache, name, None)
            assert isinstance(array, np.ndarray), f"KVCache.{name} should be a numpy array, got {type(array).__name__}"
            assert_shape(array, (2, 3, 10, 4), f"KVCache(batch=2, heads=3, max_len=10, head_dim=4).{name}")
            assert array.dtype == np.float32, f"KVCache.{name}: float32 by default, got {array.dtype}"
        assert not np.shares_memory(cache.keys, cache.values), (
            "keys and values share memory: a value written would overwrite a key. Allocate two arrays")
        assert cache.length == 0 and isinstance(cache.length, int), f"a new cache holds 0 tokens, got {cache.length!r}"
        assert (cache.batch, cache.heads, cache.max_len, cache.head_dim) == (2, 3, 10, 4)

    def test_the_dtype_is_kept(self):
        """KVCache(..., dtype=np.float64): both arrays float64 (a float64 model's keys must not be rounded to float32)."""
        cache = KVCache(1, 2, 5, 3, dtype=np.float64)
        assert (cache.keys.dtype, cache.values.dtype) == (np.float64, np.float64), (
            f"keys {cache.keys.dtype} and values {cache.values.dtype}; expected float64 for both")

    @pytest.mark.parametrize("field, bad", [("head_dim", 0), ("max_len", -3), ("heads", 2.5), ("batch", True)])
    def test_sizes_are_checked(self, field, bad):
        """A batch, heads, max_len or head_dim that is not a positive integer: ValueError naming it."""
        sizes = dict(batch=2, heads=2, max_len=6, head_dim=4)
        sizes[field] = bad
        raises_naming(lambda: KVCache(**sizes), ValueError, [field], f"KVCache with {field}={bad!r}")


# -- append ---------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("append")
class TestAppend:
    def test_the_new_keys_are_copied_in_and_left_alone(self):
        """append(k, v) leaves k and v as they were, and changing them afterwards does not change the cache."""
        cache = KVCache(1, 2, 6, 3, dtype=np.float64)
        k, v = random_array((1, 2, 2, 3), 1), random_array((1, 2, 2, 3), 2)
        k_before, v_before = k.copy(), v.copy()
        cache.append(Tensor(k, dtype=np.float64), Tensor(v, dtype=np.float64))
        assert np.array_equal(k, k_before) and np.array_equal(v, v_before), "append changed the k or v it was given"
        k += 1
        v += 1
        assert np.array_equal(cache.keys[:, :, :2], k_before) and np.array_equal(cache.values[:, :, :2], v_before), (
            "the cache changed when the caller's k and v did: write their values into the cache's own arrays")

    def test_the_first_append_fills_positions_0_to_t(self):
        """append of 3 tokens to an empty cache: positions 0..2 hold them, length is 3, the rest is untouched."""
        cache = KVCache(2, 2, 7, 3, dtype=np.float64)
        untouched = cache.keys[:, :, 3:].copy()
        k, v = random_array((2, 2, 3, 3), 3), random_array((2, 2, 3, 3), 4)
        keys, values = cache.append(Tensor(k, dtype=np.float64), Tensor(v, dtype=np.float64))
        assert cache.length == 3, f"after appending 3 tokens length should be 3, got {cache.length}"
        assert_close(cache.keys[:, :, :3], k, "cache.keys[:, :, :3] after the first append", rtol=0, atol=0)
        assert_close(cache.values[:, :, :3], v, "cache.values[:, :, :3] after the first append", rtol=0, atol=0)
        assert_close(cache.keys[:, :, 3:], untouched, "cache.keys[:, :, 3:] (nothing written there)", rtol=0, atol=0)
        assert_tensor(keys, "the keys append returns", shape=(2, 2, 3, 3), dtype=np.float64)
        assert_tensor(values, "the values append returns", shape=(2, 2, 3, 3), dtype=np.float64)
        assert_close(keys, k, "the keys append returns", rtol=0, atol=0)
        assert_close(values, v, "the values append returns", rtol=0, atol=0)

    def test_each_append_writes_after_the_tokens_already_there(self):
        """Appending 3, then 1, then 2 tokens returns keys and values of all 6, in order, and length 6.

        Hint: write at positions length .. length + T_new - 1 (not at 0), advance length, and return
        keys[:, :, :length]: every token so far, the new ones last.
        """
        cache = KVCache(2, 3, 8, 2, dtype=np.float64)
        ks = [random_array((2, 3, n, 2), 10 + n) for n in (3, 1, 2)]
        vs = [random_array((2, 3, n, 2), 20 + n) for n in (3, 1, 2)]
        for step, (k, v) in enumerate(zip(ks, vs)):
            keys, values = cache.append(Tensor(k, dtype=np.float64), Tensor(v, dtype=np.float64))
            total = sum(x.shape[2] for x in ks[:step + 1])
            assert cache.length == total, f"after append {step + 1}: length {cache.length}, expected {total}"
            assert_shape(keys, (2, 3, total, 2), f"the keys returned by append {step + 1}")
            assert_close(keys, np.concatenate(ks[:step + 1], axis=2), f"the keys after append {step + 1}", rtol=0, atol=0)
            assert_close(values, np.concatenate(vs[:step + 1], axis=2), f"the values after append {step + 1}",
                         rtol=0, atol=0)

    def test_it_returns_views_of_its_own_arrays(self):
        """append returns Tensors whose data are views of cache.keys and cache.values, which are never reallocated.

        Hint: `self.keys[:, :, :self.length]` is a view, no copy; wrap it with `Tensor(view, dtype=view.dtype)` (a
        Tensor of another dtype would be a converted copy). Write into the arrays made in __init__ with
        `self.keys[:, :, start:stop] = k`; np.concatenate would make new ones every step.
        """
        cache = KVCache(1, 2, 6, 4, dtype=np.float64)
        keys_array, values_array = cache.keys, cache.values
        for n in (2, 3):
            keys, values = cache.append(Tensor(random_array((1, 2, n, 4), n), dtype=np.float64),
                                        Tensor(random_array((1, 2, n, 4), 9 + n), dtype=np.float64))
            assert isinstance(keys, Tensor) and isinstance(values, Tensor), (
                f"append returns (keys, values) as Tensors, got {type(keys).__name__}, {type(values).__name__}")
            assert cache.keys is keys_array and cache.values is values_array, (
                "append replaced cache.keys or cache.values with a new array: the cache should be allocated once")
            assert np.shares_memory(keys.data, cache.keys) and np.shares_memory(values.data, cache.values), (
                "the keys and values append returns are copies; return views of the cache's arrays, so that a decode "
                "step copies nothing")

    def test_the_head_layout_is_kept(self):
        """Keys of (batch b, head h, token t) land at cache.keys[b, h, length + t], also from a transposed view.

        Hint: k arrives as (B, heads, T_new, head_dim), already split into heads by project_qkv (and usually a
        transposed view, not contiguous). Store it in that layout: no reshape or transpose of your own.
        """
        cache = KVCache(2, 3, 8, 2, dtype=np.float64)
        first = coded_keys(2, 3, 3, 2)
        cache.append(first, first + 0.5)
        # The second batch of keys comes as split_heads makes it: (B, T, C) reshaped and transposed.
        second = coded_keys(2, 3, 3, 2, offset=30)  # tokens 3..5
        flat = np.ascontiguousarray(second.transpose(0, 2, 1, 3)).reshape(2, 3, 6)  # (B, T, C)
        keys, values = cache.append(split_like_attention(flat, 3), split_like_attention(flat, 3) + 0.5)
        expected = coded_keys(2, 3, 6, 2)
        assert_close(cache.keys[:, :, :6], expected, "cache.keys[b, h, t, d] (coded 1000 b + 100 h + 10 t + d)",
                     rtol=0, atol=0)
        assert_close(keys, expected, "the keys append returns", rtol=0, atol=0)
        assert_close(values, expected + 0.5, "the values append returns", rtol=0, atol=0)

    def test_shapes_are_checked(self):
        """k or v not (B, heads, T_new, head_dim) of the cache, or of different T_new: ValueError naming the shapes."""
        cache = KVCache(2, 3, 8, 4)
        good = np.zeros((2, 3, 2, 4), dtype=np.float32)
        cases = [
            (good, np.zeros((2, 3, 2, 1), dtype=np.float32), "(2, 3, 2, 1)", "v with head_dim 1"),
            (np.zeros((2, 2, 2, 4), dtype=np.float32), good, "(2, 2, 2, 4)", "k with 2 heads for a 3-head cache"),
            (good, np.zeros((1, 3, 2, 4), dtype=np.float32), "(1, 3, 2, 4)", "v of batch 1 for a batch-2 cache"),
            (good, np.zeros((2, 3, 1, 4), dtype=np.float32), "(2, 3, 1, 4)", "k of 2 tokens with v of 1"),
            (np.zeros((2, 2, 4), dtype=np.float32), good, "(2, 2, 4)", "a 3-D k"),
        ]
        for k, v, shape, what in cases:
            raises_naming(lambda: cache.append(k, v), ValueError, [shape], f"append of {what}")
        assert cache.length == 0, f"refused appends stored nothing, yet length is {cache.length}"

    def test_k_and_v_must_fit_the_cache_not_only_each_other(self):
        """k and v of the same shape but of head_dim 1, of 1 head, or of batch 1, for a (2, 3, 8, 4) cache: ValueError naming it.

        Hint: compare both shapes with (batch, heads, T_new, head_dim) of the CACHE. Numpy would broadcast a k of head_dim
        1 (or of 1 head, or of batch 1) into every slot without a word.
        """
        cache = KVCache(2, 3, 8, 4)
        for shape, what in (((2, 3, 2, 1), "head_dim 1"), ((2, 1, 2, 4), "1 head"), ((1, 3, 2, 4), "batch 1")):
            k = np.ones(shape, dtype=np.float32)
            raises_naming(lambda: cache.append(k, k), ValueError, [str(shape)], f"append of k and v with {what}")
        assert cache.length == 0, f"refused appends stored nothing, yet length is {cache.length}"

    def test_a_full_cache_refuses_more_and_names_max_len(self):
        """max_len=5: 3 + 2 tokens fill it exactly; one more is a ValueError naming max_len=5, and changes nothing."""
        cache = KVCache(1, 2, 5, 3, dtype=np.float64)
        cache.append(random_array((1, 2, 3, 3), 30), random_array((1, 2, 3, 3), 31))
        cache.append(random_array((1, 2, 2, 3), 32), random_array((1, 2, 2, 3), 33))
        assert cache.length == 5, f"3 + 2 tokens fill a cache of max_len 5 exactly; length is {cache.length}"
        keys_before = cache.keys.copy()
        raises_naming(lambda: cache.append(np.zeros((1, 2, 1, 3)), np.zeros((1, 2, 1, 3))), ValueError,
                      ["max_len=5"], "append to a full cache")
        assert cache.length == 5 and np.array_equal(cache.keys, keys_before), (
            "a refused append should change nothing: check before writing")
        empty = KVCache(1, 2, 5, 3)
        raises_naming(lambda: empty.append(np.zeros((1, 2, 6, 3)), np.zeros((1, 2, 6, 3))), ValueError,
                      ["max_len=5"], "append of 6 tokens to an empty cache of max_len 5")


# -- reset ----------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("reset")
class TestReset:
    def test_reset_forgets_every_token(self):
        """After reset(), length is 0 and the next append returns only the new tokens, written at position 0."""
        cache = KVCache(1, 2, 6, 3, dtype=np.float64)
        cache.append(random_array((1, 2, 4, 3), 40), random_array((1, 2, 4, 3), 41))
        keys_array = cache.keys
        cache.reset()
        assert cache.length == 0, f"reset() should set length to 0, got {cache.length}"
        k, v = random_array((1, 2, 2, 3), 42), random_array((1, 2, 2, 3), 43)
        keys, values = cache.append(k, v)
        assert_shape(keys, (1, 2, 2, 3), "the keys after reset() and an append of 2 tokens")
        assert_close(keys, k, "the keys after reset() and an append", rtol=0, atol=0)
        assert_close(values, v, "the values after reset() and an append", rtol=0, atol=0)
        assert cache.keys is keys_array, "reset() reallocated the keys: forgetting only needs length = 0"

    def test_a_reset_cache_holds_max_len_again(self):
        """A full cache of max_len 4, reset, takes 4 tokens again."""
        cache = KVCache(1, 1, 4, 2)
        cache.append(np.ones((1, 1, 4, 2)), np.ones((1, 1, 4, 2)))
        cache.reset()
        keys, _ = cache.append(np.full((1, 1, 4, 2), 2.0), np.full((1, 1, 4, 2), 3.0))
        assert cache.length == 4 and np.all(keys.data == 2.0), "after reset(), 4 new tokens should fill the cache"


# -- nbytes ---------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("nbytes")
class TestNbytes:
    @pytest.mark.parametrize("batch, heads, max_len, head_dim, dtype", [
        (1, 1, 1, 1, np.float32), (2, 3, 10, 4, np.float32), (4, 2, 7, 5, np.float64), (3, 12, 16, 64, np.float16)])
    def test_the_formula(self, batch, heads, max_len, head_dim, dtype):
        """nbytes = 2 x B x heads x max_len x head_dim x itemsize (keys and values), a Python int."""
        cache = KVCache(batch, heads, max_len, head_dim, dtype=dtype)
        expected = 2 * batch * heads * max_len * head_dim * np.dtype(dtype).itemsize
        assert isinstance(cache.nbytes, int), f"nbytes should be an int, got {type(cache.nbytes).__name__}"
        assert cache.nbytes == expected, (
            f"KVCache({batch}, {heads}, {max_len}, {head_dim}, {np.dtype(dtype)}).nbytes = {cache.nbytes}; expected "
            f"2 (keys and values) x {batch} x {heads} x {max_len} x {head_dim} x {np.dtype(dtype).itemsize} = {expected}")

    def test_it_counts_every_position_filled_or_not(self):
        """nbytes is the same before and after appends: the memory is taken when the cache is made.

        Hint: the lesson's choice: nbytes counts all max_len positions (what the arrays hold), not only the
        length filled so far.
        """
        cache = KVCache(2, 2, 8, 4)
        expected = 2 * 2 * 2 * 8 * 4 * 4
        counts = [cache.nbytes]
        cache.append(np.zeros((2, 2, 3, 4)), np.zeros((2, 2, 3, 4)))
        counts.append(cache.nbytes)
        cache.reset()
        counts.append(cache.nbytes)
        assert counts == [expected] * 3, f"nbytes when empty, after 3 tokens, after reset: {counts}; expected {expected}"

    def test_it_is_what_the_machine_holds(self):
        """Making KVCache(4, 4, 256, 16) allocates nbytes (tracemalloc, within 1% and 4 KiB): two arrays, each allocated once."""
        held, cache = allocated_bytes(lambda: KVCache(4, 4, 256, 16))
        assert abs(held - cache.nbytes) <= SLACK + 0.01 * cache.nbytes, (
            f"making the cache allocated {held:,} bytes; nbytes says {cache.nbytes:,}")


# -- model_cache ----------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("model_cache")
class TestModelCache:
    def test_one_cache_per_layer_each_its_own(self):
        """ModelCache(3, 2, 2, 8, 4): three KVCaches (2, 2, 8, 4), three different objects sharing no memory.

        Hint: `[KVCache(...)] * layers` is ONE cache listed three times: every block would write its keys into
        the same arrays. Call KVCache(...) once per layer.
        """
        cache = ModelCache(3, 2, 2, 8, 4)
        assert len(cache) == 3, f"len(ModelCache(3, ...)) should be 3 layers, got {len(cache)}"
        layers = [cache[i] for i in range(3)]
        for i, layer in enumerate(layers):
            assert isinstance(layer, KVCache), f"cache[{i}] should be a KVCache, got {type(layer).__name__}"
            assert_shape(layer.keys, (2, 2, 8, 4), f"cache[{i}].keys")
        for i in range(3):
            for j in range(i + 1, 3):
                assert layers[i] is not layers[j], f"cache[{i}] and cache[{j}] are the same KVCache"
                for a in (layers[i].keys, layers[i].values):
                    for b in (layers[j].keys, layers[j].values):
                        assert not np.shares_memory(a, b), f"layers {i} and {j} share memory"
        assert (cache.length, cache.batch, cache.max_len) == (0, 2, 8)

    def test_for_model_fits_the_model(self):
        """ModelCache.for_model(GPT with 3 layers, 2 heads, width 8, block_size 12, float64, batch=2): caches (2, 2, 12, 4), float64."""
        model = float64_gpt(50, n_layer=3)
        cache = ModelCache.for_model(model, 2)
        assert len(cache) == 3, f"one KVCache per block: expected 3, got {len(cache)}"
        for i in range(3):
            assert_shape(cache[i].keys, (2, 2, 12, 4), f"for_model: layer {i}'s keys (B, n_head, block_size, head_dim)")
            assert cache[i].keys.dtype == np.float64, (
                f"for_model: layer {i}'s keys are {cache[i].keys.dtype}; the model is float64 (its token table)")
        short = ModelCache.for_model(model, 1, max_len=5)
        assert (short.max_len, short.batch) == (5, 1), f"for_model(model, 1, max_len=5): got max_len {short.max_len}"
        float32_model = GPT(GPTConfig(vocab_size=VOCAB, block_size=6, n_layer=1, n_head=4, n_embd=8),
                            rng=np.random.default_rng(51))
        assert_shape(ModelCache.for_model(float32_model, 3)[0].values, (3, 4, 6, 2), "for_model of a 4-head float32 GPT")
        assert ModelCache.for_model(float32_model, 3)[0].values.dtype == np.float32

    def test_sizes_are_checked(self):
        """ModelCache(0, ...) and for_model(max_len past block_size): ValueError naming layers, or max_len and block_size."""
        raises_naming(lambda: ModelCache(0, 1, 2, 4, 4), ValueError, ["layers"], "ModelCache with 0 layers")
        model = float64_gpt(52)
        raises_naming(lambda: ModelCache.for_model(model, 1, max_len=13), ValueError, ["max_len=13", "block_size=12"],
                      "for_model with max_len 13 for block_size 12")

    def test_length_and_reset_cover_every_layer(self):
        """length counts the tokens cached; reset() empties every layer, not only the first."""
        cache = ModelCache(3, 1, 2, 6, 2)
        for layer in cache.layers:
            layer.append(np.ones((1, 2, 4, 2)), np.ones((1, 2, 4, 2)))
        assert cache.length == 4, f"every layer holds 4 tokens: length should be 4, got {cache.length}"
        cache.reset()
        lengths = [layer.length for layer in cache.layers]
        assert lengths == [0, 0, 0], f"after reset() each layer's length should be 0, got {lengths}"

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_nbytes_is_the_formula_and_what_is_allocated(self, dtype):
        """nbytes = 2 x layers x B x heads x max_len x head_dim x itemsize, and making the cache allocates that much."""
        held, cache = allocated_bytes(lambda: ModelCache(3, 2, 4, 64, 16, dtype=dtype))
        expected = 2 * 3 * 2 * 4 * 64 * 16 * np.dtype(dtype).itemsize
        assert cache.nbytes == expected, (
            f"ModelCache(3 layers, B=2, 4 heads, max_len 64, head_dim 16, {np.dtype(dtype)}).nbytes = {cache.nbytes:,}; "
            f"expected 2 x 3 x 2 x 4 x 64 x 16 x {np.dtype(dtype).itemsize} = {expected:,}")
        assert abs(held - expected) <= SLACK + 0.01 * expected, (
            f"making the cache allocated {held:,} bytes; the formula says {expected:,}: does every layer have its own arrays?")


# -- cached_forward -------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("cached_forward")
class TestCachedForward:
    def test_the_prefill_is_the_full_forward(self):
        """forward_with_cache on an empty cache: the logits (2, 5, V) of model(ids), and the cache holds 5 tokens."""
        model = float64_gpt(60)
        ids = random_ids((2, 5), 61)
        cache = ModelCache.for_model(model, 2)
        got = forward_with_cache(model, ids, cache)
        assert_tensor(got, "forward_with_cache(model, ids (2, 5), cache)", shape=(2, 5, VOCAB), dtype=np.float64)
        assert_close(got, model(ids), "prefill logits vs model(ids)", **EQUAL)
        assert cache.length == 5, f"after a prefill of 5 tokens the cache should hold 5, got {cache.length}"

    @pytest.mark.parametrize("layers, batch, prompt", [(1, 1, 1), (1, 3, 4), (3, 2, 1), (3, 3, 4)])
    def test_one_token_at_a_time_equals_the_uncached_model(self, layers, batch, prompt):
        """Prefill a prompt, then feed one token per step: each step's logits equal model(prefix)[:, -1] (float64, 1e-9).

        Hint: the new token's position is the number of tokens already cached (start=cache.length), and every
        block needs its own cache. Compare with the uncached model on the same prefix to find the first wrong step.
        """
        model = float64_gpt(62 + layers, n_layer=layers)
        ids = random_ids((batch, 10), 63 + batch)
        cache = ModelCache.for_model(model, batch)
        prefill = forward_with_cache(model, ids[:, :prompt], cache)
        assert_close(prefill, model(ids[:, :prompt]), f"the prefill of {prompt} tokens", **EQUAL)
        for t in range(prompt, 10):
            got = forward_with_cache(model, ids[:, t:t + 1], cache)
            assert_shape(got, (batch, 1, VOCAB), f"the logits of step {t} (one new token)")
            assert_close(got.data[:, 0], model(ids[:, :t + 1]).data[:, -1],
                         f"{layers} layers, B={batch}, prompt {prompt}: the logits of token {t} with the cache vs "
                         f"model(ids[:, :{t + 1}])", **EQUAL)
        assert cache.length == 10, f"10 tokens went in; cache.length is {cache.length}"

    def test_the_new_tokens_get_the_next_positions(self):
        """forward_with_cache runs model(ids, start=cache.length, caches=cache): start 0, then 3, then 5."""
        model = float64_gpt(70)
        spy = ForwardSpy(model)
        cache = ModelCache.for_model(model, 1)
        for chunk in ([[1, 2, 3]], [[4, 5]], [[6]]):
            forward_with_cache(model, chunk, cache)
        got = [(shape, start, cached) for shape, start, cached, _ in spy.calls]
        expected = [((1, 3), 0, True), ((1, 2), 3, True), ((1, 1), 5, True)]
        assert got == expected, (
            f"model.forward calls (ids shape, start, with caches): {got}; expected {expected}. The first new token's "
            "position is the number of tokens already in the cache")

    def test_chunks_of_several_tokens_after_a_prefill(self):
        """3 tokens, then 2 at once, then 1, then 4: the logits of model(all 10 tokens), row for row.

        A chunk of 2 after 3 cached tokens is the case T_q < T_k: each new query sees the cached tokens, the new
        tokens before it and itself, never the one after it (kata 12's causal alignment).
        """
        model = float64_gpt(71, n_layer=3)
        ids = random_ids((2, 10), 72)
        cache = ModelCache.for_model(model, 2)
        parts = [forward_with_cache(model, ids[:, a:b], cache).data for a, b in ((0, 3), (3, 5), (5, 6), (6, 10))]
        assert_close(np.concatenate(parts, axis=1), model(ids), "chunked decoding vs the full forward", **EQUAL)

    def test_each_layer_caches_its_own_blocks_keys_and_values(self):
        """After a prefill, cache[i] holds exactly the keys and values block i computes in the plain forward."""
        model = float64_gpt(73, n_layer=3)
        ids = random_ids((2, 4), 74)
        seen = []
        for block in model.blocks.layers:
            project = block.attn.project_qkv

            def recording(x, project=project):
                q, k, v = project(x)
                seen.append((k.data.copy(), v.data.copy()))
                return q, k, v

            block.attn.project_qkv = recording
        model(ids)  # the plain forward: records each block's k and v
        plain = seen[:]
        cache = ModelCache.for_model(model, 2)
        forward_with_cache(model, ids, cache)
        for i, (k, v) in enumerate(plain):
            assert_close(cache[i].keys[:, :, :4], k, f"cache[{i}].keys vs block {i}'s keys", **EQUAL)
            assert_close(cache[i].values[:, :, :4], v, f"cache[{i}].values vs block {i}'s values", **EQUAL)
            assert cache[i].length == 4, f"cache[{i}].length should be 4, got {cache[i].length}"

    @pytest.mark.parametrize("changes", [dict(tie_weights=True), dict(positions="sinusoidal")])
    def test_tied_weights_and_sinusoidal_positions(self, changes):
        """Decoding with the cache equals the full forward for a tied GPT and for one with sinusoidal positions."""
        model = float64_gpt(75, **changes)
        ids = random_ids((2, 7), 76)
        cache = ModelCache.for_model(model, 2)
        parts = [forward_with_cache(model, ids[:, :2], cache).data]
        parts += [forward_with_cache(model, ids[:, t:t + 1], cache).data for t in range(2, 7)]
        assert_close(np.concatenate(parts, axis=1), model(ids), f"cached decoding with {changes}", **EQUAL)

    def test_the_plain_model_is_unchanged(self):
        """With the cache off (GPT.forward without caches), the model gives the same logits as before any cached run."""
        model = float64_gpt(77)
        ids = random_ids((2, 6), 78)
        before = model(ids).data.copy()
        cache = ModelCache.for_model(model, 2)
        forward_with_cache(model, ids[:, :3], cache)
        forward_with_cache(model, ids[:, 3:4], cache)
        assert_close(model(ids), before, "model(ids) after decoding with a cache", rtol=0, atol=0)

    def test_a_cache_with_more_layers_than_the_model_is_refused(self):
        """A cache of 4 layers for a 3-block model is a ValueError naming 4 and n_layer=3, as one of 2 layers is.

        Hint: compare len(cache) with n_layer for equality: a cache with spare layers was made for another model.
        """
        model = float64_gpt(84, n_layer=3)
        raises_naming(lambda: forward_with_cache(model, [[1], [2]], ModelCache(4, 2, 2, 6, 4, dtype=np.float64)),
                      ValueError, ["4", "n_layer=3"], "a 4-layer cache for a 3-layer model")

    def test_refusals_leave_the_cache_as_it_was(self):
        """1-D ids, a cache of 2 layers for 3 blocks, a cache of another batch, or no room: ValueError, cache unchanged."""
        model = float64_gpt(79, n_layer=3)
        cache = ModelCache.for_model(model, 2, max_len=6)
        forward_with_cache(model, random_ids((2, 4), 80), cache)
        raises_naming(lambda: forward_with_cache(model, [1, 2], cache), ValueError, ["(2,)"], "1-D ids")
        raises_naming(lambda: forward_with_cache(model, [[1], [2]], ModelCache(2, 2, 2, 6, 4, dtype=np.float64)),
                      ValueError, ["2", "n_layer=3"], "a 2-layer cache for a 3-layer model")
        raises_naming(lambda: forward_with_cache(model, random_ids((3, 1), 81), cache), ValueError, ["(3, 2, 1, 4)"],
                      "ids of batch 3 for a cache of batch 2")
        raises_naming(lambda: forward_with_cache(model, random_ids((2, 3), 82), cache), ValueError, ["max_len=6"],
                      "3 tokens after 4 in a cache of max_len 6")
        lengths = [cache[i].length for i in range(3)]
        assert lengths == [4, 4, 4], f"every refused call should leave the cache at 4 tokens; layers hold {lengths}"
        ids = random_ids((2, 6), 83)
        ids[:, :4] = random_ids((2, 4), 80)
        assert_close(forward_with_cache(model, ids[:, 4:], cache), model(ids).data[:, 4:],
                     "decoding after the refused calls", **EQUAL)


# -- generate -------------------------------------------------------------------------------------------------


@pytest.mark.checkpoint("generate")
class TestGenerate:
    @pytest.mark.parametrize("layers, prompt", [(1, [3]), (1, [[1, 2, 3, 4], [5, 6, 7, 8], [0, 9, 10, 1]]),
                                                (3, [[4], [7]]), (3, [2, 5, 8, 1, 0])])
    def test_greedy_tokens_equal_model_generate(self, layers, prompt):
        """temperature=0: generate with the cache gives exactly the tokens of kata 13's model.generate."""
        model = float64_gpt(90 + layers, n_layer=layers)
        new = 12 - np.shape(prompt)[-1]
        expected = model.generate(prompt, new, temperature=0)
        got = generate(model, prompt, new, temperature=0)
        assert isinstance(got, np.ndarray) and got.dtype == np.int64, (
            f"generate returns an int64 numpy array, got {type(got).__name__} {getattr(got, 'dtype', '')}")
        assert_shape(got, expected.shape, f"generate({np.shape(prompt)} prompt, {new})")
        assert np.array_equal(got, expected), f"greedy with the cache: {got.tolist()}; without: {expected.tolist()}"

    def test_seeded_sampling_gives_the_same_tokens(self):
        """temperature 0.8, top_k 5, seed 93: the same tokens as model.generate with that seed; seed 94 others."""
        model = float64_gpt(95, n_layer=2)
        prompt = [[1, 2], [3, 4], [5, 6]]
        expected = model.generate(prompt, 10, temperature=0.8, top_k=5, seed=93)
        got = generate(model, prompt, 10, temperature=0.8, top_k=5, seed=93)
        assert np.array_equal(got, expected), f"seed 93 with the cache: {got.tolist()}; without: {expected.tolist()}"
        assert not np.array_equal(generate(model, prompt, 10, temperature=0.8, top_k=5, seed=94), got), (
            "seeds 93 and 94 gave the same tokens: draw from np.random.default_rng(seed)")

    def test_the_prompt_once_then_one_token_per_step(self):
        """3-token prompt, 4 new: the model runs on (2, 3) at 0, then on (2, 1) at 3, 4 and 5, with caches, recording nothing.

        Hint: the prefill feeds EVERY prompt token, the first included, at start 0. Then each sampled token goes
        in alone at the next position. The last new token is only returned: nothing comes after it to predict.
        """
        model = float64_gpt(96)
        spy = ForwardSpy(model)
        got = generate(model, [[1, 2, 3], [4, 5, 6]], 4, temperature=0)
        expected = [((2, 3), 0, True, False), ((2, 1), 3, True, False), ((2, 1), 4, True, False),
                    ((2, 1), 5, True, False)]
        assert spy.calls == expected, (
            f"model.forward calls (ids shape, start, with caches, recording a graph): {spy.calls}; expected {expected}")
        assert_shape(got, (2, 7), "generate((2, 3) prompt, 4)")

    def test_types_and_shapes(self):
        """A 1-D prompt gives 1-D int64 ids that start with it; max_new_tokens=0 returns the prompt without running the model."""
        model = float64_gpt(97)
        got = generate(model, [1, 2, 3], 2, seed=98)
        assert isinstance(got, np.ndarray) and got.dtype == np.int64, f"got {type(got).__name__} {getattr(got, 'dtype', '')}"
        assert_shape(got, (5,), "generate([1, 2, 3], 2)")
        assert np.array_equal(got[:3], [1, 2, 3]), f"the result should start with the prompt, got {got.tolist()}"
        spy = ForwardSpy(model)
        same = generate(model, [[4, 5]], 0)
        assert np.array_equal(same, [[4, 5]]) and same.dtype == np.int64, f"max_new_tokens=0: got {same!r}"
        assert spy.calls == [], f"max_new_tokens=0 ran the model {len(spy.calls)} times"

    def test_a_cache_fills_up_to_block_size_and_no_further(self):
        """block_size 12: a 4-token prompt and 9 new tokens fit (12 cached); 10 new is a ValueError naming block_size=12.

        Hint: the last new token is never fed back, so the cache holds prompt + new - 1 tokens. A cache cannot slide
        its window as model.generate does; check before running anything.
        """
        model = float64_gpt(99)
        prompt = random_ids((2, 4), 100)
        assert np.array_equal(generate(model, prompt, 9, temperature=0), model.generate(prompt, 9, temperature=0)), (
            "4 prompt tokens and 9 new ones: 12 cached tokens fit block_size 12")
        spy = ForwardSpy(model)
        raises_naming(lambda: generate(model, prompt, 10, temperature=0), ValueError, ["block_size=12"],
                      "generate of 4 + 10 tokens for block_size 12")
        assert spy.calls == [], f"the model ran {len(spy.calls)} times before the refusal; check first"

    def test_a_given_cache_is_used_and_must_be_long_enough(self):
        """generate(..., cache=c) decodes into c (max_len 8: 3 + 6 new fill it); 3 + 7 new: ValueError naming max_len=8."""
        model = float64_gpt(101)
        cache = ModelCache.for_model(model, 2, max_len=8)
        prompt = random_ids((2, 3), 102)
        got = generate(model, prompt, 6, temperature=0, cache=cache)
        assert np.array_equal(got, model.generate(prompt, 6, temperature=0)), "decoding into a given cache"
        assert cache.length == 8, f"3 prompt tokens and 5 fed back: the given cache should hold 8, got {cache.length}"
        spy = ForwardSpy(model)
        raises_naming(lambda: generate(model, prompt, 7, temperature=0, cache=cache), ValueError, ["max_len=8"],
                      "generate of 3 + 7 tokens into a cache of max_len 8")
        assert spy.calls == [], f"the model ran {len(spy.calls)} times before the refusal; check first"

    def test_one_cache_serves_batch_after_batch(self):
        """The same cache for two different batches in turn: each gives the tokens of a fresh generation.

        Hint: the cache still holds the first batch's tokens; reset() it at the start of every generation.
        """
        model = float64_gpt(103, n_layer=3)
        cache = ModelCache.for_model(model, 2)
        batches = [random_ids((2, 3), 104), random_ids((2, 2), 105)]
        for number, prompt in enumerate(batches, start=1):
            got = generate(model, prompt, 5, temperature=0, cache=cache)
            expected = model.generate(prompt, 5, temperature=0)
            assert np.array_equal(got, expected), (
                f"batch {number} through a reused cache: {got.tolist()}; a fresh generation: {expected.tolist()}")

    def test_use_cache_false_is_the_plain_model(self):
        """use_cache=False: model.generate's tokens, even past block_size (its window slides), with no KVCache used."""
        model = float64_gpt(106)
        prompt = random_ids((2, 10), 107)
        with count_calls(KVCache, "append") as appended:
            got = generate(model, prompt, 6, temperature=0.9, seed=108, use_cache=False)
        assert np.array_equal(got, model.generate(prompt, 6, temperature=0.9, seed=108)), (
            "use_cache=False should give model.generate's tokens")
        assert appended.calls == 0, f"use_cache=False still appended to a KVCache {appended.calls} times"
        raises_naming(lambda: generate(model, prompt, 6, temperature=0.9, seed=108), ValueError, ["block_size=12"],
                      "the same request with the cache (10 + 6 tokens for block_size 12)")

    def test_top_k_reaches_the_sampler_with_and_without_the_cache(self):
        """top_k=1 at temperature 5 is greedy decoding, with the cache and with use_cache=False.

        Hint: pass top_k on everywhere: to sample_next in the cached loop and to model.generate when use_cache=False.
        Without it, temperature 5 samples almost uniformly.
        """
        model = float64_gpt(110)
        prompt = random_ids((2, 2), 111)
        expected = model.generate(prompt, 8, temperature=0)
        for use_cache in (True, False):
            got = generate(model, prompt, 8, temperature=5.0, top_k=1, seed=112, use_cache=use_cache)
            assert np.array_equal(got, expected), (
                f"use_cache={use_cache}, top_k=1: {got.tolist()}; greedy decoding gives {expected.tolist()}")

    def test_the_cache_it_makes_holds_exactly_the_tokens_needed(self, monkeypatch):
        """A 3-token prompt and 4 new tokens: generate makes KVCaches of max_len 6 (3 + 4 - 1), one per layer, not block_size.

        Hint: ModelCache.for_model(model, batch, max_len=prompt + new - 1): the memory is 2 L B H max_len d numbers,
        so a cache of the whole block_size costs more than the request needs.
        """
        made = []
        init = KVCache.__init__

        def recording(self, *args, **kwargs):
            init(self, *args, **kwargs)
            made.append(self.max_len)

        monkeypatch.setattr(KVCache, "__init__", recording)
        model = float64_gpt(113)
        generate(model, random_ids((2, 3), 114), 4, temperature=0)
        assert made == [6, 6], f"generate made KVCaches of max_len {made}; expected [6, 6] (2 layers of 3 + 4 - 1 tokens)"

    def test_bad_arguments_are_refused_before_running(self):
        """An empty or 3-D prompt, max_new_tokens -1, temperature -1 or top_k 0: ValueError naming the value."""
        model = float64_gpt(109)
        spy = ForwardSpy(model)
        raises_naming(lambda: generate(model, [], 2), ValueError, ["(0,)"], "generate([], 2)")
        raises_naming(lambda: generate(model, np.zeros((1, 1, 2), dtype=int), 2), ValueError, ["(1, 1, 2)"],
                      "generate of a 3-D prompt")
        raises_naming(lambda: generate(model, [[1]], -1), ValueError, ["-1"], "max_new_tokens=-1")
        raises_naming(lambda: generate(model, [[1]], 3, temperature=-1.0), ValueError, ["-1"], "temperature=-1")
        raises_naming(lambda: generate(model, [[1]], 3, top_k=0), ValueError, ["0"], "top_k=0")
        assert spy.calls == [], f"the model ran {len(spy.calls)} times for refused arguments"


# -- optimize -------------------------------------------------------------------------------------------------


def matmul_flops(a_shape, b_shape) -> int:
    """2 m k n per matrix product (a multiply and an add per term), times the broadcast batch axes."""
    batch = math.prod(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    return 2 * batch * a_shape[-2] * a_shape[-1] * b_shape[-1]


class FlopCounter:
    """FLOPs of every matrix product, per call of model.forward: Tensor @ (every Linear, the head) and attention."""

    def __init__(self, model, monkeypatch):
        self.steps, self.flops = [], 0
        matmul, attend = Tensor.__matmul__, attention_module.scaled_dot_product_attention

        def counting_matmul(a, b):
            self.flops += matmul_flops(a.shape, np.shape(getattr(b, "data", b)))
            return matmul(a, b)

        def counting_attention(q, k, v, *args, **kwargs):
            q_shape, k_shape, v_shape = (np.shape(getattr(x, "data", x)) for x in (q, k, v))
            keys_t = k_shape[:-2] + (k_shape[-1], k_shape[-2])
            scores = np.broadcast_shapes(q_shape[:-2], k_shape[:-2]) + (q_shape[-2], k_shape[-2])
            self.flops += matmul_flops(q_shape, keys_t) + matmul_flops(scores, v_shape)  # q k^T, then P v
            return attend(q, k, v, *args, **kwargs)

        monkeypatch.setattr(Tensor, "__matmul__", counting_matmul)
        monkeypatch.setattr(attention_module, "scaled_dot_product_attention", counting_attention)
        forward = model.forward

        def per_step(*args, **kwargs):
            before = self.flops
            out = forward(*args, **kwargs)
            self.steps.append(self.flops - before)
            return out

        model.forward = per_step


# The speed-up workload: 128 new tokens after a 320-token prompt, two sequences, one block 64 wide.
# Uncached, step t reruns the model over 320 + t tokens; cached, it runs one token against 320 + t keys.
# A cached step costs about 30 recorded ops whatever t is; the long prompt gives the uncached steps enough
# arithmetic that the speed-up measures the cache, not the framework's fixed cost per op (see the lesson).
SPEED = dict(vocab_size=65, block_size=448, n_layer=1, n_head=4, n_embd=64)
SPEED_BATCH, SPEED_PROMPT, SPEED_NEW = 2, 320, 128
SPEED_BUDGET = 1 / 8  # the reference measures about 1/19 (35 ms against 660 ms): a margin over 2x


@pytest.mark.checkpoint("optimize")
class TestOptimize:
    def test_a_decode_step_costs_linear_work(self, monkeypatch):
        """Counted FLOPs: cached decode step t grows by 4 B L C per step (linear); uncached step t costs (prompt + t) times it.

        Hint: with the cache, step t runs ONE token through every layer and attends over the t keys so far: its cost
        is a constant plus 4 B L C per key. Feeding the whole sequence again, or prefilling again, costs t times more.
        """
        batch, layers, width, prompt, new = 2, 2, 16, 3, 24
        model = GPT(GPTConfig(vocab_size=VOCAB, block_size=prompt + new, n_layer=layers, n_head=2, n_embd=width),
                    rng=np.random.default_rng(120))
        ids = random_ids((batch, prompt), 121)
        counter = FlopCounter(model, monkeypatch)
        generate(model, ids, new, temperature=0)
        cached_steps, counter.steps = counter.steps, []
        model.generate(ids, new, temperature=0)
        uncached_steps = counter.steps
        assert len(cached_steps) == new, f"a prefill and {new - 1} decode steps expected; the model ran {len(cached_steps)} times"
        per_key = 4 * batch * layers * width  # q . k and p * v for one more key, in every layer and head
        growth = np.diff(cached_steps[1:]).tolist()
        assert growth == [per_key] * (new - 2), (
            f"each cached decode step should cost exactly {per_key:,} FLOPs more than the one before (4 B L C, one more "
            f"key); the increments were {growth[:6]}...")
        for step in range(1, new):
            context = prompt + step
            assert uncached_steps[step] == context * cached_steps[step], (
                f"step {step}: uncached {uncached_steps[step]:,} FLOPs should be {context} (its context) times the "
                f"cached step's {cached_steps[step]:,}")
        ratio = sum(uncached_steps) / sum(cached_steps)
        assert ratio > new / 4, f"uncached generation did only {ratio:.1f}x the cached FLOPs"

    @pytest.mark.budget
    def test_cached_generation_is_8x_faster(self):
        """128 new tokens after a 320-token prompt, B=2: generate with the cache in at most 1/8 of model.generate's time.

        One interleaved round (each uncached run is about 0.7 s); a ratio over budget is measured again for up to
        3 s before the test fails, so a burst of load does not fail it.
        """
        model = GPT(GPTConfig(**SPEED), rng=np.random.default_rng(122))
        prompt = random_ids((SPEED_BATCH, SPEED_PROMPT), 123, vocabulary=SPEED["vocab_size"])
        assert_time_ratio(lambda: generate(model, prompt, SPEED_NEW, temperature=0),
                          lambda: model.generate(prompt, SPEED_NEW, temperature=0), SPEED_BUDGET,
                          f"generate with a KV cache vs model.generate, {SPEED_NEW} new tokens after "
                          f"{SPEED_PROMPT}, B={SPEED_BATCH}, 1 block 64 wide", rounds=1,
                          advice="a decode step should run one token through the model, not the whole sequence; "
                                 "np.concatenate on the cache or a copy of it each step costs time too")

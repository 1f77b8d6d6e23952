"""Kata 10 · Tokenization: from text to integer ids and back, without losing a byte.

A language model reads and writes integers. A tokenizer is the pair of maps between
text and those integers, and it must be lossless: `decode(encode(text)) == text`.

- `CharTokenizer`: one id per character of a corpus. A tiny vocabulary (65-100 ids for
  English) and long sequences: one id per character.
- `BPETokenizer`: byte-level byte-pair encoding, as in GPT-2. The vocabulary starts as
  the 256 byte values, so every string has an encoding; training then adds merges, each
  a new id for the most frequent adjacent pair of ids in a corpus. Common words become
  one id, rare ones stay spelled out in bytes. Special tokens (`<|endoftext|>`) are
  single ids that no text can be split into and no merge can make.

"Every string" means every string UTF-8 can encode: a Python `str` may hold a lone
surrogate ("\\ud800"), which is not a character and has no UTF-8 bytes; encoding it is
a ValueError naming its position. Decoding works on any ids in range: a byte sequence
that is not valid UTF-8 (half a character) becomes U+FFFD, the replacement character.
"""

from __future__ import annotations

import heapq
import json
import operator
import re
from collections import Counter, defaultdict
from pathlib import Path

CORPUS = "pride_and_prejudice_vol1.txt"  # in katas/data/: 231 KB of English, see katas/data/README.md
FILE_FORMAT = "tinytorch-bpe"
FILE_VERSION = 1


def load_text(name: str = CORPUS) -> str:
    """A text shipped in katas/data/ (by default Volume I of Pride and Prejudice), as a str."""
    here, cwd = Path(__file__).resolve().parent, Path.cwd().resolve()
    for folder in (here, *here.parents, cwd, *cwd.parents):
        candidate = folder / "katas" / "data" / name
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError(f"{name} is not in katas/data/ above {here} or above the working directory {cwd}. "
                            "It ships with the repository (see katas/data/README.md): run from the repository.")


def utf8(text: str) -> bytes:
    """`text` as UTF-8 bytes; a lone surrogate, which UTF-8 cannot encode, is a ValueError naming its position."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"the text holds a lone surrogate {text[error.start]!r} at position {error.start}: it is "
                         "not a character, and UTF-8 has no bytes for it. Text read with "
                         "errors='surrogateescape' or sliced from UTF-16 can contain one") from None


def check_ids(ids, vocab_size: int, who: str) -> list[int]:
    """`ids` (a list, tuple or numpy array of integers) as a list of Python ints in 0..vocab_size-1.

    A non-integer is a TypeError; an id out of range is a ValueError naming the id, its
    position and the vocabulary size.
    """
    # BEGIN SOLUTION characters: convert each id with operator.index; raise ValueError naming the first id outside 0..vocab_size-1, its position and vocab_size
    ids = [operator.index(i) for i in ids]
    if ids and not 0 <= min(ids) <= max(ids) < vocab_size:
        position, bad = next((p, i) for p, i in enumerate(ids) if not 0 <= i < vocab_size)
        raise ValueError(f"{who}: id {bad} at position {position} is out of range; the vocabulary has "
                         f"{vocab_size} tokens, ids 0..{vocab_size - 1}")
    return ids
    # END SOLUTION


# -- characters ----------------------------------------------------------------------------


class CharTokenizer:
    """One id per character; the vocabulary is the sorted set of the characters of `corpus`.

    unk=False (the default): encoding a character the corpus never had is a ValueError
    naming the character and its position. Nothing is lost in silence.
    unk=True: id 0 is the token "<unk>"; unknown characters encode to 0, and decode writes
    "<unk>" for it. Then decode(encode(text)) == text only if every character was known.
    """

    UNK = "<unk>"

    def __init__(self, corpus: str, unk: bool = False):
        self.unk = unk
        # BEGIN SOLUTION characters: self.itos: the tokens in id order ("<unk>" first if unk, then the sorted distinct characters); self.stoi: token -> id
        self.itos = ([self.UNK] if unk else []) + sorted(set(corpus))
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        # END SOLUTION

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """The id of each character of `text`, as a list of ints."""
        # BEGIN SOLUTION characters: look up each character; unknown ones become 0 with unk, else raise ValueError naming the character and its position
        if self.unk:
            return [self.stoi.get(ch, 0) for ch in text]
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as missing:
            ch = missing.args[0]
            raise ValueError(f"CharTokenizer.encode: character {ch!r} (U+{ord(ch):04X}) at position "
                             f"{text.index(ch)} is not in the vocabulary of {self.vocab_size} characters; build "
                             "the tokenizer from a corpus that has it, or pass unk=True") from None
        # END SOLUTION

    def decode(self, ids) -> str:
        """The text of `ids`: the characters of the ids, joined."""
        # BEGIN SOLUTION characters: check the ids (check_ids), then join the token of each id
        return "".join(self.itos[i] for i in check_ids(ids, self.vocab_size, "CharTokenizer.decode"))
        # END SOLUTION


# -- byte-pair encoding: the pieces ------------------------------------------------------------


def count_pairs(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Add `weight` to counts[(a, b)] for every adjacent pair of `ids`, overlapping pairs included.

    `counts` is updated in place and returned; with None, a new dict is made.
    count_pairs([1, 1, 1, 2]) == {(1, 1): 2, (1, 2): 1}.
    """
    # BEGIN SOLUTION pairs: walk the adjacent pairs (zip(ids, ids[1:])) and add weight to each pair's count
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts
    # END SOLUTION


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """A new list: `ids` with each occurrence of `pair`, found left to right without overlap, replaced by `new_id`.

    merge_pair([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]; the input list is not changed.
    """
    # BEGIN SOLUTION pairs: scan with an index; where ids[i], ids[i + 1] is the pair, append new_id and skip two, else append ids[i]
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
    # END SOLUTION


def split_chunks(text: str) -> list[str]:
    """Cut `text` into the chunks BPE merges within, as GPT-2 does: "".join(split_chunks(text)) == text.

    A chunk is a contraction ('s 't 're 've 'm 'll 'd), a run of letters, of digits or of
    other symbols (each may take one leading space), or a run of whitespace. A whitespace
    run before a word gives its last space to the word: "a  b" -> ["a", " ", " b"].
    """
    # BEGIN SOLUTION chunks: re.findall with GPT-2's pattern in Python's re: letters are [^\W\d_], digits \d, symbols [^\w\s] or _
    return re.findall(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+""", text)
    # END SOLUTION


# -- byte-pair encoding: the tokenizer ---------------------------------------------------------


class BPETokenizer:
    """Byte-level BPE with special tokens.

    Ids 0..255 are the byte values; the special tokens come next, in the order given
    (256, 257, ...), so their ids never move; then one id per merge, in the order learned.

        self.special_tokens  {token text: id}
        self.merges          {(a, b): new id}, in the order learned (a dict keeps its order)
        self.vocab           {id: the bytes of that token}
    """

    def __init__(self, special_tokens=()):
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self.special_tokens: dict[str, int] = {}
        self.cache: dict[str, list[int]] = {}  # chunk -> its ids: a text repeats its words
        for token in special_tokens:
            # BEGIN SOLUTION special_tokens: refuse a token that is not a non-empty str or is given twice (ValueError naming it); give it the next free id, and its UTF-8 bytes in vocab
            if not isinstance(token, str) or not token:
                raise ValueError(f"BPETokenizer: a special token must be a non-empty str, got {token!r}")
            if token in self.special_tokens:
                raise ValueError(f"BPETokenizer: special token {token!r} is given twice")
            self.special_tokens[token] = len(self.vocab)
            self.vocab[len(self.vocab)] = token.encode("utf-8")
            # END SOLUTION

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split_special(self, text: str) -> list[str]:
        """`text` cut around its special tokens: [ordinary, special, ordinary, ...]; odd positions are special.

        With no special tokens this is [text].
        """
        if not self.special_tokens:
            return [text]
        # BEGIN SOLUTION special_tokens: re.split on the escaped special tokens joined by |, longest first, inside one capturing group
        longest_first = sorted(self.special_tokens, key=len, reverse=True)
        return re.split("(" + "|".join(re.escape(token) for token in longest_first) + ")", text)
        # END SOLUTION

    def add_merge(self, pair: tuple[int, int]) -> int:
        """Record the merge of `pair` into the next free id, whose bytes are those of its two tokens; return the id."""
        # BEGIN SOLUTION train: the new id is len(self.vocab); record it in self.merges and its bytes (the two tokens' bytes joined) in self.vocab
        new_id = len(self.vocab)
        self.merges[pair] = new_id
        self.vocab[new_id] = self.vocab[pair[0]] + self.vocab[pair[1]]
        return new_id
        # END SOLUTION

    def train(self, text: str, vocab_size: int) -> None:
        """Learn merges from `text` until the vocabulary has `vocab_size` tokens (bytes, special tokens, merges).

        Each merge is of the most frequent adjacent pair; ties go to the smallest pair,
        comparing (first id, second id). Pairs are counted within chunks (split_chunks)
        of the text with its special tokens cut out, so no merge crosses a chunk or makes
        a special token. Training stops early if no pair is left. Earlier merges are forgotten.
        """
        # BEGIN SOLUTION train: check vocab_size; count each distinct chunk once, weighted by its frequency; merge the most frequent pair (ties: the smallest) into every chunk until the vocabulary is full (recounting per merge passes here; the optimize checkpoint asks for updates)
        first_merge = 256 + len(self.special_tokens)
        if vocab_size < first_merge:
            raise ValueError(f"BPETokenizer.train: vocab_size={vocab_size} is too small; the 256 bytes and "
                             f"{len(self.special_tokens)} special tokens need {first_merge}")
        utf8(text)
        self.merges, self.cache = {}, {}
        self.vocab = {i: token for i, token in self.vocab.items() if i < first_merge}
        chunks = Counter(chunk for part in self.split_special(text)[::2] for chunk in split_chunks(part))
        words = [list(chunk.encode("utf-8")) for chunk in chunks]  # each distinct chunk once ...
        weights = list(chunks.values())  # ... with the number of times it occurs
        pair_counts, holders = {}, defaultdict(set)  # pair -> count, pair -> the words that hold it
        for w, ids in enumerate(words):
            count_pairs(ids, pair_counts, weights[w])
            for pair in zip(ids, ids[1:]):
                holders[pair].add(w)
        # A heap of (-count, pair) pops the most frequent pair, the smallest on ties. Counts
        # change as words merge: push the new count, and skip entries that are out of date.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        while len(self.vocab) < vocab_size and heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -negative_count:
                continue
            new_id = self.add_merge(pair)
            changed = set()
            for w in holders.pop(pair):
                ids = words[w]
                merged = merge_pair(ids, pair, new_id)
                if len(merged) == len(ids):
                    continue  # the word lost this pair to an earlier merge
                count_pairs(ids, pair_counts, -weights[w])  # take the word's old pairs out ...
                count_pairs(merged, pair_counts, weights[w])  # ... and put its new ones in
                for new_pair in zip(merged, merged[1:]):
                    holders[new_pair].add(w)
                changed.update(zip(ids, ids[1:]), zip(merged, merged[1:]))
                words[w] = merged
            for changed_pair in changed:
                count = pair_counts[changed_pair]
                if count > 0:
                    heapq.heappush(heap, (-count, changed_pair))
                else:
                    del pair_counts[changed_pair]
        # END SOLUTION

    def encode_chunk(self, data: bytes) -> list[int]:
        """The ids of one chunk's bytes: apply merges, always the earliest-learned pair present first."""
        # BEGIN SOLUTION encode: start from the bytes; repeatedly find the adjacent pair with the smallest merge id and merge it everywhere; stop when no pair has a merge
        ids = list(data)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        return ids
        # END SOLUTION

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of `text`, reading any special-token text in it as ordinary text."""
        # BEGIN SOLUTION encode: encode each chunk of the text (split_chunks) and concatenate; remember each chunk's ids in self.cache
        ids = []
        for chunk in split_chunks(text):
            if chunk not in self.cache:
                self.cache[chunk] = self.encode_chunk(chunk.encode("utf-8"))
            ids.extend(self.cache[chunk])
        return ids
        # END SOLUTION

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, as a list of ints; each special token in it is its one id."""
        # BEGIN SOLUTION encode: check the text (utf8); then for each part of split_special: a special token's id, or the ids of encode_ordinary
        utf8(text)
        ids = []
        for position, part in enumerate(self.split_special(text)):
            if position % 2:
                ids.append(self.special_tokens[part])
            else:
                ids.extend(self.encode_ordinary(part))
        return ids
        # END SOLUTION

    def decode(self, ids) -> str:
        """The text of `ids`. Bytes that are not valid UTF-8 (half a character) become U+FFFD."""
        # BEGIN SOLUTION encode: check the ids (check_ids); join the bytes of all tokens first, then decode that one byte string with errors="replace"
        data = b"".join(self.vocab[i] for i in check_ids(ids, self.vocab_size, "BPETokenizer.decode"))
        return data.decode("utf-8", errors="replace")
        # END SOLUTION

    # -- files ------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the tokenizer to `path` as JSON: format, version, special tokens and merges, in id order."""
        # BEGIN SOLUTION save_load: json.dumps a dict of format, version, the special tokens (a list, in id order) and the merges (a list of [a, b], in the order learned)
        data = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "special_tokens": list(self.special_tokens),
            "merges": [list(pair) for pair in self.merges],
        }
        Path(path).write_text(json.dumps(data) + "\n", encoding="utf-8")
        # END SOLUTION

    @classmethod
    def load(cls, path) -> BPETokenizer:
        """The tokenizer saved in `path`. A file that is not one, or is damaged, is a ValueError saying what is wrong."""
        # BEGIN SOLUTION save_load: parse the JSON (ValueError if it is not), check format and version, build cls(special_tokens), then add_merge each merge after checking it is two ids that exist already
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a tokenizer file, or a truncated or damaged one: it is not valid "
                             f"JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path}: not a tokenizer file: format is {found!r}, expected {FILE_FORMAT!r}")
        if data.get("version") != FILE_VERSION:
            raise ValueError(f"{path}: tokenizer file version {data.get('version')!r}; this code reads version "
                             f"{FILE_VERSION}")
        special_tokens, merges = data.get("special_tokens"), data.get("merges")
        if not isinstance(special_tokens, list) or not isinstance(merges, list):
            raise ValueError(f"{path}: 'special_tokens' and 'merges' must both be lists, got "
                             f"{type(special_tokens).__name__} and {type(merges).__name__}")
        try:
            tokenizer = cls(special_tokens)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        for number, pair in enumerate(merges):
            known = len(tokenizer.vocab)
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(type(i) is int and 0 <= i < known for i in pair)):
                raise ValueError(f"{path}: merge {number} is {pair!r}; a merge must be two ids of tokens that "
                                 f"exist before it (0..{known - 1})")
            if tuple(pair) in tokenizer.merges:
                raise ValueError(f"{path}: merge {number} repeats the pair {pair!r}")
            tokenizer.add_merge(tuple(pair))
        return tokenizer
        # END SOLUTION

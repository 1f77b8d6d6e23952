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

# Kata 10_tokenization: each `raise NotImplementedError(...)` below marks code for you to write.
# Lesson: katas/10_tokenization/README.md    Tests: python -m pytest katas/10_tokenization

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
    raise NotImplementedError("10_tokenization · characters: convert each id with operator.index; raise ValueError naming the first id outside 0..vocab_size-1, its position and vocab_size")


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
        raise NotImplementedError("10_tokenization · characters: self.itos: the tokens in id order (\"<unk>\" first if unk, then the sorted distinct characters); self.stoi: token -> id")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """The id of each character of `text`, as a list of ints."""
        raise NotImplementedError("10_tokenization · characters: look up each character; unknown ones become 0 with unk, else raise ValueError naming the character and its position")

    def decode(self, ids) -> str:
        """The text of `ids`: the characters of the ids, joined."""
        raise NotImplementedError("10_tokenization · characters: check the ids (check_ids), then join the token of each id")


# -- byte-pair encoding: the pieces ------------------------------------------------------------


def count_pairs(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Add `weight` to counts[(a, b)] for every adjacent pair of `ids`, overlapping pairs included.

    `counts` is updated in place and returned; with None, a new dict is made.
    count_pairs([1, 1, 1, 2]) == {(1, 1): 2, (1, 2): 1}.
    """
    raise NotImplementedError("10_tokenization · pairs: walk the adjacent pairs (zip(ids, ids[1:])) and add weight to each pair's count")


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """A new list: `ids` with each occurrence of `pair`, found left to right without overlap, replaced by `new_id`.

    merge_pair([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]; the input list is not changed.
    """
    raise NotImplementedError("10_tokenization · pairs: scan with an index; where ids[i], ids[i + 1] is the pair, append new_id and skip two, else append ids[i]")


def split_chunks(text: str) -> list[str]:
    """Cut `text` into the chunks BPE merges within, as GPT-2 does: "".join(split_chunks(text)) == text.

    A chunk is a contraction ('s 't 're 've 'm 'll 'd), a run of letters, of digits or of
    other symbols (each may take one leading space), or a run of whitespace. A whitespace
    run before a word gives its last space to the word: "a  b" -> ["a", " ", " b"].
    """
    raise NotImplementedError("10_tokenization · chunks: re.findall with GPT-2's pattern in Python's re: letters are [^\\W\\d_], digits \\d, symbols [^\\w\\s] or _")


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
            raise NotImplementedError("10_tokenization · special_tokens: refuse a token that is not a non-empty str or is given twice (ValueError naming it); give it the next free id, and its UTF-8 bytes in vocab")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split_special(self, text: str) -> list[str]:
        """`text` cut around its special tokens: [ordinary, special, ordinary, ...]; odd positions are special.

        With no special tokens this is [text].
        """
        if not self.special_tokens:
            return [text]
        raise NotImplementedError("10_tokenization · special_tokens: re.split on the escaped special tokens joined by |, longest first, inside one capturing group")

    def add_merge(self, pair: tuple[int, int]) -> int:
        """Record the merge of `pair` into the next free id, whose bytes are those of its two tokens; return the id."""
        raise NotImplementedError("10_tokenization · train: the new id is len(self.vocab); record it in self.merges and its bytes (the two tokens' bytes joined) in self.vocab")

    def train(self, text: str, vocab_size: int) -> None:
        """Learn merges from `text` until the vocabulary has `vocab_size` tokens (bytes, special tokens, merges).

        Each merge is of the most frequent adjacent pair; ties go to the smallest pair,
        comparing (first id, second id). Pairs are counted within chunks (split_chunks)
        of the text with its special tokens cut out, so no merge crosses a chunk or makes
        a special token. Training stops early if no pair is left. Earlier merges are forgotten.
        """
        raise NotImplementedError("10_tokenization · train: check vocab_size; count each distinct chunk once, weighted by its frequency; merge the most frequent pair (ties: the smallest) into every chunk until the vocabulary is full (recounting per merge passes here; the optimize checkpoint asks for updates)")

    def encode_chunk(self, data: bytes) -> list[int]:
        """The ids of one chunk's bytes: apply merges, always the earliest-learned pair present first."""
        raise NotImplementedError("10_tokenization · encode: start from the bytes; repeatedly find the adjacent pair with the smallest merge id and merge it everywhere; stop when no pair has a merge")

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of `text`, reading any special-token text in it as ordinary text."""
        raise NotImplementedError("10_tokenization · encode: encode each chunk of the text (split_chunks) and concatenate; remember each chunk's ids in self.cache")

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, as a list of ints; each special token in it is its one id."""
        raise NotImplementedError("10_tokenization · encode: check the text (utf8); then for each part of split_special: a special token's id, or the ids of encode_ordinary")

    def decode(self, ids) -> str:
        """The text of `ids`. Bytes that are not valid UTF-8 (half a character) become U+FFFD."""
        raise NotImplementedError("10_tokenization · encode: check the ids (check_ids); join the bytes of all tokens first, then decode that one byte string with errors=\"replace\"")

    # -- files ------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the tokenizer to `path` as JSON: format, version, special tokens and merges, in id order."""
        raise NotImplementedError("10_tokenization · save_load: json.dumps a dict of format, version, the special tokens (a list, in id order) and the merges (a list of [a, b], in the order learned)")

    @classmethod
    def load(cls, path) -> BPETokenizer:
        """The tokenizer saved in `path`. A file that is not one, or is damaged, is a ValueError saying what is wrong."""
        raise NotImplementedError("10_tokenization · save_load: parse the JSON (ValueError if it is not), check format and version, build cls(special_tokens), then add_merge each merge after checking it is two ids that exist already")

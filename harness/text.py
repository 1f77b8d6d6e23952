"""Fitting messages to a terminal: wrap what must be read whole, shorten the rest at a word.

A failure message, its expected/got values and a hint are wrapped, never cut: a cut
sentence (`...rearrange the formula so ne`) teaches nothing. One-line summaries that
only name something (an "also red" test) are shortened at a word, with an ellipsis.
"""

from __future__ import annotations

import re
import textwrap

ELLIPSIS = "…"
_NUMPY_SCALAR = re.compile(r"\bnp\.(?:float|int|uint|complex|longdouble|bool)\w*\(([^()]*)\)")
_NUMPY_BOOL = re.compile(r"\bnp\.(True|False)_")


def plain_numbers(text: str) -> str:
    """numpy 2 writes scalars as `np.float32(-2.4558926)`; a learner reads `-2.4558926`."""
    return _NUMPY_BOOL.sub(r"\1", _NUMPY_SCALAR.sub(r"\1", text))


def wrap(text: str, width: int, indent: str = "", continuation: str | None = None) -> list[str]:
    """Each line of `text` wrapped to `width` at spaces, never inside a word or a piece of code.

    The first line starts with `indent`, the lines it continues onto with `continuation`
    (the indent plus two spaces by default); a line's own leading spaces are kept.
    """
    continuation = indent + "  " if continuation is None else continuation
    lines = []
    for line in text.splitlines() or [""]:
        own = line[: len(line) - len(line.lstrip())]
        wrapped = textwrap.wrap(line.strip(), max(width, len(continuation) + len(own) + 20),
                                initial_indent=indent + own, subsequent_indent=continuation + own,
                                break_long_words=False, break_on_hyphens=False)
        lines.extend(wrapped or [indent + own])
    return lines


def shorten(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters, cut at a word with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: max(1, width - len(ELLIPSIS))]
    if " " in cut and not text[len(cut)].isspace():
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + ELLIPSIS

"""How many threads numpy's BLAS may use, asked for before numpy is first imported.

One thread: on a small machine a BLAS thread pool contending with other work makes timings
erratic, and the katas' arrays are too small to gain from threads. A variable the caller set
is left as it is. Only the standard library is imported here, so this runs before numpy does.
"""

from __future__ import annotations

import os

VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def ask_for_one_thread() -> None:
    """Give BLAS one thread unless the environment says otherwise (effective only before numpy loads)."""
    for variable in VARIABLES:
        os.environ.setdefault(variable, "1")


def on_one_thread() -> bool:
    """True when every BLAS this process may load runs on the calling thread."""
    return all(os.environ.get(variable) == "1" for variable in VARIABLES)

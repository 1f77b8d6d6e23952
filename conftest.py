"""Loads the kata harness (harness/plugin.py) into every pytest run in this repository."""

import os

# One BLAS thread: on a small machine, a BLAS thread pool contending with other work makes
# timings erratic, and the katas' arrays are too small to gain from threads. This must be set
# before numpy is first imported, which is why it lives here and not in the plugin.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

pytest_plugins = ["harness.plugin"]

"""Loads the kata harness (harness/plugin.py) into every pytest run in this repository."""

from harness import blas

# One BLAS thread (see harness/blas.py). It must be asked for before numpy is first imported,
# which is why it happens here and not in the plugin.
blas.ask_for_one_thread()

pytest_plugins = ["harness.plugin"]

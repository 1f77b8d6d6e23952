"""Loads the kata harness (harness/plugin.py) into every pytest run in this repository."""

pytest_plugins = ["harness.plugin"]

"""The scoreboard: run every kata and milestone, each in its own process, and show how far you are.

    python scoreboard.py            (see `python scoreboard.py --help`)

The machinery lives in harness/scoreboard.py.
"""

import os
import sys

from harness.scoreboard import main

if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `python scoreboard.py | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)

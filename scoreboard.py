"""The scoreboard: run every kata and milestone, each in its own process, and show how far you are.

    python scoreboard.py            (see `python scoreboard.py --help`)

The machinery lives in harness/scoreboard.py.
"""

import sys

from harness.scoreboard import main

if __name__ == "__main__":
    sys.exit(main())

"""A process that imports numpy and pytest once, then forks a fresh child for each suite run.

The contract and the mutant checks run a kata suite several hundred times. As separate
`python -m pytest` processes, most of each run is interpreter start-up and imports; a
child forked from a process that has already imported them starts in milliseconds and is
otherwise a fresh process: nothing of pytest's (no session, no plugins, no tinytorch) is
loaded in the server before the fork.

Protocol, one JSON object per line: the parent writes {"args", "env", "output", "timeout"};
the server answers {"returncode", "cpu_seconds"} when the child has ended (a negative code
is the signal that ended it; -9 after the time limit).

    python -m tests.forkserver      (started by tests.contract.ForkServer, not by hand)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def _child(job: dict) -> None:
    """In the forked child: become the pytest run the job describes, and never return."""
    code = 70
    try:
        os.setsid()  # its own process group: the server can stop it and anything it started
        os.environ.clear()
        os.environ.update(job["env"])
        os.chdir(job["cwd"])
        output = os.open(job["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(output, 1)
        os.dup2(output, 2)
        sys.stdin.close()
        sys.argv = ["pytest", *job["args"]]
        import pytest

        code = int(pytest.main(job["args"]))
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as error:  # anything at all: report it as the run's output and exit code
        try:
            os.write(2, f"forkserver child: {type(error).__name__}: {error}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _wait(pid: int, timeout: float) -> tuple[int, float]:
    """(exit code, CPU seconds) of the child, killed with its group after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            _, status, usage = os.wait4(pid, 0)
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def serve() -> None:
    # Import what every run needs, before any fork; nothing that reads the environment at import.
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import _pytest.config  # noqa: F401
    import _pytest.python  # noqa: F401
    import pytest_timeout  # noqa: F401
    import xdist.plugin  # noqa: F401
    # The harness, which every run loads as its plugin; it imports no tinytorch module at import.
    import harness.budgets  # noqa: F401
    import harness.checks  # noqa: F401
    import harness.plugin  # noqa: F401

    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(job)
        returncode, cpu_seconds = _wait(pid, float(job["timeout"]))
        sys.stdout.write(json.dumps({"returncode": returncode, "cpu_seconds": cpu_seconds}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()

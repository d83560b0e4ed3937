"""Run a command under ``torchrun`` on CPUs, and say where it stood if it hangs.

A hung multi-process run that is simply killed leaves nothing to debug (CI once saw a
two-process train time out after 300 s with only its loading messages on stderr). Here every
rank runs with Python's faulthandler on; on a timeout each rank gets SIGABRT, so its stderr ends
with the Python stack of every thread, and the test fails with that tail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

__all__ = ["run_torchrun"]

_STACKS_WAIT_S = 30


def run_torchrun(processes: int, command: list[str], *, timeout: float = 300) -> str:
    """Run ``torchrun --standalone --nproc_per_node PROCESSES COMMAND``; returns its stderr.

    Fails the test with the stderr's tail when the run exits non-zero or outlives ``timeout``.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd()),
           "PYTHONFAULTHANDLER": "1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         str(processes), *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, stderr = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stderr = _stacks_of_hung_ranks(run)
        pytest.fail(f"torchrun hung for {timeout:.0f} s; its ranks' stacks:\n{stderr[-8000:]}",
                    pytrace=False)
    if run.returncode != 0:
        pytest.fail(f"torchrun exited with {run.returncode}:\n{stderr[-3000:]}", pytrace=False)
    return stderr


def _stacks_of_hung_ranks(run: subprocess.Popen[str]) -> str:
    """SIGABRT to every rank, then to torchrun if it still waits; torchrun's stderr.

    With faulthandler on, each process aborted prints its Python stack first.
    """
    for rank in psutil.Process(run.pid).children(recursive=True):
        rank.send_signal(signal.SIGABRT)
    try:
        return run.communicate(timeout=_STACKS_WAIT_S)[1]
    except subprocess.TimeoutExpired:  # no rank left, or torchrun itself is what hangs
        run.send_signal(signal.SIGABRT)
    try:
        return run.communicate(timeout=_STACKS_WAIT_S)[1]
    except subprocess.TimeoutExpired:
        run.kill()
        return run.communicate()[1]

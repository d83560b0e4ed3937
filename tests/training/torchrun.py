"""Run a command under ``torchrun`` on CPUs, and say where it stood if it hangs.

A hung multi-process run that is simply killed leaves nothing to debug: CI once saw the
two-process train time out after 300 s with only its loading messages on stderr. Here every
rank runs with Python's faulthandler on; on a timeout each rank gets SIGABRT, so its stderr ends
with the Python stack of every thread. A run that hangs is tried once more, with those stacks
raised as a warning that CI prints; a second hang, or any failure, fails the test with the
stderr's tail. (The one hang caught so far, in ~45 runs, was gloo's teardown deadlock that
:func:`whisper_ja.training.processes.end_processes` now avoids.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

__all__ = ["run_torchrun"]

_STACKS_WAIT_S = 30


def run_torchrun(processes: int, command: list[str], *, timeout: float = 180,
                 attempts: int = 2, clean: Sequence[Path] = ()) -> str:
    """Run ``torchrun --standalone --nproc_per_node PROCESSES COMMAND``; returns its stderr.

    Args:
        processes: Ranks to start.
        command: What each rank runs (a script and its arguments, or ``-m module ...``).
        timeout: Seconds after which a run counts as hung (alone a run here takes 5-20 s).
        attempts: Runs allowed when the earlier ones hung.
        clean: Folders a hung run may have half-written, removed before the next attempt.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd()),
           "PYTHONFAULTHANDLER": "1"}
    for attempt in range(1, attempts + 1):
        run = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             str(processes), *command],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            _, stderr = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = f"torchrun hung for {timeout:.0f} s (attempt {attempt} of {attempts}); " \
                     f"its ranks' stacks:\n{_stacks_of_hung_ranks(run)[-12000:]}"
            if attempt == attempts:
                pytest.fail(stacks, pytrace=False)
            warnings.warn(stacks, stacklevel=2)
            for folder in clean:
                shutil.rmtree(folder, ignore_errors=True)
            continue
        if run.returncode != 0:
            pytest.fail(f"torchrun exited with {run.returncode}:\n{stderr[-3000:]}",
                        pytrace=False)
        return stderr
    raise ValueError(f"attempts must be at least 1, not {attempts}")


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

"""A multi-process run ends only after gloo's threads had time to drop their last work."""

from __future__ import annotations

import pytest

from whisper_ja.training import processes


class _Recorder:
    """Stands in for accelerate's Accelerator; records the calls in order."""

    def __init__(self, num_processes: int, calls: list[str]) -> None:
        self.num_processes = num_processes
        self.calls = calls

    def wait_for_everyone(self) -> None:
        self.calls.append("wait")

    def end_training(self) -> None:
        self.calls.append("end")


@pytest.mark.parametrize(("processes_count", "expected"), [
    (2, ["wait", f"sleep {processes.GLOO_DRAIN_S}", "end"]),
    (1, ["wait", "end"]),  # one process: no gloo threads, no pause
])
def test_the_group_ends_after_everyone_waited_and_gloo_drained(monkeypatch, processes_count,
                                                               expected):
    calls: list[str] = []
    monkeypatch.setattr(processes.time, "sleep", lambda s: calls.append(f"sleep {s}"))
    processes.end_processes(_Recorder(processes_count, calls))
    assert calls == expected

"""Ending a multi-process (torchrun, gloo) run without gloo's teardown deadlock."""

from __future__ import annotations

import time

from accelerate import Accelerator

__all__ = ["GLOO_DRAIN_S", "end_processes"]

GLOO_DRAIN_S = 0.5
"""How long the main thread lets gloo's worker threads finish before the group goes."""


def end_processes(accelerator: Accelerator) -> None:
    """Wait for every process, let gloo's threads finish, then end the run's process group.

    After a collective returns, a gloo worker thread still drops its last references to the
    finished work, holding the process group's lock; a work that holds tensors Python made
    (``gather_object``'s, kept alive by the barrier that follows it) needs the GIL for that.
    The group itself is destroyed in the main thread, by ``destroy_process_group`` or when the
    DDP wrapper is freed, and its destructor takes that lock while the main thread holds the
    GIL: a deadlock. CI saw it once as a two-process train that never exited, and it was caught
    here once under ``pytest -n 2``: py-spy showed the main thread in ``~ProcessGroupGloo``
    (from the DDP reducer's dealloc) and a gloo thread in ``~AsyncAllgatherWork`` waiting for
    the GIL (torch's tracker: pytorch#75097; pytorch#179291 describes the same GIL wait at
    exit). Sleeping releases the GIL, so the threads finish first. Torch offers no call that
    waits for them; the pause costs half a second once per run, and only with several
    processes.
    """
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:
        time.sleep(GLOO_DRAIN_S)
    accelerator.end_training()

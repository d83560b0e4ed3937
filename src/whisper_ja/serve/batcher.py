"""Concurrent requests batched onto one model through a bounded queue.

Requests wait in an ``asyncio.Queue`` of ``queue_size`` places (a full queue answers
:class:`~whisper_ja.errors.ServerBusyError` at once instead of letting latency grow without
bound). One worker takes the oldest request, lets others join for ``batch_wait_ms`` when the
queue is empty, groups what it has by decoding options, and runs each group as one batch on a
single model thread, so the event loop keeps answering (``/health``, uploads) while the model
works.

A request gives up when its deadline passes (``limits.request_timeout_s``: it is answered 504)
or its await is cancelled. A given-up request is never started, and one being decoded stops at
its next segment or batch of windows (the engine's ``cancelled`` seam), so the next request in
the queue starts at once instead of waiting for audio nobody will read.

The batcher also measures the machine's decoding speed (audio seconds per second) on batches
of uploads longer than :data:`MIN_MEASURED_AUDIO_S` for
:class:`whisper_ja.serve.limits.AudioLimit`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.errors import RequestTimeoutError, ServerBusyError
from whisper_ja.serve.engine import Engine, EngineResult, RequestOptions

__all__ = ["MIN_MEASURED_AUDIO_S", "Batcher", "BatcherStats"]

log = logging.getLogger(__name__)

MIN_MEASURED_AUDIO_S = 30.0
"""Only batches of uploads all longer than this are timed: those are decoded as long audio, one
after another, like the uploads the limit is about (short ones are pooled, or dominated by fixed
costs, and would misstate the speed)."""


@dataclass
class BatcherStats:
    """Counters shown by ``/health``."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    refused_busy: int = 0
    skipped: int = 0
    cancelled: int = 0
    failed: int = 0


@dataclass(eq=False)
class _Job:
    audio: np.ndarray
    options: RequestOptions
    future: asyncio.Future[EngineResult] = field(repr=False)
    deadline: float = float("inf")
    """``time.monotonic()`` after which nobody waits for the result."""
    gave_up: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set (from the event loop) when the request gave up; read by the model thread."""

    def given_up(self) -> bool:
        """The request timed out or stopped waiting (safe to ask from any thread)."""
        return self.gave_up.is_set() or time.monotonic() >= self.deadline


class Batcher:
    """The bounded queue and its single model worker.

    Args:
        engine: The backend that decodes batches.
        max_batch: Most requests decoded together.
        queue_size: Most requests waiting.
        batch_wait_s: How long a lone request waits for company.
        on_speed: Called with ``(audio seconds, decode seconds)`` of every batch of uploads
            longer than :data:`MIN_MEASURED_AUDIO_S` that was decoded to the end.
    """

    def __init__(self, engine: Engine, *, max_batch: int, queue_size: int,
                 batch_wait_s: float,
                 on_speed: Callable[[float, float], None] | None = None) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.on_speed = on_speed
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        # One thread: the model never runs two batches at once (torch threads do the rest).
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="whisper-ja-model")
        self._worker: asyncio.Task[None] | None = None
        self._taken: list[_Job] = []  # out of the queue, not yet answered

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; waiting and running requests are failed as busy.

        A running decode stops at its next segment: its requests have given up.
        """
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        pending = list(self._taken)
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            job.gave_up.set()
            if not job.future.done():
                job.future.set_exception(ServerBusyError("the server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, audio: np.ndarray, options: RequestOptions, *,
                     deadline: float = float("inf")) -> EngineResult:
        """Queue one clip and wait for its transcript.

        Args:
            audio: 16 kHz mono samples.
            options: Decoding options (requests batch together when these agree).
            deadline: ``time.monotonic()`` after which the request is not started, and its
                decoding stops; cancelling the await gives up as well.

        Raises:
            ServerBusyError: the queue is full.
        """
        job = _Job(audio, options, asyncio.get_running_loop().create_future(), deadline)
        job.future.add_done_callback(lambda _: job.gave_up.set())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.refused_busy += 1
            raise ServerBusyError(f"{self._queue.maxsize} requests are already waiting; "
                                  "retry later") from None
        self.stats.requests += 1
        return await job.future

    async def _next_batch(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        if self._queue.empty() and self.batch_wait_s > 0:
            await asyncio.sleep(self.batch_wait_s)
        while len(jobs) < self.max_batch and not self._queue.empty():
            jobs.append(self._queue.get_nowait())
        live = [job for job in jobs if not job.given_up()]
        self.stats.skipped += len(jobs) - len(live)
        return live

    def _decode(self, jobs: list[_Job], options: RequestOptions) -> list[EngineResult]:
        """On the model thread: decode, stopping each upload whose request gave up."""
        started = time.monotonic()
        results = self.engine.transcribe([j.audio for j in jobs], options,
                                         cancelled=lambda i: jobs[i].given_up())
        long_audio = all(j.audio.size > MIN_MEASURED_AUDIO_S * SAMPLE_RATE for j in jobs)
        if self.on_speed is not None and long_audio and not any(j.given_up() for j in jobs):
            audio_s = sum(j.audio.size for j in jobs) / SAMPLE_RATE
            self.on_speed(audio_s, time.monotonic() - started)
        return results

    async def _run_group(self, options: RequestOptions, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        live = [job for job in jobs if not job.given_up()]  # an earlier group may have run long
        self.stats.skipped += len(jobs) - len(live)
        if not live:
            return
        jobs = live
        try:
            results = await loop.run_in_executor(self._executor, self._decode, jobs, options)
        except Exception as err:  # handed to each request, which maps it to a response
            self.stats.failed += len(jobs)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        gave_up = [job.given_up() for job in jobs]
        if any(gave_up):
            self.stats.cancelled += sum(gave_up)
            log.info("serve: %d request(s) gave up during decoding; their decoding stopped",
                     sum(gave_up))
        for job, result, stopped in zip(jobs, results, gave_up, strict=True):
            if job.future.done():
                continue
            if stopped:  # past its deadline: the result may be cut short, never sent
                job.future.set_exception(RequestTimeoutError("the deadline passed during "
                                                             "decoding"))
            else:
                job.future.set_result(result)

    async def _run(self) -> None:
        while True:
            groups: dict[RequestOptions, list[_Job]] = defaultdict(list)
            self._taken = await self._next_batch()
            for job in self._taken:
                groups[job.options].append(job)
            for options, jobs in groups.items():
                await self._run_group(options, jobs)

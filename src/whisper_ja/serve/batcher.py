"""Concurrent requests batched onto one model through a bounded queue.

Requests wait in an ``asyncio.Queue`` of ``queue_size`` places (a full queue answers
:class:`~whisper_ja.errors.ServerBusyError` at once instead of letting latency grow without
bound). One worker takes the oldest request, lets others join for ``batch_wait_ms`` when the
queue is empty, groups what it has by decoding options, and runs each group as one batch on a
single model thread, so the event loop keeps answering (``/health``, uploads) while the model
works. A request that timed out or whose client left before its batch started is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from whisper_ja.errors import ServerBusyError
from whisper_ja.serve.engine import Engine, EngineResult, RequestOptions

__all__ = ["Batcher", "BatcherStats"]

log = logging.getLogger(__name__)


@dataclass
class BatcherStats:
    """Counters shown by ``/health``."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    refused_busy: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class _Job:
    audio: np.ndarray
    options: RequestOptions
    future: asyncio.Future[EngineResult] = field(repr=False)


class Batcher:
    """The bounded queue and its single model worker.

    Args:
        engine: The backend that decodes batches.
        max_batch: Most requests decoded together.
        queue_size: Most requests waiting.
        batch_wait_s: How long a lone request waits for company.
    """

    def __init__(self, engine: Engine, *, max_batch: int, queue_size: int,
                 batch_wait_s: float) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        # One thread: the model never runs two batches at once (torch threads do the rest).
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="whisper-ja-model")
        self._worker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; waiting requests are failed as busy."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(ServerBusyError("the server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, audio: np.ndarray, options: RequestOptions) -> EngineResult:
        """Queue one clip and wait for its transcript (cancel the await to give up).

        Raises:
            ServerBusyError: the queue is full.
        """
        job = _Job(audio, options, asyncio.get_running_loop().create_future())
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
        live = [job for job in jobs if not job.future.done()]
        self.stats.skipped += len(jobs) - len(live)
        return live

    async def _run_group(self, options: RequestOptions, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._executor, self.engine.transcribe, [j.audio for j in jobs], options)
        except Exception as err:  # handed to each request, which maps it to a response
            self.stats.failed += len(jobs)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)

    async def _run(self) -> None:
        while True:
            groups: dict[RequestOptions, list[_Job]] = defaultdict(list)
            for job in await self._next_batch():
                groups[job.options].append(job)
            for options, jobs in groups.items():
                await self._run_group(options, jobs)

"""A request that gave up (its 504 deadline passed, or its client left) frees the queue.

Driven as a user would, over HTTP, against the real batcher and app. The engine is a stand-in
that keeps the engine's cancellation contract (``transcribe(audios, options, *, cancelled)``:
``cancelled(i)`` is asked before each segment of upload ``i`` is decoded) and decodes one
segment per 10 s of audio, each after a pause, so the timing is the same on any machine.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest

from tests.serve.support import start, wav_bytes
from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.io import resample
from whisper_ja.errors import ServerBusyError
from whisper_ja.inference.backends.hf import HfBackend
from whisper_ja.inference.engine import Engine as InferenceEngine
from whisper_ja.inference.options import DecodingOptions, GuardSettings, LongformOptions
from whisper_ja.inference.timestamps import Segment
from whisper_ja.serve.batcher import Batcher
from whisper_ja.serve.engine import Engine, EngineResult, RequestOptions
from whisper_ja.serve.settings import LimitsConfig

URL = "/v1/audio/transcriptions"
SEGMENT_S = 10
"""Audio seconds per stand-in segment."""


class SegmentEngine:
    """Decodes ``pause`` seconds per 10 s segment, one upload after another; stops an upload
    whose request gave up before its next segment (the engine's cancellation seam)."""

    backend = "fake"
    supports_words = False
    supports_temperature = False

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.started: list[float] = []  # audio seconds of each upload whose decoding began
        self.pulled = 0

    def languages(self) -> frozenset[str]:
        return frozenset({"ja"})

    def _one(self, audio: np.ndarray, stop) -> EngineResult:
        seconds = audio.size / SAMPLE_RATE
        segments: list[Segment] = []
        if not stop():
            self.started.append(seconds)
        for begin in range(0, int(seconds), SEGMENT_S):
            if stop():
                break
            time.sleep(self.pause)
            self.pulled += 1
            segments.append(Segment(float(begin), float(min(begin + SEGMENT_S, seconds)), "あ"))
        return EngineResult(tuple(segments), seconds, "ja", 0.0)

    def transcribe(self, audios, options: RequestOptions, *, cancelled=None,
                   ) -> list[EngineResult]:
        gave_up = cancelled or (lambda _: False)
        return [self._one(audio, lambda i=i: gave_up(i)) for i, audio in enumerate(audios)]


def _wav(seconds: float) -> bytes:
    return wav_bytes(np.zeros(int(seconds * SAMPLE_RATE), np.float32), SAMPLE_RATE)


def _post(server, seconds: float, timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + URL, files={"file": (f"{seconds:g}s.wav", _wav(seconds))},
                      timeout=timeout)


def _health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


@pytest.fixture
def slow() -> SegmentEngine:
    """0.4 s per 10 s segment."""
    return SegmentEngine(pause=0.4)


# One at a time, no waiting for company; audio up to 20 min admitted (the length limit is
# tested in test_audio_limit.py).
LIMITS = dict(max_batch=1, batch_wait_ms=0, max_audio_s=1200)


def test_a_timed_out_request_stops_decoding_and_the_next_is_answered(slow):
    engine = slow
    with start(engine, limits=LimitsConfig(request_timeout_s=3, **LIMITS)) as server:
        # 200 s of audio: 20 segments, 8 s of decoding, over the 3 s limit.
        timed_out = _post(server, 200)
        assert timed_out.status_code == 504, timed_out.text
        sent = time.monotonic()
        answered = _post(server, 10)  # would wait ~5 s behind the old decode: a 504 too
        waited = time.monotonic() - sent
        assert answered.status_code == 200, answered.text
        assert answered.json()["text"] == "あ"
        assert waited < 3
        assert engine.pulled < 20 // 2 + 2  # stopped soon after the deadline, not at 20
        error = timed_out.json()["error"]
        assert error["code"] == "timeout" and "its decoding was stopped" in error["message"]
        health = _health(server)
        assert health["cancelled"] == 1 and health["failed"] == 0


def test_a_request_whose_deadline_passed_in_the_queue_is_never_started(slow):
    engine = slow
    engine.pause = 2.5  # the first segment outlasts both deadlines
    with start(engine, limits=LimitsConfig(request_timeout_s=2, **LIMITS)) as server:
        replies: dict[str, int] = {}

        def send(name: str, seconds: float) -> None:
            replies[name] = _post(server, seconds).status_code

        first = threading.Thread(target=send, args=("first", 200))
        first.start()
        while not engine.started:
            time.sleep(0.01)
        send("queued", 20)  # waits behind `first` until both deadlines pass
        first.join()
        assert replies == {"first": 504, "queued": 504}
        engine.pause = 0.1
        assert _post(server, 10).status_code == 200
        assert engine.started == [200, 10]  # the queued 20 s upload never began
        health = _health(server)
        assert health["skipped"] == 1 and health["cancelled"] == 1


def test_a_client_that_leaves_stops_its_decoding(slow):
    engine = slow
    with start(engine, limits=LimitsConfig(request_timeout_s=60, **LIMITS)) as server:
        with pytest.raises(httpx.ReadTimeout):
            _post(server, 200, timeout=1.5)  # the client gives up and closes its connection
        sent = time.monotonic()
        assert _post(server, 10).status_code == 200
        assert time.monotonic() - sent < 3  # not the ~6.5 s left of the abandoned decode
        assert engine.pulled < 20 // 2
        assert _health(server)["cancelled"] == 1


# --- the seam on the real engine: transcribe(audios, options, *, cancelled) ---------------

@pytest.fixture(scope="module")
def speech(ja_clips) -> np.ndarray:
    """About 65 s of synthesized Japanese (VAD finds speech: three windows)."""
    clips = [resample(c.audio, c.sample_rate) for c in ja_clips]
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    one = np.concatenate([part for clip in clips for part in (clip, pause)])
    return np.tile(one, int(np.ceil(65 * SAMPLE_RATE / one.size)))


@pytest.fixture(scope="module")
def window_engine(tiny_whisper) -> Engine:
    """The tiny model on the serve engine, one decode per 30 s window (no VAD, no retries:
    random weights would have every window retried piece by piece)."""
    options = DecodingOptions(max_new_tokens=6, guards=GuardSettings(fallback=False),
                              longform=LongformOptions(vad=False, retry_dropped=False))
    return Engine(InferenceEngine(HfBackend(tiny_whisper), options, "tiny"))


def test_the_engine_stops_a_given_up_upload_before_its_next_window(window_engine, speech):
    asked: list[int] = []

    def after_the_first_window(index: int) -> bool:
        asked.append(index)
        return len(asked) > 1

    [cut] = window_engine.transcribe([speech], RequestOptions(), cancelled=after_the_first_window)
    [full] = window_engine.transcribe([speech], RequestOptions())
    assert set(asked) == {0} and len(asked) == 2
    assert full.segments and len(cut.segments) < len(full.segments)
    assert cut.segments == full.segments[:len(cut.segments)]  # what was decoded, then stop
    assert all(s.end <= 30.5 for s in cut.segments)  # nothing past the first 30 s window


def test_only_the_given_up_upload_of_a_batch_stops(window_engine, speech):
    short = speech[: 35 * SAMPLE_RATE]
    given_up, kept = window_engine.transcribe([speech, short], RequestOptions(),
                                            cancelled=lambda i: i == 0)
    [alone] = window_engine.transcribe([short], RequestOptions())
    assert given_up.segments == () and kept.segments == alone.segments


def test_stopping_the_batcher_stops_a_running_decode(slow):
    """Shutdown: the request being decoded is answered busy and its decoding stops."""
    async def scenario() -> float:
        batcher = Batcher(slow, max_batch=1, queue_size=4, batch_wait_s=0)
        batcher.start()
        audio = np.zeros(200 * SAMPLE_RATE, np.float32)  # 8 s of decoding
        request = asyncio.ensure_future(batcher.submit(audio, RequestOptions()))
        while not slow.started:
            await asyncio.sleep(0.01)
        stopped = time.monotonic()
        await batcher.stop()
        with pytest.raises(ServerBusyError, match="shutting down"):
            await request
        while slow.pulled < 20 and time.monotonic() - stopped < 3:  # the thread winds down
            await asyncio.sleep(0.1)
        return time.monotonic() - stopped

    asyncio.run(scenario())
    assert slow.pulled < 20 // 2

"""A request that gave up (its 504 deadline passed, or its client left) frees the queue.

Driven as a user would, over HTTP, against the real engine class, batcher and app; only the
decoding core is a slow stand-in (``transcribe_segments`` yielding one segment per 10 s of
audio, each after a pause), so the timing is the same on any machine. The seam itself
(``Engine.transcribe(..., cancelled=...)``) is also checked on each engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from tests.serve.support import start, wav_bytes
from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.inference.guards import GuardSettings
from whisper_ja.inference.timestamps import Segment
from whisper_ja.serve import engine as engine_module
from whisper_ja.serve.engine import Ct2Engine, RequestOptions, TransformersEngine
from whisper_ja.serve.settings import LimitsConfig

URL = "/v1/audio/transcriptions"
SEGMENT_S = 10
"""Audio seconds per stand-in segment."""


class SlowSegments:
    """Stands in for ``transcribe_segments``: lazy, ``pause`` seconds per segment."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.started: list[float] = []  # audio seconds of each upload whose decoding began
        self.pulled = 0

    def __call__(self, audio: np.ndarray, *_: object) -> Iterator[Segment]:
        seconds = audio.size / SAMPLE_RATE
        self.started.append(seconds)
        for begin in range(0, int(seconds), SEGMENT_S):
            time.sleep(self.pause)
            self.pulled += 1
            yield Segment(float(begin), float(min(begin + SEGMENT_S, seconds)), "あ")


def _wav(seconds: float) -> bytes:
    return wav_bytes(np.zeros(int(seconds * SAMPLE_RATE), np.float32), SAMPLE_RATE)


def _post(server, seconds: float, timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + URL, files={"file": (f"{seconds:g}s.wav", _wav(seconds))},
                      timeout=timeout)


def _health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


@pytest.fixture
def slow(tiny_whisper, monkeypatch) -> tuple[TransformersEngine, SlowSegments]:
    """The real TransformersEngine (timestamps=model) over 0.4 s per 10 s segment."""
    segments = SlowSegments(pause=0.4)
    monkeypatch.setattr(engine_module, "transcribe_segments", segments)
    return TransformersEngine(tiny_whisper, timestamps="model"), segments


# One at a time, no waiting for company; audio up to 20 min admitted (the length limit is
# tested in test_audio_limit.py).
LIMITS = dict(max_batch=1, batch_wait_ms=0, max_audio_s=1200)


def test_a_timed_out_request_stops_decoding_and_the_next_is_answered(slow):
    engine, segments = slow
    with start(engine, limits=LimitsConfig(request_timeout_s=3, **LIMITS)) as server:
        # 200 s of audio: 20 segments, 8 s of decoding, over the 3 s limit.
        timed_out = _post(server, 200)
        assert timed_out.status_code == 504, timed_out.text
        error = timed_out.json()["error"]
        assert error["code"] == "timeout" and "its decoding was stopped" in error["message"]
        sent = time.monotonic()
        answered = _post(server, 10)  # would wait ~5 s behind the old decode: a 504 too
        waited = time.monotonic() - sent
        assert answered.status_code == 200, answered.text
        assert answered.json()["text"] == "あ"
        assert waited < 3
        assert segments.pulled < 20 // 2 + 2  # stopped soon after the deadline, not at 20
        health = _health(server)
        assert health["cancelled"] == 1 and health["failed"] == 0


def test_a_request_whose_deadline_passed_in_the_queue_is_never_started(slow):
    engine, segments = slow
    segments.pause = 2.5  # the first segment outlasts both deadlines
    with start(engine, limits=LimitsConfig(request_timeout_s=2, **LIMITS)) as server:
        replies: dict[str, int] = {}

        def send(name: str, seconds: float) -> None:
            replies[name] = _post(server, seconds).status_code

        first = threading.Thread(target=send, args=("first", 200))
        first.start()
        while not segments.started:
            time.sleep(0.01)
        send("queued", 20)  # waits behind `first` until both deadlines pass
        first.join()
        assert replies == {"first": 504, "queued": 504}
        segments.pause = 0.1
        assert _post(server, 10).status_code == 200
        assert segments.started == [200, 10]  # the queued 20 s upload never began
        health = _health(server)
        assert health["skipped"] == 1 and health["cancelled"] == 1


def test_a_client_that_leaves_stops_its_decoding(slow):
    engine, segments = slow
    with start(engine, limits=LimitsConfig(request_timeout_s=60, **LIMITS)) as server:
        with pytest.raises(httpx.ReadTimeout):
            _post(server, 200, timeout=1.5)  # the client gives up and closes its connection
        sent = time.monotonic()
        assert _post(server, 10).status_code == 200
        assert time.monotonic() - sent < 3  # not the ~6.5 s left of the abandoned decode
        assert segments.pulled < 20 // 2
        assert _health(server)["cancelled"] == 1


# --- the engine seam: transcribe(audios, options, *, cancelled) --------------------------

def test_model_timestamps_stop_at_the_next_segment(slow):
    engine, segments = slow
    segments.pause = 0.0
    asked: list[int] = []

    def cancelled(index: int) -> bool:
        asked.append(index)
        return index == 0 and segments.pulled >= 3  # upload 0 gave up after 3 segments

    results = engine.transcribe([np.zeros(100 * SAMPLE_RATE, np.float32),
                                 np.zeros(50 * SAMPLE_RATE, np.float32)], RequestOptions(),
                                cancelled=cancelled)
    assert [len(r.segments) for r in results] == [3, 5]  # the other upload decoded in full
    assert segments.pulled == 8 and set(asked) == {0, 1}


def test_windows_of_a_given_up_upload_are_left_out(tiny_whisper, monkeypatch):
    engine = TransformersEngine(tiny_whisper, max_new_tokens=4, timestamps="windows",
                                batch_size=2, guards=GuardSettings(fallback=False))
    decoded: list[int] = []
    real = engine_module.decode_audio

    def counting(model, processor, audios, options, progress):
        decoded.append(len(audios))
        return real(model, processor, audios, options, progress=progress)

    monkeypatch.setattr(engine_module, "decode_audio", counting)
    rng = np.random.default_rng(0)
    noise = [(0.1 * rng.standard_normal(s * SAMPLE_RATE)).astype(np.float32) for s in (120, 40)]
    results = engine.transcribe(noise, RequestOptions(),
                                cancelled=lambda i: i == 0 and len(decoded) >= 1)
    assert decoded[0] == 2 and sum(decoded) < 6  # 4 + 2 windows without cancelling
    assert all(s.end <= 60 for s in results[0].segments)  # nothing past the first batch
    assert results[1].duration == 40


def test_ct2_engine_stops_pulling_faster_whisper_segments():
    pulled: list[int] = []

    def lazy_segments(*_: object, **__: object):
        def segments():
            for i in range(10):
                pulled.append(i)
                yield SimpleNamespace(start=i, end=i + 1, text="あ", tokens=[1], words=None,
                                      avg_logprob=-0.1, no_speech_prob=0.0,
                                      compression_ratio=1.0, temperature=0.0)
        return segments(), None

    engine = Ct2Engine.__new__(Ct2Engine)
    engine.model, engine.beams, engine.max_new_tokens = (SimpleNamespace(
        transcribe=lazy_segments), 1, 64)
    audio = (0.1 * np.ones(20 * SAMPLE_RATE)).astype(np.float32)
    [result] = engine.transcribe([audio], RequestOptions(),
                                 cancelled=lambda _: len(pulled) >= 4)
    assert len(result.segments) == 4 and len(pulled) == 4

"""Audio the server cannot decode within its request timeout is refused up front (HTTP 413).

Driven as a user would: a WAV under the upload limit whose audio is too long is answered at
once, before any decoding, in OpenAI's error shape with the limit named; the page's
``/api/info`` shows the limit; a server that measured itself faster accepts longer audio.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.serve.support import start, wav_bytes
from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.serve.engine import EngineResult, RequestOptions
from whisper_ja.serve.limits import AudioLimit
from whisper_ja.serve.settings import LimitsConfig

URL = "/v1/audio/transcriptions"


class TimedEngine:
    """Decodes ``speed`` seconds of audio per second (a sleep): what the limit is about."""

    backend = "fake"
    supports_words = False
    supports_temperature = False

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.decoded: list[float] = []

    def languages(self) -> frozenset[str]:
        return frozenset({"ja"})

    def transcribe(self, audios, options: RequestOptions, *, cancelled=None,
                   ) -> list[EngineResult]:
        seconds = [a.size / SAMPLE_RATE for a in audios]
        self.decoded.extend(seconds)
        time.sleep(sum(seconds) / self.speed)
        return [EngineResult((), s, "ja", 0.0) for s in seconds]


def _post(server, seconds: float) -> httpx.Response:
    audio = np.zeros(int(seconds * SAMPLE_RATE), np.int16)
    return httpx.post(server.url + URL, timeout=60,
                      files={"file": ("long.wav", wav_bytes(audio, SAMPLE_RATE))})


def _refused_as_too_long(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "file"
    assert error["code"] == "file_too_large" and "Traceback" not in response.text
    for word in words:
        assert word in error["message"], error["message"]
    return error["message"]


def test_a_ten_minute_wav_under_25_mb_is_refused_at_once_with_the_default_limits():
    """The issue's case: 19.2 MB, under max_upload_mb, but 600 s of audio; 240 s accepted."""
    engine = TimedEngine(speed=1000)
    with start(engine) as server:  # LimitsConfig(): 25 MB, 120 s timeout, speed_guess 2.5
        sent = time.monotonic()
        message = _refused_as_too_long(_post(server, 600), "the audio lasts 600.0 s",
                                       "limit of 240 s per request", "limits.request_timeout_s",
                                       "limits.speed_guess", "whisper-ja transcribe")
        assert time.monotonic() - sent < 10  # at once, not after 120 s
        assert message.startswith("file: ")
        assert engine.decoded == []  # never decoded
        info = httpx.get(server.url + "/api/info", timeout=10).json()
        assert info["max_audio_s"] == 240 and info["speed"] is None
        assert _post(server, 240).status_code == 200


def test_a_fixed_max_audio_s_is_named():
    engine = TimedEngine(speed=1000)
    with start(engine, limits=LimitsConfig(max_audio_s=5)) as server:
        _refused_as_too_long(_post(server, 6), "the audio lasts 6.0 s", "limit of 5 s",
                             "(limits.max_audio_s)")
        assert _post(server, 5).status_code == 200
        assert engine.decoded == [5]


def test_a_slower_machine_than_guessed_lowers_the_limit():
    """Guess 100 s/s in a 10 s timeout: 800 s. Measured ~10 s/s on a 40 s upload: ~80 s."""
    engine = TimedEngine(speed=10)
    with start(engine, limits=LimitsConfig(request_timeout_s=10, speed_guess=100)) as server:
        assert _post(server, 30).status_code == 200  # 30 s or less: not measured
        assert httpx.get(server.url + "/api/info").json()["max_audio_s"] == 800
        assert _post(server, 40).status_code == 200  # 4 s of decoding: measured
        _refused_as_too_long(_post(server, 100), "the audio lasts 100.0 s", "(measured)")
        assert engine.decoded == [30, 40]


def test_a_faster_machine_than_guessed_raises_the_limit():
    engine = TimedEngine(speed=100)
    with start(engine, limits=LimitsConfig(request_timeout_s=10, speed_guess=4)) as server:
        _refused_as_too_long(_post(server, 60), "limit of 32 s")
        assert _post(server, 31).status_code == 200  # measured: ~100 s of audio per second
        info = httpx.get(server.url + "/api/info").json()
        assert info["speed"] > 10 and info["max_audio_s"] > 80
        assert _post(server, 60).status_code == 200  # refused before, accepted now


@pytest.mark.parametrize(("records", "limit"), [
    ((), 0.8 * 120 * 2.5),                     # nothing measured: the guess
    (((60, 10),), 0.8 * 120 * 6),              # 6 s of audio per second
    (((60, 10), (60, 30), (60, 5)), 0.8 * 120 * 2),  # the slowest recent batch decides
])
def test_audio_limit_arithmetic(records, limit):
    audio_limit = AudioLimit(LimitsConfig())
    for audio_s, decode_s in records:
        audio_limit.record(audio_s, decode_s)
    assert audio_limit.max_seconds == pytest.approx(limit)

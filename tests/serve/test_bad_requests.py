"""Bad requests, each a test, against one server with real whisper-base; after all of them the
server still answers /health and still transcribes correctly (the last test)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from tests.serve.support import start, wav_bytes
from whisper_ja.errors import ModelError
from whisper_ja.serve.engine import EngineResult, RequestOptions
from whisper_ja.serve.settings import LimitsConfig
from whisper_ja.text import cer

pytestmark = pytest.mark.slow

URL = "/v1/audio/transcriptions"


def post(server, files=None, data=None, **kwargs) -> httpx.Response:
    return httpx.post(server.url + URL, files=files, data=data, timeout=60, **kwargs)


def assert_refused(response: httpx.Response, status: int, *words: str, param=None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]  # OpenAI's shape, never a traceback
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    for word in words:
        assert word in error["message"], error
    if param is not None:
        assert error["param"] == param


def raw_exchange(server, head: bytes, body: bytes, close_early: bool = False) -> bytes:
    """Send bytes on a plain socket (what no well-behaved client would send)."""
    address = urlparse(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        if close_early:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                break
        return b"".join(chunks)


def multipart_head(length: int, boundary: str = "b0und") -> bytes:
    return (f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            ).encode()


def test_malformed_multipart(base_server):
    body = b"--b0und\r\nContent-Disposition: form-da"  # cut inside the part headers
    response = post(base_server, content=body,
                    headers={"Content-Type": "multipart/form-data; boundary=b0und"})
    assert_refused(response, 400, "multipart", param="file")
    response = post(base_server, content=b"file=abc",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_refused(response, 400, "multipart/form-data", param="file")


def test_zero_byte_file(base_server):
    assert_refused(post(base_server, files={"file": ("empty.wav", b"")}), 400,
                   "empty.wav", "empty", param="file")


def test_truncated_flac(base_server, ja_clips):
    flac = wav_bytes(ja_clips[0].audio, ja_clips[0].sample_rate, "FLAC")
    response = post(base_server, files={"file": ("cut.flac", flac[:len(flac) // 2])})
    assert_refused(response, 400, "cut.flac", "truncated", param="file")


def test_text_file_named_wav(base_server):
    response = post(base_server, files={"file": ("notes.wav", "ただの文章です。\n".encode())})
    assert_refused(response, 400, "notes.wav", "not audio", param="file")


def test_declared_length_far_over_the_limit(base_server):
    reply = raw_exchange(base_server, multipart_head(10**10), b"")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"over this server's limit" in reply


def test_body_over_the_limit_without_a_length(base_server):
    """Chunked uploads are counted as they arrive: 1.5 MB against a 1 MB limit."""
    def chunks():
        yield b"--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\""
        yield b"\r\n\r\n"
        for _ in range(24):
            yield b"\0" * 65536

    response = post(base_server, content=chunks(),
                    headers={"Content-Type": "multipart/form-data; boundary=b0und"})
    assert_refused(response, 413, "limit", param="file")


def test_client_disconnects_mid_upload(base_server, ja_clips):
    wav = ja_clips[0].path.read_bytes()
    part = (b"--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" + wav + b"\r\n--b0und--\r\n")
    for _ in range(3):
        raw_exchange(base_server, multipart_head(len(part)), part[:len(part) // 3],
                     close_early=True)
    assert httpx.get(base_server.url + "/health", timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize(("data", "status", "param"), [
    ({"response_format": "xml"}, 400, "response_format"),
    ({"language": "klingon"}, 400, "language"),
    ({"temperature": "7"}, 400, "temperature"),
    ({"timestamp_granularities[]": "word"}, 400, "timestamp_granularities[]"),  # json: no
    ({"response_format": "verbose_json", "timestamp_granularities[]": "char"}, 400,
     "timestamp_granularities[]"),
    ({"model": "gpt-4o-transcribe"}, 404, "model"),
    ({"stream": "true"}, 400, "stream"),
    ({"speaker": "me"}, 400, "speaker"),
])
def test_unknown_or_unsupported_field_values(base_server, ja_clips, data, status, param):
    response = post(base_server, files={"file": ("a.wav", ja_clips[0].path.read_bytes())},
                    data=data)
    assert_refused(response, status, param.rstrip("[]"), param=param)


def test_missing_file_and_unknown_routes(base_server):
    assert_refused(post(base_server, files={"audio": ("a.wav", b"RIFF")}), 400, "file",
                   param="file")
    assert_refused(httpx.get(base_server.url + "/v1/nothing"), 404)
    assert_refused(httpx.get(base_server.url + URL), 405)


def test_after_all_that_the_server_still_answers_and_transcribes(base_server, ja_clips):
    assert httpx.get(base_server.url + "/health", timeout=10).json()["status"] == "ok"
    clip = ja_clips[2]
    response = post(base_server, files={"file": ("clip.wav", clip.path.read_bytes())},
                    data={"model": "whisper-1"})
    assert response.status_code == 200, response.text
    assert cer([clip.text], [response.json()["text"]]).rate < 0.3, response.text


class SlowEngine:
    """Stands in for a model that takes its time (the HTTP limits are what is tested)."""

    backend = "fake"
    supports_words = False
    supports_temperature = False

    def __init__(self, seconds: float, fail: bool = False) -> None:
        self.seconds, self.fail = seconds, fail

    def languages(self) -> frozenset[str]:
        return frozenset({"ja"})

    def transcribe(self, audios, options: RequestOptions, *, cancelled=None,
                   ) -> list[EngineResult]:
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError(f"secret internals {uuid.uuid4()}")
        return [EngineResult((), a.size / 16000, "ja", 0.0) for a in audios]


@pytest.fixture(scope="module")
def tone() -> bytes:
    return wav_bytes((0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)


def test_request_timeout_is_504(tone):
    with start(SlowEngine(3.0), limits=LimitsConfig(request_timeout_s=0.5)) as server:
        assert_refused(post(server, files={"file": ("t.wav", tone)}), 504, "took over")
        assert httpx.get(server.url + "/health").status_code == 200


def test_full_queue_is_503_and_the_rest_are_answered(tone):
    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            replies = await asyncio.gather(*[
                client.post(url + URL, files={"file": ("t.wav", tone)}) for _ in range(6)])
        return sorted(r.status_code for r in replies)

    limits = LimitsConfig(queue_size=1, max_batch=1, batch_wait_ms=0)
    with start(SlowEngine(1.5), limits=limits) as server:  # slow enough for 6 to pile up
        codes = asyncio.run(burst(server.url))
    assert 503 in codes and 200 in codes and set(codes) <= {200, 503}


def test_a_failing_model_gives_500_without_internals(tone):
    with start(SlowEngine(0.0, fail=True)) as server:
        response = post(server, files={"file": ("t.wav", tone)})
        assert_refused(response, 500, "internal server error")
        assert "secret" not in response.text
        assert httpx.get(server.url + "/health").json()["failed"] == 1


def test_model_errors_are_named(tone):
    class Broken(SlowEngine):
        def transcribe(self, audios, options, *, cancelled=None):
            raise ModelError("model folder vanished")

    with start(Broken(0.0)) as server:
        assert_refused(post(server, files={"file": ("t.wav", tone)}), 500, "vanished")

"""The official OpenAI client against the loopback server with real offline whisper-base."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import NotFoundError, OpenAI

from whisper_ja.serve.formats import timestamp
from whisper_ja.text import cer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(base_server) -> OpenAI:
    return OpenAI(base_url=f"{base_server.url}/v1", api_key="not-needed", max_retries=0,
                  timeout=120)


def test_models_and_health(client, base_server):
    assert [m.id for m in client.models.list()] == ["whisper-base-ja"]
    health = httpx.get(f"{base_server.url}/health").json()
    assert health["status"] == "ok" and health["backend"] == "transformers"


def test_concurrent_clips_are_batched_and_transcribed(client, base_server, ja_clips):
    def one(clip):
        with clip.path.open("rb") as f:
            return client.audio.transcriptions.create(model="whisper-base-ja", file=f)

    with ThreadPoolExecutor(len(ja_clips)) as pool:
        results = list(pool.map(one, ja_clips))
    texts = [r.text for r in results]
    assert cer([c.text for c in ja_clips], texts).rate < 0.3, texts
    stats = httpx.get(f"{base_server.url}/health").json()
    assert stats["largest_batch"] >= 2  # concurrent requests shared a batch


def test_text_format_is_the_transcript(client, ja_clips):
    clip = ja_clips[1]
    with clip.path.open("rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f,
                                                  response_format="text", language="ja",
                                                  prompt="毎朝、コーヒー")
    assert text.endswith("\n") and cer([clip.text], [text.strip()]).rate < 0.3, text


def test_every_response_format_says_the_same(tiny_server, ja_clips):
    """srt / vtt / verbose_json carry the json text (tiny model: the text itself is noise)."""
    tiny = OpenAI(base_url=f"{tiny_server.url}/v1", api_key="x", max_retries=0, timeout=120)

    def ask(fmt, **extra):
        with ja_clips[0].path.open("rb") as f:
            return tiny.audio.transcriptions.create(model="test-model", file=f,
                                                    response_format=fmt, **extra)

    text = ask("json").text
    verbose = ask("verbose_json", timestamp_granularities=["segment"])
    duration = len(ja_clips[0].audio) / ja_clips[0].sample_rate
    assert verbose.text == text and verbose.language == "japanese"
    assert verbose.duration == pytest.approx(duration, abs=1e-3)
    assert [(s.start, s.text) for s in verbose.segments] == [(0.0, text)]
    end = verbose.segments[0].end
    assert end == pytest.approx(duration, abs=1e-3)
    assert text and ask("text") == text + "\n"
    assert ask("srt") == f"1\n00:00:00,000 --> {timestamp(end)}\n{text}\n\n"
    assert ask("vtt") == f"WEBVTT\n\n00:00:00.000 --> {timestamp(end, '.')}\n{text}\n\n"
    json.dumps(verbose.model_dump())


def test_unknown_model_is_404_in_openai_shape(client, ja_clips):
    with ja_clips[0].path.open("rb") as f, pytest.raises(NotFoundError) as caught:
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=f)
    assert caught.value.body["param"] == "model"
    assert "gpt-4o-transcribe" in caught.value.body["message"]

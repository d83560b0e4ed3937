"""The official OpenAI client against the loopback server with real offline whisper-base."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from openai import NotFoundError, OpenAI

from tests.serve.support import start, wav_bytes
from whisper_ja.serve.formats import timestamp
from whisper_ja.serve.settings import LimitsConfig
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


def test_concurrent_clips_are_batched_and_transcribed(base_engine, ja_clips):
    limits = LimitsConfig(batch_wait_ms=500)  # generous: the test machine is shared
    with start(base_engine, model_id="whisper-base-ja", limits=limits) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=300)

        def one(clip):
            with clip.path.open("rb") as f:
                return client.audio.transcriptions.create(model="whisper-base-ja", file=f)

        with ThreadPoolExecutor(len(ja_clips)) as pool:
            results = list(pool.map(one, ja_clips))
        stats = httpx.get(f"{server.url}/health").json()
    texts = [r.text for r in results]
    assert cer([c.text for c in ja_clips], texts).rate < 0.3, texts
    assert stats["largest_batch"] >= 2 and stats["batches"] < len(ja_clips)  # shared batches


def test_model_timestamps_time_each_sentence_and_word(client, ja_clips):
    """Two sentences with a pause between: two segments at their times, words inside them."""
    first, second = ja_clips[0], ja_clips[3]
    pause = np.zeros(int(1.5 * first.sample_rate), dtype=np.float32)
    audio = np.concatenate([first.audio, pause, second.audio])
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("two.wav", wav_bytes(audio, first.sample_rate)),
        response_format="verbose_json", timestamp_granularities=["segment", "word"])
    gap_start = len(first.audio) / first.sample_rate
    assert len(verbose.segments) >= 2, verbose.segments
    pause_end = gap_start + 1.5
    first_seg, last_seg = verbose.segments[0], verbose.segments[-1]
    # Split at the pause: Whisper may end the first sentence anywhere inside the silence.
    assert first_seg.start < 0.7 and first_seg.end <= pause_end + 0.3
    assert last_seg.start > gap_start - 0.3 and first_seg.end <= last_seg.start + 0.05
    assert cer([first.text + second.text], [verbose.text]).rate < 0.3, verbose.text
    words = verbose.words
    assert words and all(w.start <= w.end for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert words[-1].start > gap_start


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
    segments = verbose.segments
    assert segments and "".join(s.text for s in segments) == text
    assert all(0 <= s.start <= s.end <= duration + 1e-3 for s in segments)  # random weights
    assert text and ask("text") == text + "\n"
    assert ask("srt") == "".join(f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n{s.text}\n\n"
                                 for i, s in enumerate(segments, 1))
    assert ask("vtt") == "WEBVTT\n\n" + "".join(
        f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text}\n\n" for s in segments)
    json.dumps(verbose.model_dump())


def test_sampling_and_word_times_on_the_transformers_backend(tiny_server, ja_clips):
    """What only the ct2 backend used to do: temperature > 0 and word timestamps."""
    info = httpx.get(f"{tiny_server.url}/api/info").json()
    assert info["backend"] == "transformers" and info["temperature"] and info["word_timestamps"]
    response = httpx.post(
        f"{tiny_server.url}/v1/audio/transcriptions", timeout=120,
        files={"file": ("a.wav", ja_clips[0].path.read_bytes())},
        data={"response_format": "verbose_json", "temperature": "0.5",
              "timestamp_granularities[]": ["word", "segment"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["segments"] and body["words"], body
    assert all(0 <= w["start"] <= w["end"] <= body["duration"] + 1e-3 for w in body["words"])


def test_unknown_model_is_404_in_openai_shape(client, ja_clips):
    with ja_clips[0].path.open("rb") as f, pytest.raises(NotFoundError) as caught:
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=f)
    assert caught.value.body["param"] == "model"
    assert "gpt-4o-transcribe" in caught.value.body["message"]

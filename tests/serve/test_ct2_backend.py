"""--backend ct2: faster-whisper behind the same API (a miniature CTranslate2 model)."""

from __future__ import annotations

import shutil

import httpx
import pytest
from transformers import WhisperFeatureExtractor

from tests.serve.support import start
from whisper_ja.serve.engine import Ct2Engine, RequestOptions, check_options
from whisper_ja.serve.settings import ServeConfig


@pytest.fixture(scope="module")
def ct2_engine(mini_whisper, tmp_path_factory) -> Ct2Engine:
    folder = tmp_path_factory.mktemp("ct2") / "model"
    shutil.copytree(mini_whisper.ct2_int8, folder)  # + the mel settings faster-whisper reads
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return Ct2Engine(str(folder), max_new_tokens=8)


def test_ct2_engine_takes_words_and_temperature(ct2_engine, ja_clips):
    options = RequestOptions(temperature=0.4, words=True)
    check_options(ct2_engine, options)  # what transformers refuses, ct2 does
    [result] = ct2_engine.transcribe([ja_clips[0].audio[::3].copy()], options)
    assert result.duration > 1 and result.temperature == 0.4 and result.segments
    for segment in result.segments:
        assert 0 <= segment.start <= segment.end
        assert segment.avg_logprob is not None


def test_verbose_json_with_words_over_http(ct2_engine, ja_clips):
    with start(ct2_engine) as server:
        response = httpx.post(
            server.url + "/v1/audio/transcriptions", timeout=120,
            files={"file": ("a.wav", ja_clips[0].path.read_bytes())},
            data={"response_format": "verbose_json", "timestamp_granularities[]": ["word",
                                                                                   "segment"]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["segments"] and body["words"], body
        assert all(w["start"] <= w["end"] for w in body["words"])
        assert httpx.get(server.url + "/health").json()["backend"] == "ct2"


def test_load_engine_refuses_a_folder_that_is_not_ct2(tmp_path):
    from whisper_ja.errors import ModelError
    from whisper_ja.serve.engine import load_engine

    with pytest.raises(ModelError, match="not a complete faster-whisper folder"):
        load_engine(ServeConfig(model=str(tmp_path), backend="ct2"))

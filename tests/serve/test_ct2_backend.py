"""`serve --backend ct2`: the CTranslate2 backend behind the same API (the tiny int8 export).

The server is configured from the very flags a user types (`--backend ct2 --model FOLDER`),
loaded by ``serve.engine.load_engine`` as `whisper-ja serve` loads it.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.serve.support import start
from whisper_ja.cli import build_parser, split_overrides
from whisper_ja.config import config_from_args
from whisper_ja.errors import Ct2Error, ModelError
from whisper_ja.serve.engine import Engine, RequestOptions, check_options, load_engine
from whisper_ja.serve.settings import ServeConfig


def serve_config(*args: str) -> ServeConfig:
    """The settings `whisper-ja serve ARGS...` runs with."""
    parser, settings = build_parser("serve")
    flags, overrides = split_overrides(args)
    return config_from_args(settings, parser.parse_args(flags), overrides)


@pytest.fixture(scope="module")
def ct2_engine(tiny_ct2) -> Engine:
    # No fallback: random weights fail every confidence test and would be re-decoded 5 times.
    return load_engine(serve_config("--model", str(tiny_ct2), "--backend", "ct2",
                                    "--device", "cpu", "max_new_tokens=8",
                                    "guards.fallback=false"))


@pytest.fixture(scope="module")
def ct2_server(ct2_engine):
    with start(ct2_engine) as server:
        yield server


def test_the_settings_reach_the_ct2_engine(ct2_engine):
    assert ct2_engine.backend == "ct2"
    assert ct2_engine.engine.source.endswith("CTranslate2 int8")  # auto on a CPU
    assert ct2_engine.engine.options.max_new_tokens == 8
    assert not ct2_engine.engine.options.guards.fallback


def test_ct2_engine_takes_words_and_temperature(ct2_engine, ja_clips):
    options = RequestOptions(temperature=0.4, words=True)
    check_options(ct2_engine, options)
    [result] = ct2_engine.transcribe([ja_clips[0].audio[::3].copy()], options)
    assert result.duration > 1 and result.temperature == 0.4 and result.segments
    for segment in result.segments:
        assert 0 <= segment.start <= segment.end <= result.duration + 1e-3
        assert segment.avg_logprob is not None


def test_verbose_json_with_words_over_http(ct2_server, ja_clips):
    response = httpx.post(
        ct2_server.url + "/v1/audio/transcriptions", timeout=120,
        files={"file": ("a.wav", ja_clips[0].path.read_bytes())},
        data={"response_format": "verbose_json", "temperature": "0.4",
              "timestamp_granularities[]": ["word", "segment"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["segments"] and body["words"], body
    assert all(w["start"] <= w["end"] for w in body["words"])
    assert "".join(s["text"] for s in body["segments"]) == body["text"]
    health = httpx.get(ct2_server.url + "/health").json()
    assert health["backend"] == "ct2"
    assert health["word_timestamps"] and health["temperature"]


def test_a_folder_that_is_not_a_model_is_refused_by_name(tiny_ct2, tmp_path):
    with pytest.raises(ModelError, match="neither a transformers model folder"):
        load_engine(serve_config("--model", str(tmp_path), "--backend", "ct2"))
    partial = tmp_path / "partial"
    shutil.copytree(tiny_ct2, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(Ct2Error, match="not a complete faster-whisper folder.*tokenizer.json"):
        load_engine(serve_config("--model", str(partial), "--backend", "ct2"))

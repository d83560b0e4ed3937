"""`serve` and `transcribe` give the same segments for the same file and the same settings.

Both load the one inference engine from the same flags; the server adds only what a request
asks. Checked on both backends (the tiny random model: its text is noise, but it is the same
noise at the same times through either door), for an upload pooled as a short clip and for
one decoded as long audio (over 30 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.serve.support import start
from whisper_ja.cli import build_parser, split_overrides
from whisper_ja.commands.transcribe import TranscribeConfig, run
from whisper_ja.config import config_from_args
from whisper_ja.serve.engine import load_engine
from whisper_ja.serve.settings import ServeConfig

pytestmark = pytest.mark.slow

# No fallback: random weights fail every confidence test and would be re-decoded 5 times.
FAST = ["max_new_tokens=6", "guards.fallback=false"]


def _settings(command: str, *args: str):
    """The settings `whisper-ja COMMAND ARGS...` runs with."""
    parser, settings = build_parser(command)
    flags, overrides = split_overrides(args)
    return config_from_args(settings, parser.parse_args(flags), overrides)


@pytest.fixture(scope="module")
def recordings(ja_clips, tmp_path_factory) -> dict[str, Path]:
    """A 2-3 s clip (pooled with other short uploads) and ~38 s of speech (long audio)."""
    folder = tmp_path_factory.mktemp("same_segments")
    rate = ja_clips[0].sample_rate
    pause = np.zeros(rate // 2, np.float32)
    long = np.concatenate([part for _ in range(4) for clip in ja_clips
                           for part in (clip.audio, pause)])
    sf.write(folder / "long.wav", long, rate)
    assert len(long) / rate > 30
    return {"short": ja_clips[1].path, "long": folder / "long.wav"}


@pytest.fixture(scope="module", params=["ct2", "transformers"])
def flags(request, tiny_ct2, tiny_whisper_dir) -> list[str]:
    model = tiny_ct2 if request.param == "ct2" else tiny_whisper_dir
    return ["--model", str(model), "--backend", request.param, "--device", "cpu", *FAST]


@pytest.fixture(scope="module")
def server(flags):
    config = _settings("serve", *flags)
    assert isinstance(config, ServeConfig)
    with start(load_engine(config)) as running:
        yield running


def _times(segments: list[dict]) -> list[tuple[float, float, str]]:
    return [(round(s["start"], 3), round(s["end"], 3), s["text"]) for s in segments]


@pytest.mark.parametrize("length", ["short", "long"])
def test_serve_and_transcribe_give_the_same_segments(server, flags, recordings, length,
                                                     capsys):
    path = recordings[length]
    response = httpx.post(server.url + "/v1/audio/transcriptions", timeout=300,
                          files={"file": (path.name, path.read_bytes())},
                          data={"response_format": "verbose_json"})
    assert response.status_code == 200, response.text
    served = response.json()
    config = _settings("transcribe", str(path), "--output-format", "json", *flags)
    assert isinstance(config, TranscribeConfig)
    assert run(config) == 0
    [written] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert served["segments"], served  # something to compare
    assert _times(served["segments"]) == _times(written["segments"])
    assert served["text"] == written["text"]
    if length == "long":  # the long path was taken: later windows were decoded too
        assert served["segments"][-1]["start"] > 30 * 0.5


def test_word_times_agree_when_both_ask_for_them(server, flags, recordings, capsys):
    path = recordings["short"]
    response = httpx.post(server.url + "/v1/audio/transcriptions", timeout=300,
                          files={"file": (path.name, path.read_bytes())},
                          data={"response_format": "verbose_json",
                                "timestamp_granularities[]": ["segment", "word"]})
    assert response.status_code == 200, response.text
    served = response.json()
    config = _settings("transcribe", str(path), "--output-format", "json", *flags,
                       "longform.word_timestamps=true")
    assert run(config) == 0
    written = json.loads(capsys.readouterr().out)
    assert _times(served["segments"]) == _times(written["segments"])
    words = [(round(w["start"], 3), round(w["end"], 3), w["text"])
             for s in written["segments"] for w in s.get("words", [])]
    assert served["words"] and words == [(w["start"], w["end"], w["word"])
                                         for w in served["words"]]

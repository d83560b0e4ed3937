"""make-longform: recordings with exact sentence boundaries, pauses and noise stretches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.cli import main
from whisper_ja.config import ConfigError
from whisper_ja.data.longform import LongformSettings, make_longform, speech_bounds
from whisper_ja.data.manifest import Utterance, read_manifest, write_manifest


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Synthetic 'sentences': 1-2 s tones with 0.3 s of silence around them."""
    folder = tmp_path_factory.mktemp("tones")
    utts = []
    for k in range(6):
        seconds = 1.0 + 0.2 * k
        t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * 220 * (k + 1) * t)
        pad = np.zeros(round(0.3 * SAMPLE_RATE))
        path = folder / f"s{k}.wav"
        sf.write(path, np.concatenate([pad, tone, pad]).astype(np.float32), SAMPLE_RATE)
        utts.append(Utterance(f"s{k}", str(path), f"文{k}。", seconds + 0.6, "synthetic",
                              split="test"))
    return utts


def test_speech_bounds_trim_silence():
    audio = np.concatenate([np.zeros(1600), 0.5 * np.ones(8000), np.zeros(3200)])
    assert speech_bounds(audio.astype(np.float32)) == (1600, 9600)


def test_recordings_hold_exact_sentence_times(tones, tmp_path):
    settings = LongformSettings(max_seconds=6.0, noise_stretches=0, seed=3)
    records = make_longform(tones, tmp_path, settings)
    assert [s for r in records for s in r.extra["sources"]] == [u.id for u in tones]
    assert all(r.duration <= 6.0 for r in records) and len(records) >= 2
    for record in records:
        audio, _ = sf.read(record.audio, dtype="float32")
        assert record.text == "".join(s.text for s in record.segments)
        for segment in record.segments:
            inside = audio[round(segment.start * SAMPLE_RATE):round(segment.end * SAMPLE_RATE)]
            outside = audio[round((segment.end + 0.02) * SAMPLE_RATE):
                            round((segment.end + 0.15) * SAMPLE_RATE)]
            assert np.abs(inside).max() > 0.25 and np.abs(outside).max() < 0.05
    assert records[1].extra["previous_text"] == records[0].segments[-1].text
    assert records[0].corpus == "synthetic-longform" and records[0].split == "test"


def test_command_writes_a_manifest_with_noise_stretches(tones, tmp_path, capsys):
    source = tmp_path / "test.jsonl"
    write_manifest(source, tones)
    code = main(["make-longform", str(source), "--out", str(tmp_path / "lf"),
                 "recording.max_seconds=200", "recording.noise_stretches=2",
                 "recording.seed=1"])
    assert code == 0 and "wrote 1 recordings" in capsys.readouterr().out
    (record,) = read_manifest(tmp_path / "lf" / "manifest.jsonl")
    assert len(record.segments) == len(tones)
    for start, end in record.extra["noise"]:
        assert all(s.end <= start or s.start >= end for s in record.segments)


def test_recordings_keep_their_clips_language(tones, tmp_path):
    english = [dataclasses.replace(u, extra={"language": "en"}) for u in tones]
    records = make_longform(english, tmp_path / "en", LongformSettings(max_seconds=6.0))
    assert {r.language() for r in records} == {"en"}
    japanese = make_longform(tones, tmp_path / "ja", LongformSettings(max_seconds=6.0))
    assert all("language" not in r.extra for r in japanese)
    with pytest.raises(ConfigError, match="several languages"):
        make_longform([tones[0], english[1]], tmp_path / "mixed",
                      LongformSettings(max_seconds=30.0))

"""The transcribe command: formats, bad input, batches that partly fail."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.cli import main
from whisper_ja.config import ConfigError
from whisper_ja.inference.transcribe import TranscribeConfig


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(2 * 22050)).astype(np.float32)
    files = {
        "good": folder / "good.wav",
        "stereo_mp3": folder / "stereo.mp3",
        "silence": folder / "silence.flac",
        "missing": folder / "missing.wav",
        "empty": folder / "empty.wav",
        "text": folder / "notes.wav",
        "zero": folder / "zero.wav",
    }
    sf.write(files["good"], noise, 22050)
    sf.write(files["stereo_mp3"], np.stack([noise, noise], axis=1), 22050, format="MP3")
    sf.write(files["silence"], np.zeros(16000, dtype=np.float32), 16000)
    files["empty"].write_bytes(b"")
    files["text"].write_text("not audio", encoding="utf-8")
    sf.write(files["zero"], np.zeros(0, dtype=np.float32), 16000)
    return files


def _run(capsys, *args: str) -> tuple[int, str, str]:
    # VAD off: the "good" file is noise, which VAD rightly finds no speech in
    code = main(["transcribe", *args, "--max-new-tokens", "3", "longform.vad=false"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_good_files_give_exit_code_zero(tiny_whisper_dir, inputs, capsys):
    code, out, err = _run(capsys, str(inputs["good"]), str(inputs["stereo_mp3"]),
                          str(inputs["silence"]), "--model", str(tiny_whisper_dir),
                          "--output-format", "json")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["audio"] for r in records] == [str(inputs[k])
                                             for k in ("good", "stereo_mp3", "silence")]
    assert records[2]["text"] == "" and records[2]["segments"] == []
    segments = records[0]["segments"]  # a random model: timed, and inside the 2 s file
    assert segments and all(0.0 <= s["start"] <= s["end"] <= 2.0 + 1e-6 for s in segments)


def test_bad_files_are_reported_and_the_rest_transcribed(tiny_whisper_dir, inputs, capsys):
    bad = ("missing", "empty", "text", "zero")
    code, out, err = _run(capsys, str(inputs["good"]), *(str(inputs[k]) for k in bad),
                          "--model", str(tiny_whisper_dir))
    assert code == 1
    assert out.startswith(f"{inputs['good']}\t")  # several files: path, tab, text
    assert len(out.splitlines()) == 1
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 4
    for key, line in zip(bad, errors, strict=True):
        assert str(inputs[key]) in line
    assert "4 of 5 file(s) failed" in err


def test_only_bad_files(tiny_whisper_dir, inputs, capsys):
    code, out, err = _run(capsys, str(inputs["missing"]), "--model", str(tiny_whisper_dir))
    assert code == 1 and out == ""
    assert f"{inputs['missing']}: no such file" in err


def test_srt_and_output_dir(tiny_whisper_dir, inputs, tmp_path, capsys):
    code, out, _ = _run(capsys, str(inputs["good"]), "--model", str(tiny_whisper_dir),
                        "--output-format", "srt", "--output-dir", str(tmp_path))
    assert code == 0 and out == ""
    srt = (tmp_path / "good.srt").read_text(encoding="utf-8").splitlines()
    assert srt[0] == "1"
    assert re.fullmatch(r"00:00:0[0-2],\d{3} --> 00:00:0[0-2],\d{3}", srt[1])
    code, out, _ = _run(capsys, str(inputs["good"]), "--model", str(tiny_whisper_dir),
                        "--output-format", "vtt")
    assert code == 0 and out.startswith("WEBVTT\n\n00:00:0")


def test_bad_settings(capsys):
    assert main(["transcribe", "a.wav", "--beams", "0"]) == 2
    assert "beams" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="adapter"):
        TranscribeConfig(audio=("a.wav",), backend="ct2", adapter="lora")


@pytest.mark.slow
def test_transcribe_real_japanese_mp3(whisper_base, ja_clips, tmp_path, capsys):
    """Synthetic speech, written as 44.1 kHz stereo mp3, through the whole command."""
    import soxr

    from whisper_ja.text.metrics import cer

    clip = ja_clips[2]
    audio = soxr.resample(clip.audio, clip.sample_rate, 44100)
    path = tmp_path / "speech.mp3"
    sf.write(path, np.stack([audio, 0.5 * audio], axis=1), 44100, format="MP3")
    code = main(["transcribe", str(path)])
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert cer([clip.text], [out]).rate < 0.2, out


def test_ct2_backend(mini_whisper, inputs, tmp_path, capsys):  # noqa: F811
    from transformers import WhisperFeatureExtractor

    folder = tmp_path / "ct2"
    shutil.copytree(mini_whisper.ct2_int8, folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)  # what faster-whisper reads
    code, out, err = _run(capsys, str(inputs["good"]), str(inputs["silence"]),
                          str(inputs["missing"]), "--backend", "ct2", "--model", str(folder),
                          "--output-format", "json")
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["audio"] for r in records] == [str(inputs["good"]), str(inputs["silence"])]
    assert records[0]["text"] and records[1]["text"] == ""
    assert f"{inputs['missing']}: no such file" in err


def test_unloadable_model_is_one_line_and_exit_2(inputs, tmp_path, capsys):
    code, out, err = _run(capsys, str(inputs["good"]), "--model", str(tmp_path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"unusable model: {tmp_path}" in err

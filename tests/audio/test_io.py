"""Audio decoding, resampling, silence check and chunking."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.audio.io import (
    SAMPLE_RATE,
    AudioError,
    TruncatedAudioError,
    audio_duration,
    is_silent,
    load_audio,
    quiet_stretches,
    read_sound,
    resample,
    split_long_audio,
)


def _tone(freq: float, seconds: float, rate: int, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_freq(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize(("rate", "fmt"), [(44100, "WAV"), (8000, "FLAC"), (48000, "MP3")])
def test_any_rate_and_channels_become_16k_mono(tmp_path, rate, fmt):
    left, right = _tone(440, 1.0, rate), _tone(440, 1.0, rate, level=0.3)
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, np.stack([left, right], axis=1), rate, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - SAMPLE_RATE) <= 0.1 * SAMPLE_RATE  # mp3 adds codec padding
    assert abs(_dominant_freq(audio) - 440) < 3
    assert 0.3 < np.abs(audio).max() < 0.45  # mixed down: mean of 0.5 and 0.3


def test_resample_keeps_duration():
    out = resample(_tone(1000, 2.0, 22050), 22050)
    assert out.size == 2 * SAMPLE_RATE
    assert abs(_dominant_freq(out) - 1000) < 2


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.wav", None, "no such file"),
    ("empty.wav", b"", "empty file"),
    ("text.wav", b"this is not audio at all", "not a readable audio file"),
])
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert str(err.value).startswith(str(path))


def test_zero_length_audio_is_an_error(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(path)


def test_silence_detection():
    rng = np.random.default_rng(0)
    assert is_silent(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert is_silent((1e-4 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32))  # -80 dBFS
    speechlike = np.concatenate([np.zeros(SAMPLE_RATE), _tone(300, 0.2, SAMPLE_RATE, 0.1)])
    assert not is_silent(speechlike.astype(np.float32))


def test_long_audio_is_cut_at_quiet_moments():
    rng = np.random.default_rng(0)
    loud = lambda s: (0.3 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32)  # noqa: E731
    gap = np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([loud(27.0), gap, loud(20.0), gap, loud(15.0)])
    chunks = split_long_audio(audio)
    assert np.array_equal(np.concatenate(chunks), audio)
    assert all(c.size <= 30 * SAMPLE_RATE for c in chunks)
    assert len(chunks) == 3
    first_cut = chunks[0].size / SAMPLE_RATE
    assert 27.0 <= first_cut <= 27.5  # inside the first gap
    assert split_long_audio(audio[: 10 * SAMPLE_RATE])[0].size == 10 * SAMPLE_RATE


def _cut_in_half(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still declares the whole clip


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "FLOAT"),
                                              ("FLAC", "PCM_16")])
def test_a_cut_short_file_is_named_as_truncated_not_decoded(tmp_path, fmt, subtype):
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, _tone(440, 2.0, SAMPLE_RATE), SAMPLE_RATE, format=fmt, subtype=subtype)
    assert load_audio(path).size == 2 * SAMPLE_RATE
    _cut_in_half(path)
    for read in (load_audio, audio_duration):
        with pytest.raises(TruncatedAudioError, match="truncated") as err:
            read(path)
        assert str(err.value).startswith(str(path))
        assert isinstance(err.value, AudioError)  # a bad item: exit 1, counted


def test_a_streamed_wav_of_unknown_length_is_not_called_truncated(tmp_path):
    buffer = io.BytesIO()
    sf.write(buffer, _tone(440, 1.0, SAMPLE_RATE), SAMPLE_RATE, format="WAV")
    data = bytearray(buffer.getvalue())
    at = data.index(b"data") + 4
    data[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "little")  # what a pipe writer leaves
    audio, rate = read_sound(io.BytesIO(bytes(data)), "upload.wav")
    assert rate == SAMPLE_RATE and audio.shape[0] > 0


def _speech_level(seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(round(seconds * 16000)) / 16000
    return (10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_quiet_stretches_are_pauses_far_under_loud_speech():
    rng = np.random.default_rng(0)
    hush = (10 ** (-55 / 20) * rng.standard_normal(4000)).astype(np.float32)  # 0.25 s
    blip = (10 ** (-55 / 20) * rng.standard_normal(1280)).astype(np.float32)  # 0.08 s
    speech = _speech_level(2.0, -15)
    audio = np.concatenate([speech, hush, speech, blip, speech[:16000]])
    found = quiet_stretches(audio, below_loud_db=30, min_seconds=0.15)
    assert len(found) == 1  # the 80 ms dip is a closure, not a pause
    start, end = found[0]
    assert abs(start - 2.0) <= 0.011 and abs(end - 2.25) <= 0.011
    # the same pause 20 dB under the speech (a noisy room) is not quiet enough
    room = (10 ** (-35 / 20) * rng.standard_normal(4000)).astype(np.float32)
    noisy = np.concatenate([speech, room, speech])
    assert quiet_stretches(noisy, below_loud_db=30, min_seconds=0.15) == []
    assert quiet_stretches(np.zeros(10, np.float32), 30, 0.15) == []

"""The faster-whisper backend (``transcribe --backend ct2``) on a tiny int8 CTranslate2 export."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.inference.faster import (
    Ct2Error,
    convert_ct2,
    load_faster_whisper,
    transcribe_ct2,
)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    first = folder / "a.wav"  # 16 kHz mono
    sf.write(first, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    second = folder / "b.flac"  # 8 kHz stereo: load_audio resamples and mixes down
    sf.write(second, (0.1 * rng.standard_normal((8000 * 3, 2))).astype(np.float32), 8000)
    return [first, second]


def test_int8_export_is_stored_as_int8(tiny_ct2):
    assert load_faster_whisper(str(tiny_ct2), "default").model.compute_type.startswith("int8")


def test_transcribe_ct2_gives_one_text_per_file(tiny_ct2, wavs):
    # A random model says nothing about content (whisper-base CER through this path is checked
    # in tests/test_export.py); here: one text per file, in order, deterministic, bounded.
    texts = transcribe_ct2(wavs, str(tiny_ct2), max_new_tokens=6, progress=False)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    assert transcribe_ct2(wavs[::-1], str(tiny_ct2), max_new_tokens=6, progress=False) \
        == texts[::-1]
    longer = transcribe_ct2(wavs[:1], str(tiny_ct2), max_new_tokens=12, progress=False)
    assert len(longer[0]) > len(texts[0])


def test_incomplete_model_folder_is_named(tiny_ct2, tmp_path, wavs):
    with pytest.raises(Ct2Error, match="no such CTranslate2 model folder"):
        transcribe_ct2(wavs, str(tmp_path / "nowhere"), progress=False)
    partial = tmp_path / "partial"
    shutil.copytree(tiny_ct2, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(Ct2Error, match=r"partial.*missing tokenizer.json"):
        transcribe_ct2(wavs, str(partial), progress=False)


def test_unreadable_audio_names_the_file(tiny_ct2, tmp_path):
    from whisper_ja.audio.io import AudioError

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="broken.wav"):
        transcribe_ct2([bad], str(tiny_ct2), progress=False)


def test_convert_refuses_a_folder_without_processor_files(tiny_whisper, tmp_path):
    folder = tmp_path / "bare"
    tiny_whisper.model.save_pretrained(folder)  # weights only: no tokenizer.json
    with pytest.raises(Ct2Error, match="tokenizer.json, preprocessor_config.json"):
        convert_ct2(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)


def _record(folder: Path, tmp_path: Path, policy) -> Path:
    from whisper_ja.inference.faster import write_context_record

    copy = tmp_path / "with-record"
    shutil.copytree(folder, copy)
    write_context_record(copy, policy)
    return copy


def test_batched_path_feeds_the_recorded_context_with_its_floor(tiny_ct2, tmp_path, monkeypatch):
    from whisper_ja.audio.features import ContextPolicy, log_mel, pad_features
    from whisper_ja.inference import faster

    folder = _record(tiny_ct2, tmp_path, ContextPolicy(bucket_frames=200, min_frames=1000))
    frames_seen: list[int] = []

    def spy(feats, frames):
        frames_seen.append(frames)
        return pad_features(feats, frames)

    monkeypatch.setattr(faster, "pad_features", spy)
    audios = [_noise(2.0, 1), _noise(13.3, 2), _noise(3.0, 3)]
    options = faster.Ct2Options(batch_size=2, max_new_tokens=6, compute_type="default")
    clips = faster.transcribe_audio_ct2(audios, folder, options)
    # Sorted by length: (2 s, 3 s) -> floor 1000; (13.3 s) -> 1330 rounded up to 1400.
    assert frames_seen == [1000, 1400]
    assert len(clips) == 3 and all(clip.segments for clip in clips)
    # The same ids as CTranslate2 on those very features: nothing else changed.
    extractor = faster.export_feature_extractor(str(folder))
    feats = pad_features([log_mel(audios[1], extractor)], 1400).numpy()
    assert list(clips[1].segments[0].tokens) == list(
        faster.decode_features_ct2(folder, feats, max_new_tokens=6)[0])
    # A stock folder (no record) decodes at 30 s unless dynamic is asked for.
    frames_seen.clear()
    faster.transcribe_audio_ct2(audios[:1], tiny_ct2, options)
    faster.transcribe_audio_ct2(audios[:1], tiny_ct2, replace(options, context="dynamic"))
    assert frames_seen == [3000, 800]


def test_batched_path_keeps_faster_whisper_segments_and_order(tiny_ct2):
    from faster_whisper.transcribe import Segment

    from whisper_ja.inference.faster import Ct2Options, transcribe_audio_ct2

    audios = [_noise(3.0, 4), np.zeros(16000, np.float32), _noise(41.0, 5), _noise(2.0, 6)]
    options = Ct2Options(max_new_tokens=4, compute_type="default", context="dynamic",
                         no_speech_threshold=None)
    clips = transcribe_audio_ct2(audios, tiny_ct2, options)
    assert [len(c.segments) for c in clips] == [1, 0, 2, 1]  # silence: no segment; 41 s: two
    long = clips[2].segments
    assert all(isinstance(s, Segment) for s in long) and [s.id for s in long] == [1, 2]
    assert long[0].start == 0.0 and long[0].end == pytest.approx(long[1].start)
    assert long[1].end == pytest.approx(41.0)
    assert clips[2].text == long[0].text + long[1].text
    # At a fixed context, batching and order do not change any clip's text.
    full = replace(options, context="full")
    batched = [c.text for c in transcribe_audio_ct2(audios, tiny_ct2, full)]
    one_by_one = [transcribe_audio_ct2([a], tiny_ct2, replace(full, batch_size=1))[0].text
                  for a in audios[::-1]]
    assert one_by_one[::-1] == batched


def test_unreadable_context_record_is_named(tiny_ct2, tmp_path):
    from whisper_ja.inference.faster import export_context

    folder = tmp_path / "bad"
    shutil.copytree(tiny_ct2, folder)
    (folder / "whisper_ja.json").write_text('{"context": {"min_frames": 7}}')
    with pytest.raises(Ct2Error, match=r"whisper_ja.json: not a whisper-ja context record"):
        export_context(folder)

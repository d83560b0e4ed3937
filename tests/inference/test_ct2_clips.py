"""whisper-ja's CTranslate2 clip path (batched, own context, guarded) on tiny exports."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from whisper_ja.inference import ct2_clips
from whisper_ja.inference.ct2_clips import (
    Ct2Options,
    detect_language_ct2,
    transcribe_audio_ct2,
    transcribe_ct2,
)
from whisper_ja.inference.faster import write_context_record
from whisper_ja.inference.guards import GuardSettings

GREEDY_ONLY = GuardSettings(repetition=False, fallback=False)
"""Where a test pins what greedy decoding gives (a random model fails every guard)."""


def test_transcribe_ct2_gives_one_text_per_file(tiny_ct2, wavs):
    # A random model says nothing about content (whisper-base CER through this path is checked
    # in tests/test_export.py); here: one text per file, in order, deterministic, bounded.
    texts = transcribe_ct2(wavs, str(tiny_ct2), max_new_tokens=6, progress=False,
                           guards=GREEDY_ONLY)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    assert transcribe_ct2(wavs[::-1], str(tiny_ct2), max_new_tokens=6, progress=False,
                          guards=GREEDY_ONLY) == texts[::-1]
    longer = transcribe_ct2(wavs[:1], str(tiny_ct2), max_new_tokens=12, progress=False,
                            guards=GREEDY_ONLY)
    assert len(longer[0]) > len(texts[0])



def test_unreadable_audio_names_the_file(tiny_ct2, tmp_path):
    from whisper_ja.audio.io import AudioError

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="broken.wav"):
        transcribe_ct2([bad], str(tiny_ct2), progress=False)



def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)


def _record(folder: Path, tmp_path: Path, policy) -> Path:
    copy = tmp_path / "with-record"
    shutil.copytree(folder, copy)
    write_context_record(copy, policy)
    return copy


def test_batched_path_feeds_the_recorded_context_with_its_floor(tiny_ct2, tmp_path, monkeypatch):
    from whisper_ja.audio.features import ContextPolicy, log_mel, pad_features
    from whisper_ja.inference import ct2_clips, faster

    folder = _record(tiny_ct2, tmp_path, ContextPolicy(bucket_frames=200, min_frames=1000))
    frames_seen: list[int] = []

    def spy(feats, frames):
        frames_seen.append(frames)
        return pad_features(feats, frames)

    monkeypatch.setattr(ct2_clips, "pad_features", spy)
    audios = [_noise(2.0, 1), _noise(13.3, 2), _noise(3.0, 3)]
    options = Ct2Options(batch_size=2, max_new_tokens=6, compute_type="default",
                         guards=GREEDY_ONLY)
    clips = transcribe_audio_ct2(audios, folder, options)
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
    transcribe_audio_ct2(audios[:1], tiny_ct2, options)
    transcribe_audio_ct2(audios[:1], tiny_ct2, replace(options, context="dynamic"))
    assert frames_seen == [3000, 800]


def test_batched_path_keeps_faster_whisper_segments_and_order(tiny_ct2):
    from faster_whisper.transcribe import Segment

    audios = [_noise(3.0, 4), np.zeros(16000, np.float32), _noise(41.0, 5), _noise(2.0, 6)]
    options = Ct2Options(max_new_tokens=4, compute_type="default", context="dynamic",
                         no_speech_threshold=None, guards=GREEDY_ONLY)
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


def _fake_generate(loop_id: int, clean: list[int], seen: list[float], greedy=None):
    """A generate_ct2 whose greedy rows loop and whose sampled rows are clean and confident."""

    class Result:
        def __init__(self, ids: list[int]) -> None:
            self.sequences_ids = [ids]
            self.scores = [-0.1]
            self.no_speech_prob = 0.0

    def generate(whisper, inputs, prompt, rows, *, beam_size, max_new_tokens, scores=True,
                 temperature=0.0):
        seen.append(temperature)
        ids = (greedy or [loop_id] * max_new_tokens) if temperature == 0 else clean
        return [Result(list(ids)) for _ in range(rows)]
    return generate


@pytest.mark.parametrize("fallback", [True, False])
def test_guards_replace_a_looping_greedy_row(tiny_ct2, monkeypatch, fallback):
    from whisper_ja.inference.faster import load_faster_whisper

    tokenizer = load_faster_whisper(str(tiny_ct2), "default").hf_tokenizer
    loop_id = tokenizer.token_to_id("a")
    clean = tokenizer.encode("abc", add_special_tokens=False).ids
    seen: list[float] = []
    monkeypatch.setattr(ct2_clips, "generate_ct2", _fake_generate(loop_id, clean, seen))
    options = Ct2Options(max_new_tokens=12, compute_type="default",
                         guards=GuardSettings(fallback=fallback))
    clip = transcribe_audio_ct2([_noise(2.0, 7)], tiny_ct2, options)[0]
    assert clip.looped_unguarded  # the greedy attempt looped either way
    if fallback:  # sampled once at the first temperature, which passes
        assert seen == [0.0, 0.2] and not clip.looped
        assert clip.segments[0].tokens == clean and clip.segments[0].temperature == 0.2
    else:  # the loop is cut to its first copy and still counts as a loop
        assert seen == [0.0] and clip.looped
        assert clip.segments[0].tokens == [loop_id]


def test_fallback_is_reproducible(tiny_ct2):
    # A random model fails the guards, so the fallback samples: seeded, the same twice.
    options = Ct2Options(max_new_tokens=6, compute_type="default")
    audios = [_noise(2.0, 8), _noise(3.0, 9)]
    first = [c.text for c in transcribe_audio_ct2(audios, tiny_ct2, options)]
    assert first == [c.text for c in transcribe_audio_ct2(audios, tiny_ct2, options)]


def test_language_id_matches_transformers_on_the_same_weights(tiny_whisper, tiny_whisper_dir,
                                                              tmp_path):
    from whisper_ja.export.writer import ExportConfig, export_model
    from whisper_ja.inference.language_id import detect_language

    folder = tmp_path / "ct2-float32"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=folder))
    # 30 s clips: both paths then see the very same features.
    audios = [_noise(30.0, seed) for seed in (10, 11, 12)]
    expected = detect_language(tiny_whisper.model, tiny_whisper.processor, audios,
                               progress=False)
    found = detect_language_ct2(audios, folder, Ct2Options(compute_type="float32",
                                                           context="full", batch_size=2))
    assert found == expected


def test_a_repeat_mid_text_is_stopped_as_the_transformers_guard_stops_it(tiny_ct2, monkeypatch):
    # CTranslate2 ran on after the repeat ("の予算の予算の予算" then more text): the row is
    # cut where the transformers guard would have ended it, so the fallback replaces it.
    from whisper_ja.inference.faster import load_faster_whisper

    tokenizer = load_faster_whisper(str(tiny_ct2), "default").hf_tokenizer
    unit = [tokenizer.token_to_id(t) for t in ("a", "b", "c")]  # three tokens, three times
    clean = [tokenizer.token_to_id(t) for t in ("x", "y")]
    greedy = [*clean, *unit * 3, *clean]
    seen: list[float] = []
    monkeypatch.setattr(ct2_clips, "generate_ct2", _fake_generate(0, clean, seen, greedy))
    clip = transcribe_audio_ct2([_noise(2.0, 13)], tiny_ct2,
                                Ct2Options(max_new_tokens=40, compute_type="default"))[0]
    assert seen == [0.0, 0.2] and clip.looped_unguarded and not clip.looped
    assert clip.segments[0].tokens == clean

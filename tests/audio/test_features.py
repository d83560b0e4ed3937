"""Log-mel features: equal to Whisper's 30-s extractor, cached on disk, padded with silence."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import WhisperFeatureExtractor

from whisper_ja.audio.features import (
    FULL_CONTEXT_FRAMES,
    ContextPolicy,
    batch_context_frames,
    context_frames,
    log_mel,
    pad_features,
)
from whisper_ja.config import ConfigError
from whisper_ja.data.feature_cache import FeatureCache
from whisper_ja.data.manifest import Utterance
from whisper_ja.errors import AudioError


@pytest.fixture(scope="module")
def extractor() -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(feature_size=80)


def _tone(samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(samples)).astype(
        np.float32)


def _thirty_seconds(audio: np.ndarray, extractor) -> np.ndarray:
    return extractor(audio, sampling_rate=16000, return_tensors="np").input_features[0]


@pytest.mark.parametrize("samples", [1, 159, 160, 161, 48_077, 479_900, 480_000])
def test_log_mel_equals_padded_extractor(extractor, samples):
    audio = _tone(samples, seed=samples)
    features = log_mel(audio, extractor)
    assert features.dtype == np.float32
    assert features.shape == (80, -(-samples // 160))
    reference = _thirty_seconds(audio, extractor)
    frames = min(features.shape[1], 3000)
    np.testing.assert_allclose(features[:, :frames], reference[:, :frames], atol=1e-5)


def test_log_mel_rejects_bad_input(extractor):
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), np.float32), extractor)
    with pytest.raises(ValueError, match="non-empty"):
        log_mel(np.zeros(0, np.float32), extractor)


@pytest.mark.parametrize("samples", [3_000, 40_000])
def test_padding_is_whispers_silence(extractor, samples):
    audio = _tone(samples)
    audio[-800:] = 0.0  # a quiet tail, so the frames at the clip's end are silence in both
    features = log_mel(audio, extractor)
    padded = pad_features([features], FULL_CONTEXT_FRAMES)
    assert padded.shape == (1, 80, 3000) and padded.dtype == torch.float32
    reference = _thirty_seconds(audio, extractor)
    np.testing.assert_allclose(padded[0].numpy(), reference, atol=1e-5)


def test_pad_features_cuts_and_checks_shapes():
    long = np.arange(80 * 10, dtype=np.float32).reshape(80, 10)
    short = np.full((80, 3), -0.2, np.float32)
    batch = pad_features([long, short], 6)
    assert torch.equal(batch[0], torch.from_numpy(long[:, :6]))
    assert torch.equal(batch[1, :, :3], torch.from_numpy(short))
    assert torch.all(batch[1, :, 3:] == -1.5)  # the clip's floor: max(-1.5, -0.2 - 2)
    with pytest.raises(ValueError, match="expected"):
        pad_features([long, np.zeros((40, 3), np.float32)], 6)
    with pytest.raises(ValueError, match="at least one"):
        pad_features([], 6)
    with pytest.raises(ValueError, match="positive"):
        pad_features([long], 0)


def test_context_frames_examples():
    policy = ContextPolicy()
    assert context_frames(0, policy) == 800
    assert context_frames(350, policy) == 800
    assert context_frames(801, policy) == 900
    assert context_frames(900, policy) == 900
    assert context_frames(2950, policy) == 3000
    assert context_frames(4000, policy) == 3000
    assert context_frames(10, ContextPolicy(dynamic=False)) == 3000
    assert context_frames(10, ContextPolicy(min_frames=0, bucket_frames=4)) == 12
    with pytest.raises(ValueError):
        context_frames(-1, policy)


def test_batch_context_frames_follow_the_longest_clip_and_the_policy():
    clips = [np.zeros(3 * 16000, np.float32), np.zeros(int(13.3 * 16000), np.float32)]
    assert batch_context_frames(clips, ContextPolicy(dynamic=False)) == 3000
    assert batch_context_frames(clips, ContextPolicy(bucket_frames=200, min_frames=1000)) == 1400
    short = ContextPolicy(bucket_frames=200, min_frames=1000)
    assert batch_context_frames(clips[:1], short) == 1000


@settings(max_examples=200, deadline=None)
@given(longest=st.integers(0, 5000), bucket=st.integers(1, 400), floor=st.integers(0, 1500))
def test_context_frames_properties(longest, bucket, floor):
    policy = ContextPolicy(bucket_frames=2 * bucket, min_frames=2 * floor)
    frames = context_frames(longest, policy)
    assert frames % 2 == 0 and 2 <= frames <= 3000
    assert frames >= min(longest, 3000)
    assert frames >= policy.min_frames
    assert frames in (3000, policy.min_frames) or frames % policy.bucket_frames == 0


@pytest.mark.parametrize(("kwargs", "setting"), [
    ({"bucket_frames": 99}, "bucket_frames"),
    ({"bucket_frames": 0}, "bucket_frames"),
    ({"min_frames": 3002}, "min_frames"),
    ({"min_frames": 801}, "min_frames"),
])
def test_context_policy_validation(kwargs, setting):
    with pytest.raises(ConfigError, match=setting):
        ContextPolicy(**kwargs)


def _utterance(path, uid="u1") -> Utterance:
    return Utterance(id=uid, audio=str(path), text="テスト", duration=1.0, corpus="test")


def _read(path: str) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    return audio


def test_cache_hits_and_invalidation(tmp_path, extractor):
    wav = tmp_path / "a.wav"
    sf.write(wav, _tone(16_000, seed=1), 16000)
    utt = _utterance(wav)
    cache = FeatureCache(tmp_path / "cache", loader=_read)
    first = cache.get(utt, extractor)
    assert (cache.hits, cache.misses) == (0, 1)
    np.testing.assert_array_equal(first, log_mel(_read(str(wav)), extractor))
    second = FeatureCache(tmp_path / "cache", loader=_read).get(utt, extractor)  # new process
    np.testing.assert_array_equal(first, second)
    assert cache.get(utt, extractor) is not None and cache.hits == 1

    # Changed audio (same path): a miss, and the new features.
    sf.write(wav, _tone(24_000, seed=2), 16000)
    os.utime(wav, ns=(1, 1))  # a distinct mtime even on coarse-clock filesystems
    third = cache.get(utt, extractor)
    assert cache.misses == 2 and third.shape == (80, 150)

    # Changed feature settings: a miss, never the old entry.
    other = WhisperFeatureExtractor(feature_size=128)
    assert cache.get(utt, other).shape == (128, 150)
    assert cache.misses == 3
    assert cache.key(utt, other) != cache.key(utt, extractor)


def test_cache_rebuilds_corrupt_entries_and_names_missing_audio(tmp_path, extractor):
    wav = tmp_path / "a.wav"
    sf.write(wav, _tone(8_000), 16000)
    utt = _utterance(wav)
    cache = FeatureCache(tmp_path / "cache", loader=_read)
    good = cache.get(utt, extractor)
    cache.path(utt, extractor).write_bytes(b"truncated")
    np.testing.assert_array_equal(cache.get(utt, extractor), good)
    assert cache.rebuilt == 1 and cache.misses == 2
    with pytest.raises(AudioError, match="missing.wav"):
        cache.get(_utterance(tmp_path / "missing.wav", "u2"), extractor)


def test_precompute_counts(tmp_path, extractor):
    utts = []
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", _tone(4_000, seed=i), 16000)
        utts.append(_utterance(tmp_path / f"{i}.wav", f"u{i}"))
    cache = FeatureCache(tmp_path / "cache", loader=_read)
    assert cache.precompute(utts, extractor, progress=False) == 3
    assert cache.precompute(utts, extractor, progress=False) == 0
    assert cache.hits == 3

"""Log-mel features computed once, cached on disk, and padded only as far as a batch needs.

- :func:`log_mel`: Whisper's log-mel spectrogram of a clip *without* padding it to 30 s, yet
  numerically what the stock feature extractor gives for those frames (its normalization takes
  the maximum over the padded 30-s window; the padding is silence and never raises it).
- :class:`FeatureCache`: one ``.npy`` per utterance, keyed by the audio file (path, size,
  modification time) and the feature settings, so a changed file or setting is a miss, never a
  stale hit.
- :class:`ContextPolicy` and :func:`context_frames`: how many frames the encoder runs on for a
  batch (longest clip rounded up to a bucket, with a floor; 3000 when dynamic context is off).
- :func:`pad_features`: a batch tensor padded with Whisper's own silence value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from whisper_ja.audio.constants import FULL_CONTEXT_FRAMES, HOP_LENGTH
from whisper_ja.config import ConfigError, field

__all__ = [
    "FULL_CONTEXT_FRAMES",
    "HOP_LENGTH",
    "SILENCE",
    "ContextPolicy",
    "batch_context_frames",
    "context_frames",
    "log_mel",
    "pad_features",
]


SILENCE = -1.5
"""Normalized log-mel value of digital silence, ``(log10(1e-10) + 4) / 4``: the lowest value a
padding frame can take (see :func:`pad_features` for the exact per-clip value)."""

_FEATURE_VERSION = 1  # bump when log_mel's algorithm changes, to invalidate every cache


def log_mel(audio: np.ndarray, feature_extractor: Any) -> np.ndarray:
    """Whisper log-mel features of a 16 kHz clip, unpadded.

    Args:
        audio: Mono float waveform at the extractor's sampling rate (16 kHz).
        feature_extractor: A ``WhisperFeatureExtractor`` (e.g. ``processor.feature_extractor``).

    Returns:
        float32 array ``(n_mels, ceil(len(audio) / 160))``, equal (to float rounding) to the first
        frames of ``feature_extractor(audio)`` padded to 30 s.

    Raises:
        ValueError: if ``audio`` is not a non-empty 1-D array.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"log_mel needs a non-empty mono waveform, got shape {audio.shape}")
    hop = int(feature_extractor.hop_length)
    frames = math.ceil(audio.size / hop)
    window = int(feature_extractor.n_samples)
    # Why not call the extractor on the clip as is: its normalization takes the max over every
    # frame it returns, and the last frames of an unpadded clip see reflect-padding instead of
    # zeros. Padding three hops of zeros covers every frame that overlaps the clip (n_fft / 2 =
    # 200 samples < 2 hops), and frames beyond hold only zeros (-10 before the clamp, as in the
    # 30-s window), so the max, and thus every value, matches the 30-s computation.
    padded_len = max(audio.size, min((frames + 3) * hop, window))
    padded = np.zeros(padded_len, dtype=np.float32)
    padded[: audio.size] = audio
    features = feature_extractor(
        padded, sampling_rate=feature_extractor.sampling_rate, padding="longest",
        truncation=False, return_tensors="np",
    ).input_features[0]
    return np.ascontiguousarray(features[:, :frames], dtype=np.float32)


def feature_settings_key(feature_extractor: Any) -> dict[str, Any]:
    names = ("feature_size", "sampling_rate", "hop_length", "n_fft", "n_samples", "dither")
    settings = {n: getattr(feature_extractor, n, None) for n in names}
    settings["mel_filters"] = hashlib.sha256(
        np.asarray(feature_extractor.mel_filters, dtype=np.float32).tobytes()).hexdigest()[:16]
    settings["version"] = _FEATURE_VERSION
    return settings


@dataclasses.dataclass(frozen=True)
class ContextPolicy:
    """How many mel frames the encoder runs on (nest it in a training or decoding config)."""

    dynamic: bool = field(True, help="run the encoder only on the frames a batch needs "
                                     "instead of the fixed 30 s (3000 frames)")
    bucket_frames: int = field(100, help="round the batch's longest clip up to a multiple of "
                                         "this many 10-ms frames (even)")
    min_frames: int = field(800, help="never run on fewer frames than this (8 s); shorter "
                                      "inputs make Whisper loop on short clips")

    def __post_init__(self) -> None:
        """Validate the settings (raises ConfigError naming the setting)."""
        if self.bucket_frames < 2 or self.bucket_frames % 2:
            raise ConfigError(f"bucket_frames: must be an even number >= 2, got "
                              f"{self.bucket_frames}")
        if not 0 <= self.min_frames <= FULL_CONTEXT_FRAMES or self.min_frames % 2:
            raise ConfigError(f"min_frames: must be even and between 0 and "
                              f"{FULL_CONTEXT_FRAMES}, got {self.min_frames}")


def context_frames(longest_frames: int, policy: ContextPolicy) -> int:
    """Frames the encoder runs on for a batch whose longest clip has ``longest_frames``.

    ``max(min_frames, longest rounded up to bucket_frames)``, capped at 3000 (always even, so the
    encoder's stride-2 convolution yields whole positions); 3000 when ``policy.dynamic`` is off.

    Raises:
        ValueError: if ``longest_frames`` is negative.
    """
    if longest_frames < 0:
        raise ValueError(f"longest_frames must be >= 0, got {longest_frames}")
    if not policy.dynamic:
        return FULL_CONTEXT_FRAMES
    # At least one bucket, so an empty clip still gives the encoder a valid input.
    rounded = max(1, math.ceil(longest_frames / policy.bucket_frames)) * policy.bucket_frames
    return min(FULL_CONTEXT_FRAMES, max(policy.min_frames, rounded))


def batch_context_frames(audios: Sequence[np.ndarray], policy: ContextPolicy) -> int:
    """:func:`context_frames` of a batch of 16 kHz waveforms (their longest clip's frames)."""
    return context_frames(max(math.ceil(len(audio) / HOP_LENGTH) for audio in audios), policy)


def pad_features(feats: Sequence[np.ndarray | torch.Tensor], frames: int) -> torch.Tensor:
    """Stack features into ``(B, n_mels, frames)``: pad with silence, cut longer ones.

    The padding value is each clip's own silence level, ``max(-1.5, max - 2)`` in normalized
    units: exactly what Whisper's extractor yields for the zero samples it pads a clip with (its
    floor clamps everything to 80 dB below the clip's peak). A padded row therefore equals the
    30-s features, except the two frames right after the clip, which in the 30-s features still
    overlap the clip's last samples (the STFT window is 2.5 hops wide).

    Raises:
        ValueError: if ``feats`` is empty, shapes disagree, or ``frames`` is not positive.
    """
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}")
    if not feats:
        raise ValueError("pad_features needs at least one feature array")
    arrays = [torch.as_tensor(np.asarray(f, dtype=np.float32)) for f in feats]
    mels = arrays[0].shape[0]
    batch = torch.empty(len(arrays), mels, frames, dtype=torch.float32)
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[0] != mels:
            raise ValueError(f"feature {i} has shape {tuple(array.shape)}, expected "
                             f"({mels}, T)")
        length = min(frames, array.shape[1])
        batch[i, :, :length] = array[:, :length]
        floor = max(SILENCE, float(array.max()) - 2.0) if array.numel() else SILENCE
        batch[i, :, length:] = floor
    return batch

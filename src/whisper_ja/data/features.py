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
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whisper_ja.config import ConfigError, field
from whisper_ja.data.manifest import Utterance

__all__ = [
    "FULL_CONTEXT_FRAMES",
    "HOP_LENGTH",
    "SILENCE",
    "ContextPolicy",
    "FeatureCache",
    "context_frames",
    "log_mel",
    "pad_features",
]

HOP_LENGTH = 160
"""Samples per mel frame at 16 kHz (10 ms)."""

FULL_CONTEXT_FRAMES = 3000
"""Whisper's fixed input: 30 s of 10-ms frames."""

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


def _settings_key(feature_extractor: Any) -> dict[str, Any]:
    names = ("feature_size", "sampling_rate", "hop_length", "n_fft", "n_samples", "dither")
    settings = {n: getattr(feature_extractor, n, None) for n in names}
    settings["mel_filters"] = hashlib.sha256(
        np.asarray(feature_extractor.mel_filters, dtype=np.float32).tobytes()).hexdigest()[:16]
    settings["version"] = _FEATURE_VERSION
    return settings


class FeatureCache:
    """Log-mel features of utterances, computed once and kept on disk.

    Each entry is ``<folder>/<2 hex>/<sha256>.npy`` where the hash covers the resolved audio path,
    its size and modification time (ns), and the feature extractor's settings (mel filters
    included). Changing the audio or a setting therefore changes the key: the old entry is never
    read again. Writes are atomic (temp file then rename), so parallel workers may share a cache.

    Attributes:
        hits: Entries read from disk.
        misses: Entries computed (and written).
        rebuilt: Unreadable entries that were recomputed (counted, never silently trusted).
    """

    def __init__(self, folder: str | Path,
                 loader: Callable[[str], np.ndarray] | None = None) -> None:
        """Open (create) the cache in ``folder``.

        Args:
            folder: Where entries live.
            loader: Reads an audio file as float32 mono 16 kHz; default
                ``whisper_ja.audio.load_audio``.
        """
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._loader = loader
        self._settings_memo: tuple[int, str] | None = None
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0

    def _load(self, path: str) -> np.ndarray:
        if self._loader is None:
            from whisper_ja.audio import load_audio  # imported late: owned by the model helper

            self._loader = load_audio
        return self._loader(path)

    def _settings(self, feature_extractor: Any) -> str:
        if self._settings_memo is None or self._settings_memo[0] != id(feature_extractor):
            text = json.dumps(_settings_key(feature_extractor), sort_keys=True)
            self._settings_memo = (id(feature_extractor), text)
        return self._settings_memo[1]

    def key(self, utt: Utterance, feature_extractor: Any) -> str:
        """The cache key of ``utt``'s features (hex digest); changes with audio or settings.

        Raises:
            FileNotFoundError: if the audio file is missing (the message names it).
        """
        audio = Path(utt.audio).resolve()
        try:
            stat = audio.stat()
        except FileNotFoundError as err:
            raise FileNotFoundError(f"utterance {utt.id}: audio file {audio} not found") from err
        text = f"{audio}|{stat.st_size}|{stat.st_mtime_ns}|{self._settings(feature_extractor)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, utt: Utterance, feature_extractor: Any) -> Path:
        """Where ``utt``'s features are (or will be) stored."""
        key = self.key(utt, feature_extractor)
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, utt: Utterance, feature_extractor: Any) -> np.ndarray:
        """``utt``'s log-mel features ``(n_mels, T)``, from disk or computed and stored."""
        path = self.path(utt, feature_extractor)
        if path.is_file():
            try:
                features = np.load(path)
                self.hits += 1
                return features
            except (OSError, ValueError):  # truncated/corrupt entry: recompute, and count it
                self.rebuilt += 1
        features = log_mel(self._load(utt.audio), feature_extractor)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, path)
        self.misses += 1
        return features

    def precompute(self, utts: Iterable[Utterance], feature_extractor: Any,
                   progress: bool = True) -> int:
        """Fill the cache for ``utts`` (progress bar); returns how many were computed now."""
        from tqdm.auto import tqdm

        before = self.misses
        items = list(utts)
        for utt in tqdm(items, desc="log-mel features", unit="utt", disable=not progress):
            self.get(utt, feature_extractor)
        return self.misses - before


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

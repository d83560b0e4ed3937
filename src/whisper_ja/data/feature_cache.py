"""Log-mel features of manifest utterances, computed once and kept on disk."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from whisper_ja.audio.features import feature_settings_key, log_mel
from whisper_ja.audio.io import load_audio
from whisper_ja.data.manifest import Utterance
from whisper_ja.errors import AudioError

__all__ = ["FeatureCache"]


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
        uncached: Entries computed but not written because ``max_bytes`` was reached.
    """

    def __init__(self, folder: str | Path,
                 loader: Callable[[str], np.ndarray] | None = None,
                 max_bytes: int = 0) -> None:
        """Open (create) the cache in ``folder``.

        Args:
            folder: Where entries live.
            loader: Reads an audio file as float32 mono 16 kHz; default
                ``whisper_ja.audio.io.load_audio``.
            max_bytes: Most bytes this object writes (0 = no bound); past it features are
                computed and returned but not stored, so a streamed corpus cannot fill the disk.
        """
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._loader = loader
        self._settings_memo: tuple[int, str] | None = None
        self.max_bytes = max_bytes
        self.written_bytes = 0
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0
        self.uncached = 0

    def _load(self, path: str) -> np.ndarray:
        if self._loader is None:
            self._loader = load_audio
        return self._loader(path)

    def _settings(self, feature_extractor: Any) -> str:
        if self._settings_memo is None or self._settings_memo[0] != id(feature_extractor):
            text = json.dumps(feature_settings_key(feature_extractor), sort_keys=True)
            self._settings_memo = (id(feature_extractor), text)
        return self._settings_memo[1]

    def key(self, utt: Utterance, feature_extractor: Any) -> str:
        """The cache key of ``utt``'s features (hex digest); changes with audio or settings.

        Raises:
            AudioError: if the audio file is missing (the message names it): a bad item that
                training skips and counts, like any unreadable clip.
        """
        audio = Path(utt.audio).resolve()
        try:
            stat = audio.stat()
        except OSError as err:
            raise AudioError(f"{audio}: no such file (utterance {utt.id})") from err
        return self.key_of(f"{audio}|{stat.st_size}|{stat.st_mtime_ns}", feature_extractor)

    def key_of(self, source: str, feature_extractor: Any) -> str:
        """The cache key of features of ``source`` (any text that changes with the audio)."""
        text = f"{source}|{self._settings(feature_extractor)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, utt: Utterance, feature_extractor: Any) -> Path:
        """Where ``utt``'s features are (or will be) stored."""
        key = self.key(utt, feature_extractor)
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, utt: Utterance, feature_extractor: Any) -> np.ndarray:
        """``utt``'s log-mel features ``(n_mels, T)``, from disk or computed and stored."""
        return self.get_keyed(self.key(utt, feature_extractor),
                              lambda: log_mel(self._load(utt.audio), feature_extractor))

    def get_keyed(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The entry ``key`` (from :meth:`key` or :meth:`key_of`), else ``compute()`` stored."""
        path = self.folder / key[:2] / f"{key}.npy"
        if path.is_file():
            try:
                features = np.load(path)
                self.hits += 1
                return features
            except (OSError, ValueError):  # truncated/corrupt entry: recompute, and count it
                self.rebuilt += 1
        features = compute()
        self.misses += 1
        if self.max_bytes and self.written_bytes + features.nbytes > self.max_bytes:
            self.uncached += 1
            return features
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, path)
        self.written_bytes += features.nbytes
        return features

    def precompute(self, utts: Iterable[Utterance], feature_extractor: Any,
                   progress: bool = True) -> int:
        """Fill the cache for ``utts`` (progress bar); returns how many were computed now."""
        before = self.misses
        items = list(utts)
        for utt in tqdm(items, desc="log-mel features", unit="utt", disable=not progress):
            self.get(utt, feature_extractor)
        return self.misses - before

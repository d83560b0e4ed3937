"""One model on one backend, as the measuring code sees it: decode clips, identify languages.

``evaluate`` (suite ja), the retention check and the versatility gate measure a model through a
:class:`ClipDecoder`, so each runs on transformers (:class:`TransformersDecoder`) or on a
CTranslate2 export (:class:`Ct2Decoder`) with the same scoring code. Both batch clips by length,
decode at the model's context policy, run the guards, and count unreadable audio instead of
failing on it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from whisper_ja.audio.constants import FRAMES_PER_SECOND
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.batch import BatchDecoding, decode_utterances, readable_audio
from whisper_ja.inference.ct2_clips import Ct2Options, detect_language_ct2, transcribe_audio_ct2
from whisper_ja.inference.decoding import DecodeOptions, DecodeResult
from whisper_ja.inference.faster import resolve_context
from whisper_ja.inference.language_id import detect_language
from whisper_ja.model.context import uses_dynamic_context

__all__ = ["ClipDecoder", "Ct2Decoder", "TransformersDecoder", "describe_context"]


def describe_context(policy: ContextPolicy) -> str:
    """How the encoder input is sized, as reports state it (the floor actually used)."""
    if not policy.dynamic:
        return "full (30 s)"
    return f"dynamic (batch's longest clip, {policy.min_frames / FRAMES_PER_SECOND:g} s floor)"


class ClipDecoder(Protocol):
    """A model ready to decode manifest clips and to identify their language."""

    @property
    def context(self) -> str:
        """How the encoder input is sized (:func:`describe_context`)."""
        ...

    def decode(self, utts: Sequence[Utterance], language: str) -> BatchDecoding:
        """Transcribe ``utts`` with ``language`` forced; unreadable audio goes to ``failed``."""
        ...

    def detect_language(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Whisper's language identification, one code per 16 kHz clip."""
        ...


@dataclass
class TransformersDecoder:
    """A transformers Whisper (plain or peft), decoded by :func:`decode_utterances`.

    Attributes:
        model: The model; decoded with dynamic context when it runs with it.
        processor: Its processor.
        options: Decoding options (language replaced per call).
        policy: The dynamic context policy.
        progress: Show progress bars.
        mode: ``dynamic`` or ``full`` encoder input; None = as the model runs.
    """

    model: Any
    processor: Any
    options: DecodeOptions
    policy: ContextPolicy
    progress: bool = False
    mode: Literal["dynamic", "full"] | None = None

    @property
    def _mode(self) -> str:
        if self.mode is not None:
            return self.mode
        return "dynamic" if uses_dynamic_context(self.model) else "full"

    @property
    def context(self) -> str:
        """How the encoder input is sized."""
        return describe_context(dataclasses.replace(self.policy,
                                                    dynamic=self._mode == "dynamic"))

    def decode(self, utts: Sequence[Utterance], language: str) -> BatchDecoding:
        """Transcribe ``utts`` with ``language`` forced."""
        return decode_utterances(self.model, self.processor, utts,
                                 dataclasses.replace(self.options, language=language),
                                 self._mode, progress=self.progress, policy=self.policy)

    def detect_language(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Whisper's language identification at the model's context."""
        return detect_language(self.model, self.processor, audios,
                               batch_size=self.options.batch_size, context=self._mode,
                               policy=self.policy, progress=self.progress)


@dataclass
class Ct2Decoder:
    """A CTranslate2 export, decoded by whisper-ja's batched ct2 path (guards on).

    Attributes:
        folder: The export (``whisper-ja export --to ct2``); its recorded policy applies with
            ``options.context="auto"``.
        options: Decoding options (language replaced per call).
        progress: Show progress bars.
    """

    folder: Path
    options: Ct2Options
    progress: bool = False

    @property
    def context(self) -> str:
        """How the encoder input is sized."""
        return describe_context(resolve_context(self.folder, self.options.context))

    def decode(self, utts: Sequence[Utterance], language: str) -> BatchDecoding:
        """Transcribe ``utts`` with ``language`` forced."""
        failed: dict[str, str] = {}
        kept, audios = readable_audio(utts, list(range(len(utts))), failed)
        began = time.perf_counter()
        clips = transcribe_audio_ct2(audios, self.folder,
                                     dataclasses.replace(self.options, language=language),
                                     progress=self.progress) if audios else []
        seconds = time.perf_counter() - began
        results: list[DecodeResult | None] = [None] * len(utts)
        for i, clip in zip(kept, clips, strict=True):
            results[i] = DecodeResult(
                text=clip.text, token_ids=tuple(t for s in clip.segments for t in s.tokens),
                looped=clip.looped, looped_unguarded=clip.looped_unguarded)
        return BatchDecoding(results=results, seconds=seconds, failed=failed)

    def detect_language(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Whisper's language identification at the export's context."""
        return detect_language_ct2(audios, self.folder, self.options, progress=self.progress)

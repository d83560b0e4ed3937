"""Clip decoding on any backend: many short recordings, batched by length, no timestamps.

What ``evaluate`` (every suite's clips), the versatility gate, ``distill``'s pseudo-labels and
the language check measure: each clip's text, with Japanese (or the asked language) forced.
Clips longer than 30 s are cut at quiet moments and their texts joined; silent clips and
chunks give an empty text without running the model. Windows are sorted by length so a batch
wastes little padding, and (with dynamic context) the encoder runs on the batch's longest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from whisper_ja.audio.constants import SAMPLES_PER_CHUNK
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.io import AudioError, is_silent, load_audio, split_long_audio
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.backend import Backend, WindowResult
from whisper_ja.inference.guards import decode_windows
from whisper_ja.inference.options import DecodingOptions

__all__ = ["BatchDecoding", "ClipResult", "decode_clips", "decode_utterances",
           "detect_languages"]


@dataclass(frozen=True)
class ClipResult:
    """One clip's transcript.

    Attributes:
        text: The transcript (chunks joined without spaces, as Japanese is written).
        token_ids: Its text token ids.
        looped: Some chunk still loops after the guards (a likely hallucination).
        looped_unguarded: Some chunk's greedy attempt looped (what an unguarded decoder
            writes).
        silent_chunks: Chunks the silence rule emptied although they were not quiet.
    """

    text: str
    token_ids: tuple[int, ...]
    looped: bool
    looped_unguarded: bool = False
    silent_chunks: int = 0


@dataclass(frozen=True)
class BatchDecoding:
    """What :func:`decode_utterances` returns.

    Attributes:
        results: Each utterance's result in input order; None where its audio failed.
        seconds: Decoding wall time (audio loading excluded).
        failed: ``{utterance id: one-line reason}`` of the utterances left out (bad audio).
    """

    results: list[ClipResult | None]
    seconds: float
    failed: dict[str, str]

    def decoded(self) -> list[ClipResult]:
        """The results of the utterances that were decoded (input order)."""
        return [r for r in self.results if r is not None]


def _chunks(audios: Sequence[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
    """(clip index, chunk index, audio) of every non-silent chunk, shortest first."""
    chunks = []
    for index, audio in enumerate(audios):
        for number, chunk in enumerate(split_long_audio(np.asarray(audio, dtype=np.float32))):
            if not is_silent(chunk):
                chunks.append((index, number, chunk))
    chunks.sort(key=lambda item: item[2].size)
    return chunks


def _merge(backend: Backend, parts: list[tuple[int, WindowResult]]) -> ClipResult:
    eot = backend.vocabulary.specials.eot
    parts.sort(key=lambda part: part[0])
    spoken = [result for _, result in parts if not result.silent]
    ids = tuple(t for result in spoken for t in result.ids if t < eot)
    texts = [backend.decode_text([t for t in r.ids if t < eot]).strip() for r in spoken]
    return ClipResult(text="".join(texts), token_ids=ids,
                      looped=any(r.looped for r in spoken),
                      looped_unguarded=any(r.looped_first for _, r in parts),
                      silent_chunks=sum(r.silent for _, r in parts))


def decode_clips(backend: Backend, audios: Sequence[np.ndarray], options: DecodingOptions,
                 *, prompt: tuple[int, ...] = (), progress: bool = False,
                 policy: ContextPolicy | None = None) -> list[ClipResult]:
    """Transcribe 16 kHz mono clips of any length, ``options.batch_size`` windows at a time.

    Args:
        backend: The model.
        audios: float32 clips at 16 kHz.
        options: Language, beams, token limit, guards, silence rule, batch size.
        prompt: Previous-text ids given to every clip (contextual biasing).
        progress: Show a progress bar over windows.
        policy: The encoder's context (None: the backend's own).

    Returns:
        One result per clip, in input order.
    """
    chunks = _chunks(audios)
    decoded: list[list[tuple[int, WindowResult]]] = [[] for _ in audios]
    with tqdm(total=len(chunks), desc="decoding", unit="window", disable=not progress) as bar:
        for first in range(0, len(chunks), options.batch_size):
            batch = chunks[first:first + options.batch_size]
            encoded = backend.encode([chunk for _, _, chunk in batch], policy)
            results = decode_windows(backend, encoded, range(len(batch)), options,
                                     timestamps=False, prompt=prompt)
            for (index, number, _), result in zip(batch, results, strict=True):
                decoded[index].append((number, result))
            bar.update(len(batch))
    return [_merge(backend, parts) for parts in decoded]


def decode_utterances(backend: Backend, utts: Sequence[Utterance], options: DecodingOptions,
                      *, prompt: tuple[int, ...] = (), progress: bool = False,
                      policy: ContextPolicy | None = None) -> BatchDecoding:
    """Decode manifest utterances; audio that cannot be read is counted, not fatal.

    Audio is read one batch at a time (utterances sorted by their recorded duration), so a
    large manifest never sits in memory whole. ``policy``: as :func:`decode_clips`'s.
    """
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration)
    results: list[ClipResult | None] = [None] * len(utts)
    failed: dict[str, str] = {}
    seconds = 0.0
    span = options.batch_size * 8  # read a few batches at a time: length-sorted within them
    with tqdm(total=len(utts), desc="decoding", unit="utt", disable=not progress) as bar:
        for first in range(0, len(order), span):
            kept, audios = [], []
            for i in order[first:first + span]:
                try:
                    audios.append(load_audio(utts[i].audio))
                    kept.append(i)
                except AudioError as err:
                    failed[utts[i].id] = str(err)
            began = time.perf_counter()
            for i, result in zip(kept, decode_clips(backend, audios, options, prompt=prompt,
                                                          policy=policy),
                                 strict=True):
                results[i] = result
            seconds += time.perf_counter() - began
            bar.update(len(order[first:first + span]))
    return BatchDecoding(results=results, seconds=seconds, failed=failed)


def detect_languages(backend: Backend, audios: Sequence[np.ndarray], batch_size: int = 8,
                     progress: bool = False) -> list[str]:
    """Whisper's language identification of each clip's first 30 s, batched by length."""
    clips = [np.asarray(audio, dtype=np.float32)[:SAMPLES_PER_CHUNK] for audio in audios]
    order = sorted(range(len(clips)), key=lambda i: clips[i].size)
    codes = [""] * len(clips)
    for first in tqdm(range(0, len(order), batch_size), desc="language id",
                      disable=not progress):
        rows = order[first:first + batch_size]
        for i, code in zip(rows, backend.detect_language(backend.encode([clips[i] for i in rows])),
                           strict=True):
            codes[i] = code
    return codes

"""The thin adapter between requests and ``whisper_ja.inference``: one engine per backend.

An engine turns a batch of 16 kHz clips that share :class:`RequestOptions` into timed
transcripts. It holds no HTTP knowledge; the batcher calls it from one worker thread, so an
engine never runs two batches at once.

- :class:`TransformersEngine` (Japanese forced, loops flagged, the repetition guard and
  temperature fallback of ``whisper_ja.inference.guards``: OpenAI's meaning of
  ``temperature=0``), with ``timestamps``:

  - ``model`` (default): ``whisper_ja.inference.longform.transcribe_segments``, what
    ``transcribe`` runs: Silero VAD, Whisper's own timestamp tokens, previous-text
    conditioning, word times by cross-attention DTW. Each upload is decoded on its own, one
    after the other, in the batch the queue formed.
  - ``windows``: ``whisper_ja.inference.decoding.decode_audio`` over the windows of every upload
    of the batch together (cross-request batching: the throughput mode); each window of at most
    30 s, cut at a quiet moment, becomes one segment, and there are no word times.
- :class:`Ct2Engine`: faster-whisper (``whisper_ja.inference.faster.load_faster_whisper``)
  with its own segment and word timestamps and temperature.

Cancellation: ``transcribe(..., cancelled=...)`` takes ``cancelled(i)``, True once the request
of ``audios[i]`` has given up (timed out, client gone). It is asked before each segment is
decoded (``model``, ct2: segments come from lazy iterators, so stopping the iteration stops
the decoding) and before each batch of windows (``windows``: a given-up upload's windows are
left out). A given-up upload's result holds what was decoded before it stopped; the caller
discards it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.io import is_silent, split_long_audio
from whisper_ja.data.timestamps import MAX_PROMPT_TOKENS
from whisper_ja.errors import RequestError
from whisper_ja.inference.decoding import (
    WINDOW_MAX_TOKENS,
    DecodeOptions,
    DecodeResult,
    decode_audio,
)
from whisper_ja.inference.faster import load_faster_whisper
from whisper_ja.inference.faster_longform import faster_segments
from whisper_ja.inference.guards import GuardSettings
from whisper_ja.inference.longform import LongformOptions, transcribe_segments
from whisper_ja.inference.timestamps import Segment
from whisper_ja.inference.vad import VadSettings
from whisper_ja.model import LoadedWhisper, load_model
from whisper_ja.model.device import resolve_device
from whisper_ja.serve.settings import ServeConfig

__all__ = ["Cancelled", "Ct2Engine", "Engine", "EngineResult", "RequestOptions",
           "TransformersEngine", "check_options", "load_engine"]

log = logging.getLogger(__name__)

Cancelled = Callable[[int], bool]
"""``cancelled(i)``: the request of upload ``i`` (its index in the batch) has given up."""


def _never(_: int) -> bool:
    return False


def _until(segments: Iterator[Segment], stop: Callable[[], bool]) -> Iterator[Segment]:
    """``segments`` until ``stop()``, asked before each next one is pulled (and so decoded)."""
    while not stop():
        try:
            segment = next(segments)
        except StopIteration:
            return
        yield segment


@dataclass(frozen=True)
class RequestOptions:
    """What a request asks of the decoder; requests batch together only when these agree."""

    language: str = "ja"
    prompt: str = ""
    temperature: float = 0.0
    words: bool = False


@dataclass(frozen=True)
class EngineResult:
    """The transcript of one upload."""

    segments: tuple[Segment, ...]
    duration: float
    language: str
    temperature: float

    @property
    def text(self) -> str:
        """The whole transcript (Japanese segments join without spaces)."""
        return "".join(s.text for s in self.segments)

    @property
    def looped(self) -> bool:
        """Some window repeated itself (a likely hallucination)."""
        return any(s.looped for s in self.segments)


class Engine(Protocol):
    """What the server needs from a backend."""

    backend: str
    supports_words: bool
    supports_temperature: bool

    def languages(self) -> frozenset[str]:
        """Language codes the model knows."""
        ...

    def transcribe(self, audios: Sequence[np.ndarray], options: RequestOptions, *,
                   cancelled: Cancelled | None = None) -> list[EngineResult]:
        """Timed transcripts of 16 kHz mono clips, in order (see the module's Cancellation)."""
        ...


class TransformersEngine:
    """A transformers Whisper (optionally with a LoRA adapter) decoding batches of windows."""

    backend = "transformers"
    supports_temperature = False

    def __init__(self, loaded: LoadedWhisper, *, beams: int = 1,
                 max_new_tokens: int = WINDOW_MAX_TOKENS, batch_size: int = 8,
                 guards: GuardSettings | None = None,
                 timestamps: Literal["model", "windows"] = "model",
                 longform: LongformOptions | None = None, vad: VadSettings | None = None,
                 ) -> None:
        self.loaded = loaded
        self.guards = guards or GuardSettings()
        self.timestamps = timestamps
        self.longform = longform or LongformOptions()
        self.vad = vad or VadSettings()
        self.supports_words = timestamps == "model"
        self.beams = beams
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def languages(self) -> frozenset[str]:
        """Codes of the ``<|xx|>`` language tokens in the model's generation config."""
        lang_to_id = getattr(self.loaded.model.generation_config, "lang_to_id", None) or {}
        return frozenset(token.strip("<|>") for token in lang_to_id)

    def _prompt_ids(self, prompt: str) -> tuple[int, ...]:
        if not prompt.strip():
            return ()
        ids = [int(i) for i in self.loaded.processor.get_prompt_ids(prompt)]
        # OpenAI keeps the end of an over-long prompt (the words nearest the audio).
        return (ids[0], *ids[1:][-MAX_PROMPT_TOKENS:])

    def _decode_options(self, options: RequestOptions, prompt: tuple[int, ...]) -> DecodeOptions:
        return DecodeOptions(num_beams=self.beams, max_new_tokens=self.max_new_tokens,
                             batch_size=self.batch_size, language=options.language,
                             prompt_ids=prompt, guards=self.guards)

    def _timed(self, audio: np.ndarray, options: RequestOptions,
               stop: Callable[[], bool]) -> EngineResult:
        # transcribe_segments takes the prompt without its <|startofprev|>.
        decode = self._decode_options(options, self._prompt_ids(options.prompt)[1:])
        longform = replace(self.longform, word_timestamps=options.words)
        segments = tuple(_until(transcribe_segments(
            audio, self.loaded.model, self.loaded.processor, longform, decode, self.vad), stop))
        return EngineResult(segments, audio.size / SAMPLE_RATE, options.language, 0.0)

    def transcribe(self, audios: Sequence[np.ndarray], options: RequestOptions, *,
                   cancelled: Cancelled | None = None) -> list[EngineResult]:
        """Timed segments of each clip (``model``) or all windows in batches (``windows``).

        ``cancelled(i)`` stops upload ``i`` at its next segment (``model``) or leaves its
        remaining windows out (``windows``).
        """
        gave_up = cancelled or _never
        if self.timestamps == "model":
            return [self._timed(audio, options, partial(gave_up, index))
                    for index, audio in enumerate(audios)]
        windows: list[tuple[int, float, float, np.ndarray]] = []
        for index, audio in enumerate(audios):
            offset = 0
            for chunk in split_long_audio(audio):
                windows.append((index, offset / SAMPLE_RATE, (offset + chunk.size) / SAMPLE_RATE,
                                chunk))
                offset += chunk.size
        decode = self._decode_options(options, self._prompt_ids(options.prompt))
        results: list[DecodeResult | None] = [None] * len(windows)
        for first in range(0, len(windows), self.batch_size):
            live = [i for i in range(first, min(first + self.batch_size, len(windows)))
                    if not gave_up(windows[i][0])]
            if live:
                decoded = decode_audio(self.loaded.model, self.loaded.processor,
                                       [windows[i][3] for i in live], decode, progress=False)
                for i, done in zip(live, decoded, strict=True):
                    results[i] = done
        segments: list[list[Segment]] = [[] for _ in audios]
        for (index, start, end, _), result in zip(windows, results, strict=True):
            if result is not None and result.text:
                segments[index].append(Segment(start, end, result.text,
                                               token_ids=result.token_ids, looped=result.looped))
        return [EngineResult(tuple(segs), audio.size / SAMPLE_RATE, options.language, 0.0)
                for segs, audio in zip(segments, audios, strict=True)]


class Ct2Engine:
    """faster-whisper on a CTranslate2 folder: its own segment and word timestamps."""

    backend = "ct2"
    supports_words = True
    supports_temperature = True

    def __init__(self, model_dir: str, *, beams: int = 1,
                 max_new_tokens: int = WINDOW_MAX_TOKENS) -> None:
        self.model: Any = load_faster_whisper(model_dir, "int8")
        self.beams = beams
        self.max_new_tokens = max_new_tokens

    def languages(self) -> frozenset[str]:
        """faster-whisper's supported languages of this model."""
        return frozenset(self.model.supported_languages)

    def _one(self, audio: np.ndarray, options: RequestOptions,
             stop: Callable[[], bool]) -> EngineResult:
        duration = audio.size / SAMPLE_RATE
        if is_silent(audio) or stop():  # the same energy gate as the transformers backend
            return EngineResult((), duration, options.language, options.temperature)
        found, _ = self.model.transcribe(
            audio, language=options.language, task="transcribe", beam_size=self.beams,
            temperature=options.temperature, initial_prompt=options.prompt or None,
            word_timestamps=options.words, condition_on_previous_text=False,
            vad_filter=False, max_new_tokens=self.max_new_tokens)
        # faster-whisper's segments are lazy: stopping the iteration stops the decoding.
        segments = tuple(_until(faster_segments(found, self.max_new_tokens), stop))
        return EngineResult(segments, duration, options.language, options.temperature)

    def transcribe(self, audios: Sequence[np.ndarray], options: RequestOptions, *,
                   cancelled: Cancelled | None = None) -> list[EngineResult]:
        """faster-whisper decodes one clip at a time; the queue still orders the requests.

        ``cancelled(i)`` stops upload ``i`` at its next segment.
        """
        gave_up = cancelled or _never
        return [self._one(audio, options, partial(gave_up, index))
                for index, audio in enumerate(audios)]


def load_engine(config: ServeConfig) -> Engine:
    """Load the configured backend's model.

    Raises:
        ModelError: the model cannot be loaded (missing folder, wrong files, ...).
    """
    if config.backend == "ct2":
        return Ct2Engine(config.model, beams=config.beams, max_new_tokens=config.max_new_tokens)
    loaded = load_model(config.model, adapter=config.adapter,
                        device=resolve_device(config.device))
    return TransformersEngine(loaded, beams=config.beams, max_new_tokens=config.max_new_tokens,
                              batch_size=config.limits.max_batch, guards=config.guards,
                              timestamps=config.timestamps, longform=config.longform,
                              vad=config.vad)


def check_options(engine: Engine, options: RequestOptions) -> None:
    """Refuse what this engine cannot do, naming the field (before the request is queued).

    Raises:
        RequestError: unknown language, word timestamps or temperature the backend lacks.
    """
    if options.language not in engine.languages():
        raise RequestError(f"language: {options.language!r} is not a language this model "
                           "knows (ISO-639-1 code, e.g. ja, en)", param="language")
    if options.words and not engine.supports_words:
        raise RequestError("timestamp_granularities[]: this server gives no word timestamps "
                           "(it runs with timestamps=windows; start it with timestamps=model "
                           "or --backend ct2)", param="timestamp_granularities[]")
    if options.temperature > 0 and not engine.supports_temperature:
        raise RequestError(f"temperature: {options.temperature} needs sampling, which the "
                           f"{engine.backend} backend does not do (it decodes greedily or "
                           "with beams); send 0 or run the server with --backend ct2",
                           param="temperature")

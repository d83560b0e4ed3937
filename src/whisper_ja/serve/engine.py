"""The thin adapter between requests and the inference engine: the server is the CLI.

``serve`` loads the very :class:`~whisper_ja.inference.engine.Engine` that ``transcribe``
loads, from the same inline settings (backend, device, compute type, VAD, guards, long-form),
so the same file gives the same segments through either door. This module adds only what a
request asks per call (language, prompt, temperature, word times) and cancellation; it holds
no HTTP knowledge. The batcher calls it from one worker thread, so it never runs two batches
at once.

A batch of uploads of at most 30 s is decoded together (the engine pools their windows, as
``transcribe`` pools many short files); longer uploads are decoded one after another, each as
a lazy stream of segments.

Cancellation: ``transcribe(..., cancelled=...)`` takes ``cancelled(i)``, True once the request
of ``audios[i]`` has given up (timed out, client gone). A given-up upload is left out of a
pooled batch before it starts, and a long upload stops before its next window is decoded. A
given-up upload's result holds what was decoded before it stopped; the caller discards it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE, SAMPLES_PER_CHUNK
from whisper_ja.errors import RequestError
from whisper_ja.inference.engine import Engine as InferenceEngine
from whisper_ja.inference.engine import load_engine as load_inference_engine
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.inference.timestamps import Segment
from whisper_ja.serve.settings import ServeConfig

__all__ = ["Cancelled", "Engine", "EngineResult", "RequestOptions", "check_options",
           "load_engine"]

log = logging.getLogger(__name__)

Cancelled = Callable[[int], bool]
"""``cancelled(i)``: the request of upload ``i`` (its index in the batch) has given up."""


def _never(_: int) -> bool:
    return False


@dataclass(frozen=True)
class RequestOptions:
    """What a request asks of the decoder; requests batch together only when these agree."""

    language: str = "ja"
    prompt: str = ""
    temperature: float = 0.0
    words: bool = False


@dataclass(frozen=True)
class EngineResult:
    """The transcript of one upload.

    Attributes:
        segments: Its segments in time order.
        duration: The upload's length in seconds.
        language: The language it was decoded in.
        temperature: The temperature the request asked for.
        lost_speech_s: Seconds of speech VAD heard that gave no text (counted, never hidden).
    """

    segments: tuple[Segment, ...]
    duration: float
    language: str
    temperature: float
    lost_speech_s: float = 0.0

    @property
    def text(self) -> str:
        """The whole transcript (Japanese segments join without spaces)."""
        return "".join(s.text for s in self.segments)

    @property
    def looped(self) -> bool:
        """Some window repeated itself (a likely hallucination)."""
        return any(s.looped for s in self.segments)


class Engine:
    """The server's view of an inference engine (what ``transcribe`` runs)."""

    supports_words = True
    supports_temperature = True

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self.backend = engine.backend.name

    def languages(self) -> frozenset[str]:
        """Language codes the model knows."""
        return self.engine.languages()

    def _options(self, options: RequestOptions) -> DecodingOptions:
        base = self.engine.options
        return dataclasses.replace(
            base, language=options.language, temperature=options.temperature,
            initial_prompt=options.prompt or base.initial_prompt,
            longform=dataclasses.replace(base.longform, word_timestamps=options.words
                                         or base.longform.word_timestamps))

    def transcribe(self, audios: Sequence[np.ndarray], options: RequestOptions, *,
                   cancelled: Cancelled | None = None) -> list[EngineResult]:
        """Timed transcripts of 16 kHz mono clips, in order (see the module's Cancellation)."""
        gave_up = cancelled or _never
        decoding = self._options(options)
        results: list[EngineResult | None] = [None] * len(audios)
        live = [i for i in range(len(audios)) if not gave_up(i)]
        pooled = [i for i in live if audios[i].size <= SAMPLES_PER_CHUNK]
        for row, segments, stats in self.engine.transcribe_many(
                [audios[i] for i in pooled], options=decoding):
            results[pooled[row]] = self._result(audios[pooled[row]], segments,
                                                stats.lost_speech_s, options)
        for index in sorted(set(live) - set(pooled)):
            done = self.engine.transcribe(audios[index], options=decoding,
                                          cancelled=partial(gave_up, index))
            segments = list(done.segments)
            results[index] = self._result(audios[index], segments, done.stats.lost_speech_s,
                                          options)
        return [r if r is not None else EngineResult((), a.size / SAMPLE_RATE, options.language,
                                                     options.temperature)
                for r, a in zip(results, audios, strict=True)]

    @staticmethod
    def _result(audio: np.ndarray, segments: Sequence[Segment], lost: float,
                options: RequestOptions) -> EngineResult:
        return EngineResult(tuple(segments), audio.size / SAMPLE_RATE, options.language,
                            options.temperature, lost)


def load_engine(config: ServeConfig) -> Engine:
    """Load the configured model as ``transcribe`` would (same factory, same settings).

    Raises:
        ConfigError: a setting this machine cannot honour (a GPU that is not there...).
        ModelError: the model cannot be loaded (missing folder, wrong files, ...).
    """
    return Engine(load_inference_engine(config.model, config.adapter, config.runtime,
                                        config.decoding))


def check_options(engine: Engine, options: RequestOptions) -> None:
    """Refuse what the model cannot do, naming the field (before the request is queued).

    Raises:
        RequestError: a language the model does not know.
    """
    if options.language not in engine.languages():
        raise RequestError(f"language: {options.language!r} is not a language this model "
                           "knows (ISO-639-1 code, e.g. ja, en)", param="language")
    if not 0 <= options.temperature <= 2:
        raise RequestError(f"temperature: must be in 0..2, got {options.temperature}",
                           param="temperature")

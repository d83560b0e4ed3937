"""The one front door of decoding: a loaded model and its settings, for every command.

``transcribe``, ``evaluate`` (every suite), ``serve``, the versatility gate and ``distill`` all
hold an :class:`Engine` made by :func:`load_engine`, the only place that names a backend. It
decodes clips (:meth:`Engine.decode_clips`), long recordings (:meth:`Engine.transcribe`,
segments as a lazy generator, faster-whisper's shape) and many short files pooled into
batches (:meth:`Engine.transcribe_many`), with the same :class:`DecodingOptions` on either
backend.

``backend: auto`` (the default) runs CTranslate2 whenever it can: a CTranslate2 folder as it
is, any other model (hub id, transformers folder, adapter) through a cached conversion with
the adapter merged (:mod:`whisper_ja.inference.ct2_cache`). A torch ``dtype`` asks for
transformers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whisper_ja.audio.constants import FRAMES_PER_SECOND, SAMPLE_RATE, SAMPLES_PER_CHUNK
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.config import ConfigError
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.backend import Backend
from whisper_ja.inference.backends.ct2 import Ct2Backend
from whisper_ja.inference.backends.hf import HfBackend
from whisper_ja.inference.clips import (
    BatchDecoding,
    ClipResult,
    decode_clips,
    decode_utterances,
    detect_languages,
)
from whisper_ja.inference.ct2_cache import cached_ct2
from whisper_ja.inference.ct2_snapshot import ct2_snapshot
from whisper_ja.inference.faster import check_compute_type
from whisper_ja.inference.longform import (
    LongformStats,
    long_audio_segments,
    short_files_segments,
)
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.inference.timestamps import Segment
from whisper_ja.model.ct2 import is_ct2_folder
from whisper_ja.model.device import resolve_device
from whisper_ja.model.loading import LoadedWhisper

__all__ = ["Engine", "Transcription", "ct2_compute_type", "describe_context", "live_engine",
           "load_engine", "needs_snapshot", "one_window_policy", "resolve_backend"]


def describe_context(policy: ContextPolicy) -> str:
    """How the encoder input is sized, as reports state it (the floor actually used)."""
    if not policy.dynamic:
        return "full (30 s)"
    return f"dynamic (batch's longest clip, {policy.min_frames / FRAMES_PER_SECOND:g} s floor)"


def one_window_policy(backend: Backend, context: str) -> ContextPolicy | None:
    """The context of a recording that is one window, when it differs from the backend's.

    ``context: auto`` on a model with no dynamic-context record (an untouched Whisper) runs
    such a recording at its own length, 8 s floor, instead of 30 s: on 194 SYNTHETIC clips
    (1,051 s in all; untouched whisper-base, int8) CER 17.72% against 17.88% at 30 s, paired
    difference -0.16 (-0.81..+0.48), in 0.36x the time (the encoder is most of a short file's
    cost; the floor is what keeps an untuned model from looping on short input,
    ``../shared/performance-facts.md``). Long audio's windows stay at 30 s there: dynamic
    context gave no speed (its windows are full) and CER 17.46% against 17.12% on the dev
    long-audio set. ``full`` and ``dynamic`` are honoured as asked, everywhere.
    """
    if context != "auto" or backend.policy.dynamic:
        return None
    return ContextPolicy()


@dataclass
class Transcription:
    """One recording's transcript, decoded as its segments are consumed.

    Attributes:
        segments: The segments in time order (a generator: decoding happens while it runs).
        stats: What happened to the windows, complete once ``segments`` is exhausted.
        duration: The recording's length in seconds.
    """

    segments: Iterator[Segment]
    stats: LongformStats
    duration: float


@dataclass
class Engine:
    """A model on a backend, with the decoding settings every call uses unless overridden.

    Attributes:
        backend: The loaded model (transformers or CTranslate2).
        options: The decoding settings.
        source: What was loaded, for reports (``model + adapter, backend precision``).
        one_window: The encoder's context for recordings of one window (clips, short files)
            and for long audio's speech decoded again in pieces; None: the backend's own, as
            for long audio's windows (:func:`one_window_policy`).
    """

    backend: Backend
    options: DecodingOptions
    source: str
    one_window: ContextPolicy | None = None

    @property
    def context(self) -> str:
        """How the encoder input is sized."""
        long_audio = describe_context(self.backend.policy)
        if self.one_window is None:
            return long_audio
        return (f"{describe_context(self.one_window)} for clips, {long_audio} for long "
                f"audio's windows")

    def languages(self) -> frozenset[str]:
        """Language codes the model knows."""
        return frozenset(self.backend.vocabulary.languages)

    def prompt_ids(self, text: str) -> tuple[int, ...]:
        """Previous-text ids of ``text`` (the end kept when too long: nearest the audio)."""
        return tuple(self.backend.encode_text(text)[-223:]) if text.strip() else ()

    def _options(self, options: DecodingOptions | None) -> DecodingOptions:
        chosen = options or self.options
        if chosen.language not in self.backend.vocabulary.languages:
            raise ConfigError(f"language: {chosen.language!r} is not a language this model "
                              "knows (ISO-639-1 code, e.g. ja, en)")
        return chosen

    def transcribe(self, audio: np.ndarray, *, options: DecodingOptions | None = None,
                   cancelled: Callable[[], bool] | None = None) -> Transcription:
        """Timed segments of one 16 kHz recording of any length (lazily decoded)."""
        chosen = self._options(options)
        stats = LongformStats()
        segments = long_audio_segments(self.backend, audio, chosen,
                                       prompt=self.prompt_ids(chosen.initial_prompt),
                                       stats=stats, cancelled=cancelled,
                                       piece_policy=self.one_window)
        return Transcription(segments, stats, audio.size / SAMPLE_RATE)

    def transcribe_many(self, audios: Sequence[np.ndarray], *,
                        options: DecodingOptions | None = None,
                        ) -> Iterator[tuple[int, list[Segment], LongformStats]]:
        """Segments of several recordings: ``(index, segments, stats)`` as each is done.

        Recordings of at most 30 s are pooled into shared batches first (each one window,
        decoded in a single pass); longer ones follow one by one, in input order.
        """
        chosen = self._options(options)
        prompt = self.prompt_ids(chosen.initial_prompt)
        short = [i for i, a in enumerate(audios) if a.size <= SAMPLES_PER_CHUNK]
        for first in range(0, len(short), chosen.batch_size * 4):
            group = short[first:first + chosen.batch_size * 4]
            stats = [LongformStats() for _ in group]
            found = short_files_segments(self.backend, [audios[i] for i in group], chosen, stats,
                                         prompt, self.one_window)
            yield from zip(group, found, stats, strict=True)
        pooled = set(short)
        for index in (i for i in range(len(audios)) if i not in pooled):
            transcription = self.transcribe(audios[index], options=chosen)
            yield index, list(transcription.segments), transcription.stats

    def decode_clips(self, audios: Sequence[np.ndarray], *, language: str | None = None,
                     prompt: tuple[int, ...] | None = None, progress: bool = False,
                     ) -> list[ClipResult]:
        """Each clip's text (no timestamps), batched by length.

        ``prompt``: previous-text ids for every clip; None = ``initial_prompt``'s.
        """
        chosen = self._options(dataclasses.replace(self.options,
                                                   language=language or self.options.language))
        return decode_clips(self.backend, audios, chosen, progress=progress,
                            prompt=self._clip_prompt(prompt, chosen), policy=self.one_window)

    def decode_utterances(self, utts: Sequence[Utterance], *, language: str | None = None,
                          prompt: tuple[int, ...] | None = None, progress: bool = False
                          ) -> BatchDecoding:
        """Manifest utterances' texts; unreadable audio is counted in ``failed``."""
        chosen = self._options(dataclasses.replace(self.options,
                                                   language=language or self.options.language))
        return decode_utterances(self.backend, utts, chosen, progress=progress,
                                 prompt=self._clip_prompt(prompt, chosen),
                                 policy=self.one_window)

    def _clip_prompt(self, prompt: tuple[int, ...] | None, options: DecodingOptions
                     ) -> tuple[int, ...]:
        return prompt if prompt is not None else self.prompt_ids(options.initial_prompt)

    def detect_language(self, audios: Sequence[np.ndarray], progress: bool = False
                        ) -> list[str]:
        """Whisper's language identification, one code per clip."""
        return detect_languages(self.backend, audios, self.options.batch_size, progress)


def resolve_backend(runtime: RuntimeSettings) -> str:
    """``transformers`` or ``ct2``: what ``runtime.backend`` means here.

    ``auto``: CTranslate2 unless a torch dtype was asked for or CTranslate2 is not installed.
    """
    if runtime.backend != "auto":
        return runtime.backend
    if runtime.dtype != "auto" or importlib.util.find_spec("ctranslate2") is None:
        return "transformers"
    return "ct2"


def ct2_compute_type(runtime: RuntimeSettings) -> str:
    """The CTranslate2 compute type to load with, checked against the device.

    ``auto`` is int8 on a CPU and int8_float16 on a GPU.

    Raises:
        ConfigError: a GPU that is not there, or a type the device cannot run (named).
    """
    compute = runtime.compute_type
    if compute == "auto":
        compute = "int8" if resolve_device(runtime.device).type == "cpu" else "int8_float16"
    check_compute_type(compute, runtime.device)
    return compute


def load_engine(model: str, adapter: str | None, runtime: RuntimeSettings,
                options: DecodingOptions) -> Engine:
    """Load ``model`` (with ``adapter``) on the backend ``runtime`` picks: the only factory.

    Raises:
        ConfigError: a setting this machine or backend cannot honour (named).
        ModelError: the model or adapter cannot be loaded.
    """
    name = resolve_backend(runtime)
    label = model + (f" + {adapter}" if adapter else "")
    resolve_device(runtime.device)  # a GPU that is not there: refused before any work
    if name == "ct2":
        compute = ct2_compute_type(runtime)  # refused before any conversion
        folder = model if is_ct2_folder(model) and not adapter else str(cached_ct2(model,
                                                                                   adapter))
        backend: Backend = Ct2Backend.load(folder, compute_type=compute, device=runtime.device,
                                           cpu_threads=runtime.cpu_threads,
                                           context=runtime.context)
        return Engine(backend, options, f"{label}, CTranslate2 {compute}",
                      one_window_policy(backend, runtime.context))
    backend = HfBackend.load(model, adapter=adapter, device=runtime.device,
                             dtype=runtime.dtype, context=runtime.context)
    return Engine(backend, options, f"{label}, transformers {runtime.dtype}",
                  one_window_policy(backend, runtime.context))


def needs_snapshot(runtime: RuntimeSettings) -> bool:
    """Whether a model in memory decodes on ``runtime`` through a CTranslate2 snapshot.

    Callers that decode the same weights twice (training's validation and gate) share one.
    """
    return resolve_backend(runtime) == "ct2"


@contextlib.contextmanager
def live_engine(model: Any, processor: Any, runtime: RuntimeSettings,
                options: DecodingOptions, policy: ContextPolicy) -> Iterator[Engine]:
    """An engine on a model held in memory (training's gate and validation, retention).

    On CTranslate2 (``runtime`` resolves to ``ct2``) a temporary snapshot of the model as it
    is now (float32 weights, removed on exit) is decoded at ``runtime.compute_type``; on
    transformers, the model itself, unchanged.
    """
    if needs_snapshot(runtime):
        compute = ct2_compute_type(runtime)
        with ct2_snapshot(model, processor, policy) as folder:
            backend = Ct2Backend.load(folder, compute_type=compute, context=runtime.context,
                                      device=runtime.device, cpu_threads=runtime.cpu_threads)
            yield Engine(backend, options, f"snapshot, CTranslate2 {compute}",
                         one_window_policy(backend, runtime.context))
        return
    hf = HfBackend(LoadedWhisper(model, processor, "in memory"), context=runtime.context,
                   policy=policy)
    yield Engine(hf, options, "in memory, transformers", one_window_policy(hf, runtime.context))

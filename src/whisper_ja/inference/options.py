"""The settings of decoding: one home for every command that decodes.

:class:`DecodingOptions` (how to decode: beams, token limit, guards, long-form, VAD) and
:class:`RuntimeSettings` (where: backend, device, precision) are embedded *inline* in the
settings of ``transcribe``, ``evaluate``, ``serve``, the training gate and ``distill``, so a
setting has one name, one default and one meaning everywhere (``--beams 2``,
``--set guards.temperatures=[1.0] longform.mode=batched``). The engine
(:mod:`whisper_ja.inference.engine`) reads every field; a field a backend cannot honour is
refused by name when the engine loads, never accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from whisper_ja.config import ConfigError, field
from whisper_ja.model.device import CT2_COMPUTE_TYPES, DEVICE_HELP, DtypeName, check_device

__all__ = ["CLIP_MAX_TOKENS", "WINDOW_MAX_TOKENS", "BackendName", "DecodingOptions",
           "GuardSettings", "LongformOptions", "PauseSettings", "RuntimeSettings",
           "VadSettings"]

CLIP_MAX_TOKENS = 128
"""Token limit of one short clip's transcript (what evaluation of clips used to decode with)."""

WINDOW_MAX_TOKENS = 224
"""Token limit of one 30 s window: OpenAI's ``sample_len``, half the decoder's 448 positions.

A dense 30 s window of Japanese with timestamps runs past 128 tokens."""

BackendName = Literal["auto", "transformers", "ct2"]


@dataclass(frozen=True)
class GuardSettings:
    """Decoding guards (``guards.*``), on by default wherever whisper-ja decodes."""

    repetition: bool = field(True, help="end a row as soon as it repeats itself back to back "
                                        "and cut the repeats, instead of looping to the limit")
    fallback: bool = field(True, help="decode again at higher temperature when the text is "
                                      "repetitive or unconfident (OpenAI's rule)")
    temperatures: tuple[float, ...] = field((0.2, 0.4, 0.6, 0.8, 1.0),
                                            help="sampling temperatures tried in turn by the "
                                                 "fallback (after greedy decoding)")
    compression_ratio_threshold: float = field(
        2.4, help="gzip compression ratio above which a text counts as repetitive")
    logprob_threshold: float = field(
        -1.0, help="average token log-probability under which a text counts as unconfident "
                   "(also the silence rule's: see no_speech_threshold)")
    max_ngram: int = field(32, help="longest repeated unit the repetition guard looks for")
    seed: int = field(0, help="seed of the fallback's sampling (reproducible transcripts)")

    def __post_init__(self) -> None:
        if any(not 0 < t <= 2 for t in self.temperatures):
            raise ConfigError(f"guards.temperatures: each must be in (0, 2], "
                              f"got {self.temperatures}")
        if self.compression_ratio_threshold <= 0:
            raise ConfigError("guards.compression_ratio_threshold: must be > 0")
        if self.max_ngram < 1:
            raise ConfigError(f"guards.max_ngram: must be >= 1, got {self.max_ngram}")


@dataclass(frozen=True)
class VadSettings:
    """Silero VAD settings (``vad.threshold=0.4`` and so on)."""

    threshold: float = field(0.5, help="speech probability above which a 32 ms frame is speech")
    min_speech_ms: int = field(250, help="speech stretches shorter than this are dropped (ms)")
    min_silence_ms: int = field(
        500, help="a pause must last this long to end a speech stretch (ms)")
    speech_pad_ms: int = field(200, help="padding kept each side of a speech stretch (ms)")
    max_gap_s: float = field(
        2.0, help="stretches closer than this are decoded in one window (s)")

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"vad.threshold: must be in (0, 1), got {self.threshold}")
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad.{name}: must be >= 0, got {getattr(self, name)}")
        if self.max_gap_s < 0:
            raise ConfigError(f"vad.max_gap_s: must be >= 0, got {self.max_gap_s}")


@dataclass(frozen=True)
class PauseSettings:
    """Cutting segments at pauses and snapping them onto speech (``longform.pauses.*``)."""

    split: bool = field(True, help="cut a segment at a pause inside it where Whisper would "
                                   "have ended the sentence (needs word times)")
    # 100-200 ms cut the same sentences on benchmarks/longform.py, 300 ms lost one; 150 ms
    # stays clear of the ~100 ms closures of geminates (っ) inside words.
    min_pause_ms: int = field(150, help="silence (Silero) that counts as a pause (ms)")
    # Silero's speech probability decays ~0.1 a 32 ms frame: a pause under ~0.35 s between
    # sentences never drops below its threshold long enough (benchmarks/heldout_longform.py's
    # short-dev set: 4 sentences with 0.2-0.3 s pauses in one stretch). 30 dB under loud speech
    # is -45 dBFS for speech at -15: pauses in quiet rooms, not a noisy recording's floor.
    quiet_db: float = field(30.0, help="a stretch this many dB under the recording's loud "
                                       "speech also counts as a pause, for at least "
                                       "min_pause_ms (0: Silero's pauses only)")
    # measured (whisper-base, float32): at sentence ends 0.14-0.43 (benchmarks/longform.py)
    # and 0.77-0.85 (the demo's long audio); at commas at most 0.005 and 0.009, the demo
    # adapter's 0.053 (a cut that cost it boundary F1 at 0.05)
    end_probability: float = field(
        0.1, help="Whisper's probability of 。 before a pause at which a segment is cut")
    # measured (whisper-base, benchmarks/longform.py's sentences in 3 arrangements): Whisper's
    # own boundaries fall up to ~0.9 s into a pause; 0.5 -> 1.0 raised boundary F1
    # 0.826 -> 0.913 (int8, AVX2 kernels), CER unchanged; 1.5 and 2.0 added nothing
    snap_s: float = field(1.0, help="a segment start (end) in silence moves onto the speech "
                                    "onset (offset) at most this far away (s; 0: off)")
    pad_ms: int = field(30, help="padding each side of the pause pass's speech (ms)")
    merge_gap_s: float = field(
        1.0, help="a segment that ends no sentence (no 。!? at its end) is joined to the next "
                  "one starting within this many seconds (0: off)")

    def __post_init__(self) -> None:
        if self.min_pause_ms <= 0:
            raise ConfigError(f"longform.pauses.min_pause_ms: must be > 0, got "
                              f"{self.min_pause_ms}")
        if not 0.0 < self.end_probability <= 1.0:
            raise ConfigError(f"longform.pauses.end_probability: must be in (0, 1], got "
                              f"{self.end_probability}")
        if self.quiet_db < 0:
            raise ConfigError(f"longform.pauses.quiet_db: must be >= 0, got {self.quiet_db}")
        if self.snap_s < 0 or self.pad_ms < 0 or self.merge_gap_s < 0:
            raise ConfigError(f"longform.pauses: snap_s, pad_ms and merge_gap_s must be >= 0, "
                              f"got {self.snap_s}, {self.pad_ms}, {self.merge_gap_s}")

    @property
    def active(self) -> bool:
        """Whether anything here runs (the pause pass is skipped otherwise)."""
        return self.split or self.snap_s > 0


@dataclass(frozen=True)
class LongformOptions:
    """How long audio is cut, decoded and timed (``longform.mode=batched`` and so on)."""

    # batched by default: on benchmarks/engine_longform.py's dev set (untouched whisper-base,
    # int8) it gave CER 17.1% and 1.4% deleted characters in 0.88x faster-whisper's time,
    # against 23.3% / 5.6% for sequential and 18.7% / 2.0% for faster-whisper + VAD
    mode: Literal["sequential", "batched"] = field(
        "batched", help="batched (VAD windows of up to 30 s decoded together, each with the "
                        "initial prompt only) or sequential (30 s windows seeking by the last "
                        "timestamp, the text so far as prompt: OpenAI's and faster-whisper's "
                        "algorithm)")
    vad: bool = field(True, help="decode only the speech Silero VAD finds")
    condition_on_previous_text: bool = field(
        True, help="sequential mode: prompt each window with the text decoded before it; "
                   "batched mode: a window written without punctuation is decoded again "
                   "after a punctuated neighbour's text")
    word_timestamps: bool = field(
        False, help="word times (cross-attention DTW over the model's alignment heads)")
    retry_dropped: bool = field(
        True, help="a window whose text was dropped (no-speech, a guard, malformed timestamps) "
                   "while VAD heard speech there is decoded again: without the previous text, "
                   "then cut in two at its longest pause (a window whose greedy reading loops "
                   "is cut so before any sampling); what is still lost is counted")
    pauses: PauseSettings = field(
        default_factory=PauseSettings,
        help="segments cut at sentence pauses and snapped onto speech")

    def __post_init__(self) -> None:
        if self.mode not in ("sequential", "batched"):
            raise ConfigError(f"longform.mode: sequential or batched, got {self.mode!r}")


@dataclass(frozen=True)
class DecodingOptions:
    """How whisper-ja decodes, on every path (clips, long audio, the server, the gate)."""

    language: str = field("ja", help="forced language code (Japanese unless asked otherwise)")
    beams: int = field(1, help="beam width (1 = greedy)")
    max_new_tokens: int = field(WINDOW_MAX_TOKENS, help="token limit per 30 s window")
    batch_size: int = field(8, help="windows (clips, files) decoded together")
    no_speech_threshold: float | None = field(
        0.6, help="Whisper's no-speech probability above which a window whose text is "
                  "unconfident (guards.logprob_threshold) counts as silence; null = never")
    initial_prompt: str = field("", help="text given to the first window as previous text "
                                         "(names, terms: contextual biasing)")
    temperature: float = field(0.0, help="first attempt's sampling temperature (0 = greedy or "
                                         "beams; the fallback then tries only the higher "
                                         "guards.temperatures)")
    guards: GuardSettings = field(default_factory=GuardSettings,
                                  help="repetition guard and temperature fallback")
    longform: LongformOptions = field(
        default_factory=LongformOptions, help="long audio: mode, VAD, previous text, words")
    vad: VadSettings = field(default_factory=VadSettings, help="Silero VAD settings")

    def __post_init__(self) -> None:
        if self.beams < 1:
            raise ConfigError(f"beams: must be at least 1, got {self.beams}")
        if not 1 <= self.max_new_tokens <= 440:
            raise ConfigError(f"max_new_tokens: must be in 1..440, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be at least 1, got {self.batch_size}")
        if not 0 <= self.temperature <= 2:
            raise ConfigError(f"temperature: must be in 0..2, got {self.temperature}")
        if self.no_speech_threshold is not None and not 0 <= self.no_speech_threshold <= 1:
            raise ConfigError(f"no_speech_threshold: must be in 0..1 or null, "
                              f"got {self.no_speech_threshold}")


@dataclass(frozen=True)
class RuntimeSettings:
    """Where a model runs: backend, device and precision (the engine's factory reads them)."""

    backend: BackendName = field(
        "auto", help="auto (CTranslate2 when the model can run there: a cached conversion, "
                     "adapter merged; else transformers), transformers, or ct2")
    device: str = field("auto", help=DEVICE_HELP)
    dtype: DtypeName = field("auto", help="transformers backend: torch dtype (auto = float32 "
                                          "on a CPU, float16 on a GPU)")
    compute_type: str = field("auto", help="ct2 backend: CTranslate2 compute type (auto = "
                                           "int8 on a CPU, int8_float16 on a GPU)")
    cpu_threads: int = field(0, help="ct2 backend: CPU threads (0 = CTranslate2's default)")
    context: Literal["auto", "dynamic", "full"] = field(
        "auto", help="encoder input: auto = dynamic if the model was fine-tuned with dynamic "
                     "context, else dynamic for clips, short files and long audio's pieces "
                     "decoded again (8 s floor) and full (30 s) for long audio's windows; "
                     "dynamic = the batch's longest window "
                     "everywhere; full = 30 s everywhere")

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.compute_type not in CT2_COMPUTE_TYPES:
            raise ConfigError(f"compute_type: must be one of {', '.join(CT2_COMPUTE_TYPES)}, "
                              f"got {self.compute_type!r}")
        if self.backend == "transformers" and self.compute_type != "auto":
            raise ConfigError(f"compute_type: {self.compute_type!r} is a CTranslate2 setting; "
                              "with backend transformers set dtype instead")
        if self.backend == "ct2" and self.dtype != "auto":
            raise ConfigError(f"dtype: {self.dtype!r} is a transformers setting; with backend "
                              "ct2 set compute_type instead (e.g. float16, int8_float16)")
        if self.dtype != "auto" and self.compute_type != "auto":
            raise ConfigError("dtype and compute_type: set one (dtype picks transformers, "
                              "compute_type CTranslate2)")
        if self.cpu_threads < 0:
            raise ConfigError(f"cpu_threads: must be >= 0, got {self.cpu_threads}")

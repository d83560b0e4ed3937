"""The CTranslate2 backend: :class:`~whisper_ja.inference.backend.Backend` on a CTranslate2 export.

One export (``whisper-ja export --to ct2``, or a stock faster-whisper folder) does the
arithmetic the engine asks for: :meth:`Ct2Backend.encode` (whisper-ja's log-mel features cut
to the batch's context under the export's policy, one encoder pass), :meth:`~Ct2Backend.generate`
(CTranslate2's ``Whisper.generate`` with its own scores; sampling on a copy loaded right after
seeding, so a request samples the same ids again), :meth:`~Ct2Backend.align` (CTranslate2's
``Whisper.align``: DTW over the alignment heads) and :meth:`~Ct2Backend.detect_language`.
CTranslate2 cannot stop a row mid-generation from Python: ``stop_repeats`` is not applied here
(the engine cuts the repeat either way).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from whisper_ja.audio.constants import HOP_LENGTH, SAMPLE_RATE, TOKENS_PER_SECOND
from whisper_ja.audio.features import ContextPolicy, batch_context_frames, log_mel, pad_features
from whisper_ja.errors import ConfigError, Ct2Error, ModelError
from whisper_ja.inference.backend import (
    Alignment,
    Encoded,
    Generated,
    GenerateRequest,
    Vocabulary,
    vocabulary_of,
)
from whisper_ja.inference.backends.ct2_tokenizer import TokenizerView
from whisper_ja.inference.faster import (
    check_compute_type,
    check_ct2_folder,
    ct2_avg_logprob,
    export_feature_extractor,
    generate_ct2,
    load_ct2_whisper,
    load_faster_whisper,
    read_ct2_vocabulary,
    resolve_context,
)

__all__ = ["Ct2Backend", "Ct2Encoded"]

ContextMode = Literal["auto", "dynamic", "full"]

MAX_POSITIONS = 448
"""Decoder positions of every Whisper; CTranslate2 does not expose the model's own count."""


@dataclass(frozen=True)
class Ct2Encoded:
    """The encoder output of a batch of windows.

    Attributes:
        view: ``(rows, frames // 2, width)`` encoder output, a ``ctranslate2.StorageView`` on
            the model's device.
        frames: Mel frames the batch was encoded at (its context).
        content_frames: Mel frames of audio in each row (``align`` ignores the padding).
        seconds: Audio in each window (seconds, before padding).
    """

    view: Any
    frames: int
    content_frames: tuple[int, ...]
    seconds: tuple[float, ...]

    @property
    def rows(self) -> int:
        """Windows in the batch."""
        return len(self.seconds)


def _own(encoded: Encoded) -> Ct2Encoded:
    """``encoded`` as this backend's own encoder output.

    Raises:
        TypeError: another backend's encoder output (a programming error, not a user's).
    """
    if not isinstance(encoded, Ct2Encoded):
        raise TypeError(f"the ct2 backend got {type(encoded).__name__}, "
                        "not its own encoder output")
    return encoded


def _one_row_at_a_time(whisper: Any) -> bool:
    """Whether encoder and ``align`` calls go one row at a time: int8 on the CPU.

    Measured on 2 CPU threads (AVX-512 VNNI, whisper-base, 30 s windows): in int8 the encoder
    took 4 rows in ~20% less time one at a time than as one batch, and ``align`` 4 rows of
    83 tokens ~20% less; in float32 the batch was as fast or faster. On a GPU a batch fills
    the device.
    """
    return (str(getattr(whisper, "device", "cpu")) == "cpu"
            and str(getattr(whisper, "compute_type", "int8")).startswith("int8"))


def _rows_of(view: Any, rows: Sequence[int]) -> Any:
    """The encoder output of ``rows`` (in that order, repeats allowed) as a ``StorageView``."""
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend.
    import ctranslate2

    if list(rows) == list(range(view.shape[0])):
        return view
    host = view if str(view.device) == "cpu" else view.to_device(ctranslate2.Device.cpu)
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(host)[list(rows)]))


def _encode(whisper: Any, feats: np.ndarray) -> Any:
    """Encoder output of a batch of features (a ``StorageView``), ready for generate and align."""
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend.
    import ctranslate2

    if not _one_row_at_a_time(whisper):
        return whisper.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                              to_cpu=False)
    rows = [np.asarray(whisper.encode(ctranslate2.StorageView.from_array(
        np.ascontiguousarray(feats[i:i + 1])), to_cpu=True)) for i in range(len(feats))]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(rows)))


def _token_times(found: Any) -> np.ndarray:
    """Start of each aligned token and of the end token (seconds from the window's start)."""
    pairs = np.asarray(found.alignments, dtype=np.int64).reshape(-1, 2)
    # The DTW path enters each token's row (the end token's last) once: where it enters is the
    # token's start, and the next token's start is its end.
    enters = np.concatenate([[True], np.diff(pairs[:, 0]) > 0])
    return pairs[enters, 1] / TOKENS_PER_SECOND


def _alignment(found: Any, length: int) -> Alignment:
    """One ``WhisperAlignmentResult`` of a text of ``length`` tokens as an :class:`Alignment`."""
    # A path cut short (never seen) would leave tokens untimed: the last start holds on.
    times = _token_times(found)
    times = np.pad(times, (0, max(0, length + 1 - times.size)), mode="edge")
    return Alignment(np.asarray(times[:length], dtype=np.float64),
                     np.asarray(times[1:length + 1], dtype=np.float64),
                     np.asarray(found.text_token_probs, dtype=np.float32)[:length])


def _vocabulary(tokenizer: Any, folder: Path) -> Vocabulary:
    """The export's :class:`Vocabulary` (a bad ``tokenizer.json`` is named)."""
    model_vocabulary = read_ct2_vocabulary(folder)
    try:
        vocabulary = vocabulary_of(TokenizerView(tokenizer, model_vocabulary))
    except ModelError as err:
        raise Ct2Error(f"{folder / 'tokenizer.json'}: {err}") from err
    specials = vocabulary.specials
    if model_vocabulary and any(  # a tokenizer.json copied from another model
            token_id >= len(model_vocabulary)
            or model_vocabulary[token_id] != tokenizer.id_to_token(token_id)
            for token_id in (specials.sot, specials.eot, specials.no_timestamps)):
        raise Ct2Error(f"{folder / 'tokenizer.json'}: its special tokens are not where the "
                       "model's vocabulary has them: a tokenizer of another model")
    return vocabulary


class Ct2Backend:
    """One CTranslate2 export behind the backend protocol.

    Use :meth:`load`; the constructor takes what it loaded: faster-whisper's ``WhisperModel``
    (its ``model`` is CTranslate2's), the folder, the context policy, the log-mel extractor and
    the ``(compute_type, cpu_threads, device)`` the seeded copies are loaded with.

    Raises:
        Ct2Error: the tokenizer lacks a special token decoding needs, or its mel bands
            differ from the model's.
    """

    def __init__(self, model: Any, folder: Path, policy: ContextPolicy, extractor: Any,
                 settings: tuple[str, int, str]) -> None:
        self._model = model
        self._folder = folder
        self._policy = policy
        self._extractor = extractor
        self._settings = settings
        self._samplers: dict[int, Any] = {}
        self._vocabulary = _vocabulary(model.hf_tokenizer, folder)
        n_mels = int(model.model.n_mels)
        if n_mels != int(extractor.feature_size):
            raise Ct2Error(f"{folder}: the model expects {n_mels} mel bands, "
                           f"preprocessor_config.json gives {extractor.feature_size}")

    @classmethod
    def load(cls, folder: str | Path, *, compute_type: str = "int8", device: str = "auto",
             cpu_threads: int = 0, context: ContextMode = "auto") -> Ct2Backend:
        """Load a CTranslate2 export as a backend.

        Args:
            folder: The export (``model.bin``, ``config.json``, ``tokenizer.json``,
                ``preprocessor_config.json``; ``whisper_ja.json`` when whisper-ja wrote it).
            compute_type: CTranslate2 compute type (``int8``: fastest on a CPU;
                ``int8_float16`` on a GPU; ``auto``: CTranslate2's fastest for the device).
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
            cpu_threads: CTranslate2 threads (0: its default).
            context: ``auto`` = the export's recorded policy (stock: 30 s); ``dynamic`` = the
                batch's frames with the recorded (or default) floor; ``full`` = 30 s.

        Raises:
            ConfigError: an unknown context, a compute type the device cannot run (float16
                on a CPU), or a GPU asked for where none is visible.
            Ct2Error: the folder is incomplete, its ``model.bin`` truncated or corrupt, its
                context record or tokenizer unusable.
        """
        if context not in ("auto", "dynamic", "full"):
            raise ConfigError(f"context: auto, dynamic or full, got {context!r}")
        path = check_ct2_folder(folder)
        check_compute_type(compute_type, device)
        policy = resolve_context(path, context)
        model = load_faster_whisper(str(path), compute_type, cpu_threads, device)
        try:
            extractor = export_feature_extractor(str(path))
        except (OSError, ValueError) as err:
            raise Ct2Error(f"{path / 'preprocessor_config.json'}: unreadable ({err})") from err
        return cls(model, path, policy, extractor, (compute_type, cpu_threads, device))

    @property
    def name(self) -> str:
        """``ct2``."""
        return "ct2"

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's special ids."""
        return self._vocabulary

    @property
    def policy(self) -> ContextPolicy:
        """How the encoder input is sized (``dynamic`` off = always 30 s)."""
        return self._policy

    @property
    def max_positions(self) -> int:
        """Decoder positions (448 for every Whisper)."""
        return MAX_POSITIONS

    def decode_text(self, ids: Sequence[int]) -> str:
        """Text of token ids; special and timestamp ids are skipped."""
        # Filtered here: the tokenizer does not count timestamp tokens as special.
        text = [int(t) for t in ids if self._vocabulary.is_text(int(t))]
        return str(self._model.hf_tokenizer.decode(text))

    def encode_text(self, text: str) -> list[int]:
        """Text ids of ``text`` as a previous-text prompt (OpenAI's: a leading space)."""
        encoded = self._model.hf_tokenizer.encode(" " + text.strip(), add_special_tokens=False)
        return [int(t) for t in encoded.ids]

    def encode(self, audios: Sequence[np.ndarray], policy: ContextPolicy | None = None,
               ) -> Ct2Encoded:
        """Log-mel features and the encoder pass of windows of at most 30 s (16 kHz float32).

        Raises:
            ValueError: no window, an empty one, or one longer than 30 s.
        """
        windows = [np.asarray(a, dtype=np.float32) for a in audios]
        if not windows:
            raise ValueError("encode needs at least one window")
        if any(w.size > self._extractor.n_samples for w in windows):
            raise ValueError("encode takes windows of at most 30 s")
        frames = batch_context_frames(windows, policy or self._policy)
        feats = pad_features([log_mel(w, self._extractor) for w in windows], frames).numpy()
        return Ct2Encoded(_encode(self._model.model, feats), frames,
                          tuple(min(frames, math.ceil(w.size / HOP_LENGTH)) for w in windows),
                          tuple(w.size / SAMPLE_RATE for w in windows))

    def _prompt(self, request: GenerateRequest) -> list[int]:
        """Previous text, the task prefix and ``<|notimestamps|>`` when timestamps are off.

        Raises:
            ConfigError: a language the model does not know.
        """
        if request.language not in self._vocabulary.languages:
            raise ConfigError(f"language: {request.language!r} is not one of the model's "
                              "languages")
        specials = self._vocabulary.specials
        head = [specials.prev_text, *request.prompt] if request.prompt else []
        tail = [] if request.timestamps else [specials.no_timestamps]
        return [*head, *self._vocabulary.prefix(request.language), *tail]

    def _seeded(self, seed: int) -> Any:
        """The copy of the model that samples, its generator started from ``seed``.

        CTranslate2 seeds a worker thread's generator when that thread first samples, from
        the seed set last (``set_random_seed`` later changes nothing for it, measured). One
        copy per seed is loaded on the first sample (1.4-1.9 s for whisper-base in int8 on 2
        busy CPU cores) and kept: a run samples the same as another run of the same input,
        without paying that load at every fallback (a copy per call cost ~1.5 s each).
        """
        # Imported here, not at the top: CTranslate2 loads only for the ct2 backend.
        import ctranslate2

        if seed not in self._samplers:
            compute_type, cpu_threads, device = self._settings
            copy = load_ct2_whisper(self._folder, compute_type, cpu_threads, device)
            ctranslate2.set_random_seed(seed)
            # generate_ct2 takes faster-whisper's model, whose ``model`` is CTranslate2's.
            self._samplers[seed] = types.SimpleNamespace(model=copy)
        return self._samplers[seed]

    def generate(self, encoded: Encoded, rows: Sequence[int], request: GenerateRequest,
                 ) -> list[Generated]:
        """Generate ``rows`` of an encoded batch, one :class:`Generated` per row, in order.

        The token limit is cut to the decoder positions the prompt leaves; ``hit_limit`` says
        a row reached it.

        Raises:
            ConfigError: a language the model does not know.
            ValueError: the prompt leaves no position to generate in.
        """
        own = _own(encoded)
        if not rows:
            return []
        prompt = self._prompt(request)
        limit = min(request.max_new_tokens, self.max_positions - len(prompt))
        if limit < 1:
            raise ValueError(f"a prompt of {len(prompt)} tokens leaves no room in "
                             f"{self.max_positions} decoder positions")
        whisper = self._seeded(request.seed) if request.temperature > 0 else self._model
        raw = generate_ct2(whisper, _rows_of(own.view, rows), prompt, len(rows),
                           beam_size=request.beams, max_new_tokens=limit,
                           temperature=request.temperature)
        return [self._generated(result, request, limit) for result in raw]

    def _generated(self, result: Any, request: GenerateRequest, limit: int) -> Generated:
        """One ``WhisperGenerationResult`` as a :class:`Generated`."""
        generated = [int(t) for t in result.sequences_ids[0]]
        stamps = self._vocabulary.timestamps
        ids = tuple(t for t in generated if self._vocabulary.is_text(t)
                    or (request.timestamps and stamps.is_timestamp(t)))
        return Generated(ids, ct2_avg_logprob(result, len(generated)),
                         float(result.no_speech_prob), hit_limit=len(generated) >= limit)

    def align(self, encoded: Encoded, rows: Sequence[int], texts: Sequence[Sequence[int]],
              language: str) -> list[Alignment]:
        """Time ``texts[j]`` (text ids) in window ``rows[j]`` (teacher-forced, no timestamps).

        Only the rows asked for run, repeated when a window has several texts; an empty text
        is not run. In int8 on a CPU each row is its own call (:func:`_one_row_at_a_time`).

        Raises:
            ValueError: as many rows as texts are needed.
        """
        if len(rows) != len(texts):
            raise ValueError(f"align: {len(rows)} rows for {len(texts)} texts")
        own = _own(encoded)
        prefix = self._prompt(GenerateRequest(language=language))
        asked = [j for j, text in enumerate(texts) if len(text)]
        whisper = self._model.model
        if _one_row_at_a_time(whisper):
            found = [whisper.align(_rows_of(own.view, [rows[j]]), prefix, [list(texts[j])],
                                   [own.content_frames[rows[j]]])[0] for j in asked]
        elif asked:
            found = list(whisper.align(_rows_of(own.view, [rows[j] for j in asked]), prefix,
                                       [list(texts[j]) for j in asked],
                                       [own.content_frames[rows[j]] for j in asked]))
        else:
            found = []
        empty = np.zeros(0, dtype=np.float64)
        out = [Alignment(empty, empty.copy(), empty.astype(np.float32)) for _ in texts]
        for j, result in zip(asked, found, strict=True):
            out[j] = _alignment(result, len(texts[j]))
        return out

    def detect_language(self, encoded: Encoded) -> list[str]:
        """The most likely language code of each window (CTranslate2's ``detect_language``).

        Raises:
            Ct2Error: the model is not multilingual.
        """
        try:
            found = self._model.model.detect_language(_own(encoded).view)
        except RuntimeError as err:
            raise Ct2Error(f"{self._folder}: cannot identify the language ({err})") from err
        return [ranked[0][0].strip("<|>") for ranked in found]  # "<|en|>" -> "en"

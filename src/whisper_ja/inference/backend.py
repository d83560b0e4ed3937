"""What decoding needs from a Whisper runtime: the one backend protocol.

Clip decoding (:mod:`whisper_ja.inference.clips`) and long-form decoding
(:mod:`whisper_ja.inference.longform`) are written once, against :class:`Backend`; each runtime
implements it once: transformers (:mod:`whisper_ja.inference.backends.hf`) and CTranslate2
(:mod:`whisper_ja.inference.backends.ct2`). The engine (:mod:`whisper_ja.inference.engine`)
picks one through the factory (:mod:`whisper_ja.inference.backends.factory`), the only place
that names a backend.

A backend does the model's arithmetic and nothing else: encoding audio at its context policy,
generating token ids with their scores, aligning tokens to time, identifying the language. The
decisions (guards, the silence rule, loops, seeking, retries) belong to the engine, so both
backends obey them alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.data.timestamps import TimestampVocab
from whisper_ja.errors import ModelError
from whisper_ja.model.tokens import SpecialTokens, special_tokens
from whisper_ja.text.sentences import SENTENCE_END

__all__ = ["Alignment", "Backend", "Encoded", "GenerateRequest", "Generated", "Vocabulary",
           "WindowResult", "vocabulary_of"]

@dataclass(frozen=True)
class Vocabulary:
    """The special ids decoding needs, looked up in the model's tokenizer (never literals).

    Attributes:
        specials: Start, end, task, previous-text and no-speech ids.
        timestamps: The timestamp ids (``<|0.00|>`` .. ``<|30.00|>``).
        languages: Language code -> its ``<|xx|>`` id, for every language the model knows.
        sentence_end: The id of ``。`` alone, when the tokenizer has one (pause cuts).
    """

    specials: SpecialTokens
    timestamps: TimestampVocab
    languages: Mapping[str, int]
    sentence_end: int | None

    def prefix(self, language: str) -> tuple[int, int, int]:
        """``<|startoftranscript|><|xx|><|transcribe|>``: the task prefix before any output.

        ``<|notimestamps|>`` is not part of it: a backend adds it when timestamps are off.
        """
        return (self.specials.sot, self.languages[language], self.specials.transcribe)

    def is_text(self, token_id: int) -> bool:
        """Whether ``token_id`` is a text token (below ``<|endoftext|>``)."""
        return token_id < self.specials.eot


def vocabulary_of(tokenizer: Any) -> Vocabulary:
    """The :class:`Vocabulary` of a transformers-style Whisper tokenizer.

    ``tokenizer`` needs ``convert_tokens_to_ids``, ``convert_ids_to_tokens``, ``unk_token_id``,
    ``len()`` and ``encode(text, add_special_tokens=False)``; a CTranslate2 export's
    ``tokenizers.Tokenizer`` is wrapped to that shape by its backend.

    Raises:
        ModelError: a special token is missing, or the timestamps are not usable.
    """
    specials = special_tokens(tokenizer)
    try:
        timestamps = TimestampVocab.from_tokenizer(tokenizer)
    except ValueError as err:
        raise ModelError(f"the model's tokenizer: {err}") from err
    languages: dict[str, int] = {}
    for code in LANGUAGES:
        token_id = tokenizer.convert_tokens_to_ids(f"<|{code}|>")
        if (isinstance(token_id, int) and token_id != tokenizer.unk_token_id
                and specials.sot < token_id < specials.translate):
            languages[code] = token_id
    encoded = tokenizer.encode(SENTENCE_END, add_special_tokens=False)
    end_ids = list(getattr(encoded, "ids", encoded))
    return Vocabulary(specials, timestamps, languages,
                      int(end_ids[0]) if len(end_ids) == 1 else None)


@dataclass(frozen=True)
class GenerateRequest:
    """How one ``generate`` call decodes (the same for every row of the call).

    Attributes:
        language: Forced language code.
        timestamps: Generate Whisper's timestamp tokens (else ``<|notimestamps|>`` is forced).
        prompt: Previous-text ids, without ``<|startofprev|>`` (the backend adds it).
        beams: Beam width (1 = greedy); ignored when ``temperature`` > 0 (sampling).
        max_new_tokens: Most tokens generated after the task prefix.
        temperature: 0 = greedy or beam search; above 0 = sampling at that temperature.
        seed: Seed of the sampling (the same call samples the same ids).
        stop_repeats: Longest unit of a back-to-back repeat at which generation may end early
            (the repetition guard); 0 = never. A backend that cannot stop a row
            mid-generation runs on: the engine cuts the repeat either way.
    """

    language: str = "ja"
    timestamps: bool = False
    prompt: tuple[int, ...] = ()
    beams: int = 1
    max_new_tokens: int = 224
    temperature: float = 0.0
    seed: int = 0
    stop_repeats: int = 0


@dataclass(frozen=True)
class Generated:
    """One generated row.

    Attributes:
        ids: The ids after the task prefix: text ids, and timestamp ids when asked for; no
            ``<|endoftext|>``, no other special id.
        avg_logprob: Mean log-probability of ``ids`` and the end token (OpenAI's
            ``avg_logprob``); the prompt is not scored.
        no_speech_prob: Probability of the no-speech token right after
            ``<|startoftranscript|>`` (0 when the model has none).
        hit_limit: Generation stopped at ``max_new_tokens``, not at an end token.
    """

    ids: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    hit_limit: bool = False


@dataclass(frozen=True)
class WindowResult:
    """One decoded window after the guards (:func:`whisper_ja.inference.guards.decode_windows`).

    Attributes:
        ids: The kept attempt's ids (text, and timestamps when asked for).
        avg_logprob: Its average log-probability.
        no_speech_prob: The greedy pass's no-speech probability.
        temperature: The kept attempt's temperature (0 = greedy).
        looped: The kept text still loops (cut by the guard, at the token limit, or
            repetitive): a likely hallucination left after the guards.
        looped_first: The greedy attempt looped: what an unguarded decoder would emit.
        silent: Whisper judges the window silent (the silence rule): its text is not used.
    """

    ids: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    looped: bool
    looped_first: bool
    silent: bool


@dataclass(frozen=True)
class Alignment:
    """Where each token of a given text sits in its window, and how likely it was.

    Attributes:
        starts: Start of each text token, seconds from the window's start (``len(text)``).
        ends: End of each text token (the next token's start; the last one's end).
        probs: ``P(text[k] | prefix + text[:k])`` for each k (``len(text)``).
    """

    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray


class Encoded(Protocol):
    """The encoder output of a batch of windows (opaque: each backend keeps its own form)."""

    @property
    def rows(self) -> int:
        """Windows in the batch."""
        ...

    @property
    def seconds(self) -> Sequence[float]:
        """Audio in each window (seconds, before padding)."""
        ...


class Backend(Protocol):
    """One loaded Whisper model on one runtime."""

    @property
    def name(self) -> str:
        """``transformers`` or ``ct2`` (reports say which)."""
        ...

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's special ids."""
        ...

    @property
    def policy(self) -> ContextPolicy:
        """How the encoder input is sized (dynamic context for models trained with it)."""
        ...

    @property
    def max_positions(self) -> int:
        """Decoder positions (448 for every Whisper): prompt, prefix and output must fit."""
        ...

    def decode_text(self, ids: Sequence[int]) -> str:
        """Text of token ids (special and timestamp ids skipped)."""
        ...

    def encode_text(self, text: str) -> list[int]:
        """Text ids of ``text`` as a previous-text prompt (OpenAI's: a leading space)."""
        ...

    def encode(self, audios: Sequence[np.ndarray], policy: ContextPolicy | None = None,
               ) -> Encoded:
        """Log-mel features and the encoder pass of windows of at most 30 s (16 kHz float32).

        The features are normalized as for a 30 s window and cut to the batch's context under
        ``policy`` (None: :attr:`policy`; :func:`whisper_ja.audio.features.batch_context_frames`).
        """
        ...

    def generate(self, encoded: Encoded, rows: Sequence[int], request: GenerateRequest,
                 ) -> list[Generated]:
        """Generate ``rows`` of an encoded batch, one :class:`Generated` per row, in order."""
        ...

    def align(self, encoded: Encoded, rows: Sequence[int], texts: Sequence[Sequence[int]],
              language: str) -> list[Alignment]:
        """Time ``texts[j]`` (text ids) in window ``rows[j]`` (teacher-forced, no timestamps).

        Rows may repeat (several texts of one window).
        """
        ...

    def detect_language(self, encoded: Encoded) -> list[str]:
        """The most likely language code of each window (Whisper's language identification)."""
        ...

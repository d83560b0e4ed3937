"""A scripted backend: the engine's decisions tested without a model.

Token ids: text tokens are ``0 .. 99`` (each decodes to one character, ``chr(0x3042 + id)``),
``EOT = 100``, and timestamps start at ``TS = 200`` (``TS + k`` is ``k * 0.02`` s). A script
maps a window (by its length in samples, or by call order) to what "the model" writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.data.timestamps import TimestampVocab
from whisper_ja.inference.backend import (
    Alignment,
    Generated,
    GenerateRequest,
    Vocabulary,
)
from whisper_ja.model.tokens import SpecialTokens

EOT = 100
TS = 200

SPECIALS = SpecialTokens(sot=101, eot=EOT, ja=102, transcribe=103, translate=104,
                         no_timestamps=105, prev_text=106, no_speech=107,
                         timestamp_begin=TS, vocab_size=TS + 1501)
VOCABULARY = Vocabulary(SPECIALS, TimestampVocab(base=TS), {"ja": 102, "en": 108}, 99)


def ts(seconds: float) -> int:
    """The timestamp id of ``seconds``."""
    return TS + round(seconds / 0.02)


def text(ids: Sequence[int]) -> str:
    """What :meth:`FakeBackend.decode_text` gives for text ids."""
    return "".join(FULL_STOP if t == VOCABULARY.sentence_end else chr(0x3042 + t)
                   for t in ids if t < EOT)


FULL_STOP = "。"
"""What the sentence-end id (99) reads as."""


@dataclass
class FakeEncoded:
    windows: list[np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.windows)

    @property
    def seconds(self) -> list[float]:
        return [w.size / SAMPLE_RATE for w in self.windows]


Script = Callable[[np.ndarray, GenerateRequest], Generated]


@dataclass
class FakeBackend:
    """Calls ``script(window audio, request)`` for every generated row and records requests."""

    script: Script
    requests: list[GenerateRequest] = field(default_factory=list)
    encoded_batches: list[int] = field(default_factory=list)
    encode_policies: list[ContextPolicy | None] = field(default_factory=list)
    name: str = "fake"
    vocabulary: Vocabulary = VOCABULARY
    policy: ContextPolicy = field(default_factory=lambda: ContextPolicy(dynamic=False))
    max_positions: int = 448

    def decode_text(self, ids: Sequence[int]) -> str:
        return text(ids)

    def encode_text(self, value: str) -> list[int]:
        return [min(98, ord(c) % 90) for c in value.strip()]

    def encode(self, audios: Sequence[np.ndarray], policy: ContextPolicy | None = None,
               ) -> FakeEncoded:
        self.encoded_batches.append(len(audios))
        self.encode_policies.append(policy)
        return FakeEncoded([np.asarray(a) for a in audios])

    def generate(self, encoded: FakeEncoded, rows: Sequence[int], request: GenerateRequest,
                 ) -> list[Generated]:
        self.requests.append(request)
        return [self.script(encoded.windows[r], request) for r in rows]

    def align(self, encoded: FakeEncoded, rows: Sequence[int],
              texts: Sequence[Sequence[int]], language: str) -> list[Alignment]:
        out = []
        for row, ids in zip(rows, texts, strict=True):
            seconds = encoded.windows[row].size / SAMPLE_RATE
            starts = np.linspace(0, seconds, len(ids), endpoint=False)
            ends = np.append(starts[1:], seconds) if len(ids) else starts
            out.append(Alignment(starts, ends, np.full(len(ids), 0.5)))
        return out

    def detect_language(self, encoded: FakeEncoded) -> list[str]:
        return ["ja"] * encoded.rows


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Loud noise (not silent to the energy gate) of ``seconds``."""
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)

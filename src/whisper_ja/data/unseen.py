"""The unseen-domain check set: text, lengths and voices that training never saw.

Adapted models that improve their own test split and break on everything else (issue 14) are
caught only by a set that differs from training in every way the model could overfit to:

- **text**: sentences of the ``news`` source (:mod:`whisper_ja.data.text_sources`), whose
  templates no training corpus uses; they are dense in figures, dates, money, names and places.
  Any sentence that also occurs in a given training manifest (compared by the split's text key)
  is refused, so the set never holds a training sentence;
- **length**: a share of items join two sentences, so clips run past the training clips
  (up to 30 s);
- **voices**: voices that no given training manifest holds (refused otherwise).

The set is a manifest (corpus ``synthetic-unseen``; SYNTHETIC speech) for ``evaluate`` and for
the versatility gate of ``train`` (``gate.unseen``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from whisper_ja.config import ConfigError, field
from whisper_ja.data.manifest import read_manifest
from whisper_ja.data.split import text_key
from whisper_ja.data.synth import MAX_SECONDS, SynthConfig, synthesize_sentences
from whisper_ja.data.text_sources import SourceSentence, generate_sentences, sentence_id
from whisper_ja.data.voices import parse_voice

__all__ = ["UNSEEN_CORPUS", "UNSEEN_VOICES", "UnseenConfig", "make_unseen_set",
           "unseen_sentences"]

UNSEEN_CORPUS = "synthetic-unseen"
UNSEEN_VOICES = ("openjtalk:-1", "openjtalk:+3", "kokoro:jf_nezumi")
"""Voices of the check: none is a voice of the demo's training corpus."""


@dataclass(frozen=True)
class UnseenConfig:
    """Settings of the unseen-domain check-set maker."""

    out: Path = field(help="output folder (manifest.jsonl, wav/)")
    size: int = field(60, help="utterances in the check set")
    seed: int = field(0, help="seed of sentences, voices and speaking rates")
    voices: tuple[str, ...] = field(UNSEEN_VOICES, help="voices, none of them heard in training")
    exclude: tuple[Path, ...] = field((), help="training manifests: their sentences and voices "
                                      "must never occur in the check set")
    long_share: float = field(0.3, help="share of items joining two sentences (long clips)")
    speed_range: tuple[float, ...] = field((0.9, 1.1), help="min and max speaking rate")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size: must be at least 1, got {self.size}")
        if not 0 <= self.long_share <= 1:
            raise ConfigError(f"long_share: must be within 0..1, got {self.long_share}")
        if not self.voices:
            raise ConfigError("voices: at least one voice is needed")


def unseen_sentences(size: int, seed: int, training_texts: set[str],
                     long_share: float = 0.3) -> list[SourceSentence]:
    """The check set's sentences: ``news`` ones, a share of them joined in pairs.

    Args:
        size: Sentences wanted.
        seed: Seed of every choice.
        training_texts: Text keys (:func:`whisper_ja.data.split.text_key`) of every training
            sentence; none of them is ever returned, alone or as half of a joined pair.
        long_share: Share of the items that join two sentences.
    """
    n_long = round(size * long_share)
    n_single = size - n_long
    pool = generate_sentences("news", n_single + 2 * n_long, seed,
                              exclude=lambda text: text_key(text) in training_texts)
    single, halves = pool[:n_single], pool[n_single:]
    joined = [halves[i].text + halves[i + 1].text for i in range(0, 2 * n_long, 2)]
    items = single + [SourceSentence(sentence_id("news", t), t, "news") for t in joined]
    random.Random(seed).shuffle(items)
    return items


def make_unseen_set(config: UnseenConfig) -> Path:
    """Synthesize the unseen-domain check set; returns its manifest.

    Raises:
        ConfigError: a voice of the check also speaks in an ``exclude`` manifest (named).
    """
    training = read_manifest(*config.exclude) if config.exclude else []
    heard = {u.speaker for u in training}
    shared = sorted(n for n in (parse_voice(v).name for v in config.voices) if n in heard)
    if shared:
        raise ConfigError(f"voices: {shared} speak in the training manifests; the check needs "
                          "voices never heard in training")
    sentences = unseen_sentences(config.size, config.seed, {text_key(u.text) for u in training},
                                 config.long_share)
    synth = SynthConfig(out=config.out, size=config.size, seed=config.seed,
                        voices=config.voices, speed_range=config.speed_range,
                        sources=("tatoeba",), min_seconds=1.0, max_seconds=MAX_SECONDS,
                        progress=config.progress)
    return synthesize_sentences(synth, sentences, corpus=UNSEEN_CORPUS)

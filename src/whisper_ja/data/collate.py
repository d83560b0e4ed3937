"""From :class:`~whisper_ja.data.manifest.Utterance` records to model-ready batches.

:func:`build_labels` is the ONE place where transcript text becomes label ids, used by LoRA and
full fine-tuning alike, so the two modes always learn byte-identical targets (the seed paper's
code trained them on different text). The label sequence is::

    <|startoftranscript|> <|ja|> <|transcribe|> <|notimestamps|> text tokens... <|endoftext|>

and, as in Hugging Face's Whisper recipe, the decoder reads the sequence shifted right: its
input is every id but the last, its target every id but the first. So the start token is never a
target, and padded positions (label ``-100``) are ignored by the loss.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from whisper_ja.audio.features import pad_features
from whisper_ja.data.batching import LengthGroupedSampler
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.timestamps import LabelMix, mixed_label_ids
from whisper_ja.model.tokens import language_id, special_tokens

__all__ = [
    "IGNORE_INDEX",
    "MAX_FRAMES",
    "Example",
    "SpeechDataset",
    "build_labels",
    "collate",
    "epoch_batches",
    "epoch_composition",
    "frames_of",
    "mixed_indices",
    "prompt_length",
    "select_trainable",
]

LOGGER = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label value the cross-entropy loss skips (padding)."""

MAX_FRAMES = 3000
"""Whisper's encoder window: 30 s of 10 ms mel frames."""


def build_labels(text: str, tokenizer: Any, language: str = "ja") -> list[int]:
    """Label ids of one transcript: task prefix, text tokens, end of text.

    Args:
        text: The transcript exactly as the manifest gives it (no normalization here, so what
            the model learns to write is what the corpus writes).
        tokenizer: A Whisper tokenizer (``processor.tokenizer``).
        language: Whisper language code of the transcript. Japanese for every corpus except
            the non-Japanese clips mixed in to limit forgetting (``extra["language"]``), which
            must be labelled with their own language token, not ``<|ja|>``.

    Returns:
        ``[sot, ja, transcribe, notimestamps, *text_ids, eot]`` with the ids the tokenizer
        gives those strings (:func:`whisper_ja.model.tokens.special_tokens`; they differ between
        Whisper generations), the language id swapped for other languages.

    Raises:
        ValueError: ``language`` is not a Whisper language token.
        whisper_ja.errors.ModelError: the tokenizer has no ``<|ja|>`` (English-only Whisper).
    """
    specials = special_tokens(tokenizer)
    prefix = specials.ja_prefix if language == "ja" else specials.prefix(
        language_id(tokenizer, language))
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*prefix, *(int(i) for i in text_ids), specials.eot]


def frames_of(utterance: Utterance) -> int:
    """Mel frames (10 ms each) of an utterance, from its duration."""
    return int(np.ceil(round(utterance.duration * 100, 6)))


def select_trainable(utterances: Sequence[Utterance], tokenizer: Any, max_label_tokens: int,
                     mix: LabelMix | None = None,
                     ) -> tuple[list[Utterance], list[list[int]], Counter[str]]:
    """Keep the utterances Whisper can learn from and build their labels once.

    Clips longer than 30 s (they do not fit the encoder), empty transcripts and labels longer
    than ``max_label_tokens`` are skipped and counted, never dropped silently. With ``mix``,
    labels carry timestamps and previous-text prompts at its rates
    (:func:`~whisper_ja.data.timestamps.mixed_label_ids`; the previous text is
    ``extra["previous_text"]``, else the transcript before it in the manifest from the same
    corpus); :func:`prompt_length` tells how many leading ids are prompt.

    Returns:
        ``(kept utterances, their label ids, Counter of skip reasons)``.
    """
    kept: list[Utterance] = []
    labels: list[list[int]] = []
    skipped: Counter[str] = Counter()
    previous = _previous_texts(utterances) if mix is not None else []
    for index, utt in enumerate(utterances):
        if frames_of(utt) > MAX_FRAMES:
            skipped["longer than 30 s"] += 1
            continue
        if not utt.text.strip():
            skipped["empty transcript"] += 1
            continue
        if mix is None:
            ids = build_labels(utt.text, tokenizer, utt.language())
        else:
            ids, _ = mixed_label_ids(utt.text, utt.segments, utt.duration, tokenizer, mix, utt.id,
                                     utt.language(), previous[index])
        if len(ids) > max_label_tokens:
            skipped[f"label longer than {max_label_tokens} tokens"] += 1
            continue
        kept.append(utt)
        labels.append(ids)
    if skipped:
        LOGGER.warning("skipped %d of %d utterances: %s", sum(skipped.values()),
                       len(utterances), dict(skipped))
    return kept, labels, skipped


def _previous_texts(utterances: Sequence[Utterance]) -> list[str]:
    """Each clip's ``extra["previous_text"]``, else the transcript before it in its corpus."""
    last: dict[str, str] = {}
    texts = []
    for utt in utterances:
        texts.append(str(utt.extra.get("previous_text", last.get(utt.corpus, ""))))
        last[utt.corpus] = utt.text
    return texts


def prompt_length(label_ids: Sequence[int], tokenizer: Any) -> int:
    """Leading prompt ids of a label (``<|startofprev|>`` ... up to ``<|startoftranscript|>``)."""
    specials = special_tokens(tokenizer)
    if not label_ids or label_ids[0] != specials.prev_text:
        return 0
    return list(label_ids).index(specials.sot)


@dataclass(frozen=True)
class Example:
    """One utterance ready for the model."""

    utterance_id: str
    text: str
    features: np.ndarray
    """``(n_mels, T)`` float32 log-mel features of the real audio (no padding)."""
    label_ids: tuple[int, ...]
    prompt_length: int = 0
    """Leading ids of ``label_ids`` that are a previous-text prompt (not learned)."""


class SpeechDataset(torch.utils.data.Dataset[Example]):
    """Map-style dataset of :class:`Example` built from utterances and their labels.

    Args:
        utterances: The clips (already filtered by :func:`select_trainable`).
        labels: Their label ids, in the same order.
        features: Computes (or fetches from a cache) the log-mel features of one utterance.
    """

    def __init__(self, utterances: Sequence[Utterance], labels: Sequence[Sequence[int]],
                 features: Callable[[Utterance], np.ndarray],
                 prompt_lengths: Sequence[int] | None = None) -> None:
        if len(utterances) != len(labels):
            raise ValueError(f"{len(utterances)} utterances but {len(labels)} label lists")
        self.utterances = list(utterances)
        self.labels = [tuple(ids) for ids in labels]
        self.features = features
        self.prompt_lengths = list(prompt_lengths or [0] * len(self.labels))

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Example:
        utt = self.utterances[index]
        return Example(utt.id, utt.text, np.asarray(self.features(utt), dtype=np.float32),
                       self.labels[index], self.prompt_lengths[index])


def collate(examples: Sequence[Example], frames: int | Callable[[int], int]
            ) -> dict[str, torch.Tensor]:
    """Pad a list of examples into one batch.

    Args:
        examples: The batch.
        frames: Encoder input length in mel frames, or a function of the longest clip's
            frames returning it (the context policy).

    Returns:
        ``input_features (B, n_mels, F)``, ``lengths (B,)`` real frames (for SpecAugment),
        ``decoder_input_ids (B, L)`` padded with end-of-text (the id every label ends with,
        so the model's own), ``labels (B, L)`` padded with :data:`IGNORE_INDEX`.
    """
    longest = max(e.features.shape[1] for e in examples)
    width = frames(longest) if callable(frames) else int(frames)
    input_features = pad_features([e.features for e in examples], width)
    lengths = torch.tensor([min(e.features.shape[1], width) for e in examples])
    size = max(len(e.label_ids) for e in examples) - 1
    eot = examples[0].label_ids[-1]  # build_labels ends every label with <|endoftext|>
    decoder_input_ids = torch.full((len(examples), size), eot, dtype=torch.long)
    labels = torch.full((len(examples), size), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        ids = torch.tensor(example.label_ids, dtype=torch.long)
        decoder_input_ids[row, : len(ids) - 1] = ids[:-1]
        labels[row, : len(ids) - 1] = ids[1:]
        labels[row, : example.prompt_length] = IGNORE_INDEX  # the prompt is given, not learned
    return {"input_features": input_features, "lengths": lengths,
            "decoder_input_ids": decoder_input_ids, "labels": labels}


def mixed_indices(corpora: Sequence[str], weights: dict[str, float],
                  rng: np.random.Generator) -> list[int]:
    """Indices of one epoch with per-corpus weights applied.

    A corpus of weight ``w`` contributes every clip ``floor(w)`` times plus a random
    ``round(frac(w) * n)`` of its clips once more, so ``w=2`` doubles it and ``w=0.5`` takes a
    fresh random half each epoch. The epoch size is the same in every epoch.

    Args:
        corpora: The corpus of each clip.
        weights: Corpus name to weight; unlisted corpora weigh 1.
        rng: The epoch's random generator.
    """
    by_corpus: dict[str, list[int]] = {}
    for index, corpus in enumerate(corpora):
        by_corpus.setdefault(corpus, []).append(index)
    chosen: list[int] = []
    for corpus, members in by_corpus.items():
        whole, extra = _weighted_share(weights.get(corpus, 1.0), len(members))
        chosen.extend(members * whole)
        if extra:
            chosen.extend(int(i) for i in rng.choice(members, size=extra, replace=False))
    return chosen


def epoch_composition(corpora: Sequence[str], weights: dict[str, float]) -> dict[str, int]:
    """Clips each corpus puts into one epoch under ``weights``, as :func:`mixed_indices` draws.

    Reported in the training summary so that a mixing share is visible, not just a weight.
    """
    composition = {}
    for corpus, clips in sorted(Counter(corpora).items()):
        whole, extra = _weighted_share(weights.get(corpus, 1.0), clips)
        composition[corpus] = whole * clips + extra
    return composition


def _weighted_share(weight: float, clips: int) -> tuple[int, int]:
    """``(times every clip is taken, clips taken once more)`` for a corpus of weight ``weight``."""
    whole = int(weight)
    return whole, round((weight - whole) * clips)


def epoch_batches(lengths: Sequence[int], corpora: Sequence[str], epoch: int, *,
                  batch_size: int, seed: int, weights: dict[str, float],
                  length_grouping: bool) -> list[list[int]]:
    """The batches of one epoch.

    A pure function of ``(seed, epoch)``, so a resume can replay the order and skip what was
    already consumed.

    Args:
        lengths: Frames of each clip (for length grouping).
        corpora: Corpus of each clip (for mixing).
        epoch: Epoch number, from 0.
        batch_size: Clips per batch.
        seed: The run's seed.
        weights: Per-corpus mixing weights.
        length_grouping: Batch clips of similar length (less padding) instead of at random.
    """
    rng = np.random.default_rng([seed, epoch])
    indices = mixed_indices(corpora, weights, rng)
    if length_grouping:
        sampler = LengthGroupedSampler([lengths[i] for i in indices], batch_size, seed=seed,
                                       shuffle=True)
        sampler.set_epoch(epoch)
        return [[indices[j] for j in batch] for batch in sampler]
    order = [indices[j] for j in rng.permutation(len(indices))]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

"""Retention (forgetting) check: does Japanese fine-tuning make Whisper worse at other languages?

The suite measures a model on non-Japanese speech (English by default, German optional),
synthesized offline by espeak-ng and therefore **synthetic**, in two modes:

- **language forced**: the decoder is given the true language token (``<|en|>``): WER only;
- **language identified**: Whisper first picks the language itself (one decoder step after
  ``<|startoftranscript|>``, argmax over the 99 language tokens, as OpenAI's ``detect_language``)
  and transcribes in the language it picked: language-ID accuracy and WER.

Run before and after adaptation (``whisper-ja evaluate --suite retention --model M --adapter
DIR``), the difference with paired-bootstrap confidence intervals says what was forgotten.
English WER uses Whisper's own English normalizer (numbers, spelling), other languages its basic
normalizer, so ``ten`` and ``10`` are not counted as an error.

The command's reports (and the comparison with an earlier run, e.g. the same training without
mixing) are written by :mod:`whisper_ja.evaluation.retention.suite`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jiwer
from transformers.models.whisper.english_normalizer import (
    BasicTextNormalizer,
    EnglishTextNormalizer,
)

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.io import AudioError, load_audio
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.engine import Engine, live_engine
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.text.bootstrap import interval_from_counts, paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts

__all__ = [
    "LanguageRetention",
    "RetentionResult",
    "RetentionSettings",
    "compare_retention",
    "evaluate_retention",
    "measure_retention",
    "result_from_records",
    "word_error_counts",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionSettings:
    """How the suite decodes and scores, passed on whole from ``evaluate``'s settings.

    Attributes:
        options: Beams, batch size, token limit, guards (the language is set per utterance).
        runtime: Backend, device and precision of the models the suite loads.
        policy: The context policy of a model trained with dynamic context (its saved one).
        seed: Seed of the bootstrap intervals.
        n_resamples: Bootstrap resamples.
        progress: Show progress bars.
    """

    options: DecodingOptions = dataclasses.field(default_factory=DecodingOptions)
    runtime: RuntimeSettings = dataclasses.field(default_factory=RuntimeSettings)
    policy: ContextPolicy = dataclasses.field(default_factory=ContextPolicy)
    seed: int = 0
    n_resamples: int = 1000
    progress: bool = True


@dataclass(frozen=True)
class LanguageRetention:
    """Scores of one model on one language.

    Attributes:
        language: Language code (``en``).
        utterances: Number of utterances.
        words: Reference words (after normalization).
        wer_forced: WER with the true language token forced, and its 95% bootstrap interval
            as ``(value, low, high)``.
        wer_identified: WER when the model picks the language itself, ``(value, low, high)``.
        lid_accuracy: Share of utterances whose language the model identified correctly.
        detected: How often each language was detected.
    """

    language: str
    utterances: int
    words: int
    wer_forced: tuple[float, float, float]
    wer_identified: tuple[float, float, float]
    lid_accuracy: float
    detected: dict[str, int]


@dataclass(frozen=True)
class RetentionResult:
    """The retention suite's result for one model (all numbers on synthetic speech).

    Attributes:
        model: What was measured (model and adapter).
        languages: Scores per language.
        records: One dict per utterance: id, language, reference, detected language, both
            hypotheses and their word error counts (for paired comparisons).
    """

    model: str
    languages: dict[str, LanguageRetention]
    records: list[dict[str, Any]]
    synthetic: bool = True


def _normalizer(language: str) -> Any:

    # An empty spelling map: British/American variants are not unified, numbers are.
    return EnglishTextNormalizer({}) if language == "en" else BasicTextNormalizer()


def word_error_counts(ref: str, hyp: str, language: str) -> ErrorCounts:
    """Word edits between a reference and a hypothesis, normalized Whisper's way.

    Args:
        ref: Reference text.
        hyp: Hypothesis text.
        language: Language code; ``en`` uses the English normalizer, others the basic one.
    """
    norm = _normalizer(language)
    ref_words, hyp_words = norm(ref).split(), norm(hyp).split()
    if not ref_words:
        return ErrorCounts(insertions=len(hyp_words))
    if not hyp_words:
        return ErrorCounts(deletions=len(ref_words), reference_length=len(ref_words))
    out = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words))
    return ErrorCounts(substitutions=out.substitutions, deletions=out.deletions,
                       insertions=out.insertions, hits=out.hits,
                       reference_length=out.hits + out.substitutions + out.deletions)


def _decode_grouped(decoder: Engine, utts: Sequence[Utterance],
                    languages: Sequence[str]) -> list[str]:
    """Decode each utterance with its own language forced, one batch run per language."""
    texts = [""] * len(utts)
    for language in sorted(set(languages)):
        idx = [i for i, lang in enumerate(languages) if lang == language]
        decoded = decoder.decode_utterances([utts[i] for i in idx], language=language)
        if decoded.failed:  # the suite read every file before; a file gone since is an error
            first = next(iter(decoded.failed.values()))
            raise AudioError(f"{first} ({len(decoded.failed)} retention clip(s) unreadable)")
        for i, result in zip(idx, decoded.decoded(), strict=True):
            texts[i] = result.text
    return texts


def _interval(counts: Sequence[ErrorCounts], settings: RetentionSettings
              ) -> tuple[float, float, float]:
    res = interval_from_counts(counts, metric="wer", n_resamples=settings.n_resamples,
                               seed=settings.seed)
    return (res.value, res.low, res.high)


def evaluate_retention(model: Any, processor: Any, utterances: Sequence[Utterance], *,
                       settings: RetentionSettings | None = None, label: str = ""
                       ) -> RetentionResult:
    """Measure a transformers model on non-Japanese utterances, language forced and identified.

    Args:
        model: A Whisper model (plain or peft-wrapped), decoded with the encoder input it was
            trained with (as ``evaluate`` does).
        processor: Its ``WhisperProcessor``.
        utterances: Manifest records whose ``extra["language"]`` (default English) names the
            language, e.g. from :func:`synthesize_retention_set`.
        settings: Decoding options, context policy, bootstrap seed and resamples.
        label: Name of the model in the report.

    Returns:
        Scores per language and per-utterance records.
    """
    settings = settings or RetentionSettings()
    # No previous-text prompt: the suite decodes other languages than any prompt's.
    options = dataclasses.replace(settings.options, initial_prompt="")
    with live_engine(model, processor, RuntimeSettings(backend="transformers"), options,
                     settings.policy) as engine:
        return measure_retention(engine, utterances, settings=settings, label=label)


def measure_retention(decoder: Engine, utterances: Sequence[Utterance], *,
                      settings: RetentionSettings | None = None, label: str = ""
                      ) -> RetentionResult:
    """Measure an :class:`~whisper_ja.inference.engine.Engine` on non-Japanese utterances.

    Args:
        decoder: The model on its backend (transformers or a CTranslate2 export).
        utterances: Manifest records naming their language (default English).
        settings: Bootstrap seed and resamples (decoding settings live in ``decoder``).
        label: Name of the model in the report.

    Returns:
        Scores per language and per-utterance records.
    """
    if not utterances:
        raise ValueError("retention suite: no utterances to evaluate")
    settings = settings or RetentionSettings()
    audios = [load_audio(u.audio) for u in utterances]
    truth = [u.language(default="en") for u in utterances]
    detected = decoder.detect_language(audios)
    forced = _decode_grouped(decoder, utterances, truth)
    # Where the identified language is the true one, greedy decoding gives the forced text
    # again, so only the misidentified utterances are decoded a second time.
    wrong = [i for i, (t, d) in enumerate(zip(truth, detected, strict=True)) if t != d]
    identified = list(forced)
    if wrong:
        redo = _decode_grouped(decoder, [utterances[i] for i in wrong],
                               [detected[i] for i in wrong])
        for i, text in zip(wrong, redo, strict=True):
            identified[i] = text
    records = []
    for i, utt in enumerate(utterances):
        c_forced = word_error_counts(utt.text, forced[i], truth[i])
        c_ident = word_error_counts(utt.text, identified[i], truth[i])
        records.append({"id": utt.id, "language": truth[i], "detected": detected[i],
                        "reference": utt.text, "forced": forced[i], "identified": identified[i],
                        "forced_counts": dataclasses.asdict(c_forced),
                        "identified_counts": dataclasses.asdict(c_ident)})
    return result_from_records(label, records, settings)


def result_from_records(model: str, records: Sequence[dict[str, Any]],
                        settings: RetentionSettings | None = None) -> RetentionResult:
    """A :class:`RetentionResult` from per-utterance records (fresh, or read back from a run)."""
    return RetentionResult(model=model, records=list(records),
                           languages=_per_language(records, settings or RetentionSettings()))


def _counts(records: Sequence[dict[str, Any]], key: str) -> list[ErrorCounts]:
    return [ErrorCounts(**r[f"{key}_counts"]) for r in records]


def _per_language(records: Sequence[dict[str, Any]], settings: RetentionSettings
                  ) -> dict[str, LanguageRetention]:
    result = {}
    for language in sorted({r["language"] for r in records}):
        rows = [r for r in records if r["language"] == language]
        forced = _counts(rows, "forced")
        result[language] = LanguageRetention(
            language=language, utterances=len(rows),
            words=sum(c.reference_length for c in forced),
            wer_forced=_interval(forced, settings),
            wer_identified=_interval(_counts(rows, "identified"), settings),
            lid_accuracy=sum(r["detected"] == language for r in rows) / len(rows),
            detected=dict(Counter(r["detected"] for r in rows).most_common()))
    return result


def compare_retention(before: RetentionResult, after: RetentionResult,
                      settings: RetentionSettings | None = None) -> dict[str, Any]:
    """Per-language change from ``before`` to ``after`` (after minus before).

    WER changes come with paired-bootstrap 95% intervals over the same utterances.

    Raises:
        ValueError: the two results do not cover the same utterances in the same order.
    """
    if [r["id"] for r in before.records] != [r["id"] for r in after.records]:
        raise ValueError("before and after were measured on different utterances")
    settings = settings or RetentionSettings()
    changes: dict[str, Any] = {}
    for language, b in before.languages.items():
        a = after.languages[language]
        rows_b = [r for r in before.records if r["language"] == language]
        rows_a = [r for r in after.records if r["language"] == language]
        change: dict[str, Any] = {"lid_accuracy": {
            "before": b.lid_accuracy, "after": a.lid_accuracy,
            "delta": a.lid_accuracy - b.lid_accuracy}}
        for key in ("forced", "identified"):
            res = paired_bootstrap_counts(_counts(rows_b, key), _counts(rows_a, key),
                                          metric="wer", n_resamples=settings.n_resamples,
                                          seed=settings.seed)
            change[f"wer_{key}"] = {"before": res.value_a, "after": res.value_b,
                                    "delta": res.delta, "low": res.low, "high": res.high,
                                    "p_value": res.p_value}
        changes[language] = change
    return changes

"""The ``whisper-ja score`` command: score hypothesis JSONL against references.

Inputs are matched by ``id``:

* REF: a manifest (:class:`whisper_ja.data.manifest.Utterance` lines) or any JSONL whose
  objects have string ``id`` and ``text`` (or ``ref``, as in ``evaluate``'s
  ``hypotheses.jsonl``); other fields ignored.
* HYP (and the optional BASELINE): JSONL with ``id`` and ``text``, or ``evaluate``'s
  ``hypotheses.jsonl`` (``{"id", "ref", "hyp", ...}``: its ``hyp`` is read).

A reference whose text is empty once normalized has no characters to score against (its CER
is 0 or 100%, and bootstrap intervals over such utterances swing wildly), so it is left out of
the scores and named in ``empty_reference_ids``; the command exits 1 naming each.

Missing and extra ids are never ignored silently:

* a reference without a hypothesis is, by default (``missing=empty``), scored as an EMPTY
  hypothesis (all deletions: a system that said nothing is wrong, not excused), and counted and
  listed; ``missing=skip`` leaves it out of the scores instead (still counted and listed);
* a hypothesis whose id is not in the references is counted and listed as extra, not scored.

Output: a table (rich) on the terminal and, with ``out``, a JSON file holding the settings, the
counts, the corpus-level metrics with bootstrap intervals, the mean per-utterance CER (the
ReazonSpeech convention), term recall, the paired bootstrap against a baseline, and every
utterance's scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.progress import track

from whisper_ja.config import ConfigError, field
from whisper_ja.errors import ScoreInputError
from whisper_ja.jsonl import iter_json_objects
from whisper_ja.text.bootstrap import interval_from_counts, paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts, char_counts, mean_rate, word_counts
from whisper_ja.text.normalize import Normalizer, get_normalizer
from whisper_ja.text.reading import to_reading
from whisper_ja.text.terms import load_terms, term_recall

__all__ = ["HYP_FIELDS", "REF_FIELDS", "ScoreConfig", "ScoreInputError", "read_texts",
           "read_texts_with_lines", "score"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreConfig:
    """Settings of ``whisper-ja score``."""

    ref: Path = field(help="references: a manifest or any JSONL with 'id' and 'text' (or 'ref')")
    hyp: Path = field(help="hypotheses: JSONL with 'id' and 'text', or evaluate's "
                           "hypotheses.jsonl ('hyp')")
    normalizer: Literal["default", "reazonspeech", "kotoba", "paper"] = field(
        "default", help="normalization preset (default is whisper-ja's; others reproduce "
                        "ReazonSpeech, kotoba-whisper or the seed paper's code)")
    terms: Path | None = field(None, help="term file (one term per line, optionally "
                                          "term<TAB>reading) for term recall")
    out: Path | None = field(None, help="write the full report as JSON here")
    baseline: Path | None = field(None, help="hypotheses of a baseline system: adds a paired "
                                             "bootstrap of hyp minus baseline")
    missing: Literal["empty", "skip"] = field(
        "empty", help="a reference without hypothesis: score it as empty, or skip it "
                      "(either way counted and listed)")
    reading: bool = field(True, help="also compute the reading (kana) CER")
    n_resamples: int = field(1000, help="bootstrap resamples for intervals (0 = none)")
    confidence: float = field(0.95, help="coverage of the bootstrap intervals")
    seed: int = field(0, help="bootstrap random seed")

    def __post_init__(self) -> None:
        if self.n_resamples < 0:
            raise ConfigError(f"n_resamples: must be 0 or more, got {self.n_resamples}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence: must be between 0 and 1, got {self.confidence}")


REF_FIELDS = ("text", "ref")
"""Where a reference's text is read from, first present wins (a manifest; evaluate's output)."""

HYP_FIELDS = ("text", "hyp")
"""Where a hypothesis's text is read from, first present wins (``hyp``: evaluate's output)."""


def read_texts(path: str | Path, fields: Sequence[str] = ("text",)) -> dict[str, str]:
    """``id`` → text of a JSONL file, in file order (see :func:`read_texts_with_lines`)."""
    return {uid: text for uid, (text, _) in read_texts_with_lines(path, fields).items()}


def read_texts_with_lines(path: str | Path, fields: Sequence[str] = ("text",)
                          ) -> dict[str, tuple[str, int]]:
    """``id`` → (text, line number) of a JSONL file, in file order.

    Args:
        path: The JSONL file.
        fields: Names the text may have; the first one a line holds is read.

    Raises:
        ScoreInputError: missing file, bad JSON, missing or non-string id/text, or a repeated
            id; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreInputError(f"{path}: file does not exist")
    texts: dict[str, tuple[str, int]] = {}
    alternatives = " or ".join(repr(f) for f in fields)
    for number, obj in iter_json_objects(path, ScoreInputError):
        where = f"{path}:{number}"
        if not isinstance(obj.get("id"), str):
            raise ScoreInputError(f"{where}: field 'id' missing or not a string")
        name = next((f for f in fields if f in obj), fields[0])
        if not isinstance(obj.get(name), str):
            raise ScoreInputError(f"{where}: field {alternatives} missing or not a string")
        uid = obj["id"]
        if uid in texts:
            raise ScoreInputError(f"{where}: id {uid!r} already on line {texts[uid][1]}")
        texts[uid] = obj[name], number
    return texts


@dataclass(frozen=True)
class _Matched:
    ids: list[str]
    refs: list[str]
    hyps: list[str]
    missing: list[str]
    extra: list[str]


def _match(refs: dict[str, str], hyps: dict[str, str], policy: str) -> _Matched:
    missing = [uid for uid in refs if uid not in hyps]
    extra = [uid for uid in hyps if uid not in refs]
    ids = [uid for uid in refs if uid in hyps or policy == "empty"]
    return _Matched(ids, [refs[u] for u in ids], [hyps.get(u, "") for u in ids], missing, extra)


def _utterance_counts(refs: Sequence[str], hyps: Sequence[str], norm: Normalizer,
                      reading: bool, label: str) -> dict[str, list[ErrorCounts]]:
    """Per-utterance counts of every metric, with a progress bar (readers are slow-ish)."""
    counts: dict[str, list[ErrorCounts]] = {"cer": [], "wer": []}
    if reading:
        counts["reading_cer"] = []
    for ref, hyp in track(list(zip(refs, hyps, strict=True)), description=label,
                          transient=True):
        ref_n, hyp_n = norm(ref), norm(hyp)
        counts["cer"].append(char_counts(ref_n, hyp_n))
        counts["wer"].append(word_counts(ref_n, hyp_n, norm))
        if reading:
            counts["reading_cer"].append(char_counts(to_reading(ref, norm),
                                                     to_reading(hyp, norm)))
    return counts


def _metric_summary(counts: list[ErrorCounts], name: str,
                    config: ScoreConfig) -> dict[str, Any]:
    total = sum(counts, ErrorCounts())
    summary: dict[str, Any] = {**total.to_dict(), "mean_utterance_rate": mean_rate(counts)}
    if config.n_resamples and counts:
        ci = interval_from_counts(counts, name, config.n_resamples, config.seed,
                                  config.confidence)
        summary.update(ci_low=ci.low, ci_high=ci.high, confidence=config.confidence)
    return summary


def score(config: ScoreConfig) -> dict[str, Any]:
    """Score ``config.hyp`` against ``config.ref``; the report as a JSON-ready dict.

    Raises:
        ScoreInputError: an input file is missing or malformed.
        TermFileError: the term file is malformed.
    """
    norm = get_normalizer(config.normalizer)
    ref_lines = read_texts_with_lines(config.ref, REF_FIELDS)
    empty = {uid: f"{config.ref}:{line}" for uid, (text, line) in ref_lines.items()
             if not norm(text).strip()}
    refs = {uid: text for uid, (text, _) in ref_lines.items() if uid not in empty}
    hyps = read_texts(config.hyp, HYP_FIELDS)
    matched = _match(refs, hyps, config.missing)
    counts = _utterance_counts(matched.refs, matched.hyps, norm, config.reading, "scoring")
    report: dict[str, Any] = {
        "normalizer": config.normalizer, "ref": str(config.ref), "hyp": str(config.hyp),
        "missing_policy": config.missing,
        "counts": {"references": len(ref_lines), "hypotheses": len(hyps),
                   "scored": len(matched.ids), "missing": len(matched.missing),
                   "extra": len([u for u in matched.extra if u not in empty]),
                   "empty_references": len(empty)},
        "missing_ids": matched.missing,
        "extra_ids": [u for u in matched.extra if u not in empty],
        "empty_reference_ids": empty,
        "metrics": {name: _metric_summary(c, name, config) for name, c in counts.items()},
        "baseline": None, "terms": None,
    }
    if config.baseline is not None:
        report["baseline"] = _compare_baseline(config.baseline, config, refs, matched, counts,
                                               norm)
    if config.terms is not None:
        terms = load_terms(config.terms)
        report["terms"] = term_recall(matched.refs, matched.hyps, terms, norm).to_dict()
    missing = set(matched.missing)
    report["utterances"] = [
        {"id": uid, "ref": ref, "hyp": hyp, "missing": uid in missing,
         **{name: c[i].rate for name, c in counts.items()},
         **{f"{name}_counts": c[i].to_dict() for name, c in counts.items()}}
        for i, (uid, ref, hyp) in enumerate(zip(matched.ids, matched.refs, matched.hyps,
                                                strict=True))
    ]
    return report


def _compare_baseline(path: Path, config: ScoreConfig, refs: dict[str, str], matched: _Matched,
                      counts: dict[str, list[ErrorCounts]], norm: Normalizer) -> dict[str, Any]:
    """Paired bootstrap of hyp minus baseline on the utterances scored for hyp.

    A baseline hypothesis that is missing is scored as empty (counted and listed), whatever
    ``missing`` says, so both systems are compared on exactly the same utterances.
    """
    base_texts = read_texts(path, HYP_FIELDS)
    base = _match(refs, base_texts, "empty")
    base_hyp = dict(zip(base.ids, base.hyps, strict=True))
    base_counts = _utterance_counts(matched.refs, [base_hyp[u] for u in matched.ids], norm,
                                    config.reading, "scoring baseline")
    results = {}
    for name, hyp_counts in counts.items():
        resamples = max(config.n_resamples, 1)
        result = paired_bootstrap_counts(base_counts[name], hyp_counts, name, resamples,
                                         config.seed, config.confidence)
        results[name] = result.to_dict()
    return {"path": str(path), "missing": len(base.missing),
            "missing_ids": base.missing, "extra": len(base.extra), "extra_ids": base.extra,
            "delta": results}

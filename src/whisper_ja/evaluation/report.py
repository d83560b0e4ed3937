"""Evaluation reports: per-utterance records in, ``report.json`` / ``report.md`` / plots out.

Everything here works on :class:`HypothesisRecord` rows (one per utterance, the lines of
``hypotheses.jsonl``), which carry the edit counts of each metric. Corpus-level rates and every
breakdown (per corpus, per speaker) are sums of those counts, so the report and the
per-utterance file always agree, and bootstrap confidence intervals
(:mod:`whisper_ja.text.bootstrap`) resample those counts without re-scoring any text.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_ja.data.manifest import is_synthetic_corpus
from whisper_ja.jsonl import iter_json_objects
from whisper_ja.text.bootstrap import interval_from_counts
from whisper_ja.text.metrics import ErrorCounts

__all__ = [
    "METRICS",
    "HypothesisRecord",
    "Report",
    "build_report",
    "counts_interval",
    "error_counts",
    "group_summary",
    "read_hypotheses",
    "render_markdown",
    "write_hypotheses",
    "write_report",
]

METRICS = ("cer", "wer", "reading_cer")
"""Metrics every report carries, in display order."""

METRIC_NAMES = {"cer": "CER", "wer": "WER", "reading_cer": "reading CER"}
COUNT_KEYS = ("substitutions", "deletions", "insertions", "hits", "reference_length")


@dataclass(frozen=True)
class HypothesisRecord:
    """One utterance's result: a line of ``hypotheses.jsonl``.

    Attributes:
        id: Utterance id from the manifest.
        ref: Reference text as the manifest gives it (unnormalized).
        hyp: Decoded text (unnormalized).
        cer: This utterance's character error rate (after normalization).
        looped: The decoder ran into a repetition loop / hallucination (``DecodeResult.looped``).
        corpus: Corpus name from the manifest.
        speaker: Speaker or synthetic voice id ("" if unknown).
        duration: Audio length in seconds.
        counts: Per metric (``cer``, ``wer``, ``reading_cer``), the edit counts
            ``substitutions, deletions, insertions, hits, reference_length``.
    """

    id: str
    ref: str
    hyp: str
    cer: float
    looped: bool
    corpus: str
    speaker: str
    duration: float
    counts: dict[str, dict[str, int]]

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "") -> HypothesisRecord:
        """Build a record from a parsed JSON line; ``where`` names the file and line on error."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in obj]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        return cls(**{n: obj[n] for n in names})


def rate(counts: Mapping[str, int]) -> float:
    """Error rate of edit counts: (S + D + I) / reference length.

    As in :class:`whisper_ja.text.metrics.ErrorCounts`, an empty reference gives 0.0 when
    there is no error and 1.0 otherwise (finite, valid JSON).
    """
    errors = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    if not counts["reference_length"]:
        return 0.0 if errors == 0 else 1.0
    return errors / counts["reference_length"]


def _sum_counts(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNT_KEYS, 0)
    for row in rows:
        for key in COUNT_KEYS:
            total[key] += int(row[key])
    return total


def error_counts(record: HypothesisRecord, metric: str) -> ErrorCounts:
    """The :class:`~whisper_ja.text.metrics.ErrorCounts` of one record under ``metric``."""
    return ErrorCounts(**{k: int(record.counts[metric][k]) for k in COUNT_KEYS})


def counts_interval(records: Sequence[HypothesisRecord], metric: str, n_resamples: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of a corpus-level rate, resampling utterances.

    Uses the stored per-utterance counts, so no text is re-scored.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than two utterances.
    """
    if len(records) < 2:
        return math.nan, math.nan
    result = interval_from_counts([error_counts(r, metric) for r in records], metric,
                                  n_resamples=n_resamples, seed=seed)
    return result.low, result.high


def group_summary(records: Sequence[HypothesisRecord], n_resamples: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
    """Metrics of a set of utterances: rate, CI and edit counts per metric, loops, audio length."""
    summary: dict[str, Any] = {
        "utterances": len(records),
        "audio_seconds": round(sum(r.duration for r in records), 3),
        "looped": sum(r.looped for r in records),
    }
    for metric in METRICS:
        counts = _sum_counts(r.counts[metric] for r in records)
        low, high = counts_interval(records, metric, n_resamples, seed)
        summary[metric] = {"rate": rate(counts), "low": low, "high": high, **counts}
    return summary


def _by(records: Sequence[HypothesisRecord], key: str, n_resamples: int,
        seed: int) -> dict[str, Any]:
    groups: dict[str, list[HypothesisRecord]] = {}
    for record in records:
        groups.setdefault(getattr(record, key) or "(unknown)", []).append(record)
    return {name: group_summary(rows, n_resamples, seed) for name, rows in sorted(groups.items())}


def build_report(records: Sequence[HypothesisRecord], *, meta: Mapping[str, Any],
                 n_resamples: int = 1000, seed: int = 0, worst: int = 10) -> dict[str, Any]:
    """The content of ``report.json``.

    Args:
        records: One per evaluated utterance.
        meta: Run description merged in as is (model, adapter, manifest, decoding settings,
            ``decode_seconds``, ...). A ``decode_seconds`` entry yields the real-time factor.
        n_resamples: Bootstrap resamples for the confidence intervals.
        seed: Bootstrap seed.
        worst: How many of the highest-CER utterances to list.

    Returns:
        A JSON-serialisable dict: ``overall``, ``by_corpus``, ``by_speaker``, ``looped_ids``,
        ``worst``, ``synthetic``, ``rtf`` and the ``meta`` entries.
    """
    if not records:
        raise ValueError("no utterances to report on")
    overall = group_summary(records, n_resamples, seed)
    report: dict[str, Any] = dict(meta)
    decode_seconds = meta.get("decode_seconds")
    audio = overall["audio_seconds"]
    report["rtf"] = (float(decode_seconds) / audio
                     if decode_seconds is not None and audio > 0 else None)
    report["synthetic"] = any(is_synthetic_corpus(r.corpus) for r in records)
    report["bootstrap"] = {"n_resamples": n_resamples, "seed": seed, "level": 0.95}
    report["overall"] = overall
    report["by_corpus"] = _by(records, "corpus", n_resamples, seed)
    report["by_speaker"] = _by(records, "speaker", n_resamples, seed)
    report["looped_ids"] = [r.id for r in records if r.looped]
    ranked = sorted(records, key=lambda r: (-r.cer, r.id))[:worst]
    report["worst"] = [{"id": r.id, "cer": r.cer, "ref": r.ref, "hyp": r.hyp,
                        "looped": r.looped} for r in ranked]
    return report


def write_hypotheses(path: Path, records: Iterable[HypothesisRecord]) -> int:
    """Write records as JSONL (UTF-8 kept readable); returns the count."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_hypotheses(path: Path) -> list[HypothesisRecord]:
    """Read ``hypotheses.jsonl``; errors name the file and line."""
    return [HypothesisRecord.from_dict(obj, f"{path}:{number}")
            for number, obj in iter_json_objects(path)]


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _ci(entry: Mapping[str, Any]) -> str:
    if math.isnan(entry["low"]):
        return "n/a"
    return f"{_pct(entry['low'])}–{_pct(entry['high'])}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _group_table(groups: Mapping[str, Any], title: str) -> list[str]:
    lines = [f"| {title} | utterances | CER % | 95% CI | WER % | reading CER % | looped |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, g in groups.items():
        lines.append(f"| {_cell(name)} | {g['utterances']} | {_pct(g['cer']['rate'])} | "
                     f"{_ci(g['cer'])} | {_pct(g['wer']['rate'])} | "
                     f"{_pct(g['reading_cer']['rate'])} | {g['looped']} |")
    return lines


def _header(report: Mapping[str, Any]) -> list[str]:
    lines = [f"# Evaluation report: {report.get('label') or report.get('model', '')}", ""]
    if report.get("synthetic"):
        lines += ["> **SYNTHETIC speech**: the audio was made by a speech synthesizer; these "
                  "numbers say how the model does on synthetic voices, not on real speakers.", ""]
    overall = report["overall"]
    rtf = report.get("rtf")
    lines += [
        f"- model: `{report.get('model')}`"
        + (f", adapter `{report['adapter']}`" if report.get("adapter")
           and str(report["adapter"]) not in str(report.get("model")) else ""),
        f"- manifest: `{report.get('manifest')}`: {overall['utterances']} utterances, "
        f"{overall['audio_seconds'] / 60:.1f} min of audio",
        f"- decoding: {report.get('decoding', '')}; context: {report.get('context', '')}; "
        f"normalizer: `{report.get('normalizer', '')}`",
        f"- speed: real-time factor {rtf:.3f} ({report.get('decode_seconds', 0):.1f} s "
        f"to decode, on {report.get('device', 'cpu')})" if rtf is not None else "- speed: n/a",
        f"- repetition loops / hallucinations: **{overall['looped']}** of "
        f"{overall['utterances']} utterances"
        + (f" ({report['looped_unguarded']} before the decoding guards)"
           if "looped_unguarded" in report else ""),
    ]
    failed = report.get("failed") or {}
    if failed:
        lines.append(f"- **left out: {len(failed)} utterance(s) whose audio could not be "
                     f"read** (not scored), e.g. {next(iter(failed.values()))}")
    return [*lines, ""]


def _accuracy_table(report: Mapping[str, Any]) -> list[str]:
    n = report["bootstrap"]["n_resamples"]
    lines = ["## Accuracy", "",
             f"Percent; 95% confidence intervals from {n} bootstrap resamples of utterances.",
             "", "| metric | value | 95% CI | substitutions | deletions | insertions | "
             "reference length |", "|---|---:|---:|---:|---:|---:|---:|"]
    for metric in METRICS:
        m = report["overall"][metric]
        lines.append(f"| {METRIC_NAMES[metric]} | {_pct(m['rate'])} | {_ci(m)} | "
                     f"{m['substitutions']} | {m['deletions']} | {m['insertions']} | "
                     f"{m['reference_length']} |")
    return [*lines, ""]


def _comparison(comparison: Mapping[str, Any]) -> list[str]:
    lines = [f"## Comparison with `{comparison['other']}`", "",
             f"Paired bootstrap over the {comparison['paired_utterances']} utterances both runs "
             "decoded; difference = this run − other run (negative = this run is better).", "",
             "| metric | other run % | this run % | difference (points) | 95% CI | "
             "significant |", "|---|---:|---:|---:|---:|---|"]
    for metric in METRICS:
        d = comparison["metrics"].get(metric)
        if d is None:
            continue
        lines.append(
            f"| {METRIC_NAMES[metric]} | {_pct(d['other'])} | {_pct(d['this'])} | "
            f"{100 * d['delta']:+.2f} | {100 * d['low']:+.2f} to {100 * d['high']:+.2f} | "
            f"{'yes' if d['significant'] else 'no'} |")
    if comparison.get("unpaired"):
        lines += ["", f"{comparison['unpaired']} utterance(s) present in only one run were "
                  "left out of the paired comparison."]
    return [*lines, ""]


def _term_table(tr: Mapping[str, Any]) -> list[str]:
    lines = ["## Term recall", "",
             f"Terms from `{tr['file']}`: {tr['recalled']} of {tr['occurrences']} occurrences "
             f"written as listed (recall {_pct(tr['recall'])} %), {tr['heard']} heard by their "
             f"reading (reading recall {_pct(tr['reading_recall'])} %).", "",
             "| term | occurrences | recalled | heard |", "|---|---:|---:|---:|"]
    lines += [f"| {_cell(t['term'])} | {t['occurrences']} | {t['recalled']} | {t['heard']} |"
              for t in tr["terms"] if t["occurrences"]]
    if tr.get("absent"):
        lines += ["", f"{len(tr['absent'])} term(s) occur in no reference."]
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human-readable ``report.md`` of a :func:`build_report` dict."""
    lines = _header(report) + _accuracy_table(report)
    if report.get("comparison"):
        lines += _comparison(report["comparison"])
    lines += ["## Per corpus", "", *_group_table(report["by_corpus"], "corpus"), "",
              "## Per speaker / voice", "", *_group_table(report["by_speaker"], "speaker"), ""]
    if report.get("term_recall") is not None:
        lines += _term_table(report["term_recall"])
    if report.get("looped_ids"):
        shown = ", ".join(f"`{i}`" for i in report["looped_ids"][:20])
        more = len(report["looped_ids"]) - 20
        lines += ["## Utterances that looped", "", shown + (f" and {more} more" if more > 0
                                                          else ""), ""]
    lines += ["## Worst utterances", "", "| id | CER % | reference | hypothesis |",
              "|---|---:|---|---|"]
    for w in report["worst"]:
        lines.append(f"| {_cell(w['id'])} | {_pct(w['cer'])} | {_cell(w['ref'])} | "
                     f"{_cell(w['hyp'])}{' (looped)' if w['looped'] else ''} |")
    if report.get("plots"):
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({name})" for name in report["plots"]]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    """What :func:`whisper_ja.evaluation.runner.evaluate` returns: the report and where it lies."""

    out_dir: Path
    data: dict[str, Any]

    @property
    def cer(self) -> float:
        """Corpus-level CER of the run."""
        return float(self.data["overall"]["cer"]["rate"])

    @property
    def wer(self) -> float:
        """Corpus-level WER of the run."""
        return float(self.data["overall"]["wer"]["rate"])

    @property
    def reading_cer(self) -> float:
        """Corpus-level reading (kana) CER of the run."""
        return float(self.data["overall"]["reading_cer"]["rate"])


def write_report(report: Mapping[str, Any], out_dir: Path) -> None:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (NaN written as null)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    (out_dir / "report.json").write_text(
        json.dumps(clean(report), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")

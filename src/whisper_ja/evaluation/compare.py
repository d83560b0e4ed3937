"""Comparing two evaluation runs on the same utterances, with paired-bootstrap intervals.

A comparison pairs the utterances of this run with those of an earlier ``evaluate`` output
folder by id; the difference of each metric (this run minus the other) gets a paired-bootstrap
95% interval from :func:`whisper_ja.text.bootstrap.paired_bootstrap`. Utterances present in
only one run are counted and reported, never silently dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from whisper_ja.config import ConfigError
from whisper_ja.evaluation.report import (
    METRICS,
    HypothesisRecord,
    error_counts,
    group_summary,
    read_hypotheses,
)
from whisper_ja.text.bootstrap import paired_bootstrap_counts

__all__ = ["compare_records", "compare_runs"]

log = logging.getLogger(__name__)


def _group_rates(records: Sequence[HypothesisRecord], key: str) -> dict[str, float]:
    groups: dict[str, list[HypothesisRecord]] = {}
    for record in records:
        groups.setdefault(getattr(record, key) or "(unknown)", []).append(record)
    return {name: group_summary(rows, n_resamples=10)["cer"]["rate"]
            for name, rows in sorted(groups.items())}


def compare_records(this: Sequence[HypothesisRecord], other: Sequence[HypothesisRecord], *,
                    other_name: str = "other", n_resamples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Paired comparison of two runs' records (matched by utterance id).

    Args:
        this: Records of this run (``b`` of the bootstrap).
        other: Records of the run compared with (``a``: the baseline).
        other_name: How the other run is named in the report.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        ``other``, ``paired_utterances``, ``unpaired`` (count), ``metrics`` (per metric:
        ``other``, ``this``, ``delta`` = this − other, ``low``, ``high``, ``significant``) and
        per-corpus / per-speaker CER of both runs (``by_corpus``, ``by_speaker``:
        name → {"other", "this"}).

    Raises:
        ConfigError: no utterance in common, or a shared id with different reference text.
    """
    other_by_id = {r.id: r for r in other}
    pairs = [(other_by_id[r.id], r) for r in this if r.id in other_by_id]
    if not pairs:
        raise ConfigError(f"compare: no utterance id in common with {other_name}")
    for a, b in pairs:
        if a.ref != b.ref:
            raise ConfigError(f"compare: utterance {a.id}: reference differs between {other_name} "
                             f"({a.ref!r}) and this run ({b.ref!r})")
    unpaired = len(this) + len(other) - 2 * len(pairs)
    if unpaired:
        log.warning("compare: %d utterance(s) in only one of the runs are left out", unpaired)
    metrics: dict[str, Any] = {}
    for metric in METRICS:
        # Both runs stored per-utterance counts under the same normalizer: resample those.
        result = paired_bootstrap_counts([error_counts(a, metric) for a, _ in pairs],
                                         [error_counts(b, metric) for _, b in pairs],
                                         metric, n_resamples=n_resamples, seed=seed)
        metrics[metric] = {
            "other": result.value_a, "this": result.value_b, "delta": result.delta,
            "low": result.low, "high": result.high, "p_value": result.p_value,
            "significant": result.significant,
        }
    this_paired = [b for _, b in pairs]
    other_paired = [a for a, _ in pairs]
    groups = {}
    for key in ("corpus", "speaker"):
        mine, theirs = _group_rates(this_paired, key), _group_rates(other_paired, key)
        groups[f"by_{key}"] = {name: {"other": theirs[name], "this": mine[name]}
                               for name in mine}
    return {"other": other_name, "paired_utterances": len(pairs), "unpaired": unpaired,
            "n_resamples": n_resamples, "metrics": metrics, **groups}


def compare_runs(this: Sequence[HypothesisRecord], other_dir: Path, *,
                 normalizer: str = "default", n_resamples: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
    """Compare this run's records with an earlier ``evaluate`` output folder.

    The other run's label (from its ``report.json``) names it in the report. A different
    normalizer in the other run is an error: its per-utterance scores would not be comparable.
    """
    other = read_hypotheses(other_dir / "hypotheses.jsonl")
    name = str(other_dir)
    report_file = other_dir / "report.json"
    if report_file.is_file():
        other_report = json.loads(report_file.read_text(encoding="utf-8"))
        name = other_report.get("label") or name
        other_norm = other_report.get("normalizer", normalizer)
        if other_norm != normalizer:
            raise ConfigError(f"compare: {other_dir} was scored with normalizer {other_norm!r}, "
                             f"this run with {normalizer!r}")
    result = compare_records(this, other, other_name=name, n_resamples=n_resamples, seed=seed)
    result["other_dir"] = str(other_dir)
    return result

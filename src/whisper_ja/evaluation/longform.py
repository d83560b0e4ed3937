"""``evaluate --suite longform``: long recordings with reference segments, scored as used.

Per file, the transcript (:meth:`whisper_ja.inference.engine.Engine.transcribe`: what
``transcribe`` runs, with the same settings, on either backend) is scored against the record's
``segments`` (``make-longform`` writes them):

- CER of the whole text (normalized), with its deletion and insertion rates: text lost on long
  audio shows as deletions, text invented as insertions;
- hallucination: characters of segments that overlap no reference speech (and, separately, the
  noise-only stretches of ``extra["noise"]``);
- repetition: files with a looping window;
- the share of segments whose window carried well-formed timestamps;
- speech lost: seconds of VAD speech in windows whose text was dropped after the retries;
- segment start and end error (median ms) and boundary F1 of segment starts at ±0.5 s
  (hypothesis and reference starts matched one to one, nearest first).

With an adapter, the untouched model and the fine-tuned one are scored side by side on the same
files, with paired bootstrap intervals of the differences (files resampled).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whisper_ja.audio.io import load_audio
from whisper_ja.config import ConfigError
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.evaluation.report import Report
from whisper_ja.inference.engine import Transcription, load_engine
from whisper_ja.inference.timestamps import Segment
from whisper_ja.text.bootstrap import interval_from_counts, paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts, char_counts
from whisper_ja.text.normalize import normalize

__all__ = ["FileScore", "boundary_matches", "evaluate_longform", "run_longform_suite",
           "score_file", "summarize"]

TOLERANCE = 0.5
"""Seconds within which a hypothesis segment start matches a reference start."""


@dataclass(frozen=True)
class FileScore:
    """One recording's scores (counts, so files can be pooled and resampled)."""

    id: str
    counts: ErrorCounts
    hyp_chars: int
    chars_over_nonspeech: int
    chars_over_noise: int
    looped: bool
    segments: int
    timed_segments: int
    reference_segments: int
    matched: int
    start_errors_ms: tuple[float, ...]
    end_errors_ms: tuple[float, ...]
    hypothesis: str


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def boundary_matches(reference: Sequence[float], hypothesis: Sequence[float],
                     tolerance: float = TOLERANCE) -> list[tuple[int, int]]:
    """One-to-one ``(ref, hyp)`` index matches of times within ``tolerance``, nearest first."""
    pairs = sorted((abs(r - h), i, j) for i, r in enumerate(reference)
                   for j, h in enumerate(hypothesis) if abs(r - h) <= tolerance)
    used_ref: set[int] = set()
    used_hyp: set[int] = set()
    matches = []
    for _, i, j in pairs:
        if i not in used_ref and j not in used_hyp:
            used_ref.add(i)
            used_hyp.add(j)
            matches.append((i, j))
    return matches


def score_file(reference: Utterance, hypothesis: Sequence[Segment],
               normalizer: str = "default") -> FileScore:
    """Score one recording's segments against its reference segments."""
    ref_spans = [(s.start, s.end) for s in reference.segments]
    noise = [(float(a), float(b)) for a, b in reference.extra.get("noise", [])]
    text = "".join(s.text for s in hypothesis)
    counts = char_counts(normalize(reference.text, normalizer), normalize(text, normalizer))
    over_speech = over_noise = 0
    for seg in hypothesis:
        span, length = (seg.start, seg.end), len(normalize(seg.text, normalizer))
        if not any(_overlap(span, r) > 0 for r in ref_spans):
            over_speech += length
        if any(_overlap(span, n) >= 0.5 * max(seg.end - seg.start, 1e-6) for n in noise):
            over_noise += length
    matches = boundary_matches([s.start for s in reference.segments],
                               [s.start for s in hypothesis])
    starts = tuple(1000 * abs(reference.segments[i].start - hypothesis[j].start)
                   for i, j in matches)
    ends = tuple(1000 * abs(reference.segments[i].end - hypothesis[j].end) for i, j in matches)
    return FileScore(reference.id, counts, len(normalize(text, normalizer)), over_speech,
                     over_noise, any(s.looped for s in hypothesis), len(hypothesis),
                     sum(s.timed for s in hypothesis), len(reference.segments), len(matches),
                     starts, ends, text)


def _f1(scores: Iterable[FileScore]) -> float:
    items = list(scores)
    total = sum(s.segments + s.reference_segments for s in items)
    return 2 * sum(s.matched for s in items) / total if total else 1.0


def summarize(scores: Sequence[FileScore], n_resamples: int = 1000, seed: int = 0,
              ) -> dict[str, Any]:
    """Pooled metrics of one system over all files."""
    counts = [s.counts for s in scores]
    reference_chars = sum(c.reference_length for c in counts) or 1
    cer = interval_from_counts(counts, "cer", n_resamples, seed)
    starts = [e for s in scores for e in s.start_errors_ms]
    ends = [e for s in scores for e in s.end_errors_ms]
    hyp_chars = sum(s.hyp_chars for s in scores) or 1
    segments = sum(s.segments for s in scores)
    return {
        "files": len(scores), "cer": cer.value, "cer_low": cer.low, "cer_high": cer.high,
        "deletion_rate": sum(c.deletions for c in counts) / reference_chars,
        "insertion_rate": sum(c.insertions for c in counts) / reference_chars,
        "chars_over_nonspeech": sum(s.chars_over_nonspeech for s in scores),
        "nonspeech_share": sum(s.chars_over_nonspeech for s in scores) / hyp_chars,
        "chars_over_noise": sum(s.chars_over_noise for s in scores),
        "looped_files": sum(s.looped for s in scores),
        "timestamped_share": sum(s.timed_segments for s in scores) / segments if segments
        else 1.0,
        "segments": segments, "reference_segments": sum(s.reference_segments for s in scores),
        "start_error_median_ms": float(np.median(starts)) if starts else None,
        "end_error_median_ms": float(np.median(ends)) if ends else None,
        "boundary_f1": _f1(scores),
    }


def _paired_f1(a: Sequence[FileScore], b: Sequence[FileScore], n_resamples: int,
               seed: int) -> dict[str, float]:
    """Paired bootstrap (files resampled) of the boundary-F1 difference b - a."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(a), len(a))
        deltas.append(_f1(b[i] for i in pick) - _f1(a[i] for i in pick))
    low, high = np.quantile(deltas, [0.025, 0.975])
    return {"delta": _f1(b) - _f1(a), "low": float(low), "high": float(high)}


def compare(a: Sequence[FileScore], b: Sequence[FileScore], n_resamples: int = 1000,
            seed: int = 0) -> dict[str, Any]:
    """Differences b - a with paired 95% intervals: CER and boundary F1."""
    cer = paired_bootstrap_counts([s.counts for s in a], [s.counts for s in b], "cer",
                                  n_resamples, seed)
    return {"cer": {"delta": cer.delta, "low": cer.low, "high": cer.high,
                    "p_value": cer.p_value},
            "boundary_f1": _paired_f1(a, b, n_resamples, seed)}


def _markdown(data: dict[str, Any]) -> str:
    names = list(data["systems"])
    keys = ["cer", "deletion_rate", "insertion_rate", "chars_over_nonspeech",
            "chars_over_noise", "looped_files", "timestamped_share", "segments",
            "start_error_median_ms", "end_error_median_ms", "boundary_f1", "lost_speech_s",
            "lost_windows", "retried_windows"]
    lines = [f"# Long-form evaluation ({data['files']} files, {data['hours']:.2f} h"
             f"{', SYNTHETIC speech' if data['synthetic'] else ''})", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in keys:
        cells = [data["systems"][n][key] for n in names]
        lines.append(f"| {key} | " + " | ".join(
            "-" if c is None else f"{c:.4f}" if isinstance(c, float) else str(c)
            for c in cells) + " |")
    if data.get("comparison"):
        c = data["comparison"]
        lines += ["", f"{names[1]} - {names[0]}: CER {c['cer']['delta']:+.4f} "
                  f"(95% CI {c['cer']['low']:+.4f}..{c['cer']['high']:+.4f}), boundary F1 "
                  f"{c['boundary_f1']['delta']:+.4f} (95% CI {c['boundary_f1']['low']:+.4f}.."
                  f"{c['boundary_f1']['high']:+.4f})"]
    return "\n".join(lines) + "\n"


def run_longform_suite(utterances: Sequence[Utterance],
                       systems: dict[str, Callable[[np.ndarray], Transcription]],
                       out: Path, normalizer: str = "default", n_resamples: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """Transcribe every recording with every system and write ``report.json`` / ``report.md``.

    Args:
        utterances: Long recordings with ``segments``.
        systems: Name -> ``audio -> transcription`` (the first is the reference system of
            the comparison, e.g. ``untouched``).
        out: Output folder (``hypotheses_longform.jsonl`` too).
        normalizer: Text normalization before CER.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        The report's data.
    """
    out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, list[FileScore]] = {name: [] for name in systems}
    lost: dict[str, dict[str, float]] = {name: {"lost_speech_s": 0.0, "lost_windows": 0,
                                                "retried_windows": 0} for name in systems}
    with (out / "hypotheses_longform.jsonl").open("w", encoding="utf-8") as handle:
        for utt in utterances:
            audio = load_audio(utt.audio)
            for name, transcribe in systems.items():
                transcription = transcribe(audio)
                segments = list(transcription.segments)
                stats = transcription.stats
                lost[name]["lost_speech_s"] += round(stats.lost_speech_s, 2)
                lost[name]["lost_windows"] += stats.lost_windows
                lost[name]["retried_windows"] += stats.retried
                scores[name].append(score_file(utt, segments, normalizer))
                handle.write(json.dumps({"id": utt.id, "system": name, "segments": [
                    asdict(s) | {"words": [asdict(w) for w in s.words]} for s in segments]},
                    ensure_ascii=False) + "\n")
    names = list(systems)
    data: dict[str, Any] = {
        "suite": "longform", "files": len(utterances),
        "hours": sum(u.duration for u in utterances) / 3600,
        "synthetic": any(u.is_synthetic for u in utterances),
        "systems": {n: summarize(scores[n], n_resamples, seed) | lost[n] for n in names},
        "comparison": compare(scores[names[0]], scores[names[1]], n_resamples, seed)
        if len(names) > 1 else None,
    }
    (out / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (out / "report.md").write_text(_markdown(data), encoding="utf-8")
    return data


def _system(model: str, adapter: Path | None, config: Any,
            ) -> Callable[[np.ndarray], Transcription]:
    """The engine ``transcribe`` would load with these settings, one recording at a time."""
    engine = load_engine(model, str(adapter) if adapter else None, config.runtime,
                         config.decoding)
    return engine.transcribe


def evaluate_longform(config: Any) -> Report:
    """``evaluate --suite longform`` with an :class:`~whisper_ja.evaluation.runner.EvaluateConfig`.

    Systems: the model alone; with an adapter, ``untouched`` (the model without it, or
    ``--baseline``) and ``fine-tuned`` side by side, each loaded and decoded as ``transcribe``
    loads and decodes it.

    Raises:
        ConfigError: no manifest, or no record with ``segments`` in it.
    """
    if config.manifest is None or not Path(config.manifest).is_file():
        raise ConfigError("manifest: suite longform needs a manifest of long recordings with "
                          "segments (whisper-ja make-longform writes one)")
    utts = [u for u in read_manifest(config.manifest) if u.segments]
    if config.limit:
        utts = utts[: config.limit]
    if not utts:
        raise ConfigError(f"manifest: no record of {config.manifest} has segments")
    adapter = Path(config.adapter) if config.adapter else None
    if adapter is not None or config.baseline:
        systems = {"untouched": _system(config.baseline or config.model, None, config),
                   "fine-tuned": _system(config.model, adapter, config)}
    else:
        systems = {config.label or config.model: _system(config.model, None, config)}
    data = run_longform_suite(utts, systems, Path(config.out), config.normalizer,
                              config.bootstrap, config.seed)
    return Report(out_dir=Path(config.out), data=data)

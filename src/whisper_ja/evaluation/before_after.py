"""The before/after table of an adaptation run, as ``whisper-ja demo`` prints it.

Pure formatting of measured results (the ``report.json`` of ``evaluate`` before and after, the
training run's ``summary.json`` with the versatility gate's drifts, and the long-form suite's
``report.json``): every number shown comes from those files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TRAIN_FIELDS", "format_rows", "format_summary"]

TRAIN_FIELDS = ("steps", "best_step", "best_val_cer", "stopped_early", "train_clips",
                "train_time_s", "time_per_step_s", "trainable_params", "precision",
                "peak_memory_mb")
"""Entries of the training run's summary.json shown in the demo's table."""


def _longform_rows(report: dict[str, Any]) -> list[str]:
    """Long-audio rows: CER, boundary F1 and timestamped windows, untouched and fine-tuned."""
    before, after = report["systems"]["untouched"], report["systems"]["fine-tuned"]
    change = report["comparison"]
    name = (f"long audio ({report['files']} recordings, {60 * report['hours']:.1f} min; "
            f"text over noise {before['chars_over_noise']} → {after['chars_over_noise']})")
    rows = [_row(name, "CER", before["cer"], after["cer"], change["cer"]["low"],
                 change["cer"]["high"]),
            _row("long audio", "segment-start F1 (±0.5 s)", before["boundary_f1"],
                 after["boundary_f1"], change["boundary_f1"]["low"],
                 change["boundary_f1"]["high"])]
    share = (f"| long audio | windows with well-formed timestamps | "
             f"{100 * before['timestamped_share']:.2f} | {100 * after['timestamped_share']:.2f} | "
             f"{100 * (after['timestamped_share'] - before['timestamped_share']):+.2f} |")
    return [*rows, share]


def _ci(entry: dict[str, Any]) -> str:
    return f"{100 * entry['low']:.2f}–{100 * entry['high']:.2f}"


def _gate_drifts(train_summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The kept checkpoint's drifts by check, from the training summary (empty without gate)."""
    for validation in train_summary.get("gate_validations", []):
        if validation["step"] == train_summary.get("best_step"):
            return {d["check"]: d for d in validation["drifts"]}
    return {}


def _row(name: str, metric: str, before: float, after: float, low: float, high: float,
         scale: float = 100.0) -> str:
    # "+ 0.0" turns a negated zero (accuracy shown from an error rate) into "+0.00".
    low, high = scale * low + 0.0, scale * high + 0.0
    return (f"| {name} | {metric} | {scale * before:.2f} | {scale * after:.2f} | "
            f"{scale * (after - before) + 0.0:+.2f} ({low:+.2f} to {high:+.2f}) |")


def format_rows(before: dict[str, Any], after: dict[str, Any],
                train_summary: dict[str, Any], longform: dict[str, Any] | None = None
                ) -> list[str]:
    """Rows before and after: test split, unseen-domain check, English retention, long audio.

    The test split comes from the two evaluations; the unseen-domain and English rows from the
    versatility gate's measurement of the kept checkpoint against the untouched model during
    training; the long-audio rows from ``evaluate --suite longform`` (``longform``, if run).
    """
    d = after["comparison"]["metrics"]["cer"]
    lines = ["| set (SYNTHETIC speech) | metric (%) | untouched | fine-tuned | "
             "change (paired 95% CI) |", "|---|---|---:|---:|---|",
             _row(f"test split ({after['overall']['utterances']} utt.)", "CER",
                  before["overall"]["cer"]["rate"], after["overall"]["cer"]["rate"],
                  d["low"], d["high"])]
    drifts, sets = _gate_drifts(train_summary), train_summary.get("gate_sets", {})
    if "unseen_cer" in drifts:
        u = drifts["unseen_cer"]
        lines.append(_row(f"unseen-domain check ({sets.get('unseen')} utt., loops "
                          f"{u['loops_untouched']} → {u['loops']})", "CER", u["untouched"],
                          u["value"], u["low"], u["high"]))
    if "english_wer" in drifts:
        e = drifts["english_wer"]
        lines.append(_row(f"English retention ({sets.get('retention')} clips)",
                          "WER, English forced", e["untouched"], e["value"], e["low"],
                          e["high"]))
    if "language_id" in drifts:  # stored as an error rate; shown as accuracy
        lid = drifts["language_id"]
        lines.append(_row("English retention", "language-ID accuracy", 1 - lid["untouched"],
                          1 - lid["value"], -lid["high"], -lid["low"]))
    if longform:
        lines += _longform_rows(longform)
    return lines


def format_summary(before: dict[str, Any], after: dict[str, Any], *, out: Path,
                   held_out: list[str], train_summary: dict[str, Any] | None = None,
                   seconds: dict[str, float] | None = None,
                   longform: dict[str, Any] | None = None, machine: str | None = None) -> str:
    """The before/after table the demo prints (and writes to ``OUT/demo_summary.md``).

    Args:
        before: ``report.json`` of the untouched model.
        after: ``report.json`` of the adapted model (with its ``comparison`` to ``before``).
        out: The demo folder (for the paths shown).
        held_out: Voices heard only in the test split.
        train_summary: The training run's ``summary.json``, if any.
        seconds: Wall time of each step run now.
        longform: ``report.json`` of the long-audio evaluation, if run.
        machine: The hardware the step times were taken on
            (:func:`whisper_ja.model.device.describe_machine`).
    """
    test = after["overall"]
    names = {"cer": "CER", "wer": "WER", "reading_cer": "reading CER"}
    lines = [
        f"# whisper-ja demo: {before['label']} before and after LoRA, on SYNTHETIC speech", "",
        *format_rows(before, after, train_summary or {}, longform), "",
        (train_summary or {}).get("gate_line", "versatility gate: not run"), "",
        f"Test split: {test['utterances']} utterances ({test['audio_seconds'] / 60:.1f} min), "
        f"sentences never seen in training; voices never heard in training: "
        f"{', '.join(held_out)}.", "",
        "| metric (%) | untouched | 95% CI | fine-tuned | 95% CI |", "|---|---:|---:|---:|---:|",
    ]
    for key, label in names.items():
        b, a = before["overall"][key], after["overall"][key]
        lines.append(f"| {label} | {100 * b['rate']:.2f} | {_ci(b)} | {100 * a['rate']:.2f} | "
                     f"{_ci(a)} |")
    comparison = after["comparison"]
    d = comparison["metrics"]["cer"]
    verdict = "significant" if d["significant"] else "NOT significant"
    lines += ["", f"CER difference (fine-tuned − untouched): {100 * d['delta']:+.2f} points, "
              f"95% CI {100 * d['low']:+.2f} to {100 * d['high']:+.2f} "
              f"(paired bootstrap, {comparison['n_resamples']} resamples, "
              f"{comparison['paired_utterances']} utterances): {verdict}.",
              f"Utterances that looped (repetition/hallucination): untouched "
              f"{before['overall']['looped']}, fine-tuned {after['overall']['looped']} "
              f"(before the decoding guards: {before.get('looped_unguarded', 'n/a')}, "
              f"{after.get('looped_unguarded', 'n/a')}).",
              f"Decoding real-time factor: untouched {before['rtf']:.3f} "
              f"({before['context']}), fine-tuned {after['rtf']:.3f} ({after['context']})."]
    lines += ["", "| voice (CER %) | heard in training | untouched | fine-tuned |",
              "|---|---|---:|---:|"]
    for voice, pair in comparison.get("by_speaker", {}).items():
        lines.append(f"| {voice} | {'no (held out)' if voice in held_out else 'yes'} | "
                     f"{100 * pair['other']:.2f} | {100 * pair['this']:.2f} |")
    lines.append("")
    if train_summary:
        shown = {k: train_summary[k] for k in TRAIN_FIELDS if k in train_summary}
        lines.append("Training (LoRA): " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
    if seconds:
        lines.append("Step times: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in seconds.items() if v > 0)
            + f"; total {sum(seconds.values()) / 60:.1f} min")
    if machine:
        lines.append(f"Machine: {machine}.")
    lines += ["", f"Reports: {out / 'eval_before' / 'report.md'}, "
              f"{out / 'eval_after' / 'report.md'}",
              "Plots: " + ", ".join(str(out / "eval_after" / p) for p in after.get("plots", [])),
              "", "All numbers above were measured in this run, on synthetic speech."]
    return "\n".join(lines) + "\n"

"""Report contents from constructed per-utterance records (no model needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from tests.evaluation.png import assert_drawn_png
from whisper_ja.data.manifest import Utterance
from whisper_ja.evaluation.compare import compare_records
from whisper_ja.evaluation.plots import plot_before_after, plot_groups, plot_training_curves
from whisper_ja.evaluation.report import (
    METRICS,
    build_report,
    read_hypotheses,
    render_markdown,
    write_hypotheses,
    write_report,
)
from whisper_ja.evaluation.runner import score_utterances
from whisper_ja.inference.clips import ClipResult

REFS = ["今日はとても良い天気です。", "私は毎朝コーヒーを飲みます。",
        "駅までの道を教えてください。", "この本はとても面白かった。",
        "明日は雨が降るでしょう。", "東京に行きたいです。"]


def _records(hyps: list[str], looped: list[bool] | None = None,
             speakers: tuple[str, ...] = ("a", "b")):
    utts = [Utterance(id=f"u{i}", audio=f"u{i}.wav", text=ref, duration=2.0 + i,
                      corpus="synthetic" if i % 2 else "jsut", speaker=speakers[i % len(speakers)])
            for i, ref in enumerate(REFS)]
    flags = looped or [False] * len(hyps)
    results = [ClipResult(text=h, token_ids=(), looped=f)
               for h, f in zip(hyps, flags, strict=True)]
    return score_utterances(utts, results)


HYPS_BAD = ["今日はとても良い転機です", "私は毎朝コーヒー飲みます", "駅までの道を教えて",
            "この本は面白かった", "明日は雨が降る降る降る降る", "東京へ行きたい"]


def test_report_fields_consistent_with_records(tmp_path):
    records = _records(HYPS_BAD, looped=[False, False, False, False, True, False])
    report = build_report(records, meta={"label": "x", "decode_seconds": 3.0}, n_resamples=200)
    overall = report["overall"]
    assert overall["utterances"] == len(REFS)
    assert overall["looped"] == 1 and report["looped_ids"] == ["u4"]
    for metric in METRICS:
        m = overall[metric]
        errors = sum(r.counts[metric]["substitutions"] + r.counts[metric]["deletions"]
                     + r.counts[metric]["insertions"] for r in records)
        length = sum(r.counts[metric]["reference_length"] for r in records)
        assert m["rate"] == pytest.approx(errors / length)
        assert m["low"] <= m["rate"] <= m["high"]
    # Breakdowns partition the utterances and their counts.
    assert sum(g["utterances"] for g in report["by_corpus"].values()) == len(REFS)
    assert set(report["by_speaker"]) == {"a", "b"}
    assert sum(g["cer"]["reference_length"] for g in report["by_speaker"].values()) == \
        overall["cer"]["reference_length"]
    assert report["rtf"] == pytest.approx(3.0 / overall["audio_seconds"])
    assert report["synthetic"] is True
    # Worst first, and each worst entry matches its record.
    cers = [w["cer"] for w in report["worst"]]
    assert cers == sorted(cers, reverse=True)
    by_id = {r.id: r for r in records}
    assert all(by_id[w["id"]].hyp == w["hyp"] for w in report["worst"])

    write_report(report, tmp_path)
    loaded = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert loaded["overall"]["cer"]["rate"] == pytest.approx(overall["cer"]["rate"])
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in markdown and "reading CER" in markdown and "u4" in markdown


def test_perfect_hypotheses_score_zero_and_no_synthetic_label():
    utts = [Utterance(id="r1", audio="a.wav", text="今日は晴れ。", duration=1.0, corpus="jsut")]
    records = score_utterances(utts, [ClipResult("今日は晴れ", (), False)])
    report = build_report(records, meta={}, n_resamples=50)
    assert report["overall"]["cer"]["rate"] == 0.0
    assert math.isnan(report["overall"]["cer"]["low"])  # one utterance: no interval
    assert report["synthetic"] is False
    assert "SYNTHETIC" not in render_markdown(report)


def test_hypotheses_roundtrip(tmp_path):
    records = _records(HYPS_BAD)
    write_hypotheses(tmp_path / "h.jsonl", records)
    assert read_hypotheses(tmp_path / "h.jsonl") == records
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1: missing"):
        read_hypotheses(tmp_path / "bad.jsonl")


def test_compare_paired_bootstrap_detects_improvement_and_not_noise():
    bad = _records(HYPS_BAD) * 1
    good = _records([r.rstrip("。") for r in REFS])
    # Six utterances are too few for a tight interval: repeat them under new ids.
    def widen(records, copies=8):
        import dataclasses
        return [dataclasses.replace(r, id=f"{r.id}-{k}") for k in range(copies) for r in records]

    result = compare_records(widen(good), widen(bad), other_name="before", n_resamples=500)
    cer = result["metrics"]["cer"]
    assert cer["this"] == 0.0 and cer["other"] > 0
    assert cer["delta"] == pytest.approx(cer["this"] - cer["other"])
    assert cer["high"] < 0 and cer["significant"]
    same = compare_records(widen(bad), widen(bad), n_resamples=200)["metrics"]["cer"]
    assert same["delta"] == 0.0 and not same["significant"]
    assert set(result["by_speaker"]) == {"a", "b"}


def test_compare_counts_unpaired_and_rejects_different_references():
    records = _records(HYPS_BAD)
    result = compare_records(records[:4], records, n_resamples=50)
    assert result["paired_utterances"] == 4 and result["unpaired"] == 2
    import dataclasses
    changed = [dataclasses.replace(records[0], ref="別の文")]
    with pytest.raises(ValueError, match="reference differs"):
        compare_records(changed, records, n_resamples=50)


def test_plots_are_written(tmp_path):
    before, after = _records(HYPS_BAD), _records(REFS)
    report = build_report(after, meta={"label": "after"}, n_resamples=50)
    assert plot_groups(report, tmp_path) == ["cer_by_group.png"]
    comparison = compare_records(after, before, n_resamples=50)
    assert plot_before_after(comparison, tmp_path) == ["cer_before_after.png"]
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5, "val_cer": 0.2}]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert plot_training_curves(run, tmp_path) == ["training_curves.png"]
    assert plot_training_curves(tmp_path / "missing", tmp_path) == []
    for name in ("cer_by_group.png", "cer_before_after.png", "training_curves.png"):
        assert_drawn_png(tmp_path / name)
    # The picture follows the data: other numbers, other pixels.
    other = tmp_path / "other"
    other.mkdir()
    plot_groups(build_report(before, meta={"label": "before"}, n_resamples=50), other)
    assert not np.array_equal(imread(other / "cer_by_group.png"),
                              imread(tmp_path / "cer_by_group.png"))


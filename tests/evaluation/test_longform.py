"""evaluate --suite longform: the scores, and the side-by-side report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.data.manifest import Utterance
from whisper_ja.data.timestamps import TimedText
from whisper_ja.evaluation.longform import boundary_matches, run_longform_suite, score_file
from whisper_ja.inference.timestamps import Segment

REFERENCE = Utterance(
    "long-0", "x.wav", "今日は晴れです。駅まで歩きます。また明日。", 20.0, "synthetic-longform",
    extra={"noise": [[12.0, 15.0]]},
    segments=(TimedText(0.5, 3.0, "今日は晴れです。"), TimedText(4.0, 7.0, "駅まで歩きます。"),
              TimedText(16.0, 18.0, "また明日。")))


def test_boundary_matches_are_one_to_one_and_nearest_first():
    assert boundary_matches([1.0, 2.0], [1.1, 1.2, 5.0], 1.0) == [(0, 0), (1, 1)]
    assert boundary_matches([1.0, 2.0], [1.1, 1.2, 5.0], 0.5) == [(0, 0)]
    assert boundary_matches([1.0], [], 0.5) == []


def test_a_perfect_transcript_scores_perfectly():
    hyp = [Segment(s.start, s.end, s.text) for s in REFERENCE.segments]
    score = score_file(REFERENCE, hyp)
    assert score.counts.errors == 0 and score.matched == 3
    assert score.start_errors_ms == (0.0, 0.0, 0.0) and score.chars_over_noise == 0


def test_hallucination_over_noise_and_deletions_are_counted():
    hyp = [Segment(0.7, 3.1, "今日は晴れです。"),
           Segment(12.2, 14.8, "ご視聴ありがとうございました"), Segment(16.0, 18.0, "また明日。")]
    score = score_file(REFERENCE, hyp)
    assert score.chars_over_noise == len("ご視聴ありがとうございました")
    assert score.chars_over_nonspeech == score.chars_over_noise
    lost = score.counts.deletions + score.counts.substitutions  # the stock phrase aligns there
    assert lost >= len("駅まで歩きます") - 1
    assert score.matched == 2 and sorted(score.start_errors_ms) == pytest.approx([0.0, 200.0])


def test_suite_writes_a_side_by_side_report(tmp_path):
    audio = tmp_path / "x.wav"
    sf.write(audio, np.zeros(16000, np.float32), 16000)
    utt = Utterance(**{**REFERENCE.__dict__, "audio": str(audio)})
    good = [Segment(s.start, s.end, s.text) for s in REFERENCE.segments]
    systems = {"untouched": lambda _: good[:1], "fine-tuned": lambda _: good}
    data = run_longform_suite([utt] * 3, systems, tmp_path / "out", n_resamples=50)
    assert data["systems"]["fine-tuned"]["boundary_f1"] == 1.0
    assert data["systems"]["untouched"]["deletion_rate"] > 0.5
    assert data["comparison"]["cer"]["delta"] < 0
    assert "SYNTHETIC" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    lines = (tmp_path / "out" / "hypotheses_longform.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 6 and json.loads(lines[1])["system"] == "fine-tuned"


def test_longform_and_guard_settings_reach_the_decoder(tmp_path, tiny_whisper_dir, monkeypatch):
    from whisper_ja.config import load_config
    from whisper_ja.evaluation import longform
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate

    audio = tmp_path / "x.wav"
    sf.write(audio, np.zeros(16000, np.float32), 16000)
    manifest = tmp_path / "long.jsonl"
    manifest.write_text(Utterance(**{**REFERENCE.__dict__, "audio": str(audio)}).to_json() + "\n",
                        encoding="utf-8")
    seen = []

    def recording(audio, model, processor, options, decode, *args):
        seen.append((options, decode))
        return [Segment(s.start, s.end, s.text) for s in REFERENCE.segments]

    monkeypatch.setattr(longform, "transcribe_segments", recording)
    config = load_config(EvaluateConfig, base={
        "suite": "longform", "manifest": str(manifest), "model": str(tiny_whisper_dir),
        "out": str(tmp_path / "out"), "bootstrap": 20, "progress": False},
        overrides=["longform.mode=batched", "longform.vad=false", "guards.fallback=false"])
    evaluate(config)
    assert seen and all(o.mode == "batched" and not o.vad for o, _ in seen)
    assert all(not d.guards.fallback for _, d in seen)


def test_longform_suite_runs_through_ct2_on_an_export(tmp_path, tiny_whisper_dir, monkeypatch):
    from whisper_ja.config import load_config
    from whisper_ja.evaluation import longform
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
    from whisper_ja.export.writer import ExportConfig, export_model

    ct2 = tmp_path / "ct2"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=ct2,
                              quantization="int8"))
    audio = tmp_path / "x.wav"
    rng = np.random.default_rng(0)
    sf.write(audio, (0.1 * rng.standard_normal(6 * 16000)).astype(np.float32), 16000)
    manifest = tmp_path / "long.jsonl"
    manifest.write_text(Utterance(**{**REFERENCE.__dict__, "audio": str(audio)}).to_json() + "\n",
                        encoding="utf-8")

    def transformers(*args):
        raise AssertionError("backend ct2 must not run the transformers path")

    monkeypatch.setattr(longform, "transcribe_segments", transformers)
    config = load_config(EvaluateConfig, base={
        "suite": "longform", "manifest": str(manifest), "model": str(ct2), "backend": "ct2",
        "compute_type": "default", "max_new_tokens": 6, "out": str(tmp_path / "out"),
        "bootstrap": 20, "progress": False},
        overrides=["longform.mode=batched", "longform.vad=false"])
    data = evaluate(config).data
    assert list(data["systems"]) == [str(ct2)] and data["systems"][str(ct2)]["segments"] >= 1
    line = json.loads((tmp_path / "out" / "hypotheses_longform.jsonl").read_text("utf-8"))
    assert line["segments"] and all(0.0 <= s["start"] <= s["end"] for s in line["segments"])


def test_backend_ct2_refuses_what_it_cannot_do_by_name():
    from pathlib import Path

    from whisper_ja.config import ConfigError
    from whisper_ja.evaluation.runner import EvaluateConfig

    with pytest.raises(ConfigError, match="backend: ct2 runs suites ja and longform"):
        EvaluateConfig(backend="ct2", suite="retention")
    with pytest.raises(ConfigError, match="adapter: not supported with backend ct2"):
        EvaluateConfig(backend="ct2", suite="longform", adapter=Path("lora"))
    for flag in ("int8", "bf16"):
        with pytest.raises(ConfigError, match=f"{flag}: not supported with backend ct2"):
            EvaluateConfig(backend="ct2", **{flag: True})
    with pytest.raises(ConfigError, match="prompt_terms: not supported with backend ct2"):
        EvaluateConfig(backend="ct2", prompt_terms=Path("terms.txt"))
    assert EvaluateConfig(backend="ct2", suite="longform").backend == "ct2"
    assert EvaluateConfig(backend="ct2").suite == "ja"

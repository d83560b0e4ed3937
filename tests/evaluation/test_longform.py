"""evaluate --suite longform: the scores, and the side-by-side report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.data.manifest import Utterance
from whisper_ja.data.timestamps import TimedText
from whisper_ja.evaluation.longform import boundary_matches, run_longform_suite, score_file
from whisper_ja.inference.engine import Transcription
from whisper_ja.inference.longform import LongformStats
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

    def system(segments, lost_speech_s=0.0):
        return lambda _: Transcription(iter(segments), LongformStats(
            lost_windows=int(lost_speech_s > 0), lost_speech_s=lost_speech_s), 20.0)

    systems = {"untouched": system(good[:1], lost_speech_s=1.5), "fine-tuned": system(good)}
    data = run_longform_suite([utt] * 3, systems, tmp_path / "out", n_resamples=50)
    assert data["systems"]["fine-tuned"]["boundary_f1"] == 1.0
    assert data["systems"]["untouched"]["deletion_rate"] > 0.5
    # The speech each system's windows lost is summed over the files.
    assert data["systems"]["untouched"]["lost_speech_s"] == pytest.approx(4.5)
    assert data["systems"]["untouched"]["lost_windows"] == 3
    assert data["systems"]["fine-tuned"]["lost_speech_s"] == 0.0
    assert data["comparison"]["cer"]["delta"] < 0
    assert "SYNTHETIC" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    lines = (tmp_path / "out" / "hypotheses_longform.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 6 and json.loads(lines[1])["system"] == "fine-tuned"


def test_longform_and_guard_settings_reach_the_decoder(tmp_path, tiny_whisper_dir, monkeypatch):
    from whisper_ja.config import load_config
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
    from whisper_ja.inference import engine

    audio = tmp_path / "x.wav"
    sf.write(audio, np.zeros(16000, np.float32), 16000)
    manifest = tmp_path / "long.jsonl"
    manifest.write_text(Utterance(**{**REFERENCE.__dict__, "audio": str(audio)}).to_json() + "\n",
                        encoding="utf-8")
    seen = []

    def recording(backend, audio, options, **kwargs):
        seen.append(options)
        return iter([Segment(s.start, s.end, s.text) for s in REFERENCE.segments])

    # The engine's long-audio decoder: what `transcribe` runs on either backend.
    monkeypatch.setattr(engine, "long_audio_segments", recording)
    config = load_config(EvaluateConfig, base={
        "suite": "longform", "manifest": str(manifest), "model": str(tiny_whisper_dir),
        "out": str(tmp_path / "out"), "bootstrap": 20, "progress": False,
        "backend": "transformers", "max_new_tokens": 64},
        overrides=["longform.mode=batched", "longform.vad=false", "guards.fallback=false"])
    evaluate(config)
    assert seen and all(o.longform.mode == "batched" and not o.longform.vad for o in seen)
    assert all(not o.guards.fallback and o.max_new_tokens == 64 for o in seen)


def test_longform_suite_runs_through_ct2_on_an_export(tmp_path, tiny_whisper_dir, monkeypatch):
    from whisper_ja.config import load_config
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
    from whisper_ja.export.writer import ExportConfig, export_model
    from whisper_ja.inference import engine

    ct2 = tmp_path / "ct2"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=ct2,
                              quantization="int8"))
    audio = tmp_path / "x.wav"
    rng = np.random.default_rng(0)
    sf.write(audio, (0.1 * rng.standard_normal(6 * 16000)).astype(np.float32), 16000)
    manifest = tmp_path / "long.jsonl"
    manifest.write_text(Utterance(**{**REFERENCE.__dict__, "audio": str(audio)}).to_json() + "\n",
                        encoding="utf-8")

    def transformers(*args, **kwargs):
        raise AssertionError("backend ct2 must not load the transformers backend")

    monkeypatch.setattr(engine.HfBackend, "load", transformers)
    config = load_config(EvaluateConfig, base={
        "suite": "longform", "manifest": str(manifest), "model": str(ct2), "backend": "ct2",
        "compute_type": "default", "max_new_tokens": 6, "out": str(tmp_path / "out"),
        "bootstrap": 20, "progress": False},
        overrides=["longform.mode=batched", "longform.vad=false"])
    data = evaluate(config).data
    assert list(data["systems"]) == [str(ct2)] and data["systems"][str(ct2)]["segments"] >= 1
    line = json.loads((tmp_path / "out" / "hypotheses_longform.jsonl").read_text("utf-8"))
    assert line["segments"] and all(0.0 <= s["start"] <= s["end"] for s in line["segments"])


def test_backend_settings_are_refused_by_name_where_they_do_not_apply():
    from pathlib import Path

    from whisper_ja.config import ConfigError, load_config
    from whisper_ja.evaluation.runner import EvaluateConfig

    def config(**settings):
        return load_config(EvaluateConfig, base=settings)

    # A precision setting of the other backend is refused, naming the setting.
    with pytest.raises(ConfigError, match="dtype: 'bfloat16' is a transformers setting"):
        config(backend="ct2", dtype="bfloat16")
    with pytest.raises(ConfigError, match="compute_type: 'int8' is a CTranslate2 setting"):
        config(backend="transformers", compute_type="int8")
    with pytest.raises(ConfigError, match="unknown setting.*int8"):
        config(int8=True)  # evaluate --int8 / --bf16 are gone: compute_type / dtype
    # The engine runs every suite, adapters (merged into a cached conversion) and prompts on
    # CTranslate2: none of these is refused any more.
    for suite in ("ja", "retention", "longform"):
        assert config(backend="ct2", suite=suite, adapter="lora",
                      prompt_terms="terms.txt").runtime.backend == "ct2"
    assert EvaluateConfig().runtime.backend == "auto" and EvaluateConfig().suite == "ja"
    assert config(backend="ct2", suite="longform", adapter="lora").adapter == Path("lora")

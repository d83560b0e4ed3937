"""The demo pipeline: settings, resumable steps, the summary table, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from whisper_ja.commands.demo import DemoConfig, run
from whisper_ja.config import ConfigError
from whisper_ja.data.manifest import read_manifest
from whisper_ja.evaluation.before_after import format_rows, format_summary


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="unseen_voices"):
        DemoConfig(unseen_voices=("openjtalk:0",))
    with pytest.raises(ConfigError, match="test_voices"):
        DemoConfig(test_voices=())
    with pytest.raises(ConfigError, match="test_voices"):
        DemoConfig(voices=("openjtalk:0",), test_voices=("openjtalk:0",))
    with pytest.raises(ConfigError, match="utterances"):
        DemoConfig(utterances=130, test_seen_voices=80, validation=48)
    with pytest.raises(ConfigError, match="pack_seconds"):
        DemoConfig(pack_seconds=-1.0)
    with pytest.raises(ConfigError, match="timestamp_probability"):
        DemoConfig(timestamp_probability=1.5)


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_training_precision_reaches_train(tmp_path, monkeypatch, precision):
    from whisper_ja.commands import demo

    trained = []
    monkeypatch.setattr(demo, "train", trained.append)
    demo._train(DemoConfig(out=tmp_path, precision=precision))
    assert trained[0].precision == precision
    assert trained[0].gate.runtime.backend == "ct2"


@pytest.mark.parametrize("backend", ["ct2", "transformers"])
def test_evaluations_decode_on_the_chosen_backend(tmp_path, monkeypatch, backend):
    from whisper_ja.commands import demo

    evaluated = []
    monkeypatch.setattr(demo, "evaluate", evaluated.append)
    monkeypatch.setattr(demo.make_longform_command, "run", lambda settings: None)
    config = DemoConfig(out=tmp_path, backend=backend)
    adapter = tmp_path / "train"
    adapter.mkdir()
    demo._evaluate(config, "eval_before")
    demo._evaluate(config, "eval_after", adapter)
    demo._evaluate_longform(config, adapter)
    before, after, longform = evaluated
    assert {e.runtime.backend for e in evaluated} == {backend}
    # Every step names the model and its adapter; on ct2 the engine decodes their cached
    # conversion (adapter merged), float32: transformers' transcripts to float rounding.
    assert {e.runtime.compute_type for e in evaluated} == {
        "float32" if backend == "ct2" else "auto"}
    assert before.model == after.model == longform.model == config.model
    assert before.adapter is None and after.adapter == longform.adapter == adapter
    assert longform.suite == "longform" and longform.baseline == config.model
    assert before.runtime.context == "dynamic" and after.runtime.context == "auto"
    assert after.compare == tmp_path / "eval_before"
    assert before.decoding.batch_size == after.decoding.batch_size == config.eval_batch_size
    assert after.decoding.max_new_tokens == config.max_new_tokens


def _overall(cer, low, high, looped=0):
    entry = {"rate": cer, "low": low, "high": high}
    return {"utterances": 160, "audio_seconds": 480.0, "looped": looped,
            "cer": entry, "wer": entry, "reading_cer": entry}


def test_summary_table_shows_measured_numbers(tmp_path):
    before = {"label": "whisper-base (untouched)", "overall": _overall(0.17, 0.15, 0.19, 2),
              "rtf": 0.31, "context": "full (30 s)"}
    after = {"label": "whisper-base + LoRA", "overall": _overall(0.13, 0.11, 0.15),
             "rtf": 0.2, "context": "dynamic", "plots": ["cer_before_after.png"],
             "comparison": {"n_resamples": 1000, "paired_utterances": 160, "metrics": {
                 "cer": {"delta": -0.04, "low": -0.05, "high": -0.03, "significant": True}},
                 "by_speaker": {"kokoro-jf_alpha": {"other": 0.2, "this": 0.19},
                                "openjtalk-mei": {"other": 0.15, "this": 0.1}}}}
    text = format_summary(before, after, out=tmp_path, held_out=["kokoro-jf_alpha"],
                          seconds={"train": 120.0, "synthesize": 60.0},
                          machine="AMD EPYC, 2 CPU cores")
    assert "SYNTHETIC" in text
    assert "Step times: train 120 s, synthesize 60 s; total 3.0 min" in text
    assert "Machine: AMD EPYC, 2 CPU cores." in text
    assert "| CER | 17.00 | 15.00–19.00 | 13.00 | 11.00–15.00 |" in text
    assert "-4.00 points, 95% CI -5.00 to -3.00" in text and ": significant." in text
    assert "kokoro-jf_alpha" in text and "untouched 2, fine-tuned 0" in text
    assert str(tmp_path / "eval_after" / "cer_before_after.png") in text
    assert "| kokoro-jf_alpha | no (held out) | 20.00 | 19.00 |" in text
    assert "| openjtalk-mei | yes | 15.00 | 10.00 |" in text


def test_rows_show_the_kept_checkpoints_drifts():
    before = {"overall": _overall(0.1667, 0.13, 0.20)}
    after = {"overall": _overall(0.1016, 0.08, 0.13),
             "comparison": {"metrics": {"cer": {"low": -0.0871, "high": -0.0407}}}}

    def drift(check, untouched, value, low, high, loops=0):
        return {"check": check, "untouched": untouched, "value": value, "low": low,
                "high": high, "loops": loops, "loops_untouched": 0}

    kept = [drift("unseen_cer", 0.2074, 0.1943, -0.05, 0.0235, loops=1),
            drift("english_wer", 0.07, 0.0467, -0.0778, 0.023),
            drift("language_id", 0.0, 0.0, 0.0, 0.0)]
    summary = {"best_step": 80, "gate_sets": {"unseen": 30, "retention": 30},
               "gate_validations": [{"step": 40, "drifts": []},
                                    {"step": 80, "drifts": kept}]}
    rows = format_rows(before, after, summary)
    assert rows[2] == "| test split (160 utt.) | CER | 16.67 | 10.16 | -6.51 (-8.71 to -4.07) |"
    assert rows[3] == ("| unseen-domain check (30 utt., loops 0 → 1) | CER | 20.74 | 19.43 | "
                       "-1.31 (-5.00 to +2.35) |")
    assert rows[4].startswith("| English retention (30 clips) | WER, English forced | 7.00 | 4.67")
    # Accuracy is shown from the stored error rate: no "-0.00" for an unchanged 100%.
    assert rows[5] == ("| English retention | language-ID accuracy | 100.00 | 100.00 | "
                       "+0.00 (+0.00 to +0.00) |")
    assert len(format_rows(before, after, {})) == 3  # no gate: the test split only


@pytest.mark.slow
def test_tiny_demo_runs_end_to_end_and_resumes(tmp_path, tiny_whisper, capsys, monkeypatch):
    from whisper_ja.inference import ct2_cache

    cache = tmp_path / "cache"  # this run's CTranslate2 conversions only
    monkeypatch.setattr(ct2_cache, "cache_dir", lambda: cache)
    model_dir = tmp_path / "tiny"
    tiny_whisper.model.save_pretrained(model_dir)
    tiny_whisper.processor.save_pretrained(model_dir)
    config = DemoConfig(model=str(model_dir), out=tmp_path / "demo", utterances=24,
                        voices=("openjtalk:-2", "openjtalk:+2"), test_voices=("openjtalk:0",),
                        test_voice_utterances=4, test_seen_voices=4, validation=2, steps=2,
                        batch_size=4, validate_every=2, eval_batch_size=8, bootstrap=50,
                        max_new_tokens=8, unseen=2, unseen_voices=("openjtalk:+3",),
                        english_clips=4, retention=2, progress=False)
    assert run(config) == 0
    out = tmp_path / "demo"
    train = {u.text for u in read_manifest(out / "split" / "train.jsonl")}
    test = read_manifest(out / "split" / "test.jsonl")
    assert not train & {u.text for u in test}  # no test sentence is trained on
    assert {u.speaker for u in test} >= {"openjtalk-mei"}  # the held-out voice is tested
    train_speakers = {u.speaker for u in read_manifest(out / "split" / "train.jsonl")}
    assert "openjtalk-mei" not in train_speakers
    # Training ran on the joined recordings: every training clip once, sentence times kept.
    packed = read_manifest(out / "split_packed" / "manifest.jsonl")
    assert sorted(s for r in packed for s in r.extra["sources"]) == sorted(
        u.id for u in read_manifest(out / "split" / "train.jsonl"))
    assert all(len(r.segments) == len(r.extra["sources"]) for r in packed)
    assert any(len(r.segments) > 1 for r in packed)
    # A share of the clips is joined into recordings of up to long_seconds instead (whole
    # 30 s windows stay in training); the rest into recordings of up to pack_seconds.
    assert all(r.duration <= (config.long_seconds if r.id.startswith("long-")
                              else config.pack_seconds) or len(r.segments) == 1 for r in packed)
    assert any(r.id.startswith("long-") for r in packed)
    english = read_manifest(out / "english_train_packed" / "manifest.jsonl")
    assert {r.language() for r in english} == {"en"}
    trained = (out / "train" / "config.yaml").read_text("utf-8")
    assert "split_packed" in trained and "timestamp_probability: 0.5" in trained
    after = json.loads((out / "eval_after" / "report.json").read_text("utf-8"))
    assert after["comparison"]["paired_utterances"] == len(test)
    # Decoded as deployed: float32 CTranslate2 conversions of the model and of the model with
    # its adapter merged, cached; the long-audio step decodes the same two conversions.
    assert "CTranslate2 float32" in after["decoding"]
    assert after["model"] == f"{model_dir} + {out / 'train'}, CTranslate2 float32"
    index = json.loads((cache / "ct2" / "index.json").read_text("utf-8"))
    assert len(index) == 2  # the model alone, and with its adapter
    # Converted once per weights (one folder when the kept adapter is the untouched model's).
    assert {p.parent.name for p in (cache / "ct2").glob("*/model.bin")} == set(index.values())
    longform = json.loads((out / "eval_longform" / "report.json").read_text("utf-8"))
    assert set(longform["systems"]) == {"untouched", "fine-tuned"}
    joined = read_manifest(out / "longform" / "manifest.jsonl")
    assert {s for r in joined for s in r.extra["sources"]} <= {u.id for u in test}
    summary = (out / "demo_summary.md").read_text("utf-8")
    assert f"{100 * after['overall']['cer']['rate']:.2f}" in summary
    # Three rows before and after, and the gate's verdict.
    for row in ("| test split", "| unseen-domain check", "| English retention", "| long audio",
                "windows with well-formed timestamps"):
        assert row in summary
    assert "versatility gate" in summary
    unseen = read_manifest(out / "unseen" / "manifest.jsonl")
    assert not train & {u.text for u in unseen}
    assert not train_speakers & {u.speaker for u in unseen}
    capsys.readouterr()

    assert run(config) == 0  # every step is found finished and skipped
    assert capsys.readouterr().out.count("already done") == 7
    with pytest.raises(ConfigError, match="steps"):
        run(DemoConfig(**{**config.__dict__, "steps": 3}))

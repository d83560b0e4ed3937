"""Distillation (``whisper-ja distill``) on the tiny random Whisper: layers, loss, filter, e2e."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.config import ConfigError
from whisper_ja.training.distill import (
    IGNORE,
    DistillConfig,
    DistillLoss,
    distill_loss,
    filter_pseudo_labels,
)
from whisper_ja.training.student import make_student, spaced_layers


def test_spaced_layers_keep_first_and_last_and_spread_the_rest():
    assert spaced_layers(32, 2) == (0, 31)  # kotoba-whisper / distil-large-v3
    assert spaced_layers(6, 2) == (0, 5)
    assert spaced_layers(6, 4) == (0, 2, 3, 5)
    assert spaced_layers(4, 4) == (0, 1, 2, 3)
    assert spaced_layers(6, 1) == (5,)
    for bad in (0, 7):
        with pytest.raises(ConfigError, match="decoder_layers"):
            spaced_layers(6, bad)


def test_student_copies_the_chosen_layers_exactly_and_freezes_the_encoder(tiny_whisper):
    teacher = tiny_whisper.model
    student, layers = make_student(teacher, 2)
    assert layers == (0, 3) and student.config.decoder_layers == 2
    assert teacher.config.decoder_layers == 4  # the teacher is untouched
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for j, i in enumerate(layers):
        prefix = f"model.decoder.layers.{j}."
        names = [n for n in s_state if n.startswith(prefix)]
        assert names
        for name in names:
            source = name.replace(prefix, f"model.decoder.layers.{i}.")
            assert torch.equal(s_state[name], t_state[source]), name
    for name in ("model.encoder.layers.3.fc2.weight", "model.decoder.embed_tokens.weight",
                 "model.decoder.layer_norm.bias", "model.decoder.embed_positions.weight"):
        assert torch.equal(s_state[name], t_state[name])
    assert not any(p.requires_grad for p in student.get_encoder().parameters())
    assert all(p.requires_grad for p in student.get_decoder().parameters())
    # Keeping every layer gives the teacher back, logit for logit.
    full, _ = make_student(teacher, 4)
    features = torch.randn(1, 80, 3000)
    ids = torch.tensor([[50258, 50266, 50359, 50363, 100, 200]])
    with torch.no_grad():
        assert torch.equal(full(features, decoder_input_ids=ids).logits,
                           teacher(features, decoder_input_ids=ids).logits)


def test_loss_is_weighted_ce_plus_tempered_kl_over_unmasked_tokens():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 11), torch.randn(2, 3, 11)
    targets = torch.tensor([[IGNORE, 4, 7], [2, 9, IGNORE]])
    weights = DistillLoss(ce_weight=0.8, kl_weight=1.0, temperature=2.0)
    parts = distill_loss(student, teacher, targets, weights)
    mask = targets != IGNORE
    s, t = student[mask], teacher[mask]
    ce = -torch.log_softmax(s, -1).gather(1, targets[mask][:, None]).mean()
    p_t = torch.softmax(t / 2, -1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    assert torch.allclose(parts.ce, ce) and torch.allclose(parts.kl, kl)
    assert torch.allclose(parts.total, 0.8 * ce + 1.0 * kl)
    # Ignored positions count in neither term; a student equal to its teacher has no KL.
    changed = student.clone()
    changed[0, 0] += 5.0
    assert torch.allclose(distill_loss(changed, teacher, targets, weights).total, parts.total)
    same = distill_loss(teacher, teacher, targets, weights)
    assert float(same.kl) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="temperature"):
        DistillLoss(temperature=0)


def test_filter_drops_high_error_looped_and_empty_labels_and_counts_them():
    refs = ["今日は晴れです", "駅はどこですか", "本を読みます", "水をください", "猫が好き"]
    hyps = ["今日は晴れです", "駅はどこ", "ほんほんほんほん", "", "猫が好きです"]
    looped = [False, False, True, False, False]
    kept, counts = filter_pseudo_labels(refs, hyps, looped, max_cer=0.3)
    # CERs: 0, 3/7 = 0.43 (dropped), looped, empty, 2/4 = 0.5 (dropped)
    assert kept == [0]
    assert counts == {"pseudo_labels": 5, "kept": 1, "dropped_empty": 1, "dropped_looped": 1,
                      "dropped_high_error": 2}
    kept, counts = filter_pseudo_labels(refs, hyps, looped, max_cer=0.5)
    assert kept == [0, 1, 4] and counts["dropped_high_error"] == 0


def test_distilled_student_saves_reloads_decodes_and_exports(tiny_whisper_dir, clips_manifest,
                                                             tmp_path, monkeypatch):
    from whisper_ja.export.writer import ExportConfig, export_model
    from whisper_ja.inference.engine import load_engine
    from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
    from whisper_ja.model import load_model
    from whisper_ja.model.context import uses_dynamic_context
    from whisper_ja.model.record import recorded_policy
    from whisper_ja.training import distill as distill_module
    from whisper_ja.training import distill_data

    # A random teacher's text repeats itself and has nothing to do with the references: let
    # every label through (the filter has its own test), so the student has something to learn.
    monkeypatch.setattr(distill_data, "looped_label", lambda ids, limit: False)
    out = tmp_path / "student"
    config = DistillConfig(train=clips_manifest, out=out, teacher=str(tiny_whisper_dir),
                           decoder_layers=1, max_label_cer=1e9, epochs=2, batch_size=2,
                           lr=1e-3, max_new_tokens=6, precision="fp32", progress=False)
    report = distill_module.distill(config)
    assert report["student_layers_from_teacher"] == [3]
    assert report["pseudo_labels"]["kept"] == 4 and report["steps"] == 4
    assert json.loads((out / "distill_report.json").read_text())["steps"] == 4
    assert len((out / "log.jsonl").read_text().splitlines()) == 4
    trained = load_model(out)
    assert trained.model.config.decoder_layers == 1
    assert uses_dynamic_context(trained.model)  # trained at 8 s context, decoded the same way
    assert recorded_policy(out).min_frames == 800
    teacher_layer = load_model(tiny_whisper_dir).model.state_dict()[
        "model.decoder.layers.3.fc1.weight"]
    assert not torch.equal(trained.model.state_dict()["model.decoder.layers.0.fc1.weight"],
                           teacher_layer)  # it was trained
    clip = [(0.1 * np.random.default_rng(0).standard_normal(16000 * 2)).astype(np.float32)]
    options = DecodingOptions(max_new_tokens=6, no_speech_threshold=None)
    student = load_engine(str(out), None, RuntimeSettings(backend="transformers"), options)
    assert student.context == "dynamic (batch's longest clip, 8 s floor)"
    assert student.decode_clips(clip)[0].text
    ct2 = tmp_path / "student-ct2"
    export_model(ExportConfig(model=str(out), to="ct2", out=ct2, quantization="int8"))
    assert recorded_policy(ct2).dynamic
    exported = load_engine(str(ct2), None, RuntimeSettings(backend="ct2"), options)
    assert exported.context == student.context
    assert exported.decode_clips(clip)[0].text


def test_distill_names_an_empty_or_missing_manifest(tmp_path):
    from whisper_ja.training.distill import distill

    with pytest.raises(ConfigError, match="does not exist"):
        distill(DistillConfig(train=tmp_path / "none.jsonl", out=tmp_path / "o"))
    with pytest.raises(ConfigError, match="epochs"):
        DistillConfig(train=tmp_path / "x.jsonl", epochs=0)


def test_decoding_with_shared_encoder_output_matches_full_forward(tiny_whisper):
    # Distillation feeds one encoder output to teacher and student; that must be what each
    # would compute itself (the student's encoder is the teacher's, frozen).
    teacher = tiny_whisper.model
    student, _ = make_student(teacher, 2)
    features = torch.randn(1, 80, 3000)
    ids = torch.tensor([[50258, 50266, 50359, 50363]])
    with torch.no_grad():
        hidden = teacher.get_encoder()(features).last_hidden_state
        shared = student(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                         decoder_input_ids=ids).logits
        own = student(features, decoder_input_ids=ids).logits
    assert torch.equal(shared, own)


def test_batch_order_shuffles_each_epoch_and_resumes_where_it_stopped():
    from whisper_ja.training.distill_train import batch_order

    full = list(batch_order(5, 12, seed=3))
    assert sorted(full[:5]) == sorted(full[5:10]) == list(range(5))  # every epoch: each once
    assert full[:5] != full[5:10]  # reshuffled (seeded per epoch)
    assert full == list(batch_order(5, 12, seed=3))
    for start in (1, 5, 7):  # a resumed run takes exactly the batches the whole run would
        assert list(batch_order(5, 12, seed=3, start=start)) == full[start:]
    assert list(batch_order(5, 12, seed=4)) != full


def test_freezing_token_embeddings_freezes_the_tied_output_layer(tiny_whisper):
    from whisper_ja.training.student import freeze_token_embeddings

    student, _ = make_student(tiny_whisper.model, 2)
    before = sum(p.numel() for p in student.parameters() if p.requires_grad)
    after = freeze_token_embeddings(student)
    assert after == before - student.get_decoder().embed_tokens.weight.numel()
    assert not student.get_output_embeddings().weight.requires_grad
    assert student.get_decoder().layers[0].fc1.weight.requires_grad


def _small_run(manifest, teacher, out, **changes):
    base = {"train": manifest, "out": out, "teacher": str(teacher), "decoder_layers": 1,
            "max_label_cer": 1e9, "steps": 6, "batch_size": 2, "lr": 1e-3, "warmup": 0.34,
            "max_new_tokens": 6, "precision": "fp32", "checkpoint_every": 2,
            "progress": False}
    return DistillConfig(**{**base, **changes})


def test_distill_resumes_from_its_checkpoint_and_cache_like_an_uninterrupted_run(
        tiny_whisper_dir, clips_manifest, tmp_path, monkeypatch):
    from whisper_ja.model import load_model
    from whisper_ja.training import distill_data, distill_train
    from whisper_ja.training.distill import distill

    monkeypatch.setattr(distill_data, "looped_label", lambda ids, limit: False)
    whole = distill(_small_run(clips_manifest, tiny_whisper_dir, tmp_path / "whole"))
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "whole" / "log.jsonl").open())]
    # warm-up over 2 of 6 steps, then a linear decay to 0 at the last step
    assert lrs[0] < lrs[1] == pytest.approx(1e-3) and lrs[1] > lrs[3] > lrs[-1] == 0.0

    save = distill_train._save_checkpoint

    def save_then_die(path, student, optimizer, scheduler, step, *rest):
        save(path, student, optimizer, scheduler, step, *rest)
        if step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(distill_train, "_save_checkpoint", save_then_die)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        distill(_small_run(clips_manifest, tiny_whisper_dir, out))
    monkeypatch.setattr(distill_train, "_save_checkpoint", save)

    def no_labelling(*args, **kwargs):
        raise AssertionError("the cached batches should have been reused")

    monkeypatch.setattr(distill_data, "_label_batch", no_labelling)
    resumed = distill(_small_run(clips_manifest, tiny_whisper_dir, out))
    assert resumed["steps"] == whole["steps"] == 6
    log = [json.loads(line) for line in (out / "log.jsonl").open()]
    whole_log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").open()]
    assert [r["step"] for r in log] == list(range(1, 7))
    for mine, theirs in zip(log, whole_log, strict=True):
        assert mine["lr"] == pytest.approx(theirs["lr"])
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    a = load_model(tmp_path / "whole").model.state_dict()
    b = load_model(out).model.state_dict()
    assert all(torch.allclose(a[n], b[n], atol=1e-5) for n in a)

    # A checkpoint made with other settings is refused, naming them.
    with pytest.raises(ConfigError, match="lr"):
        distill(_small_run(clips_manifest, tiny_whisper_dir, out, lr=5e-4))


def test_students_of_one_teacher_share_a_cache(tiny_whisper_dir, clips_manifest, tmp_path,
                                               monkeypatch):
    from whisper_ja.training import distill_data
    from whisper_ja.training.distill import distill

    monkeypatch.setattr(distill_data, "looped_label", lambda ids, limit: False)
    shared = tmp_path / "cache"
    distill(_small_run(clips_manifest, tiny_whisper_dir, tmp_path / "two", cache=shared,
                       decoder_layers=2))
    assert list(shared.glob("batch-*.pt")) and not (tmp_path / "two" / "cache").exists()

    def no_labelling(*args, **kwargs):
        raise AssertionError("the shared cache should have been reused")

    monkeypatch.setattr(distill_data, "_label_batch", no_labelling)
    report = distill(_small_run(clips_manifest, tiny_whisper_dir, tmp_path / "one",
                                cache=shared, decoder_layers=1))
    assert len(report["student_layers_from_teacher"]) == 1  # another student, same cache


def test_distill_trains_on_the_pseudo_label_commands_labels_without_decoding(
        tiny_whisper_dir, clips_manifest, tmp_path, monkeypatch):
    from transformers import WhisperForConditionalGeneration

    from whisper_ja.config import ConfigError
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.training.distill import distill
    from whisper_ja.training.pseudo_label import pseudo_record

    utts = read_manifest(clips_manifest)
    labels = tmp_path / "labels.jsonl"  # as `whisper-ja pseudo-label` writes it
    labels.write_text("".join(pseudo_record(u, u.text if i else "全く別の文です", "t") + "\n"
                              for i, u in enumerate(utts)), encoding="utf-8")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the labels are given: the teacher must not decode")

    monkeypatch.setattr(WhisperForConditionalGeneration, "generate", no_decoding)
    report = distill(_small_run(labels, tiny_whisper_dir, tmp_path / "out", labels="manifest",
                                max_label_cer=0.5, steps=2, max_new_tokens=64))
    assert report["pseudo_labels"]["kept"] == len(utts) - 1
    assert report["pseudo_labels"]["dropped_high_error"] == 1
    with pytest.raises(ConfigError, match="labels: manifest needs"):
        distill(_small_run(clips_manifest, tiny_whisper_dir, tmp_path / "plain",
                           labels="manifest"))

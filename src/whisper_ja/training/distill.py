"""``whisper-ja distill``: a shallow-decoder student trained on its teacher's pseudo-labels.

The distil-whisper / kotoba-whisper recipe, for any whisper-ja teacher (a base model, with an
optional LoRA adapter merged in):

1. the teacher transcribes the training clips (greedy, Japanese forced, at its context policy);
2. pseudo-labels are filtered by their CER against the reference transcript: looped, empty and
   high-error labels are dropped, each kind counted in the report (distil-whisper drops labels
   above 10 % WER; whisper-base's Japanese errors are mostly kanji choices, hence a CER limit);
3. the student (:func:`whisper_ja.training.student.make_student`: the encoder and maximally
   spaced decoder layers copied, encoder frozen) is trained on the kept pseudo-labels with
   ``ce_weight * CE + kl_weight * T^2 * KL(teacher_T || student_T)`` (distil-whisper: 0.8, 1.0,
   T = 2).

The encoder is frozen and identical in teacher and student, so each fixed length-sorted batch
is encoded once and its output shared by pseudo-labelling, the teacher's soft targets and every
step of student training (:mod:`whisper_ja.training.distill_data`, cached on disk); training
steps run decoders only, under bf16 autocast where the CPU has it, with a warm-up and decaying
learning rate and resumable checkpoints (:mod:`whisper_ja.training.distill_train`). The output
folder is a plain transformers model folder with ``whisper_ja.json`` (its context policy), so
``evaluate``, ``transcribe`` and ``export`` take it like any model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.io import load_audio
from whisper_ja.config import ConfigError, save_config
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.model import load_model
from whisper_ja.model.context import enable_dynamic_context
from whisper_ja.model.record import ModelRecord, recorded_policy, write_record
from whisper_ja.model.tokens import special_tokens
from whisper_ja.text.metrics import utterance_counts
from whisper_ja.training.distill_data import encode_and_label
from whisper_ja.training.distill_settings import DistillConfig, DistillLoss
from whisper_ja.training.distill_train import (
    CHECKPOINT,
    IGNORE,
    LossParts,
    distill_loss,
    train_student,
)
from whisper_ja.training.settings import resolve_precision
from whisper_ja.training.student import freeze_token_embeddings, make_student

__all__ = ["IGNORE", "DistillConfig", "DistillLoss", "LossParts", "distill", "distill_loss",
           "filter_pseudo_labels"]

log = logging.getLogger(__name__)


def _ready_labels(utts: list[Utterance], config: DistillConfig
                  ) -> tuple[list[str] | None, list[str]]:
    """``labels: manifest``: the rows' texts as pseudo-labels, and their references.

    Raises:
        ConfigError: naming ``labels`` when a row was not written by ``pseudo-label``.
    """
    if config.labels == "decode":
        return None, [u.text for u in utts]
    missing = [u.id for u in utts if not isinstance(u.extra.get("reference_text"), str)]
    if missing:
        raise ConfigError(f"labels: manifest needs the rows `whisper-ja pseudo-label` writes "
                          f"(extra.reference_text); {config.train} has {len(missing)} without, "
                          f"first {missing[0]!r}")
    return [u.text for u in utts], [str(u.extra["reference_text"]) for u in utts]


def filter_pseudo_labels(refs: list[str], hyps: list[str], looped: list[bool],
                         max_cer: float, normalizer: str = "default",
                         ) -> tuple[list[int], dict[str, int]]:
    """Indices of the pseudo-labels to train on, and how many of each kind were dropped.

    A label is dropped when it is empty, looped, or its CER against the reference is above
    ``max_cer``.
    """
    counts = utterance_counts(refs, hyps, "cer", normalizer)  # type: ignore[arg-type]
    kept: list[int] = []
    report = {"pseudo_labels": len(hyps), "kept": 0, "dropped_empty": 0, "dropped_looped": 0,
              "dropped_high_error": 0}
    for i, (hyp, loop, errors) in enumerate(zip(hyps, looped, counts, strict=True)):
        reason = ("dropped_empty" if not hyp.strip() else "dropped_looped" if loop
                  else "dropped_high_error" if errors.rate > max_cer else None)
        if reason is None:
            kept.append(i)
        else:
            report[reason] += 1
    report["kept"] = len(kept)
    return kept, report


def _teacher(config: DistillConfig) -> tuple[Any, Any, ContextPolicy]:
    """The teacher with its adapter merged, its processor and the policy to run it with."""
    loaded = load_model(config.teacher, adapter=config.adapter)
    model = loaded.model.merge_and_unload() if hasattr(loaded.model, "merge_and_unload") \
        else loaded.model
    folders = [f for f in (config.adapter, Path(config.teacher)) if f is not None and f.is_dir()]
    policy = next((p for f in folders if (p := recorded_policy(f)) is not None), config.context)
    if policy.dynamic:
        enable_dynamic_context(model)
    return model.eval(), loaded.processor, policy


def _save(student: Any, processor: Any, policy: ContextPolicy, config: DistillConfig,
          report: dict[str, Any]) -> None:
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    student.eval().save_pretrained(out)
    processor.save_pretrained(out)
    processor.feature_extractor.save_pretrained(out)  # transformers 5 writes only processor_config
    write_record(out, ModelRecord(policy=policy, mode="distilled", extra={
        "teacher": config.teacher, "adapter": str(config.adapter) if config.adapter else None}))
    (out / "distill_report.json").write_text(json.dumps(report, indent=2) + "\n",
                                             encoding="utf-8")
    save_config(config, out / "distill_config.yaml")


def distill(config: DistillConfig) -> dict[str, Any]:
    """Pseudo-label, filter, train and save a student as ``config`` says.

    Returns:
        The report written to ``out/distill_report.json`` (pseudo-label counts, hours of audio,
        teacher layers kept, steps, first and last losses, seconds of labelling and training).

    Raises:
        ConfigError: the manifest is missing or empty, ``label_ct2`` is no export, no
            pseudo-label survives the filter, or ``OUT/checkpoint.pt`` was made with other
            settings.
        whisper_ja.audio.io.AudioError: an audio file cannot be read (names the file).
    """
    if not config.train.is_file():
        raise ConfigError(f"train: manifest {config.train} does not exist")
    if config.label_ct2 is not None and not (config.label_ct2 / "model.bin").is_file():
        raise ConfigError(f"label_ct2: {config.label_ct2} is not a CTranslate2 export "
                          "(no model.bin); make one with `whisper-ja export --to ct2`")
    utts = read_manifest(config.train)[:config.limit or None]
    if not utts:
        raise ConfigError(f"train: {config.train} holds no utterances")
    began = time.perf_counter()
    precision = resolve_precision(config.precision)
    config.out.mkdir(parents=True, exist_ok=True)  # checkpoints land here (the cache may not)
    if not config.resume:
        (config.out / CHECKPOINT).unlink(missing_ok=True)
    teacher, processor, policy = _teacher(config)
    student, layers = make_student(teacher, config.decoder_layers)
    if not config.train_embeddings:
        freeze_token_embeddings(student)
    audios = [load_audio(utt.audio) for utt in utts]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    given, references = _ready_labels(utts, config)
    data = encode_and_label(teacher, processor, audios, policy, config, dtype,
                            config.cache or config.out / "cache", given)
    labelled = time.perf_counter()
    if precision == "bf16":
        teacher.to(torch.bfloat16)  # soft targets only from here: no per-step weight casts
    keep, counts = filter_pseudo_labels(references, data.hyps, data.looped,
                                        config.max_label_cer, config.normalizer)
    log.info("distill: pseudo-labels %s", counts)
    if not keep:
        raise ConfigError(f"max_label_cer: all {len(utts)} pseudo-labels were dropped "
                          f"({counts}); raise the limit or check the references")
    tokens = special_tokens(processor.tokenizer)
    history = train_student(student, teacher, data.batches, set(keep), tokens.ja_prefix,
                            tokens.eot, config, precision)
    report = {"teacher": config.teacher, "adapter": str(config.adapter) if config.adapter
              else None, "teacher_decoder_layers": int(teacher.config.decoder_layers),
              "student_layers_from_teacher": list(layers), "pseudo_labels": counts,
              "audio_hours": round(sum(a.size for a in audios) / 16000 / 3600, 3),
              "kept_audio_hours": round(sum(audios[i].size for i in keep) / 16000 / 3600, 3),
              "batches": len(data.batches), "steps": len(history),
              "precision": "bf16" if precision == "bf16" else "fp32",
              "first": history[0] if history else None,
              "last": history[-1] if history else None,
              "context": dataclasses.asdict(policy),
              "label_seconds": round(labelled - began, 1),
              "train_seconds": round(time.perf_counter() - labelled, 1),
              "seconds": round(time.perf_counter() - began, 1)}
    _save(student, processor, policy, config, report)
    with (config.out / "log.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in history)
    return report

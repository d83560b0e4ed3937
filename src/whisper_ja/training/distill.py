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
epoch of student training. The output folder is a plain transformers model folder with
``whisper_ja.json`` (its context policy), so ``evaluate``, ``transcribe`` and ``export`` take it
like any model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.audio.features import (
    ContextPolicy,
    batch_context_frames,
    log_mel,
    pad_features,
)
from whisper_ja.audio.io import load_audio
from whisper_ja.config import ConfigError, field, save_config
from whisper_ja.data.manifest import read_manifest
from whisper_ja.inference.ct2_clips import Ct2Options, transcribe_audio_ct2
from whisper_ja.inference.decoding import is_looping
from whisper_ja.inference.faster import CONTEXT_RECORD, export_context
from whisper_ja.model import load_model
from whisper_ja.model.context import enable_dynamic_context
from whisper_ja.model.tokens import special_tokens
from whisper_ja.text.metrics import utterance_counts
from whisper_ja.training.student import make_student

__all__ = ["DistillConfig", "DistillLoss", "LossParts", "distill", "distill_loss",
           "filter_pseudo_labels"]

log = logging.getLogger(__name__)

IGNORE = -100
"""Target id that the losses skip (the forced prefix and padding)."""


@dataclass(frozen=True)
class DistillLoss:
    """Weights of the distillation loss (distil-whisper's defaults)."""

    ce_weight: float = field(0.8, help="weight of cross-entropy on the pseudo-labels")
    kl_weight: float = field(1.0, help="weight of the KL divergence to the teacher")
    temperature: float = field(2.0, help="softmax temperature of the KL term")

    def __post_init__(self) -> None:
        if self.ce_weight < 0 or self.kl_weight < 0 or self.ce_weight + self.kl_weight == 0:
            raise ConfigError("loss: ce_weight and kl_weight must be >= 0, not both 0")
        if self.temperature <= 0:
            raise ConfigError(f"loss.temperature: must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class DistillConfig:
    """Settings of ``whisper-ja distill``."""

    train: Path = field(help="training manifest (JSONL of Utterance records) to pseudo-label")
    out: Path = field(Path("runs/distill"), help="output folder: the student model")
    teacher: str = field("openai/whisper-base", help="teacher: hub id or model folder")
    adapter: Path | None = field(None, help="LoRA adapter merged into the teacher first")
    decoder_layers: int = field(2, help="decoder layers the student keeps (maximally spaced)")
    max_label_cer: float = field(0.2, help="drop pseudo-labels whose CER against the "
                                 "reference exceeds this")
    normalizer: Literal["default", "reazonspeech", "kotoba", "paper"] = field(
        "default", help="text normalization before the pseudo-label CER")
    epochs: int = field(3, help="passes over the kept pseudo-labels")
    batch_size: int = field(8, help="clips per step (length-sorted batches)")
    lr: float = field(1e-4, help="AdamW learning rate (constant)")
    max_new_tokens: int = field(128, help="longest pseudo-label in tokens")
    label_ct2: Path | None = field(
        None, help="CTranslate2 export of the same teacher (`whisper-ja export --to ct2`) to "
        "pseudo-label with, batched at the same context: several times faster on CPU than "
        "transformers generate; soft targets still come from the transformers teacher")
    loss: DistillLoss = field(default_factory=DistillLoss, help="loss weights")
    context: ContextPolicy = field(default_factory=ContextPolicy, help="encoder input policy "
                                   "(the teacher's recorded policy wins when it has one)")
    limit: int = field(0, help="use only the first N utterances (0 = all)")
    seed: int = field(0, help="seed of batch order")
    progress: bool = field(True, help="show progress bars")

    def __post_init__(self) -> None:
        checks = {"epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
                  "lr": self.lr > 0, "max_label_cer": self.max_label_cer >= 0,
                  "max_new_tokens": 1 <= self.max_new_tokens <= 440, "limit": self.limit >= 0,
                  "decoder_layers": self.decoder_layers >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name}: out of range ({getattr(self, name)!r})")


@dataclass(frozen=True)
class LossParts:
    """The loss and its two terms (each averaged over the target tokens)."""

    total: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                 targets: torch.Tensor, weights: DistillLoss = DistillLoss()) -> LossParts:
    """``ce_weight * CE(student, targets) + kl_weight * T^2 * KL(teacher_T || student_T)``.

    Args:
        student_logits: ``(B, L, V)``.
        teacher_logits: ``(B, L, V)``, same positions (no gradient needed).
        targets: ``(B, L)`` token ids; :data:`IGNORE` positions count in neither term.
        weights: The weights and temperature.
    """
    mask = targets != IGNORE
    student = student_logits[mask].float()
    teacher = teacher_logits[mask].float().detach()
    ce = F.cross_entropy(student, targets[mask])
    t = weights.temperature
    kl = F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1),
                  reduction="batchmean", log_target=True) * t * t
    return LossParts(total=weights.ce_weight * ce + weights.kl_weight * kl, ce=ce, kl=kl)


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


@dataclass
class _Batch:
    rows: list[int]  # utterance indices
    hidden: torch.Tensor  # encoder output (frozen, shared by teacher and student)
    labels: list[tuple[int, ...]] = dataclasses.field(default_factory=list)


def _teacher(config: DistillConfig) -> tuple[Any, Any, ContextPolicy]:
    """The teacher with its adapter merged, its processor and the policy to run it with."""
    loaded = load_model(config.teacher, adapter=config.adapter)
    model = loaded.model.merge_and_unload() if hasattr(loaded.model, "merge_and_unload") \
        else loaded.model
    folders = [f for f in (config.adapter, Path(config.teacher)) if f is not None and f.is_dir()]
    policy = next((p for f in folders if (p := export_context(f)) is not None), config.context)
    if policy.dynamic:
        enable_dynamic_context(model)
    return model.eval(), loaded.processor, policy


@torch.no_grad()
def _encode_and_label(teacher: Any, processor: Any, audios: list[Any], policy: ContextPolicy,
                      config: DistillConfig) -> tuple[list[_Batch], list[str], list[bool]]:
    """Encode fixed length-sorted batches once and pseudo-label them with the teacher."""
    extractor, tokenizer = processor.feature_extractor, processor.tokenizer
    eot = special_tokens(tokenizer).eot
    ct2_labels = _ct2_labels(audios, policy, config) if config.label_ct2 else None
    order = sorted(range(len(audios)), key=lambda i: audios[i].size)
    batches, hyps, looped = [], [""] * len(audios), [False] * len(audios)
    for start in tqdm(range(0, len(order), config.batch_size), desc="pseudo-labels",
                      disable=not config.progress):
        rows = order[start:start + config.batch_size]
        frames = batch_context_frames([audios[i] for i in rows], policy)
        feats = pad_features([log_mel(audios[i], extractor) for i in rows], frames)
        hidden = teacher.get_encoder()(feats).last_hidden_state
        if ct2_labels is not None:
            label_rows = [ct2_labels[i] for i in rows]
        else:
            out = teacher.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden), language="ja",
                task="transcribe", return_timestamps=False, num_beams=1, do_sample=False,
                max_new_tokens=config.max_new_tokens)
            sequences = out.sequences if hasattr(out, "sequences") else out
            label_rows = [tuple(t for t in row if t < eot) for row in sequences.tolist()]
        batch = _Batch(rows=rows, hidden=hidden)
        for i, ids in zip(rows, label_rows, strict=True):
            batch.labels.append(ids)
            hyps[i] = tokenizer.decode(ids, skip_special_tokens=True).strip()
            looped[i] = _looped(ids, config.max_new_tokens)
        batches.append(batch)
    return batches, hyps, looped


def _ct2_labels(audios: list[Any], policy: ContextPolicy,
                config: DistillConfig) -> list[tuple[int, ...]]:
    """Pseudo-label token ids from the teacher's CTranslate2 export, at the same context."""
    if config.label_ct2 is None:
        return []
    options = Ct2Options(context="dynamic" if policy.dynamic else "full",
                         batch_size=config.batch_size, max_new_tokens=config.max_new_tokens,
                         no_speech_threshold=None)
    clips = transcribe_audio_ct2(audios, config.label_ct2, options, progress=config.progress)
    return [tuple(t for s in clip.segments for t in s.tokens) for clip in clips]


def _looped(ids: tuple[int, ...], max_new_tokens: int) -> bool:
    """A pseudo-label that repeats itself or ran into the token limit (a hallucination)."""
    return len(ids) >= max_new_tokens or is_looping(ids)


def _label_tensors(prefix: tuple[int, ...], eot: int, labels: list[tuple[int, ...]],
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs (prefix + text) and targets (text + eot; the forced prefix ignored)."""
    width = len(prefix) + max(len(ids) for ids in labels)
    inputs = torch.full((len(labels), width), eot, dtype=torch.long)
    targets = torch.full((len(labels), width), IGNORE, dtype=torch.long)
    for r, ids in enumerate(labels):
        row = [*prefix, *ids]
        inputs[r, :len(row)] = torch.tensor(row)
        targets[r, len(prefix) - 1:len(row)] = torch.tensor([*ids, eot])
    return inputs, targets


def _train(student: Any, teacher: Any, batches: list[_Batch], keep: set[int],
           prefix: tuple[int, ...], eot: int, config: DistillConfig) -> list[dict[str, float]]:
    """Train the student's decoder; returns one log record per step."""
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    rng = random.Random(config.seed)
    history: list[dict[str, float]] = []
    student.train()
    bar = tqdm(total=config.epochs * len(batches), desc="distill", disable=not config.progress)
    for epoch in range(config.epochs):
        for batch in rng.sample(batches, len(batches)):
            bar.update()
            picked = [j for j, i in enumerate(batch.rows) if i in keep]
            if not picked:
                continue
            inputs, targets = _label_tensors(prefix, eot, [batch.labels[j] for j in picked])
            hidden = batch.hidden[picked]
            with torch.no_grad():
                soft = teacher(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                               decoder_input_ids=inputs).logits
            logits = student(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                             decoder_input_ids=inputs).logits
            parts = distill_loss(logits, soft, targets, config.loss)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            history.append({"step": len(history) + 1, "epoch": epoch + 1,
                            "loss": float(parts.total.detach()), "ce": float(parts.ce.detach()),
                            "kl": float(parts.kl.detach())})
    bar.close()
    return history


def _save(student: Any, processor: Any, policy: ContextPolicy, config: DistillConfig,
          report: dict[str, Any]) -> None:
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    student.eval().save_pretrained(out)
    processor.save_pretrained(out)
    processor.feature_extractor.save_pretrained(out)  # transformers 5 writes only processor_config
    record = {"mode": "distilled", "teacher": config.teacher,
              "adapter": str(config.adapter) if config.adapter else None,
              "dynamic_context": policy.dynamic, "context": dataclasses.asdict(policy)}
    (out / CONTEXT_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "distill_report.json").write_text(json.dumps(report, indent=2) + "\n",
                                             encoding="utf-8")
    save_config(config, out / "distill_config.yaml")


def distill(config: DistillConfig) -> dict[str, Any]:
    """Pseudo-label, filter, train and save a student as ``config`` says.

    Returns:
        The report written to ``out/distill_report.json`` (pseudo-label counts, teacher layers
        kept, steps, first and last losses, seconds).

    Raises:
        ConfigError: the manifest is missing or empty, or no pseudo-label survives the filter.
        whisper_ja.audio.io.AudioError: an audio file cannot be read (names the file).
    """
    if not config.train.is_file():
        raise ConfigError(f"train: manifest {config.train} does not exist")
    utts = read_manifest(config.train)[:config.limit or None]
    if not utts:
        raise ConfigError(f"train: {config.train} holds no utterances")
    began = time.perf_counter()
    teacher, processor, policy = _teacher(config)
    student, layers = make_student(teacher, config.decoder_layers)
    audios = [load_audio(utt.audio) for utt in utts]
    batches, hyps, looped = _encode_and_label(teacher, processor, audios, policy, config)
    keep, counts = filter_pseudo_labels([u.text for u in utts], hyps, looped,
                                        config.max_label_cer, config.normalizer)
    log.info("distill: pseudo-labels %s", counts)
    if not keep:
        raise ConfigError(f"max_label_cer: all {len(hyps)} pseudo-labels were dropped "
                          f"({counts}); raise the limit or check the references")
    tokens = special_tokens(processor.tokenizer)
    history = _train(student, teacher, batches, set(keep), tokens.ja_prefix, tokens.eot, config)
    report = {"teacher": config.teacher, "adapter": str(config.adapter) if config.adapter
              else None, "teacher_decoder_layers": int(teacher.config.decoder_layers),
              "student_layers_from_teacher": list(layers), "pseudo_labels": counts,
              "steps": len(history), "first": history[0] if history else None,
              "last": history[-1] if history else None,
              "context": dataclasses.asdict(policy),
              "seconds": round(time.perf_counter() - began, 1)}
    _save(student, processor, policy, config, report)
    with (config.out / "log.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in history)
    return report

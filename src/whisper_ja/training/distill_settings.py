"""Settings of ``whisper-ja distill`` (:class:`DistillConfig`) and of its loss.

Apart from :mod:`whisper_ja.training.distill`, which runs the recipe, so that its data and
training modules can name the settings they take without importing the module that imports
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.config import ConfigError, field

__all__ = ["DistillConfig", "DistillLoss"]


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
    # 3, not kotoba's 2: on whisper-base a 3-layer student reached the teacher's CER after 900
    # steps, a 2-layer one stayed ~3.5 points worse (benchmarks/README.md, "Distilled student")
    decoder_layers: int = field(3, help="decoder layers the student keeps (maximally spaced)")
    max_label_cer: float = field(0.2, help="drop pseudo-labels whose CER against the "
                                 "reference exceeds this")
    normalizer: Literal["default", "reazonspeech", "kotoba", "paper"] = field(
        "default", help="text normalization before the pseudo-label CER")
    epochs: int = field(3, help="passes over the kept pseudo-labels (when steps is 0)")
    steps: int = field(0, help="optimizer steps (0 = epochs x batches holding a kept label)")
    batch_size: int = field(16, help="clips per step (fixed length-sorted batches)")
    lr: float = field(3e-4, help="AdamW peak learning rate")
    schedule: Literal["linear", "cosine", "constant_with_warmup"] = field(
        "linear", help="learning-rate schedule after the warm-up (decays to 0 at the last step)")
    warmup: float = field(0.05, help="share of the steps spent warming the learning rate up")
    weight_decay: float = field(0.01, help="AdamW weight decay")
    train_embeddings: bool = field(False, help="train the token embedding (tied to the output "
                                   "layer) too; frozen, a CPU step costs about half")
    precision: Literal["auto", "bf16", "fp32"] = field(
        "auto", help="autocast precision of the decoders; auto = bf16 where the CPU has "
        "AVX512-bf16, else fp32")
    max_new_tokens: int = field(128, help="longest pseudo-label in tokens")
    label_ct2: Path | None = field(
        None, help="CTranslate2 export of the same teacher (`whisper-ja export --to ct2`) to "
        "pseudo-label with, batched at the same context: several times faster on CPU than "
        "transformers generate; soft targets still come from the transformers teacher")
    labels: Literal["decode", "manifest"] = field(
        "decode", help="where the pseudo-labels come from: decode (the teacher here) or "
        "manifest (train is the labels.jsonl of `whisper-ja pseudo-label`: its text is the "
        "label, extra.reference_text what max_label_cer compares it with)")
    loss: DistillLoss = field(default_factory=DistillLoss, help="loss weights")
    context: ContextPolicy = field(default_factory=ContextPolicy, help="encoder input policy "
                                   "(the teacher's recorded policy wins when it has one)")
    limit: int = field(0, help="use only the first N utterances (0 = all)")
    seed: int = field(0, help="seed of batch order")
    checkpoint_every: int = field(100, help="steps between resumable checkpoints")
    resume: bool = field(True, help="go on from OUT/checkpoint.pt when present (made with "
                         "the same settings); OUT/cache (encoder outputs, pseudo-labels) is "
                         "reused whenever it was made with the same settings")
    cache: Path | None = field(
        None, help="folder of the encoder-output and pseudo-label cache (default OUT/cache); "
        "students of one teacher on the same data can share it (a cache made with another "
        "teacher, data, batch size, context or precision is rebuilt)")
    progress: bool = field(True, help="show progress bars")

    def __post_init__(self) -> None:
        checks = {"epochs": self.epochs >= 1, "steps": self.steps >= 0,
                  "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
                  "warmup": 0 <= self.warmup < 1, "weight_decay": self.weight_decay >= 0,
                  "checkpoint_every": self.checkpoint_every >= 1,
                  "max_label_cer": self.max_label_cer >= 0,
                  "max_new_tokens": 1 <= self.max_new_tokens <= 440, "limit": self.limit >= 0,
                  "decoder_layers": self.decoder_layers >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name}: out of range ({getattr(self, name)!r})")

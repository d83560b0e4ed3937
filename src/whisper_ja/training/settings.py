"""Settings of ``whisper-ja train``: one frozen dataclass per section, nested in ``TrainConfig``.

YAML files (``configs/*.yaml``) and ``section.key=value`` overrides fill these in; unknown keys are
an error and every value is checked in ``__post_init__`` before any work starts, with a
:class:`~whisper_ja.config.ConfigError` that names the setting. Checks that need the file system
(manifests exist, the output folder is usable, a resume keeps its settings and data) live in
:mod:`whisper_ja.training.run_checks`, which ``train`` runs first.

Top-level simple fields become CLI flags (``--model``, ``--mode``, ``--out``, ``--resume``...);
nested ones are set as ``lora.rank=128``, ``optim.lr=1e-4`` and so on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.specaugment import SpecAugmentConfig
from whisper_ja.config import ConfigError, field
from whisper_ja.model.device import cpu_has_bf16
from whisper_ja.model.quantize import QuantizeBase, check_quantization_possible
from whisper_ja.text.labels import LabelSettings
from whisper_ja.training.gate import GateSettings

__all__ = [
    "DEFAULT_LR",
    "WHISPER_LINEAR_MODULES",
    "DataSection",
    "EfficiencySection",
    "LoraSection",
    "OptimSection",
    "RunSection",
    "TrainConfig",
    "parse_mixing",
    "resolve_precision",
]

WHISPER_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
"""Names of the linear layers of a Whisper transformer block that LoRA may adapt."""

DEFAULT_LR = {"lora": 1e-3, "full": 1e-5}
"""Learning rate used when ``optim.lr`` is left empty: the usual values for each mode."""


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{name}: must be >= 0, got {value!r}")


def parse_mixing(entries: tuple[str, ...]) -> dict[str, float]:
    """Turn ``("jsut=2", "synthetic=0.5")`` into ``{"jsut": 2.0, "synthetic": 0.5}``.

    Raises:
        ConfigError: naming ``data.mixing`` on a malformed entry, a repeated corpus or a
            weight that is not a positive number.
    """
    weights: dict[str, float] = {}
    for entry in entries:
        corpus, sep, raw = entry.partition("=")
        corpus = corpus.strip()
        if not sep or not corpus:
            raise ConfigError(f"data.mixing: entry {entry!r} must look like corpus=weight")
        try:
            weight = float(raw)
        except ValueError as err:
            raise ConfigError(
                f"data.mixing: weight of {corpus!r} is not a number: {raw!r}") from err
        if weight <= 0:
            raise ConfigError(f"data.mixing: weight of {corpus!r} must be > 0, got {weight}")
        if corpus in weights:
            raise ConfigError(f"data.mixing: corpus {corpus!r} given twice")
        weights[corpus] = weight
    return weights


@dataclass(frozen=True)
class DataSection:
    """What to train and validate on."""

    train: tuple[Path, ...] = field((), help="training manifest(s) (JSONL), concatenated")
    validation: tuple[Path, ...] = field(
        (), help="validation manifest(s); empty = no validation, the last weights are kept")
    mixing: tuple[str, ...] = field(
        (), help="per-corpus sampling weights per epoch as corpus=weight (e.g. jsut=2 "
                 "synthetic=0.5: twice / half of that corpus each epoch); unlisted corpora 1")
    validation_limit: int = field(0, help="validate on at most this many utterances (0 = all)")
    max_label_tokens: int = field(
        448, help="skip (and count) utterances whose label ids are longer than this")
    timestamp_probability: float = field(
        0.0, help="share of training labels with Whisper's timestamp tokens (record segments, "
                  "else 0 s to the clip's end), so timestamps survive fine-tuning; 0..1")
    condition_on_prev: float = field(
        0.0, help="share of training labels prompted with the previous text "
                  "(extra.previous_text, else the clip before in its corpus); 0..1")
    streaming: Literal["auto", "always", "never"] = field(
        "auto", help="read training data lazily in DataLoader workers (no up-front pass; "
                     "memory and start-up independent of corpus size): always, never (every "
                     "clip in memory, features computed up front), or auto: streamed for "
                     "shards and for manifests over stream_above_mb")
    stream_above_mb: float = field(
        1.0, help="auto streaming: JSONL training manifests larger than this in total (MB; "
                  "~4,000 clips) are streamed; smaller ones are read in memory (faster there)")
    shuffle_buffer: int = field(
        2000, help="streaming: clips in the shuffle buffer of each reader (memory bound); "
                   "the order of manifest pieces and shards is shuffled too")
    bucket_seconds: tuple[float, ...] = field(
        (2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0),
        help="streaming: edges (s) of the duration buckets batches are formed in")
    max_pseudo_cer: float = field(
        0.0, help="skip (and count) clips whose extra.pseudo_cer (written by pseudo-label) is "
                  "above this, as kotoba-whisper drops pairs over 10% WER (0 = no filter)")

    def __post_init__(self) -> None:
        parse_mixing(self.mixing)
        _non_negative("data.validation_limit", self.validation_limit)
        _non_negative("data.stream_above_mb", self.stream_above_mb)
        _non_negative("data.shuffle_buffer", self.shuffle_buffer)
        _non_negative("data.max_pseudo_cer", self.max_pseudo_cer)
        if list(self.bucket_seconds) != sorted(set(self.bucket_seconds)) or any(
                b <= 0 for b in self.bucket_seconds):
            raise ConfigError("data.bucket_seconds: must be positive and ascending, got "
                              f"{list(self.bucket_seconds)}")
        for name in ("timestamp_probability", "condition_on_prev"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name}: must be within 0..1, got {getattr(self, name)}")
        if not 8 <= self.max_label_tokens <= 448:
            raise ConfigError(
                f"data.max_label_tokens: must be within 8..448 (Whisper's decoder length), "
                f"got {self.max_label_tokens}")


@dataclass(frozen=True)
class LoraSection:
    """LoRA adapters (used when ``mode: lora``; the original weights stay frozen)."""

    rank: int = field(64, help="LoRA rank r (the paper compared 64-256)")
    alpha: float = field(128.0, help="LoRA alpha (the update is scaled by alpha / rank)")
    dropout: float = field(0.05, help="dropout on the LoRA input, in [0, 1)")
    rslora: bool = field(
        False, help="scale the update by alpha/sqrt(rank) (rank-stabilized LoRA) instead of "
                    "alpha/rank: one learning rate then stays stable from small to large ranks")
    target_modules: tuple[str, ...] = field(
        ("q_proj", "v_proj"), help=f"Whisper linear layers to adapt, of {WHISPER_LINEAR_MODULES}")
    encoder_layers: int = field(
        0, help="adapt only the top N encoder layers (0 = all): the backward pass then stops "
                "N layers from the encoder's top, so a step costs less (decoder layers are "
                "always adapted)")

    def __post_init__(self) -> None:
        if self.encoder_layers < 0:
            raise ConfigError(f"lora.encoder_layers: must be >= 0, got {self.encoder_layers}")
        if self.rank < 1:
            raise ConfigError(f"lora.rank: must be >= 1, got {self.rank}")
        _positive("lora.alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout: must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("lora.target_modules: name at least one module")
        unknown = [m for m in self.target_modules if m not in WHISPER_LINEAR_MODULES]
        if unknown:
            raise ConfigError(f"lora.target_modules: unknown module(s) {unknown}; "
                              f"Whisper has {list(WHISPER_LINEAR_MODULES)}")


@dataclass(frozen=True)
class OptimSection:
    """Optimizer, schedule and batch."""

    optimizer: Literal["adamw", "adafactor"] = field("adamw", help="optimizer")
    lr: float | None = field(
        None, help=f"peak learning rate; empty = {DEFAULT_LR['lora']} for lora, "
                   f"{DEFAULT_LR['full']} for full")
    weight_decay: float = field(0.0, help="decoupled weight decay")
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup"] = field(
        "linear", help="learning-rate schedule after warm-up")
    warmup_steps: int = field(0, help="optimizer steps of linear warm-up")
    batch_size: int = field(8, help="clips per batch on each process (with max_duration: "
                                    "the most clips per batch)")
    max_duration: float = field(
        0.0, help="streaming: seconds of padded audio per batch (clips x longest clip), batches "
                  "formed in duration buckets as NeMo and icefall do; 0 = batch_size clips")
    grad_accum: int = field(1, help="batches accumulated per optimizer step")
    epochs: int = field(3, help="passes over the (mixed) training set; ignored if max_steps")
    max_steps: int = field(0, help="optimizer steps to run (0 = derive from epochs)")
    max_grad_norm: float = field(1.0, help="gradient-norm clipping (0 = off)")

    def __post_init__(self) -> None:
        if self.lr is not None:
            _positive("optim.lr", self.lr)
        _non_negative("optim.weight_decay", self.weight_decay)
        _non_negative("optim.warmup_steps", self.warmup_steps)
        for name in ("batch_size", "grad_accum", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"optim.{name}: must be >= 1, got {getattr(self, name)}")
        _non_negative("optim.max_steps", self.max_steps)
        _non_negative("optim.max_duration", self.max_duration)
        _non_negative("optim.max_grad_norm", self.max_grad_norm)


@dataclass(frozen=True)
class EfficiencySection:
    """Speed switches; none of them changes what is learned, only how fast."""

    context: ContextPolicy = field(
        default_factory=ContextPolicy,
        help="encoder input length: dynamic (batch's longest clip, floor min_frames) or 30 s")
    feature_cache: bool = field(True, help="keep log-mel features on disk between epochs/runs")
    cache_dir: Path | None = field(None, help="feature cache folder (empty = OUT/feature_cache)")
    length_grouping: bool = field(True, help="batch clips of similar length together")
    workers: int = field(
        2, help="streaming: DataLoader worker processes per training process; they read the "
                "audio and compute features (0 = in the training process)")
    cache_max_gb: float = field(
        20.0, help="streaming: most GB of features the cache writes per run (0 = no bound); "
                   "past it features are computed every epoch")

    def __post_init__(self) -> None:
        if not isinstance(self.context, ContextPolicy):
            raise ConfigError("efficiency.context: expected a mapping of context settings")
        _non_negative("efficiency.workers", self.workers)
        _non_negative("efficiency.cache_max_gb", self.cache_max_gb)


@dataclass(frozen=True)
class RunSection:
    """Validation, checkpoints, logging."""

    validate_every: int = field(100, help="validate every N optimizer steps (0 = only at the end)")
    validate_at_start: bool = field(True, help="also validate the untouched model (step 0)")
    val_max_new_tokens: int = field(128, help="token limit per clip when decoding validation")
    patience: int = field(0, help="stop after N validations without a better CER (0 = never)")
    save_every: int = field(100, help="write a resumable checkpoint every N steps (0 = never)")
    keep_checkpoints: int = field(2, help="resumable checkpoints kept (older ones deleted)")
    log_every: int = field(10, help="log the training loss every N optimizer steps")
    tensorboard: bool = field(True, help="also write TensorBoard events to OUT/tensorboard")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        for name in ("validate_every", "patience", "save_every"):
            _non_negative(f"run.{name}", getattr(self, name))
        if not 1 <= self.val_max_new_tokens <= 440:
            raise ConfigError(f"run.val_max_new_tokens: must be in 1..440, "
                              f"got {self.val_max_new_tokens}")
        for name in ("keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"run.{name}: must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``whisper-ja train`` needs; see ``configs/`` for recipes."""

    model: str = field("openai/whisper-base",
                       help="base model: hub id, local folder or imported CTranslate2 folder")
    mode: Literal["lora", "full"] = field("lora", help="lora (adapters only) or full (all weights)")
    out: Path = field(Path("runs/train"), help="output folder")
    freeze_encoder: bool = field(
        False, help="keep the encoder fixed (full: encoder weights frozen; lora: no encoder "
                    "adapters)")
    gradient_checkpointing: bool = field(False, help="recompute activations to save memory")
    quantize_base: QuantizeBase = field(
        "none", help="lora only: hold the frozen base in 8bit or 4bit (NF4) with bitsandbytes "
                     "to fit large models on one GPU; refused on a CPU")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        "auto", help="autocast precision; auto = bf16 where the hardware has it, else fp32")
    seed: int = field(0, help="random seed (data order, SpecAugment, dropout, initialisation)")
    resume: bool = field(False, help="continue from OUT's last checkpoint (fresh start if none)")
    data: DataSection = field(default_factory=DataSection, help="manifests and mixing")
    labels: LabelSettings = field(default_factory=LabelSettings,
                                  help="transcript normalization before tokenizing (width "
                                       "folding to Whisper's own orthography)")
    lora: LoraSection = field(default_factory=LoraSection, help="LoRA settings")
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig,
                                            help="SpecAugment")
    optim: OptimSection = field(default_factory=OptimSection, help="optimizer and schedule")
    efficiency: EfficiencySection = field(default_factory=EfficiencySection,
                                          help="speed switches")
    run: RunSection = field(default_factory=RunSection, help="validation, checkpoints, logs")
    gate: GateSettings = field(default_factory=GateSettings,
                               help="versatility gate: unseen-domain and retention check sets "
                                    "and their drift budgets")

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("model: name a hub id or a local folder")
        if self.freeze_encoder and self.lora.encoder_layers:
            raise ConfigError("lora.encoder_layers: adapts encoder layers, but freeze_encoder "
                              "keeps the encoder without adapters; set one of them")
        if self.quantize_base != "none":
            if self.mode != "lora":
                raise ConfigError("quantize_base: only a frozen base can be quantized; use "
                                  "mode=lora (full fine-tuning trains every weight)")
            check_quantization_possible(self.quantize_base)
        if self.optim.lr is None:
            # Resolve the mode's default here so config.yaml records the value really used.
            object.__setattr__(self, "optim",
                               dataclasses.replace(self.optim, lr=DEFAULT_LR[self.mode]))

    @property
    def learning_rate(self) -> float:
        """The resolved peak learning rate."""
        return float(self.optim.lr if self.optim.lr is not None else DEFAULT_LR[self.mode])


def resolve_precision(setting: str) -> str:
    """Accelerate's ``mixed_precision`` for a ``precision`` setting on this hardware.

    ``auto`` picks bf16 on GPUs that have it (else fp16) and on CPUs with AVX512-bf16 (about
    2x faster training here), fp32 elsewhere.

    Raises:
        ConfigError: naming ``precision`` when the hardware lacks the requested type.
    """
    cuda = torch.cuda.is_available()
    cpu_bf16 = cpu_has_bf16()
    if setting == "fp32":
        return "no"
    if setting == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_bf16 else "no"
    if setting == "fp16" and not cuda:
        raise ConfigError("precision: fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU")
    if setting == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision: this GPU has no bf16; use fp16 or fp32")
    return setting

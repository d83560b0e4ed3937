"""``whisper-ja export``: a (LoRA-)adapted model as a checked transformers or CTranslate2 folder.

Usage::

    whisper-ja export --model openai/whisper-base --adapter runs/lora --to hf --out out/hf
    whisper-ja export --adapter runs/lora --to ct2 --quantization int8 --out out/ct2 \
        --eval-report eval/report.json

- ``hf``: the LoRA adapter merged into the weights (a plain ``WhisperForConditionalGeneration``,
  no peft needed), the processor files (``tokenizer.json``, ``preprocessor_config.json``...) and a
  generation config with Japanese transcription forced, so that
  ``pipeline("automatic-speech-recognition", model=DIR)`` transcribes Japanese out of the box.
- ``ct2``: the merged model converted by CTranslate2's own converter, with the tokenizer and
  feature-extractor files faster-whisper reads, loadable by ``faster_whisper.WhisperModel(DIR)``.

Both record the context policy the model was trained with (``whisper_ja.json``: the
dynamic-context flag, bucket and floor, from the training run's record), so whisper-ja decodes
an export, transformers or CTranslate2, at the encoder length it was trained for.

Both get a model card (``README.md``, see :mod:`whisper_ja.export.card`). Every check that can
fail on user input (output folder, adapter against base model) runs before anything is written,
and the export is assembled in a staging folder that is renamed into place only after the
result has been reloaded and checked, so a failed export leaves no partial folder behind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from safetensors import SafetensorError
from tqdm import tqdm

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.config import ConfigError, field
from whisper_ja.export.card import CardInfo, find_training_info, read_eval_report, render_model_card
from whisper_ja.export.checks import (
    ExportError,
    check_adapter_matches,
    check_output_folder,
    find_adapter_folder,
    verify_hf,
)
from whisper_ja.inference.faster import (
    convert_ct2,
    verify_ct2,
)
from whisper_ja.model import load_model
from whisper_ja.model.context import uses_dynamic_context
from whisper_ja.model.device import DEVICE_HELP, check_device
from whisper_ja.model.record import ModelRecord, recorded_policy, write_record
from whisper_ja.model.saving import save_hf

__all__ = [
    "QUANTIZATIONS",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "export_model",
]

log = logging.getLogger(__name__)

QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")
"""Weight types CTranslate2's converter accepts (``--quantization``)."""

Quantization = Literal["int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                       "float16", "bfloat16", "float32"]


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """Settings of ``whisper-ja export``."""

    # Same value as whisper_ja.model.DEFAULT_MODEL; repeated so `--help` need not import torch.
    model: str = field("openai/whisper-base", help="base model: hub id, transformers folder "
                       "or CTranslate2 folder (offline, openai/whisper-base comes from PyPI)")
    adapter: Path | None = field(None, help="PEFT LoRA adapter folder (e.g. a `whisper-ja "
                                 "train` output) to merge into the base model")
    to: Literal["hf", "ct2"] = field("hf", help="hf: transformers folder; ct2: CTranslate2 "
                                     "folder for faster-whisper")
    out: Path = field(help="output folder; must not exist or be empty")
    quantization: Quantization | None = field(None, help="ct2 only: weight type; unset keeps "
                                              "the merged float32 weights")
    eval_report: Path | None = field(None, help="report.json of `whisper-ja evaluate` for the "
                                     "model card's evaluation table")
    name: str | None = field(None, help="model name in the card; unset: the output "
                             "folder's name")
    allow_base_mismatch: bool = field(False, help="merge although the adapter names a "
                                      "different base model (shapes must still match)")
    device: str = field("auto", help="where the ct2 export is loaded back and checked: "
                        + DEVICE_HELP)

    def __post_init__(self) -> None:
        if self.quantization is not None and self.to != "ct2":
            raise ConfigError("quantization: only CTranslate2 exports (--to ct2) are quantized; "
                              "hf exports keep float32 weights")
        if self.adapter is not None and not Path(self.adapter).expanduser().is_dir():
            raise ConfigError(f"adapter: {self.adapter} is not a folder")
        if self.eval_report is not None and not Path(self.eval_report).expanduser().is_file():
            raise ConfigError(f"eval_report: {self.eval_report} is not a file")
        if not str(self.out).strip():
            raise ConfigError("out: an output folder is required")
        check_device(self.device)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        out: The output folder.
        format: ``hf`` or ``ct2``.
        files: Names of the files in ``out``.
        dynamic_context: The model was fine-tuned with dynamic encoder context.
        card: Path of the model card.
        context: The context policy recorded in ``whisper_ja.json``.
    """

    out: Path
    format: str
    files: tuple[str, ...]
    dynamic_context: bool
    card: Path
    context: ContextPolicy = ContextPolicy()


def _staging_folder(out: Path) -> Path:
    # Next to the target when possible so the final step is a cheap rename on one filesystem.
    parent = out.parent if out.parent.is_dir() else None
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))


def _place(staging: Path, out: Path) -> None:
    check_output_folder(out)  # again: something may have appeared while we worked
    if out.is_dir():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(out))


def _merged_model(config: ExportConfig, adapter: Path | None, bar: Any) -> tuple[Any, Any]:
    """The base model with the adapter merged into its weights (checked first), and processor."""
    bar.set_postfix_str("load base model")
    base = load_model(config.model)
    bar.update()
    if adapter is None:
        bar.update()
        return base.model, base.processor
    bar.set_postfix_str("check adapter")
    check_adapter_matches(adapter, base.model, accepted_names=(config.model, base.source),
                          allow_name_mismatch=config.allow_base_mismatch)
    del base  # loaded again with the adapter, exactly as `evaluate --adapter` loads it
    bar.set_postfix_str("merge adapter")
    loaded = load_model(config.model, adapter=adapter)
    bar.update()
    return loaded.model.merge_and_unload(), loaded.processor


def _write(config: ExportConfig, model: Any, processor: Any, staging: Path, bar: Any) -> None:
    """Save (hf) or save and convert (ct2) into ``staging``, then reload and check."""
    bar.set_postfix_str("save")
    if config.to == "hf":
        save_hf(model, processor, staging)
        bar.update()
        bar.set_postfix_str("reload and compare")
        verify_hf(staging, model)
    else:
        with tempfile.TemporaryDirectory(prefix="whisper-ja-merged-") as merged:
            save_hf(model, processor, Path(merged))
            bar.update()
            bar.set_postfix_str("convert to CTranslate2")
            convert_ct2(Path(merged), staging, config.quantization)
            bar.update()
        bar.set_postfix_str("reload with faster-whisper")
        verify_ct2(staging, device=config.device)
    bar.update()


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""A full disk, an exhausted quota, or a file-size limit: no room for the export."""

# safetensors (Rust) reports a full disk in its own error, naming the OS error in words.
_NO_ROOM_WORDS = ("No space left", "StorageFull", "Disk quota", "File too large", "FileTooLarge")


@contextlib.contextmanager
def _no_room_is_one_line(out: Path, staging: Path) -> Iterator[None]:
    """Turn a full disk while writing into an :class:`ExportError` naming where and what to do.

    The caller removes the staging folder either way, so nothing partial is left behind.
    """
    try:
        yield
    except (OSError, SafetensorError) as err:
        no_room = (err.errno in _NO_ROOM if isinstance(err, OSError)
                   else any(words in str(err) for words in _NO_ROOM_WORDS))
        if not no_room:
            raise
        raise ExportError(f"out: no room to write the export to {out} ({err}); the partial "
                          f"output in {staging} was removed. Free some space or choose "
                          "another --out") from err


def _trained_policy(dynamic: bool, *folders: Path | None) -> ContextPolicy:
    """The policy recorded by the training run (adapter or model folder), else the default."""
    for folder in folders:
        saved = recorded_policy(folder)
        if saved is not None:
            return replace(saved, dynamic=dynamic)
    return ContextPolicy(dynamic=dynamic)


def export_model(config: ExportConfig) -> ExportResult:
    """Merge, save, convert, check and document a model as ``config`` says.

    Args:
        config: The export settings.

    Returns:
        What was written.

    Raises:
        ExportError: the output folder is not empty, the adapter does not fit the base model,
            or the written model does not reload as it should; nothing is written then.
        whisper_ja.export.card.ModelCardError: a training or evaluation file is unreadable.
    """
    out = config.out.expanduser()
    check_output_folder(out)
    adapter = find_adapter_folder(config.adapter.expanduser()) if config.adapter else None
    model_path = Path(config.model).expanduser()
    training = find_training_info(adapter, config.adapter,
                                  model_path if model_path.is_dir() else None)
    evaluation, normalizer = (read_eval_report(config.eval_report.expanduser())
                              if config.eval_report else ((), None))
    # Steps: load, merge, save, [convert], reload-check, card and move into place.
    bar = tqdm(total=5 + (config.to == "ct2"), desc="export", unit="step")
    try:
        model, processor = _merged_model(config, adapter, bar)
        # The same rule whisper-ja's loader applies (config flag, or the marker `train` writes
        # next to an adapter), so the card and the saved flag agree with how `evaluate` decodes.
        # Turned on, it already set `whisper_ja_dynamic_context` in the config that is saved.
        dynamic = uses_dynamic_context(model)
        policy = _trained_policy(dynamic, adapter, config.adapter,
                                 model_path if model_path.is_dir() else None)
        staging = _staging_folder(out)
        try:
            with _no_room_is_one_line(out, staging):
                _write(config, model, processor, staging, bar)
            write_record(staging, ModelRecord(policy=policy))
            card = CardInfo(
                name=config.name or out.resolve().name, base_model=config.model,
                export_format=config.to, adapter=str(config.adapter) if config.adapter else None,
                quantization=(config.quantization or "float32") if config.to == "ct2" else None,
                dynamic_context=dynamic, training=training, evaluation=evaluation,
                normalizer=normalizer, context=policy)
            with _no_room_is_one_line(out, staging):
                (staging / "README.md").write_text(render_model_card(card), encoding="utf-8")
                _place(staging, out)
            bar.update()
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # already gone after a successful move
    finally:
        bar.close()
    files = tuple(sorted(p.name for p in out.iterdir()))
    return ExportResult(out=out, format=config.to, files=files, dynamic_context=dynamic,
                        card=out / "README.md", context=policy)

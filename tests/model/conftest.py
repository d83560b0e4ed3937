"""Fixtures of the model tests: a miniature Whisper saved by transformers and by CTranslate2."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch


@dataclass(frozen=True)
class MiniWhisper:
    model: object  # the original transformers model
    hf_dir: Path  # saved by transformers (model + processor)
    ct2_float32: Path  # converted by CTranslate2's own converter
    ct2_int8: Path


@pytest.fixture(scope="session")
def mini_whisper(tmp_path_factory) -> MiniWhisper:
    """A 2+2-layer d_model-64 Whisper with the real vocabulary, converted by CTranslate2."""
    import ctranslate2
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_ja.model.loading import _tokenizer_json
    from whisper_ja.model.processor import build_generation_config, processor_from_tokenizer_json

    root = tmp_path_factory.mktemp("mini_whisper")
    processor = processor_from_tokenizer_json(_tokenizer_json())
    config = WhisperConfig(
        vocab_size=51865, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128, decoder_start_token_id=50258, bos_token_id=50257,
        eos_token_id=50257, pad_token_id=50257,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # random biases everywhere, so that a dropped or swapped bias shows
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.05)
    model.generation_config = build_generation_config(processor.tokenizer)
    model.eval()
    hf_dir = root / "hf"
    model.save_pretrained(hf_dir)
    processor.save_pretrained(hf_dir)
    out = {}
    for quantization in ("float32", "int8"):
        target = root / f"ct2_{quantization}"
        ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(
            str(target), quantization=quantization, force=True)
        # CTranslate2's converter keeps only the vocabulary; faster-whisper folders ship
        # tokenizer.json beside it, as the offline wheels do.
        shutil.copy(_tokenizer_json(), target / "tokenizer.json")
        out[quantization] = target
    return MiniWhisper(model=model, hf_dir=hf_dir, ct2_float32=out["float32"],
                       ct2_int8=out["int8"])

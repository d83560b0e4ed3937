"""Saving a plain (merged) Whisper model with everything its readers need.

``whisper-ja export`` (:mod:`whisper_ja.export.writer`) and the CTranslate2 snapshots the
versatility gate decodes (:mod:`whisper_ja.inference.ct2_snapshot`) both write models this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from whisper_ja.errors import ExportError
from whisper_ja.model.processor import force_japanese, set_japanese_prefix

__all__ = ["HF_REQUIRED_FILES", "save_hf"]

HF_REQUIRED_FILES = ("config.json", "generation_config.json", "model.safetensors",
                     "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")
"""Files every hf export holds (``preprocessor_config.json`` is what faster-whisper, CTranslate2's
converter and transformers 4 read; transformers 5 alone writes only ``processor_config.json``)."""


def save_hf(model: Any, processor: Any, folder: Path) -> None:
    """Save a merged model with its processor and Japanese-forced generation config.

    Args:
        model: A plain ``WhisperForConditionalGeneration`` (adapter already merged).
        processor: Its ``WhisperProcessor`` (tokenizer prefix already Japanese).
        folder: Where to write (created if needed).
    """
    set_japanese_prefix(processor.tokenizer)
    force_japanese(model.generation_config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    # transformers 5 writes only processor_config.json; the others read this file.
    processor.feature_extractor.save_pretrained(folder)
    missing = [name for name in HF_REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportError(f"out: saving left out {', '.join(missing)} (transformers changed "
                          "what it writes?); export aborted")

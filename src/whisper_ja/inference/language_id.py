"""Whisper's language identification on a transformers model, as OpenAI's ``detect_language``.

One decoder step after ``<|startoftranscript|>``; the most likely of the tokenizer's language
tokens wins. The retention check (:mod:`whisper_ja.evaluation.retention.measure`) and the
versatility gate call it through :mod:`whisper_ja.inference.clip_decoders`; the CTranslate2
twin is :func:`whisper_ja.inference.ct2_clips.detect_language_ct2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.features import ContextPolicy, batch_context_frames
from whisper_ja.model.tokens import special_tokens

__all__ = ["detect_language", "language_token_ids"]


def language_token_ids(tokenizer: Any) -> dict[str, int]:
    """The language tokens this Whisper tokenizer knows, as ``{code: token id}``."""
    unk = tokenizer.unk_token_id
    specials = special_tokens(tokenizer)
    found: dict[str, int] = {}
    for code in LANGUAGES:
        token_id = tokenizer.convert_tokens_to_ids(f"<|{code}|>")
        if isinstance(token_id, int) and token_id != unk and (
                specials.sot < token_id < specials.translate):
            found[code] = token_id
    if not found:
        raise ValueError("the tokenizer has no language tokens: not a multilingual Whisper")
    return found


def _features(processor: Any, audios: Sequence[np.ndarray], context: str,
              policy: ContextPolicy) -> torch.Tensor:
    feats = processor.feature_extractor(list(audios), sampling_rate=SAMPLE_RATE,
                                        return_tensors="pt").input_features
    if context != "dynamic":
        return feats

    # Cutting 30 s features keeps Whisper's normalization (computed over the padded window),
    # which is what a dynamic-context model saw in training.
    return feats[..., :batch_context_frames(audios, policy)]


@torch.no_grad()
def detect_language(model: Any, processor: Any, audios: Sequence[np.ndarray], *,
                    batch_size: int = 8, context: str = "full",
                    policy: ContextPolicy | None = None, progress: bool = True) -> list[str]:
    """Whisper's language identification: the most likely language token after SOT.

    Args:
        model: A Whisper model (plain or peft-wrapped).
        processor: Its ``WhisperProcessor``.
        audios: 16 kHz mono float32 waveforms.
        batch_size: Utterances per forward pass.
        context: ``full`` (30 s encoder input) or ``dynamic`` (the batch's longest clip), as
            the model was trained.
        policy: The dynamic context policy (default: the library default).
        progress: Show a progress bar.

    Returns:
        One language code per waveform.
    """
    lang_ids = language_token_ids(processor.tokenizer)
    sot_id = special_tokens(processor.tokenizer).sot
    codes = list(lang_ids)
    id_tensor = torch.tensor([lang_ids[c] for c in codes])
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    detected: list[str] = []
    for start in tqdm(range(0, len(audios), batch_size), desc="language id",
                      disable=not progress):
        batch = audios[start:start + batch_size]
        feats = _features(processor, batch, context, policy or ContextPolicy()).to(
            device=device, dtype=dtype)
        sot = torch.full((len(batch), 1), sot_id, dtype=torch.long, device=device)
        logits = model(input_features=feats, decoder_input_ids=sot).logits[:, -1, :]
        best = logits[:, id_tensor.to(device)].argmax(dim=-1).tolist()
        detected.extend(codes[i] for i in best)
    return detected

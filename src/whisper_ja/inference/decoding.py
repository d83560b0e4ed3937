"""Batched Whisper decoding with Japanese forced, silence skipping and loop detection.

Every call forces ``<|ja|><|transcribe|><|notimestamps|>`` (baselines that were allowed to
detect the language were a flaw of the seed paper's code). Audio longer than 30 s is cut into
chunks at quiet moments and the chunk transcripts joined. Silent clips give an empty transcript
without running the model, and windows that Whisper itself judges to hold no speech (high
no-speech probability and unconfident text, OpenAI's rule) are emptied too. Outputs that loop
or run into the token limit are flagged.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging as hf_logging

from whisper_ja.audio.constants import FULL_CONTEXT_FRAMES, SAMPLE_RATE
from whisper_ja.audio.io import is_silent, split_long_audio
from whisper_ja.inference.guards import GuardSettings, guarded_generate
from whisper_ja.model.tokens import SpecialTokens, language_id, special_tokens

__all__ = ["CLIP_MAX_TOKENS", "WINDOW_MAX_TOKENS", "DecodeOptions", "DecodeResult", "decode_audio",
           "decode_features", "is_looping"]

CLIP_MAX_TOKENS = 128
"""Token limit of one short clip's transcript (evaluation of clips)."""

WINDOW_MAX_TOKENS = 224
"""Token limit of one 30 s window: OpenAI's ``sample_len``, half the decoder's 448 positions.

A dense 30 s window of Japanese with timestamps runs past 128 tokens (the limit for clips)."""


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode.

    Attributes:
        num_beams: Beam width (1 = greedy).
        max_new_tokens: Token limit per 30 s window; reaching it marks the result as looped.
        prompt_ids: Previous-text prompt token ids (contextual biasing), with or without the
            leading ``<|startofprev|>``.
        language: Whisper language code; Japanese unless asked otherwise.
        context_frames: None = the standard 3000 mel frames (30 s); an even number of frames =
            features cut/padded to that length (models run with dynamic context).
        batch_size: Clips per generate call.
        no_speech_threshold: Whisper's no-speech probability above which a window whose text
            is unconfident (see ``logprob_threshold``) counts as silence; None = never.
        logprob_threshold: Average token log-probability under which such a window's text
            is dropped.
        guards: Repetition guard and temperature fallback (:mod:`whisper_ja.inference.guards`).
    """

    num_beams: int = 1
    max_new_tokens: int = 128
    prompt_ids: tuple[int, ...] = ()
    language: str = "ja"
    context_frames: int | None = None
    batch_size: int = 8
    no_speech_threshold: float | None = 0.6
    logprob_threshold: float = -1.0
    guards: GuardSettings = GuardSettings()

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams: must be at least 1, got {self.num_beams}")
        if not 1 <= self.max_new_tokens <= 440:
            raise ValueError(f"max_new_tokens: must be in 1..440, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {self.batch_size}")
        frames = self.context_frames
        if frames is not None and not (2 <= frames <= FULL_CONTEXT_FRAMES and frames % 2 == 0):
            raise ValueError(f"context_frames: must be an even number in 2..3000 or None, "
                             f"got {frames}")
        if self.no_speech_threshold is not None and not 0 <= self.no_speech_threshold <= 1:
            raise ValueError(f"no_speech_threshold: must be in 0..1 or None, "
                             f"got {self.no_speech_threshold}")


@dataclass(frozen=True)
class DecodeResult:
    """One transcript.

    Attributes:
        text: The transcript (special tokens removed, stripped).
        token_ids: Its text token ids (no prompt, no special tokens).
        looped: The output repeats itself or hit the token limit (likely a hallucination);
            with the guards on, a loop they stopped but could not replace.
        looped_unguarded: The first (greedy) attempt looped: what an unguarded decoder emits.
    """

    text: str
    token_ids: tuple[int, ...]
    looped: bool
    looped_unguarded: bool = False


def _tandem_repeat(ids: Sequence[int], n: int, min_repeats: int) -> bool:
    """Whether some n-gram occurs ``min_repeats`` times back to back."""
    run = 0
    for i in range(n, len(ids)):
        run = run + 1 if ids[i] == ids[i - n] else 0
        if run >= n * (min_repeats - 1):
            return True
    return False


def is_looping(token_ids: Sequence[int], max_ngram: int = 32, *, eot: int | None = None
               ) -> bool:
    """Detect Whisper's repetition hallucinations in a token sequence.

    Flags a sequence when one n-gram (n <= ``max_ngram``) repeats back to back (one token 8
    times, two tokens 4 times, longer ones 3 times), or when copies of a single
    3- to 8-gram, occurring at least 4 times anywhere, make up half the sequence. Thresholds sit
    above what real Japanese repeats: laughter "ははは" is one to three tokens, reduplications
    come in twos, and a phrase recurring in long speech covers little of it.

    Args:
        token_ids: Text token ids.
        max_ngram: Longest repeated unit looked for back to back.
        eot: The tokenizer's ``<|endoftext|>`` id (``special_tokens(tokenizer).eot``): ids
            from it on (special tokens, timestamps) are ignored. None = all ids are text.
    """
    ids = [t for t in token_ids if eot is None or t < eot]
    if len(ids) < 6:
        return False
    thresholds = {1: 8, 2: 4}
    for n in range(1, min(max_ngram, len(ids) // 2) + 1):
        if _tandem_repeat(ids, n, thresholds.get(n, 3)):
            return True
    for n in range(3, 9):
        count = _max_disjoint_count(ids, n)
        if count >= 4 and count * n >= len(ids) / 2:
            return True
    return False


def _max_disjoint_count(ids: Sequence[int], n: int) -> int:
    """Occurrences of the most frequent n-gram, counting only non-overlapping ones."""
    counts: Counter[tuple[int, ...]] = Counter()
    next_free: dict[tuple[int, ...], int] = {}
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i:i + n])
        if i >= next_free.get(gram, 0):
            counts[gram] += 1
            next_free[gram] = i + n
    return max(counts.values(), default=0)


def _prompt_tensor(prompt_ids: tuple[int, ...], specials: SpecialTokens) -> torch.Tensor | None:
    if not prompt_ids:
        return None
    start = specials.prev_text
    ids = prompt_ids if prompt_ids[0] == start else (start, *prompt_ids)
    return torch.tensor(ids, dtype=torch.long)


def _text_ids(row: Sequence[int], specials: SpecialTokens) -> list[int]:
    """Generated text ids of one output row: after the last start-of-transcript, no specials."""
    row = list(row)
    sot = specials.sot
    start = len(row) - row[::-1].index(sot) if sot in row else 0
    return [t for t in row[start:] if specials.is_text(t)]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-call generate warnings, which would repeat every batch.

    They concern max_length vs max_new_tokens and Whisper's own suppress-token arguments.
    """
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _inner_model(model: Any) -> Any:
    """The model whose dtype/device features must match (peft wraps the Whisper model)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.inference_mode()
def decode_features(model: Any, processor: Any, features: torch.Tensor,
                    options: DecodeOptions = DecodeOptions()) -> list[DecodeResult]:
    """Decode a batch of log-mel features with the language and task forced.

    Args:
        model: ``WhisperForConditionalGeneration`` or a peft model wrapping it.
        processor: Its ``WhisperProcessor`` (for detokenizing).
        features: ``(B, n_mels, T)`` log-mel features (T = 3000, or the model's dynamic length).
        options: Decoding settings (``batch_size`` is ignored: this is one batch).

    Returns:
        One result per row of ``features``.
    """
    base = _inner_model(model)
    features = features.to(device=base.device, dtype=base.dtype)
    kwargs: dict[str, Any] = {}
    specials = special_tokens(processor.tokenizer)
    prompt = _prompt_tensor(options.prompt_ids, specials)
    if prompt is not None:
        kwargs["prompt_ids"] = prompt.to(base.device)
    # One encoder pass, shared by the no-speech check and generation.
    hidden = base.get_encoder()(features).last_hidden_state
    no_speech = _no_speech_probs(base, processor, hidden, options)

    def generate(rows: list[int], extra: dict[str, Any]) -> list[list[int]]:
        with _quiet_transformers():
            output = model.generate(
                # a fresh container: beam search expands it in place
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden[rows]),
                language=options.language, task="transcribe", return_timestamps=False,
                max_new_tokens=options.max_new_tokens,
                # one pass per clip: a timestamp sampled by the temperature fallback must not
                # make generate seek inside the clip (it would re-slice absent input features)
                force_unique_generate_call=True,
                **{"num_beams": options.num_beams, "do_sample": False, **kwargs, **extra})
        sequences = output.sequences if hasattr(output, "sequences") else output
        return [_text_ids(row, specials) for row in sequences.tolist()]

    guarded = guarded_generate(
        generate, lambda rows, ids: _avg_logprobs(base, processor, hidden[rows], ids, options),
        lambda ids: processor.tokenizer.decode(ids, skip_special_tokens=True),
        batch=hidden.shape[0], settings=options.guards, max_new_tokens=options.max_new_tokens,
        start_id=specials.sot, eot_id=specials.eot)
    rows = guarded.rows
    silent = _unconfident_rows(base, processor, hidden, rows, no_speech, options)
    results = []
    for index, ids in enumerate(rows):
        if index in silent:
            results.append(DecodeResult(text="", token_ids=(), looped=False))
            continue
        text = processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
        looped = guarded.loop_kept[index] or len(ids) >= options.max_new_tokens or is_looping(ids)
        results.append(DecodeResult(text=text, token_ids=tuple(ids), looped=looped,
                                    looped_unguarded=guarded.looped_first[index] or looped))
    return results


def _avg_logprobs(base: Any, processor: Any, hidden: torch.Tensor, rows: list[list[int]],
                  options: DecodeOptions) -> list[float]:
    """Average log-probability of each row's text and end-of-text (one teacher-forced pass).

    OpenAI's ``avg_logprob``; a previous-text prompt is not part of the context scored.
    """
    specials = special_tokens(processor.tokenizer)
    prefix = list(specials.prefix(language_id(processor.tokenizer, options.language)))
    targets = [[*ids, specials.eot] for ids in rows]
    width = len(prefix) + max(len(t) for t in targets) - 1
    decoder_ids = torch.full((len(rows), width), specials.eot, dtype=torch.long)
    for i, target in enumerate(targets):
        decoder_ids[i, :len(prefix) + len(target) - 1] = torch.tensor(prefix + target[:-1])
    logits = base(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                  decoder_input_ids=decoder_ids.to(hidden.device)).logits
    logprobs = logits[:, len(prefix) - 1:].float().log_softmax(-1)
    return [float(logprobs[i, torch.arange(len(t)), torch.tensor(t)].mean())
            for i, t in enumerate(targets)]


def _no_speech_probs(base: Any, processor: Any, hidden: torch.Tensor,
                     options: DecodeOptions) -> list[float]:
    """Whisper's probability of its no-speech token right after ``<|startoftranscript|>``."""
    specials = special_tokens(processor.tokenizer)
    no_speech_id = specials.no_speech
    if options.no_speech_threshold is None or no_speech_id is None:
        return [0.0] * hidden.shape[0]
    start = torch.full((hidden.shape[0], 1), specials.sot, dtype=torch.long,
                       device=hidden.device)
    logits = base(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                  decoder_input_ids=start).logits[:, 0].float()
    return [float(p) for p in logits.softmax(-1)[:, no_speech_id]]


def _unconfident_rows(base: Any, processor: Any, hidden: torch.Tensor, rows: list[list[int]],
                      no_speech: list[float], options: DecodeOptions) -> set[int]:
    """Rows Whisper itself judges to hold no speech (the rule of OpenAI's decoder).

    A row is dropped when its no-speech probability exceeds ``no_speech_threshold`` *and* its
    tokens' average log-probability is below ``logprob_threshold``: confident text is kept
    even when the no-speech probability is high.
    """
    threshold = options.no_speech_threshold
    if threshold is None:
        return set()
    specials = special_tokens(processor.tokenizer)
    prefix = list(specials.prefix(language_id(processor.tokenizer, options.language)))
    silent = set()
    for i in (i for i, p in enumerate(no_speech) if p > threshold):
        # Teacher-forced pass over this row only: cheap, and suspects are rare.
        target = [*rows[i], specials.eot]
        decoder_ids = torch.tensor([prefix + target[:-1]], device=hidden.device)
        logits = base(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[i:i + 1]),
                      decoder_input_ids=decoder_ids).logits
        logprobs = logits[0, len(prefix) - 1:].float().log_softmax(-1)
        chosen = logprobs.gather(1, torch.tensor(target, device=hidden.device)[:, None])
        if float(chosen.mean()) < options.logprob_threshold:
            silent.add(i)
    return silent


def _features(processor: Any, chunks: Sequence[np.ndarray], frames: int | None) -> torch.Tensor:
    """Log-mel features normalized as for a 30 s window, then cut to ``frames`` if given.

    Cutting the 30 s features (rather than computing on the shortened clip) keeps Whisper's
    per-window normalization exactly as in training and standard decoding.
    """
    feats = processor.feature_extractor(list(chunks), sampling_rate=SAMPLE_RATE,
                                        return_tensors="pt").input_features
    return feats if frames is None else feats[:, :, :frames]


def decode_audio(model: Any, processor: Any, audios: Sequence[np.ndarray],
                 options: DecodeOptions = DecodeOptions(), progress: bool = True,
                 ) -> list[DecodeResult]:
    """Transcribe 16 kHz mono clips of any length, in batches.

    Clips longer than 30 s are cut at quiet moments and their chunk transcripts joined (a
    result is looped if any chunk looped). Silent clips and silent chunks give an empty
    transcript without running the model.

    Args:
        model: ``WhisperForConditionalGeneration`` or a peft model wrapping it.
        processor: Its ``WhisperProcessor``.
        audios: float32 mono clips at 16 kHz (see :func:`whisper_ja.audio.io.load_audio`).
        options: Decoding settings.
        progress: Show a progress bar (counted in clips).

    Returns:
        One result per clip, in input order.
    """
    owners: list[int] = []
    chunks: list[np.ndarray] = []
    for index, audio in enumerate(audios):
        for chunk in split_long_audio(np.asarray(audio, dtype=np.float32)):
            owners.append(index)
            chunks.append(chunk)
    chunk_results: list[DecodeResult | None] = [
        DecodeResult("", (), False) if is_silent(c) else None for c in chunks]
    pending = [i for i, r in enumerate(chunk_results) if r is None]
    with tqdm(total=len(pending), disable=not progress, unit="chunk", desc="decoding") as bar:
        for start in range(0, len(pending), options.batch_size):
            batch = pending[start:start + options.batch_size]
            feats = _features(processor, [chunks[i] for i in batch], options.context_frames)
            for i, result in zip(batch, decode_features(model, processor, feats, options),
                                 strict=True):
                chunk_results[i] = result
            bar.update(len(batch))
    merged: list[list[DecodeResult]] = [[] for _ in audios]
    for owner, maybe in zip(owners, chunk_results, strict=True):
        if maybe is not None:
            merged[owner].append(maybe)
    return [DecodeResult(text="".join(r.text for r in parts),
                         token_ids=tuple(t for r in parts for t in r.token_ids),
                         looped=any(r.looped for r in parts),
                         looped_unguarded=any(r.looped_unguarded for r in parts))
            for parts in merged]

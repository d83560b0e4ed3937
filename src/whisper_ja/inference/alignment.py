"""Word timestamps by cross-attention DTW, and choosing the heads that align after training.

A few decoder cross-attention heads of Whisper follow the audio monotonically (the *alignment
heads*). Their attention of text tokens over encoder positions, normalized and smoothed, is a
cost matrix; dynamic time warping finds the monotonic path through it, and the position where
the path reaches a token is that token's start (OpenAI's ``whisper/timing.py``).

Fine-tuning moves which heads align. :func:`select_alignment_heads` scores every head by how
well its own DTW path meets known boundaries (token index -> time, e.g. the sentence starts of
a multi-sentence clip) and keeps the best; :func:`write_alignment_heads` stores them in a
transformers folder's ``generation_config.json`` and a CTranslate2 folder's ``config.json``
(where faster-whisper reads them).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.audio.constants import SAMPLE_RATE, TOKENS_PER_SECOND
from whisper_ja.data.timestamps import TimestampVocab
from whisper_ja.inference.timestamps import Word, group_words, word_spans

__all__ = ["AlignmentSample", "alignment_sample", "anchor_error", "default_heads", "dtw_path",
           "eager_attention", "group_words", "head_errors", "select_alignment_heads",
           "timed_text", "token_starts", "word_spans", "word_timings", "write_alignment_heads"]

MEDIAN_WIDTH = 7
"""Median filter width over encoder positions (OpenAI's ``medfilt_width``)."""


def default_heads(model: Any) -> list[tuple[int, int]]:
    """The model's alignment heads, else every head of the decoder's second half (OpenAI)."""
    config = model.generation_config
    heads = getattr(config, "alignment_heads", None)
    if heads:
        return [(int(layer), int(head)) for layer, head in heads]
    layers, per_layer = model.config.decoder_layers, model.config.decoder_attention_heads
    return [(layer, head) for layer in range(layers // 2, layers) for head in range(per_layer)]


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through ``cost`` ``(N tokens, T positions)``.

    Written by hand (no DTW library is among the dependencies). Each row is computed at once:
    with ``a[j]`` the best arrival from the row above (diagonal or down) and ``S`` the row's
    prefix sums, the best cost is ``S[j] + min over k <= j of (a[k] - S[k])``, a running
    minimum; so only the N rows loop in Python, not the N x T cells.

    Returns:
        ``(token indices, position indices)`` along the path, from (0, 0) to (N-1, T-1).
    """
    rows, cols = cost.shape
    previous = np.full(cols + 1, np.inf)
    previous[0] = 0.0
    # move per cell: 0 diagonal, 1 from the row above, 2 from the left
    moves = np.zeros((rows + 1, cols + 1), dtype=np.int8)
    for i in range(1, rows + 1):
        diagonal, above = previous[:-1], previous[1:]
        from_above = np.minimum(diagonal, above)
        arrive = np.concatenate([[np.inf], cost[i - 1] + from_above])
        sums = np.concatenate([[0.0], np.cumsum(cost[i - 1])])
        left = sums + np.minimum.accumulate(arrive - sums)
        current = np.minimum(arrive, left)
        moves[i, 1:] = np.where(left[1:] < arrive[1:], 2, np.where(diagonal <= above, 0, 1))
        previous = current
    i, j = rows, cols
    path: list[tuple[int, int]] = []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        move = moves[i, j]
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    path.reverse()
    tokens, positions = zip(*path, strict=True)
    return np.asarray(tokens), np.asarray(positions)


def _smoothed(weights: torch.Tensor) -> torch.Tensor:
    """Normalize ``(heads, N, T)`` attention per position over tokens, median filter along T."""
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = (weights - mean) / (std + 1e-8)
    pad = MEDIAN_WIDTH // 2
    if weights.shape[-1] > pad:
        padded = torch.nn.functional.pad(weights, (pad, pad), mode="reflect")
        weights = padded.unfold(-1, MEDIAN_WIDTH, 1).median(dim=-1).values
    return weights


def token_starts(attention: torch.Tensor, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (seconds from the window's start) of each token by DTW.

    Args:
        attention: ``(heads, N, 1500)`` cross-attention of the chosen heads for N text tokens.
        positions: Encoder positions that hold audio (seconds x 50).
    """
    weights = attention[:, :, :max(positions, 1)].float()
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-8)
    matrix = _smoothed(weights).mean(0).numpy()
    tokens, times = dtw_path(-matrix.astype(np.float64))
    jumps = np.concatenate([[True], np.diff(tokens) > 0])
    starts = times[jumps] / TOKENS_PER_SECOND
    ends = np.concatenate([starts[1:], [(times[-1] + 1) / TOKENS_PER_SECOND]])
    return starts, ends


@contextlib.contextmanager
def eager_attention(base: Any, needed: bool = True) -> Iterator[None]:
    """Switch to eager attention for a pass that must return attention weights (SDPA cannot)."""
    previous = getattr(base.config, "_attn_implementation", None)
    if not needed or previous in (None, "eager"):
        yield
        return
    base.set_attn_implementation("eager")
    try:
        yield
    finally:
        base.set_attn_implementation(previous)


@torch.inference_mode()
def timed_text(model: Any, encoder_state: torch.Tensor, prefix: Sequence[int],
               text: Sequence[int], window_seconds: float,
               probe: int) -> tuple[np.ndarray, np.ndarray]:
    """Token starts of a window's text by DTW, and the probability of ``probe`` after each.

    One teacher-forced pass of ``prefix + text`` without timestamps: the context in which
    CTranslate2's ``Whisper.align`` times tokens and scores them, so the two backends read
    the same numbers.

    Args:
        model: The Whisper model (peft wrappers allowed).
        encoder_state: ``(1, positions, width)`` encoder output of the window.
        prefix: The task prefix (``<|startoftranscript|><|ja|><|transcribe|>``).
        text: The window's text token ids.
        window_seconds: Audio in the window.
        probe: A token id.

    Returns:
        Each text token's start (seconds from the window's start), and
        ``P(probe | prefix + text[:k])`` for ``k = 0 .. len(text)``.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    with eager_attention(base):
        out = base(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_state),
                   decoder_input_ids=torch.tensor([[*prefix, *text]],
                                                  device=encoder_state.device),
                   output_attentions=True)
    # the row of input i predicts token i + 1: text token k's row is len(prefix) - 1 + k
    first = len(prefix) - 1
    attention = torch.stack([out.cross_attentions[layer][0, head, first:first + len(text)]
                             for layer, head in default_heads(base)]).cpu()
    starts, _ = token_starts(attention, round(window_seconds * TOKENS_PER_SECOND))
    probs = out.logits[0, first:first + len(text) + 1].float().softmax(-1)[:, probe]
    return starts, probs.cpu().numpy()


def word_timings(model: Any, tokenizer: Any, token_ids: Sequence[int],
                 cross_attention: torch.Tensor, vocab: TimestampVocab, eot: int,
                 offset: float, window_seconds: float = 30.0) -> list[Word]:
    """Word times (file seconds) of one window's generated text.

    Words are runs of tokens that decode to whole characters (Japanese has no spaces; a
    character may span tokens), as OpenAI splits Japanese.

    Args:
        model: The Whisper model (its alignment heads).
        tokenizer: Its tokenizer.
        token_ids: The window's generated ids (timestamps included).
        cross_attention: ``(layers, heads, len(token_ids), 1500)`` attention of those ids.
        vocab: Timestamp ids.
        eot: ``<|endoftext|>`` (ids below it are text).
        offset: The window's start in the file (seconds).
        window_seconds: Audio in the window.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    keep = [i for i, t in enumerate(token_ids) if t < eot]
    if not keep:
        return []
    heads = default_heads(base)
    chosen = torch.stack([cross_attention[layer, head] for layer, head in heads])[:, keep]
    starts, ends = token_starts(chosen, round(window_seconds * TOKENS_PER_SECOND))
    return group_words([token_ids[i] for i in keep], starts, ends, tokenizer, offset)


@dataclass(frozen=True)
class AlignmentSample:
    """One clip's cross-attention and its known boundaries.

    Attributes:
        attention: ``(layers, heads, N, positions)`` cross-attention of the reference tokens.
        anchors: ``(token index, seconds)`` pairs: where known tokens start.
    """

    attention: torch.Tensor
    anchors: tuple[tuple[int, float], ...]


@torch.inference_mode()
def alignment_sample(model: Any, processor: Any, audio: np.ndarray,
                     segments: Sequence[tuple[float, str]]) -> AlignmentSample:
    """Teacher-forced cross-attention of a clip's reference text (plain, untimed labels).

    Args:
        model: The Whisper model (peft wrappers allowed).
        processor: Its processor.
        audio: 16 kHz clip of at most 30 s.
        segments: ``(start seconds, text)`` of each sentence, in order: each sentence's first
            token becomes an anchor at its start.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tokenizer = processor.tokenizer
    prefix = list(tokenizer.prefix_tokens)  # the Japanese task prefix, with <|notimestamps|>
    ids: list[int] = []
    anchors = []
    for start, text in segments:
        anchors.append((len(ids), float(start)))
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
    features = processor.feature_extractor([audio], sampling_rate=SAMPLE_RATE,
                                           return_tensors="pt").input_features
    hidden = base.get_encoder()(features.to(base.device, base.dtype)).last_hidden_state
    with eager_attention(base):
        out = base(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                   decoder_input_ids=torch.tensor([prefix + ids], device=base.device),
                   output_attentions=True)
    positions = round(audio.size / SAMPLE_RATE * TOKENS_PER_SECOND)
    # the row of input i predicts token i + 1: token k's attention is at row len(prefix)-1+k
    rows = slice(len(prefix) - 1, len(prefix) - 1 + len(ids))
    attention = torch.stack([a[0, :, rows, :positions] for a in out.cross_attentions]).cpu()
    return AlignmentSample(attention.float(), tuple(anchors))


def head_errors(samples: Sequence[AlignmentSample]) -> np.ndarray:
    """Median anchor error (seconds) of every head aligning alone, ``(layers, heads)``."""
    layers, heads = samples[0].attention.shape[:2]
    errors = np.zeros((layers, heads))
    for layer in range(layers):
        for head in range(heads):
            misses: list[float] = []
            for sample in samples:
                starts, _ = token_starts(sample.attention[layer, head][None],
                                         sample.attention.shape[-1])
                misses.extend(abs(float(starts[i]) - t) for i, t in sample.anchors
                              if i < len(starts))
            errors[layer, head] = float(np.median(misses)) if misses else np.inf
    return errors


def anchor_error(samples: Sequence[AlignmentSample], heads: Sequence[tuple[int, int]]) -> float:
    """Median anchor error (seconds) of DTW over ``heads`` together (as word timing uses them)."""
    misses: list[float] = []
    for sample in samples:
        chosen = torch.stack([sample.attention[layer, head] for layer, head in heads])
        starts, _ = token_starts(chosen, sample.attention.shape[-1])
        misses.extend(abs(float(starts[i]) - t) for i, t in sample.anchors if i < len(starts))
    return float(np.median(misses)) if misses else float("inf")


def select_alignment_heads(samples: Sequence[AlignmentSample], count: int = 8,
                           ) -> list[tuple[int, int]]:
    """The ``count`` heads whose own DTW alignment best meets the known boundaries.

    Returns:
        ``(layer, head)`` pairs, best first.
    """
    if not samples:
        raise ValueError("select_alignment_heads needs at least one sample")
    errors = head_errors(samples)
    order = np.argsort(errors, axis=None, kind="stable")[:count]
    return [(int(i) // errors.shape[1], int(i) % errors.shape[1]) for i in order]


def write_alignment_heads(folder: Path, heads: Sequence[tuple[int, int]]) -> Path:
    """Store alignment heads where transformers or faster-whisper reads them.

    A transformers folder gets them in ``generation_config.json``; a CTranslate2 folder
    (``model.bin``) in ``config.json``.

    Returns:
        The file written.
    """
    pairs = [[int(layer), int(head)] for layer, head in heads]
    target = folder / ("config.json" if (folder / "model.bin").is_file()
                       else "generation_config.json")
    data = json.loads(target.read_text("utf-8")) if target.is_file() else {}
    data["alignment_heads"] = pairs
    target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return target

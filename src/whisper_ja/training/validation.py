"""In-domain validation of a training run: corpus CER of greedy decoding, Japanese forced.

:func:`validate` decodes the run's validation examples (features in memory) with the model
being trained; :func:`validate_decoded` decodes the validation utterances with a
:class:`~whisper_ja.inference.clip_decoders.ClipDecoder` (the gate's CTranslate2 snapshot, so
one export serves validation and the versatility gate alike).
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from whisper_ja.audio.features import context_frames
from whisper_ja.data.collate import Example, collate
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.clip_decoders import ClipDecoder
from whisper_ja.inference.decoding import DecodeOptions, decode_features
from whisper_ja.text.metrics import cer
from whisper_ja.training.settings import TrainConfig

__all__ = ["validate", "validate_decoded"]


def validate(model: Any, processor: Any, examples: list[Example], config: TrainConfig,
             accelerator: Accelerator) -> float:
    """Corpus CER of greedy decoding (Japanese forced) on ``examples``.

    Decoding uses the run's context policy, so validation sees the encoder input training sees.
    """
    policy = config.efficiency.context
    was_training = model.training
    model.eval()
    hypotheses: list[str] = []
    size = config.optim.batch_size
    for start in tqdm(range(0, len(examples), size), desc="validate", leave=False,
                      disable=not config.run.progress):
        batch = collate(examples[start:start + size],
                        frames=lambda longest: context_frames(longest, policy))
        features = batch["input_features"].to(accelerator.device)
        options = DecodeOptions(context_frames=features.shape[-1] if policy.dynamic else None,
                                batch_size=len(batch["lengths"]),
                                max_new_tokens=config.run.val_max_new_tokens)
        with torch.no_grad(), accelerator.autocast():
            results = decode_features(model, processor, features, options)
        hypotheses.extend(r.text for r in results)
    model.train(was_training)
    return float(cer([e.text for e in examples], hypotheses).rate)


def validate_decoded(decoder: ClipDecoder, utterances: list[Utterance]) -> float:
    """Corpus CER of ``decoder`` (Japanese forced) on the validation utterances.

    The decoder sizes the encoder input by the run's context policy (recorded in its
    snapshot), as :func:`validate` does.
    """
    decoded = decoder.decode(utterances, "ja")
    hyps = [r.text if r is not None else "" for r in decoded.results]
    return float(cer([u.text for u in utterances], hyps).rate)

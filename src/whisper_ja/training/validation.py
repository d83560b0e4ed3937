"""In-domain validation of a training run: corpus CER of greedy decoding, Japanese forced.

:func:`validate` decodes the run's validation examples (features in memory) with the model
being trained; :func:`validate_decoded` decodes the validation utterances with a
:class:`~whisper_ja.inference.engine.Engine` (the gate's CTranslate2 snapshot, so
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
from whisper_ja.inference.backends.hf import HfBackend
from whisper_ja.inference.engine import Engine
from whisper_ja.inference.guards import decode_windows
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.model.loading import LoadedWhisper
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
    # The features are in memory already: the backend encodes them as they are, and decoding
    # (guards, silence rule) is the engine's own, as on every path.
    backend = HfBackend(LoadedWhisper(model, processor, "training"),
                        context="dynamic" if policy.dynamic else "full", policy=policy)
    options = DecodingOptions(batch_size=size, max_new_tokens=config.run.val_max_new_tokens)
    eot = backend.vocabulary.specials.eot
    for start in tqdm(range(0, len(examples), size), desc="validate", leave=False,
                      disable=not config.run.progress):
        batch = collate(examples[start:start + size],
                        frames=lambda longest: context_frames(longest, policy))
        features = batch["input_features"].to(accelerator.device)
        with torch.no_grad(), accelerator.autocast():
            encoded = backend.encode_features(features, [0.0] * features.shape[0])
            results = decode_windows(backend, encoded, range(encoded.rows), options,
                                     timestamps=False)
        hypotheses.extend("" if r.silent else
                          backend.decode_text([t for t in r.ids if t < eot]).strip()
                          for r in results)
    model.train(was_training)
    return float(cer([e.text for e in examples], hypotheses).rate)


def validate_decoded(decoder: Engine, utterances: list[Utterance]) -> float:
    """Corpus CER of ``decoder`` (Japanese forced) on the validation utterances.

    The decoder sizes the encoder input by the run's context policy (recorded in its
    snapshot), as :func:`validate` does.
    """
    decoded = decoder.decode_utterances(utterances, language="ja")
    hyps = [r.text if r is not None else "" for r in decoded.results]
    return float(cer([u.text for u in utterances], hyps).rate)

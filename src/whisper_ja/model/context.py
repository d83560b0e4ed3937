"""Dynamic audio context: run Whisper's encoder on the frames a batch needs, not always 30 s.

Whisper pads every input to 30 s (3000 mel frames, 1500 encoder positions). Japanese corpora are
clips of a few seconds, so during fine-tuning most encoder work is spent on padding.
transformers' ``WhisperEncoder.forward`` refuses any other length; this module makes the one
small change needed, without forking transformers:

- :func:`enable_dynamic_context` swaps the model's encoder to :class:`DynamicContextEncoder`, a
  ``WhisperEncoder`` subclass whose ``forward`` accepts any even number of frames ``T <= 3000``
  and adds the first ``T // 2`` rows of the positional table (exactly the rows the stock encoder
  adds to those positions, so the math is unchanged: the encoder simply sees less padding).
  No attention mask is added: like stock Whisper, every position attends to every other one,
  padding included, because that is how Whisper was pre-trained; the decoder's cross-attention
  sees exactly ``T // 2`` encoder positions.
- ``generate()`` of transformers pads shorter features back to 3000 frames *with zeros* (not
  Whisper's silence value), so the model's ``generate`` is wrapped to run the encoder itself on
  short inputs and hand ``encoder_outputs`` to the stock ``generate``.
- The flag ``whisper_ja_dynamic_context=True`` is written to ``model.config`` so
  ``save_pretrained`` keeps it; :func:`apply_saved_context` re-enables it after loading (from the
  config, or from :data:`CONTEXT_MARKER` in an adapter folder, since peft saves no base config).

It works under peft wrapping (the encoder module is the same object, only its class changes),
gradient checkpointing (layers are called exactly as the stock encoder calls them), ``generate``
and ``save_pretrained``/``from_pretrained``.

:class:`EncoderOutputCache` optionally caches encoder outputs on disk when the encoder is frozen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.modeling_whisper import (
    WhisperEncoder,
    WhisperForConditionalGeneration,
)
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.model.record import recorded_policy

__all__ = [
    "saved_policy",
    "CONFIG_FLAG",
    "CONTEXT_MARKER",
    "DynamicContextEncoder",
    "EncoderOutputCache",
    "apply_saved_context",
    "enable_dynamic_context",
    "encode_any_length",
    "save_context_marker",
    "uses_dynamic_context",
]

CONFIG_FLAG = "whisper_ja_dynamic_context"
"""``model.config`` attribute recording that the model runs with dynamic context."""

CONTEXT_MARKER = "whisper_ja_context.json"
"""File written next to a saved adapter, recording the context mode (peft saves no base config)."""


def _position_rows(embedding: nn.Embedding, positions: int) -> torch.Tensor:
    """The positional embeddings of the first ``positions`` encoder positions.

    A module-level function (not inlined) so the tests can substitute a wrong slice and check
    that the correctness test catches it.
    """
    return embedding.weight[:positions]


class DynamicContextEncoder(WhisperEncoder):
    """``WhisperEncoder`` that accepts any even number of mel frames up to 3000.

    Identical to the stock encoder at 3000 frames; on ``T`` frames it adds the first ``T // 2``
    positional rows. Installed on an existing encoder by :func:`enable_dynamic_context` (class
    swap: weights, hooks and peft layers stay in place).
    """

    @merge_with_config_defaults
    @capture_outputs
    def forward(  # type: ignore[override]
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        """Encode ``input_features`` of shape ``(batch, n_mels, T)``, ``T`` even and <= 3000.

        ``attention_mask`` is accepted for signature compatibility and ignored, as in the stock
        encoder (Whisper attends over its padding; see the module docstring).

        Raises:
            ValueError: if ``T`` is odd, zero or longer than the positional table allows.
        """
        stride = self.conv1.stride[0] * self.conv2.stride[0]
        longest = self.embed_positions.num_embeddings * stride
        frames = input_features.shape[-1]
        if frames <= 0 or frames > longest or frames % stride:
            raise ValueError(
                f"dynamic-context Whisper encoder needs a multiple of {stride} mel frames between "
                f"{stride} and {longest}, got {frames}")
        inputs_embeds = nn.functional.gelu(self.conv1(input_features))
        inputs_embeds = nn.functional.gelu(self.conv2(inputs_embeds))
        inputs_embeds = inputs_embeds.permute(0, 2, 1)
        hidden_states = inputs_embeds + _position_rows(self.embed_positions, inputs_embeds.shape[1])
        hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
        for encoder_layer in self.layers:
            # LayerDrop, as in the stock encoder.
            if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
                continue
            hidden_states = encoder_layer(hidden_states, None, **kwargs)
        hidden_states = self.layer_norm(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states)


def _full_frames(model: WhisperForConditionalGeneration) -> int:
    encoder = model.get_encoder()
    return int(encoder.embed_positions.num_embeddings * encoder.conv1.stride[0]
               * encoder.conv2.stride[0])


def _dynamic_generate(self: WhisperForConditionalGeneration, input_features: Any = None,
                      *args: Any, **kwargs: Any) -> Any:
    """``generate`` that keeps short inputs short (stock ``generate`` pads them to 30 s with 0)."""
    stock = type(self).generate
    if (isinstance(input_features, torch.Tensor) and "encoder_outputs" not in kwargs
            and input_features.shape[-1] < _full_frames(self)):
        with torch.no_grad():
            kwargs["encoder_outputs"] = self.get_encoder()(input_features)
        input_features = None
    if input_features is None and "encoder_outputs" in kwargs:
        # One window, decoded once: without this, a sampled timestamp token makes stock
        # ``generate`` seek inside the window and re-slice ``input_features``, which is None.
        kwargs.setdefault("force_unique_generate_call", True)
    return stock(self, input_features, *args, **kwargs)


def _whisper_modules(
        model: nn.Module) -> tuple[list[WhisperEncoder], list[WhisperForConditionalGeneration]]:
    encoders = [m for m in model.modules() if isinstance(m, WhisperEncoder)]
    generators = [m for m in model.modules() if isinstance(m, WhisperForConditionalGeneration)]
    if not encoders:
        raise TypeError(f"{type(model).__name__} holds no WhisperEncoder; dynamic context "
                        "applies to transformers Whisper models (bare or peft-wrapped)")
    return encoders, generators


def enable_dynamic_context(model: nn.Module) -> None:
    """Let ``model``'s encoder run on any even number of frames up to 3000 (idempotent).

    Works on a ``WhisperForConditionalGeneration``, a ``WhisperModel`` or a peft model wrapping
    one. Records ``whisper_ja_dynamic_context=True`` in ``model.config`` so it is saved.

    Raises:
        TypeError: if the model holds no ``WhisperEncoder``, or a subclass this module does not
            know (its forward could differ from the stock one).
    """
    encoders, generators = _whisper_modules(model)
    for encoder in encoders:
        if type(encoder) not in (WhisperEncoder, DynamicContextEncoder):
            raise TypeError(f"unsupported encoder class {type(encoder).__name__}")
        # Class swap rather than a bound forward: survives deepcopy/pickle, keeps peft layers.
        encoder.__class__ = DynamicContextEncoder
        setattr(encoder.config, CONFIG_FLAG, True)
    for generator in generators:
        if not isinstance(generator.__dict__.get("generate"), types.MethodType):
            # Instance attribute: shadows the class's generate for this model only.
            bound = types.MethodType(_dynamic_generate, generator)
            object.__setattr__(generator, "generate", bound)
        setattr(generator.config, CONFIG_FLAG, True)


def encode_any_length(encoder: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The encoder pass of ``features`` of any even length up to 3000 frames, model unchanged.

    For decoding a stock model at a shorter context (clips, short files) without switching its
    encoder class or marking its config as trained with dynamic context (which a save would
    keep): :class:`DynamicContextEncoder`'s forward, run on the stock encoder as it is.
    """
    if isinstance(encoder, DynamicContextEncoder):
        return encoder(features).last_hidden_state
    if type(encoder) is not WhisperEncoder:
        raise TypeError(f"unsupported encoder class {type(encoder).__name__}")
    return DynamicContextEncoder.forward(encoder, features).last_hidden_state


def uses_dynamic_context(model: nn.Module) -> bool:
    """Whether ``model``'s encoder currently runs with dynamic context."""
    encoders, _ = _whisper_modules(model)
    return all(isinstance(e, DynamicContextEncoder) for e in encoders)


def save_context_marker(model: nn.Module, folder: str | Path) -> Path:
    """Write :data:`CONTEXT_MARKER` into ``folder`` recording ``model``'s context mode.

    Call after saving a peft adapter: peft saves no base-model config, so the config flag would
    otherwise be lost. Returns the marker's path.
    """
    path = Path(folder) / CONTEXT_MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dynamic_context": uses_dynamic_context(model)}) + "\n",
                    encoding="utf-8")
    return path


def apply_saved_context(model: nn.Module, *folders: str | Path | None) -> bool:
    """Re-enable dynamic context on a loaded model that was saved with it.

    Looks at ``model.config.whisper_ja_dynamic_context`` (kept by ``save_pretrained``) and at
    :data:`CONTEXT_MARKER` in each given folder (e.g. the adapter folder). A stock model is left
    alone, so it keeps 30-second decoding. Returns whether dynamic context is now on.

    Raises:
        ValueError: if a marker file is not valid JSON (the message names the file).
    """
    wanted = any(bool(getattr(m.config, CONFIG_FLAG, False))
                 for m in _whisper_modules(model)[0])
    for folder in folders:
        if folder is None:
            continue
        marker = Path(folder) / CONTEXT_MARKER
        if marker.is_file():
            try:
                wanted = wanted or bool(json.loads(marker.read_text("utf-8"))["dynamic_context"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{marker}: not a whisper-ja context marker ({err})") from err
    if wanted:
        enable_dynamic_context(model)
    return wanted


class EncoderOutputCache:
    """On-disk cache of encoder outputs, for training with a frozen encoder.

    With the encoder frozen (decoder-only fine-tuning, or LoRA only on decoder modules) and no
    SpecAugment on the input, the encoder output of an utterance depends only on its features
    and the context length, so it is computed once and reused every epoch. Entries are keyed by
    a fingerprint of the encoder weights, the utterance's feature key and the frame count, so a
    changed encoder or context never returns stale outputs. Stored as float16 (halves disk use;
    the decoder sees float32 again).

    Attributes:
        hits: Outputs read from disk.
        misses: Outputs computed (and written).
    """

    def __init__(self, folder: str | Path, model: nn.Module) -> None:
        """Open (create) the cache in ``folder`` for ``model``'s encoder.

        Raises:
            ValueError: if any encoder parameter is trainable (its outputs would go stale).
        """
        encoder = _whisper_modules(model)[0][0]
        trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
        if trainable:
            raise ValueError(f"encoder output cache needs a frozen encoder; trainable: "
                             f"{', '.join(trainable[:3])}{' ...' if len(trainable) > 3 else ''}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.encoder = encoder
        digest = hashlib.sha256()
        for name, tensor in sorted(encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.hits = 0
        self.misses = 0

    def _path(self, key: str, frames: int) -> Path:
        name = hashlib.sha256(f"{self.fingerprint}|{key}|{frames}".encode()).hexdigest()
        return self.folder / name[:2] / f"{name}.npy"

    def encode(self, keys: Sequence[str], features: torch.Tensor) -> torch.Tensor:
        """Encoder outputs ``(B, T // 2, d_model)`` of ``features`` ``(B, n_mels, T)``.

        Args:
            keys: One stable key per row (e.g. from ``FeatureCache.key``); same key and frame
                count must mean the same features.
            features: The batch, already padded to its context length.
        """
        if len(keys) != features.shape[0]:
            raise ValueError(f"{len(keys)} keys for a batch of {features.shape[0]}")
        frames = int(features.shape[-1])
        rows: list[torch.Tensor | None] = [None] * len(keys)
        for i, key in enumerate(keys):
            path = self._path(key, frames)
            if path.is_file():
                rows[i] = torch.from_numpy(np.load(path).astype(np.float32))
                self.hits += 1
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            with torch.no_grad():
                out = self.encoder(features[missing]).last_hidden_state.float().cpu()
            for j, i in enumerate(missing):
                stored = out[j].numpy().astype(np.float16)
                # Return what later epochs will read back, so every epoch sees the same values.
                rows[i] = torch.from_numpy(stored.astype(np.float32))
                self._write(self._path(keys[i], frames), stored)
            self.misses += len(missing)
        return torch.stack([r for r in rows if r is not None])

    @staticmethod
    def _write(path: Path, array: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, path)  # atomic: concurrent readers never see half a file


def saved_policy(*folders: Path | str | None) -> ContextPolicy:
    """The ``ContextPolicy`` a model was trained with (its ``whisper_ja.json``), dynamic.

    Falls back to the default policy when no folder records one.

    Raises:
        ModelError: a malformed record (named).
    """
    for folder in folders:
        policy = recorded_policy(folder)
        if policy is not None:
            return dataclasses.replace(policy, dynamic=True)
    return ContextPolicy()

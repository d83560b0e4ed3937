"""The transformers backend: :class:`~whisper_ja.inference.backend.Backend` on a PyTorch Whisper.

One loaded ``WhisperForConditionalGeneration`` (bare or peft-wrapped) does the arithmetic the
engine asks for, and nothing else:

- :meth:`HfBackend.encode`: log-mel features normalized as for a 30 s window, cut to the
  batch's context (dynamic context for models trained with it), one encoder pass;
- :meth:`HfBackend.generate`: transformers' ``generate`` on the encoder output, the language
  and task forced, then *one* teacher-forced pass that scores what was generated (OpenAI's
  ``avg_logprob`` and ``no_speech_prob``, as CTranslate2 reports them);
- :meth:`HfBackend.align`: a teacher-forced pass in CTranslate2's ``align`` context
  (``<|startoftranscript|><|xx|><|transcribe|><|notimestamps|>`` + text), cross-attention DTW
  over the alignment heads, and each text token's probability, so both backends time and score
  tokens alike;
- :meth:`HfBackend.detect_language`: one decoder step after ``<|startoftranscript|>``.

Generation runs on the model as given (peft's ``generate`` applies the adapter); forward passes
run on the Whisper model under a peft wrapper (``get_base_model``), which holds the adapter's
layers too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from transformers import LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.audio.constants import SAMPLE_RATE, SAMPLES_PER_CHUNK, TOKENS_PER_SECOND
from whisper_ja.audio.features import FULL_CONTEXT_FRAMES, ContextPolicy, batch_context_frames
from whisper_ja.errors import ConfigError
from whisper_ja.inference.alignment import default_heads, eager_attention, token_starts
from whisper_ja.inference.backend import (
    Alignment,
    Encoded,
    Generated,
    GenerateRequest,
    Vocabulary,
    vocabulary_of,
)
from whisper_ja.inference.backends.hf_generation import RepetitionStop, quiet_transformers
from whisper_ja.model import LoadedWhisper, load_model
from whisper_ja.model.context import (
    apply_saved_context,
    enable_dynamic_context,
    encode_any_length,
    saved_policy,
    uses_dynamic_context,
)
from whisper_ja.model.device import resolve_device, resolve_dtype

__all__ = ["ContextMode", "HfBackend", "HfEncoded"]

ContextMode = Literal["auto", "dynamic", "full"]
"""Encoder input: ``auto`` (as the model was trained), ``dynamic`` (the batch's frames) or
``full`` (Whisper's 30 s)."""


def _base(model: Any) -> Any:
    """The Whisper model under a peft wrapper (the model itself when bare)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@dataclass(frozen=True)
class HfEncoded:
    """The encoder output of a batch of windows.

    Attributes:
        hidden: ``(rows, positions, width)`` encoder output, on the model's device.
        seconds: Audio in each window (seconds, before padding).
    """

    hidden: torch.Tensor
    seconds: tuple[float, ...]

    @property
    def rows(self) -> int:
        """Windows in the batch."""
        return int(self.hidden.shape[0])


def _own(encoded: Encoded) -> HfEncoded:
    """``encoded`` as this backend's own encoder output.

    Raises:
        TypeError: another backend's encoder output (a programming error, not a user's).
    """
    if not isinstance(encoded, HfEncoded):
        raise TypeError(f"the transformers backend got {type(encoded).__name__}, "
                        "not its own encoder output")
    return encoded


def _resolve_context(model: Any, context: str) -> bool:
    """Whether ``model`` is decoded with dynamic context (``runner._context_mode``'s rule)."""
    if context == "auto":
        # A saved flag in the config (kept by save_pretrained) or an encoder already switched
        # by load_model (the adapter's marker) both mean: trained with dynamic context.
        return uses_dynamic_context(model) or apply_saved_context(model)
    if context == "dynamic":
        enable_dynamic_context(model)  # the stock encoder refuses fewer than 3000 frames
        return True
    if context == "full":
        return False
    raise ConfigError(f"context: auto, dynamic or full, got {context!r}")


class HfBackend:
    """One transformers Whisper model behind the backend protocol.

    Args:
        loaded: The model (bare or peft-wrapped) and its processor.
        context: ``auto`` = dynamic context when the model was trained with it, else 30 s.
        policy: How a dynamic batch's frames are counted (default: the library's); its
            ``dynamic`` flag is set from ``context``.

    Raises:
        ConfigError: an unknown ``context``.
        ModelError: the tokenizer lacks a special token decoding needs.
    """

    def __init__(self, loaded: LoadedWhisper, *, context: ContextMode = "auto",
                 policy: ContextPolicy | None = None) -> None:
        self._model = loaded.model
        self._base_model = _base(loaded.model)
        self._processor = loaded.processor
        self._vocabulary = vocabulary_of(loaded.processor.tokenizer)
        dynamic = _resolve_context(loaded.model, context)
        self._policy = replace(policy or ContextPolicy(), dynamic=dynamic)

    @classmethod
    def load(cls, model: str, *, adapter: str | None = None, device: str = "auto",
             dtype: str = "auto", context: ContextMode = "auto",
             policy: ContextPolicy | None = None) -> HfBackend:
        """Load a model (hub id or folder, optional peft adapter) as a backend.

        Args:
            model: Hub id, transformers folder or CTranslate2 folder
                (:func:`whisper_ja.model.load_model`).
            adapter: A peft adapter folder applied on top.
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
            dtype: ``auto`` or a dtype name (:func:`whisper_ja.model.device.resolve_dtype`).
            context: As for the constructor.
            policy: The dynamic context policy; None = the one the model or adapter was
                trained with (``whisper_ja.json``), else the library's.

        Raises:
            ConfigError: a bad device, dtype or context setting.
            ModelError: the model cannot be loaded or used.
        """
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        loaded = load_model(model, adapter=adapter, device=torch_device, dtype=torch_dtype)
        if policy is None:
            policy = saved_policy(adapter, model)
        return cls(loaded, context=context, policy=policy)

    @property
    def name(self) -> str:
        """``transformers``."""
        return "transformers"

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's special ids."""
        return self._vocabulary

    @property
    def policy(self) -> ContextPolicy:
        """How the encoder input is sized (``dynamic`` off = always 30 s)."""
        return self._policy

    @property
    def max_positions(self) -> int:
        """Decoder positions (``config.max_target_positions``)."""
        return int(self._base_model.config.max_target_positions)

    def decode_text(self, ids: Sequence[int]) -> str:
        """Text of token ids; special and timestamp ids are skipped."""
        # Filtered here rather than trusting skip_special_tokens: whether a tokenizer counts
        # timestamp tokens as special differs between tokenizer files.
        text = [int(t) for t in ids if self._vocabulary.is_text(int(t))]
        return str(self._processor.tokenizer.decode(text, skip_special_tokens=True))

    def encode_text(self, text: str) -> list[int]:
        """Text ids of ``text`` as a previous-text prompt (OpenAI's: a leading space)."""
        ids = self._processor.tokenizer.encode(" " + text.strip(), add_special_tokens=False)
        return [int(t) for t in ids]

    @torch.inference_mode()
    def encode(self, audios: Sequence[np.ndarray], policy: ContextPolicy | None = None,
               ) -> HfEncoded:
        """Features and the encoder pass of windows of at most 30 s (16 kHz float32).

        Raises:
            ValueError: no window, or a window longer than 30 s.
        """
        windows = [np.asarray(a, dtype=np.float32) for a in audios]
        if not windows:
            raise ValueError("encode needs at least one window")
        if any(w.size > SAMPLES_PER_CHUNK for w in windows):
            raise ValueError("encode takes windows of at most 30 s")
        features = self._processor.feature_extractor(
            windows, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        # Cut after computing 30 s features: Whisper normalizes over the padded 30 s window,
        # which is what the model saw in training and standard decoding.
        features = features[..., :batch_context_frames(windows, policy or self._policy)]
        return self.encode_features(features, [w.size / SAMPLE_RATE for w in windows])

    @torch.inference_mode()
    def encode_features(self, features: torch.Tensor, seconds: Sequence[float]) -> HfEncoded:
        """The encoder pass of log-mel features already computed (training's validation).

        Args:
            features: ``(rows, n_mels, frames)`` normalized as for a 30 s window.
            seconds: Audio in each row.
        """
        base, encoder = self._base_model, self._base_model.get_encoder()
        features = features.to(device=base.device, dtype=base.dtype)
        # A stock encoder refuses fewer than 3000 frames: a shorter batch (a one-window
        # context, see Engine.one_window) runs without switching the model's encoder
        # (encode_any_length calls a dynamic-context encoder as it is).
        hidden = (encoder(features).last_hidden_state
                  if features.shape[-1] == FULL_CONTEXT_FRAMES
                  else encode_any_length(encoder, features))
        return HfEncoded(hidden, tuple(float(s) for s in seconds))

    @torch.inference_mode()
    def generate(self, encoded: Encoded, rows: Sequence[int], request: GenerateRequest,
                 ) -> list[Generated]:
        """Generate ``rows`` of an encoded batch, one :class:`Generated` per row, in order."""
        if not rows:
            return []
        # a fresh tensor of the rows: beam search expands its input in place
        hidden = _own(encoded).hidden[list(rows)]
        generated = self._generate_ids(hidden, request)
        scores = self._score(hidden, generated, request)
        return [Generated(tuple(ids), avg_logprob, no_speech,
                          hit_limit=len(ids) >= request.max_new_tokens)
                for ids, (avg_logprob, no_speech) in zip(generated, scores, strict=True)]

    def _generate_ids(self, hidden: torch.Tensor, request: GenerateRequest) -> list[list[int]]:
        """Run ``generate``: the ids after the last start token, text and timestamps."""
        specials, stamps = self._vocabulary.specials, self._vocabulary.timestamps
        kwargs: dict[str, Any] = {"num_beams": request.beams, "do_sample": False}
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, num_beams=1)
        if request.prompt:
            kwargs["prompt_ids"] = torch.tensor([specials.prev_text, *request.prompt],
                                                device=hidden.device)
        if request.stop_repeats > 0:
            kwargs["logits_processor"] = LogitsProcessorList(
                [RepetitionStop(specials.sot, specials.eot, request.stop_repeats)])
        devices = [hidden.device] if hidden.device.type == "cuda" else []
        with quiet_transformers(), torch.random.fork_rng(devices=devices):
            # Seeded inside a forked generator: the same call samples the same ids, and the
            # caller's random stream is left as it was.
            torch.manual_seed(request.seed)
            output = self._model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                language=request.language, task="transcribe",
                return_timestamps=request.timestamps, max_new_tokens=request.max_new_tokens,
                # one pass per window: the engine seeks itself (transformers' own long-form
                # loop would seek again, and re-slice input features it does not have)
                force_unique_generate_call=True, **kwargs)
        sequences = output.sequences if hasattr(output, "sequences") else output
        kept = []
        for row in sequences.tolist():
            start = len(row) - row[::-1].index(specials.sot) if specials.sot in row else 0
            kept.append([t for t in row[start:] if specials.is_text(t)
                         or (request.timestamps and stamps.is_timestamp(t))])
        return kept

    def _prefix(self, language: str, timestamps: bool) -> list[int]:
        """The task prefix generation ran with (``<|notimestamps|>`` when timestamps are off)."""
        prefix = list(self._vocabulary.prefix(language))
        return prefix if timestamps else [*prefix, self._vocabulary.specials.no_timestamps]

    def _score(self, hidden: torch.Tensor, generated: list[list[int]],
               request: GenerateRequest) -> list[tuple[float, float]]:
        """``(avg_logprob, no_speech_prob)`` of each row: one teacher-forced pass.

        The context is what generation saw (prompt, prefix, ids); the mean runs over the ids
        and the end token, the prompt not scored (OpenAI's ``avg_logprob``); the no-speech
        probability is read at ``<|startoftranscript|>``, after the prompt.
        """
        specials = self._vocabulary.specials
        head = [specials.prev_text, *request.prompt] if request.prompt else []
        sot_at = len(head)
        context = [*head, *self._prefix(request.language, request.timestamps)]
        first = len(context) - 1  # the row whose output predicts the first generated id
        width = len(context) + max(len(ids) for ids in generated)
        # right-padded with end-of-text: decoding is causal, so padding never reaches a row's
        # own positions
        inputs = torch.full((len(generated), width), specials.eot, dtype=torch.long)
        for i, ids in enumerate(generated):
            inputs[i, :len(context) + len(ids)] = torch.tensor([*context, *ids])
        base = self._base_model
        states = base.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                            decoder_input_ids=inputs.to(hidden.device)).last_hidden_state
        scores = []
        for i, ids in enumerate(generated):
            targets = torch.tensor([*ids, specials.eot], device=hidden.device)
            # Only the scored positions go through the vocabulary projection: full logits of a
            # batch with a long prompt would take gigabytes.
            logprobs = base.proj_out(states[i, first:first + len(targets)]).float().log_softmax(-1)
            avg = float(logprobs.gather(1, targets[:, None]).mean())
            no_speech = 0.0
            if specials.no_speech is not None:
                start = base.proj_out(states[i, sot_at]).float().softmax(-1)
                no_speech = float(start[specials.no_speech])
            scores.append((avg, no_speech))
        return scores

    @torch.inference_mode()
    def align(self, encoded: Encoded, rows: Sequence[int], texts: Sequence[Sequence[int]],
              language: str) -> list[Alignment]:
        """Time ``texts[j]`` (text ids) in window ``rows[j]`` (teacher-forced, no timestamps).

        The context is CTranslate2's ``Whisper.align``'s: ``<|startoftranscript|><|xx|>
        <|transcribe|><|notimestamps|>`` + text; token probabilities are normalized over the
        text tokens, as CTranslate2 normalizes them. Rows run one at a time: a pass returns
        every layer's cross-attention, whose size grows with the text.
        """
        if len(rows) != len(texts):
            raise ValueError(f"align: {len(rows)} rows for {len(texts)} texts")
        if not all(self._vocabulary.is_text(t) for text in texts for t in text):
            raise ValueError("align takes text ids only (no special or timestamp ids)")
        own = _own(encoded)
        return [self._align_one(own.hidden[row:row + 1], list(text), own.seconds[row], language)
                for row, text in zip(rows, texts, strict=True)]

    def _align_one(self, hidden: torch.Tensor, text: list[int], seconds: float,
                   language: str) -> Alignment:
        """One text's token times and probabilities on one window's encoder output."""
        if not text:
            empty = np.zeros(0, dtype=np.float64)
            return Alignment(empty, empty.copy(), empty.astype(np.float32))
        prefix = self._prefix(language, timestamps=False)
        base = self._base_model
        with eager_attention(base):
            out = base.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                             decoder_input_ids=torch.tensor([[*prefix, *text]],
                                                            device=hidden.device),
                             output_attentions=True)
        # The row of input i predicts token i + 1: rows len(prefix) - 1 .. + len(text) predict
        # the text and then the end token, as CTranslate2's DTW matrix (text + 1 rows).
        first = len(prefix) - 1
        rows = slice(first, first + len(text) + 1)
        attention = torch.stack([out.cross_attentions[layer][0, head, rows]
                                 for layer, head in default_heads(base)]).float().cpu()
        positions = min(round(seconds * TOKENS_PER_SECOND), int(hidden.shape[1]))
        times, _ = token_starts(attention, positions)
        logits = base.proj_out(out.last_hidden_state[0, first:first + len(text)]).float()
        probs = logits[:, :self._vocabulary.specials.eot].softmax(-1)
        chosen = probs.gather(1, torch.tensor(text, device=probs.device)[:, None])[:, 0]
        return Alignment(np.asarray(times[:len(text)], dtype=np.float64),
                         np.asarray(times[1:len(text) + 1], dtype=np.float64),
                         chosen.cpu().numpy())

    @torch.inference_mode()
    def detect_language(self, encoded: Encoded) -> list[str]:
        """The most likely language code of each window (one decoder step after the start)."""
        hidden = _own(encoded).hidden
        codes = list(self._vocabulary.languages)
        ids = torch.tensor([self._vocabulary.languages[c] for c in codes], device=hidden.device)
        start = torch.full((hidden.shape[0], 1), self._vocabulary.specials.sot,
                           dtype=torch.long, device=hidden.device)
        base = self._base_model
        states = base.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                            decoder_input_ids=start).last_hidden_state
        best = base.proj_out(states[:, 0])[:, ids].argmax(-1).tolist()
        return [codes[i] for i in best]

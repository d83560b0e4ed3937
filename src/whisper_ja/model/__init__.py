"""Loading Whisper models: hub ids, local folders, CTranslate2 imports, offline whisper-base.

Contract (used by every other part of whisper-ja):

- ``load_model(name_or_path=DEFAULT_MODEL, *, adapter=None, dtype=torch.float32, device="cpu")
  -> LoadedWhisper`` with ``.model`` (a ``WhisperForConditionalGeneration``, or a peft model
  when ``adapter`` is given), ``.processor`` (``WhisperProcessor``) and ``.source`` (where the
  weights came from). Japanese transcription without timestamps is forced in the model's
  generation config.
- ``tiny_random_whisper(seed=0) -> LoadedWhisper``: randomly initialised tiny-shaped Whisper
  (d_model 384, 4+4 layers, vocab 51865) with the real tokenizer, for fast tests.
- ``special_tokens(tokenizer) -> SpecialTokens``: every special id (sot, eot, ``<|ja|>``,
  task, no-timestamps, previous-text, timestamp base) looked up in the model's own tokenizer by
  its string; ``.ja_prefix`` is the label/prompt prefix sot, ja, transcribe, notimestamps.
  Never use literal ids: they differ between large-v2 and large-v3.
"""

from whisper_ja.model.loading import (
    DEFAULT_MODEL,
    LoadedWhisper,
    ModelLoadError,
    load_model,
    tiny_random_whisper,
)
from whisper_ja.model.offline import OfflineModelError, cache_dir
from whisper_ja.model.tokens import SpecialTokens, special_tokens

__all__ = [
    "DEFAULT_MODEL",
    "LoadedWhisper",
    "ModelLoadError",
    "OfflineModelError",
    "SpecialTokens",
    "cache_dir",
    "load_model",
    "special_tokens",
    "tiny_random_whisper",
]

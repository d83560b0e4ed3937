"""Loading Whisper models: hub ids, local folders, CTranslate2 imports, offline whisper-base.

Contract (used by every other part of whisper-ja):

- ``load_model(name_or_path=DEFAULT_MODEL, *, adapter=None, dtype=torch.float32, device="cpu")
  -> LoadedWhisper`` with ``.model`` (a ``WhisperForConditionalGeneration``, or a peft model
  when ``adapter`` is given), ``.processor`` (``WhisperProcessor``) and ``.source`` (where the
  weights came from). Japanese transcription without timestamps is forced in the model's
  generation config.
- ``tiny_random_whisper(seed=0) -> LoadedWhisper``: randomly initialised tiny-shaped Whisper
  (d_model 384, 4+4 layers, vocab 51865) with the real tokenizer, for fast tests.
- ``JA_PREFIX_IDS``: the label/prompt prefix sot, ja, transcribe, notimestamps.
"""

from whisper_ja.model.loading import (
    DEFAULT_MODEL,
    LoadedWhisper,
    ModelLoadError,
    load_model,
    tiny_random_whisper,
)
from whisper_ja.model.offline import OfflineModelError, cache_dir
from whisper_ja.model.tokens import JA_PREFIX_IDS

__all__ = [
    "DEFAULT_MODEL",
    "JA_PREFIX_IDS",
    "LoadedWhisper",
    "ModelLoadError",
    "OfflineModelError",
    "cache_dir",
    "load_model",
    "tiny_random_whisper",
]

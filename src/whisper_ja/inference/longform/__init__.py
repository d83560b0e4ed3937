"""Long-form decoding on any backend: timed segments of a whole recording, lazily.

Written once against :class:`~whisper_ja.inference.backend.Backend`; both modes run after
Silero VAD (:mod:`whisper_ja.inference.vad`) has found the speech:

- ``sequential`` (OpenAI's and faster-whisper's algorithm): a 30 s window is decoded with
  timestamps, conditioned on the text decoded so far; the next window starts at the last
  timestamp the model wrote, so no sentence is cut at a window border.
- ``batched``: speech stretches joined into windows of at most 30 s, decoded together without
  previous text.

In both, each window's segments are cut at the sentence pauses Whisper wrote through and
snapped onto speech (:mod:`whisper_ja.inference.pause_split`).

**No speech is lost silently.** A window whose text is dropped (the silence rule, a loop the
guards could not replace, no usable timestamps) although VAD heard speech in it is decoded
again: first without the previous text, then cut in two at its longest pause, each half
decoded alone (a window whose greedy reading loops is cut so before it is sampled again).
What is still lost is counted in :class:`LongformStats` (windows, seconds of VAD speech),
which ``transcribe``'s JSON and ``evaluate``'s report show.

- :mod:`.decoder`: one recording's window decoding and its retries (:class:`WindowDecoder`);
- :mod:`.modes`: the sequential and batched loops over it;
- :mod:`.short_files`: many recordings of one window each, batched together.
"""

from whisper_ja.inference.longform.modes import long_audio_segments
from whisper_ja.inference.longform.short_files import short_files_segments
from whisper_ja.inference.windows import LongformStats

__all__ = ["LongformStats", "long_audio_segments", "short_files_segments"]

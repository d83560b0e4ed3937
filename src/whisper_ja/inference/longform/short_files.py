"""Many short files decoded together, each file's speech one window."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.inference.backend import Backend
from whisper_ja.inference.longform.decoder import WindowDecoder, recover
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.inference.timestamps import Segment
from whisper_ja.inference.vad import batch_windows
from whisper_ja.inference.windows import LongformStats, Window

__all__ = ["short_files_segments"]

SHORT_FILE_EDGE_S = 0.2
"""Audio kept each side of a short file's VAD windows, beyond Silero's own 200 ms padding.

Silero's onset comes late on a soft first consonant, and a short file's first word has no
context: 40 SYNTHETIC files (``benchmarks/transcribe_files.py``) CER 17.59% -> 16.53% ("彼女は"
had come out "あの女は"), the demo's 154 clips 17.75% -> 17.54%. Long audio's windows are not
widened (dev long audio: CER 17.12% -> 17.21%). faster-whisper pads every stretch by 400 ms."""


def short_files_segments(backend: Backend, audios: Sequence[np.ndarray],
                         options: DecodingOptions, stats: Sequence[LongformStats],
                         prompt: tuple[int, ...] = (), policy: ContextPolicy | None = None,
                         ) -> list[list[Segment]]:
    """Segments of many recordings of at most 30 s, their windows decoded together.

    Each recording's speech (VAD) is one window; windows of different files share batches of
    ``batch_size``, sorted by length, as ``evaluate`` batches clips: many short files cost
    a fraction of decoding them one by one. Pauses, words, guards and retries apply per file
    as in long audio (:mod:`.modes`); every window gets ``prompt`` (the initial prompt), and
    the encoder runs at ``policy`` (None: the backend's own).
    """
    decoders = [WindowDecoder(backend, np.asarray(a, dtype=np.float32), options, s,
                              single_pass=True, policy=policy)
                for a, s in zip(audios, stats, strict=True)]
    windows = [(i, d.window(span)) for i, d in enumerate(decoders)
               for span in batch_windows(d.audio, options.vad, options.longform.vad,
                                         SHORT_FILE_EDGE_S)]
    windows.sort(key=lambda item: item[1].audio.size)
    found: list[list[Segment]] = [[] for _ in audios]
    for first in range(0, len(windows), options.batch_size):
        batch = windows[first:first + options.batch_size]
        encoded, results, parses = decoders[0].decode(
            [w for _, w in batch], prompt,
            splittable=_splittable(decoders, batch))
        for row, ((owner, window), result, parse) in enumerate(zip(batch, results, parses,
                                                                   strict=True)):
            decoder = decoders[owner]
            decoder.stats.windows += 1
            if parse is not None and not decoder.dropped(result, parse):
                decoder.stats.looped += result.looped
                found[owner].extend(decoder.fill(window, decoder.segments(
                    encoded, [row], [window], [result], [parse])[0]))
            else:
                found[owner].extend(recover(decoder, window, result, encoded, parse, False,
                                             row))
    return [sorted(segments, key=lambda s: s.start) for segments in found]


def _splittable(decoders: Sequence[WindowDecoder], batch: Sequence[tuple[int, Window]],
                ) -> Callable[[int], bool]:
    """Whether a batch row's window can be cut at a pause, asked of its own recording."""
    return lambda index: decoders[batch[index][0]].halves(batch[index][1]) is not None

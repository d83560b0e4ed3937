"""whisper-ja's own CTranslate2 path for clips: batched, at the model's context, guarded.

- :func:`transcribe_audio_ct2`: clips in length-sorted batches, each batch's features only as
  long as the model's context policy says (the export's ``whisper_ja.json``; floor honoured),
  padded with Whisper's silence value, one ``Whisper.generate`` per batch; results are
  faster-whisper ``Segment`` objects. Stock faster-whisper decodes one clip at a time at 30 s:
  on short clips that is most of its time.
- The decoding guards of the transformers path run here too
  (:func:`whisper_ja.inference.guards.guarded_generate`): a row that repeats itself has its
  repeats cut, and a repetitive or unconfident row is decoded again by sampling at rising
  temperatures (OpenAI's fallback). CTranslate2 cannot stop a row mid-generation from Python,
  so the guard cuts each row afterwards where it would have stopped it (the first
  back-to-back repeat, even mid-text); the fallback is what replaces it.
- :func:`detect_language_ct2`: Whisper's language identification on CTranslate2 (the most
  likely language token after ``<|startoftranscript|>``), at the same context.
- :func:`transcribe_ct2`: files to transcripts, through the path above or stock
  faster-whisper (``context="stock"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from whisper_ja.audio.constants import HOP_LENGTH, SAMPLE_RATE
from whisper_ja.audio.features import batch_context_frames, log_mel, pad_features
from whisper_ja.audio.io import is_silent, load_audio, split_long_audio
from whisper_ja.config import ConfigError, field
from whisper_ja.inference.decoding import is_looping
from whisper_ja.inference.faster import (
    check_ct2_folder,
    ct2_avg_logprob,
    export_feature_extractor,
    generate_ct2,
    load_faster_whisper,
    resolve_context,
    task_prompt,
)
from whisper_ja.inference.guards import GuardSettings, guarded_generate
from whisper_ja.model.device import CT2_COMPUTE_TYPES, DEVICE_HELP, check_device

__all__ = ["Ct2Clip", "Ct2Options", "detect_language_ct2", "transcribe_audio_ct2",
           "transcribe_ct2"]


@dataclasses.dataclass(frozen=True)
class Ct2Options:
    """How whisper-ja's own CTranslate2 path decodes (:func:`transcribe_audio_ct2`)."""

    context: Literal["auto", "dynamic", "full"] = field(
        "auto", help="encoder input: auto = the export's recorded policy (stock models: 30 s); "
        "dynamic = the batch's longest clip with the recorded (or default) floor; full = 30 s")
    batch_size: int = field(8, help="clips per CTranslate2 generate call")
    beam_size: int = field(1, help="beam width; 1 = greedy")
    max_new_tokens: int = field(128, help="most tokens per window after the prompt")
    compute_type: str = field("int8", help="CTranslate2 compute type (int8 is fastest on CPU; "
                              "int8_float16 on a GPU; auto = CTranslate2's fastest)")
    cpu_threads: int = field(0, help="CTranslate2 threads (0: its default)")
    device: str = field("auto", help=DEVICE_HELP)
    no_speech_threshold: float | None = field(
        0.6, help="no-speech probability above which an unconfident window is emptied")
    logprob_threshold: float = field(-1.0, help="average log-probability under which such a "
                                     "window counts as unconfident")
    language: str = field("ja", help="forced language code")
    guards: GuardSettings = field(default_factory=GuardSettings,
                                  help="repetition cut and temperature fallback")

    def __post_init__(self) -> None:
        for name in ("batch_size", "beam_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.max_new_tokens <= 440:
            raise ConfigError(f"max_new_tokens: must be in 1..440, got {self.max_new_tokens}")
        check_device(self.device)
        if self.compute_type not in CT2_COMPUTE_TYPES:
            raise ConfigError(f"compute_type: must be one of {', '.join(CT2_COMPUTE_TYPES)}, "
                              f"got {self.compute_type!r}")


@dataclasses.dataclass(frozen=True)
class Ct2Clip:
    """One clip's result: faster-whisper segments (one per window) and the loop flags.

    Attributes:
        segments: The non-empty windows' segments, in time order.
        looped: A window still loops after the guards (cut or not replaced).
        looped_unguarded: A window's first (greedy) attempt looped: what an unguarded
            decoder would have written.
    """

    segments: tuple[Any, ...]
    looped: bool
    looped_unguarded: bool = False

    @property
    def text(self) -> str:
        """The segments' texts joined without spaces, as Japanese is written."""
        return "".join(segment.text for segment in self.segments).strip()


@dataclasses.dataclass(frozen=True)
class _Window:
    """One decoded window: its segment and loop flags."""

    segment: Any
    looped: bool
    looped_unguarded: bool


class _SeededSampler:
    """A copy of the model for the fallback's samples, loaded right after seeding, on demand.

    CTranslate2 seeds a model's worker threads when the model is loaded
    (``set_random_seed`` after that changes nothing, measured), so reproducible samples need a
    model loaded right after seeding. One copy per call, made on the first row that fails the
    guards (about a second for whisper-base): a call on the same clips samples the same.
    """

    def __init__(self, folder: str, options: Ct2Options) -> None:
        self.folder, self.options = folder, options
        self._model: Any = None

    def get(self) -> Any:
        """The seeded copy (loaded on first use)."""
        # Imported here, not at the top: CTranslate2 loads only for this backend.
        import ctranslate2

        if self._model is None:
            ctranslate2.set_random_seed(self.options.guards.seed)
            self._model = load_faster_whisper.__wrapped__(
                self.folder, self.options.compute_type, self.options.cpu_threads,
                self.options.device)
        return self._model


def _guarded_ids(model: Any, sampler: _SeededSampler, feats: np.ndarray, options: Ct2Options
                 ) -> tuple[Any, list[Any], list[float]]:
    """Generate a batch with the guards: the guard's rows, greedy results, kept scores.

    The scores are each kept attempt's average log-probability as CTranslate2 reported it for
    the whole attempt (CTranslate2 scores no given sequence, so a cut loop keeps its uncut
    score: such a row fails the guard by its cut anyway).
    """
    # Imported here, not at the top: CTranslate2 loads only for this backend.
    import ctranslate2

    tokenizer = model.hf_tokenizer
    eot = tokenizer.token_to_id("<|endoftext|>")
    prompt = task_prompt(tokenizer, options.language)
    greedy: dict[int, Any] = {}
    scores: dict[tuple[int, float], float] = {}
    latest: dict[int, float] = {}

    def generate(rows: list[int], extra: dict[str, Any]) -> list[list[int]]:
        temperature = float(extra.get("temperature", 0.0)) if extra.get("do_sample") else 0.0
        whisper = sampler.get() if temperature > 0 else model
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[rows]))
        results = generate_ct2(whisper, view, prompt, len(rows), beam_size=options.beam_size,
                               max_new_tokens=options.max_new_tokens, temperature=temperature)
        out = []
        for row, result in zip(rows, results, strict=True):
            ids = [t for t in result.sequences_ids[0] if t < eot]
            greedy.setdefault(row, result)
            latest[row] = scores[(row, temperature)] = ct2_avg_logprob(result, len(ids))
            out.append(ids)
        return out

    guarded = guarded_generate(
        generate, lambda rows, _ids: [latest[r] for r in rows],
        lambda ids: tokenizer.decode(ids), batch=len(feats), settings=options.guards,
        max_new_tokens=options.max_new_tokens,
        start_id=tokenizer.token_to_id("<|startoftranscript|>"), eot_id=eot)
    kept_scores = [scores[(row, t)] for row, t in enumerate(guarded.temperature)]
    return guarded, [greedy[row] for row in range(len(feats))], kept_scores


def _decode_batch(model: Any, sampler: _SeededSampler, folder: str,
                  chunks: list[tuple[int, float, np.ndarray]], frames: int,
                  options: Ct2Options) -> list[_Window]:
    """Decode one batch of (index, offset seconds, audio) chunks at ``frames`` mel frames."""
    # Imported here, not at the top: faster-whisper loads only for the ct2 backend.
    from faster_whisper.transcribe import Segment, get_compression_ratio

    extractor = export_feature_extractor(folder)
    feats = pad_features([log_mel(audio, extractor) for _, _, audio in chunks], frames).numpy()
    guarded, greedy, avg_logprobs = _guarded_ids(model, sampler, feats, options)
    out = []
    for row, (index, offset, audio) in enumerate(chunks):
        ids, avg_logprob = guarded.rows[row], avg_logprobs[row]
        # Whisper's silence rule: the greedy pass's no-speech probability, the kept text's
        # confidence (as the transformers path judges it).
        no_speech = greedy[row].no_speech_prob
        silent = (options.no_speech_threshold is not None
                  and no_speech > options.no_speech_threshold
                  and avg_logprob < options.logprob_threshold)
        text = "" if silent else model.hf_tokenizer.decode(ids).strip()
        segment = Segment(
            id=index, seek=round(offset * SAMPLE_RATE / HOP_LENGTH), start=offset,
            end=offset + audio.size / SAMPLE_RATE, text=text, tokens=[] if silent else ids,
            avg_logprob=avg_logprob, compression_ratio=get_compression_ratio(text) if text
            else 0.0, no_speech_prob=no_speech, words=None,
            temperature=guarded.temperature[row])
        looped = not silent and (guarded.loop_kept[row] or len(ids) >= options.max_new_tokens
                                 or is_looping(ids))
        out.append(_Window(segment, looped, looped or guarded.looped_first[row]))
    return out


def _windows(audios: Sequence[np.ndarray]) -> list[tuple[int, float, np.ndarray]]:
    """(clip index, offset seconds, audio) of every non-silent window, shortest first."""
    windows: list[tuple[int, float, np.ndarray]] = []
    for index, audio in enumerate(audios):
        offset = 0.0
        for chunk in split_long_audio(np.asarray(audio, dtype=np.float32)):
            if not is_silent(chunk):
                windows.append((index, offset, chunk))
            offset += chunk.size / SAMPLE_RATE
    windows.sort(key=lambda window: window[2].size)
    return windows


def transcribe_audio_ct2(audios: Sequence[np.ndarray], model_dir: str | Path,
                         options: Ct2Options = Ct2Options(), progress: bool = False,
                         ) -> list[Ct2Clip]:
    """Transcribe 16 kHz clips with CTranslate2 in batches, at the model's own context length.

    Clips longer than 30 s are cut at quiet moments (one segment per window); silent windows
    give no segment without running the model. Windows are sorted by length and decoded
    ``batch_size`` at a time, each batch's features cut to
    :func:`whisper_ja.audio.features.context_frames` of its longest window under the policy
    :func:`whisper_ja.inference.faster.resolve_context` picks (30 s for a stock model unless
    ``context="dynamic"``), with the guards of ``options.guards``.

    Args:
        audios: float32 mono clips at 16 kHz.
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        options: Decoding settings.
        progress: Show a progress bar over windows.

    Returns:
        One :class:`Ct2Clip` per clip, in input order.

    Raises:
        Ct2Error: the folder is incomplete or its context record is unreadable.
    """
    policy = resolve_context(model_dir, options.context)
    folder = str(check_ct2_folder(model_dir))
    model = load_faster_whisper(folder, options.compute_type, options.cpu_threads,
                                options.device)
    windows = _windows(audios)
    sampler = _SeededSampler(folder, options)
    decoded: list[list[_Window]] = [[] for _ in audios]
    with tqdm(total=len(windows), desc="ct2", unit="window", disable=not progress) as bar:
        for start in range(0, len(windows), options.batch_size):
            batch = windows[start:start + options.batch_size]
            frames = batch_context_frames([clip for _, _, clip in batch], policy)
            found = _decode_batch(model, sampler, folder, batch, frames, options)
            for (index, _, _), result in zip(batch, found, strict=True):
                decoded[index].append(result)
            bar.update(len(batch))
    clips = []
    for parts in decoded:
        parts.sort(key=lambda part: part.segment.start)
        kept = [part.segment for part in parts if part.segment.text]
        clips.append(Ct2Clip(segments=tuple(dataclasses.replace(segment, id=i)
                                            for i, segment in enumerate(kept, start=1)),
                             looped=any(part.looped for part in parts),
                             looped_unguarded=any(part.looped_unguarded for part in parts)))
    return clips


def detect_language_ct2(audios: Sequence[np.ndarray], model_dir: str | Path,
                        options: Ct2Options = Ct2Options(), progress: bool = False
                        ) -> list[str]:
    """Whisper's language identification on CTranslate2, at the context ``options`` gives.

    The most likely language token after ``<|startoftranscript|>`` (CTranslate2's
    ``detect_language``), from the first 30 s of each clip, clips batched by length.

    Returns:
        One language code per clip, in input order.
    """
    # Imported here, not at the top: CTranslate2 loads only for this backend.
    import ctranslate2

    policy = resolve_context(model_dir, options.context)
    folder = str(check_ct2_folder(model_dir))
    model = load_faster_whisper(folder, options.compute_type, options.cpu_threads,
                                options.device)
    extractor = export_feature_extractor(folder)
    clips = [np.asarray(a, dtype=np.float32)[:extractor.n_samples] for a in audios]
    order = sorted(range(len(clips)), key=lambda i: clips[i].size)
    codes: list[str] = [""] * len(clips)
    for start in tqdm(range(0, len(order), options.batch_size), desc="language id",
                      disable=not progress):
        rows = order[start:start + options.batch_size]
        frames = batch_context_frames([clips[i] for i in rows], policy)
        feats = pad_features([log_mel(clips[i], extractor) for i in rows], frames).numpy()
        found = model.model.detect_language(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)))
        for i, ranked in zip(rows, found, strict=True):
            codes[i] = ranked[0][0].strip("<|>")  # "<|en|>" -> "en"
    return codes


def transcribe_ct2(paths: Sequence[Path], model_dir: str, *, beam_size: int = 1,
                   language: str = "ja", compute_type: str = "int8",
                   max_new_tokens: int | None = None, cpu_threads: int = 0,
                   progress: bool = True,
                   context: Literal["auto", "dynamic", "full", "stock"] = "auto",
                   device: str = "auto", guards: GuardSettings | None = None) -> list[str]:
    """Transcribe audio files with CTranslate2, one transcript per file.

    Greedy (or beam) decoding that does not condition on previous text, like whisper-ja's own
    decoding. ``context`` ``auto``, ``dynamic`` or ``full`` run :func:`transcribe_audio_ct2`
    (batches of 8, the export's own context policy for ``auto``, the guards on, the fallback
    seeded); ``stock`` runs faster-whisper's own ``transcribe`` one file at a time at 30 s,
    temperature 0 only, windowing long audio its way.

    Args:
        paths: Audio files (any format :func:`whisper_ja.audio.io.load_audio` reads).
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        beam_size: Beam width (1 = greedy).
        language: Forced language code.
        compute_type: ``int8`` (fastest on CPU), ``float32``...
        max_new_tokens: Most tokens per 30 s window (None: 128, or faster-whisper's limit for
            ``stock``).
        cpu_threads: CTranslate2 threads (0 = its default).
        progress: Show a progress bar.
        context: See above.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        guards: Repetition cut and temperature fallback (not for ``stock``).

    Returns:
        One transcript per path, in order (segments joined without spaces, as Japanese is
        written).

    Raises:
        Ct2Error: the model folder is incomplete.
        whisper_ja.audio.io.AudioError: a file cannot be decoded (the message names it).
    """
    if context != "stock":
        options = Ct2Options(context=context, beam_size=beam_size, language=language,
                             compute_type=compute_type, cpu_threads=cpu_threads,
                             device=device, guards=guards or GuardSettings(),
                             **({"max_new_tokens": max_new_tokens} if max_new_tokens else {}))
        audios = [load_audio(path) for path in paths]
        return [clip.text for clip in transcribe_audio_ct2(audios, model_dir, options,
                                                           progress=progress)]
    model = load_faster_whisper(str(model_dir), compute_type, cpu_threads, device)
    texts = []
    for path in tqdm(list(paths), desc="faster-whisper", unit="file", disable=not progress):
        segments, _ = model.transcribe(
            load_audio(path), language=language, task="transcribe", beam_size=beam_size,
            temperature=0.0, without_timestamps=True, condition_on_previous_text=False,
            vad_filter=False, max_new_tokens=max_new_tokens)
        texts.append("".join(segment.text for segment in segments).strip())
    return texts

"""Streamed training data, the reader side: what each DataLoader worker of each process does.

The pieces of the corpus (:func:`~whisper_ja.data.stream_sources.plan_sources`) are shuffled
per epoch and dealt to ``processes x workers`` readers ("slots"): piece ``i`` goes to slot
``i mod slots``, so an epoch reads every clip exactly once, on one node or many. A reader turns
its pieces into labelled clips (labels built here, in the worker), applies ``data.mixing`` as
per-clip repeat counts, shuffles them through a bounded buffer, forms duration-bucketed batches,
and only then reads the audio and computes log-mel features of each batch: replaying a reader's
first ``n`` batches after a resume costs no audio. Everything is a pure function of
``(seed, epoch, slot)``, which is what makes a mid-epoch resume exact
(:mod:`whisper_ja.training.stream_steps` keeps the position).

Bad data is skipped, counted by reason and named (the first few), never fatal: a malformed
row, an unreadable or truncated clip, a shard that cannot be opened or ends early.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from whisper_ja.audio.features import log_mel
from whisper_ja.audio.io import load_audio
from whisper_ja.data.bucketing import bucketed_batches, shuffled
from whisper_ja.data.collate import MAX_FRAMES, Example, frames_of, prompt_length
from whisper_ja.data.feature_cache import FeatureCache
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.stream_sources import Source, decode_audio_bytes, iter_source
from whisper_ja.data.timestamps import LabelMix, mixed_label_ids
from whisper_ja.errors import AudioError
from whisper_ja.text.labels import LabelSettings, fold_label

__all__ = ["ClipStream", "Featurizer", "Labeler", "Labeled", "ReaderPlan", "StreamBatch"]

LOGGER = logging.getLogger(__name__)

NAMED_PER_BATCH = 5
"""Bad items a batch names (all are counted); the run summary keeps the first few overall."""


@dataclass(frozen=True)
class Labeled:
    """A trainable clip before its audio is read."""

    utterance: Utterance
    audio: bytes | None
    label_ids: tuple[int, ...]
    prompt_length: int


@dataclass
class StreamBatch:
    """What a reader hands the training process: a batch and what it skipped on the way.

    ``index`` counts the reader's batches in this epoch; the last item a reader yields is an
    end marker (``end`` true, no batch), so the training process knows which readers are done.
    """

    slot: int
    index: int
    batch: dict[str, torch.Tensor] | None = None
    ids: list[str] = field(default_factory=list)
    corpora: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    named: list[str] = field(default_factory=list)
    label_changes: Counter[str] = field(default_factory=Counter)
    end: bool = False


@dataclass(frozen=True)
class Labeler:
    """Builds a clip's label ids in the reader, or says why the clip is skipped."""

    tokenizer: Any
    labels: LabelSettings
    mix: LabelMix
    max_label_tokens: int
    max_pseudo_cer: float

    def label(self, utt: Utterance, previous: str, audio: bytes | None
              ) -> tuple[Labeled | None, str, tuple[str, ...]]:
        """``(clip, "", label rules that changed it)`` or ``(None, skip reason, ())``."""
        if frames_of(utt) > MAX_FRAMES:
            return None, "longer than 30 s", ()
        cer = utt.extra.get("pseudo_cer")
        if self.max_pseudo_cer and isinstance(cer, int | float) and cer > self.max_pseudo_cer:
            return None, f"pseudo-label CER above {self.max_pseudo_cer}", ()
        folded = fold_label(utt.text, self.labels)
        if not folded.text.strip():
            return None, "empty transcript", ()
        ids, prompt = mixed_label_ids(folded.text, utt.segments, utt.duration, self.tokenizer,
                                      self.mix, utt.id, utt.language(), previous)
        if len(ids) > self.max_label_tokens:
            return None, f"label longer than {self.max_label_tokens} tokens", ()
        del prompt  # prompt_length below reads it from the ids, as the in-memory path does
        return (Labeled(utt, audio, tuple(ids), prompt_length(ids, self.tokenizer)), "",
                tuple(folded.changed))


class Featurizer:
    """Log-mel features of a clip in the reader, through the bounded cache when it is on."""

    def __init__(self, feature_extractor: Any, cache_dir: str | None, max_bytes: int) -> None:
        self.feature_extractor = feature_extractor
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        self._cache: FeatureCache | None = None

    def __call__(self, clip: Labeled) -> np.ndarray:
        """Raises :class:`AudioError` naming the clip when its audio is unreadable."""
        utt = clip.utterance
        if clip.audio is None:
            def compute() -> np.ndarray:
                return log_mel(load_audio(utt.audio), self.feature_extractor)
        else:
            data = clip.audio

            def compute() -> np.ndarray:
                return log_mel(decode_audio_bytes(data, utt.audio), self.feature_extractor)
        if self.cache_dir is None:
            return compute()
        if self._cache is None:  # opened in the worker that uses it
            self._cache = FeatureCache(self.cache_dir, max_bytes=self.max_bytes)
        key = (self._cache.key(utt, self.feature_extractor) if clip.audio is None else
               self._cache.key_of(hashlib.sha256(clip.audio).hexdigest(), self.feature_extractor))
        return self._cache.get_keyed(key, compute)


@dataclass(frozen=True)
class ReaderPlan:
    """Where every reader of this process stands, and how batches are formed.

    Attributes:
        slot_order: Worker ``k`` reads local slot ``slot_order[k]`` (rotated on a resume so the
            DataLoader's round robin continues where it stopped).
        skip: Batches already consumed, per local slot (replayed without audio).
        done: Local slots whose end marker was consumed.
    """

    seed: int
    epoch: int
    rank: int
    world: int
    workers: int
    slot_order: tuple[int, ...]
    skip: dict[int, int]
    done: frozenset[int]
    weights: dict[str, float]
    shuffle_buffer: int
    batch_size: int
    max_duration: float
    boundaries: tuple[float, ...]

    @property
    def slots(self) -> int:
        """Readers over all processes."""
        return self.world * max(self.workers, 1)


class ClipStream(torch.utils.data.IterableDataset[StreamBatch]):
    """The batches of this process's readers for one epoch (one reader per DataLoader worker)."""

    def __init__(self, sources: Sequence[Source], plan: ReaderPlan, labeler: Labeler,
                 features: Callable[[Labeled], np.ndarray],
                 collate: Callable[[list[Example]], dict[str, torch.Tensor]]) -> None:
        self.sources = list(sources)
        self.plan = plan
        self.labeler = labeler
        self.features = features
        self.collate = collate

    def pieces(self, slot: int) -> list[Source]:
        """The pieces global reader ``slot`` reads this epoch, in order."""
        order = np.random.default_rng([self.plan.seed, self.plan.epoch]).permutation(
            len(self.sources))
        return [self.sources[int(i)] for i in order[slot::self.plan.slots]]

    def __iter__(self) -> Iterator[StreamBatch]:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            torch.set_num_threads(1)  # readers are processes: one thread each
        local = self.plan.slot_order[info.id if info is not None else 0]
        if local in self.plan.done:
            return
        slot = self.plan.rank * max(self.plan.workers, 1) + local
        yield from self._batches(slot, local)

    def _batches(self, slot: int, local: int) -> Iterator[StreamBatch]:
        plan = self.plan
        pending = StreamBatch(slot, 0)  # collects skips until the next batch carries them
        rng = np.random.default_rng([plan.seed, plan.epoch, slot, 1])
        clips = shuffled(self._labeled(slot, pending), plan.shuffle_buffer, rng)
        index = 0
        for group in bucketed_batches(clips, lambda c: c.utterance.duration,
                                      batch_size=plan.batch_size,
                                      max_duration=plan.max_duration,
                                      boundaries=plan.boundaries):
            carried = StreamBatch(slot, index, skipped=pending.skipped, named=pending.named,
                                  label_changes=pending.label_changes)
            pending.skipped, pending.named, pending.label_changes = Counter(), [], Counter()
            if index >= plan.skip.get(local, 0):
                yield self._featurized(group, carried)
            index += 1
        yield StreamBatch(slot, index, skipped=pending.skipped, named=pending.named,
                          label_changes=pending.label_changes, end=True)

    def _labeled(self, slot: int, pending: StreamBatch) -> Iterator[Labeled]:
        """The reader's trainable clips, mixing repeats applied; skips noted in ``pending``."""
        for source in self.pieces(slot):
            previous: dict[str, str] = {}
            for item in iter_source(source):
                if item.utterance is None:
                    _note(pending, item.problem, item.where)
                    continue
                utt = item.utterance
                clip, reason, changed = self.labeler.label(
                    utt, str(utt.extra.get("previous_text", previous.get(utt.corpus, ""))),
                    item.audio)
                previous[utt.corpus] = utt.text
                if clip is None:
                    pending.skipped[reason] += 1
                    continue
                pending.label_changes.update(changed)
                for _ in range(self._copies(utt)):
                    yield clip

    def _copies(self, utt: Utterance) -> int:
        """Copies of a clip under ``data.mixing``, as a stream applies it.

        Weight ``w`` takes a clip ``floor(w)`` times and once more with probability ``frac(w)``
        (drawn per clip and epoch).
        """
        weight = self.plan.weights.get(utt.corpus, 1.0)
        whole = int(weight)
        if weight == whole:
            return whole
        digest = hashlib.sha256(f"{self.plan.seed}/{self.plan.epoch}/{utt.id}".encode()).digest()
        return whole + int(int.from_bytes(digest[:8], "big") / 2**64 < weight - whole)

    def _featurized(self, group: list[Labeled], out: StreamBatch) -> StreamBatch:
        """``out`` (which carries the skips before it) with the batch of ``group``'s clips."""
        examples = []
        for clip in group:
            utt = clip.utterance
            try:
                features = np.asarray(self.features(clip), dtype=np.float32)
            except AudioError as err:
                _note(out, "unreadable audio", str(err))
                continue
            examples.append(Example(utt.id, utt.text, features, clip.label_ids,
                                    clip.prompt_length))
            out.ids.append(utt.id)
            out.corpora[utt.corpus] += 1
        if examples:
            out.batch = self.collate(examples)
        return out


def _note(batch: StreamBatch, reason: str, where: str) -> None:
    batch.skipped[reason] += 1
    if len(batch.named) < NAMED_PER_BATCH:
        batch.named.append(f"{reason}: {where}")
    LOGGER.warning("skipping (%s) %s", reason, where)

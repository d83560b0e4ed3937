"""``whisper-ja split``: a seeded train/validation/test split that never leaks a sentence.

Utterances are grouped, and whole groups are assigned to splits:

- utterances whose normalized text is the same form one group (so a sentence read by several
  speakers, or listed twice, lands in one split only);
- with ``speaker_disjoint``, utterances of the same speaker join the same group too (groups are
  the connected components of "same text or same speaker");
- a group holding a speaker of ``test_speakers`` goes to test; with ``keep_official``, a group
  holding an officially-test (or -validation, with ``all``) utterance goes there.

The remaining groups, in a seeded random order, each go to the split that brings the utterance
counts closest to the target ratios. Per-corpus mixing weights then thin out (weight < 1) or
repeat (weight > 1, copies get ids ``ID#2``...) each corpus's training utterances; validation
and test are never reweighted. The report gives counts and hours per split and corpus, and
checks the result: any text (or, when asked, speaker) shared between splits is listed.
"""

from __future__ import annotations

import dataclasses
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from whisper_ja.config import ConfigError, config_to_dict, field
from whisper_ja.data.manifest import Utterance
from whisper_ja.text import normalize

__all__ = ["SPLIT_NAMES", "SplitConfig", "split_report", "split_utterances",
           "text_key"]

SPLIT_NAMES = ("train", "validation", "test")
_OFFICIAL_ALIASES = {"train": "train", "dev": "validation", "validation": "validation",
                     "valid": "validation", "test": "test"}


@dataclass(frozen=True)
class SplitConfig:
    """Settings of ``whisper-ja split``."""

    manifests: tuple[Path, ...] = field((), positional=True, help="input manifest(s) (JSONL)")
    out: Path | None = field(None, help="output folder for train/validation/test.jsonl")
    ratios: tuple[float, ...] = field((0.8, 0.1, 0.1), help="train, validation, test shares")
    seed: int = field(0, help="seed of the group order")
    keep_official: Literal["none", "test", "all"] = field(
        "none", help="keep official test (or all official) splits from extra.official_split "
        "or the split field")
    test_speakers: tuple[str, ...] = field((), help="speakers (e.g. voices) held out for test")
    speaker_disjoint: bool = field(False, help="no speaker in more than one split")
    corpus_weights: tuple[str, ...] = field(
        (), help="CORPUS=WEIGHT: scale a corpus's training utterances (0.5 keeps half, 2 doubles)")

    def __post_init__(self) -> None:
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise ConfigError(f"ratios: expected three non-negative shares, got {self.ratios}")
        self.weights()  # validates corpus_weights

    def weights(self) -> dict[str, float]:
        """``corpus_weights`` as a mapping (raises ConfigError on a malformed entry)."""
        result = {}
        for item in self.corpus_weights:
            name, sep, value = item.partition("=")
            try:
                weight = float(value)
            except ValueError:
                weight = -1.0
            if not sep or not name or weight <= 0:
                raise ConfigError(f"corpus_weights: expected CORPUS=POSITIVE_NUMBER, got {item!r}")
            result[name.strip()] = weight
        return result


def _normalizer() -> Callable[[str], str]:
    # The text engineer's normalizer: matches how CER compares texts.
    return lambda text: str(normalize(text))


def text_key(text: str, normalize: Callable[[str], str] | None = None) -> str:
    """The grouping key of a transcript: normalized, NFKC, casefolded, without punctuation/space.

    Example:
        >>> text_key("今日は、いい天気！") == text_key("今日はいい天気")
        True
    """
    text = unicodedata.normalize("NFKC", (normalize or _normalizer())(text)).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC")


def _official(utt: Utterance) -> str | None:
    raw = str(utt.extra.get("official_split") or utt.split)
    return _OFFICIAL_ALIASES.get(raw.lower())


def _groups(utts: Sequence[Utterance], speaker_disjoint: bool) -> list[list[int]]:
    """Connected components of 'same text key' (and 'same speaker' when asked); union-find."""
    parent = list(range(len(utts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    normalize = _normalizer()
    for i, utt in enumerate(utts):
        keys = [("text", text_key(utt.text, normalize))]
        if speaker_disjoint and utt.speaker:
            keys.append(("speaker", utt.speaker))
        for key in keys:
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(utts)):
        members[find(i)].append(i)
    return list(members.values())


def _forced(group: list[int], utts: Sequence[Utterance], config: SplitConfig) -> str | None:
    if any(utts[i].speaker in config.test_speakers for i in group):
        return "test"
    if config.keep_official == "none":
        return None
    official = {_official(utts[i]) for i in group}
    order = ("test",) if config.keep_official == "test" else ("test", "validation", "train")
    return next((name for name in order if name in official), None)


def _assign(groups: list[list[int]], utts: Sequence[Utterance],
            config: SplitConfig) -> tuple[list[str], Counter[str]]:
    split_of = [""] * len(utts)
    notes: Counter[str] = Counter()
    have = dict.fromkeys(SPLIT_NAMES, 0)
    free = []
    for group in groups:
        forced = _forced(group, utts, config)
        if forced is None:
            free.append(group)
            continue
        notes[f"forced_{forced}"] += len(group)
        for i in group:
            official = _official(utts[i])
            if config.keep_official != "none" and official and official != forced:
                notes[f"official_{official}_moved_to_{forced}"] += 1
            split_of[i] = forced
        have[forced] += len(group)
    total = sum(config.ratios)
    target = {n: r / total * len(utts) for n, r in zip(SPLIT_NAMES, config.ratios, strict=True)}
    free.sort(key=lambda g: min(utts[i].id for i in g))  # input order must not matter
    random.Random(config.seed).shuffle(free)
    for group in free:
        size = len(group)

        def cost(name: str, size: int = size) -> tuple[float, float]:
            # Change in distance to the target; ties go to the split lacking most.
            gain = abs(have[name] + size - target[name]) - abs(have[name] - target[name])
            return gain, have[name] - target[name]

        chosen = min((n for n in SPLIT_NAMES if target[n] > 0), key=cost)
        have[chosen] += size
        for i in group:
            split_of[i] = chosen
    return split_of, notes


def _reweight(train: list[Utterance], weights: dict[str, float], seed: int,
              notes: Counter[str]) -> list[Utterance]:
    by_corpus: dict[str, list[Utterance]] = defaultdict(list)
    for utt in train:
        by_corpus[utt.corpus].append(utt)
    rng = random.Random(seed)
    result: list[Utterance] = []
    for corpus, items in sorted(by_corpus.items()):
        weight = weights.get(corpus, 1.0)
        whole, fraction = int(weight), weight - int(weight)
        copies = [dataclasses.replace(u, id=u.id if k == 0 else f"{u.id}#{k + 1}")
                  for k in range(whole) for u in items]
        extra = rng.sample(items, round(fraction * len(items)))
        copies += [dataclasses.replace(u, id=u.id if whole == 0 else f"{u.id}#{whole + 1}")
                   for u in extra]
        if weight != 1.0:
            notes[f"train_weight_{corpus}"] = len(copies) - len(items)
        result.extend(copies)
    return result


def split_utterances(utts: Sequence[Utterance],
                     config: SplitConfig | None = None) -> dict[str, list[Utterance]]:
    """Split utterances into ``train``, ``validation`` and ``test`` without text leaks.

    Args:
        utts: Utterances (ids unique), e.g. from :func:`~whisper_ja.data.read_manifest`.
        config: Ratios, seed and constraints; defaults to 80/10/10, seed 0.

    Returns:
        Split name -> utterances (with ``split`` set), in input order; ``run_split`` also
        reports forced assignments and reweighting.
    """
    result, _ = split_with_notes(utts, config or SplitConfig())
    return result


def split_with_notes(utts: Sequence[Utterance],
           config: SplitConfig) -> tuple[dict[str, list[Utterance]], Counter[str]]:
    groups = _groups(utts, config.speaker_disjoint)
    split_of, notes = _assign(groups, utts, config)
    notes["groups"] = len(groups)
    notes["largest_group"] = max((len(g) for g in groups), default=0)
    result: dict[str, list[Utterance]] = {name: [] for name in SPLIT_NAMES}
    for utt, name in zip(utts, split_of, strict=True):
        result[name].append(dataclasses.replace(utt, split=name))
    result["train"] = _reweight(result["train"], config.weights(), config.seed, notes)
    return result, notes


def _overlaps(splits: dict[str, list[Utterance]], attribute: Callable[[Utterance], str]
              ) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = {n: {attribute(u) for u in splits[n]} - {""} for n in splits}
    found = {}
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1:]:
            shared = sorted(seen[a] & seen[b])
            if shared:
                found[f"{a}/{b}"] = shared[:20]
    return found


def split_report(splits: dict[str, list[Utterance]], config: SplitConfig,
                 notes: Counter[str] | None = None) -> dict[str, Any]:
    """Counts and hours per split and corpus, and any text/speaker shared between splits."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name in SPLIT_NAMES:
        per: dict[str, dict[str, float]] = defaultdict(lambda: {"utterances": 0, "hours": 0.0})
        for utt in splits[name]:
            per[utt.corpus]["utterances"] += 1
            per[utt.corpus]["hours"] += utt.duration / 3600
        per["all"] = {"utterances": len(splits[name]),
                      "hours": sum(u.duration for u in splits[name]) / 3600}
        table[name] = dict(per)
    normalize = _normalizer()
    report: dict[str, Any] = {
        "splits": table,
        "text_overlap": _overlaps(splits, lambda u: text_key(u.text, normalize)),
        "notes": dict(notes or {}),
        "config": config_to_dict(config),
    }
    report["warnings"] = _warnings(splits, config, notes or Counter())
    if config.speaker_disjoint:
        report["speaker_overlap"] = _overlaps(splits, lambda u: u.speaker)
    if config.test_speakers:
        present = {u.speaker for name in SPLIT_NAMES for u in splits[name]}
        report["test_speakers_missing"] = sorted(set(config.test_speakers) - present)
        report["test_speakers_outside_test"] = sorted(
            {u.speaker for u in splits["train"] + splits["validation"]} & set(config.test_speakers))
    return report


def _warnings(splits: dict[str, list[Utterance]], config: SplitConfig,
              notes: Counter[str]) -> list[str]:
    """Constraints that the data made impossible to meet well (never silently)."""
    total = sum(len(v) for v in splits.values())
    found = [f"{name} is empty although its ratio is {ratio:g}"
             for name, ratio in zip(SPLIT_NAMES, config.ratios, strict=True)
             if ratio > 0 and not splits[name]]
    largest = notes.get("largest_group", 0)
    smallest_target = min(r / sum(config.ratios) * total for r in config.ratios if r > 0)
    if total and largest > smallest_target:
        found.append(f"one group of utterances linked by shared text"
                     f"{' or speaker' if config.speaker_disjoint else ''} holds {largest} of "
                     f"{total} utterances, more than the smallest split's share "
                     f"({smallest_target:.0f}); the ratios cannot be met closely")
    return found

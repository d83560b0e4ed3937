"""``whisper-ja prepare CORPUS SRC --out DIR``: a corpus as it arrives, turned into a manifest.

Corpora (one reader module each under :mod:`whisper_ja.data.corpora`):

- ``jsut``: the JSUT 1.1 folder (``basic5000/wav/*.wav`` + ``basic5000/transcript_utf8.txt``
  and the other subsets);
- ``common-voice``: a Common Voice release folder for ``ja`` (``train/dev/test/validated.tsv``,
  ``clips/*.mp3``);
- ``fleurs``: ``ja_jp`` from ``datasets`` (hub id or a ``save_to_disk`` folder) or a local copy
  (``{train,dev,test}.tsv`` + ``audio/{split}/*.wav``);
- ``reazonspeech``: a subset through ``datasets`` or a local copy (``{subset}.tsv`` + audio);
- ``folder``: audio files with same-named ``.txt`` transcripts;
- ``table``: a CSV, TSV or JSONL table of audio paths and texts.

Every candidate utterance is checked. Bad input is never dropped silently; each kind of problem
is either skipped and counted (in ``prepare_report.json`` and the printed summary, with the first
examples naming file and line) or rejected with an error naming file and line. Defaults:

==================  =======  ==================================================================
problem             default  why
==================  =======  ==================================================================
missing_audio       skip     releases often miss a few clips (partial downloads)
unreadable_audio    skip     a corrupt or cut-short (truncated) clip should not stop a 100-hour
                             corpus
missing_text        skip     ``folder``: an audio file without its ``.txt``
empty_text          skip     whitespace-only transcripts carry nothing to learn
too_long            skip     Whisper's window is 30 s (``max_duration``)
duplicate_id        error    usually the same source given twice or a broken table; also
                             ``folder``: ``x.wav`` beside ``x.flac`` (one id for two files)
bad_encoding        error    a non-UTF-8 transcript means the whole file needs converting
==================  =======  ==================================================================

``whisper-ja prepare`` exits 1 when anything was skipped (the README's policy: a bad item is
named, counted, and the others go on), 0 when every candidate was kept.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from whisper_ja.audio.io import audio_duration
from whisper_ja.config import ConfigError, config_to_dict
from whisper_ja.data.corpora.base import AUDIO_SUFFIXES, Candidate, ReaderContext
from whisper_ja.data.corpora.settings import PrepareConfig
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.errors import AudioError, PrepareError

__all__ = ["CORPORA", "PROBLEMS", "PrepareConfig", "PrepareError", "prepare"]

CORPORA = {
    "jsut": "whisper_ja.data.corpora.jsut",
    "common-voice": "whisper_ja.data.corpora.common_voice",
    "fleurs": "whisper_ja.data.corpora.fleurs",
    "reazonspeech": "whisper_ja.data.corpora.reazonspeech",
    "folder": "whisper_ja.data.corpora.folder",
    "table": "whisper_ja.data.corpora.table",
}
"""Corpus name -> reader module (each has ``read(context) -> Iterator[Candidate]``)."""

PROBLEMS = ("missing_audio", "unreadable_audio", "missing_text", "empty_text", "too_long",
            "duplicate_id", "bad_encoding")

_EXAMPLES = 10


class _Checker:
    """Applies the problem policies to candidates and counts what it skips."""

    def __init__(self, config: PrepareConfig) -> None:
        self.config = config
        self.skipped: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.seen: dict[str, str] = {}

    def _problem(self, kind: str, where: str, message: str) -> None:
        if getattr(self.config, kind) == "error":
            raise PrepareError(f"{where}: {message} (set {kind}=skip to skip and count these)")
        self.skipped[kind] += 1
        if len(self.examples[kind]) < _EXAMPLES:
            self.examples[kind].append(f"{where}: {message}")

    def _check_namesakes(self, cand: Candidate) -> None:
        """``folder``: audio files named like the candidate's (``x.wav`` beside ``x.flac``).

        The folder reader makes one id of a name, so such a file would vanish without a word;
        it is a ``duplicate_id`` problem (refused by default; counted and named when skipped).
        """
        for other in sorted(cand.audio.parent.glob(f"{cand.audio.stem}.*")):
            if other != cand.audio and other.suffix.lower() in AUDIO_SUFFIXES:
                self._problem("duplicate_id", str(other),
                              f"same name as {cand.audio.name} (one id {cand.id!r}): not used; "
                              "rename one of them to keep both")

    def check(self, cand: Candidate) -> Utterance | None:
        """The utterance for a good candidate; None (counted) or PrepareError for a bad one."""
        if cand.id in self.seen:
            self._problem("duplicate_id", cand.where,
                          f"duplicate id {cand.id!r} (first at {self.seen[cand.id]})")
            return None
        self.seen[cand.id] = cand.where
        if not cand.text_decoded:
            self._problem("bad_encoding", cand.where, "transcript is not valid UTF-8")
            return None
        if cand.text is None:
            self._problem("missing_text", cand.where, f"no transcript for {cand.audio}")
            return None
        text = cand.text.strip()
        if not text:
            self._problem("empty_text", cand.where, "empty transcript")
            return None
        if not cand.audio.is_file():
            self._problem("missing_audio", cand.where, f"audio file {cand.audio} not found")
            return None
        if self.config.corpus == "folder":
            self._check_namesakes(cand)
        try:
            duration = audio_duration(cand.audio)
        except AudioError as err:
            self._problem("unreadable_audio", cand.where, f"cannot read {err}")
            return None
        if duration > self.config.max_duration:
            self._problem("too_long", cand.where, f"{cand.audio} lasts {duration:.1f} s > "
                          f"{self.config.max_duration:g} s")
            return None
        return Utterance(id=cand.id, audio=str(cand.audio.resolve()), text=text,
                         duration=round(duration, 4), corpus=self.config.name,
                         speaker=cand.speaker, extra=cand.extra)


def _collect(config: PrepareConfig, candidates: Iterable[Candidate],
             checker: _Checker) -> list[Utterance]:
    kept: list[Utterance] = []
    bar = tqdm(candidates, desc=f"preparing {config.corpus}", unit="utt",
               disable=not config.progress)
    for cand in bar:
        utt = checker.check(cand)
        if utt is not None:
            kept.append(utt)
            if config.limit and len(kept) >= config.limit:
                break
    return kept


def prepare(config: PrepareConfig) -> tuple[Path, dict[str, Any]]:
    """Read a corpus, check every utterance, write ``manifest.jsonl`` and ``prepare_report.json``.

    Returns:
        The manifest path and the report (kept, skipped per problem with examples, hours).

    Raises:
        ConfigError: no output folder.
        CorpusError: the source is not laid out as the corpus expects (names what is missing).
        PrepareError: a problem whose policy is ``error`` (names file and line).
    """
    if config.out is None:
        raise ConfigError("out: an output folder is required (--out DIR)")
    reader = importlib.import_module(CORPORA[config.corpus])
    context = ReaderContext(config=config, audio_dir=config.out / "audio")
    checker = _Checker(config)
    utts = _collect(config, reader.read(context), checker)
    manifest = config.out / "manifest.jsonl"
    write_manifest(manifest, utts)
    official = Counter(str(u.extra.get("official_split", "")) for u in utts)
    report: dict[str, Any] = {
        "corpus": config.name, "source": str(config.source),
        "kept": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 4),
        "speakers": len({u.speaker for u in utts if u.speaker}),
        "official_splits": {k or "none": v for k, v in sorted(official.items())},
        "skipped": dict(checker.skipped), "skipped_total": sum(checker.skipped.values()),
        "examples": dict(checker.examples), "notes": dict(context.notes),
        "config": config_to_dict(config),
    }
    (config.out / "prepare_report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest, report

"""The error explorer: the utterances of one or two ``evaluate`` runs, with diffs and audio.

An ``evaluate`` folder holds ``hypotheses.jsonl`` (one record per utterance: ref, hyp, CER,
looped, corpus, speaker, edit counts), ``report.json`` (overall figures, normalizer, manifest,
plots) and PNG plots. The explorer joins two runs by utterance id (A = the first folder, B =
the second: typically untouched and fine-tuned), finds each utterance's audio through the
run's manifest, and aligns reference and hypothesis character by character with jiwer (the
alignment the CER counts), after the run's normalizer, and again on their kana readings
(:func:`whisper_ja.text.reading.to_reading`).

Routes (under ``/explore``): the page, ``api/summary``, ``api/rows``, ``api/utterance?id=``,
``api/audio?id=`` (only files the manifest lists) and ``api/plot/{run}/{name}`` (only the
plots the report lists).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse

from whisper_ja.data.manifest import read_manifest
from whisper_ja.errors import ConfigError, InputError, NotFoundError
from whisper_ja.evaluation.report import HypothesisRecord, rate, read_hypotheses
from whisper_ja.serve.base import STATIC_DIR, base_app
from whisper_ja.text.normalize import get_normalizer
from whisper_ja.text.reading import to_reading

__all__ = ["ExploreRun", "ExplorerData", "char_diff", "explore_app", "explore_router"]

log = logging.getLogger(__name__)

RUN_KEYS = ("A", "B")


def char_diff(ref: str, hyp: str) -> list[dict[str, str]]:
    """Character alignment of two strings, as jiwer aligns them for the CER.

    Returns:
        Runs of ``equal``/``substitute``/``delete``/``insert``, each with its reference and
        hypothesis characters.
    """
    if not ref or not hyp:
        if not ref and not hyp:
            return []
        return [{"op": "insert" if hyp else "delete", "ref": ref, "hyp": hyp}]
    chunks = jiwer.process_characters(ref, hyp).alignments[0]
    return [{"op": c.type, "ref": ref[c.ref_start_idx:c.ref_end_idx],
             "hyp": hyp[c.hyp_start_idx:c.hyp_end_idx]} for c in chunks]


def _audio_paths(folder: Path, report: dict[str, Any]) -> tuple[dict[str, Path], str]:
    """Utterance id -> audio file, from the run's manifest; and a note when there is none."""
    manifest = report.get("manifest")
    if not manifest:
        return {}, "the report names no manifest"
    # evaluate records the path as given, relative to where it ran: try there and upwards.
    bases = (folder, *folder.resolve().parents)
    candidates = [Path(manifest)] + [base / manifest for base in bases]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return {}, f"manifest {manifest} not found"
    try:
        utts = read_manifest(found)
    except InputError as err:
        return {}, f"manifest unreadable: {err}"
    paths = {u.id: Path(u.audio) for u in utts}
    present = {uid: p for uid, p in paths.items() if p.is_file()}
    missing = len(paths) - len(present)
    return present, f"{missing} audio files missing" if missing else ""


@dataclass(frozen=True)
class ExploreRun:
    """One evaluate folder, loaded."""

    key: str
    folder: Path
    report: dict[str, Any]
    records: dict[str, HypothesisRecord]
    audio: dict[str, Path]
    audio_note: str

    @classmethod
    def load(cls, folder: Path, key: str) -> ExploreRun:
        """Read ``hypotheses.jsonl``, ``report.json`` and the manifest's audio paths.

        Raises:
            ConfigError: not an evaluate folder, or its files are malformed.
        """
        folder = Path(folder)
        try:
            records = read_hypotheses(folder / "hypotheses.jsonl")
            report_file = folder / "report.json"
            report = json.loads(report_file.read_text("utf-8")) if report_file.is_file() else {}
        except (OSError, ValueError, InputError) as err:
            raise ConfigError(f"runs: {folder}: {err}") from err
        audio, note = _audio_paths(folder, report)
        return cls(key, folder, report, {r.id: r for r in records}, audio, note)

    @property
    def label(self) -> str:
        """The run's name in reports (its folder when unnamed)."""
        return str(self.report.get("label") or self.folder.name)

    @property
    def normalizer(self) -> str:
        """The normalizer the run was scored with."""
        return str(self.report.get("normalizer") or "default")

    def summary(self) -> dict[str, Any]:
        """Headline figures and plots of the run."""
        plots = [p for p in self.report.get("plots", []) if (self.folder / p).is_file()]
        return {"key": self.key, "label": self.label, "folder": str(self.folder),
                "utterances": len(self.records), "synthetic": bool(self.report.get("synthetic")),
                "overall": self.report.get("overall", {}), "normalizer": self.normalizer,
                "plots": plots, "audio_files": len(self.audio), "audio_note": self.audio_note}


def _cell(record: HypothesisRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"hyp": record.hyp, "cer": record.cer, "looped": record.looped,
            "reading_cer": rate(record.counts["reading_cer"])
            if "reading_cer" in record.counts else None}


@dataclass(frozen=True)
class ExplorerData:
    """One or two runs joined by utterance id."""

    runs: tuple[ExploreRun, ...]

    @classmethod
    def load(cls, folders: Sequence[Path]) -> ExplorerData:
        """Load the folders as runs A (and B)."""
        return cls(tuple(ExploreRun.load(Path(f), k) for f, k in zip(folders, RUN_KEYS,
                                                                      strict=False)))

    def _ids(self) -> list[str]:
        return list(dict.fromkeys(uid for run in self.runs for uid in run.records))

    def _any(self, uid: str) -> HypothesisRecord:
        for run in self.runs:
            if uid in run.records:
                return run.records[uid]
        raise NotFoundError(f"id: no utterance {uid!r} in these runs", param="id")

    def rows(self) -> list[dict[str, Any]]:
        """One row per utterance: shared fields, each run's cell, and B - A when both exist."""
        rows = []
        for uid in self._ids():
            first = self._any(uid)
            cells = {run.key: _cell(run.records.get(uid)) for run in self.runs}
            row: dict[str, Any] = {"id": uid, "ref": first.ref, "corpus": first.corpus,
                                   "speaker": first.speaker, "duration": first.duration,
                                   "audio": any(uid in run.audio for run in self.runs),
                                   "runs": cells}
            a, b = cells.get("A"), cells.get("B")
            row["delta"] = b["cer"] - a["cer"] if a and b else None
            rows.append(row)
        return rows

    def detail(self, uid: str) -> dict[str, Any]:
        """Diffs of one utterance, on the scored text and on the kana readings."""
        first = self._any(uid)
        out: dict[str, Any] = {"id": uid, "ref": first.ref, "runs": {}}
        for run in self.runs:
            record = run.records.get(uid)
            if record is None:
                continue
            normalize = get_normalizer(run.normalizer)
            ref_n, hyp_n = normalize(record.ref), normalize(record.hyp)
            ref_r, hyp_r = to_reading(record.ref, run.normalizer), to_reading(record.hyp,
                                                                               run.normalizer)
            out["runs"][run.key] = {
                "label": run.label, "hyp": record.hyp, "cer": record.cer,
                "looped": record.looped, "normalizer": run.normalizer,
                "diff": char_diff(ref_n, hyp_n),
                "reading": {"ref": ref_r, "hyp": hyp_r, "diff": char_diff(ref_r, hyp_r)}}
        return out

    def audio_path(self, uid: str) -> Path:
        """The utterance's audio file (only files a run's manifest lists)."""
        for run in self.runs:
            if uid in run.audio:
                return run.audio[uid]
        raise NotFoundError(f"id: no audio for utterance {uid!r} (see the run summary)",
                            param="id")

    def plot_path(self, key: str, name: str) -> Path:
        """A plot the run's report lists."""
        for run in self.runs:
            if run.key == key and name in run.summary()["plots"]:
                return run.folder / name
        raise NotFoundError(f"plot: run {key} has no plot {name!r}", param="name")


def explore_router(data: ExplorerData) -> APIRouter:
    """The explorer's routes, under ``/explore``."""
    router = APIRouter(prefix="/explore")

    @router.get("", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "explore.html")

    @router.get("/api/summary")
    async def summary() -> dict[str, Any]:
        return {"runs": [run.summary() for run in data.runs]}

    @router.get("/api/rows")
    async def rows() -> dict[str, Any]:
        return {"rows": data.rows()}

    @router.get("/api/utterance")
    def utterance(id: str) -> dict[str, Any]:  # sync: Open JTalk readings run in a thread
        return data.detail(id)

    @router.get("/api/audio")
    async def audio(id: str) -> FileResponse:
        return FileResponse(data.audio_path(id))

    @router.get("/api/plot/{key}/{name}")
    async def plot(key: str, name: str) -> FileResponse:
        return FileResponse(data.plot_path(key, name), media_type="image/png")

    return router


def explore_app(data: ExplorerData) -> FastAPI:
    """The explorer alone (``whisper-ja explore``): ``/`` leads to ``/explore``."""
    app = base_app("whisper-ja explore")
    app.include_router(explore_router(data))

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/explore")

    return app

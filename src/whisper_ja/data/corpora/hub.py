"""Corpora that come through Hugging Face ``datasets``: the hub, or a ``save_to_disk`` folder.

Nothing is downloaded at import time: ``datasets`` is imported, and the hub reached (streamed
or cached by ``datasets`` itself), only when such a corpus is prepared. Audio columns are read
undecoded (``Audio(decode=False)``) so that no audio decoding backend is needed: embedded bytes
are written once to the output's ``audio/`` folder (kept on a rerun), and files that
``datasets`` cached are used where they lie.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import soundfile as sf

from whisper_ja.data.corpora.base import CorpusError
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.skips import note_skip

__all__ = ["audio_file", "hub_clips", "is_saved_dataset", "load_splits"]


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``Dataset(Dict).save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_splits(source: str, hub_id: str, config_name: str | None, splits: Iterable[str],
                streaming: bool = False) -> Iterator[tuple[str, Iterable[dict[str, Any]]]]:
    """Yield ``(split, rows)`` with undecoded audio, from a saved dataset or the hub.

    Args:
        source: A ``save_to_disk`` folder, a hub id (``org/name``), or ``hub`` for ``hub_id``.
        hub_id: The corpus's hub id.
        config_name: The hub configuration (e.g. ``ja_jp``).
        splits: Split names wanted (a saved single Dataset is yielded once, under the first).
        streaming: Stream from the hub instead of caching.

    Raises:
        CorpusError: a requested split is missing from a saved dataset.
    """
    # Imported here, not at the top: datasets is heavy; only hub corpora need it.
    import datasets

    path = Path(source)
    wanted = list(splits)
    if path.exists():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.Dataset):
            yield wanted[0], _undecoded(loaded)
            return
        for split in wanted:
            if split not in loaded:
                raise CorpusError(f"{path}: saved dataset has no split {split!r} "
                                  f"(has {', '.join(loaded)})")
            yield split, _undecoded(loaded[split])
        return
    name = hub_id if source == "hub" else source
    for split in wanted:
        rows = datasets.load_dataset(name, config_name, split=split, streaming=streaming)
        yield split, _undecoded(rows)


def _undecoded(rows: Any) -> Any:
    # Imported here, not at the top: datasets is heavy; only hub corpora need it.
    import datasets

    names = rows.column_names
    if names is not None and "audio" not in names:
        return rows
    try:
        return rows.cast_column("audio", datasets.Audio(decode=False))
    except (KeyError, ValueError):  # a streamed dataset of unknown features without audio
        return rows


def audio_file(value: Any, folder: Path, stem: str) -> Path:
    """The audio file of an undecoded ``Audio`` value, writing embedded bytes under ``folder``.

    A value without bytes refers to a file ``datasets`` cached; its path is returned as is (the
    prepare checks report it if missing).
    """
    if not isinstance(value, dict):
        return Path(str(value))
    raw, name = value.get("bytes"), value.get("path") or ""
    if not raw:
        return Path(name)
    suffix = Path(name).suffix or ".wav"
    target = folder / f"{stem}{suffix}"
    if not (target.is_file() and target.stat().st_size == len(raw)):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        tmp.write_bytes(raw)
        tmp.replace(target)
    return target


def hub_clips(source: str, config_name: str | None, split: str, *, text_column: str,
              corpus: str, skipped: Counter[str], named: list[str]
              ) -> Iterator[tuple[Utterance, bytes]]:
    """A hub corpus streamed (or a ``save_to_disk`` folder) as clips with their audio bytes.

    Nothing is written here: ``whisper-ja shard`` puts the bytes straight into its shards, so
    a streamed corpus is not copied into an ``audio/`` folder first (as ``prepare`` does, which
    needs files). Rows without readable audio or text are skipped, counted and named (first
    20) in ``skipped`` and ``named``.
    """
    for _, rows in load_splits(source, source, config_name, [split], streaming=True):
        for index, row in enumerate(rows):
            where = f"{source} [{split} row {index}]"
            value = row.get("audio")
            raw = value.get("bytes") if isinstance(value, dict) else None
            name = str(value.get("path") or "") if isinstance(value, dict) else ""
            try:
                data = raw or Path(name).read_bytes()
                duration = float(sf.info(io.BytesIO(data)).duration)
            except (OSError, RuntimeError, sf.LibsndfileError) as err:
                note_skip(skipped, named, "unreadable audio", f"{where}: {err}")
                continue
            text = row.get(text_column)
            if not isinstance(text, str) or not text.strip():
                note_skip(skipped, named, "no transcript", f"{where}: column {text_column!r}")
                continue
            stem = str(row.get("id") or row.get("name") or f"{split}-{index:09d}")
            yield (Utterance(f"{corpus}/{Path(stem).with_suffix('')}",
                             Path(name).name or f"{stem}.wav", text, duration, corpus,
                             extra={"official_split": split}), data)



"""A cached CTranslate2 conversion of a transformers model (adapter merged), for the default path.

``transcribe talk.wav`` with no flags decodes on CTranslate2 (the faster runtime on a CPU and
on a GPU) even when the model is a hub id, a transformers folder or a LoRA adapter: the merged
model is converted once into ``$WHISPER_JA_CACHE/ct2/<sha256 of its weights>`` and reused.

Keyed by the weights' hash, so a changed adapter or model can never reuse a stale conversion.
Hashing needs the model loaded, so a small index maps what was asked (model, adapter, and the
size and modification time of every file in their folders) to the hash: a second run finds
its conversion without loading torch weights at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.inference.ct2_snapshot import plain_copy
from whisper_ja.inference.faster import convert_ct2
from whisper_ja.model.context import uses_dynamic_context
from whisper_ja.model.loading import load_model
from whisper_ja.model.offline import cache_dir
from whisper_ja.model.record import ModelRecord, recorded_policy, write_record
from whisper_ja.model.saving import save_hf

__all__ = ["cached_ct2"]

log = logging.getLogger(__name__)


def _folder_stamp(folder: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of every file in a folder: what changes when its weights do."""
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*") if p.is_file())


def _request_key(model: str, adapter: str | None) -> str:
    parts: dict[str, object] = {"model": model, "adapter": adapter}
    for name, value in (("model_files", model), ("adapter_files", adapter)):
        if value and Path(value).expanduser().is_dir():
            folder = Path(value).expanduser().resolve()
            parts[name] = [str(folder), _folder_stamp(folder)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _index_path() -> Path:
    return cache_dir() / "ct2" / "index.json"


def _read_index() -> dict[str, str]:
    try:
        found = json.loads(_index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no index yet, or a damaged one: conversions are found again by hash
    return found if isinstance(found, dict) else {}


def _write_index(index: dict[str, str]) -> None:
    path = _index_path()
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                     encoding="utf-8") as handle:
        json.dump(index, handle)
    os.replace(handle.name, path)  # atomic: concurrent runs never read half an index


def _weights_hash(model: object) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):  # type: ignore[attr-defined]
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _policy(dynamic: bool, *folders: str | None) -> ContextPolicy:
    for folder in folders:
        saved = recorded_policy(folder)
        if saved is not None:
            return dataclasses.replace(saved, dynamic=dynamic)
    return ContextPolicy(dynamic=dynamic)


def cached_ct2(model: str, adapter: str | None = None) -> Path:
    """The CTranslate2 folder (float32 weights) of ``model`` with ``adapter`` merged.

    Converted on first use (about 10-20 s for whisper-base on a CPU), found by hash after.

    Raises:
        ModelError: the model or adapter cannot be loaded.
    """
    root = cache_dir() / "ct2"
    root.mkdir(parents=True, exist_ok=True)
    key = _request_key(model, adapter)
    index = _read_index()
    known = index.get(key)
    if known and (root / known / "model.bin").is_file():
        return root / known
    loaded = load_model(model, adapter=adapter, device="cpu")
    dynamic = uses_dynamic_context(loaded.model)
    plain = plain_copy(loaded.model)
    digest = _weights_hash(plain)
    out = root / digest
    if not (out / "model.bin").is_file():
        log.info("converting %s%s to CTranslate2 once (cache: %s)", model,
                 f" + {adapter}" if adapter else "", out)
        policy = _policy(dynamic, adapter, model)
        with tempfile.TemporaryDirectory(prefix="whisper-ja-ct2-", dir=root) as work:
            hf, staged = Path(work) / "hf", Path(work) / "ct2"
            save_hf(plain, loaded.processor, hf)
            convert_ct2(hf, staged, None)
            write_record(staged, ModelRecord(policy=policy))
            with contextlib.suppress(FileExistsError, OSError):
                staged.rename(out)  # another run may have placed the same weights first
            shutil.rmtree(staged, ignore_errors=True)
    index[key] = digest
    _write_index(index)
    return out

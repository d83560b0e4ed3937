"""``whisper_ja.json``: what whisper-ja records in a model folder, read and written here only.

``train`` (adapters and full models), ``distill`` (students), ``export`` (transformers and
CTranslate2 folders) and the engine's cached conversions all record how the model was trained
to be decoded: its context policy, and where it came from (base model, mode, teacher). Every
reader (the engine's backends, ``evaluate`` finding an adapter's base model, ``export``'s
card) goes through :func:`read_record`, so a malformed record is one named error
(:class:`~whisper_ja.errors.ModelError`: file and what is wrong), never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.errors import ModelError

__all__ = ["RECORD_FILE", "ModelRecord", "read_record", "recorded_policy", "write_record"]

RECORD_FILE = "whisper_ja.json"


@dataclass(frozen=True)
class ModelRecord:
    """What a model folder records.

    Attributes:
        policy: The context policy to decode with (None: a stock model, 30 s windows).
        base_model: The base model an adapter applies to (``train``).
        mode: ``lora``, ``full``, ``distilled``...
        extra: Any other keys, kept as they are (teacher, adapter of a distilled student).
    """

    policy: ContextPolicy | None = None
    base_model: str | None = None
    mode: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _policy(data: dict[str, Any]) -> ContextPolicy | None:
    saved = data.get("context")
    if saved is None and "dynamic_context" not in data:
        return None
    if saved is not None and not isinstance(saved, dict):
        raise TypeError(f"'context' must be a mapping, got {saved!r}")
    saved = saved or {}
    known = {f.name for f in dataclasses.fields(ContextPolicy)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise TypeError(f"unknown context setting(s) {', '.join(unknown)}")
    dynamic = bool(data.get("dynamic_context", saved.get("dynamic", False)))
    return ContextPolicy(**{**saved, "dynamic": dynamic})


def read_record(folder: str | Path | None) -> ModelRecord | None:
    """The record of a model folder; None when it has none (a stock model) or no folder.

    Raises:
        ModelError: the record is not valid JSON or holds an impossible policy (named).
    """
    if folder is None:
        return None
    path = Path(folder).expanduser() / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(data, dict):
            raise TypeError("the top level must be an object")
        policy = _policy(data)
    except (ValueError, TypeError, UnicodeDecodeError) as err:  # ConfigError is a ValueError
        raise ModelError(f"{path}: not a whisper-ja model record ({err}); re-export or "
                         "re-train the model, or delete the file to decode it as a stock "
                         "model") from err
    extra = {k: v for k, v in data.items()
             if k not in ("context", "dynamic_context", "base_model", "mode")}
    base = data.get("base_model")
    mode = data.get("mode")
    return ModelRecord(policy, str(base) if base else None, str(mode) if mode else None,
                       extra)


def write_record(folder: str | Path, record: ModelRecord) -> Path:
    """Write ``record`` into ``folder`` atomically (a reader never sees half a file)."""
    data: dict[str, Any] = dict(record.extra)
    if record.base_model is not None:
        data["base_model"] = record.base_model
    if record.mode is not None:
        data["mode"] = record.mode
    if record.policy is not None:
        data["dynamic_context"] = record.policy.dynamic
        data["context"] = dataclasses.asdict(record.policy)
    path = Path(folder) / RECORD_FILE
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8",
                                     prefix=f".{RECORD_FILE}.") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    os.replace(handle.name, path)
    return path


def recorded_policy(folder: str | Path | None) -> ContextPolicy | None:
    """The context policy a model folder records, or None (no record, or a stock model).

    Raises:
        ModelError: a malformed record (named).
    """
    record = read_record(folder) if folder is not None and Path(folder).is_dir() else None
    return record.policy if record is not None else None

"""Reading JSONL files line by line with errors that name the file and line.

Manifests, hypothesis files and score inputs are all JSONL; they share this reader so a bad line
is reported the same way everywhere (``path:line: what is wrong``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["iter_json_objects", "parse_json_object"]


def iter_json_objects(path: str | Path, error: type[Exception] = ValueError
                      ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for every non-blank line of a JSONL file.

    Args:
        path: The JSONL file (UTF-8).
        error: Exception class raised on a bad line, with the message ``path:line: reason``.

    Raises:
        error: a line that is not valid JSON or not a JSON object.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, parse_json_object(raw, f"{path}:{number}", error)


def parse_json_object(line: str, where: str, error: type[Exception] = ValueError
                      ) -> dict[str, Any]:
    """One JSONL line as a JSON object.

    Args:
        line: The line's text.
        where: ``path:line`` for the error message.
        error: Exception class raised on a bad line.

    Raises:
        error: the line is not valid JSON or not a JSON object.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON: {err.msg}") from err
    if not isinstance(obj, dict):
        raise error(f"{where}: expected a JSON object")
    return obj

"""Reading JSONL files line by line with errors that name the file and line.

Manifests, hypothesis files and score inputs are all JSONL; they share this reader so a bad line
is reported the same way everywhere (``path:line: what is wrong``). A UTF-8 byte-order mark
(Windows editors write one) is accepted; a line that is not UTF-8 is a bad line like any other,
named by file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["decode_utf8_line", "iter_json_objects", "parse_json_object"]

_BOM = b"\xef\xbb\xbf"


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
    # Read as bytes and decoded line by line, so a non-UTF-8 byte is named with its line.
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            line = decode_utf8_line(raw, f"{path}:{number}", error)
            if line.strip():
                yield number, parse_json_object(line, f"{path}:{number}", error)


def decode_utf8_line(raw: bytes, where: str, error: type[Exception] = ValueError) -> str:
    """One line's bytes as text.

    Raises:
        error: the bytes are not UTF-8 (``where: not valid UTF-8 ...`` naming the column).
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{where}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1}); save the file as UTF-8") from err


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

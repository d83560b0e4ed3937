"""Weight files checked whole before a library loads them.

A model or adapter copied or downloaded only in part is common (a full disk, an interrupted
``scp``). safetensors and CTranslate2 stop on such a file with an error that names neither the
file nor what to do, so whisper-ja checks first: a ``.safetensors`` file must be as long as its
own header says (the header is JSON giving each tensor's byte range), and a CTranslate2
``model.bin`` must hold every variable its headers announce
(:func:`whisper_ja.model.ct2_format.check_ct2_model_bin`).
"""

from __future__ import annotations

import json
from pathlib import Path

from whisper_ja.errors import ModelLoadError
from whisper_ja.model.ct2_format import check_ct2_model_bin

__all__ = ["check_safetensors", "check_weight_files"]

_HEADER_LENGTH_BYTES = 8
"""A safetensors file starts with its JSON header's length, a little-endian u64."""


def check_safetensors(path: Path) -> None:
    """Check that a ``.safetensors`` file is whole: as long as its header says.

    Raises:
        ModelLoadError: the file is empty, its header is cut or unreadable, or its tensor data
            ends early (the message names the file and how many bytes are missing).
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        header_length = int.from_bytes(handle.read(_HEADER_LENGTH_BYTES), "little")
        if size < _HEADER_LENGTH_BYTES or _HEADER_LENGTH_BYTES + header_length > size:
            raise ModelLoadError(f"{path}: truncated: its {size} bytes end inside the "
                                 "safetensors header (a cut-short copy? copy or save it again)")
        try:
            header = json.loads(handle.read(header_length))
            data_bytes = max((int(entry["data_offsets"][1]) for name, entry in header.items()
                              if name != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise ModelLoadError(f"{path}: not a safetensors file (unreadable header: {err})"
                                 ) from err
    expected = _HEADER_LENGTH_BYTES + header_length + data_bytes
    if size < expected:
        raise ModelLoadError(f"{path}: truncated: {size} of the {expected} bytes its header "
                             f"declares ({expected - size} missing; a cut-short copy? copy or "
                             "save it again)")


def check_weight_files(folder: Path) -> None:
    """Check every weight file directly in a model or adapter folder.

    Raises:
        ModelLoadError: a ``.safetensors`` file is cut short or unreadable.
        Ct2FormatError: a CTranslate2 ``model.bin`` is cut short or of another version.
    """
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)
    if (folder / "model.bin").is_file():
        check_ct2_model_bin(folder / "model.bin")

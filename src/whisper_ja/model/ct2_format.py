"""Reading CTranslate2's ``model.bin`` without CTranslate2.

Written by hand because CTranslate2 can write this format from Python but only read it from C++:
there is no library call that hands back the stored arrays. The layout is the one written by
``ModelSpec._serialize`` in CTranslate2's ``python/ctranslate2/specs/model_spec.py`` (binary
version 6): a header (version, spec name, spec revision), then each variable as name, rank,
dims, dtype id, byte count and raw little-endian bytes, then a list of aliases (one variable
stored once under two names, e.g. Whisper's tied output projection).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_ja.errors import Ct2FormatError

__all__ = ["Ct2FormatError", "Ct2Model", "read_ct2_model"]

SUPPORTED_BINARY_VERSIONS = (6,)
# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


@dataclass(frozen=True)
class Ct2Model:
    """The contents of a CTranslate2 ``model.bin``.

    Attributes:
        spec: The spec name, e.g. ``"WhisperSpec"``.
        revision: The spec revision.
        binary_version: The file format version.
        variables: Every stored array by name, aliases resolved (float arrays as stored).
    """

    spec: str
    revision: int
    binary_version: int
    variables: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes | memoryview, path: Path) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise Ct2FormatError(f"{self.path}: truncated at byte {self.pos}")
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def string(self) -> str:
        length = self.unpack("H")  # includes the trailing NUL
        raw = bytes(self.data[self.pos:self.pos + length - 1])
        self.pos += length
        return raw.decode("utf-8")

    def take(self, num_bytes: int) -> memoryview:
        if self.pos + num_bytes > len(self.data):
            raise Ct2FormatError(f"{self.path}: truncated at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + num_bytes]
        self.pos += num_bytes
        return chunk


def _array(chunk: memoryview, dtype_id: int, dims: list[int], name: str, path: Path) -> np.ndarray:
    if dtype_id >= len(_DTYPES):
        raise Ct2FormatError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
    dtype = _DTYPES[dtype_id]
    if dtype == "bfloat16":
        # numpy has no bfloat16: widen the 16 stored bits to the top half of a float32.
        bits = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(dims)
    return np.frombuffer(chunk, dtype=np.dtype(dtype).newbyteorder("<")).reshape(dims).copy()


def read_ct2_model(path: str | Path, data: bytes | None = None) -> Ct2Model:
    """Read a CTranslate2 ``model.bin`` into numpy arrays.

    Args:
        path: The ``model.bin`` file (or the folder holding it).
        data: The file's bytes, when already in memory (``path`` then only names it in errors).

    Returns:
        The spec name, revision and every variable, aliases resolved to their target's array.

    Raises:
        Ct2FormatError: the file is missing, truncated, or of an unsupported version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if data is None:
        if not path.is_file():
            raise Ct2FormatError(f"{path}: no CTranslate2 model.bin there")
        data = path.read_bytes()
    reader = _Reader(data, path)
    version = reader.unpack("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(
            f"{path}: CTranslate2 binary version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))})")
    spec = reader.string()
    revision = reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        dims = [reader.unpack("I") for _ in range(reader.unpack("B"))]
        dtype_id = reader.unpack("B")
        chunk = reader.take(reader.unpack("I"))
        variables[name] = _array(chunk, dtype_id, dims, name, path)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise Ct2FormatError(f"{path}: alias {alias} points to missing variable {target}")
        variables[alias] = variables[target]
        # A quantized weight shares its target's scale, which is not stored under the alias.
        for suffix in ("_scale", "_zero"):
            if target + suffix in variables and alias + suffix not in variables:
                variables[alias + suffix] = variables[target + suffix]
    if reader.pos != len(reader.data):
        raise Ct2FormatError(f"{path}: {len(reader.data) - reader.pos} unexpected trailing bytes")
    return Ct2Model(spec=spec, revision=revision, binary_version=version, variables=variables)

"""Reading CTranslate2's ``model.bin`` without CTranslate2.

Written by hand because CTranslate2 can write this format from Python but only read it from C++:
there is no library call that hands back the stored arrays. The layout is the one written by
``ModelSpec._serialize`` in CTranslate2's ``python/ctranslate2/specs/model_spec.py`` (binary
version 6): a header (version, spec name, spec revision), then each variable as name, rank,
dims, dtype id, byte count and raw little-endian bytes, then a list of aliases (one variable
stored once under two names, e.g. Whisper's tied output projection).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_ja.errors import Ct2FormatError

__all__ = ["Ct2FormatError", "Ct2Model", "check_ct2_model_bin", "read_ct2_model"]

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
    def __init__(self, data: bytes | memoryview | mmap.mmap, path: Path) -> None:
        # A mapped file stays an mmap: a memoryview of it would keep it from closing while an
        # error's traceback still holds this reader.
        self.data = data if isinstance(data, mmap.mmap) else memoryview(data)
        self.pos = 0
        self.path = path

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise self.truncated(size)
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def truncated(self, wanted: int) -> Ct2FormatError:
        return Ct2FormatError(
            f"{self.path}: truncated at byte {self.pos}: the file ends at byte "
            f"{len(self.data)}, {self.pos + wanted - len(self.data)} byte(s) short "
            "(a cut-short copy? copy or export the model again)")

    def string(self) -> str:
        length = self.unpack("H")  # includes the trailing NUL
        raw = bytes(self.data[self.pos:self.pos + length - 1])
        self.pos += length
        return raw.decode("utf-8")

    def skip(self, num_bytes: int) -> None:
        if self.pos + num_bytes > len(self.data):
            raise self.truncated(num_bytes)
        self.pos += num_bytes

    def take(self, num_bytes: int) -> memoryview:
        if self.pos + num_bytes > len(self.data):
            raise self.truncated(num_bytes)
        chunk = memoryview(self.data[self.pos:self.pos + num_bytes])
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


@dataclass(frozen=True)
class _Stored:
    """One variable as stored: name, dims, dtype id and its raw bytes (not yet an array)."""

    name: str
    dims: list[int]
    dtype_id: int
    chunk: memoryview


def _walk(reader: _Reader, load: bool = True) -> tuple[str, int, int, Iterator[_Stored]]:
    """The header (spec, revision, version) and an iterator over the stored variables.

    With ``load`` false each variable's bytes are skipped (its ``chunk`` is empty).
    """
    version = reader.unpack("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(
            f"{reader.path}: CTranslate2 binary version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))})")
    spec = reader.string()
    revision = reader.unpack("I")

    def variables() -> Iterator[_Stored]:
        for _ in range(reader.unpack("I")):
            name = reader.string()
            dims = [reader.unpack("I") for _ in range(reader.unpack("B"))]
            dtype_id = reader.unpack("B")
            num_bytes = reader.unpack("I")
            if load:
                yield _Stored(name, dims, dtype_id, reader.take(num_bytes))
            else:
                reader.skip(num_bytes)
                yield _Stored(name, dims, dtype_id, memoryview(b""))

    return spec, revision, version, variables()


def _aliases(reader: _Reader) -> list[tuple[str, str]]:
    pairs = [(reader.string(), reader.string()) for _ in range(reader.unpack("I"))]
    if reader.pos != len(reader.data):
        raise Ct2FormatError(f"{reader.path}: {len(reader.data) - reader.pos} unexpected "
                             "trailing bytes")
    return pairs


def check_ct2_model_bin(path: str | Path) -> None:
    """Check that a ``model.bin`` holds every byte its own header promises, without loading it.

    The file is mapped, not read, and only its variable headers are walked, so a 3 GB model
    is checked in milliseconds. CTranslate2 itself stops on a cut-short file with an error
    that does not name it.

    Args:
        path: The ``model.bin`` file (or the folder holding it).

    Raises:
        Ct2FormatError: missing, empty, truncated (by how many bytes), or another version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise Ct2FormatError(f"{path}: no CTranslate2 model.bin there")
    if path.stat().st_size == 0:
        raise Ct2FormatError(f"{path}: empty file (0 bytes); copy or export the model again")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        reader = _Reader(mm, path)
        for _ in _walk(reader, load=False)[3]:
            pass
        _aliases(reader)


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
    spec, revision, version, stored = _walk(reader)
    variables = {v.name: _array(v.chunk, v.dtype_id, v.dims, v.name, path) for v in stored}
    for alias, target in _aliases(reader):
        if target not in variables:
            raise Ct2FormatError(f"{path}: alias {alias} points to missing variable {target}")
        variables[alias] = variables[target]
        # A quantized weight shares its target's scale, which is not stored under the alias.
        for suffix in ("_scale", "_zero"):
            if target + suffix in variables and alias + suffix not in variables:
                variables[alias + suffix] = variables[target + suffix]
    return Ct2Model(spec=spec, revision=revision, binary_version=version, variables=variables)

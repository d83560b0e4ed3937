"""Whisper tokenizers of every generation, built offline from OpenAI's own BPE ranks.

No large-v3-class tokenizer ships in a package registry, but the PyPI sdist
``openai-whisper==20250625`` (MIT) holds ``whisper/assets/multilingual.tiktoken``: the byte-level
BPE ranks every multilingual Whisper shares. OpenAI's ``whisper/tokenizer.py`` (same sdist)
derives the special tokens from the number of languages: 99 for tiny … large-v2 (51,865 ids
with timestamps), 100 for large-v3, large-v3-turbo and kotoba-whisper (51,866; ``<|yue|>`` is
language 100). This module repeats that construction as a Hugging Face fast tokenizer:

- vocabulary and merges from the ranks (transformers' ``TikTokenConverter``; with
  ``ignore_merges`` the BPE looks whole pieces up first, as tiktoken does);
- GPT-2's pre-tokenizer (the pattern OpenAI passes to tiktoken);
- the special tokens in OpenAI's order, language codes read from the sdist's ``LANGUAGES``;
- timestamps and the Japanese prefix added by
  :func:`whisper_ja.model.processor.processor_from_tokenizer_json`.

The sdist is found in ``$WHISPER_JA_WHEELS``, the cache, the current folder or
``<venv>/share/whisper-ja`` (where ``make env`` downloads it), checksum-verified, and the
processor saved once under ``$WHISPER_JA_CACHE`` like the offline whisper-base.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
from transformers import WhisperProcessor
from transformers.convert_slow_tokenizer import TikTokenConverter

from whisper_ja.errors import OfflineModelError
from whisper_ja.model.offline import cache_dir
from whisper_ja.model.processor import processor_from_tokenizer_json, set_japanese_prefix
from whisper_ja.model.tokens import special_tokens

__all__ = [
    "OPENAI_WHISPER_SDIST",
    "OpenAIAssets",
    "find_openai_whisper_sdist",
    "offline_whisper_processor",
    "read_openai_assets",
    "whisper_special_token_strings",
]

log = logging.getLogger(__name__)

OPENAI_WHISPER_SDIST = "openai_whisper-20250625.tar.gz"
SDIST_SHA256 = "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
_ROOT = "openai_whisper-20250625/whisper"
_DOWNLOAD_HINT = ("pip download --no-deps --no-binary :all: openai-whisper==20250625 -d "
                  "DIR  (then set WHISPER_JA_WHEELS=DIR, or run `make env`)")
_CACHE_VERSION = "v1"
_DONE_MARKER = "SOURCE.txt"
NUM_TIMESTAMPS = 1501
"""``<|0.00|>`` … ``<|30.00|>``."""


@dataclass(frozen=True)
class OpenAIAssets:
    """What whisper-ja takes from the ``openai-whisper`` sdist.

    Attributes:
        ranks: BPE ranks of ``multilingual.tiktoken`` (token bytes -> rank).
        languages: Language codes of ``whisper/tokenizer.py``'s ``LANGUAGES``, in order.
        source: The sdist file.
    """

    ranks: dict[bytes, int]
    languages: tuple[str, ...]
    source: Path


def _search_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("WHISPER_JA_WHEELS", "").split(os.pathsep) if p]
    return [*extra, cache_dir(), Path.cwd(), Path(sys.prefix) / "share" / "whisper-ja"]


def find_openai_whisper_sdist() -> Path:
    """The downloaded ``openai-whisper==20250625`` sdist.

    Raises:
        OfflineModelError: not found; the message says how to download it.
    """
    for folder in _search_dirs():
        candidate = folder / OPENAI_WHISPER_SDIST
        if candidate.is_file():
            return candidate
    raise OfflineModelError(
        "the Whisper large-v3 tokenizer is built offline from OpenAI's openai-whisper sdist, "
        f"which is not downloaded (looked for {OPENAI_WHISPER_SDIST} in $WHISPER_JA_WHEELS, "
        f"{cache_dir()}, {Path.cwd()} and {Path(sys.prefix) / 'share' / 'whisper-ja'}). "
        f"Fetch it with: {_DOWNLOAD_HINT}")


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        handle = archive.extractfile(f"{_ROOT}/{name}")
    except KeyError:
        handle = None
    if handle is None:
        raise OfflineModelError(f"the openai-whisper sdist lacks {_ROOT}/{name}")
    return handle.read()


def _languages(tokenizer_py: bytes) -> tuple[str, ...]:
    """The keys of ``LANGUAGES = {...}`` in OpenAI's tokenizer.py, read without running it."""
    for node in ast.parse(tokenizer_py).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "LANGUAGES"):
            return tuple(ast.literal_eval(node.value))
    raise OfflineModelError("whisper/tokenizer.py of the openai-whisper sdist has no LANGUAGES")


def read_openai_assets(sdist: Path | None = None) -> OpenAIAssets:
    """Read the BPE ranks and language codes from the sdist (checksum-verified).

    Raises:
        OfflineModelError: the sdist is missing, corrupt or laid out differently.
    """
    sdist = sdist or find_openai_whisper_sdist()
    data = sdist.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise OfflineModelError(f"{sdist}: sha256 {digest}, expected {SDIST_SHA256} "
                                f"(a different or damaged file); fetch it again: {_DOWNLOAD_HINT}")
    with tarfile.open(sdist, "r:gz") as archive:
        ranks_text = _member(archive, "assets/multilingual.tiktoken").decode("ascii")
        languages = _languages(_member(archive, "tokenizer.py"))
    # The file format, as OpenAI's get_encoding reads it: one base64 token and its rank a line.
    ranks = {base64.b64decode(token): int(rank)
             for token, rank in (line.split() for line in ranks_text.splitlines() if line)}
    return OpenAIAssets(ranks=ranks, languages=languages, source=sdist)


def whisper_special_token_strings(languages: tuple[str, ...], num_languages: int) -> list[str]:
    """The special tokens after the BPE ranks, in OpenAI's order (timestamps excluded).

    Hugging Face's tokenizers of tiny … large-v2 call ``<|nospeech|>`` ``<|nocaptions|>``;
    the 99-language tokenizer keeps that name so that it equals theirs.
    """
    if not 1 <= num_languages <= len(languages):
        raise ValueError(f"num_languages: must be in 1..{len(languages)}, got {num_languages}")
    no_speech = "<|nocaptions|>" if num_languages == 99 else "<|nospeech|>"
    return ["<|endoftext|>", "<|startoftranscript|>",
            *[f"<|{code}|>" for code in languages[:num_languages]],
            "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", no_speech,
            "<|notimestamps|>"]


class _RanksConverter(TikTokenConverter):
    """transformers' tiktoken converter fed ranks already read (it would need tiktoken)."""

    def __init__(self, ranks: dict[bytes, int]) -> None:
        super().__init__(vocab_file=None)
        self._ranks = ranks

    def load_tiktoken_bpe(self, tiktoken_url: str) -> dict[bytes, int]:  # type: ignore[override]
        return self._ranks


def _build_tokenizer_json(assets: OpenAIAssets, num_languages: int, path: Path) -> None:
    vocab, merges = _RanksConverter(assets.ranks).extract_vocab_merges_from_model("")
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False))
    tokenizer.model.ignore_merges = True  # whole pieces first, as tiktoken encodes
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = whisper_special_token_strings(assets.languages, num_languages)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in specials])
    for offset, token in enumerate(specials):
        if tokenizer.token_to_id(token) != len(assets.ranks) + offset:
            raise OfflineModelError(f"{token} did not get id {len(assets.ranks) + offset}")
    tokenizer.save(str(path))


def _cache_folder(num_languages: int, num_mel_bins: int, root: Path | None) -> Path:
    name = f"whisper-tokenizer-{num_languages}lang-{num_mel_bins}mel-offline-{_CACHE_VERSION}"
    return (root or cache_dir()) / name


def _write_once(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder to a temporary sibling and rename it into place (concurrency-safe)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            tmp.rename(target)
        except OSError:
            if not (target / _DONE_MARKER).is_file():  # another process won the race: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def offline_whisper_processor(num_languages: int = 100, *, num_mel_bins: int = 128,
                              cache: Path | None = None,
                              sdist: Path | None = None) -> WhisperProcessor:
    """A Japanese ``WhisperProcessor`` of the 99- or 100-language generation, built once.

    Args:
        num_languages: 100 (large-v3, large-v3-turbo, kotoba-whisper) or 99 (tiny … large-v2).
        num_mel_bins: Mel bands of the feature extractor (128 from large-v3 on, else 80).
        cache: Cache root (default :func:`whisper_ja.model.offline.cache_dir`).
        sdist: The ``openai-whisper`` sdist (default: :func:`find_openai_whisper_sdist`).

    Returns:
        The processor; its tokenizer's special tokens are checked against their strings.

    Raises:
        OfflineModelError: the sdist is missing or corrupt.
    """
    target = _cache_folder(num_languages, num_mel_bins, cache)
    if not (target / _DONE_MARKER).is_file():
        assets = read_openai_assets(sdist)
        log.info("building the %d-language Whisper tokenizer from %s (once) into %s",
                 num_languages, assets.source, target)

        def write(folder: Path) -> None:
            raw = folder / "bpe_tokenizer.json"
            _build_tokenizer_json(assets, num_languages, raw)
            vocab_size = len(assets.ranks) + num_languages + 8 + NUM_TIMESTAMPS
            built = processor_from_tokenizer_json(raw, num_mel_bins=num_mel_bins,
                                                  vocab_size=vocab_size)
            raw.unlink()
            built.save_pretrained(folder)
            built.feature_extractor.save_pretrained(folder)
            (folder / _DONE_MARKER).write_text(json.dumps({
                "source": f"OpenAI openai-whisper==20250625 sdist (MIT), sha256 {SDIST_SHA256}",
                "files": ["whisper/assets/multilingual.tiktoken", "whisper/tokenizer.py"],
                "num_languages": num_languages, "vocab_size": vocab_size,
            }, indent=1) + "\n", encoding="utf-8")

        _write_once(target, write)
    processor = WhisperProcessor.from_pretrained(target, local_files_only=True)
    set_japanese_prefix(processor.tokenizer)
    _check_against_strings(processor, num_languages)
    return processor


def _check_against_strings(processor: WhisperProcessor, num_languages: int) -> None:
    specials = special_tokens(processor.tokenizer)
    if specials.num_languages != num_languages:
        raise OfflineModelError(f"built tokenizer has {specials.num_languages} languages, "
                                f"expected {num_languages}")
    last = processor.tokenizer.convert_ids_to_tokens(specials.vocab_size - 1)
    if last != "<|30.00|>" or processor.tokenizer.convert_ids_to_tokens(
            specials.timestamp_begin) != "<|0.00|>":
        raise OfflineModelError(f"built tokenizer's timestamps are misplaced (last token {last})")

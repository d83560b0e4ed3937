"""Any folder of audio files with same-named ``.txt`` transcripts (searched recursively).

``a/b/clip.wav`` + ``a/b/clip.txt`` becomes id ``CORPUS/a/b/clip``; the first folder level under
SRC, if any, is taken as the speaker (``spk1/clip.wav`` -> speaker ``spk1``). An audio file
without its ``.txt`` is a ``missing_text`` problem, a ``.txt`` without audio ``missing_audio``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_ja.data.corpora.base import AUDIO_SUFFIXES, Candidate, CorpusError, ReaderContext

__all__ = ["read"]


def _read_text(path: Path) -> tuple[str, bool]:
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def read(context: ReaderContext) -> Iterator[Candidate]:
    """Yield one candidate per audio file (and per orphan ``.txt``), in path order.

    Raises:
        CorpusError: SRC is not a folder.
    """
    root = Path(context.config.source)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder")
    audio = {p.with_suffix(""): p for p in sorted(root.rglob("*"))
             if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()}
    texts = {p.with_suffix(""): p for p in sorted(root.rglob("*.txt")) if p.is_file()}
    for stem in sorted(set(audio) | set(texts)):
        relative = stem.relative_to(root)
        speaker = relative.parts[0] if len(relative.parts) > 1 else ""
        text_path = texts.get(stem)
        text, ok = _read_text(text_path) if text_path else (None, True)
        yield Candidate(id=f"{context.config.name}/{relative.as_posix()}",
                        audio=audio.get(stem, stem.with_suffix(".wav")), text=text,
                        where=str(text_path or audio[stem]), speaker=speaker, text_decoded=ok)

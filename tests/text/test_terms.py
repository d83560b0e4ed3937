from __future__ import annotations

from pathlib import Path

import pytest

from whisper_ja.text.metrics import term_recall
from whisper_ja.text.terms import Term, TermFileError, load_terms

REFS = ["東京に行きます", "大阪で会議があります", "東京と大阪", "今日は晴れ"]
HYPS = ["とうきょうに行きます", "大阪で会議があります", "東京と大坂", "今日は晴れ"]


def test_per_term_and_overall_recall() -> None:
    result = term_recall(REFS, HYPS, ["東京", Term("大阪", "おおさか"), "札幌"])
    tokyo, osaka, sapporo = result.terms
    assert (tokyo.occurrences, tokyo.recalled, tokyo.heard) == (2, 1, 2)
    assert (osaka.occurrences, osaka.recalled, osaka.heard) == (2, 1, 2)
    assert tokyo.recall == 0.5 and tokyo.reading_recall == 1.0
    assert sapporo.occurrences == 0 and sapporo.recall is None
    assert result.absent == ("札幌",)
    assert (result.occurrences, result.recalled) == (4, 2)
    assert result.recall == 0.5 and result.reading_recall == 1.0
    summary = result.to_dict()
    assert [t["term"] for t in summary["terms"]] == ["東京", "大阪", "札幌"]


def test_terms_are_matched_after_normalization() -> None:
    # full-width letters, spaces and number spellings do not hide a term
    result = term_recall(["ＮＨＫで２０２４年"], ["NHK で 二千二十四年"], ["NHK", "2024年"])
    assert [t.recalled for t in result.terms] == [1, 1]
    paper = term_recall(["東京都に住む"], ["東京都に住む"], ["東京都"], normalizer="paper")
    assert paper.terms[0].recalled == 1


def test_no_terms_present() -> None:
    result = term_recall(["今日は晴れ"], ["今日は晴れ"], ["東京"])
    assert result.recall is None and result.occurrences == 0


def test_load_terms(tmp_path: Path) -> None:
    path = tmp_path / "terms.txt"
    path.write_text("# domain words\n東京\n\n大阪\tおおさか\n", encoding="utf-8")
    assert load_terms(path) == [Term("東京"), Term("大阪", "おおさか")]


@pytest.mark.parametrize(("content", "message"), [
    ("東京\n東京\n", r"terms.txt:2: term '東京' already listed on line 1"),
    ("a\tb\tc\n", r"terms.txt:1: expected 'term' or 'term<TAB>reading'"),
    ("\tよみ\n", r"terms.txt:1: empty term"),
])
def test_bad_term_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "terms.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TermFileError, match=message):
        load_terms(path)


def test_missing_term_file(tmp_path: Path) -> None:
    with pytest.raises(TermFileError, match="does not exist"):
        load_terms(tmp_path / "nope.txt")

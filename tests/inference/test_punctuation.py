"""Sentence ends carried from a punctuated re-reading onto the first reading's segments."""

from __future__ import annotations

from whisper_ja.inference.punctuation import carry_sentence_ends
from whisper_ja.inference.timestamps import WindowParse

END = 0
"""Token 0 is 。; every other token is one character of its reading."""


class _Reading:
    """Token ids for text, one per character, 。 as :data:`END`."""

    def __init__(self) -> None:
        self.chars = ["。"]

    def ids(self, text: str) -> tuple[int, ...]:
        for c in text:
            if c not in self.chars:
                self.chars.append(c)
        return tuple(self.chars.index(c) for c in text)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)


def _parse(reading: _Reading, *texts: str, well_formed: bool = True) -> WindowParse:
    return WindowParse(tuple((2.0 * k, 2.0 * k + 2.0, reading.ids(t))
                             for k, t in enumerate(texts)), 30.0, well_formed)


def test_the_first_readings_segments_get_the_second_readings_sentence_ends():
    reading = _Reading()
    first = _parse(reading, "メアリーと夫婦だった頃", "二人でよく行ったっけ",
                   "その書類は見つからなかったが", "先日出てきた")
    second = _parse(reading, "メアリーと夫婦だった頃、二人でよく行ったっけ。その書類は"
                             "見つからなかったが、先日出てきた。", well_formed=False)
    carried = carry_sentence_ends(first, second, reading.decode, END)
    assert carried is not None
    assert [reading.decode(ids) for _, _, ids in carried.segments] == [
        "メアリーと夫婦だった頃", "二人でよく行ったっけ。", "その書類は見つからなかったが",
        "先日出てきた。"]
    # times and the rest of the first reading are kept
    assert [(s, e) for s, e, _ in carried.segments] == [(s, e) for s, e, _ in first.segments]
    assert carried.seek == first.seek and carried.well_formed


def test_small_wording_differences_between_the_readings_do_not_matter():
    reading = _Reading()
    first = _parse(reading, "トムやアリスと一緒に", "ボーリングに行った", "楽しかった")
    second = _parse(reading, "トムやアリスと一諸に、ボウリングに行った。たのしかった。")
    carried = carry_sentence_ends(first, second, reading.decode, END)
    assert carried is not None
    assert [ids[-1] == END for _, _, ids in carried.segments] == [False, True, True]


def test_nothing_is_carried_from_a_reading_of_other_words_or_without_sentence_ends():
    reading = _Reading()
    first = _parse(reading, "感染が確認され", "沖縄県によりますと")
    other = _parse(reading, "今日はとても良い天気ですね。")
    commas = _parse(reading, "感染が確認され、沖縄県によりますと、")
    assert carry_sentence_ends(first, other, reading.decode, END) is None
    assert carry_sentence_ends(first, commas, reading.decode, END) is None


def test_a_comma_after_a_conclusive_form_carries_as_a_sentence_end():
    reading = _Reading()
    first = _parse(reading, "証拠は揃った", "アリバイがない")
    second = _parse(reading, "証拠は揃った、アリバイがない。")
    carried = carry_sentence_ends(first, second, reading.decode, END)
    assert carried is not None
    assert [ids[-1] == END for _, _, ids in carried.segments] == [True, True]

"""Segments joined into sentences: a clause to what continues it, in and across windows."""

from __future__ import annotations

from whisper_ja.inference.clauses import join_windows, merge_clauses
from whisper_ja.inference.timestamps import Segment


def test_clauses_are_joined_to_the_segment_that_continues_them():
    clause = Segment(0.0, 2.0, "雨が降ったので、", token_ids=(1,))
    rest = Segment(2.4, 4.0, "家にいました。", token_ids=(2,))
    next_sentence = Segment(4.5, 6.0, "明日は晴れ。", token_ids=(3,))
    far = Segment(9.0, 10.0, "そして", token_ids=(4,))
    later = Segment(12.0, 13.0, "終わり。", token_ids=(5,))
    merged = merge_clauses([clause, rest, next_sentence, far, later], max_gap=1.0)
    assert [(s.start, s.end, s.text) for s in merged] == [
        (0.0, 4.0, "雨が降ったので、家にいました。"), (4.5, 6.0, "明日は晴れ。"),
        (9.0, 10.0, "そして"), (12.0, 13.0, "終わり。")]
    assert merged[0].token_ids == (1, 2)


def test_a_window_written_without_punctuation_keeps_whispers_segments():
    first = Segment(0.0, 2.0, "雨が降ったので", token_ids=(1,))
    second = Segment(2.2, 4.0, "家にいました", token_ids=(2,))
    assert merge_clauses([first, second], max_gap=1.0) == [first, second]
    # one mark anywhere in the window shows it is punctuated: the clause is joined
    marked = Segment(2.2, 4.0, "家にいました。", token_ids=(2,))
    assert len(merge_clauses([first, marked], max_gap=1.0)) == 1
    # ...but an unmarked conclusive form ends its sentence there all the same
    ended = Segment(0.0, 2.0, "感染が確認されました", token_ids=(1,))
    assert merge_clauses([ended, marked], max_gap=1.0) == [ended, marked]


def test_a_full_stop_after_a_continuative_form_does_not_end_the_sentence():
    # a fine-tuned model wrote 。 at the comma pause of one sentence
    clause = Segment(0.0, 2.0, "最高気温が37度を超え。", token_ids=(1,))
    rest = Segment(2.5, 4.0, "この夏一番の暑さとなりました。", token_ids=(2,))
    assert [s.text for s in merge_clauses([clause, rest], max_gap=1.0)] == [
        "最高気温が37度を超え。この夏一番の暑さとなりました。"]


def test_a_sentence_cut_by_a_windows_end_is_joined_across_windows():
    first = [Segment(0.0, 5.0, "森選手は新記録を出しました。", token_ids=(1,)),
             Segment(5.5, 9.0, "徳島県によりますと、この3日間で新たに、", token_ids=(2,))]
    second = [Segment(9.3, 12.0, "683人の感染が確認されました。", token_ids=(3,)),
              Segment(12.5, 14.0, "明日は雨。", token_ids=(4,))]
    third = [Segment(20.0, 22.0, "遠くの話。", token_ids=(5,))]
    joined = list(join_windows([first, second, [], third], max_gap=1.0))
    assert [(s.start, s.end) for s in joined] == [(0.0, 5.0), (5.5, 12.0), (12.5, 14.0),
                                                  (20.0, 22.0)]
    assert joined[1].text == "徳島県によりますと、この3日間で新たに、683人の感染が確認されました。"
    assert joined[1].token_ids == (2, 3)


def test_windows_without_punctuation_or_far_apart_are_not_joined():
    bare = [Segment(0.0, 4.0, "感染が確認されました", token_ids=(1,))]
    marked = [Segment(0.0, 4.0, "沖縄県によりますと、", token_ids=(1,))]
    following = [Segment(4.3, 6.0, "明日は雨。", token_ids=(2,))]
    far = [Segment(5.5, 6.0, "明日は雨。", token_ids=(2,))]
    assert len(list(join_windows([bare, following], max_gap=1.0))) == 2
    assert len(list(join_windows([marked, far], max_gap=1.0))) == 2
    assert len(list(join_windows([marked, following], max_gap=1.0))) == 1


def test_a_segment_starting_with_a_particle_is_joined_to_the_one_before():
    ended = Segment(0.0, 2.0, "宮城県によります。", token_ids=(1,))
    rest = Segment(2.5, 5.0, "と、新たに52人の感染が確認されました。", token_ids=(2,))
    sentence = Segment(5.5, 7.0, "でも明日は晴れ。", token_ids=(3,))
    merged = merge_clauses([ended, rest, sentence], max_gap=1.0)
    assert [s.text for s in merged] == [
        "宮城県によります。と、新たに52人の感染が確認されました。", "でも明日は晴れ。"]

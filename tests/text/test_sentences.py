"""Whether a text ends a Japanese sentence (its mark and its last word's grammar)."""

from __future__ import annotations

import pytest

from whisper_ja.text.sentences import continues_sentence, ends_sentence, is_punctuation


@pytest.mark.parametrize("text", [
    "大会の新記録を出しました。",     # past tense (終止形)
    "本当に背が高い。",               # adjective, conclusive
    "ちょっと待って。",               # te-form: a request in speech
    "新しい彼女か何か？",             # question mark
    "メアリーと夫婦だった頃。",       # a noun (体言止め)
    "10月7日。",                      # a noun with no particle waiting
    "日本の首都。",                   # の joins nouns: nothing awaits a predicate
    "証拠は揃った。アリバイがない。",  # only the last sentence is read
    "東京では何時？",                 # a question needs no predicate
    "よく行ったっけ。",               # sentence-final particle
    "本当に背が高い。 ",              # trailing space
    "私は？",                         # a question may end on a particle
    "行ってみたら？",                 # a conditional asked is a suggestion
    "だって忙しいから。",             # other conjunctive particles may end spoken sentences
    "どこから？",
])
def test_a_sentence_mark_after_a_word_that_can_end_a_sentence_ends_it(text):
    assert ends_sentence(text)


@pytest.mark.parametrize("text", [
    "最高気温が37度を超え。",          # continuative verb (連用形)
    "チケットは5月23日から売り出され。",  # continuative auxiliary
    "この3日間で新たに。",             # continuative of だ
    "私はとても嬉しく。",              # continuative adjective
    "こういう特典に対して、私たちは。",  # topic particle
    "石川さんは三鷹市の自宅で。",        # case particle
    "最高気温が37度を超え、",          # a comma
    "最高気温が37度を超え",            # no mark at all
    "宮城県新宿区では9月17日。",        # では awaits a predicate: 、最高気温が...
    "市長は、予算をおよそ386279円。",   # を awaits one (とする案を...)
    "証拠は揃った。では10月7日。",      # the last sentence awaits one
    "宮城県によりますと。",             # conditional particle: the news follows
    "もっと早く言えば。",               # conditional particle after the conditional form
    "あなたの援助がなかったら。",        # conditional form (たら)
])
def test_a_clause_does_not_end_a_sentence_even_with_a_full_stop(text):
    assert not ends_sentence(text)


def test_punctuation_is_marks_and_spaces_only():
    assert is_punctuation("、。「」 ") and not is_punctuation("、あ")


@pytest.mark.parametrize(("text", "ends"), [
    ("日本人には孤独に見える、", True),       # conclusive (MeCab: attributive) before a comma
    ("証拠は揃った、", True),
    ("よく行ったっけ、", True),               # sentence-final particle
    ("最高気温が37度を超え、", False),        # continuative
    ("彼は学生だが、", False),                # conjunctive particle
    ("とても静かな、", False),                # だ's attributive
    ("ここは夕食をとる場所だ、", True),       # だ's conclusive
    ("徳島県によりますと、", False),
])
def test_a_comma_ends_a_sentence_after_a_conclusive_form(text, ends):
    assert ends_sentence(text) is ends


@pytest.mark.parametrize(("text", "ends"), [
    ("家族と誕生日を祝いました", True),       # conclusive, no mark (an unpunctuated stretch)
    ("私たちは万事うまくいっている", True),
    ("よく行ったっけ", True),                 # sentence-final particle
    ("最高気温が37度を超え", False),          # continuative
    ("来年度の予算を", False),                # case particle
    ("破産したろうに", False),                # conjunctive particle
    ("", False),
])
def test_an_unmarked_end_ends_a_sentence_on_a_conclusive_form(text, ends):
    assert ends_sentence(text) is ends


@pytest.mark.parametrize(("text", "continues"), [
    ("と、この7日間で新たに", True),         # a particle closes a word before it
    ("ですね。", True),                      # an auxiliary
    ("は困っている人に", True),
    ("でも明日は晴れ。", False),             # conjunctions, though MeCab reads で+も, だ+から
    ("だから行く。", False),
    ("で、どうしたの？", False),             # MeCab: 接続詞
    ("しかし雨が降った。", False),
    ("明日は雨。", False),
    ("", False),
])
def test_a_text_starting_with_a_particle_continues_the_sentence_before(text, continues):
    assert continues_sentence(text) is continues

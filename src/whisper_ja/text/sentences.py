"""Japanese punctuation, and whether a text ends a sentence by its marks and last word.

A 。 is not always a sentence end in ASR output. A model fine-tuned on joined sentences
learns to write 。 at any long pause, and synthetic voices pause at commas: the demo's
adapter wrote "最高気温が37度を超え。" / "この夏一番の暑さとなりました。" as two sentences
(dev set of ``benchmarks/heldout_longform.py``: 33 extra segments, most of them so), and
untouched whisper-base writes "…の自宅で。" at such a pause. Japanese grammar tells such a
clause: a statement does not end on a continuative form (連用形: 超え, 売り出され, 新たに) or on
a case or topic particle (自宅で, 私たちは). The last word is read with MeCab (unidic-lite, the
tagger :mod:`whisper_ja.text.normalize` already loads).

Nor does a statement end on a noun when it has a case-marked or topic word and no predicate
at all (宮城県新宿区では9月17日。, 市長は、予算をおよそ386万円。): the particle awaits a verb,
an adjective or a copula still to come. The adapter writes 。 after such a date at a comma
pause; the noun alone (体言止め: 10月7日。, 夫婦だった頃。) stays a sentence end.

A condition is a clause too: the conditional form (仮定形: 言えば, なかったら) and the
conditional particles と and ば (宮城県によりますと。) open a consequence still to come; untouched
whisper-base writes 。 after "…によりますと" at the comma pause of news sentences.

Nor does a sentence start with a particle or an auxiliary (:func:`continues_sentence`).

Kept as sentence ends: a question (どこから？), the te-form (待って。, a request in speech),
the other conjunctive particles (忙しいから。, 行きたいけど。), sentence-final particles,
nouns with no waiting particle, and every conclusive form. A fragment answer of
conversation (東京から。, 私は学生。) is read as a clause: joined to a sentence that follows
within a second, the cost is one boundary, where a read sentence cut at its commas costs a
false one at each.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from whisper_ja.text.normalize import tagger

__all__ = ["CLAUSE_MARKS", "PUNCTUATION", "QUESTION_MARKS", "SENTENCE_END", "SENTENCE_ENDS",
           "continues_sentence", "ends_sentence", "has_punctuation", "is_punctuation"]

SENTENCE_END = "。"
"""The full stop: the sentence end whose probability pause cuts ask the model about."""
SENTENCE_ENDS = (SENTENCE_END, "！", "？", "!", "?", "．")
"""Characters that end a Japanese sentence: a text ending otherwise is a clause."""
CLAUSE_MARKS = ("、", "，", ",")
"""Commas: a clause ends there, and sometimes (after a conclusive form) a sentence."""
PUNCTUATION = (*SENTENCE_ENDS, *CLAUSE_MARKS)
"""Marks whose presence shows a text was written with punctuation."""

_CONJUGATED = ("動詞", "形容詞", "助動詞")
"""Parts of speech whose continuative form (連用形) continues a sentence."""
_CONTINUING_PARTICLES = ("格助詞", "係助詞")
"""Particles a statement does not end on (が, を, に, で, から, は, も ...)."""
QUESTION_MARKS = ("？", "?")
"""A question may end on a particle (どこから？)."""
_PREDICATES = (*_CONJUGATED, "形状詞")
"""Words that can close a statement as its predicate (静か counts: 彼は元気。 is one)."""
_ADNOMINAL = "の"
"""The case particle that joins two nouns (日本の首都。): it awaits no predicate."""
_CONDITIONAL_PARTICLES = ("と", "ば")
"""Conjunctive particles of a condition (降ると, 言えば): a consequence follows."""
_CONDITIONAL_FORM = "仮定形"
"""The conditional form (なかったら, 言え-ば): a consequence follows."""
_FINAL_FORMS = ("終止形", "連体形")
"""Conjugated forms that end a sentence when a comma follows (see :func:`ends_sentence`)."""
_NOT_SPOKEN = ("補助記号", "空白")


def has_punctuation(text: str) -> bool:
    """Whether ``text`` holds any mark of :data:`PUNCTUATION` (it was written punctuated)."""
    return any(c in PUNCTUATION for c in text)


def is_punctuation(text: str) -> bool:
    """Only punctuation and spaces (、。「」 and the like), nothing spoken."""
    return all(unicodedata.category(c).startswith(("P", "Z")) or c.isspace() for c in text)


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends a sentence, by its last mark and the word before it.

    A sentence mark ends one unless a clause form precedes it (see the module's text). A comma
    does when a conclusive form (見える、 揃った、 場所だ、) or a sentence-final particle
    (行ったっけ、) precedes it: Whisper writes 、 at some sentence ends, and a written clause
    does not end on those forms. Before a comma MeCab reads a conclusive verb as attributive
    (連体形: the two are spelled alike), and an attributive form never stands before a comma
    either. A text with no mark at its end ends a sentence on a conclusive form or a
    sentence-final particle (祝いました, 言っている): Whisper leaves sentence ends unmarked in
    stretches it writes without punctuation, and its segments end at pauses, where a clause
    rarely ends on a conclusive form.
    """
    text = text.rstrip()
    if text.endswith(CLAUSE_MARKS):
        return _final_word(text, _FINAL_FORMS)
    if not text.endswith(SENTENCE_ENDS):
        return _final_word(text, ("終止形",))
    words = _last_sentence(text)
    if not words:
        return True
    last = words[-1]
    if last.pos1 in _CONJUGATED and str(last.cForm).startswith("連用形"):
        return False
    if text.endswith(QUESTION_MARKS):
        return True
    if _is_conditional(last):
        return False
    return not ((last.pos1 == "助詞" and last.pos2 in _CONTINUING_PARTICLES)
                or _awaits_predicate(words))


_TAILS = ("助詞", "助動詞")
"""Parts of speech no sentence starts with (と、この7日間…, ですね): they close a word before."""
_CONJUNCTIONS_OF_TAILS = ("でも", "では", "だから", "ですから", "だが", "ですが", "だけど",
                          "だけれど", "ですけど", "だって", "なので", "なのに", "だったら",
                          "でしたら", "なら")
"""Sentence-initial conjunctions MeCab reads as a particle or the copula (で+も, だ+から)."""


def continues_sentence(text: str) -> bool:
    """Whether ``text`` starts with a particle or an auxiliary, so goes on from the text before.

    Whisper sometimes ends a segment inside a phrase and writes 。 there: "宮城県によります。" /
    "と、この7日間で…" (short-dev set of ``benchmarks/heldout_longform.py``). A sentence-initial
    conjunction starts one: MeCab reads some as 接続詞 (で、 が、 けど), the others are listed
    (:data:`_CONJUNCTIONS_OF_TAILS`).
    """
    words = [w.feature for w in tagger()(text.lstrip())]
    spoken = [w for w in words if w.pos1 not in _NOT_SPOKEN]
    return (bool(spoken) and spoken[0].pos1 in _TAILS
            and not text.lstrip().startswith(_CONJUNCTIONS_OF_TAILS))


def _is_conditional(word: Any) -> bool:
    """``word`` opens a condition: a conditional form or particle (see the module's text)."""
    return ((word.pos1 in _CONJUGATED and str(word.cForm).startswith(_CONDITIONAL_FORM))
            or (word.pos1 == "助詞" and word.pos2 == "接続助詞"
                and word.orthBase in _CONDITIONAL_PARTICLES))


def _final_word(text: str, forms: tuple[str, ...]) -> bool:
    """The last word is a conjugated word in one of ``forms`` or a sentence-final particle.

    だ's attributive (静かな、) is a clause whatever ``forms`` says.
    """
    last = _last_word(text)
    return last is not None and (
        (last.pos1 in _CONJUGATED and str(last.cForm).startswith(forms)
         and not (last.orthBase == "だ" and str(last.cForm).startswith("連体形")))
        or (last.pos1 == "助詞" and last.pos2 == "終助詞"))


def _awaits_predicate(words: list[Any]) -> bool:
    """The last case or topic particle (not の) has no predicate after it: the statement goes on."""
    marked = [i for i, w in enumerate(words)
              if w.pos1 == "助詞" and w.pos2 in _CONTINUING_PARTICLES and w.orthBase != _ADNOMINAL]
    return bool(marked) and not any(w.pos1 in _PREDICATES for w in words[marked[-1]:])


def _last_word(text: str) -> Any:
    """MeCab's features of the last spoken word of ``text`` (None: nothing spoken)."""
    words = _last_sentence(text)
    return words[-1] if words else None


def _last_sentence(text: str) -> list[Any]:
    """MeCab's features of the spoken words after the last sentence mark before the end."""
    words = [w.feature for w in tagger()(text.rstrip().rstrip("".join(SENTENCE_ENDS)))]
    cut = max((i + 1 for i, w in enumerate(words) if w.pos1 == "補助記号" and w.pos2 == "句点"),
              default=0)
    return [w for w in words[cut:] if w.pos1 not in _NOT_SPOKEN]

"""Japanese sentences to synthesize: Tatoeba plus generated sentences rich in what it lacks.

Tatoeba is conversational; it rarely holds numbers, dates, money, names, addresses or long
sentences, which is where adapted models failed (issue 14). Generated sources fill in templates
with values from Faker's ``ja_JP`` locale (names, places, companies) and seeded numbers:

==============  ===========================================================================
``numbers``     counts, quantities, rooms, times (``参加者は1,204人でした。``)
``dates``       years, months, days (``2019年4月12日に生まれました。``)
``money``       prices in yen and dollars, with and without thousands commas
``names``       people's names with titles
``addresses``   prefectures, cities, street addresses
``long``        three to five sentences of the sources above (and Tatoeba's) read as one
``news``        **never used for training**: announcement-style sentences with other templates
                (figures, dates, money, names and places together), the unseen-domain check's
                own source (:mod:`whisper_ja.data.unseen`)
==============  ===========================================================================

Labels are written as Whisper writes such text (half-width digits, ``1,500円``, ``3.5%``).
Generation is a pure function of ``(source, count, seed)`` for a given Faker version.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from whisper_ja.config import ConfigError
from whisper_ja.data import tatoeba
from whisper_ja.text.labels import fold_label

__all__ = [
    "CHECK_SOURCES",
    "GENERATED_SOURCES",
    "TRAINING_SOURCES",
    "SourceSentence",
    "generate_sentences",
    "parse_shares",
    "sentence_id",
]

TRAINING_SOURCES = ("tatoeba", "numbers", "dates", "money", "names", "addresses", "long")
"""Sources ``synth`` may train on."""
CHECK_SOURCES = ("news",)
"""Sources kept out of every training corpus: the unseen-domain check's own."""
GENERATED_SOURCES = tuple(s for s in (*TRAINING_SOURCES, *CHECK_SOURCES) if s != "tatoeba")

GENERATOR = "whisper-ja templates with Faker ja_JP values"
"""How generated sentences are described in manifests and attribution files."""


@dataclass(frozen=True)
class SourceSentence:
    """One sentence to synthesize.

    Attributes:
        id: Stable id (``tatoeba-ID`` or ``SOURCE-<hash of the text>``).
        text: The label text.
        source: Its text source (one of :data:`TRAINING_SOURCES` or :data:`CHECK_SOURCES`).
        tatoeba_id: The Tatoeba sentence number, or None for generated sentences.
    """

    id: str
    text: str
    source: str
    tatoeba_id: int | None = None


def sentence_id(source: str, text: str) -> str:
    """A stable, filesystem-safe id for a generated sentence."""
    return f"{source}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def parse_shares(entries: Sequence[str]) -> dict[str, float]:
    """Turn ``("tatoeba=0.5", "money=0.1")`` into normalized shares (summing to 1).

    Raises:
        ConfigError: naming ``sources`` on a malformed entry, an unknown or check-only
            source, a repeated source or a share that is not a positive number.
    """
    shares: dict[str, float] = {}
    for entry in entries:
        name, sep, raw = entry.partition("=")
        name = name.strip()
        if name in CHECK_SOURCES:
            raise ConfigError(f"sources: {name!r} is the unseen-domain check's own source and "
                              "is never trained on")
        if name not in TRAINING_SOURCES:
            raise ConfigError(f"sources: unknown source {name!r}; choose from "
                              f"{list(TRAINING_SOURCES)}")
        try:
            share = float(raw) if sep else 1.0
        except ValueError as err:
            raise ConfigError(f"sources: share of {name!r} is not a number: {raw!r}") from err
        if share <= 0 or name in shares:
            raise ConfigError(f"sources: {name!r} given twice or with a share <= 0")
        shares[name] = share
    if not shares:
        raise ConfigError("sources: name at least one text source")
    total = sum(shares.values())
    return {name: share / total for name, share in shares.items()}


class _Values:
    """Seeded values for the templates: Faker ja_JP for people and places, random for figures."""

    def __init__(self, seed: int) -> None:
        # Imported here: Faker loads its locale providers on import (about a second).
        from faker import Faker

        self.rng = random.Random(seed)
        self.fake = Faker("ja_JP")
        self.fake.seed_instance(seed)

    def count(self) -> str:
        n = self.rng.choice([self.rng.randint(2, 99), self.rng.randint(100, 9999),
                             self.rng.randint(10000, 999999)])
        return f"{n:,}" if n >= 1000 and self.rng.random() < 0.5 else str(n)

    def price(self) -> str:
        n = self.rng.choice([self.rng.randint(1, 99) * 10, self.rng.randint(100, 9999),
                             self.rng.randint(1, 999) * 1000, self.rng.randint(10000, 999999)])
        return f"{n:,}" if n >= 1000 and self.rng.random() < 0.7 else str(n)

    def fields(self) -> dict[str, Any]:
        fake, rng = self.fake, self.rng
        return {
            "n": self.count(), "price": self.price(), "k": rng.randint(2, 9),
            "y": rng.randint(1950, 2030), "m": rng.randint(1, 12), "d": rng.randint(1, 28),
            "h": rng.randint(1, 12), "mi": rng.choice([5, 10, 15, 20, 30, 40, 45, 50]),
            "age": rng.randint(3, 99), "pct": f"{rng.randint(1, 40)}.{rng.randint(1, 9)}",
            "t": rng.randint(25, 39), "s": f"{rng.randint(9, 59)}.{rng.randint(10, 99)}",
            "name": fake.name().replace(" ", ""), "last": fake.last_name(),
            "city": fake.city(), "prefecture": fake.prefecture(),
            "address": fake.address().split(" ")[0], "company": fake.company(),
            "town": fake.town(),
        }


_TEMPLATES: dict[str, tuple[str, ...]] = {
    "numbers": (
        "在庫はあと{n}個あります。", "参加者は{n}人でした。", "この町の人口は{n}人です。",
        "今日は{n}ページ読みました。", "部屋は{k}階の{n}号室です。", "毎日{k}キロ走っています。",
        "電車は{h}時{mi}分に出発します。", "箱の中にりんごが{n}個入っています。",
        "この橋の長さは{n}メートルです。", "会場には{n}席用意されています。",
    ),
    "dates": (
        "{y}年{m}月{d}日に生まれました。", "締め切りは{m}月{d}日です。",
        "{y}年に{company}に入社しました。", "会議は{m}月{d}日の{h}時からです。",
        "この建物は{y}年に建てられました。", "{m}月{d}日は祖母の誕生日です。",
        "次の試験は{y}年{m}月に行われます。", "{y}年の{m}月から日本に住んでいます。",
    ),
    "money": (
        "合計金額は{price}円です。", "この本は{price}円でした。", "毎月{price}円を貯金しています。",
        "{price}円のお釣りです。", "旅行の費用は一人{price}円かかりました。",
        "このかばんは{price}円で買いました。", "家賃は月{price}円です。",
    ),
    "names": (
        "{name}さんから電話がありました。", "{last}先生は{city}の出身です。",
        "担当の{name}と申します。", "{name}さんは{age}歳になりました。",
        "昨日、{name}さんに会いました。", "{last}さんの家は駅の近くです。",
    ),
    "addresses": (
        "{address}に住んでいます。", "{prefecture}{city}で会いましょう。",
        "荷物を{address}に送ってください。", "{prefecture}の{town}に旅行しました。",
        "新しい店は{address}にあります。", "{city}は{prefecture}にあります。",
    ),
    "news": (
        "{company}は、{y}年{m}月期の売上高が前の年より{pct}%増え、{price}億円になったと発表"
        "しました。",
        "{prefecture}{city}では{m}月{d}日、最高気温が{t}度を超え、この夏一番の暑さとなりました。",
        "{name}選手は{y}年の大会で{n}メートルを{s}秒で走り、大会の新記録を出しました。",
        "{city}の{last}市長は、来年度の予算をおよそ{price}億円とする案を議会に提出しました。",
        "事故があったのは{address}の交差点で、午後{h}時{mi}分ごろ、車{k}台が衝突しました。",
        "{company}の新しい工場は{prefecture}に建てられ、およそ{n}人を雇う予定だということです。",
        "チケットは{m}月{d}日から一枚{price}円で売り出され、{n}枚がすぐに売り切れました。",
        "{y}年{m}月{d}日、{name}さんは{city}の自宅で、家族と{age}歳の誕生日を祝いました。",
        "警察によりますと、{address}の住宅から{m}月{d}日の夜、現金{price}円が盗まれました。",
        "{prefecture}によりますと、この{k}日間で新たに{n}人の感染が確認されました。",
    ),
}


def _templated(source: str, values: _Values) -> str:
    return values.rng.choice(_TEMPLATES[source]).format(**values.fields())


def _long(values: _Values, tatoeba_pool: Sequence[tatoeba.Sentence]) -> str:
    """Three to five training-source sentences read as one (clips of ~10-20 s)."""
    parts = []
    for _ in range(values.rng.randint(3, 5)):
        source = values.rng.choice(("tatoeba", "tatoeba", "numbers", "dates", "money", "names",
                                    "addresses"))
        if source == "tatoeba" and tatoeba_pool:  # in Whisper's orthography, like the rest
            parts.append(fold_label(values.rng.choice(tatoeba_pool).text).text)
        else:
            parts.append(_templated(source if source != "tatoeba" else "numbers", values))
    return "".join(p if p.endswith(("。", "？", "！", "?", "!")) else p + "。" for p in parts)


def generate_sentences(source: str, count: int, seed: int, *,
                       tatoeba_pool: Sequence[tatoeba.Sentence] = (),
                       exclude: Callable[[str], bool] = lambda _: False,
                       ) -> list[SourceSentence]:
    """``count`` distinct sentences of a generated source.

    Args:
        source: One of :data:`GENERATED_SOURCES`.
        count: Sentences wanted.
        seed: Seed of every choice (with the source name, so sources differ).
        tatoeba_pool: Tatoeba sentences the ``long`` source may join.
        exclude: Texts to refuse (e.g. any sentence of a training corpus).

    Raises:
        ConfigError: the source is unknown, or fewer than ``count`` distinct sentences came out.
    """
    if source not in GENERATED_SOURCES:
        raise ConfigError(f"sources: {source!r} is not a generated source "
                          f"({list(GENERATED_SOURCES)})")
    values = _Values(int.from_bytes(hashlib.sha1(f"{source}:{seed}".encode()).digest()[:4],
                                    "big"))
    seen: set[str] = set()
    result: list[SourceSentence] = []
    for _ in range(count * 20):
        if len(result) == count:
            break
        text = _long(values, tatoeba_pool) if source == "long" else _templated(source, values)
        if text in seen or exclude(text):
            continue
        seen.add(text)
        result.append(SourceSentence(sentence_id(source, text), text, source))
    if len(result) < count:
        raise ConfigError(f"sources: {source!r} gave only {len(result)} distinct sentences of "
                          f"{count} wanted")
    return result

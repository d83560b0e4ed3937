"""``labels``: training transcripts are folded to Whisper's orthography before tokenizing."""

from __future__ import annotations

from whisper_ja.config import load_config
from whisper_ja.data.manifest import Utterance
from whisper_ja.text.labels import LabelSettings
from whisper_ja.training.datasets import fold_labels
from whisper_ja.training.settings import TrainConfig


def _utt(uid: str, text: str) -> Utterance:
    return Utterance(id=uid, audio=f"{uid}.wav", text=text, duration=1.0, corpus="synthetic")


def test_fold_labels_changes_text_and_counts_rules() -> None:
    utts = [_utt("a", "１９９２年です。"), _utt("b", "こんにちは。"), _utt("c", "ＪＲの３．５")]
    folded, counts = fold_labels(utts, LabelSettings())
    assert [u.text for u in folded] == ["1992年です。", "こんにちは。", "JRの3.5"]
    assert folded[1] is utts[1]  # unchanged records are kept as they are
    assert [u.id for u in folded] == ["a", "b", "c"]
    assert counts == {"digits": 2, "latin": 1, "punctuation": 1}


def test_labels_is_a_train_setting_on_by_default() -> None:
    assert TrainConfig().labels.enabled == ("digits", "latin", "punctuation")
    config = load_config(TrainConfig, overrides=["labels.digits=false"])
    assert config.labels.enabled == ("latin", "punctuation")
    folded, counts = fold_labels([_utt("a", "１９９２")], config.labels)
    assert folded[0].text == "１９９２" and counts == {"latin": 0, "punctuation": 0}

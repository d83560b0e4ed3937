from __future__ import annotations

import json
from pathlib import Path

import pytest

from whisper_ja.cli import main
from whisper_ja.config import ConfigError
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.text import cer
from whisper_ja.text.score import ScoreConfig, ScoreInputError, read_texts, score

REFS = {"u1": "東京へ行きます。", "u2": "2005年7月14日", "u3": "コーヒーを3,480円で買った",
        "u4": "今日は晴れです"}
HYPS = {"u1": "とうきょうへ行きます", "u2": "二千五年七月十四日", "u4": "今日は雨です",
        "zz": "余分な仮説"}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ref = tmp_path / "ref.jsonl"
    write_manifest(ref, [Utterance(id=k, audio=f"{k}.wav", text=v, duration=1.0, corpus="t")
                         for k, v in REFS.items()])
    hyp = _jsonl(tmp_path / "hyp.jsonl",
                 [{"id": k, "text": v, "looped": False} for k, v in HYPS.items()])
    terms = tmp_path / "terms.txt"
    terms.write_text("東京\nコーヒー\n", encoding="utf-8")
    return {"ref": ref, "hyp": hyp, "terms": terms, "dir": tmp_path}


def test_cli_reports_missing_and_extra_ids(files, capsys) -> None:
    out = files["dir"] / "report.json"
    code = main(["score", "--ref", str(files["ref"]), "--hyp", str(files["hyp"]),
                 "--terms", str(files["terms"]), "--out", str(out), "n_resamples=200"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 missing" in printed and "1 extra" in printed and "u3" in printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["counts"] == {"references": 4, "hypotheses": 4, "scored": 4, "missing": 1,
                                "extra": 1, "empty_references": 0}
    assert report["missing_ids"] == ["u3"] and report["extra_ids"] == ["zz"]
    # the missing hypothesis is scored as empty: all of u3's characters are deletions
    ids = [u["id"] for u in report["utterances"]]
    assert ids == ["u1", "u2", "u3", "u4"]
    u3 = report["utterances"][2]
    assert u3["missing"] and u3["hyp"] == "" and u3["cer"] == 1.0
    refs = list(REFS.values())
    hyps = [HYPS.get(k, "") for k in REFS]
    expected = cer(refs, hyps)
    cer_report = report["metrics"]["cer"]
    assert cer_report["rate"] == pytest.approx(expected.rate)
    assert cer_report["deletions"] == expected.deletions
    assert cer_report["ci_low"] <= cer_report["rate"] <= cer_report["ci_high"]
    assert set(report["metrics"]) == {"cer", "wer", "reading_cer"}
    assert report["terms"]["terms"][0]["term"] == "東京"
    assert report["terms"]["terms"][1]["occurrences"] == 1  # コーヒー, whose hyp is missing
    assert report["terms"]["terms"][1]["recalled"] == 0


def test_skip_policy_leaves_missing_out_but_reports_them(files) -> None:
    report = score(ScoreConfig(ref=files["ref"], hyp=files["hyp"], missing="skip",
                               reading=False, n_resamples=0))
    assert report["counts"]["scored"] == 3 and report["counts"]["missing"] == 1
    assert report["missing_ids"] == ["u3"]
    assert "reading_cer" not in report["metrics"]
    assert "ci_low" not in report["metrics"]["cer"]
    keep = ["u1", "u2", "u4"]
    assert report["metrics"]["cer"]["rate"] == pytest.approx(
        cer([REFS[k] for k in keep], [HYPS[k] for k in keep]).rate)


def test_normalizer_choice_changes_scores(files) -> None:
    default = score(ScoreConfig(ref=files["ref"], hyp=files["hyp"], reading=False,
                                n_resamples=0))
    kotoba = score(ScoreConfig(ref=files["ref"], hyp=files["hyp"], normalizer="kotoba",
                               reading=False, n_resamples=0))
    # u2 spells the date in kanji: no error with default, errors with kotoba's normalizer
    assert default["utterances"][1]["cer"] == 0.0
    assert kotoba["utterances"][1]["cer"] > 0.0
    assert kotoba["normalizer"] == "kotoba"


def test_baseline_paired_bootstrap(files) -> None:
    perfect = _jsonl(files["dir"] / "perfect.jsonl",
                     [{"id": k, "text": v} for k, v in REFS.items()])
    report = score(ScoreConfig(ref=files["ref"], hyp=perfect, baseline=files["hyp"],
                               reading=False, n_resamples=200))
    delta = report["baseline"]["delta"]["cer"]
    assert delta["delta"] < 0 and delta["value_b"] == 0.0
    assert report["baseline"]["missing_ids"] == ["u3"]


def test_bad_input_lines_are_named(files, capsys) -> None:
    bad = files["dir"] / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(ScoreInputError, match=r"bad.jsonl:2: field 'text'"):
        read_texts(bad)
    dup = _jsonl(files["dir"] / "dup.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(ScoreInputError, match=r"dup.jsonl:2: id 'a' already on line 1"):
        read_texts(dup)
    code = main(["score", "--ref", str(files["ref"]), "--hyp", str(bad)])
    assert code == 1
    assert "bad.jsonl:2" in capsys.readouterr().err
    assert main(["score", "--ref", str(files["ref"]), "--hyp",
                 str(files["dir"] / "none.jsonl")]) == 1


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="n_resamples"):
        ScoreConfig(ref=Path("r"), hyp=Path("h"), n_resamples=-1)
    with pytest.raises(ConfigError, match="confidence"):
        ScoreConfig(ref=Path("r"), hyp=Path("h"), confidence=2.0)
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--ref", "r", "--hyp", "h", "--normalizer", "nope"])
    assert exit_info.value.code == 2

"""One exit-code policy for every command: each class of bad input gives its code and one line.

- a bad setting: exit 2, named before any work (``bad setting: KEY``);
- a bad input item (a file, a manifest line): exit 1, the file (and line) named;
- an unusable model: exit 2 (``unusable model``).
Never a traceback.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.cli import COMMANDS, main
from whisper_ja.evaluation.report import HypothesisRecord, write_hypotheses

# Positional arguments some commands need before their settings are even read.
POSITIONALS = {"transcribe": ["x.wav"], "import-ct2": ["src", "out"],
               "prepare": ["folder", "src"], "split": ["m.jsonl"], "explore": ["eval_dir"],
               "align-heads": ["m.jsonl"], "make-longform": ["m.jsonl"]}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, clips_manifest, tiny_whisper_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exit_codes")
    good = clips_manifest.read_text(encoding="utf-8").splitlines()
    malformed = root / "malformed.jsonl"
    malformed.write_text(good[0] + "\n{not json\n", encoding="utf-8")
    first = json.loads(good[0])
    missing_audio = root / "missing_audio.jsonl"
    gone = {**json.loads(good[1]), "id": "gone", "audio": str(root / "gone.wav")}
    readable = {**first, "audio": str(_first_audio(clips_manifest))}
    missing_audio.write_text(json.dumps(readable) + "\n" + json.dumps(gone) + "\n",
                             encoding="utf-8")
    hyp = root / "hyp.jsonl"
    hyp.write_text(json.dumps({"id": first["id"], "text": first["text"]}) + "\n",
                   encoding="utf-8")
    empty_model = root / "not_a_model"
    empty_model.mkdir()
    return {"good": clips_manifest, "malformed": malformed, "missing_audio": missing_audio,
            "hyp": hyp, "empty_model": empty_model, "model": tiny_whisper_dir, "root": root}


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unknown_setting_is_exit_2_naming_it(name, capsys):
    code, err = _run(capsys, [name, *POSITIONALS.get(name, []), "no_such_setting=1"])
    assert code == 2
    assert err.startswith(f"whisper-ja {name}: bad setting: ") and "no_such_setting" in err
    assert err.count("\n") == 1


BAD_VALUES = {
    "transcribe": ["x.wav", "--batch-size", "0"],
    "split": ["m.jsonl", "--out", "o", "--ratios", "0.5", "0.5"],
    "synth": ["--out", "o", "--size", "-1"],
    "train": ["optim.lr=-1"],
    "evaluate": ["--manifest", "m.jsonl", "--beams", "0"],
    "score": ["--ref", "r", "--hyp", "h", "n_resamples=-1"],
    "demo": ["--steps", "-5"],
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_an_out_of_range_value_is_exit_2_naming_the_setting(name, capsys, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written anywhere that matters
    code, err = _run(capsys, [name, *BAD_VALUES[name]])
    assert code == 2, err
    assert err.startswith(f"whisper-ja {name}: bad setting: ")
    assert err.count("\n") == 1
    assert not any(tmp_path.iterdir()), "a bad setting must fail before any work"


def _bad_item_cases(inputs: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    out = inputs["root"] / "out"
    return {
        "split": (["split", str(inputs["malformed"]), "--out", str(out / "split")],
                  "malformed.jsonl:2"),
        "evaluate": (["evaluate", "--manifest", str(inputs["malformed"]), "--model",
                      str(inputs["model"]), "--out", str(out / "eval")], "malformed.jsonl:2"),
        "train": (["train", f"model={inputs['model']}", f"data.train=[{inputs['malformed']}]",
                   f"out={out / 'train'}", "run.progress=false", "run.tensorboard=false"],
                  "malformed.jsonl:2"),
        "score": (["score", "--ref", str(inputs["malformed"]), "--hyp", str(inputs["hyp"])],
                  "malformed.jsonl:2"),
        "transcribe": (["transcribe", str(inputs["root"] / "absent.wav"), "--model",
                        str(inputs["model"]), "--max-new-tokens", "4"], "absent.wav"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["split", "evaluate", "train", "score", "transcribe"])
def test_a_bad_input_item_is_exit_1_naming_the_file_and_line(name, inputs, capsys):
    argv, named = _bad_item_cases(inputs)[name]
    code, err = _run(capsys, argv)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith(f"whisper-ja {name}:")]
    assert lines and any(named in line for line in lines), err


@pytest.mark.slow
def test_evaluate_scores_the_readable_clips_and_counts_the_missing_one(inputs, capsys):
    out = inputs["root"] / "eval_missing"
    code, err = _run(capsys, ["evaluate", "--manifest", str(inputs["missing_audio"]),
                              "--model", str(inputs["model"]), "--out", str(out),
                              "--max-new-tokens", "4", "--bootstrap", "10", "--no-progress"])
    assert code == 1
    assert "gone.wav" in err and "1 of 2 utterance(s) left out" in err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["overall"]["utterances"] == 1
    assert list(report["failed"]) == ["gone"]
    assert "left out: 1 utterance(s)" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["transcribe", "evaluate", "export", "import-ct2", "train"])
def test_an_unusable_model_is_exit_2(name, inputs, capsys):
    model, out = str(inputs["empty_model"]), inputs["root"] / f"unusable_{name}"
    argv = {
        "transcribe": ["transcribe", str(_first_audio(inputs["good"])), "--model", model],
        "evaluate": ["evaluate", "--manifest", str(inputs["good"]), "--model", model,
                     "--out", str(out)],
        "export": ["export", "--model", model, "--out", str(out)],
        "import-ct2": ["import-ct2", model, str(out)],
        "train": ["train", f"model={model}", f"data.train=[{inputs['good']}]", f"out={out}",
                  "run.progress=false", "run.tensorboard=false"],
    }[name]
    code, err = _run(capsys, argv)
    assert code == 2, err
    # Progress bars may precede it; the message itself is one line naming the model folder.
    lines = [line for line in err.splitlines() if line.startswith(f"whisper-ja {name}: ")]
    assert len(lines) == 1 and model in lines[0], err
    # import-ct2 is given the folder as its `src` setting, and says so.
    kind = "bad setting: src" if name == "import-ct2" else "unusable model"
    assert lines[0].startswith(f"whisper-ja {name}: {kind}"), err


def _first_audio(manifest: Path) -> Path:
    first = json.loads(manifest.read_text(encoding="utf-8").splitlines()[0])
    return Path(manifest.parent, first["audio"])


# --- issue 28: nothing lost, nothing ignored (bad items in make-longform, prepare, split,
# score; encodings; --config with positional arguments) ----------------------------------------

def _tone_clip(path: Path, seconds: float, freq: float = 440.0, fmt: str = "WAV") -> Path:
    """A tone with 0.3 s of silence around it: a 'sentence' make-longform can trim."""
    rate = 16000
    t = np.arange(round(seconds * rate)) / rate
    pad = np.zeros(round(0.3 * rate))
    audio = np.concatenate([pad, 0.3 * np.sin(2 * np.pi * freq * t), pad]).astype(np.float32)
    sf.write(path, audio, rate, format=fmt)
    return path


def _cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still declares the whole clip
    return path


def _tone_manifest(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, name in enumerate(names):
        path = folder / name
        if name.startswith(("good", "cut")):
            _tone_clip(path, 1.0 + 0.2 * k, 220.0 * (k + 1))
        if name.startswith("cut"):
            _cut_in_half(path)
        lines.append(json.dumps({"id": name.split(".")[0], "audio": str(path),
                                 "text": f"文{k}。", "duration": 1.6 + 0.2 * k,
                                 "corpus": "synthetic"}, ensure_ascii=False))
    manifest = folder / "clips.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def test_make_longform_skips_a_missing_and_a_truncated_clip_and_writes_the_rest(
        tmp_path, capsys):
    manifest = _tone_manifest(tmp_path / "clips",
                              ["good0.wav", "gone1.wav", "cut2.wav", "good3.wav"])
    out = tmp_path / "lf"
    code, err = _run(capsys, ["make-longform", str(manifest), "--out", str(out),
                              "recording.max_seconds=30"])
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("whisper-ja make-longform:")]
    assert any("gone1.wav" in line and "no such file" in line for line in lines), err
    assert any("cut2.wav" in line and "truncated" in line for line in lines), err
    assert "2 of 4 clip(s) left out" in err
    records = [json.loads(line) for line in
               (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [s for r in records for s in r["extra"]["sources"]] == ["good0", "good3"]
    # Audio and labels agree: the text is exactly the joined clips' sentences.
    assert "".join(r["text"] for r in records) == "文0。文3。"
    assert len(list((out / "audio").iterdir())) == len(records)


def test_prepare_refuses_namesakes_and_exits_1_when_it_skipped_items(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _tone_clip(src / "x.wav", 1.0)
    _tone_clip(src / "x.flac", 1.0, fmt="FLAC")
    (src / "x.txt").write_text("同じ名前", encoding="utf-8")
    out = tmp_path / "out"
    code, err = _run(capsys, ["prepare", "folder", str(src), "--out", str(out),
                              "--no-progress"])
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("whisper-ja prepare: bad input: ") and "same name as" in err
    # Skipped and counted instead: exit 1 still, and the report names the unused file.
    _cut_in_half(_tone_clip(src / "cut.wav", 1.0))
    (src / "cut.txt").write_text("切れた", encoding="utf-8")
    code, err = _run(capsys, ["prepare", "folder", str(src), "--out", str(out),
                              "--no-progress", "duplicate_id=skip"])
    assert code == 1 and "2 item(s) skipped" in err, err
    report = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["skipped"] == {"duplicate_id": 1, "unreadable_audio": 1}
    assert "cut.wav" in report["examples"]["unreadable_audio"][0]
    assert len((out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_split_of_an_empty_manifest_is_one_line_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    out = tmp_path / "split"
    code, err = _run(capsys, ["split", str(empty), "--out", str(out)])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("whisper-ja split: bad setting: manifests: ") and "empty.jsonl" in err
    assert not out.exists()


def test_score_reads_evaluates_hypotheses_and_names_an_empty_reference(tmp_path, capsys):
    counts = {m: {"substitutions": 0, "deletions": 0, "insertions": 0, "hits": 1,
                  "reference_length": 1} for m in ("cer", "wer", "reading_cer")}
    rows = {"a": ("東京へ行きます。", "東京へ行きます"), "b": ("", "なにか"),
            "c": ("今日は晴れです", "今日は雨です")}
    hyps = tmp_path / "eval" / "hypotheses.jsonl"
    hyps.parent.mkdir()
    # Written by evaluate's own writer, so the format is exactly what `evaluate` leaves.
    write_hypotheses(hyps, [HypothesisRecord(id=k, ref=r, hyp=h, cer=0.0, looped=False,
                                             corpus="t", speaker="", duration=1.0,
                                             counts=counts) for k, (r, h) in rows.items()])
    refs = tmp_path / "ref.jsonl"
    refs.write_text("".join(json.dumps({"id": k, "text": r}, ensure_ascii=False) + "\n"
                            for k, (r, _) in rows.items()), encoding="utf-8")
    out = tmp_path / "score.json"
    code, err = _run(capsys, ["score", "--ref", str(refs), "--hyp", str(hyps),
                              "--out", str(out), "n_resamples=20", "reading=false"])
    assert code == 1, err
    assert f"{refs}:2: id 'b' has an empty reference text" in err
    assert "1 of 3 reference(s) left out (empty text)" in err
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [u["id"] for u in report["utterances"]] == ["a", "c"]
    assert [u["hyp"] for u in report["utterances"]] == ["東京へ行きます", "今日は雨です"]
    assert report["counts"]["empty_references"] == 1 and report["counts"]["extra"] == 0
    # evaluate's output read as the reference too (its 'ref' field): the same empty one named.
    code, err = _run(capsys, ["score", "--ref", str(hyps), "--hyp", str(hyps),
                              "n_resamples=0", "reading=false"])
    assert code == 1 and "id 'b'" in err  # its ref field is empty as well


def _latin1_manifest(folder: Path) -> Path:
    """A two-line manifest whose second line holds a Latin-1 byte (0xe9), not UTF-8."""
    audio = _tone_clip(folder / "a.wav", 1.0)
    good = json.dumps({"id": "a", "audio": str(audio), "text": "一", "duration": 1.6,
                       "corpus": "synthetic"}, ensure_ascii=False).encode("utf-8")
    bad = json.dumps({"id": "b", "audio": str(audio), "text": "caf?", "duration": 1.6,
                      "corpus": "synthetic"}).encode("ascii").replace(b"?", b"\xe9")
    path = folder / "latin1.jsonl"
    path.write_bytes(good + b"\n" + bad + b"\n")
    return path


def _encoding_case(name: str, manifest: Path, out: Path, model: Path) -> list[str]:
    return {
        "split": ["split", str(manifest), "--out", str(out)],
        "make-longform": ["make-longform", str(manifest), "--out", str(out)],
        "score": ["score", "--ref", str(manifest), "--hyp", str(manifest)],
        "evaluate": ["evaluate", "--manifest", str(manifest), "--model", str(model),
                     "--out", str(out), "--no-progress"],
        "train": ["train", f"model={model}", f"data.train=[{manifest}]", f"out={out}",
                  "run.progress=false", "run.tensorboard=false"],
    }[name]


@pytest.mark.parametrize("name", ["split", "make-longform", "score",
                                  pytest.param("evaluate", marks=pytest.mark.slow),
                                  pytest.param("train", marks=pytest.mark.slow)])
def test_a_non_utf8_manifest_line_is_one_line_naming_file_and_line(name, tmp_path, capsys,
                                                                   request):
    model = request.getfixturevalue("tiny_whisper_dir") if name in ("evaluate", "train") \
        else tmp_path / "unused"
    manifest = _latin1_manifest(tmp_path)
    code, err = _run(capsys, _encoding_case(name, manifest, tmp_path / "out", model))
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith(f"whisper-ja {name}: ")]
    assert len(lines) == 1, err
    assert f"{manifest}:2: not valid UTF-8 (byte 0xe9" in lines[0]


def test_a_utf8_bom_in_a_manifest_and_a_config_is_accepted(tmp_path, capsys):
    manifest = _tone_manifest(tmp_path / "clips", ["good0.wav", "good1.wav", "good2.wav"])
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    config = tmp_path / "split.yaml"
    config.write_bytes(b"\xef\xbb\xbfseed: 3\nratios: [0.34, 0.33, 0.33]\n")
    out = tmp_path / "split"
    code, err = _run(capsys, ["split", str(manifest), "--out", str(out), "--config",
                              str(config)])
    assert code == 0, err
    report = json.loads((out / "split_report.json").read_text(encoding="utf-8"))
    assert report["config"]["seed"] == 3
    assert sum(len((out / f"{n}.jsonl").read_text(encoding="utf-8").splitlines())
               for n in ("train", "validation", "test")) == 3


@pytest.mark.parametrize("name", ["split", "score", "train", "transcribe", "evaluate"])
def test_a_non_utf8_config_is_one_line_naming_file_and_line(name, tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    config.write_bytes(b"# settings\nseed: 1  # caf\xe9\n")
    code, err = _run(capsys, [name, *POSITIONALS.get(name, []), "--config", str(config)])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"whisper-ja {name}: bad setting: {config}:2: not valid UTF-8")


# A setting each command validates, put in a --config file while the positional arguments
# stay on the command line: the file must be read together with them.
CONFIG_WITH_POSITIONALS = {
    "transcribe": ("batch_size: 0\n", "batch_size"),
    "make-longform": ("recording:\n  max_seconds: -1\n", "max_seconds"),
    "prepare": ("max_duration: -1\n", "max_duration"),
    "explore": ("port: -5\n", "port"),
    "split": ("ratios: [1.0]\n", "ratios"),
    "import-ct2": ("dtype: int3\n", "dtype"),
    "align-heads": ("model: m\ncount: 0\n", "count"),
}


@pytest.mark.parametrize("name", sorted(CONFIG_WITH_POSITIONALS))
def test_config_file_works_beside_positional_arguments(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text, setting = CONFIG_WITH_POSITIONALS[name]
    config = tmp_path / "c.yaml"
    config.write_text(text, encoding="utf-8")
    code, err = _run(capsys, [name, *POSITIONALS[name], "--config", str(config)])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"whisper-ja {name}: bad setting: ") and setting in err
    assert "required" not in err


def test_positional_settings_may_come_from_the_config_file(tmp_path, capsys):
    manifest = _tone_manifest(tmp_path / "clips", ["good0.wav", "good1.wav"])
    config = tmp_path / "lf.yaml"
    config.write_text(f"manifests: [{manifest}]\nout: {tmp_path / 'lf'}\n", encoding="utf-8")
    code, err = _run(capsys, ["make-longform", "--config", str(config)])
    assert code == 0, err
    assert (tmp_path / "lf" / "manifest.jsonl").read_text(encoding="utf-8").count("\n") == 1
    src = tmp_path / "corpus"
    src.mkdir()
    _tone_clip(src / "a.wav", 1.0)
    (src / "a.txt").write_text("一", encoding="utf-8")
    config = tmp_path / "prepare.yaml"
    config.write_text(f"corpus: folder\nsource: {src}\nout: {tmp_path / 'p'}\n"
                      "progress: false\n", encoding="utf-8")
    code, err = _run(capsys, ["prepare", "--config", str(config)])
    assert code == 0, err
    assert (tmp_path / "p" / "manifest.jsonl").is_file()


def test_a_missing_positional_is_one_line_naming_it(capsys):
    code, err = _run(capsys, ["transcribe"])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("whisper-ja transcribe: bad setting: audio: required")


@pytest.fixture(scope="module")
def cut_weights(mini_whisper, tmp_path_factory) -> dict[str, Path]:
    """A model folder, a LoRA adapter and a CTranslate2 folder, each with its weights cut."""
    # Imported here, not at the top: peft and transformers are heavy; only this fixture needs
    # them.
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperFeatureExtractor

    root = tmp_path_factory.mktemp("cut_weights")
    model = shutil.copytree(mini_whisper.hf_dir, root / "model")
    _cut_in_half(model / "model.safetensors")
    adapter = root / "adapter"
    peft_model = get_peft_model(mini_whisper.model, LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(adapter)
    peft_model.unload()  # the session's mini model stays as it was
    _cut_in_half(adapter / "adapter_model.safetensors")
    ct2 = shutil.copytree(mini_whisper.ct2_float32, root / "ct2")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(ct2)  # a whole faster-whisper folder
    _cut_in_half(ct2 / "model.bin")
    clip = _tone_clip(root / "clip.wav", 1.0)
    manifest = _tone_manifest(root / "clips", ["good0.wav"])
    return {"model": model, "adapter": adapter, "ct2": ct2, "clip": clip,
            "manifest": manifest, "base": mini_whisper.hf_dir, "root": root}


def _cut_weight_case(name: str, w: dict[str, Path]) -> tuple[list[str], Path]:
    out = w["root"] / f"out_{name}"
    return {
        "transcribe-model": (["transcribe", str(w["clip"]), "--model", str(w["model"])],
                             w["model"] / "model.safetensors"),
        "transcribe-adapter": (["transcribe", str(w["clip"]), "--model", str(w["base"]),
                                "--adapter", str(w["adapter"])],
                               w["adapter"] / "adapter_model.safetensors"),
        "evaluate-adapter": (["evaluate", "--manifest", str(w["manifest"]), "--model",
                              str(w["base"]), "--adapter", str(w["adapter"]), "--out", str(out),
                              "--no-progress"], w["adapter"] / "adapter_model.safetensors"),
        "export-adapter": (["export", "--model", str(w["base"]), "--adapter", str(w["adapter"]),
                            "--out", str(out)], w["adapter"] / "adapter_model.safetensors"),
        "export-ct2-model": (["export", "--model", str(w["ct2"]), "--out", str(out)],
                             w["ct2"] / "model.bin"),
        "transcribe-ct2-model": (["transcribe", str(w["clip"]), "--model", str(w["ct2"]),
                                  "--backend", "ct2"], w["ct2"] / "model.bin"),
        "evaluate-ct2-model": (["evaluate", "--manifest", str(w["manifest"]), "--model",
                                str(w["ct2"]), "--out", str(out), "--no-progress"],
                               w["ct2"] / "model.bin"),
    }[name]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["transcribe-model", "transcribe-adapter", "evaluate-adapter",
                                  "export-adapter", "export-ct2-model", "evaluate-ct2-model",
                                  "transcribe-ct2-model"])
def test_a_truncated_weight_file_is_one_line_naming_it(case, cut_weights, capsys):
    argv, named = _cut_weight_case(case, cut_weights)
    code, err = _run(capsys, argv)
    command = argv[0]
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith(f"whisper-ja {command}: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"whisper-ja {command}: unusable model: {named}: truncated")
    assert not (cut_weights["root"] / f"out_{case}").exists()


def _no_room_over(limit_bytes: int) -> None:
    """In the child: files may not grow past ``limit_bytes`` (writes then fail, EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))


@pytest.mark.slow
def test_export_with_no_room_is_one_line_and_leaves_nothing(mini_whisper, tmp_path):
    out = tmp_path / "exports" / "hf"
    out.parent.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "whisper_ja.cli", "export", "--model", str(mini_whisper.hf_dir),
         "--out", str(out)], preexec_fn=lambda: _no_room_over(1_000_000),
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("whisper-ja export: ")]
    assert len(lines) == 1 and lines[0].startswith("whisper-ja export: export failed: out: no "
                                                   f"room to write the export to {out}"), lines
    assert not out.exists() and not any(out.parent.iterdir()), "the partial output must go"


# --- train: bad clips with the feature cache on, changed data on resume, a full disk -----------

def _train_argv(model: Path, out: Path, *settings: str) -> list[str]:
    return ["train", f"model={model}", f"out={out}", "precision=fp32", "optim.batch_size=1",
            "optim.max_steps=1", "run.progress=false", "run.tensorboard=false",
            "run.validate_at_start=false", "run.val_max_new_tokens=2",
            "efficiency.context.min_frames=0", *settings]


@pytest.mark.slow
def test_train_with_the_feature_cache_skips_missing_and_cut_clips_and_exits_1(inputs, capsys):
    root = inputs["root"] / "train_bad_clips"
    root.mkdir()
    cut = root / "cut.wav"
    whole = _first_audio(inputs["good"]).read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])  # header unchanged, half the samples gone
    lines = inputs["missing_audio"].read_text(encoding="utf-8").splitlines()
    cut_row = {**json.loads(lines[0]), "id": "cut", "audio": str(cut)}
    manifest = root / "train.jsonl"
    manifest.write_text("\n".join([*lines, json.dumps(cut_row)]) + "\n", encoding="utf-8")
    code, err = _run(capsys, _train_argv(inputs["model"], root / "out",
                                         f"data.train=[{manifest}]",
                                         f"data.validation=[{manifest}]"))
    assert code == 1, err
    named = [line for line in err.splitlines() if line.startswith("whisper-ja train: bad input: ")]
    assert any("gone.wav" in line for line in named) and any("cut.wav" in line for line in named)
    assert "whisper-ja train: 4 bad item(s) skipped" in err  # 2 training, 2 validation clips
    summary = json.loads((root / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped"] == {"unreadable audio": 4} and summary["steps"] == 1
    assert summary["train_clips"] == 1 and summary["validation_clips"] == 1


@pytest.mark.slow
def test_train_resume_alone_reuses_settings_and_refuses_changed_data(inputs, tmp_path, capsys):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(inputs["good"].read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "out"
    code, err = _run(capsys, _train_argv(inputs["model"], out, f"data.train=[{manifest}]",
                                         "run.save_every=1"))
    assert code == 0, err
    code, err = _run(capsys, ["train", "--out", str(out), "--resume"])  # no settings repeated
    assert code == 0, err
    manifest.write_text(manifest.read_text(encoding="utf-8").splitlines()[0] + "\n",
                        encoding="utf-8")  # same path, other content
    code, err = _run(capsys, ["train", "--out", str(out), "--resume"])
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("whisper-ja train:")]
    assert len(lines) == 1 and lines[0].startswith(
        "whisper-ja train: bad setting: resume: the training data changed"), err
    assert str(manifest.resolve()) in lines[0]


@pytest.mark.slow
def test_train_with_no_room_for_a_checkpoint_is_one_line_and_leaves_no_partial(inputs, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "whisper_ja.cli",
         *_train_argv(inputs["model"], out, f"data.train=[{inputs['good']}]", "mode=full",
                      "run.save_every=1", "efficiency.feature_cache=false")],
        preexec_fn=lambda: _no_room_over(1_000_000), capture_output=True, text=True,
        timeout=300, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("whisper-ja train: ")]
    assert len(lines) == 1 and lines[0].startswith(
        "whisper-ja train: checkpoint failed: out: no room to write the checkpoint of step 1"), \
        done.stderr[-2000:]
    assert not any((out / "checkpoints").iterdir()), "the partial checkpoint must go"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["transcribe", "evaluate"])
def test_a_truncated_clip_is_a_named_bad_item_not_half_decoded(name, mini_whisper, tmp_path,
                                                              capsys):
    manifest = _tone_manifest(tmp_path / "clips", ["good0.wav", "cut1.wav"])
    cut = tmp_path / "clips" / "cut1.wav"
    out = tmp_path / "out"
    argv = {"transcribe": ["transcribe", str(tmp_path / "clips" / "good0.wav"), str(cut),
                           "--model", str(mini_whisper.hf_dir), "--max-new-tokens", "4",
                           "--output-dir", str(out)],
            "evaluate": ["evaluate", "--manifest", str(manifest), "--model",
                         str(mini_whisper.hf_dir), "--out", str(out), "--max-new-tokens", "4",
                         "--bootstrap", "10", "--no-progress"]}[name]
    code, err = _run(capsys, argv)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith(f"whisper-ja {name}: ")]
    assert any(str(cut) in line and "truncated" in line for line in lines), err


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["model", "adapter"])
def test_serve_with_a_truncated_weight_file_is_one_line_naming_it(weights, cut_weights):
    argv = (["--model", str(cut_weights["model"])] if weights == "model" else
            ["--model", str(cut_weights["base"]), "--adapter", str(cut_weights["adapter"])])
    named = (cut_weights["model"] / "model.safetensors" if weights == "model"
             else cut_weights["adapter"] / "adapter_model.safetensors")
    # A subprocess with a time limit: a server that started anyway would never return.
    done = subprocess.run([sys.executable, "-m", "whisper_ja.cli", "serve", *argv,
                           "--port", "0"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("whisper-ja serve: ")]
    assert len(lines) == 1 and lines[0].startswith(
        f"whisper-ja serve: unusable model: {named}: truncated"), done.stderr

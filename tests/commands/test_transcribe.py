"""`whisper-ja transcribe` driven as a user drives it: the CLI's exit code, its stdout and
stderr lines, and the files it leaves on disk.

The tiny random model (its int8 CTranslate2 export, or its transformers folder) keeps every
run to seconds: its text is noise, so the tests check where each transcript goes, never what
it says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from whisper_ja.audio.io import load_audio
from whisper_ja.cli import build_parser, main, split_overrides
from whisper_ja.config import ConfigError, config_from_args
from whisper_ja.errors import TruncatedAudioError
from whisper_ja.inference.engine import Engine as InferenceEngine
from whisper_ja.serve.engine import load_engine as load_serve_engine
from whisper_ja.serve.settings import ServeConfig

pytestmark = pytest.mark.slow  # Open JTalk synthesizes the recordings

# No fallback: random weights fail every confidence test and would be re-decoded 5 times.
FAST = ["max_new_tokens=6", "guards.fallback=false"]


def _settings(command: str, *args: str):
    """The settings `whisper-ja COMMAND ARGS...` runs with."""
    parser, settings = build_parser(command)
    flags, overrides = split_overrides(args)
    return config_from_args(settings, parser.parse_args(flags), overrides)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _ours(err: str, command: str = "transcribe") -> list[str]:
    """whisper-ja's own stderr lines (progress bars and library logs left out)."""
    return [line for line in err.splitlines() if line.startswith(f"whisper-ja {command}: ")]


@pytest.fixture(scope="module")
def ct2_model(tiny_ct2) -> list[str]:
    """Flags of the tiny model on the CTranslate2 backend (its export: no conversion)."""
    return ["--model", str(tiny_ct2), "--backend", "ct2", "--device", "cpu", *FAST]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """A working folder: inputs are given by relative paths, as typed in a shell."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path: Path, audio: np.ndarray, rate: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate)
    return str(path)


@pytest.fixture
def namesakes(in_tmp, ja_clips) -> list[str]:
    """a/x.wav, b/x.wav and b/x.flac: three different recordings sharing a name."""
    return [_write(Path(name), clip.audio, clip.sample_rate)
            for name, clip in zip(("a/x.wav", "b/x.wav", "b/x.flac"), ja_clips, strict=False)]


def _truncated_wav(path: Path, clip) -> str:
    """A WAV whose header declares twice the audio data it holds (a cut-short copy)."""
    _write(path, clip.audio, clip.sample_rate)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return str(path)


@pytest.mark.parametrize(("output_format", "extension"), [("text", "txt"), ("json", "json")])
def test_namesakes_get_distinct_output_files_and_stderr_says_so(namesakes, ct2_model,
                                                                  output_format, extension,
                                                                  capsys):
    code, out, err = _cli(capsys, "transcribe", *namesakes, "--output-dir", "out",
                          "--output-format", output_format, *ct2_model)
    assert code == 0, err
    assert out == ""  # everything went to files
    targets = [f"a/x.{extension}", f"b/x.wav.{extension}", f"b/x.flac.{extension}"]
    written = sorted(str(p.relative_to("out")) for p in Path("out").rglob("*") if p.is_file())
    assert written == sorted(targets)  # nothing else (no .part left behind)
    [said] = _ours(err)
    assert "share a name" in said and "out" in said and targets[-1] in said
    for audio, target in zip(namesakes, targets, strict=True):
        body = Path("out", target).read_text(encoding="utf-8")
        if output_format == "json":  # the record names the input it transcribes
            assert json.loads(body)["audio"] == audio
        else:  # what stdout gives for that input alone
            assert main(["transcribe", audio, *ct2_model]) == 0
            assert body == capsys.readouterr().out


@pytest.mark.parametrize("output_format", ["srt", "vtt"])
def test_subtitles_of_several_files_on_stdout_have_a_header_each(namesakes, ct2_model,
                                                                 output_format, capsys):
    code, out, err = _cli(capsys, "transcribe", *namesakes, "--output-format", output_format,
                          *ct2_model)
    assert code == 0, err
    parts = re.split(r"^==> (.+) <==\n", out, flags=re.MULTILINE)
    assert parts[0] == "" and parts[1::2] == namesakes  # one header per file, input order
    for audio, body in zip(namesakes, parts[2::2], strict=True):
        assert main(["transcribe", audio, "--output-format", output_format, *ct2_model]) == 0
        alone = capsys.readouterr().out
        assert body == alone + "\n"  # the document as written alone, a blank line after it
        if output_format == "vtt":
            assert body.startswith("WEBVTT\n\n")
        else:  # numbered cues (or none: random weights may find no text)
            assert body == "\n" or re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> ", body), body


def test_json_on_stdout_is_one_object_per_file(namesakes, ct2_model, capsys):
    code, out, err = _cli(capsys, "transcribe", *namesakes, "--output-format", "json",
                          *ct2_model)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["audio"] for r in records] == namesakes
    for record in records:
        stats = record["decoding"]
        assert isinstance(stats, dict) and stats["windows"] >= 1
        assert {"lost_windows", "lost_speech_s", "looped_windows"} <= set(stats)
        assert record["text"] == "".join(s["text"] for s in record["segments"])


def test_an_interrupt_keeps_the_files_already_written(namesakes, ct2_model, capsys,
                                                      monkeypatch):
    real = InferenceEngine.transcribe_many

    def first_then_ctrl_c(self, audios, **kwargs):
        found = real(self, audios, **kwargs)
        yield next(found)
        raise KeyboardInterrupt

    monkeypatch.setattr(InferenceEngine, "transcribe_many", first_then_ctrl_c)
    code, _, err = _cli(capsys, "transcribe", *namesakes, "--output-dir", "out", *ct2_model)
    assert code == 130
    assert _ours(err)[-1] == "whisper-ja transcribe: interrupted"
    written = [p for p in Path("out").rglob("*") if p.is_file()]
    assert written == [Path("out/a/x.txt")]  # the finished one, whole; no half-written file
    assert Path("out/a/x.txt").read_text(encoding="utf-8").endswith("\n")


def test_unreadable_files_are_named_and_the_others_transcribed(in_tmp, ja_clips, ct2_model,
                                                               capsys):
    good = [_write(Path(f"good{i}.wav"), c.audio, c.sample_rate)
            for i, c in enumerate(ja_clips[:2])]
    cut = _truncated_wav(Path("cut.wav"), ja_clips[2])
    with pytest.raises(TruncatedAudioError):
        load_audio(cut)  # the header says more than is there: not half decoded
    inputs = [good[0], "missing.wav", cut, good[1]]
    code, _, err = _cli(capsys, "transcribe", *inputs, "--output-dir", "out", *ct2_model)
    assert code == 1, err
    lines = _ours(err)
    assert any("missing.wav" in line and "no such file" in line for line in lines), err
    assert any("cut.wav" in line and "truncated" in line for line in lines), err
    assert lines[-1] == "whisper-ja transcribe: 2 of 4 file(s) failed"
    assert sorted(p.name for p in Path("out").iterdir()) == ["good0.txt", "good1.txt"]


@pytest.mark.parametrize(("flags", "setting"), [
    (["--backend", "ct2", "--dtype", "float16"], "dtype"),
    (["--backend", "transformers", "--compute-type", "int8"], "compute_type"),
])
@pytest.mark.parametrize("command", ["transcribe", "serve"])
def test_a_setting_the_backend_cannot_honour_is_one_line(command, flags, setting, capsys):
    args = ["x.wav"] if command == "transcribe" else []  # refused before anything is read
    code, out, err = _cli(capsys, command, *args, *flags)
    assert code == 2 and out == ""
    assert err.splitlines() == _ours(err, command) and len(_ours(err, command)) == 1, err
    assert err.startswith(f"whisper-ja {command}: bad setting: {setting}: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("backend", ["ct2", "transformers"])
def test_a_gpu_that_is_not_there_is_refused_alike_by_transcribe_and_serve(
        backend, tiny_ct2, tiny_whisper_dir, ja_clips, capsys):
    model = str(tiny_ct2 if backend == "ct2" else tiny_whisper_dir)
    flags = ["--model", model, "--backend", backend, "--device", "cuda"]
    code, _, err = _cli(capsys, "transcribe", str(ja_clips[0].path), *flags)
    assert code == 2
    [line] = _ours(err)
    assert line.startswith("whisper-ja transcribe: bad setting: device: cuda")
    config = _settings("serve", *flags)
    assert isinstance(config, ServeConfig)
    with pytest.raises(ConfigError) as refused:
        load_serve_engine(config)
    assert line == f"whisper-ja transcribe: {refused.value.kind}: {refused.value}"
    # and the serve command says the same line (before any server starts)
    code, _, err = _cli(capsys, "serve", *flags, "--port", "0")
    assert code == 2 and _ours(err, "serve") == [line.replace("transcribe", "serve", 1)]


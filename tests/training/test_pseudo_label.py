"""``whisper-ja pseudo-label`` as a user runs it: labels with their CER, a bad clip named, a rerun
after a crash decodes only what was not written; ``train`` filters on the CER."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from whisper_ja.data.manifest import Utterance, read_manifest, write_manifest
from whisper_ja.training.pseudo_label import join_pieces, label_pieces, pseudo_record


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "whisper_ja.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def test_pseudo_record_keeps_the_reference_and_its_cer():
    utt = Utterance("a", "a.wav", "今日は晴れ", 1.0, "c", extra={"k": 1})
    row = json.loads(pseudo_record(utt, "今日は雨", "teacher"))
    assert row["text"] == "今日は雨" and row["extra"]["reference_text"] == "今日は晴れ"
    assert row["extra"]["pseudo_cer"] == 0.4 and row["extra"]["k"] == 1


def test_pseudo_label_names_a_bad_clip_and_writes_labels(tmp_path, clips_manifest,
                                                          tiny_whisper_dir):
    utts = read_manifest(clips_manifest)
    manifest = tmp_path / "corpus.jsonl"
    write_manifest(manifest, [*utts, Utterance("gone", str(tmp_path / "gone.wav"), "x", 1.0,
                                               "c")])
    out = tmp_path / "pl"
    done = cli("pseudo-label", str(manifest), "--model", str(tiny_whisper_dir), "--out",
               str(out), "--backend", "transformers", "--max-new-tokens", "3",
               "--batch-size", "4")
    assert done.returncode == 1, done.stderr[-2000:]  # one clip skipped, named
    assert "whisper-ja pseudo-label: bad input: unreadable audio" in done.stderr
    assert "gone.wav" in done.stderr and "Traceback" not in done.stderr
    labels = read_manifest(out / "labels.jsonl")
    assert [u.id for u in labels] == [u.id for u in utts]
    assert all(u.extra["reference_text"] == r.text for u, r in zip(labels, utts, strict=True))
    assert all(u.extra["pseudo_cer"] >= 0 for u in labels)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["skipped"] == {"unreadable audio": 1} and report["labelled_rows"] == len(utts)


def test_a_rerun_after_a_crash_decodes_only_what_was_not_written(tmp_path):
    utts = [Utterance(f"u{i}", f"u{i}.wav", f"文{i}", 1.0, "c") for i in range(40)]
    manifest = tmp_path / "corpus.jsonl"
    write_manifest(manifest, utts)
    decoded: list[str] = []

    def transcribe(batch):
        decoded.extend(u.id for u in batch)
        return [u.text for u in batch], {}

    out = tmp_path / "pl"
    label_pieces([manifest], out, transcribe, "t", rank=0, world=1, batch_size=3)
    assert sorted(decoded) == sorted(u.id for u in utts)
    # A crash in the middle of a piece: its file not renamed, its last row half written.
    done = sorted((out / "pieces").glob("*.done.jsonl"))[1]
    rows = done.read_text(encoding="utf-8").splitlines()
    Path(str(done).replace(".done", "")).write_text(rows[0] + "\n" + rows[1][:10],
                                                     encoding="utf-8")
    done.unlink()
    decoded.clear()
    report = label_pieces([manifest], out, transcribe, "t", rank=0, world=1, batch_size=3)
    assert decoded == [json.loads(r)["id"] for r in rows[1:]]  # only what was not written
    assert report.labelled == len(rows) - 1
    assert join_pieces(out)[0] == len(utts)
    assert [u.id for u in read_manifest(out / "labels.jsonl")] == [u.id for u in utts]


def test_train_skips_and_counts_rows_over_the_pseudo_label_cer(tmp_path, clips_manifest,
                                                               tiny_whisper_dir):
    utts = read_manifest(clips_manifest)
    labelled = tmp_path / "labels.jsonl"
    labelled.write_text("".join(
        pseudo_record(u, u.text if i else "全然違う", "t") + "\n" for i, u in enumerate(utts)),
        encoding="utf-8")
    done = cli("train", f"--out={tmp_path / 'out'}", "--set", f"model={tiny_whisper_dir}",
               f"data.train=[{labelled}]", "data.max_pseudo_cer=0.1", "optim.max_steps=1",
               "optim.batch_size=1", "precision=fp32", "run.progress=false",
               "run.tensorboard=false", "efficiency.context.min_frames=0")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped"] == {"pseudo-label CER above 0.1": 1}
    assert summary["train_clips"] == len(utts) - 1
    assert Path(tmp_path / "out" / "adapter_model.safetensors").is_file()

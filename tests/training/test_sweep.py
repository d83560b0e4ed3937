"""Rank sweep: settings, orchestration, resume after an interruption, table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from whisper_ja.config import ConfigError, load_config, save_config
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.training.sweep.driver import SweepConfig, sweep
from whisper_ja.training.sweep.report import SweepRow, select_rank

# CER (rate, low, high) each fake run gets: rank-128 is best, rank-32 lies within its interval.
FAKE_CER = {"untouched": (0.30, 0.26, 0.34), "rank-8": (0.20, 0.17, 0.23),
            "rank-32": (0.15, 0.12, 0.18), "rank-128": (0.14, 0.11, 0.17),
            "full": (0.13, 0.10, 0.16)}


def _manifest(path: Path, n: int = 2) -> Path:
    write_manifest(path, [Utterance(id=f"{path.stem}/{i}", audio=f"{i}.wav", text="テスト",
                                    duration=1.0, corpus="synthetic") for i in range(n)])
    return path


@pytest.fixture
def manifests(tmp_path):
    return {name: _manifest(tmp_path / f"{name}.jsonl") for name in ("train", "val", "test")}


def _config(tmp_path, manifests, **overrides) -> SweepConfig:
    values = {"ranks": "8,32,128", "out": str(tmp_path / "sweep"),
              "test": [str(manifests["test"])],
              "data": {"train": [str(manifests["train"])],
                       "validation": [str(manifests["val"])]},
              "optim": {"max_steps": 3, "lr": 1e-3}, **overrides}
    return load_config(SweepConfig, base=values)


class FakeTrainer:
    """Writes what ``train`` writes (config.yaml, then summary.json); can fail on one run."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list = []
        self.fail_on = fail_on

    def __call__(self, config):
        self.calls.append(config)
        config.out.mkdir(parents=True, exist_ok=True)
        save_config(config, config.out / "config.yaml")
        if config.out.name == self.fail_on:
            (config.out / "checkpoints" / "step-2").mkdir(parents=True)
            raise KeyboardInterrupt  # the sweep was stopped in the middle of this run
        rank = config.lora.rank if config.mode == "lora" else 0
        summary = {"steps": config.optim.max_steps, "train_time_s": 3.0 * (1 + rank / 64),
                   "trainable_params": rank * 1000 if rank else 10**6, "total_params": 10**6,
                   "peak_memory_mb": 1000.0 + rank, "best_val_cer": 0.2}
        (config.out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        return summary


class FakeEvaluator:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __call__(self, model, adapter, manifest, out):
        run = out.parent.name
        self.calls.append((run, out.name))
        assert (adapter is None) == (run in ("untouched", "full"))
        rate, low, high = FAKE_CER[run]
        return {"rate": rate, "low": low, "high": high}


def test_ranks_and_targets_accept_comma_lists(tmp_path, manifests):
    config = _config(tmp_path, manifests, targets=["q_proj,v_proj", "fc1"])
    assert config.ranks == (8, 32, 128)
    assert config.targets == ("q_proj", "v_proj", "fc1")
    assert config.run_names() == ["rank-8", "rank-32", "rank-128"]


@pytest.mark.parametrize("overrides, setting", [
    ({"ranks": "8,x"}, "ranks"), ({"ranks": "8,8"}, "ranks"), ({"ranks": "0"}, "ranks"),
    ({"targets": ["attn"]}, "targets"), ({"mode": "full"}, "mode"),
    ({"select_on": "test", "test": []}, "select_on"), ({"lora": {"dropout": 2.0}}, "lora.dropout"),
    ({"lora": {"rslora": True}}, "alpha_per_rank"),
])
def test_bad_settings_name_the_setting(tmp_path, manifests, overrides, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        _config(tmp_path, manifests, **overrides)


def test_a_train_yaml_is_a_valid_sweep_config(tmp_path, manifests):
    from whisper_ja.training.settings import TrainConfig

    train = load_config(TrainConfig, base={"data": {"train": [str(manifests["train"])],
                                                    "validation": [str(manifests["val"])]},
                                           "seed": 7, "lora": {"dropout": 0.0}})
    save_config(train, tmp_path / "train.yaml")
    config = load_config(SweepConfig, tmp_path / "train.yaml", overrides=["ranks=[4, 16]"])
    assert config.seed == 7 and config.ranks == (4, 16)


def test_every_run_gets_the_same_settings_but_its_rank(tmp_path, manifests):
    config = _config(tmp_path, manifests, full_reference=True, targets=["q_proj", "fc1"])
    runs = {name: config.train_config(name) for name in config.run_names()}
    assert [r.lora.rank for n, r in runs.items() if n != "full"] == [8, 32, 128]
    assert all(r.lora.alpha == 2 * r.lora.rank for n, r in runs.items() if n != "full")
    assert all(r.lora.target_modules == ("q_proj", "fc1") for n, r in runs.items() if n != "full")
    assert {(r.seed, r.optim.max_steps, r.data.train) for r in runs.values()} == {
        (0, 3, (manifests["train"],))}
    assert all(r.resume and r.out == config.out / n for n, r in runs.items())
    assert runs["full"].mode == "full" and runs["full"].optim.lr == 1e-5  # not LoRA's 1e-3


def test_sweep_writes_table_plot_and_recommends_smallest_near_best_rank(tmp_path, manifests):
    config = _config(tmp_path, manifests, full_reference=True)
    trainer, evaluator = FakeTrainer(), FakeEvaluator()
    result = sweep(config, train_fn=trainer, evaluate_fn=evaluator, command="whisper-ja sweep x")
    assert [c.out.name for c in trainer.calls] == ["rank-8", "rank-32", "rank-128", "full"]
    assert [r.name for r in result.rows] == ["untouched", "rank-8", "rank-32", "rank-128", "full"]
    assert (result.best, result.recommended) == ("rank-128", "rank-32")
    row = result.rows[2]
    assert (row.trainable_params, row.peak_memory_mb, row.steps) == (32000, 1032.0, 3)
    assert row.time_per_step_s == pytest.approx(3.0 * 1.5 / 3)
    assert row.test == {"rate": 0.15, "low": 0.12, "high": 0.18}
    markdown = result.files["markdown"].read_text(encoding="utf-8")
    assert "synthetic speech" in markdown and "whisper-ja sweep x" in markdown
    assert "**rank-32**" in markdown and "32,000" in markdown
    assert result.files["plot"].stat().st_size > 10_000
    saved = json.loads(result.files["json"].read_text(encoding="utf-8"))
    assert saved["recommended"] == "rank-32" and len(saved["rows"]) == 5
    assert len(result.files["csv"].read_text(encoding="utf-8").splitlines()) == 6


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path, manifests):
    config = _config(tmp_path, manifests)
    first, evaluator = FakeTrainer(fail_on="rank-32"), FakeEvaluator()
    with pytest.raises(KeyboardInterrupt):
        sweep(config, train_fn=first, evaluate_fn=evaluator)
    assert [c.out.name for c in first.calls] == ["rank-8", "rank-32"]
    evaluated = list(evaluator.calls)
    second = FakeTrainer()
    result = sweep(config, train_fn=second, evaluate_fn=evaluator)
    # rank-8 finished: neither trained nor evaluated again; rank-32 resumes via train's resume.
    assert [c.out.name for c in second.calls] == ["rank-32", "rank-128"]
    assert all(c.resume for c in second.calls)
    assert (second.calls[0].out / "checkpoints" / "step-2").is_dir()
    assert evaluator.calls[len(evaluated):] == [
        ("rank-32", "eval-validation"), ("rank-32", "eval-test"),
        ("rank-128", "eval-validation"), ("rank-128", "eval-test")]
    assert [r.name for r in result.rows] == ["untouched", "rank-8", "rank-32", "rank-128"]
    assert result.rows[1].trainable_params == 8000  # read back from rank-8's summary.json


def test_run_folder_with_other_settings_is_refused(tmp_path, manifests):
    sweep(_config(tmp_path, manifests), train_fn=FakeTrainer(), evaluate_fn=FakeEvaluator())
    changed = _config(tmp_path, manifests, seed=5)
    with pytest.raises(ConfigError, match="other settings.*seed"):
        sweep(changed, train_fn=FakeTrainer(), evaluate_fn=FakeEvaluator())
    with pytest.raises(ConfigError, match="--resume"):
        sweep(_config(tmp_path, manifests, resume=False), train_fn=FakeTrainer(),
              evaluate_fn=FakeEvaluator())


def test_select_rank_uses_the_best_interval():
    def row(rank, rate, high):
        return SweepRow(name=f"rank-{rank}", kind="lora", rank=rank,
                        validation={"rate": rate, "low": rate - 0.01, "high": high})

    rows = [row(8, 0.30, 0.32), row(16, 0.21, 0.25), row(64, 0.20, 0.22)]
    assert select_rank(rows, "validation") == ("rank-64", "rank-16")
    assert select_rank(rows, "test") == (None, None)
    assert select_rank([row(8, 0.2, 0.3)], "validation") == ("rank-8", "rank-8")


def test_summary_of_a_finished_run_is_the_train_output(tmp_path, manifests):
    config = _config(tmp_path, manifests, ranks="4")
    sweep(config, train_fn=FakeTrainer(), evaluate_fn=_fixed_evaluator)
    saved = yaml.safe_load((config.out / "rank-4" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["lora"]["rank"] == 4 and saved["mode"] == "lora"


def _fixed_evaluator(model, adapter, manifest, out):
    return {"rate": 0.1, "low": 0.05, "high": 0.15}


@pytest.mark.slow
def test_sweep_trains_and_evaluates_a_tiny_model_for_real(tmp_path, ja_clips):
    from functools import partial

    from whisper_ja.model import tiny_random_whisper
    from whisper_ja.training.loop import train
    from whisper_ja.training.sweep.driver import evaluate_cer

    tiny = tiny_random_whisper(seed=0)
    tiny.model.save_pretrained(tmp_path / "tiny")
    tiny.processor.save_pretrained(tmp_path / "tiny")
    utts = [Utterance(id=f"c{i}", audio=str(c.path), text=c.text, duration=1.0,
                      corpus="synthetic") for i, c in enumerate(ja_clips)]
    write_manifest(tmp_path / "train.jsonl", utts[:2])
    write_manifest(tmp_path / "test.jsonl", utts[2:])
    config = load_config(SweepConfig, base={
        "ranks": "2,4", "model": str(tmp_path / "tiny"), "out": str(tmp_path / "sweep"),
        "untouched": False, "select_on": "test", "test": [str(tmp_path / "test.jsonl")],
        "data": {"train": [str(tmp_path / "train.jsonl")]},
        "optim": {"max_steps": 1, "batch_size": 2},
        "run": {"validate_every": 0, "validate_at_start": False, "save_every": 1,
                "tensorboard": False, "progress": False}})
    # In-process training and short transcripts keep this fast; the CLI trains in a subprocess.
    result = sweep(config, train_fn=lambda c: train(c).summary,
                   evaluate_fn=partial(evaluate_cer, max_new_tokens=4, progress=False))
    small, large = result.rows
    assert (small.steps, large.steps) == (1, 1)
    assert 0 < small.trainable_params < large.trainable_params
    assert (tmp_path / "sweep" / "rank-4" / "adapter_config.json").is_file()
    assert small.test is not None and small.test["low"] <= small.test["rate"] <= small.test["high"]
    assert result.recommended in ("rank-2", "rank-4")

"""The config machinery: defaults live only in dataclasses; YAML and CLI fill them in."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

import pytest

from whisper_ja.config import (
    ConfigError,
    add_arguments,
    config_from_args,
    config_to_dict,
    field,
    load_config,
    save_config,
)


@dataclasses.dataclass(frozen=True)
class Inner:
    rank: int = field(32, help="LoRA rank")
    targets: tuple[str, ...] = field(("q_proj", "v_proj"), help="modules")

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ConfigError(f"lora.rank must be positive, got {self.rank}")


@dataclasses.dataclass(frozen=True)
class Outer:
    manifest: str = field(help="train manifest", positional=True)
    lr: float = field(1e-4, help="learning rate")
    steps: int = field(10, help="steps")
    bf16: bool = field(False, help="autocast")
    mode: Literal["lora", "full"] = field("lora", help="mode")
    adapter: str | None = field(None, help="adapter folder")
    lora: Inner = field(default_factory=Inner, help="LoRA settings")


def test_defaults_and_overrides():
    cfg = load_config(Outer, overrides=["manifest=a.jsonl", "lr=0.5", "lora.rank=8"])
    assert cfg.manifest == "a.jsonl"
    assert cfg.lr == 0.5 and cfg.steps == 10 and cfg.lora.rank == 8
    assert cfg.lora.targets == ("q_proj", "v_proj")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lrr=1", "lrr"),
        ("lora.rnak=3", "lora.rnak"),
        ("steps=many", "steps"),
        ("mode=half", "mode"),
        ("bf16=maybe", "bf16"),
        ("lora.rank=0", "lora.rank"),
    ],
)
def test_bad_values_name_the_setting(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(Outer, overrides=["manifest=a", override])


def test_yaml_unknown_key_is_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("manifest: x\nlora:\n  rank: 4\n  alpah: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lora.alpah"):
        load_config(Outer, path)


def test_missing_file_is_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_save_and_reload_roundtrip(tmp_path):
    cfg = load_config(Outer, overrides=["manifest=音声.jsonl", "lora.targets=[q_proj,fc1]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml") == cfg
    assert config_to_dict(cfg)["lora"]["targets"] == ["q_proj", "fc1"]


def test_cli_flags_are_derived_and_win_over_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("manifest: m.jsonl\nlr: 0.1\nsteps: 3\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    ns = parser.parse_args(["m2.jsonl", "--lr", "0.2", "--bf16", "--config", str(path),
                            "--set", "lora.rank=16"])
    cfg = config_from_args(Outer, ns)
    assert cfg.manifest == "m2.jsonl" and cfg.lr == 0.2 and cfg.bf16 is True
    assert cfg.steps == 3  # from YAML
    assert cfg.lora.rank == 16
    assert cfg.adapter is None


def test_cli_defaults_come_from_the_dataclass():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    cfg = config_from_args(Outer, parser.parse_args(["m.jsonl"]))
    assert cfg == Outer(manifest="m.jsonl")


def test_string_flag_keeps_text_that_looks_like_yaml():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    cfg = config_from_args(Outer, parser.parse_args(["no", "--adapter", "1e-3"]))
    assert cfg.manifest == "no" and cfg.adapter == "1e-3"

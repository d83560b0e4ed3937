"""The command-line front: registry, derived help, and errors naming the setting."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing

import pytest

from whisper_ja.cli import COMMANDS, build_parser, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_a_settings_dataclass_and_a_run(name):
    module = importlib.import_module(COMMANDS[name].module)
    assert dataclasses.is_dataclass(module.Settings)
    assert module.Settings.__dataclass_params__.frozen
    assert list(inspect.signature(module.run).parameters) == ["config"]
    parser, settings = build_parser(name)
    assert settings is module.Settings
    flags = {a.dest for a in parser._actions}
    hints = typing.get_type_hints(settings)
    for f in dataclasses.fields(settings):
        if not dataclasses.is_dataclass(hints[f.name]):  # sections are set as section.key=value
            assert f.name in flags, f"{name}: setting {f.name} has no flag"

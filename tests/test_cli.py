"""The command-line front: registry, derived help, and errors naming the setting."""

from __future__ import annotations

import importlib

import pytest

from whisper_ja.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_resolves(name):
    command = COMMANDS[name]
    module = importlib.import_module(command.module)
    assert hasattr(module, command.config_class), f"{command.module}.{command.config_class}"
    assert callable(getattr(module, command.function))

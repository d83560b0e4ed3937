"""The ``whisper-ja`` command line, derived from the config dataclasses.

Each subcommand is one entry of :data:`COMMANDS`: a module, the config dataclass whose fields
become the command's flags, and the function that runs it (``run(config) -> exit code``).
Modules are imported only for the command being run, so ``whisper-ja --help`` is instant and a
heavy dependency of one command never slows another.

Any command also accepts ``--config FILE.yaml`` and bare ``key=value`` overrides (nested keys as
``section.key=value``), e.g. ``whisper-ja train --config configs/cpu_lora.yaml lora.rank=64``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from whisper_ja.config import add_arguments, config_from_args
from whisper_ja.errors import EXIT_INTERRUPTED, EXIT_UNUSABLE, ConfigError, WhisperJaError

__all__ = ["COMMANDS", "Command", "main"]


@dataclass(frozen=True)
class Command:
    """Where a subcommand lives.

    ``module.Settings`` is filled from the CLI, then ``module.run(settings)`` returns the exit
    code.
    """

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "transcribe": Command("whisper_ja.commands.transcribe",
                          "transcribe audio files (Japanese forced)"),
    "import-ct2": Command("whisper_ja.commands.import_ct2",
                          "import a CTranslate2/faster-whisper model as a transformers model"),
    "score": Command("whisper_ja.commands.score",
                     "score hypotheses against references (CER, WER, reading CER)"),
    "prepare": Command("whisper_ja.commands.prepare",
                       "turn a corpus as it arrives on disk (or the hub) into a manifest"),
    "split": Command("whisper_ja.commands.split",
                     "leak-free train/validation/test split of manifests"),
    "synth": Command("whisper_ja.commands.synth",
                     "synthesize a Japanese corpus with the offline voices"),
    "synth-unseen": Command("whisper_ja.commands.synth_unseen",
                            "synthesize the unseen-domain check set of the versatility gate"),
    "make-longform": Command("whisper_ja.commands.make_longform",
                             "join clips into long recordings with exact sentence times"),
    "align-heads": Command("whisper_ja.commands.align_heads",
                           "choose a fine-tuned model's alignment heads (word timestamps)"),
    "synth-english": Command("whisper_ja.commands.synth_english",
                             "synthesize English clips to mix into training against forgetting"),
    "train": Command("whisper_ja.commands.train", "fine-tune with LoRA or end to end"),
    "shard": Command("whisper_ja.commands.shard",
                     "write manifests as WebDataset tar shards that train streams"),
    "pseudo-label": Command("whisper_ja.commands.pseudo_label",
                            "transcribe a corpus with a teacher model (labels and their CER)"),
    "distill": Command("whisper_ja.commands.distill", "distill a shallow-decoder student"),
    "evaluate": Command("whisper_ja.commands.evaluate",
                        "evaluate a model on a manifest and write a report"),
    "export": Command("whisper_ja.commands.export",
                      "export a (LoRA-)adapted model for transformers or CTranslate2"),
    "sweep": Command("whisper_ja.commands.sweep", "LoRA rank sweep: CER against memory and time"),
    "demo": Command("whisper_ja.commands.demo",
                    "the paper's experiment end to end on offline whisper-base"),
    "serve": Command("whisper_ja.commands.serve",
                     "OpenAI-compatible transcription server and web page (loopback)"),
    "explore": Command("whisper_ja.commands.explore",
                       "browse an evaluate run's errors (or compare two) in the browser"),
}


def _top_level_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    return ("usage: whisper-ja COMMAND [options]\n\ncommands:\n" + "\n".join(lines)
            + "\n\nRun 'whisper-ja COMMAND --help' for a command's settings.")


def build_parser(name: str) -> tuple[argparse.ArgumentParser, type]:
    """The argparse parser of one subcommand and its config dataclass."""
    command = COMMANDS[name]
    config_cls = importlib.import_module(command.module).Settings
    parser = argparse.ArgumentParser(
        prog=f"whisper-ja {name}", description=command.summary,
        epilog="Extra KEY=VALUE arguments override any setting (nested: section.key=value).",
    )
    add_arguments(parser, config_cls)
    return parser, config_cls


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
"""A bare ``key=value`` or ``section.key=value`` argument."""


def split_overrides(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate bare ``KEY=VALUE`` overrides from the arguments argparse reads.

    Done before parsing so that a command with a variable number of positional arguments
    (``split A.jsonl B.jsonl``) never takes an override for one of them. The values of
    ``--set`` stay with it.
    """
    kept: list[str] = []
    overrides: list[str] = []
    after_set = False
    for arg in args:
        if arg.startswith("-"):
            after_set = arg == "--set"
            kept.append(arg)
        elif after_set or not _OVERRIDE.match(arg):
            kept.append(arg)
        else:
            overrides.append(arg)
    return kept, overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``whisper-ja`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"whisper-ja: unknown command {name!r}\n\n{_top_level_help()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser, config_cls = build_parser(name)
    rest, overrides = split_overrides(rest)
    namespace, stray = parser.parse_known_args(rest)
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    try:
        config: Any = config_from_args(config_cls, namespace, overrides)
    except ConfigError as err:
        print(f"whisper-ja {name}: {err.kind}: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    run: Callable[[Any], int] = importlib.import_module(COMMANDS[name].module).run
    try:
        return int(run(config) or 0)
    except WhisperJaError as err:
        # One policy for every command (see whisper_ja.errors): one line, the class's code.
        print(f"whisper-ja {name}: {err.kind}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"whisper-ja {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

if __name__ == "__main__":
    sys.exit(main())

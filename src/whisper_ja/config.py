"""Typed configuration: frozen dataclasses are the only home of defaults.

Every command of whisper-ja is described by one frozen dataclass (possibly nesting others).
Three things fill it in, in this order, later ones winning:

1. the dataclass defaults,
2. a YAML file (``--config FILE``), whose keys must all be fields (unknown keys are an error),
3. command-line values: derived ``--flag`` options for flat fields and ``section.key=value``
   overrides for anything, nested sections included.

Because the command-line flags are generated from the dataclass fields (name, type, default and
``help`` metadata), the CLI and the Python API cannot drift apart. Validation lives in each
dataclass's ``__post_init__`` and raises :class:`ConfigError` naming the offending setting, so a
bad value fails before any work starts.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class Opt:
    ...     lr: float = 1e-3
    >>> load_config(Opt, overrides=["lr=0.1"]).lr
    0.1
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from whisper_ja.errors import ConfigError

__all__ = [
    "ConfigError",
    "add_arguments",
    "config_from_args",
    "config_to_dict",
    "field",
    "load_config",
    "read_config_file",
    "read_utf8_text",
    "save_config",
]

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, *, help: str, positional: bool = False,
          default_factory: Any = dataclasses.MISSING, inline: bool = False) -> Any:
    """Declare a config field with its help text (shown by ``whisper-ja CMD --help``).

    Args:
        default: The default value; omit for a required field.
        help: One line saying what the setting does and its unit.
        positional: Expose the field as a positional CLI argument instead of ``--flag``.
        default_factory: For mutable defaults (rarely needed: prefer tuples).
        inline: A dataclass field whose own fields read as this dataclass's (``--beams``,
            ``guards.seed=1``, YAML ``beams: 2``): a settings block shared by several
            commands is embedded in each without a prefix users would have to learn.
    """
    metadata = {"help": help, "positional": positional, "inline": inline}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise ConfigError naming ``name``."""
    inner, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name}: a value is required (got null)")
    origin = typing.get_origin(inner)
    if isinstance(inner, type) and dataclasses.is_dataclass(inner):
        if isinstance(value, inner):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of settings, got {value!r}")
        return _build(inner, value, prefix=f"{name}.")
    if origin is tuple:
        args = typing.get_args(inner)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, Sequence):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        item_type = args[0] if args else str
        return tuple(_coerce(v, item_type, f"{name}[{i}]") for i, v in enumerate(value))
    if origin is typing.Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise ConfigError(f"{name}: must be one of {list(choices)}, got {value!r}")
        return value
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError as err:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from err
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from err
    if inner is str:
        if isinstance(value, Mapping | list):
            raise ConfigError(f"{name}: expected text, got {value!r}")
        return str(value)
    if inner is Path:
        return Path(value)
    return value


def _inline_fields(cls: type) -> dict[str, type]:
    """The inline (prefix-less) dataclass fields of ``cls``: name -> their dataclass."""
    hints = _resolved_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.metadata.get("inline")}


def setting_names(cls: type) -> set[str]:
    """The setting names of ``cls`` as users write them (inline blocks' fields included)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, inner in _inline_fields(cls).items():
        names.discard(name)
        names |= setting_names(inner)
    return names


def _build(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    hints = _resolved_hints(cls)
    names = setting_names(cls)
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(prefix + u for u in unknown)}; "
            f"known: {', '.join(sorted(prefix + n for n in names))}"
        )
    values = dict(values)
    kwargs: dict[str, Any] = {}
    for name, inner in _inline_fields(cls).items():
        own = setting_names(inner)
        kwargs[name] = _build(inner, {k: values.pop(k) for k in list(values) if k in own},
                              prefix)
    required = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.name not in values and f.name not in kwargs]
    if required:
        raise ConfigError(f"{', '.join(prefix + r for r in required)}: required; give it on the "
                          "command line or in the --config file")
    kwargs.update({k: _coerce(v, hints[k], prefix + k) for k, v in values.items()})
    try:
        return cls(**kwargs)
    except TypeError as err:  # a field the dataclass's own signature refuses
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from err


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of a config (tuples become lists, paths strings)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out: dict[str, Any] = {}
            for f in dataclasses.fields(value):
                item = plain(getattr(value, f.name))
                if f.metadata.get("inline"):
                    out.update(item)  # an inline block's settings read as the parent's
                else:
                    out[f.name] = item
            return out
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    result = plain(config)
    if not isinstance(result, dict):
        raise TypeError(f"{config!r} is not a dataclass instance")
    return result


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None) -> T:
    """Build a config: dataclass defaults, then YAML file, then ``key=value`` overrides.

    Args:
        cls: The config dataclass.
        path: Optional YAML file; every key must be a field of ``cls`` (nested for sections).
        overrides: ``dotted.key=value`` strings; values are parsed as YAML scalars/lists.
        base: Values applied before the file (used by the CLI for flags).

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: unknown key, wrong type, failed validation, or unreadable file.
    """
    values: dict[str, Any] = dict(base or {})
    if path is not None:
        values = _merge(values, read_config_file(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value")
        _set_dotted(values, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return _build(cls, values)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file's settings as written (checked against a dataclass when built).

    Raises:
        ConfigError: the file is missing, not UTF-8, not YAML, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(read_utf8_text(path, ConfigError)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return loaded


def read_utf8_text(path: Path, error: type[Exception] = ConfigError) -> str:
    """A text file's content: UTF-8, a leading byte-order mark dropped.

    Raises:
        error: a byte is not UTF-8; the message names the file, line and column.
    """
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise error(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{column}); save the file as UTF-8") from err


def save_config(config: Any, path: str | Path) -> None:
    """Write a config as YAML that :func:`load_config` reads back to an equal config."""
    Path(path).write_text(
        yaml.safe_dump(config_to_dict(config), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )


def _flag_type(tp: Any) -> tuple[dict[str, Any], bool]:
    """Keyword arguments of argparse for a field type; second value: is it a simple flag."""
    inner, _ = _strip_optional(tp)
    origin = typing.get_origin(inner)
    if dataclasses.is_dataclass(inner):
        return {}, False
    if inner is bool:
        return {"action": argparse.BooleanOptionalAction}, True
    if origin is tuple:
        return {"nargs": "+"}, True
    if origin is typing.Literal:
        return {"choices": list(typing.get_args(inner))}, True
    return {}, True


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one CLI option per simple field of ``cls``, plus ``--config`` and ``--set``.

    Nested dataclass sections are reachable through ``--config FILE`` and ``--set a.b=v``.
    Defaults are not copied into argparse (they stay ``None``), so the dataclass remains the
    single source of defaults; the help text shows them.
    """
    _add_flags(parser, cls)
    parser.add_argument("--config", dest="_config", default=None,
                        help="YAML file with settings (unknown keys are an error)")
    parser.add_argument("--set", dest="_set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override any setting, nested ones as section.key=value")


def _add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per simple field of ``cls`` and of its inline blocks."""
    hints = _resolved_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("inline"):
            _add_flags(parser, hints[f.name])
            continue
        kwargs, simple = _flag_type(hints[f.name])
        if not simple:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING:
            help_text += f" (default: {default!r})"
        if f.metadata.get("positional"):
            # Optional to argparse, so that the --config file may give it; a value missing
            # from both is named by the dataclass build (ConfigError, one line).
            nargs = "*" if kwargs.get("nargs") == "+" else "?"
            parser.add_argument(f.name, help=help_text, nargs=nargs, default=None)
        else:
            parser.add_argument(
                "--" + f.name.replace("_", "-"), dest=f.name, default=None,
                help=help_text, **kwargs,
            )


def config_from_args(cls: type[T], namespace: argparse.Namespace,
                     extra_overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from parsed CLI arguments (flags win over the YAML file)."""
    names = setting_names(cls)
    # An absent positional list comes back as [] (nargs="*"): not given, like None.
    flags = {k: v for k, v in vars(namespace).items()
             if k in names and v is not None and v != []}
    overrides = [*getattr(namespace, "_set", []), *extra_overrides]
    config_path = getattr(namespace, "_config", None)
    # The file's settings as written, built once together with the flags: a required
    # (positional) setting may come from either.
    base = read_config_file(config_path) if config_path else {}
    flag_overrides = [f"{k}={_yaml_scalar(v)}" for k, v in flags.items()]
    return load_config(cls, None, overrides=[*flag_overrides, *overrides], base=base)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, list | tuple):
        return yaml.safe_dump(list(value), default_flow_style=True, allow_unicode=True).strip()
    if isinstance(value, str):
        # Quote so that text such as "no" or "1e-3" stays the string the user typed; the
        # dataclass type then converts it.
        return yaml.safe_dump(value, default_style='"', allow_unicode=True).strip()
    return str(value)

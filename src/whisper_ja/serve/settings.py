"""Settings of ``whisper-ja serve`` and ``whisper-ja explore``: the only home of their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisper_ja.config import ConfigError, field
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.model.loading import DEFAULT_MODEL

__all__ = ["ExploreConfig", "LimitsConfig", "ServeConfig"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_host(host: str, allow_remote: bool) -> None:
    if host not in _LOOPBACK and not allow_remote:
        raise ConfigError(f"host: {host!r} is not a loopback address; pass --allow-remote to "
                          "listen beyond this machine (the server has no authentication)")


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"port: must be in 0..65535 (0 = any free port), got {port}")


def _check_runs(name: str, runs: tuple[Path, ...]) -> None:
    for run in runs:
        if not (Path(run) / "hypotheses.jsonl").is_file():
            raise ConfigError(f"{name}: {run} is not an evaluate output folder "
                              "(no hypotheses.jsonl)")


@dataclass(frozen=True)
class LimitsConfig:
    """How much one request and the whole server may take (HTTP limits and batching)."""

    max_upload_mb: float = field(25.0, help="largest accepted upload in MB (OpenAI's limit "
                                 "is 25 MB); larger ones get HTTP 413")
    request_timeout_s: float = field(120.0, help="a request still unanswered after this many "
                                     "seconds gets HTTP 504, and its decoding is stopped")
    queue_size: int = field(64, help="requests waiting for the model at most; more get HTTP 503")
    max_batch: int = field(8, help="requests decoded together in one batch")
    batch_wait_ms: float = field(20.0, help="how long the first request of a batch waits for "
                                 "others to join it")
    max_audio_s: float = field(0.0, help="longest audio accepted per request in seconds; "
                               "longer uploads get HTTP 413 before any decoding. 0 = what this "
                               "server decodes in 0.8 x request_timeout_s at its speed "
                               "(measured on uploads over 30 s; until then speed_guess)")
    speed_guess: float = field(2.5, help="seconds of audio decoded per second assumed until "
                               "measured (max_audio_s=0): 2.5 accepts 240 s at the default "
                               "timeout; whisper-base on 2 CPU cores does about 5")

    def __post_init__(self) -> None:
        checks = {"max_upload_mb": self.max_upload_mb > 0,
                  "request_timeout_s": self.request_timeout_s > 0,
                  "queue_size": self.queue_size >= 1, "max_batch": self.max_batch >= 1,
                  "batch_wait_ms": self.batch_wait_ms >= 0, "max_audio_s": self.max_audio_s >= 0,
                  "speed_guess": self.speed_guess > 0}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"limits.{name}: out of range ({getattr(self, name)!r})")

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1_000_000)


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``whisper-ja serve``."""

    model: str = field(DEFAULT_MODEL, help="hub id, transformers folder or CTranslate2 folder")
    adapter: str | None = field(None, help="PEFT (LoRA) adapter folder applied to the model")
    model_id: str = field("", help="the name /v1/models lists (default: the model's folder "
                          "or hub id); requests may also say whisper-1")
    host: str = field("127.0.0.1", help="address to listen on (loopback unless --allow-remote)")
    port: int = field(8000, help="TCP port (0 = any free port)")
    allow_remote: bool = field(False, help="allow a non-loopback --host")
    explore: tuple[Path, ...] = field((), help="evaluate output folders shown at /explore")
    open: bool = field(False, help="open the web page in a browser once the server is up")
    limits: LimitsConfig = field(default_factory=LimitsConfig,
                                 help="upload, timeout, queue and batch limits")
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings, inline=True,
                                     help="backend, device and precision (as transcribe)")
    decoding: DecodingOptions = field(default_factory=DecodingOptions, inline=True,
                                      help="how to decode (as transcribe)")

    def __post_init__(self) -> None:
        _check_host(self.host, self.allow_remote)
        _check_port(self.port)
        if len(self.explore) > 2:
            raise ConfigError(f"explore: at most two runs side by side, got {len(self.explore)}")
        _check_runs("explore", self.explore)

    @property
    def served_id(self) -> str:
        """The model name clients see."""
        if self.model_id:
            return self.model_id
        name = Path(self.model).name if Path(self.model).is_dir() else self.model
        return f"{name}+{Path(self.adapter).name}" if self.adapter else name


@dataclass(frozen=True)
class ExploreConfig:
    """Settings of ``whisper-ja explore``."""

    runs: tuple[Path, ...] = field(help="one or two evaluate output folders (the first is "
                                   "'A', the second 'B')", positional=True)
    host: str = field("127.0.0.1", help="address to listen on (loopback unless --allow-remote)")
    port: int = field(8001, help="TCP port (0 = any free port)")
    allow_remote: bool = field(False, help="allow a non-loopback --host")
    open: bool = field(False, help="open the explorer in a browser once the server is up")

    def __post_init__(self) -> None:
        _check_host(self.host, self.allow_remote)
        _check_port(self.port)
        if not 1 <= len(self.runs) <= 2:
            raise ConfigError(f"runs: give one or two evaluate folders, got {len(self.runs)}")
        _check_runs("runs", self.runs)

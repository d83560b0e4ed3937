"""The one error hierarchy of whisper-ja, and the exit-code policy every command follows.

Every error a user can cause is a :class:`WhisperJaError`; the CLI catches that base class and
prints one line, ``whisper-ja COMMAND: KIND: message``, never a traceback. The class decides the
exit code:

=====  ==========================================================================================
code   meaning
=====  ==========================================================================================
0      everything worked
1      some input item (an audio file, a manifest line, an upload) was bad: it was named in one
       line and counted; the other items went on. Also: a written export failed its
       verification (what was written has been removed), or a sub-run of a sweep failed.
2      the command could not start: a bad setting (named, before any work), an unusable model,
       a missing system tool
130    interrupted (Ctrl-C)
=====  ==========================================================================================

Library code raises the most specific class below; command modules never choose exit codes of
their own except ``1`` for "some items failed" (:data:`EXIT_ITEMS_FAILED`).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "EXIT_INTERRUPTED", "EXIT_ITEMS_FAILED", "EXIT_OK", "EXIT_UNUSABLE",
    "AudioError", "ConfigError", "CorpusError", "Ct2Error", "Ct2FormatError", "EspeakError",
    "ExportError", "InputError", "ManifestError", "ModelCardError", "ModelError",
    "ModelLoadError", "NotFoundError", "OfflineModelError", "PrepareError", "RequestError",
    "RequestTimeoutError", "RunFailedError", "ScoreInputError", "ServerBusyError", "SweepError",
    "TermFileError", "ToolMissingError", "TruncatedAudioError", "UploadTooLargeError",
    "WhisperJaError",
]

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 130


class WhisperJaError(Exception):
    """Base of every error a user can cause; the CLI prints it as one line."""

    exit_code: ClassVar[int] = EXIT_UNUSABLE
    kind: ClassVar[str] = "error"


# --- exit 2: the command cannot start --------------------------------------------------------

class ConfigError(WhisperJaError, ValueError):
    """A setting is invalid; the message names the setting. Raised before any work."""

    kind = "bad setting"


class ModelError(WhisperJaError, RuntimeError):
    """A model cannot be used (missing, unreadable, not multilingual, wrong vocabulary)."""

    kind = "unusable model"


class ModelLoadError(ModelError):
    """Loading a model from the hub, a folder or a CTranslate2 folder failed."""


class OfflineModelError(ModelError):
    """The offline whisper-base (PyPI parts) is missing or fails its checksum."""


class Ct2FormatError(ModelError):
    """A CTranslate2 ``model.bin`` cannot be parsed."""


class Ct2Error(ModelError):
    """A CTranslate2 / faster-whisper model cannot serve the request."""


class ToolMissingError(WhisperJaError, RuntimeError):
    """A system program the command needs (e.g. ``espeak-ng``) is missing or failed."""

    kind = "missing tool"


class EspeakError(ToolMissingError):
    """espeak-ng is not installed or failed to synthesize."""


# --- exit 1: an input item is bad (named, counted, the rest goes on) ------------------------

class InputError(WhisperJaError, ValueError):
    """An input item is bad; the message names the file (and line)."""

    exit_code = EXIT_ITEMS_FAILED
    kind = "bad input"


class AudioError(InputError):
    """An audio file cannot be read or decoded."""


class TruncatedAudioError(AudioError):
    """An audio file ends before its header says it does (a cut-short copy or download).

    A WAV whose ``data`` chunk is shorter than declared, or a FLAC whose last frame is missing.
    libsndfile decodes what is there without a word, so half a clip would be transcribed, scored
    or trained on against its whole sentence; :mod:`whisper_ja.audio.io` names the file instead.
    Like every :class:`AudioError` it is a bad item: named, counted, exit 1, the rest goes on.
    """


class ManifestError(InputError):
    """A manifest line is malformed; the message names the file and line."""


class CorpusError(InputError):
    """A corpus folder is not laid out as its reader expects."""


class PrepareError(InputError):
    """Preparing a corpus failed on its input."""


class ScoreInputError(InputError):
    """A reference or hypothesis file given to ``score`` is malformed."""


class TermFileError(InputError):
    """A domain-term file is malformed."""


class ModelCardError(InputError):
    """A model card cannot be written from the run's files."""


class RequestError(InputError):
    """A request to ``whisper-ja serve`` is malformed; ``param`` names the field (or None).

    ``whisper_ja.serve.errors`` maps this family to HTTP status codes, in one place.
    """

    kind = "bad request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UploadTooLargeError(RequestError):
    """An upload (declared or received) is larger than the server's limit."""


class NotFoundError(RequestError):
    """A request names a model, run, utterance or file the server does not have."""

    kind = "not found"


class RunFailedError(WhisperJaError, RuntimeError):
    """A step that ran failed after work started (a sub-run, a verification)."""

    exit_code = EXIT_ITEMS_FAILED
    kind = "failed"


class ExportError(RunFailedError):
    """An export failed its verification; what it wrote has been removed."""

    kind = "export failed"


class SweepError(RunFailedError):
    """A training or evaluation run inside a sweep failed."""


class ServerBusyError(RunFailedError):
    """The server's transcription queue is full; the client may retry later."""

    kind = "busy"


class RequestTimeoutError(RunFailedError):
    """A request did not finish within the server's time limit."""

    kind = "timed out"


class CheckpointError(RunFailedError):
    """A training checkpoint or model could not be written (a full disk).

    The partial output was removed; the checkpoints before it are intact.
    """

    kind = "checkpoint failed"

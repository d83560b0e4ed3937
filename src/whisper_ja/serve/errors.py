"""The one place where ``whisper_ja.errors`` classes become HTTP status codes.

Every error response has OpenAI's shape::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "file",
               "code": "invalid_audio"}}

and never a traceback: an unexpected exception is logged on the server (with its traceback)
and answered with a 500 that names no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from whisper_ja.errors import (
    AudioError,
    InputError,
    ModelError,
    NotFoundError,
    RequestError,
    RequestTimeoutError,
    ServerBusyError,
    UploadTooLargeError,
    WhisperJaError,
)

__all__ = ["error_body", "error_response", "status_of", "unexpected_error_response"]

log = logging.getLogger(__name__)

# Most specific class first: the first match decides.
_STATUS: tuple[tuple[type[WhisperJaError], int, str, str], ...] = (
    (UploadTooLargeError, 413, "invalid_request_error", "file_too_large"),
    (NotFoundError, 404, "invalid_request_error", "not_found"),
    (AudioError, 400, "invalid_request_error", "invalid_audio"),
    (RequestError, 400, "invalid_request_error", "invalid_value"),
    (InputError, 400, "invalid_request_error", "invalid_input"),
    (ServerBusyError, 503, "server_error", "server_busy"),
    (RequestTimeoutError, 504, "server_error", "timeout"),
    (ModelError, 500, "server_error", "model_error"),
)


def status_of(err: WhisperJaError) -> tuple[int, str, str]:
    """HTTP status, OpenAI error type and code of a whisper-ja error."""
    for cls, status, kind, code in _STATUS:
        if isinstance(err, cls):
            return status, kind, code
    return 500, "server_error", "failed"


def error_body(message: str, kind: str, code: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(err: WhisperJaError) -> JSONResponse:
    """The response for a whisper-ja error (4xx for the client's mistakes)."""
    status, kind, code = status_of(err)
    # An unreadable upload is always about the one file field.
    param = getattr(err, "param", None) or ("file" if isinstance(err, AudioError) else None)
    if status >= 500:
        log.warning("serve: %s: %s", err.kind, err)
    return JSONResponse(error_body(str(err), kind, code, param), status_code=status)


def unexpected_error_response(err: BaseException) -> JSONResponse:
    """A 500 for a bug: the traceback goes to the server log, not to the client."""
    log.error("serve: unexpected %s", type(err).__name__, exc_info=err)
    return JSONResponse(error_body("internal server error (see the server log)",
                                   "server_error", "internal_error"), status_code=500)

"""What every whisper-ja web app shares: OpenAI-shaped error handlers and the packaged assets.

The pages' files and Swagger UI's for ``/docs`` are package data: nothing comes from a CDN.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from whisper_ja.errors import WhisperJaError
from whisper_ja.serve.errors import error_body, error_response, unexpected_error_response

__all__ = ["STATIC_DIR", "base_app"]

STATIC_DIR = Path(__file__).parent / "static"
"""HTML, JavaScript and CSS of the pages (package data: everything works offline)."""


async def _ours(_: Request, err: Exception) -> Response:
    if isinstance(err, WhisperJaError):
        return error_response(err)
    return unexpected_error_response(err)


async def _http(_: Request, err: Exception) -> Response:
    status = int(getattr(err, "status_code", 500))
    return JSONResponse(error_body(str(getattr(err, "detail", err)), "invalid_request_error",
                                   f"http_{status}"), status_code=status)


async def _validation(_: Request, err: Exception) -> Response:
    return JSONResponse(error_body(f"invalid request: {err}", "invalid_request_error",
                                   "invalid_value"), status_code=400)


def base_app(title: str,
             lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
             ) -> FastAPI:
    """A FastAPI app with OpenAI-shaped errors and ``/static`` served from the package.

    Errors: ours and the framework's (404, 405, 422); a bug gives a 500 without traceback.
    ``/docs`` is Swagger UI from fastapi-offline's packaged copy (FastAPI's own page loads it
    from a CDN, so it is blank offline).
    """
    app = FastAPIOffline(title=title, lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.add_exception_handler(WhisperJaError, _ours)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _ours)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

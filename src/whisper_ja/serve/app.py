"""The FastAPI application of ``whisper-ja serve``: OpenAI's transcription API and the web page.

Routes: ``POST /v1/audio/transcriptions``, ``GET /v1/models`` (and ``/v1/models/{id}``),
``GET /health``, ``GET /api/info`` (what the page needs to know), ``GET /`` (the page) and
``/static/*`` (its files, shipped in the package: no CDN). With evaluate folders given, the
error explorer lives under ``/explore`` (:mod:`whisper_ja.serve.explore`).

The form is parsed here rather than by FastAPI's ``File``/``Form`` parameters so that every
refusal (malformed multipart, a missing file, an unknown field) is ours to word, in OpenAI's
error shape.

A transcription request gives up at its deadline (``limits.request_timeout_s`` after it
arrived: HTTP 504) or when its client disconnects; either way its decoding is stopped
(:mod:`whisper_ja.serve.batcher`). Audio longer than the server can decode in time is refused
before decoding (HTTP 413, :mod:`whisper_ja.serve.limits`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whisper_ja.errors import (
    NotFoundError,
    RequestError,
    RequestTimeoutError,
    UploadTooLargeError,
    WhisperJaError,
)
from whisper_ja.serve.base import STATIC_DIR, base_app
from whisper_ja.serve.batcher import Batcher
from whisper_ja.serve.engine import Engine, EngineResult, check_options
from whisper_ja.serve.errors import error_body, error_response
from whisper_ja.serve.explore import ExplorerData, explore_router
from whisper_ja.serve.formats import MEDIA_TYPES, render
from whisper_ja.serve.limits import AudioLimit
from whisper_ja.serve.request import decode_upload, parse_fields
from whisper_ja.serve.settings import LimitsConfig, ServeConfig

__all__ = ["UploadLimit", "create_app"]

log = logging.getLogger(__name__)

ALIASES = ("whisper-1",)
"""Model names every OpenAI client knows; they mean the served model."""
_FORM_OVERHEAD = 64 * 1024
"""Bytes of multipart headers and text fields allowed on top of the upload limit."""


class UploadLimit:
    """ASGI middleware: refuse request bodies over the limit, declared or received.

    A ``Content-Length`` over the limit is answered 413 before a byte of the body is read; a
    body that grows past the limit while arriving (chunked, or lying about its length) raises
    :class:`UploadTooLargeError` out of ``receive``, which the endpoint answers with 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | str) -> UploadTooLargeError:
        return UploadTooLargeError(f"file: the request body ({size} bytes) is over this "
                                   f"server's limit of {self.max_bytes - _FORM_OVERHEAD} "
                                   "bytes per upload", param="file")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the received bytes."""
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                body = error_body(f"Content-Length: {declared.decode(errors='replace')!r} is "
                                  "not a byte count", "invalid_request_error", "invalid_value")
                await JSONResponse(body, status_code=400)(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await error_response(self._too_large(int(declared)))(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large(f"more than {received}")
            return message

        await self.app(scope, counting_receive, send)


async def _read_form(request: Request, limits: LimitsConfig,
                     ) -> tuple[UploadFile, list[tuple[str, str]]]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise RequestError(f"Content-Type: expected multipart/form-data, got "
                           f"{content_type or 'none'!r}", param="file")
    try:
        form = await request.form(max_files=1, max_fields=32)
    except (WhisperJaError, ClientDisconnect):
        raise
    except Exception as err:  # Starlette and python-multipart raise several kinds
        detail = getattr(err, "detail", None) or getattr(err, "message", None) or err
        raise RequestError(f"malformed multipart body: {detail}", param="file") from err
    files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    if not files and not fields:
        raise RequestError("malformed multipart body: no form part could be read (is the "
                           "boundary in Content-Type the one the body uses?)", param="file")
    if not files or files[0][0] != "file":
        named = f" (got a file field named {files[0][0]!r})" if files else ""
        raise RequestError(f"file: the audio file is required{named}", param="file")
    return files[0][1], fields


def _engine_info(config: ServeConfig, engine: Engine, audio_limit: AudioLimit,
                 ) -> dict[str, Any]:
    return {"model": config.served_id, "backend": engine.backend,
            "word_timestamps": engine.supports_words,
            "temperature": engine.supports_temperature,
            "max_upload_bytes": config.limits.max_upload_bytes,
            "request_timeout_s": config.limits.request_timeout_s,
            **audio_limit.info(), "explore": bool(config.explore)}


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (the body is read: the next message is a disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)  # an empty body message: never spin


async def _unless_disconnected(request: Request, work: Awaitable[EngineResult]) -> EngineResult:
    """``work``'s result; cancelled (so its decoding stops) if the client leaves first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        raise ClientDisconnect
    return task.result()


async def _transcribe(request: Request, config: ServeConfig, batcher: Batcher,
                      audio_limit: AudioLimit, deadline: float) -> Response:
    upload, fields = await _read_form(request, config.limits)
    parsed = parse_fields(fields, config.served_id)
    if parsed.model not in (config.served_id, *ALIASES):
        raise NotFoundError(f"model: {parsed.model!r} is not served here; this server has "
                            f"{config.served_id!r} (or say whisper-1)", param="model")
    check_options(batcher.engine, parsed.options)
    data = await upload.read()
    if len(data) > config.limits.max_upload_bytes:
        raise UploadTooLargeError(f"file: {len(data)} bytes is over this server's limit of "
                                  f"{config.limits.max_upload_bytes} bytes", param="file")
    # Decoding and resampling are CPU work: off the event loop. Too long audio is refused
    # from its header, before decoding.
    audio = await asyncio.to_thread(decode_upload, data, upload.filename or "upload",
                                    audio_limit.check)
    result = await _unless_disconnected(
        request, batcher.submit(audio, parsed.options, deadline=deadline))
    body = render(result, parsed.response_format, parsed.granularities)
    if isinstance(body, dict):
        return JSONResponse(body)
    return PlainTextResponse(body, media_type=MEDIA_TYPES[parsed.response_format])


def create_app(config: ServeConfig, engine: Engine) -> FastAPI:
    """The server's application around a loaded engine.

    Args:
        config: Its settings (limits, served name, explore folders).
        engine: The loaded backend (:func:`whisper_ja.serve.engine.load_engine`).
    """
    limits = config.limits
    audio_limit = AudioLimit(limits)
    batcher = Batcher(engine, max_batch=limits.max_batch, queue_size=limits.queue_size,
                      batch_wait_s=limits.batch_wait_ms / 1000, on_speed=audio_limit.record)
    explorer = ExplorerData.load(config.explore) if config.explore else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = base_app("whisper-ja", lifespan)
    app.state.batcher = batcher
    if explorer is not None:
        app.include_router(explore_router(explorer))

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        deadline = time.monotonic() + limits.request_timeout_s
        try:
            async with asyncio.timeout(limits.request_timeout_s):
                return await _transcribe(request, config, batcher, audio_limit, deadline)
        except (TimeoutError, RequestTimeoutError):
            raise RequestTimeoutError(f"the request took over {limits.request_timeout_s:g} s "
                                      "(limits.request_timeout_s); its decoding was stopped"
                                      ) from None
        except ClientDisconnect:
            log.info("serve: client disconnected; its request was dropped")
            return Response(status_code=400)  # nobody is listening any more

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(config.served_id)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id not in (config.served_id, *ALIASES):
            raise NotFoundError(f"model: {model_id!r} is not served here", param="model")
        return _model_card(model_id)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **_engine_info(config, engine, audio_limit),
                "waiting": batcher.waiting,
                **vars(batcher.stats)}

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return _engine_info(config, engine, audio_limit)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.add_middleware(UploadLimit, max_bytes=limits.max_upload_bytes + _FORM_OVERHEAD)
    return app


def _model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "whisper-ja"}

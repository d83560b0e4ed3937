"""Running an app with uvicorn: in the foreground for the CLI, in a thread for tests.

Both bind the socket here, so port 0 picks a free port and the URL is known before start.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import webbrowser
from types import TracebackType
from typing import Any

import uvicorn

from whisper_ja.errors import ConfigError

__all__ = ["BackgroundServer", "run_server"]

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 5
"""Idle keep-alive connections are closed after this long."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"port: cannot listen on {host}:{port} ({err.strerror})") from err
    sock.listen(128)
    return sock


def _url(sock: socket.socket, path: str = "") -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def _server(app: Any, log_level: str) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_keep_alive=KEEP_ALIVE_S,
                                         access_log=log_level == "info"))


def run_server(app: Any, host: str, port: int, *, open_path: str | None = None) -> None:
    """Serve ``app`` until Ctrl-C; with ``open_path``, open that page in a browser once up."""
    sock = _bind(host, port)
    server = _server(app, "info")
    print(f"whisper-ja: serving on {_url(sock)}  (Ctrl-C stops)", flush=True)
    if open_path is not None:
        url = _url(sock, open_path)

        def opener() -> None:
            while not server.started:
                time.sleep(0.1)
            webbrowser.open(url)

        threading.Thread(target=opener, daemon=True).start()
    server.run(sockets=[sock])


class BackgroundServer:
    """Uvicorn in a thread, stopped on exit: ``with BackgroundServer(app) as s: s.url``.

    For tests and benchmarks on loopback (port 0 = any free port).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        self._sock = _bind(host, port)
        self._server = _server(app, log_level)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)
        self.url = _url(self._sock)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

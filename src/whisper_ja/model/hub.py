"""Is the Hugging Face hub reachable? Answered fast, once per process.

A hub call on a machine without network can hang for minutes in retries, so whisper-ja decides
up front: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` win; otherwise one TCP connection to the
hub's host with a short timeout decides, and the answer is cached for the process.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

__all__ = ["PROBE_TIMEOUT_S", "hub_offline", "hub_reachable"]

PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable() -> bool:
    """Whether hub downloads can work: not offline by request and the host answers quickly.

    The probe result (not the environment check) is cached for the whole process.
    """
    if hub_offline():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return _probe(endpoint)


@functools.lru_cache(maxsize=4)
def _probe(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:  # DNS failure, refused, unreachable or timed out: all mean offline
        return False

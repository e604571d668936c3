"""Retry transient failures (429, 5xx, connection resets) with exponential backoff and jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def is_retryable(error: BaseException) -> bool:
    """True for throttling, server errors and dropped connections; never for 4xx input errors."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return status in RETRYABLE_STATUS
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    # urllib3/http.client failures arrive wrapped; match by class name to stay import-free
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(
        names
        & {
            "ProtocolError",
            "MaxRetryError",
            "NewConnectionError",
            "ReadTimeoutError",
            "RemoteDisconnected",
            "IncompleteRead",
        }
    )


def backoff_delays(attempts: int, base: float = 0.2, cap: float = 5.0) -> list[float]:
    """Full-jitter exponential backoff (AWS architecture blog): uniform(0, min(cap, base*2^n))."""
    return [random.uniform(0, min(cap, base * 2**n)) for n in range(attempts - 1)]


def retry(
    call: Callable[[], T],
    *,
    attempts: int = 5,
    base: float = 0.2,
    cap: float = 5.0,
    retryable: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``call`` until it succeeds, a non-retryable error occurs, or attempts run out."""
    delays = backoff_delays(attempts, base, cap)
    for delay in delays:
        try:
            return call()
        except Exception as error:
            if not retryable(error):
                raise
            sleep(delay)
    return call()

"""Backoff/retry policy and the event bus."""

from __future__ import annotations

import threading

import pytest

from reconciler._events import ActionFinished, EventBus, ItemWarning, RunFinished
from reconciler._retry import backoff_delays, is_retryable, retry


class _StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}")
        self.status = status


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_StatusError(429), True),
        (_StatusError(503), True),
        (_StatusError(500), True),
        (_StatusError(404), False),
        (_StatusError(409), False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("bad input"), False),
    ],
)
def test_retryable_classification(error: Exception, expected: bool) -> None:
    assert is_retryable(error) is expected


def test_retry_until_success_and_sleeps_between() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _StatusError(503)
        return "ok"

    assert retry(flaky, attempts=5, sleep=slept.append) == "ok"
    assert len(calls) == 3
    assert len(slept) == 2


def test_non_retryable_error_is_raised_at_once() -> None:
    calls: list[int] = []

    def invalid() -> None:
        calls.append(1)
        raise _StatusError(422)

    with pytest.raises(_StatusError):
        retry(invalid, attempts=5, sleep=lambda _: None)
    assert len(calls) == 1


def test_retry_gives_up_after_attempts() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise _StatusError(500)

    with pytest.raises(_StatusError):
        retry(always, attempts=4, sleep=lambda _: None)
    assert len(calls) == 4


def test_backoff_is_jittered_exponential_and_capped() -> None:
    for _ in range(50):
        delays = backoff_delays(6, base=0.5, cap=3.0)
        assert len(delays) == 5
        for n, delay in enumerate(delays):
            assert 0 <= delay <= min(3.0, 0.5 * 2**n)


def test_event_bus_fans_out_across_threads_and_unsubscribes() -> None:
    bus = EventBus()
    seen: list[str] = []
    lock = threading.Lock()

    def collect(event: object) -> None:
        with lock:
            seen.append(type(event).__name__)

    unsubscribe = bus.subscribe(collect)
    threads = [
        threading.Thread(
            target=bus.publish, args=(RunFinished(operation="backup", phase="Completed"),)
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["RunFinished"] * 8
    unsubscribe()
    bus.publish(ItemWarning(text="x"))
    assert len(seen) == 8


def test_event_levels_and_messages() -> None:
    failed = ActionFinished(
        address="ReplicationJob/web",
        symbol="»",
        action="replicate",
        outcome="failed",
        detail="boom",
    )
    assert failed.level == "error"
    assert failed.message() == "» ReplicationJob/web: replicate failed: boom"
    assert ItemWarning(address="a/b", text="dropped owner").level == "warning"
    assert "at" not in failed.data()


def test_reconciler_treats_unreachable_peers_as_transient() -> None:
    from reconciler.kube import KubeApiError, KubeUnreachableError
    from reconciler.reconcile._actions import is_transient
    from reconciler.repository import RepositoryUnavailable

    assert is_transient(KubeUnreachableError("https://127.0.0.1:1: connection refused"))
    assert is_transient(RepositoryUnavailable("s3://b: timed out"))
    assert is_transient(KubeApiError("throttled", status=429))
    assert not is_transient(KubeApiError("forbidden", status=403))

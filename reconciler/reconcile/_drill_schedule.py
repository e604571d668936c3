"""When drills are due (drillFrequency) and who is told when one fails (webhook)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from croniter import croniter

from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory, resolve_declared_path
from state import Ledger, RunKind

_NOTIFY_TIMEOUT = 10.0


# -- schedules -------------------------------------------------------------------------------


def drill_due(frequency: str, last_attempt: datetime | None, now: datetime) -> bool:
    """Whether a drill on cron ``frequency`` is due: never drilled, or a scheduled time has
    passed since the last attempt (passed or failed: a failing drill is not retried at every
    reconcile, only at its next scheduled time)."""
    if last_attempt is None:
        return True
    due: datetime = croniter(frequency, last_attempt).get_next(datetime)
    return due <= now


def due_drills(inventory: Inventory, ledger: Ledger, now: datetime) -> list[str]:
    """Jobs with a ``drillFrequency`` that are due, among those with a successful run."""
    recorded = {job.name: job for job in ledger.jobs()}
    due = []
    for name, declared in sorted(inventory.jobs.items()):
        frequency = declared.spec.drill_frequency
        record = recorded.get(name)
        if frequency is None or record is None or record.last_success_at is None:
            continue
        runs = ledger.runs(job=name, kind=RunKind.DRILL, limit=1)
        last = runs[0].started_at if runs else None
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if drill_due(frequency, last, now):
            due.append(name)
    return due


# -- notification ----------------------------------------------------------------------------


def webhook_url(inventory: Inventory, job: str) -> str | None:
    """The job's webhook URL from its reference (None when none is configured)."""
    declared = inventory.jobs[job]
    notify = declared.spec.notify
    if notify is None:
        return None
    source = notify.webhook.url_from
    if source.env is not None:
        value = os.environ.get(source.env.var, "").strip()
        if not value:
            raise KubeferryError(f"environment variable {source.env.var} (webhook URL) is not set")
        return value
    if source.file is not None:
        path = resolve_declared_path(source.file.path, declared.base_dir)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise KubeferryError(
                f"cannot read the webhook URL file {path}: {error.strerror}"
            ) from None
        if not value:
            raise KubeferryError(f"the webhook URL file {path} is empty")
        return value
    return None


class _DropMentions(logging.Filter):
    """Drops log records that quote the secret URL (httpx logs every request's URL)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return self.secret not in record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot format is dropped too
            return False


@contextlib.contextmanager
def _quiet(url: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    dropping = _DropMentions(url)
    for logger in loggers:
        logger.addFilter(dropping)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(dropping)


def notify_webhook(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float = _NOTIFY_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    attempts: int = 2,
) -> str:
    """POST ``payload`` as JSON (one retry); returns "sent" or why not. Never raises, and
    never puts the URL (it may carry a token) into the answer or the logs."""
    problem = "not sent"
    with _quiet(url), httpx.Client(timeout=timeout, transport=transport) as client:
        for attempt in range(attempts):
            try:
                answer = client.post(url, json=dict(payload))
            except httpx.HTTPError as error:
                problem = (
                    f"not sent: {type(error).__name__}: {str(error).replace(url, '<webhook>')}"
                )
            else:
                if answer.is_success:
                    return "sent"
                problem = f"not sent: the webhook answered HTTP {answer.status_code}"
            if attempt + 1 < attempts:
                time.sleep(0.5)
    return problem

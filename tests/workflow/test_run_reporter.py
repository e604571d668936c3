"""The run reporter: engine progress -> event stream and ledger, bytes included."""

from __future__ import annotations

from pathlib import Path

from reconciler._events import Event, EventBus, Progress
from reconciler.apply import Cancellation
from reconciler.reconcile._actions import _RunReporter
from state import Ledger, RunKind


def test_volume_bytes_reach_the_event_stream_and_the_ledger(tmp_path: Path) -> None:
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        run = ledger.start_run(RunKind.BACKUP, "web")
        assert run.id is not None
        reporter = _RunReporter(ledger, bus, run.id, "ReplicationJob/web", Cancellation())
        reporter.total(3)
        reporter.item_done("configmaps/settings")  # an object: no bytes
        reporter.bytes_progress("persistentvolumeclaims/data", 40, 100)
        reporter.bytes_progress("persistentvolumeclaims/logs", 5, 50)
        reporter.bytes_progress("persistentvolumeclaims/data", 90, 100)
        reporter.item_done("persistentvolumeclaims/data", 100)
        reporter.item_done("persistentvolumeclaims/logs", 50)

        progress = [e for e in events if isinstance(e, Progress)]
        seen = [(e.items_done, e.bytes_done, e.bytes_total) for e in progress]
        assert seen == [
            (0, 0, 0),
            (1, 0, 0),
            (1, 40, 100),
            (1, 45, 150),
            (1, 95, 150),
            (2, 105, 150),
            (3, 150, 150),
        ]
        stored = ledger.run(run.id)
        assert stored.items_done == 3
        assert stored.bytes_done == 150
        assert stored.bytes_total == 150

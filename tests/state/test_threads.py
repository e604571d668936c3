"""One Ledger shared by worker threads, as the reconciler uses it through anyio.to_thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread

from state import IssueSeverity, Ledger, RunKind, RunPhase


def test_many_threads_writing_at_once_lose_nothing(with_job: Ledger) -> None:
    threads, runs_each = 12, 5  # more threads than the pool keeps connections
    serial_before = with_job.serial

    def backup_runs(worker: int) -> list[int]:
        ids = []
        for step in range(runs_each):
            run = with_job.start_run(RunKind.BACKUP, "shop", total_items=2)
            assert run.id is not None
            with_job.update_run_progress(run.id, items_done=1)
            with_job.add_run_issue(run.id, IssueSeverity.WARNING, f"{worker}/{step}")
            with_job.finish_run(run.id, RunPhase.COMPLETED)
            ids.append(run.id)
        return ids

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(backup_runs, range(threads)))

    all_ids = [run_id for ids in results for run_id in ids]
    assert len(set(all_ids)) == threads * runs_each
    assert with_job.serial == serial_before + threads * runs_each * 4
    counts = with_job.counts()
    assert counts["runs"] == threads * runs_each
    assert counts["run_issues"] == threads * runs_each
    assert {run.phase for run in with_job.runs()} == {RunPhase.COMPLETED}


def test_the_ledger_works_from_anyio_worker_threads(with_job: Ledger) -> None:
    async def main() -> list[int]:
        ids: list[int] = []

        async def one(index: int) -> None:
            event = await anyio.to_thread.run_sync(
                lambda: with_job.record_event("test.thread", f"from task {index}")
            )
            assert event.id is not None
            ids.append(event.id)

        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(one, index)
        return ids

    ids = anyio.run(main)
    assert sorted(ids) == [event.id for event in with_job.events()]
    assert len(ids) == 20

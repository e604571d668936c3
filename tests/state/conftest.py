"""Fixtures of the ledger tests: a fresh ledger in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state import Ledger


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".kubeferry" / "ledger.sqlite"


@pytest.fixture
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    with Ledger.open(ledger_path) as opened:
        yield opened


@pytest.fixture
def with_job(ledger: Ledger) -> Ledger:
    """A ledger holding one cluster pair, repository, slice and job ("shop")."""
    ledger.upsert_cluster("east")
    ledger.upsert_cluster("west")
    ledger.upsert_repository("s3")
    ledger.upsert_slice("prod", source_cluster="east", destination_cluster="west", repository="s3")
    ledger.upsert_job("shop", slice="prod", namespace="shop", spec_digest="sha256:1")
    return ledger

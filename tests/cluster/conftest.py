"""Cluster tests need PostgreSQL and Redis; without them they skip with the reason (CI provides both)."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.cluster.harness import Cluster, why_not


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Three real nodes sharing one PostgreSQL database and one Redis prefix."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    made = Cluster(tmp_path)
    try:
        await made.start()
        yield made
    finally:
        made.stop()

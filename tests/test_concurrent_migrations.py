"""Many workers opening a fresh database at once: all succeed, each revision runs once."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from agent_control_plane import ControlPlane
from tests.acp_helpers import ALL_UPGRADES, HEAD
from tests.databases import TestDatabase

WORKERS = 4


def _open_and_report(url: str, barrier: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    barrier.wait()  # type: ignore[attr-defined]
    with ControlPlane.open(url, migrate="auto") as control_plane:
        return control_plane.applied_migrations, control_plane.schema_revision()


@pytest.mark.slow
def test_four_processes_open_a_fresh_database_at_once(database: TestDatabase) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(WORKERS)
        with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
            futures = [
                pool.submit(_open_and_report, database.url_string, barrier) for _ in range(WORKERS)
            ]
            results = [future.result(timeout=120) for future in futures]
    applied = [step for steps, _ in results for step in steps]
    assert sorted(applied) == sorted(ALL_UPGRADES)
    assert all(revision == (HEAD,) for _, revision in results)

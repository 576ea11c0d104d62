"""Sweeps in bounded batches: each batch is one short transaction."""

from __future__ import annotations

from collections.abc import Callable

from agent_control_plane.rules.maintenance import DEFAULT_BATCH_SIZE


def drain(batch: Callable[[int], int], batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Run ``batch(batch_size)`` until one does less than a full batch; return the total.

    A short batch means the work is done or held by another worker (SKIP LOCKED), which
    finishes it: stopping there keeps concurrent workers from spinning on each other.
    """
    total = 0
    while True:
        done = batch(batch_size)
        total += done
        if done < batch_size:
            return total

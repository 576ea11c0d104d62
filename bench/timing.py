"""The two ways every benchmark is timed: one thread in a loop, or N threads at once."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable


def ops_per_second(operation: Callable[[], object], seconds: float, warmup: int = 20) -> float:
    """Call ``operation`` in a loop for ``seconds`` after ``warmup`` calls; calls per second."""
    for _ in range(warmup):
        operation()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        operation()
        count += 1
    return count / (time.perf_counter() - started)


def concurrent_ops_per_second(
    operation: Callable[[int], object], seconds: float, workers: int
) -> float:
    """Run ``operation(worker_index)`` in ``workers`` threads started together; total calls
    per second."""
    counts = [0] * workers
    stop = threading.Event()
    barrier = threading.Barrier(workers + 1)

    def run(index: int) -> None:
        barrier.wait()
        while not stop.is_set():
            operation(index)
            counts[index] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def concurrent_latencies(
    operation: Callable[[int], object], seconds: float, workers: int
) -> tuple[float, float]:
    """Run ``operation(worker_index)`` in ``workers`` threads for ``seconds``; the p50 and
    p99 of one call, in milliseconds."""
    samples: list[list[float]] = [[] for _ in range(workers)]
    stop = threading.Event()
    barrier = threading.Barrier(workers + 1)

    def run(index: int) -> None:
        barrier.wait()
        while not stop.is_set():
            started = time.perf_counter()
            operation(index)
            samples[index].append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    every = sorted(sample for worker in samples for sample in worker)
    cuts = statistics.quantiles(every, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000

"""Shared benchmark vocabulary: result rows, latency percentiles, a bounded concurrent driver."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured figure: `rate` operations/s, with latency percentiles in milliseconds."""

    suite: str
    case: str
    rate: float
    unit: str = "ops/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` percentile (0-1) of `samples` (seconds) in milliseconds."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index] * 1000


async def drive(
    operation: Callable[[int], Awaitable[object]],
    *,
    total: int,
    concurrency: int,
    seconds_max: float = 60.0,
) -> tuple[float, list[float]]:
    """Run `operation(i)` for i < total with `concurrency` in flight (stops at `seconds_max`).

    Returns (operations per second, per-operation latencies in seconds).
    """
    latencies: list[float] = []
    counter = iter(range(total))
    deadline = time.perf_counter() + seconds_max

    async def worker() -> None:
        for index in counter:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            await operation(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return (len(latencies) / elapsed if elapsed else 0.0), latencies


def summarize(suite: str, case: str, rate: float, latencies: list[float], note: str = "") -> Row:
    """A Row from a drive() result."""
    return Row(suite, case, rate, "ops/s", percentile(latencies, 0.5), percentile(latencies, 0.99), note)


def median(values: list[float]) -> float:
    """Median of `values` (0 when empty)."""
    return statistics.median(values) if values else 0.0

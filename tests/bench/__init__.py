"""Benchmarks (`make bench`): each `bench_*.py` module here exposes `async def run() -> list[Row]`."""

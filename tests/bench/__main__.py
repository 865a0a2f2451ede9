"""`make bench`: run every benchmark module and write var/bench/report.md.

Usage: python -m tests.bench [NAME ...]   (names are module suffixes: ledger, vault, gateway, …)
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import os
import pathlib
import pkgutil
import platform
import sys

from tests.bench.common import Row

ROOT = pathlib.Path(__file__).resolve().parents[2]


def machine() -> str:
    """One line describing the machine the figures come from."""
    cpu = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load average {load:.2f} at start"
    )


def render(rows: list[Row]) -> str:
    """Markdown table of the rows."""
    lines = [
        "# Clearhouse benchmarks",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC — {machine()}",
        "",
        "| suite | case | rate | p50 ms | p99 ms | note |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        p50 = f"{row.p50_ms:.2f}" if row.p50_ms is not None else ""
        p99 = f"{row.p99_ms:.2f}" if row.p99_ms is not None else ""
        lines.append(
            f"| {row.suite} | {row.case} | {row.rate:,.0f} {row.unit} | {p50} | {p99} | {row.note} |"
        )
    return "\n".join(lines) + "\n"


async def main(selected: list[str]) -> None:
    """Run the selected (default: all) benchmark modules in sequence."""
    package = pathlib.Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(package)]) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected]
    rows: list[Row] = []
    for name in names:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"running {name} …", flush=True)
        rows.extend(await module.run())
    report = render(rows)
    out = ROOT / "var" / "bench" / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

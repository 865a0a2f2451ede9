"""`make run`: start every Clearhouse process on the embedded default and supervise them.

One place for the local process life cycle: generate certificates and the admin key under var/,
start ledger, vault, provider simulator, payments and the gateway as child processes (their
output prefixed on this terminal and kept in var/logs/), wait until each is healthy, print how to
use it, and on Ctrl-C (or if any child dies) stop them all: SIGTERM, then SIGKILL after a grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import signal
import sys
import time

import httpx

from chassis import health, secrets, tls
from chassis.settings import CommonSettings, load

STARTUP_SECONDS_MAX = 90.0
STOP_GRACE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """One child process: its module and how to tell it is healthy."""

    name: str
    module: str
    grpc_address: str | None = None
    http_health_url: str | None = None


def specs() -> list[ProcessSpec]:
    """The five processes."""
    gateway_port = os.environ.get("GATEWAY_PORT", "8080")
    return [
        ProcessSpec(
            "ledger", "ledger_svc", grpc_address=f"127.0.0.1:{os.environ.get('LEDGER_GRPC_PORT', '50053')}"
        ),
        ProcessSpec(
            "vault", "vault_svc", grpc_address=f"127.0.0.1:{os.environ.get('VAULT_GRPC_PORT', '50052')}"
        ),
        ProcessSpec(
            "provider",
            "provider_sim",
            grpc_address=f"127.0.0.1:{os.environ.get('PROVIDER_GRPC_PORT', '50054')}",
        ),
        ProcessSpec(
            "payments",
            "payments_svc",
            grpc_address=f"127.0.0.1:{os.environ.get('PAYMENTS_GRPC_PORT', '50051')}",
        ),
        ProcessSpec("gateway", "gateway", http_health_url=f"http://127.0.0.1:{gateway_port}/healthz"),
    ]


def admin_key(settings: CommonSettings) -> str:
    """CLEARHOUSE_ADMIN_KEY, else the key generated on first run into var/admin.key."""
    configured = os.environ.get("CLEARHOUSE_ADMIN_KEY")
    if configured:
        return configured
    return secrets.load_or_create(settings.var_dir / "admin.key", prefix="sk_admin_")


async def _pump(name: str, stream: asyncio.StreamReader, log_path: pathlib.Path) -> None:
    with log_path.open("ab") as log_file:
        while line := await stream.readline():
            log_file.write(line)
            log_file.flush()
            sys.stdout.write(f"{name:>9} | {line.decode(errors='replace')}")
            sys.stdout.flush()


async def _wait_healthy(
    spec: ProcessSpec, settings: CommonSettings, process: asyncio.subprocess.Process
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{spec.name} exited with code {process.returncode} during start-up")
            if spec.grpc_address and await health.check_address(spec.grpc_address, settings):
                return
            if spec.http_health_url:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(spec.http_health_url)).status_code == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{spec.name} was not healthy within {STARTUP_SECONDS_MAX:.0f} s")


async def _stop_all(processes: dict[str, asyncio.subprocess.Process]) -> None:
    for process in reversed(list(processes.values())):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes.values():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            await asyncio.wait_for(process.wait(), remaining)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def run() -> int:
    """Start everything, print the quick-start lines, supervise until interrupted."""
    settings: CommonSettings = load(CommonSettings)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    tls.ensure_all(settings.certs_dir)
    key = admin_key(settings)
    log_dir = settings.var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CLEARHOUSE_ADMIN_KEY": key, "PYTHONUNBUFFERED": "1"}
    if not settings.is_production:
        # The local stack's merchant endpoints (make demo's receiver) live on this machine; payments
        # refuses private webhook targets by default (SSRF) and refuses this flag in production.
        env.setdefault("PAYMENTS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    processes: dict[str, asyncio.subprocess.Process] = {}
    pumps: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        for spec in specs():
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                spec.module,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            processes[spec.name] = process
            assert process.stdout is not None
            pumps.append(asyncio.create_task(_pump(spec.name, process.stdout, log_dir / f"{spec.name}.log")))
        # All start at once (each only needs the others when it handles a call); wait for all.
        await asyncio.gather(*(_wait_healthy(spec, settings, processes[spec.name]) for spec in specs()))
        gateway_url = f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8080')}"
        print(
            "\nClearhouse is up.\n"
            f"  gateway     {gateway_url}\n"
            f"  API docs    {gateway_url}/docs\n"
            f"  admin key   {key}\n"
            f"  try         curl -s -X POST {gateway_url}/v1/merchants -H 'Authorization: Bearer {key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"name": "Acme", "country": "US", "default_currency": "USD"}\'\n'
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        waiters = [asyncio.create_task(p.wait()) for p in processes.values()]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([*waiters, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for waiter in waiters:
            waiter.cancel()
        crashed = [name for name, p in processes.items() if p.returncode is not None]
        if crashed and not stop.is_set():
            print(f"\n{', '.join(crashed)} exited; stopping everything.", flush=True)
            return 1
        return 0
    except RuntimeError as error:
        print(f"\nstart-up failed: {error}", flush=True)
        return 1
    finally:
        await _stop_all(processes)
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(pump, 2.0)
        print("stopped.", flush=True)


def main() -> None:
    """Entry point of `python -m chassis.runner`."""
    raise SystemExit(asyncio.run(run()))


if __name__ == "__main__":
    main()

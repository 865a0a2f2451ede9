"""Start the stack exactly as `make run` does (`python -m chassis.runner`) in a scratch directory.

`make run` is `.venv/bin/python -m chassis.runner` after `make setup`; this runs the same command
with the same interpreter, but in a temporary working directory (so `var/` is fresh and private)
and with every port moved to a free one through the variables the runner and the services honour
(`GATEWAY_PORT`, `<SVC>_GRPC_PORT`, the addresses between them, the provider's webhook URL).

Stopping is what a person does: SIGINT (Ctrl-C) to the runner, then the runner must exit by
itself within a bound and leave no process behind. Every process of one stack carries the stack's
unique `CLEARHOUSE_VAR_DIR` in its environment, so "no orphan" is checked by scanning /proc for
it, not by trusting the runner's own bookkeeping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The runner waits up to 90 s per process itself; on 2 shared cores start-up takes ~10-30 s.
START_SECONDS_MAX = 150.0
# The runner gives each child a 10 s grace after SIGTERM, then SIGKILLs it.
STOP_SECONDS_MAX = 45.0
POLL_SECONDS = 0.2
READY_LINE = "Clearhouse is up."
SERVICES = ("ledger", "vault", "provider", "payments")


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (the kernel's pick; a tiny race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def processes_with_env(marker: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose environment contains `marker` (KEY=value)."""
    needle = marker.encode()
    found: list[int] = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@dataclasses.dataclass
class RunningStack:
    """A stack started by the runner: where it is, its admin key, its runner process."""

    workdir: pathlib.Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    gateway_url: str
    output_path: pathlib.Path

    @property
    def var_dir(self) -> pathlib.Path:
        """The stack's var/ folder."""
        return self.workdir / "var"

    @property
    def admin_key(self) -> str:
        """The platform admin key the runner generated into var/admin.key."""
        return (self.var_dir / "admin.key").read_text().strip()

    @property
    def marker(self) -> str:
        """The environment entry that every process of this stack carries."""
        return f"CLEARHOUSE_VAR_DIR={self.env['CLEARHOUSE_VAR_DIR']}"

    def output(self) -> str:
        """What the runner printed so far (its children's lines included)."""
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def stop(self) -> int:
        """Ctrl-C the runner, wait for it (bounded); returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the runner did not stop within {STOP_SECONDS_MAX} s") from None


def runner_env(workdir: pathlib.Path, **overrides: str) -> dict[str, str]:
    """The runner's environment: this one, minus anything that would leak in, ports moved."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "CLEARHOUSE_", "GATEWAY_", "REDIS_"))
        and not key.startswith(tuple(f"{s.upper()}_" for s in SERVICES))
        and not key.startswith("PYTEST_")
    }
    ports = {name: free_port() for name in (*SERVICES, "gateway")}
    env.update(
        CLEARHOUSE_VAR_DIR=str(workdir / "var"),
        GATEWAY_PORT=str(ports["gateway"]),
        GATEWAY_PAYMENTS_ADDRESS=f"127.0.0.1:{ports['payments']}",
        PAYMENTS_VAULT_ADDRESS=f"127.0.0.1:{ports['vault']}",
        PAYMENTS_LEDGER_ADDRESS=f"127.0.0.1:{ports['ledger']}",
        PAYMENTS_PROVIDER_ADDRESS=f"127.0.0.1:{ports['provider']}",
        PROVIDER_WEBHOOK_URL=f"http://127.0.0.1:{ports['gateway']}/v1/provider_webhooks/{{provider}}",
        # Tests do not need the simulated acquirers' realistic 100-500 ms.
        PROVIDER_LATENCY_SCALE="0",
        # Export spans every 50 ms instead of every 5 s, so traces are on disk soon after a call.
        OTEL_BSP_SCHEDULE_DELAY="50",
        # The README calls `python3`: make it this interpreter, whatever the machine's PATH says.
        PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    for name in SERVICES:
        env[f"{name.upper()}_GRPC_PORT"] = str(ports[name])
    env.update(overrides)
    return env


@contextlib.contextmanager
def running(workdir: pathlib.Path, **overrides: str) -> Iterator[RunningStack]:
    """Run `python -m chassis.runner` in `workdir` until the block ends; no process may survive."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = runner_env(workdir, **overrides)
    output_path = workdir / "runner.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "chassis.runner"],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = RunningStack(workdir, env, process, f"http://127.0.0.1:{env['GATEWAY_PORT']}", output_path)
    try:
        wait_until_up(stack)
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            # Whatever happened, leave nothing running (then the test reports what it found).
            leftovers = processes_with_env(stack.marker)
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def wait_until_up(stack: RunningStack) -> None:
    """Poll until the runner announces that every process is healthy (bounded)."""
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if READY_LINE in stack.output():
            with httpx.Client(timeout=5) as http:
                response = http.get(f"{stack.gateway_url}/readyz")
                assert response.status_code == 200, response.text
            return
        if stack.process.poll() is not None:
            raise AssertionError(f"the runner exited with {stack.process.returncode}:\n{stack.output()}")
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"not up within {START_SECONDS_MAX} s:\n{stack.output()[-4000:]}")

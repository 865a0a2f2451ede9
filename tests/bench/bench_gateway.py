"""Gateway benchmark: a cheap read RPC through the gateway, beside the same RPC over gRPC and bare
HTTP servers, so the gateway's cost reads as ratios.

Every server runs in its own process (`python -m tests.bench.bench_gateway <role>`), with the
gateway started through its real entry point (`python -m gateway`: uvicorn, uvloop, httptools,
tracing to a file, rate limiter on). The load generator is one asyncio process with keep-alive
HTTP/1.1 connections (a minimal client, so that the client is not the bottleneck it would be with
httpx) and a grpc.aio channel for the direct case.

Cases, all answering the same `GetKitchen` read (a 25-field message, about the size of a payment
intent):
  grpc-direct     the RPC over mTLS gRPC, no HTTP at all;
  bare-hop        a raw ASGI app that makes the same gRPC call and returns its bytes (no routing,
                  no JSON mapping): the floor of any HTTP→gRPC hop in Python;
  gateway         GET /v1/kitchens/{id} through the gateway;
  asgi-echo       a raw ASGI app returning a small JSON document (no gRPC);
  starlette-echo  the same through Starlette's router (the framework the gateway does not use).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tests.bench.common import Row, drive, median, summarize

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOS = ROOT / "tests" / "conformance" / "protos"
SUITE = "gateway"
WARMUP_REQUESTS = 400
MEASURED_REQUESTS = int(os.environ.get("BENCH_GATEWAY_REQUESTS", "4000"))
CONCURRENCY = 32
ROUNDS = 3
START_SECONDS_MAX = 60.0
PATH = "/v1/kitchens/k1"


# ---- Server roles (run in child processes) ----------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_asgi(app: Any, port_file: pathlib.Path) -> None:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port_file.write_text(str(sock.getsockname()[1]))
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


ECHO_BODY = b'{"id":"k1","status":"CREATED","amount":"2500","currency":"USD","has_more":false}'
ECHO_LENGTH = str(len(ECHO_BODY)).encode()


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI JSON responder."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", ECHO_LENGTH)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ECHO_BODY})


def starlette_echo() -> Any:
    """The same JSON through Starlette routing and responses."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def handler(_request: Request) -> Response:
        return Response(ECHO_BODY, media_type="application/json")

    return Starlette(routes=[Route("/v1/kitchens/{id}", handler, methods=["GET"])])


def bare_hop(backend: str, var_dir: pathlib.Path) -> Any:
    """A raw ASGI app that makes the gRPC call and returns the response bytes, nothing else."""
    from chassis.channels import open_channel
    from chassis.settings import CommonSettings

    sys.path.insert(0, str(PROTOS))
    from gatewaytest.v1 import kitchen_pb2

    settings = CommonSettings(CLEARHOUSE_VAR_DIR=var_dir)
    state: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                del message
                channel = open_channel(backend, settings, "gateway")
                state["call"] = channel.unary_unary(
                    "/gatewaytest.v1.KitchenService/GetKitchen",
                    request_serializer=kitchen_pb2.Kitchen.SerializeToString,
                    response_deserializer=kitchen_pb2.Kitchen.FromString,
                )
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        response = await state["call"](kitchen_pb2.Kitchen(id="k1"), timeout=10)
        body = response.SerializeToString()
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _serve_backend(var_dir: pathlib.Path, port_file: pathlib.Path) -> None:
    from tests.conformance import support

    async with support.running_backend(var_dir) as (backend, recorder):
        port_file.write_text(str(backend.port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # Keep memory flat over a long run: the recorder would otherwise hold every request.
        while not stop.is_set():
            recorder.calls.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def role_main(argv: list[str]) -> None:
    """Entry point of the child processes."""
    role, var_dir, port_file = argv[0], pathlib.Path(argv[1]), pathlib.Path(argv[2])
    if role == "backend":
        import uvloop

        uvloop.run(_serve_backend(var_dir, port_file))
    elif role == "asgi-echo":
        _serve_asgi(asgi_echo, port_file)
    elif role == "starlette-echo":
        _serve_asgi(starlette_echo(), port_file)
    elif role == "bare-hop":
        _serve_asgi(bare_hop(argv[3], var_dir), port_file)
    else:
        raise SystemExit(f"unknown role {role}")


# ---- Load generation ---------------------------------------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection issuing GETs (Content-Length responses only)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, path: str) -> int:
        status, _body = await self.request("GET", path)
        return status

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """One request; `headers` are extra header lines, each ending in CRLF."""
        length_line = f"content-length: {len(body)}\r\ncontent-type: application/json\r\n" if body else ""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nhost: bench\r\n{headers}{length_line}\r\n".encode() + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


async def _http_case(port: int, total: int) -> tuple[float, list[float]]:
    connections = [
        HttpConnection(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(CONCURRENCY)
    ]
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for connection in connections:
        pool.put_nowait(connection)
    failures = 0

    async def one(_index: int) -> None:
        nonlocal failures
        connection = await pool.get()
        try:
            if await connection.get(PATH) != 200:
                failures += 1
        finally:
            pool.put_nowait(connection)

    try:
        return await drive(one, total=total, concurrency=CONCURRENCY)
    finally:
        for connection in connections:
            connection.writer.close()
        if failures:
            raise RuntimeError(f"port {port}: {failures} non-200 responses")


async def _grpc_case(
    backend: str, var_dir: pathlib.Path
) -> Callable[[int], Awaitable[tuple[float, list[float]]]]:
    from chassis.channels import open_channel
    from chassis.settings import CommonSettings

    sys.path.insert(0, str(PROTOS))
    from gatewaytest.v1 import kitchen_pb2

    channel = open_channel(backend, CommonSettings(CLEARHOUSE_VAR_DIR=var_dir), "tools")
    call = channel.unary_unary(
        "/gatewaytest.v1.KitchenService/GetKitchen",
        request_serializer=kitchen_pb2.Kitchen.SerializeToString,
        response_deserializer=kitchen_pb2.Kitchen.FromString,
    )

    async def one(_index: int) -> None:
        await call(kitchen_pb2.Kitchen(id="k1"), timeout=10)

    async def measure(total: int) -> tuple[float, list[float]]:
        return await drive(one, total=total, concurrency=CONCURRENCY)

    return measure


@contextlib.asynccontextmanager
async def _process(
    args: list[str], port_file: pathlib.Path, env: dict[str, str]
) -> AsyncIterator[tuple[int, int]]:
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_SECONDS_MAX
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"{args} exited: {stderr[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not start")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text())
        await _wait_listening(port, deadline)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_listening(port: int, deadline: float) -> None:
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def read_path() -> list[Row]:
    """Start every server, then measure the cases in interleaved rounds (the machine is shared,
    so drift in background load spreads over all cases instead of biasing one); report the
    median round of each case."""
    notes = {
        "grpc-direct": "same RPC, grpc.aio client, mTLS",
        "bare-hop": "raw ASGI + the same gRPC call, no mapping",
        "gateway": "GET /v1/kitchens/{id} → GetKitchen, every span recorded",
        "gateway-unsampled": "same, OTEL_TRACES_SAMPLER=always_off (trace ids still propagated)",
        "asgi-echo": "raw ASGI, fixed JSON, no gRPC",
        "starlette-echo": "Starlette route, fixed JSON, no gRPC",
    }
    samples: dict[str, list[tuple[float, list[float]]]] = {case: [] for case in notes}
    # Server-process CPU per request: steadier than throughput on a shared machine.
    cpu: dict[str, list[float]] = {case: [] for case in notes}
    with tempfile.TemporaryDirectory() as folder:
        var_dir = pathlib.Path(folder) / "var"
        var_dir.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))},
            "CLEARHOUSE_VAR_DIR": str(var_dir),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos"), str(PROTOS)]),
        }
        me = [sys.executable, "-m", "tests.bench.bench_gateway"]
        async with contextlib.AsyncExitStack() as stack:
            backend_file = var_dir / "backend.port"
            backend_port, _backend_pid = await stack.enter_async_context(
                _process([*me, "backend", str(var_dir), str(backend_file)], backend_file, env)
            )
            backend = f"127.0.0.1:{backend_port}"
            measures: dict[str, Callable[[int], Awaitable[tuple[float, list[float]]]]] = {
                "grpc-direct": await _grpc_case(backend, var_dir)
            }
            ports: dict[str, tuple[int, int]] = {}
            for role in ("bare-hop", "asgi-echo", "starlette-echo"):
                port_file = var_dir / f"{role}.port"
                ports[role] = await stack.enter_async_context(
                    _process([*me, role, str(var_dir), str(port_file), backend], port_file, env)
                )
            gateway_env = {
                **env,
                "GATEWAY_PORT": "0",
                "GATEWAY_PAYMENTS_ADDRESS": backend,
                "GATEWAY_PACKAGES": '["gatewaytest.v1"]',
                "GATEWAY_PROTO_SOURCE_DIRS": f'["{PROTOS}"]',
                # The limiter stays on (its cost is measured); the rate just must not throttle.
                "GATEWAY_RATE_LIMIT": "1000000/second",
                "CLEARHOUSE_LOG_LEVEL": "WARNING",
            }
            for case, extra in (
                ("gateway", {}),
                ("gateway-unsampled", {"OTEL_TRACES_SAMPLER": "always_off"}),
            ):
                case_var = var_dir / case
                port_file = case_var / "run" / "gateway.port"
                # Each gateway has its own var/ (traces file) but the same certificates.
                shutil.copytree(var_dir / "certs", case_var / "certs", dirs_exist_ok=True)
                ports[case] = await stack.enter_async_context(
                    _process(
                        [sys.executable, "-m", "gateway"],
                        port_file,
                        {**gateway_env, **extra, "CLEARHOUSE_VAR_DIR": str(case_var)},
                    )
                )
            for case, (port, _pid) in ports.items():
                measures[case] = functools.partial(_http_case, port)
            for measure in measures.values():
                await measure(WARMUP_REQUESTS)
            per_round = max(200, MEASURED_REQUESTS // ROUNDS)
            for _ in range(ROUNDS):
                for case, measure in measures.items():
                    pid = ports[case][1] if case in ports else None
                    before = cpu_seconds(pid) if pid else 0.0
                    samples[case].append(await measure(per_round))
                    if pid:
                        cpu[case].append((cpu_seconds(pid) - before) / per_round * 1e6)
    rows: dict[str, Row] = {}
    cpu_us = {case: median(values) for case, values in cpu.items() if values}
    for case, runs in samples.items():
        rate, latencies = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
        note = notes[case] + (f"; server CPU {cpu_us[case]:.0f} µs/request" if case in cpu_us else "")
        rows[case] = summarize(SUITE, case, rate, latencies, note)
    for case in ("gateway", "gateway-unsampled"):
        row = rows[case]
        ratios = (
            f"throughput {row.rate / rows['bare-hop'].rate:.0%} of bare-hop, "
            f"{row.rate / rows['grpc-direct'].rate:.0%} of grpc-direct, "
            f"{row.rate / rows['asgi-echo'].rate:.0%} of asgi-echo; "
            f"CPU per request {cpu_us[case] / cpu_us['bare-hop']:.1f}x bare-hop's"
        )
        rows[case] = Row(
            row.suite, row.case, row.rate, row.unit, row.p50_ms, row.p99_ms, f"{row.note}; {ratios}"
        )
    return [rows[case] for case in notes]


# ---- Full payment lifecycles through REST -------------------------------------------------------

LIFECYCLES = int(os.environ.get("BENCH_GATEWAY_LIFECYCLES", "600"))
LIFECYCLE_CONCURRENCY = 32
CARD_JSON = (
    b'{"payment_method": {"card": '
    b'{"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}}'
)
RISK_LIFTED_JSON = (
    b'{"risk_settings": {"amount_threshold": 1000000000, "review_score": 100, "block_score": 100}}'
)


async def rest_lifecycles() -> Row:
    """Create + confirm (automatic capture) through the gateway, the whole stack as processes."""
    import json

    from tests.bench import bench_payments

    with tempfile.TemporaryDirectory() as folder:
        var_dir = pathlib.Path(folder) / "var"
        var_dir.mkdir()
        urls = {
            name: f"sqlite:///{var_dir / (name + '.db')}"
            for name in ("ledger", "vault", "provider", "payments")
        }
        async with bench_payments.processes(var_dir, urls) as running:
            env = bench_payments._env(var_dir)
            env.update(
                GATEWAY_PORT="0",
                GATEWAY_PAYMENTS_ADDRESS=running.address,
                GATEWAY_RATE_LIMIT="1000000/second",
                # Each lifecycle comes from its own customer address through a proxy: one address
                # for thousands of payments would (rightly) trip the risk rules' IP velocity.
                GATEWAY_TRUSTED_PROXY_COUNT="1",
            )
            port_file = var_dir / "run" / "gateway.port"
            async with _process([sys.executable, "-m", "gateway"], port_file, env) as (port, gateway_pid):
                setup = HttpConnection(*await asyncio.open_connection("127.0.0.1", port))
                admin = f"authorization: Bearer {bench_payments.ADMIN_KEY}\r\n"
                status, body = await setup.request(
                    "POST",
                    "/v1/merchants",
                    b'{"name": "Bench", "country": "US", "default_currency": "USD"}',
                    admin,
                )
                assert status == 200, body
                created = json.loads(body)
                merchant_id = created["merchant"]["id"]
                # As the payments benchmark does: lift the risk thresholds so one test card can pay
                # thousands of times without tripping the velocity rule.
                status, body = await setup.request(
                    "POST",
                    f"/v1/merchants/{merchant_id}",
                    RISK_LIFTED_JSON,
                    admin,
                )
                assert status == 200, body
                auth = f"authorization: Bearer {created['api_key']['secret']}\r\n"
                pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
                for _ in range(LIFECYCLE_CONCURRENCY):
                    pool.put_nowait(HttpConnection(*await asyncio.open_connection("127.0.0.1", port)))
                failures = 0
                last_failure = [""]

                async def lifecycle(index: int) -> None:
                    nonlocal failures
                    connection = await pool.get()
                    try:
                        amount = 1_000 + index % 100
                        address = f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"
                        customer = f"{auth}x-forwarded-for: {address}\r\n"
                        status, body = await connection.request(
                            "POST",
                            "/v1/payment_intents",
                            b'{"amount": %d, "currency": "USD"}' % amount,
                            customer,
                        )
                        if status != 200:
                            raise RuntimeError(f"create answered {status}: {body[:300]!r}")
                        intent_id = json.loads(body)["id"]
                        status, body = await connection.request(
                            "POST", f"/v1/payment_intents/{intent_id}/confirm", CARD_JSON, customer
                        )
                        if status != 200 or json.loads(body)["status"] != "CAPTURED":
                            failures += 1
                            last_failure[0] = f"{status} {body[:300]!r}"
                    finally:
                        pool.put_nowait(connection)

                await drive(lifecycle, total=20, concurrency=4)
                cpu_before = cpu_seconds(gateway_pid)
                rate, latencies = await drive(lifecycle, total=LIFECYCLES, concurrency=LIFECYCLE_CONCURRENCY)
                gateway_ms = (cpu_seconds(gateway_pid) - cpu_before) / max(1, len(latencies)) * 1000
        note = (
            f"create + confirm (automatic capture) over REST, SQLite, c={LIFECYCLE_CONCURRENCY}; "
            f"gateway CPU {gateway_ms:.2f} ms per lifecycle (2 requests)"
        )
        if failures:
            note += f"; {failures} not captured (last: {last_failure[0]})"
        return summarize(SUITE, "rest-lifecycle", rate, latencies, note)


async def run() -> list[Row]:
    """The read-path comparison, then full lifecycles through REST."""
    rows = await read_path()
    rows.append(await rest_lifecycles())
    return rows


if __name__ == "__main__":
    role_main(sys.argv[1:])

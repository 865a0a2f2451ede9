"""The gateway in front of the real payments service, both as real processes.

Ledger, vault and the provider simulator run in this test process (tests/support/stack.py);
payments runs as `python -m payments_svc` and the gateway as `python -m gateway`, each exporting
its spans to `var/traces/<service>.jsonl` (the chassis' default exporter). One HTTP request must
produce one trace whose gateway server span is the ancestor of the payments server span; the
REST walkthrough of DESIGN.md §2 must work; schemathesis fuzzes `/openapi.json` for 5xx and
schema violations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio

from tests.support.stack import ROOT, Stack, payments_process, running_stack, tools_channel, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

START_SECONDS_MAX = 60.0
TRACE_WAIT_SECONDS = 30.0
CARD_APPROVED = "4242424242424242"
SCHEMATHESIS_EXAMPLES = 8
SCHEMATHESIS_SECONDS_MAX = 600


class RealStack:
    """Handles to the running processes and an HTTP client for the gateway."""

    def __init__(self, stack: Stack, url: str, http: httpx.AsyncClient, payments_address: str) -> None:
        self.stack = stack
        self.url = url
        self.http = http
        self.payments_address = payments_address

    async def implemented_services(self) -> list[str]:
        """Payments services none of whose RPCs answers UNIMPLEMENTED (probed over gRPC).

        A service that payments has not implemented yet answers 501, which schemathesis would
        rightly call a server error; those are left out of fuzzing until they land.
        """
        from gateway.routes import load_services

        channel = tools_channel(self.stack.var_dir, self.payments_address)
        implemented = []
        try:
            for service in load_services(["clearhouse.payments.v1"]):
                answers = []
                for method in service.methods:
                    call = channel.unary_unary(f"/{service.full_name}/{method.name}")
                    try:
                        await call(b"", timeout=10, metadata=(("authorization", "Bearer sk_probe"),))
                        answers.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as error:
                        answers.append(error.code())
                if grpc.StatusCode.UNIMPLEMENTED not in answers:
                    implemented.append(service.name)
        finally:
            await channel.close()
        return implemented

    def admin(self, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.stack.admin_key}", **extra}

    async def merchant(self) -> tuple[str, str]:
        response = await self.http.post(
            "/v1/merchants",
            json={"name": f"Acme {secrets.token_hex(3)}", "country": "US", "default_currency": "USD"},
            headers=self.admin(),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["merchant"]["id"], body["api_key"]["secret"]


@contextlib.contextmanager
def gateway_process(env: dict[str, str], log_path: pathlib.Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_for_gateway(port_file: pathlib.Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + START_SECONDS_MAX
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with {process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                url = f"http://127.0.0.1:{int(port_file.read_text())}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        return url
            await asyncio.sleep(0.1)
    raise TimeoutError("the gateway did not become ready in time")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def real(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RealStack]:
    var_dir = tmp_path_factory.mktemp("var")
    async with running_stack(var_dir, start_payments=False) as stack:
        # Spans are batched; flush them every 50 ms so the trace test does not wait 5 s.
        payments_env = stack.payments_env(OTEL_BSP_SCHEDULE_DELAY="50")
        with payments_process(payments_env, var_dir / "payments.log") as payments:
            payments_port = await wait_for_port(payments_env, payments)
            gateway_env = {
                k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GATEWAY_", "CLEARHOUSE_"))
            }
            gateway_env.update(
                CLEARHOUSE_VAR_DIR=str(var_dir),
                CLEARHOUSE_ENV="test",
                PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}",
                GATEWAY_PORT="0",
                GATEWAY_PAYMENTS_ADDRESS=f"127.0.0.1:{payments_port}",
                GATEWAY_RATE_LIMIT="100000/second",
                OTEL_BSP_SCHEDULE_DELAY="50",
            )
            port_file = var_dir / "run" / "gateway.port"
            port_file.unlink(missing_ok=True)
            with gateway_process(gateway_env, var_dir / "gateway.log") as gateway:
                url = await wait_for_gateway(port_file, gateway)
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    yield RealStack(stack, url, http, f"127.0.0.1:{payments_port}")


# ---- Trace ------------------------------------------------------------------------------------


def _hex_id(value: str, length: int) -> str:
    """OTLP JSON ids: hex (the OTLP/JSON spec) or base64 (protobuf's generic JSON mapping)."""
    if len(value) == length and all(c in "0123456789abcdef" for c in value.lower()):
        return value.lower()
    import base64

    return base64.b64decode(value).hex()


def spans_of(path: pathlib.Path, trace_id: str) -> list[dict[str, Any]]:
    """Spans of `trace_id` in an OTLP-JSON lines file."""
    found: list[dict[str, Any]] = []
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        request = json.loads(line)
        for resource in request.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    if _hex_id(span["traceId"], 32) == trace_id:
                        span["spanIdHex"] = _hex_id(span["spanId"], 16)
                        parent = span.get("parentSpanId")
                        span["parentHex"] = _hex_id(parent, 16) if parent else ""
                        found.append(span)
    return found


async def test_one_request_is_one_trace_across_gateway_and_payments(real: RealStack) -> None:
    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    response = await real.http.post(
        "/v1/merchants",
        json={"name": "Traced", "country": "US", "default_currency": "USD"},
        headers=real.admin(traceparent=f"00-{trace_id}-{caller_span}-01"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["traceparent"].split("-")[1] == trace_id
    traces = real.stack.var_dir / "traces"
    deadline = time.monotonic() + TRACE_WAIT_SECONDS
    while True:
        gateway_spans = spans_of(traces / "gateway.jsonl", trace_id)
        payments_spans = spans_of(traces / "payments.jsonl", trace_id)
        server = [s for s in gateway_spans if s["name"] == "POST /v1/merchants"]
        payments_server = [s for s in payments_spans if s.get("kind") == "SPAN_KIND_SERVER"]
        if server and payments_server:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"spans not exported: gateway {gateway_spans}, payments {payments_spans}")
        await asyncio.sleep(0.1)
    gateway_server = server[0]
    assert gateway_server["parentHex"] == caller_span, "the gateway continues the caller's trace"
    route = {a["key"]: a["value"] for a in gateway_server["attributes"]}["http.route"]
    assert route == {"stringValue": "/v1/merchants"}
    by_id = {s["spanIdHex"]: s for s in gateway_spans + payments_spans}
    # Walk up from the payments server span: it must reach the gateway's server span.
    current = payments_server[0]
    chain = [current["name"]]
    while current["parentHex"] and current["parentHex"] in by_id:
        current = by_id[current["parentHex"]]
        chain.append(current["name"])
    assert current is gateway_server, chain
    assert len(chain) == 3, f"gateway server → gRPC client → payments server, got {chain}"


# ---- The REST walkthrough (DESIGN.md §2) ------------------------------------------------------


async def test_payment_walkthrough_over_rest(real: RealStack) -> None:
    merchant_id, secret = await real.merchant()
    auth = {"authorization": f"Bearer {secret}"}
    key = f"order-{secrets.token_hex(4)}"
    create = {
        "amount": 2500,
        "currency": "USD",
        "capture_method": "manual",
        "description": "Order 1",
        "metadata": {"order": "1"},
    }
    created = await real.http.post(
        "/v1/payment_intents", json=create, headers={**auth, "idempotency-key": key}
    )
    assert created.status_code == 200, created.text
    intent = created.json()
    assert intent["id"].startswith("pi_")
    assert intent["amount"] == "2500"
    assert intent["capture_method"] == "MANUAL"
    assert intent["status"] == "CREATED"
    assert "idempotent-replayed" not in created.headers

    replay = await real.http.post(
        "/v1/payment_intents", json=create, headers={**auth, "idempotency-key": key}
    )
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == intent

    reused = await real.http.post(
        "/v1/payment_intents", json={**create, "amount": 999}, headers={**auth, "idempotency-key": key}
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["details"][0]["reason"] == "IDEMPOTENCY_KEY_REUSED"

    card = {"number": CARD_APPROVED, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    confirmed = await real.http.post(
        f"/v1/payment_intents/{intent['id']}/confirm", json={"payment_method": {"card": card}}, headers=auth
    )
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "AUTHORIZED"
    assert body["payment_method"]["last4"] == "4242"
    assert CARD_APPROVED not in confirmed.text

    captured = await real.http.post(
        f"/v1/payment_intents/{intent['id']}/capture", json={"amount_to_capture": 2000}, headers=auth
    )
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "CAPTURED"
    assert captured.json()["amount_captured"] == "2000"

    fetched = await real.http.get(f"/v1/payment_intents/{intent['id']}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["merchant_id"] == merchant_id
    listed = await real.http.get("/v1/payment_intents", params={"limit": 10}, headers=auth)
    assert listed.status_code == 200
    page = listed.json()
    assert [i["id"] for i in page["data"]] == [intent["id"]]
    assert page["has_more"] is False

    balance = await real.http.get("/v1/balance", headers=auth)
    assert balance.status_code == 200, balance.text
    assert set(balance.json()) >= {"available", "pending"}


async def test_errors_from_payments_keep_their_reason(real: RealStack) -> None:
    _merchant_id, secret = await real.merchant()
    auth = {"authorization": f"Bearer {secret}"}
    missing = await real.http.get("/v1/payment_intents/pi_doesnotexist", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    anonymous = await real.http.get("/v1/payment_intents")
    assert anonymous.status_code == 401
    bad = await real.http.post("/v1/payment_intents", json={"amount": -5, "currency": "USD"}, headers=auth)
    assert bad.status_code == 400
    assert bad.json()["code"] == 3
    assert missing.headers["x-request-id"] and bad.headers["x-request-id"] != missing.headers["x-request-id"]


async def test_provider_webhook_raw_body_and_signature_reach_payments(real: RealStack) -> None:
    from chassis import signatures

    secret_file = real.stack.var_dir / "secrets" / "provider_a_webhook.key"
    assert secret_file.exists(), "payments creates the dev webhook secret at start-up"
    secret = secret_file.read_text().strip()
    # Raw bytes with odd spacing: the signature covers these exact bytes, so any re-encoding
    # between the gateway and payments would break it.
    body = b'{"id": "evt_%s",  "type": "test.ping", "data": {}}' % secrets.token_hex(4).encode()
    headers = {"content-type": "application/json", "provider-signature": signatures.sign(secret, body)}
    first = await real.http.post("/v1/provider_webhooks/provider_a", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    again = await real.http.post("/v1/provider_webhooks/provider_a", content=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    forged = await real.http.post(
        "/v1/provider_webhooks/provider_a",
        content=body,
        headers={**headers, "provider-signature": signatures.sign("not-the-secret", body)},
    )
    assert forged.status_code in {401, 403}, forged.text


# ---- Schemathesis against /openapi.json -------------------------------------------------------


@pytest.mark.parametrize("caller", ["platform-admin", "merchant"])
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    real: RealStack, caller: str
) -> None:
    """Bounded fuzzing of every implemented operation, as the platform admin and as a merchant."""
    if caller == "merchant":
        _merchant_id, key = await real.merchant()
    else:
        key = real.stack.admin_key
    schemathesis = pathlib.Path(sys.executable).parent / "schemathesis"
    args = [
        str(schemathesis),
        "run",
        f"{real.url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-deterministic",
        "--header",
        f"Authorization: Bearer {key}",
        "--no-color",
    ]
    implemented = await real.implemented_services()
    assert {"Merchants", "PaymentIntents"} <= set(implemented), implemented
    for tag in implemented:
        args += ["--include-tag", tag]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=real.stack.var_dir
    )
    output, _ = await asyncio.wait_for(process.communicate(), SCHEMATHESIS_SECONDS_MAX)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "Tested: 0" not in text, text[-3000:]

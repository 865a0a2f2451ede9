"""End to end: `make run`'s entry point in a scratch directory, the README's curl walkthrough, Ctrl-C.

1. `python -m chassis.runner` (what `make run` runs) starts all five processes on fresh SQLite
   files under a temporary var/, on free ports (tests/e2e/harness.py);
2. the README's walkthrough blocks, extracted from README.md, run in order in one bash process
   with the stack's gateway URL as `$CH` and the runner-generated `var/admin.key`;
3. every step's output is checked; a README step without a check here fails the test, so a new
   step cannot go unverified;
4. SIGINT stops the runner, which must exit 0 within a bound and leave no process alive;
5. a second start on the same directory keeps the data (the payment is still there).
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e import harness, walkthrough

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

README = harness.ROOT / "README.md"
SCRIPT_SECONDS_MAX = 300
APPROVED_PAN = "4242424242424242"
DECLINED_PAN = "4000000000000002"


def documents(text: str) -> list[dict[str, Any]]:
    """The JSON documents a step printed (one per line that is JSON)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def only(text: str) -> dict[str, Any]:
    found = documents(text)
    assert len(found) == 1, text
    return found[0]


def check_setup(out: str) -> None:
    assert only(out) == {"status": "ok"}


def check_create_merchant(out: str) -> None:
    body = only(out)
    assert body["merchant"]["id"].startswith("mch_")
    assert body["merchant"]["country"] == "US"
    assert body["api_key"]["secret"].startswith("sk_")
    assert (body["api_key"]["principal"], body["api_key"]["role"]) == ("owner", "ADMIN")


def check_create_key(out: str) -> None:
    body = only(out)
    assert body["secret"].startswith("sk_")
    assert (body["principal"], body["role"]) == ("bob", "OPERATOR")


def check_create_intent(out: str) -> None:
    body = only(out)
    assert body["id"].startswith("pi_")
    assert (body["status"], body["amount"], body["capture_method"]) == ("CREATED", "2500", "MANUAL")
    assert body["metadata"] == {"order": "1"}


def check_retry_intent(out: str) -> None:
    assert out.strip().lower() == "idempotent-replayed: true"


def check_confirm(out: str) -> None:
    body = only(out)
    assert body["status"] == "AUTHORIZED", body
    assert body["provider"] == "provider_a", "a US card routes to provider A"
    assert body["amount_capturable"] == "2500"
    assert body["payment_method"]["last4"] == "4242"
    assert body["payment_method"]["token"].startswith("tok_")
    assert APPROVED_PAN not in out


def check_capture(out: str) -> None:
    body = only(out)
    assert (body["status"], body["amount_captured"], body["amount_capturable"]) == ("CAPTURED", "2000", "0")
    assert body["fee_amount"] == str(2000 * 290 // 10_000 + 30)


def check_request_refund(out: str) -> None:
    body = only(out)
    assert body["id"].startswith("re_")
    assert (body["status"], body["amount"], body["requested_by"]) == ("PENDING_APPROVAL", "500", "bob")


def check_approve_refund(out: str) -> None:
    refused, approved = documents(out)
    assert refused["code"] == 7, refused  # PERMISSION_DENIED
    assert refused["details"][0]["reason"] == "REFUND_SELF_APPROVAL_FORBIDDEN"
    assert (approved["status"], approved["reviewed_by"]) == ("SUCCEEDED", "owner"), approved


def check_balance(out: str) -> None:
    body = only(out)
    fee = 2000 * 290 // 10_000 + 30
    assert body["pending"] == [{"amount": str(2000 - fee), "currency": "USD"}], body
    assert body["available"] == [{"amount": "-500", "currency": "USD"}], body


def check_decline(out: str) -> None:
    body = only(out)
    assert body["status"] == "DECLINED", body
    assert body["last_error"]["code"] == "card_declined"
    assert body["last_error"]["decline_code"] == "generic_decline"
    assert DECLINED_PAN not in out


def check_trace(out: str) -> None:
    match = re.search(r"^trace id: ([0-9a-f]{32})$", out, re.MULTILINE)
    assert match, out
    assert "var/traces/gateway.jsonl" in out.split()


CHECKS: dict[str, Callable[[str], None]] = {
    "setup": check_setup,
    "create-merchant": check_create_merchant,
    "create-key": check_create_key,
    "create-intent": check_create_intent,
    "retry-intent": check_retry_intent,
    "confirm": check_confirm,
    "capture": check_capture,
    "request-refund": check_request_refund,
    "approve-refund": check_approve_refund,
    "balance": check_balance,
    "decline": check_decline,
    "trace": check_trace,
}


def trace_ids_in(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            for resource in json.loads(line).get("resourceSpans", []):
                for scope in resource.get("scopeSpans", []):
                    found.update(span["traceId"] for span in scope.get("spans", []))
    return found


def test_readme_walkthrough_against_make_run(tmp_path: pathlib.Path) -> None:
    steps = walkthrough.steps(README)
    assert [s.name for s in steps] == list(CHECKS), "README walkthrough steps and their checks differ"
    workdir = tmp_path / "clearhouse"
    with harness.running(workdir) as stack:
        marker = stack.marker
        assert len(harness.processes_with_env(marker)) >= 6, "runner + five processes"
        assert stack.admin_key.startswith("sk_admin_")
        assert stack.admin_key in stack.output(), "make run prints the admin key"
        script = walkthrough.script(steps, epilogue='echo "@@vars $PI $KEY $TRACE"')
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=workdir,
            env={**stack.env, "CH": stack.gateway_url},
            capture_output=True,
            text=True,
            timeout=SCRIPT_SECONDS_MAX,
        )
        outputs = walkthrough.outputs(result.stdout)
        assert list(outputs) == list(CHECKS), f"not every step ran:\n{result.stdout}\n{result.stderr}"
        for name, check in CHECKS.items():
            body, status = outputs[name]
            assert status == 0, f"step {name} exited {status}:\n{body}\n{result.stderr}"
            try:
                check(body)
            except AssertionError as failure:
                raise AssertionError(f"README step {name!r}: {failure}\n{body}") from failure
        payment_id, merchant_key, trace_id = re.findall(r"^@@vars (\S+) (\S+) (\S+)$", result.stdout, re.M)[0]
        exit_code = stack.stop()
        assert exit_code == 0, stack.output()[-3000:]
        assert harness.processes_with_env(marker) == [], "processes left behind after Ctrl-C"
        assert stack.output().rstrip().endswith("stopped.")
    # Stopping flushed every process's spans: the README's request is one trace across both hops.
    traces = workdir / "var" / "traces"
    assert trace_id in trace_ids_in(traces / "gateway.jsonl")
    assert trace_id in trace_ids_in(traces / "payments.jsonl")
    for log in (workdir / "var" / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert APPROVED_PAN not in text and DECLINED_PAN not in text, log.name

    # A second start on the same directory reuses the data (and the same admin key).
    with harness.running(workdir) as again:
        response = httpx.get(
            f"{again.gateway_url}/v1/payment_intents/{payment_id}",
            headers={"authorization": f"Bearer {merchant_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["amount_refunded"]) == ("CAPTURED", "500")
        assert again.stop() == 0
        assert harness.processes_with_env(again.marker) == []

"""`make demo`: a realistic, seeded day of activity through the public REST API of a running stack.

Start the stack with `make run`, then in another terminal `make demo` (or
`python -m tools.demo --seed 7 --url http://127.0.0.1:8080`). Everything goes through the
gateway exactly as a merchant's and the platform's own tools would: no imports of services, no
database access. The day:

- two merchants, Acme Outdoor (US, USD) and Bergström Kaffee (DE, EUR), each with an owner key
  and an operator key (Bob), and a webhook endpoint served by this script (signatures verified);
- payments routed to both providers (US cards → A, German cards → B, a large foreign card → B by
  the amount rule), automatic and manual capture, one partial capture, one canceled
  authorization, declines (generic, insufficient funds, expired card);
- refunds requested by Bob: approved by the owner, and one rejected;
- a chargeback (test card 4000000000000259: the provider's signed webhook opens the dispute)
  won after evidence, and a dispute opened by the merchant and lost;
- settlement as of today, a payout per merchant, reconciliation of both providers' reports,
  provider A's with injected mismatches.

The seed decides every amount, card and choice, and is also given to both providers' failure
injection, so the same seed on a fresh stack plays the same day (ids and timestamps differ).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_SEED = 7
REQUEST_TIMEOUT_SECONDS = 30.0
# The chargeback webhook arrives ~1 s after capture; webhooks out are dispatched every second.
WAIT_SECONDS_MAX = 60.0
POLL_SECONDS = 0.25
SIGNATURE_TOLERANCE_SECONDS = 300
WEBHOOK_BODY_BYTES_MAX = 1024 * 1024
# Reconciliation of provider A is repeated with the next seeds until the report shows a mismatch
# (the injection is random per row); bounded.
MISMATCH_SEED_TRIES_MAX = 8
MISMATCH_RATE = 0.4
# Pages of events read when waiting for webhooks (100 each).
EVENT_PAGES_MAX = 20

# Deterministic test cards of the provider simulator (docs/provider-simulator.md).
CARD_GENERIC_DECLINE = "4000000000000002"
CARD_INSUFFICIENT_FUNDS = "4000000000009995"
CARD_EXPIRED = "4000000000000069"
CARD_CHARGEBACK = "4000000000000259"
# ISO 3166 numeric codes: `400000` + code + … is issued in that country (the vault's table).
COUNTRY_CODES = {"US": "840", "DE": "276", "BR": "076"}


def luhn_complete(partial: str) -> str:
    """`partial` plus the check digit that makes it pass Luhn."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return partial + str((10 - total % 10) % 10)


def card_from(country: str, rng: random.Random) -> str:
    """A fresh Visa number issued in `country` (the simulator answers it by its profile)."""
    return luhn_complete(f"400000{COUNTRY_CODES[country]}{rng.randrange(10**6):06d}")


@dataclasses.dataclass
class Delivery:
    """One webhook POST received by the demo's endpoint."""

    path: str
    event_id: str
    event_type: str
    signature_valid: bool
    traceparent: str


class WebhookReceiver:
    """A merchant's webhook endpoint on 127.0.0.1: verifies `Clearhouse-Signature`, records."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.secrets: dict[str, str] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0")), WEBHOOK_BODY_BYTES_MAX)
                body = self.rfile.read(length)
                receiver.record(self.path, body, self.headers)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the summary reports deliveries."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, path: str, body: bytes, headers: Any) -> None:
        """Verify the signature with the endpoint's secret and keep what arrived."""
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        secret = self.secrets.get(path, "")
        valid = bool(secret) and verify_signature(secret, body, headers.get("Clearhouse-Signature", ""))
        with self._lock:
            self.deliveries.append(
                Delivery(
                    path,
                    str(event.get("id", "")),
                    str(event.get("type", "")),
                    valid,
                    headers.get("traceparent", ""),
                )
            )

    def snapshot(self) -> list[Delivery]:
        """The deliveries so far."""
        with self._lock:
            return list(self.deliveries)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """Stripe-style `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, within the tolerance."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp = parts.get("t", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class DemoError(RuntimeError):
    """The stack answered something the demo did not expect."""


@dataclasses.dataclass
class Merchant:
    """A demo merchant and its two keys."""

    name: str
    id: str
    currency: str
    owner_key: str
    operator_key: str
    endpoint_id: str = ""


@dataclasses.dataclass
class DayResult:
    """What the day produced (the summary prints it; the trace-edge test inspects it)."""

    seed: int
    merchants: list[Merchant] = dataclasses.field(default_factory=list)
    intents: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    refunds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    disputes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    settlements: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    payouts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    reconciliations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    deliveries: list[Delivery] = dataclasses.field(default_factory=list)
    cards_used: set[str] = dataclasses.field(default_factory=set)
    cvcs_used: set[str] = dataclasses.field(default_factory=set)
    trace_ids: list[str] = dataclasses.field(default_factory=list)


class Demo:
    """One day against one gateway."""

    def __init__(self, url: str, admin_key: str, seed: int, log: Callable[[str], None] = print) -> None:
        self.http = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS)
        self.admin_key = admin_key
        self.rng = random.Random(seed)
        self.result = DayResult(seed)
        self.log = log
        self.receiver = WebhookReceiver()
        self.today = datetime.datetime.now(datetime.UTC).date().isoformat()

    # HTTP ------------------------------------------------------------------------------------
    def call(
        self, method: str, path: str, key: str, body: dict[str, Any] | None = None, expect: int = 200
    ) -> dict[str, Any]:
        """One request; fails loudly on an unexpected status."""
        response = self.http.request(
            method,
            path,
            json=body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"demo-{uuid.uuid4()}"}
            if method == "POST"
            else {"Authorization": f"Bearer {key}"},
        )
        traceparent = response.headers.get("traceparent", "")
        if traceparent.count("-") == 3:
            self.result.trace_ids.append(traceparent.split("-")[1])
        if response.status_code != expect:
            raise DemoError(f"{method} {path} → {response.status_code} {response.text[:500]}")
        data: dict[str, Any] = response.json()
        return data

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A call with the platform admin key."""
        return self.call(method, path, self.admin_key, body)

    # Steps -----------------------------------------------------------------------------------
    def seed_providers(self, seed: int) -> None:
        """Reset both simulators' random sequences to the seed, with no failures injected."""
        for provider in ("provider_a", "provider_b"):
            self.admin("POST", f"/v1/admin/providers/{provider}/failures", {"seed": seed})

    def merchant(self, name: str, country: str, currency: str) -> Merchant:
        """A merchant, Bob's operator key and a webhook endpoint on the receiver."""
        created = self.admin(
            "POST", "/v1/merchants", {"name": name, "country": country, "default_currency": currency}
        )
        owner = created["api_key"]["secret"]
        merchant_id = created["merchant"]["id"]
        bob = self.call(
            "POST", f"/v1/merchants/{merchant_id}/api_keys", owner, {"principal": "bob", "role": "OPERATOR"}
        )
        merchant = Merchant(name, merchant_id, currency, owner, bob["secret"])
        path = f"/hooks/{merchant_id}"
        endpoint = self.call(
            "POST",
            "/v1/webhook_endpoints",
            owner,
            {"url": self.receiver.base_url + path, "enabled_events": ["*"], "description": "demo receiver"},
        )
        self.receiver.secrets[path] = endpoint["secret"]
        merchant.endpoint_id = endpoint["id"]
        self.result.merchants.append(merchant)
        return merchant

    def pay(
        self,
        merchant: Merchant,
        card: str,
        amount: int,
        *,
        manual: bool = False,
        description: str = "",
    ) -> dict[str, Any]:
        """Create and confirm one payment intent (a decline is an answer, not an error)."""
        intent = self.call(
            "POST",
            "/v1/payment_intents",
            merchant.operator_key,
            {
                "amount": amount,
                "currency": merchant.currency,
                "capture_method": "MANUAL" if manual else "AUTOMATIC",
                "description": description,
                "metadata": {"order": f"{self.rng.randrange(10**6):06d}"},
            },
        )
        cvc = f"{self.rng.randrange(100, 1000)}"
        self.result.cards_used.add(card)
        self.result.cvcs_used.add(cvc)
        confirmed = self.call(
            "POST",
            f"/v1/payment_intents/{intent['id']}/confirm",
            merchant.operator_key,
            {"payment_method": {"card": {"number": card, "exp_month": 12, "exp_year": 2031, "cvc": cvc}}},
        )
        self.result.intents[confirmed["id"]] = confirmed
        return confirmed

    def capture(self, merchant: Merchant, intent_id: str, amount: int | None = None) -> dict[str, Any]:
        """Capture an authorization, fully or partially."""
        body = {} if amount is None else {"amount_to_capture": amount}
        captured = self.call("POST", f"/v1/payment_intents/{intent_id}/capture", merchant.operator_key, body)
        self.result.intents[intent_id] = captured
        return captured

    def wait_for(self, what: str, probe: Callable[[], Any]) -> Any:
        """Poll `probe` until it returns something truthy (bounded)."""
        deadline = time.monotonic() + WAIT_SECONDS_MAX
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            time.sleep(POLL_SECONDS)
        raise DemoError(f"gave up waiting for {what} after {WAIT_SECONDS_MAX:.0f} s")

    def refund(self, merchant: Merchant, intent_id: str, amount: int, approve: bool) -> dict[str, Any]:
        """Bob requests; the owner approves or rejects."""
        requested = self.call(
            "POST",
            "/v1/refunds",
            merchant.operator_key,
            {"payment_intent": intent_id, "amount": amount, "reason": "requested_by_customer"},
        )
        if approve:
            done = self.call("POST", f"/v1/refunds/{requested['id']}/approve", merchant.owner_key, {})
        else:
            done = self.call(
                "POST",
                f"/v1/refunds/{requested['id']}/reject",
                merchant.owner_key,
                {"reason": "item was not returned"},
            )
        self.result.refunds.append(done)
        return done

    def dispute_by_chargeback(self, merchant: Merchant) -> dict[str, Any]:
        """The chargeback card: the provider's signed webhook opens the dispute; it is won."""
        intent = self.pay(merchant, CARD_CHARGEBACK, 4200 + self.rng.randrange(100), description="Tent")
        if intent["status"] != "CAPTURED":
            raise DemoError(f"the chargeback card was not captured: {intent['status']}")

        def opened() -> dict[str, Any] | None:
            page = self.call("GET", f"/v1/disputes?payment_intent={intent['id']}", merchant.owner_key)
            return page["data"][0] if page["data"] else None

        dispute = self.wait_for("the chargeback webhook", opened)
        self.call(
            "POST",
            f"/v1/disputes/{dispute['id']}/evidence",
            merchant.owner_key,
            {"evidence": {"explanation": "Delivered, signed for.", "shipping_tracking_number": "1Z999AA1"}},
        )
        resolved = self.admin("POST", f"/v1/disputes/{dispute['id']}/resolve", {"outcome": "WON"})
        self.result.disputes.append(resolved)
        return resolved

    def dispute_lost(self, merchant: Merchant, intent_id: str) -> dict[str, Any]:
        """A dispute opened by the merchant (simulation) and lost."""
        opened = self.call(
            "POST", "/v1/disputes", merchant.owner_key, {"payment_intent": intent_id, "reason": "fraudulent"}
        )
        resolved = self.admin("POST", f"/v1/disputes/{opened['id']}/resolve", {"outcome": "LOST"})
        self.result.disputes.append(resolved)
        return resolved

    def settle_and_pay_out(self) -> None:
        """Settle everything captured today, then pay out half of each available balance."""
        run = self.admin("POST", "/v1/settlements/run", {"as_of": self.today})
        self.result.settlements.extend(run.get("settlements", []))
        for merchant in self.result.merchants:
            balance = self.call("GET", "/v1/balance", merchant.owner_key)
            available = sum(
                int(entry["amount"])
                for entry in balance.get("available", [])
                if entry["currency"] == merchant.currency
            )
            if available <= 0:
                self.log(f"  {merchant.name}: nothing available to pay out ({available})")
                continue
            payout = self.call(
                "POST",
                "/v1/payouts",
                merchant.owner_key,
                {"amount": available // 2, "currency": merchant.currency, "description": "daily payout"},
            )
            self.result.payouts.append(payout)

    def reconcile(self, seed: int) -> None:
        """Provider B's report as it is; provider A's with injected mismatches (bounded retries)."""
        self.result.reconciliations.append(
            self.admin("POST", "/v1/reconciliations", {"provider": "provider_b", "date": self.today})
        )
        report: dict[str, Any] = {}
        for attempt in range(MISMATCH_SEED_TRIES_MAX):
            self.admin(
                "POST",
                "/v1/admin/providers/provider_a/failures",
                {"seed": seed + attempt, "settlement_mismatch_rate": MISMATCH_RATE},
            )
            report = self.admin("POST", "/v1/reconciliations", {"provider": "provider_a", "date": self.today})
            if report.get("mismatch_count", 0) > 0:
                break
        self.admin("POST", "/v1/admin/providers/provider_a/failures", {"seed": seed})
        self.result.reconciliations.append(report)

    def events_of(self, merchant: Merchant) -> set[str]:
        """Ids of every event of `merchant` (pages of 100, bounded)."""
        found: set[str] = set()
        cursor = ""
        for _ in range(EVENT_PAGES_MAX):
            query = f"/v1/events?limit=100{'&starting_after=' + cursor if cursor else ''}"
            page = self.call("GET", query, merchant.owner_key)
            found.update(event["id"] for event in page["data"])
            if not page["has_more"] or not page["data"]:
                break
            cursor = page["data"][-1]["id"]
        return found

    def wait_for_webhooks(self) -> None:
        """Until the receiver has every event of every merchant (bounded)."""
        expected = set().union(*(self.events_of(m) for m in self.result.merchants))

        def complete() -> bool:
            received = {d.event_id for d in self.receiver.snapshot()}
            return expected <= received

        self.wait_for(f"{len(expected)} webhook deliveries", complete)
        self.result.deliveries = self.receiver.snapshot()

    # The day -----------------------------------------------------------------------------------
    def run(self) -> DayResult:
        """Play the day; returns what happened."""
        seed = self.result.seed
        self.log(f"Clearhouse demo day, seed {seed}, {self.today}")
        self.seed_providers(seed)
        acme = self.merchant("Acme Outdoor", "US", "USD")
        kaffee = self.merchant("Bergström Kaffee", "DE", "EUR")
        self.log(f"  merchants: {acme.name} {acme.id}, {kaffee.name} {kaffee.id}")

        # Acme: US cards go to provider A; a large Brazilian card goes to B (amount rule).
        acme_paid = [
            self.pay(acme, card_from("US", self.rng), self.rng.randrange(900, 9_000), description=item)
            for item in ("Headlamp", "Trail shoes", "Rain jacket", "Water filter", "Stove")
        ]
        self.pay(acme, card_from("BR", self.rng), 10_000 + self.rng.randrange(20_000), description="Kayak")
        self.pay(acme, card_from("BR", self.rng), self.rng.randrange(500, 2_000), description="Map")
        manual = self.pay(acme, card_from("US", self.rng), 4_800, manual=True, description="Backpack")
        if manual["status"] == "AUTHORIZED":
            self.capture(acme, manual["id"], 3_000 + self.rng.randrange(500))
        held = self.pay(acme, card_from("US", self.rng), 2_500, manual=True, description="Tent (held)")
        if held["status"] == "AUTHORIZED":
            canceled = self.call(
                "POST",
                f"/v1/payment_intents/{held['id']}/cancel",
                acme.operator_key,
                {"cancellation_reason": "requested_by_customer"},
            )
            self.result.intents[held["id"]] = canceled
        self.pay(acme, CARD_GENERIC_DECLINE, 3_100, description="Binoculars")
        self.pay(acme, CARD_INSUFFICIENT_FUNDS, 12_900, description="Canoe")

        # Bergström: German cards go to provider B.
        kaffee_paid = [
            self.pay(kaffee, card_from("DE", self.rng), self.rng.randrange(400, 6_000), description=item)
            for item in ("Espresso beans", "Grinder", "Filter papers", "Kettle")
        ]
        self.pay(kaffee, CARD_EXPIRED, 1_800, description="Milk frother")

        captured_acme = [p for p in acme_paid if p["status"] == "CAPTURED"]
        captured_kaffee = [p for p in kaffee_paid if p["status"] == "CAPTURED"]
        if len(captured_acme) < 3 or len(captured_kaffee) < 2:
            raise DemoError("too few approved payments for the rest of the day (another seed?)")
        self.refund(acme, captured_acme[0]["id"], int(captured_acme[0]["amount"]) // 2, approve=True)
        self.refund(acme, captured_acme[1]["id"], int(captured_acme[1]["amount"]), approve=False)
        self.refund(kaffee, captured_kaffee[0]["id"], 300, approve=True)

        self.dispute_by_chargeback(acme)
        self.dispute_lost(kaffee, captured_kaffee[1]["id"])
        self.dispute_lost(acme, captured_acme[2]["id"])

        self.settle_and_pay_out()
        self.reconcile(seed)
        self.wait_for_webhooks()
        for intent_id in list(self.result.intents):
            owner = acme if self.result.intents[intent_id]["merchant_id"] == acme.id else kaffee
            self.result.intents[intent_id] = self.call(
                "GET", f"/v1/payment_intents/{intent_id}", owner.owner_key
            )
        return self.result

    def close(self) -> None:
        """Stop the receiver, close the HTTP client."""
        self.receiver.close()
        self.http.close()


def summary(result: DayResult) -> str:
    """A human summary of the day."""
    lines = [f"\nThe day (seed {result.seed}):"]
    for merchant in result.merchants:
        mine = [i for i in result.intents.values() if i["merchant_id"] == merchant.id]
        statuses = collections.Counter(i["status"] for i in mine)
        providers = collections.Counter(i["provider"] or "-" for i in mine)
        declines = collections.Counter(
            i["last_error"]["decline_code"] or i["last_error"]["code"] for i in mine if i.get("last_error")
        )
        volume = sum(int(i["amount_captured"]) for i in mine)
        lines.append(f"  {merchant.name} ({merchant.id}), {merchant.currency}")
        lines.append(f"    payments  {len(mine)}: {dict(sorted(statuses.items()))}")
        lines.append(f"    providers {dict(sorted(providers.items()))}; captured {volume} minor units")
        lines.append(f"    declines  {dict(sorted(declines.items())) or '-'}")
    refunds = collections.Counter(r["status"] for r in result.refunds)
    disputes = collections.Counter(d["status"] for d in result.disputes)
    lines.append(f"  refunds     {dict(sorted(refunds.items()))}")
    lines.append(f"  disputes    {dict(sorted(disputes.items()))}")
    for settlement in result.settlements:
        lines.append(
            f"  settlement  {settlement['id']} {settlement['provider']} {settlement['currency']}: "
            f"{settlement['payment_count']} payments, net {settlement['net_amount']}"
        )
    for payout in result.payouts:
        lines.append(
            f"  payout      {payout['id']} {payout['amount']} {payout['currency']} {payout['status']}"
        )
    for report in result.reconciliations:
        results = collections.Counter(item["result"] for item in report.get("items", []))
        lines.append(
            f"  reconciled  {report['provider']} {report['date']}: {report['item_count']} items, "
            f"{report['mismatch_count']} mismatched {dict(sorted(results.items()))}"
        )
    valid = sum(1 for d in result.deliveries if d.signature_valid)
    types = collections.Counter(d.event_type for d in result.deliveries)
    lines.append(f"  webhooks    {len(result.deliveries)} received, {valid} with a valid signature")
    lines.append(f"              {dict(sorted(types.items()))}")
    if result.trace_ids:
        lines.append(f"  last trace  {result.trace_ids[-1]}  (grep it in var/traces/*.jsonl, or Jaeger)")
    return "\n".join(lines)


def admin_key_from(var_dir: pathlib.Path) -> str:
    """CLEARHOUSE_ADMIN_KEY, else the key `make run` generated into var/admin.key."""
    configured = os.environ.get("CLEARHOUSE_ADMIN_KEY")
    if configured:
        return configured
    path = var_dir / "admin.key"
    if not path.exists():
        raise SystemExit(f"no admin key: set CLEARHOUSE_ADMIN_KEY or start `make run` first ({path})")
    return path.read_text().strip()


def run_demo(url: str, admin_key: str, seed: int, log: Callable[[str], None] = print) -> DayResult:
    """Play one day against the gateway at `url`."""
    demo = Demo(url, admin_key, seed, log)
    try:
        return demo.run()
    finally:
        demo.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m tools.demo` (`make demo`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", DEFAULT_URL), help="gateway URL")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED", DEFAULT_SEED)))
    parser.add_argument(
        "--var-dir", type=pathlib.Path, default=pathlib.Path(os.environ.get("CLEARHOUSE_VAR_DIR", "var"))
    )
    args = parser.parse_args(argv)
    try:
        result = run_demo(args.url, admin_key_from(args.var_dir), args.seed)
    except (DemoError, httpx.HTTPError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    print(summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Settlement reports list exactly a day's captures and refunds, and exactly the injected mismatches."""

from __future__ import annotations

import csv
import datetime
import io
import pathlib

from clearhouse.provider.v1 import provider_pb2

from chassis.money import fee
from tests.integration.provider.conftest import Provider
from tests.integration.provider.test_authorize_and_lifecycle import authorize_request, capture, refund

DAY = datetime.date(2026, 3, 14)


def at(day: datetime.date, hour: int) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour), tzinfo=datetime.UTC)


async def activity(provider: Provider, name: str) -> dict[str, int]:
    """Captures and refunds on DAY (returned as merchant_reference -> signed amount) and around it."""
    expected: dict[str, int] = {}
    service = provider.service
    for index, (day, hour) in enumerate(
        [
            (DAY - datetime.timedelta(days=1), 23),
            *[(DAY, h) for h in range(0, 24, 3)],
            (DAY + datetime.timedelta(days=1), 0),
        ]
    ):
        service.clock = lambda day=day, hour=hour: at(day, hour)
        amount = 1_000 + 137 * index
        authorized = await provider.stub.Authorize(
            authorize_request("4242424242424242", amount=amount, provider=name), timeout=5
        )
        txn = (await provider.stub.Capture(capture(authorized.transaction), timeout=5)).transaction
        refunded = await provider.stub.Refund(refund(txn, 250), timeout=5)
        if day == DAY:
            expected[txn.reference] = amount
            expected[refunded.refund.reference] = -250
    # Authorized but never captured: nothing to settle.
    service.clock = lambda: at(DAY, 12)
    await provider.stub.Authorize(authorize_request("4242424242424242", provider=name), timeout=5)
    return expected


async def report(provider: Provider, name: str) -> provider_pb2.GenerateSettlementReportResponse:
    return await provider.stub.GenerateSettlementReport(
        provider_pb2.GenerateSettlementReportRequest(provider=name, date=DAY.isoformat()), timeout=10
    )


async def test_report_lists_exactly_the_days_captures_and_refunds(provider: Provider) -> None:
    expected = await activity(provider, "provider_a")
    result = await report(provider, "provider_a")
    assert {row.merchant_reference: row.amount for row in result.rows} == expected
    assert len(result.rows) == len(expected)
    assert not result.injected_mismatches
    for row in result.rows:
        if row.type == "capture":
            assert row.reference.startswith("txn_")
            assert row.fee == fee(row.amount, 290, 0)
        else:
            assert row.type == "refund" and row.reference.startswith("prf_") and row.fee == 0
        assert row.net == row.amount - row.fee
        assert row.currency == "USD" and row.merchant_id == "mch_test"
        assert row.settled_at.ToDatetime(tzinfo=datetime.UTC).date() == DAY
    parsed = list(csv.DictReader(io.StringIO(result.csv)))
    assert list(parsed[0]) == [
        "reference",
        "merchant_reference",
        "type",
        "amount",
        "currency",
        "fee",
        "net",
        "settled_at",
        "merchant_id",
    ]
    assert {r["merchant_reference"]: int(r["amount"]) for r in parsed} == expected
    path = pathlib.Path(result.path)
    assert path == provider.var_dir / "settlements" / f"provider_a-{DAY.isoformat()}.csv"
    assert path.read_text() == result.csv
    # Regenerating gives the same report; the other provider has nothing that day.
    assert (await report(provider, "provider_a")).csv == result.csv
    assert not (await report(provider, "provider_b")).rows


async def test_injected_mismatches_are_exactly_the_differences(provider: Provider) -> None:
    expected = await activity(provider, "provider_b")
    await provider.stub.ConfigureFailures(
        provider_pb2.ConfigureFailuresRequest(
            provider="provider_b", config=provider_pb2.FailureConfig(settlement_mismatch_rate=0.5, seed=11)
        ),
        timeout=5,
    )
    result = await report(provider, "provider_b")
    reported = {row.merchant_reference: row.amount for row in result.rows}
    differences = set()
    for reference, amount in expected.items():
        if reference not in reported:
            differences.add(("row_missing", reference, amount, 0))
        elif reported[reference] != amount:
            differences.add(("amount_changed", reference, amount, reported[reference]))
    for reference, amount in reported.items():
        if reference not in expected:
            differences.add(("extra_row", reference, 0, amount))
    injected = {
        (m.kind, m.merchant_reference, m.expected_amount, m.reported_amount)
        for m in result.injected_mismatches
    }
    assert injected == differences
    assert differences, "rate 0.5 over 16 rows with this seed injects differences"
    for row in result.rows:
        assert row.fee == (fee(row.amount, 250, 0) if row.type == "capture" else 0)
    # The same seed gives the same injected differences.
    again = await report(provider, "provider_b")
    assert [(m.kind, m.merchant_reference) for m in again.injected_mismatches] == [
        (m.kind, m.merchant_reference) for m in result.injected_mismatches
    ]


async def test_bad_date_is_refused(provider: Provider) -> None:
    from tests.integration.provider.test_authorize_and_lifecycle import rpc_error

    error = await rpc_error(
        provider.stub.GenerateSettlementReport(
            provider_pb2.GenerateSettlementReportRequest(provider="provider_a", date="14/03/2026"), timeout=5
        )
    )
    assert error.reason == "INVALID_DATE"

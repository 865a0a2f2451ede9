"""Pure settlement report: fees, order, CSV, and injected mismatches that are exactly the differences."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chassis.money import fee
from provider_sim.domain.settlement import CSV_HEADER, MismatchKind, RowType, SettledMovement, build_report

DAY = datetime.date(2026, 7, 1)


def movements(amounts: list[int]) -> list[SettledMovement]:
    start = datetime.datetime.combine(DAY, datetime.time(), tzinfo=datetime.UTC)
    return [
        SettledMovement(
            type=RowType.CAPTURE if index % 3 else RowType.REFUND,
            reference=f"txn_{index:04d}",
            merchant_reference=f"pi_{index:04d}",
            amount=amount,
            currency="EUR",
            merchant_id="mch_1",
            occurred_at=start + datetime.timedelta(minutes=index),
        )
        for index, amount in enumerate(amounts)
    ]


def test_rows_fees_and_csv_without_mismatches() -> None:
    report = build_report(
        movements([1000, 2000, 3000]),
        provider="provider_a",
        day=DAY,
        fee_basis_points=290,
        mismatch_rate=0,
        seed=1,
    )
    assert [row.amount for row in report.rows] == [-1000, 2000, 3000]
    assert report.rows[1].fee == fee(2000, 290, 0) == 58
    assert report.rows[0].fee == 0 and report.rows[0].net == -1000
    lines = report.to_csv().splitlines()
    assert lines[0] == ",".join(CSV_HEADER)
    assert lines[2].startswith("txn_0001,pi_0001,capture,2000,EUR,58,1942,2026-07-01T00:01:00.000000Z,mch_1")
    assert not report.mismatches


@settings(max_examples=40, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=1_000_000), max_size=40),
    rate=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_injected_mismatches_are_exactly_the_differences(amounts: list[int], rate: float, seed: int) -> None:
    given_movements = movements(amounts)
    truth = {
        m.merchant_reference: (m.amount if m.type is RowType.CAPTURE else -m.amount) for m in given_movements
    }
    report = build_report(
        given_movements, provider="provider_b", day=DAY, fee_basis_points=250, mismatch_rate=rate, seed=seed
    )
    reported = {row.merchant_reference: row.amount for row in report.rows}
    differences = {
        (MismatchKind.ROW_MISSING, ref, amount, 0) for ref, amount in truth.items() if ref not in reported
    }
    differences |= {
        (MismatchKind.AMOUNT_CHANGED, ref, amount, reported[ref])
        for ref, amount in truth.items()
        if ref in reported and reported[ref] != amount
    }
    differences |= {
        (MismatchKind.EXTRA_ROW, ref, 0, amount) for ref, amount in reported.items() if ref not in truth
    }
    assert {
        (m.kind, m.merchant_reference, m.expected_amount, m.reported_amount) for m in report.mismatches
    } == differences
    again = build_report(
        given_movements, provider="provider_b", day=DAY, fee_basis_points=250, mismatch_rate=rate, seed=seed
    )
    assert again == report
    for row in report.rows:
        assert row.amount != 0 and row.net == row.amount - row.fee


def test_rate_one_touches_every_row_and_kinds_all_occur() -> None:
    report = build_report(
        movements([500] * 60), provider="provider_a", day=DAY, fee_basis_points=290, mismatch_rate=1, seed=3
    )
    kinds = {m.kind for m in report.mismatches}
    assert kinds == set(MismatchKind)
    assert (
        len([m for m in report.mismatches if m.kind is not MismatchKind.EXTRA_ROW])
        + len([m for m in report.mismatches if m.kind is MismatchKind.EXTRA_ROW])
        == 60
    )


@pytest.mark.parametrize("rate", [0.0, 0.2])
def test_different_days_draw_independently(rate: float) -> None:
    first = build_report(
        movements([700] * 30),
        provider="provider_a",
        day=DAY,
        fee_basis_points=290,
        mismatch_rate=rate,
        seed=9,
    )
    other_day = build_report(
        movements([700] * 30),
        provider="provider_a",
        day=DAY + datetime.timedelta(days=1),
        fee_basis_points=290,
        mismatch_rate=rate,
        seed=9,
    )
    if rate == 0:
        assert not first.mismatches and not other_day.mismatches
    else:
        assert [m.merchant_reference for m in first.mismatches] != [
            m.merchant_reference for m in other_day.mismatches
        ]

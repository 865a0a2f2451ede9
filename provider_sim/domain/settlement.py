"""The acquirer's daily settlement report: rows, fees, CSV, and injected mismatches.

Mismatches are drawn from a random sequence seeded by (seed, provider, date), so the same
configuration and the same day's activity always produce the same report.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import enum
import io
import random

from chassis.money import fee

CSV_HEADER = (
    "reference",
    "merchant_reference",
    "type",
    "amount",
    "currency",
    "fee",
    "net",
    "settled_at",
    "merchant_id",
)
# One report never holds more rows than this (a day of the simulator's traffic fits easily).
REPORT_ROWS_MAX = 200_000
# An amount mismatch shifts the amount by 1..this many minor units (never to zero or below).
AMOUNT_SHIFT_MAX = 500
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class RowType(enum.StrEnum):
    """Kind of settled movement."""

    CAPTURE = "capture"
    REFUND = "refund"


class MismatchKind(enum.StrEnum):
    """Differences the simulator may inject."""

    AMOUNT_CHANGED = "amount_changed"
    ROW_MISSING = "row_missing"
    EXTRA_ROW = "extra_row"


@dataclasses.dataclass(frozen=True, slots=True)
class SettledMovement:
    """A capture or refund as recorded by the provider."""

    type: RowType
    # Provider transaction id (captures) or provider refund id (refunds).
    reference: str
    # Caller's reference: the payment intent (captures) or the refund (refunds).
    merchant_reference: str
    # Positive gross amount, minor units.
    amount: int
    currency: str
    merchant_id: str
    occurred_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ReportRow:
    """One CSV row; refunds carry negative amounts."""

    reference: str
    merchant_reference: str
    type: RowType
    amount: int
    currency: str
    fee: int
    net: int
    settled_at: datetime.datetime
    merchant_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Mismatch:
    """One difference injected on purpose."""

    kind: MismatchKind
    merchant_reference: str
    expected_amount: int
    reported_amount: int


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """A day's report: its rows (in order) and what was injected."""

    rows: tuple[ReportRow, ...]
    mismatches: tuple[Mismatch, ...]

    def to_csv(self) -> str:
        """The CSV, header first, RFC 3339 UTC timestamps."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for row in self.rows:
            writer.writerow(
                (
                    row.reference,
                    row.merchant_reference,
                    row.type.value,
                    row.amount,
                    row.currency,
                    row.fee,
                    row.net,
                    row.settled_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    row.merchant_id,
                )
            )
        return buffer.getvalue()


def row_for(movement: SettledMovement, amount: int, fee_basis_points: int) -> ReportRow:
    """The report row of a movement with gross `amount` (positive): fees apply to captures only."""
    if movement.type is RowType.CAPTURE:
        row_fee = fee(amount, fee_basis_points, 0)
        signed = amount
    else:
        # The acquirer keeps its fee on the original capture; a refund moves the gross back.
        row_fee = 0
        signed = -amount
    return ReportRow(
        reference=movement.reference,
        merchant_reference=movement.merchant_reference,
        type=movement.type,
        amount=signed,
        currency=movement.currency,
        fee=row_fee,
        net=signed - row_fee,
        settled_at=movement.occurred_at,
        merchant_id=movement.merchant_id,
    )


def _fake_id(prefix: str, rng: random.Random) -> str:
    return prefix + "_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(26))


def build_report(
    movements: list[SettledMovement],
    *,
    provider: str,
    day: datetime.date,
    fee_basis_points: int,
    mismatch_rate: float,
    seed: int,
) -> Report:
    """Rows of `movements` in time order, with mismatches injected at `mismatch_rate`."""
    ordered = sorted(movements, key=lambda m: (m.occurred_at, m.reference, m.merchant_reference))
    if len(ordered) > REPORT_ROWS_MAX:
        raise ValueError(f"a report holds at most {REPORT_ROWS_MAX} rows")
    rng = random.Random(f"{seed}:{provider}:{day.isoformat()}")
    rows: list[ReportRow] = []
    mismatches: list[Mismatch] = []
    kinds = tuple(MismatchKind)
    for movement in ordered:
        # Three draws per movement whatever happens, so one row's fate never shifts the next.
        hit, pick, shift_draw = rng.random(), rng.random(), rng.random()
        kind = kinds[min(int(pick * len(kinds)), len(kinds) - 1)] if hit < mismatch_rate else None
        true_row = row_for(movement, movement.amount, fee_basis_points)
        if kind is MismatchKind.ROW_MISSING:
            mismatches.append(Mismatch(kind, movement.merchant_reference, true_row.amount, 0))
            continue
        if kind is MismatchKind.AMOUNT_CHANGED:
            shift = 1 + int(shift_draw * AMOUNT_SHIFT_MAX)
            # Lower the amount when it can stay positive, else raise it.
            changed = movement.amount - shift if movement.amount > shift else movement.amount + shift
            row = row_for(movement, changed, fee_basis_points)
            rows.append(row)
            mismatches.append(Mismatch(kind, movement.merchant_reference, true_row.amount, row.amount))
            continue
        rows.append(true_row)
        if kind is MismatchKind.EXTRA_ROW:
            amount = 100 + int(shift_draw * 10_000)
            extra = SettledMovement(
                type=RowType.CAPTURE,
                reference=_fake_id("txn", rng),
                merchant_reference=_fake_id("pi", rng),
                amount=amount,
                currency=movement.currency,
                merchant_id=movement.merchant_id,
                occurred_at=movement.occurred_at,
            )
            extra_row = row_for(extra, amount, fee_basis_points)
            rows.append(extra_row)
            mismatches.append(Mismatch(kind, extra.merchant_reference, 0, extra_row.amount))
    return Report(rows=tuple(rows), mismatches=tuple(mismatches))

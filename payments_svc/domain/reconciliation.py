"""Reconciliation: the provider's settlement report against our records, per payment. Pure.

Each report row and each of our captures/refunds of the day is keyed by our reference (the
payment intent id, or the refund id); the comparison yields one item per key.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable


class Result(enum.StrEnum):
    """Outcome of one comparison (the proto's ReconciliationItem.Result names)."""

    MATCHED = "MATCHED"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    MISSING_FROM_REPORT = "MISSING_FROM_REPORT"
    MISSING_FROM_LEDGER = "MISSING_FROM_LEDGER"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"


@dataclasses.dataclass(frozen=True, slots=True)
class Movement:
    """A capture or refund as one side records it (refund amounts negative, as in the report)."""

    reference: str
    type: str
    amount: int
    currency: str
    merchant_id: str
    provider_reference: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One compared reference."""

    reference: str
    provider_reference: str
    type: str
    result: Result
    ledger_amount: int
    report_amount: int
    ledger_currency: str
    report_currency: str
    merchant_id: str


def compare(report: Iterable[Movement], ours: Iterable[Movement]) -> list[Item]:
    """Items sorted by reference: matched, amount or currency mismatch, missing on either side."""
    reported: dict[tuple[str, str], Movement] = {}
    for row in report:
        key = (row.type, row.reference)
        first = reported.get(key)
        # Several rows of one reference (partial captures) count as one sum.
        reported[key] = row if first is None else dataclasses.replace(first, amount=first.amount + row.amount)
    recorded = {(m.type, m.reference): m for m in ours}
    items: list[Item] = []
    for key in sorted(set(reported) | set(recorded), key=lambda k: (k[1], k[0])):
        found = reported.get(key)
        mine = recorded.get(key)
        if found is None:
            assert mine is not None
            result = Result.MISSING_FROM_REPORT
        elif mine is None:
            result = Result.MISSING_FROM_LEDGER
        elif found.currency != mine.currency:
            result = Result.CURRENCY_MISMATCH
        elif found.amount != mine.amount:
            result = Result.AMOUNT_MISMATCH
        else:
            result = Result.MATCHED
        items.append(
            Item(
                reference=key[1],
                provider_reference=(found.provider_reference if found else "")
                or (mine.provider_reference if mine else ""),
                type=key[0],
                result=result,
                ledger_amount=mine.amount if mine else 0,
                report_amount=found.amount if found else 0,
                ledger_currency=mine.currency if mine else "",
                report_currency=found.currency if found else "",
                merchant_id=(mine.merchant_id if mine else "") or (found.merchant_id if found else ""),
            )
        )
    return items

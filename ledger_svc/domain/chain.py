"""Tamper evidence: every committed batch is hashed together with the previous batch's hash.

`hash = sha256(previous_hash || canonical batch content)`. The content is built only from
immutable facts stored with the batch (accounts created, transfers created, ids refused, entries
written), so `VerifyChain` can recompute it from the database at any later time: editing,
inserting or deleting any of those rows breaks the link of its batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

from ledger_svc.domain.model import Account, Entry, Transfer, TransferResult

GENESIS_HASH = "0" * 64


@dataclasses.dataclass(frozen=True, slots=True)
class BatchContent:
    """The immutable facts of one committed batch."""

    batch_id: str
    created_at_us: int
    accounts: Sequence[Account]
    transfers: Sequence[Transfer]
    failures: Sequence[tuple[str, TransferResult | int]]
    # (entry sequence number, entry) in sequence order.
    entries: Sequence[tuple[int, Entry]]


def canonical(content: BatchContent) -> bytes:
    """Deterministic bytes of a batch: sorted, typed, whitespace-free JSON."""
    document = {
        "batch": content.batch_id,
        "at": content.created_at_us,
        "accounts": sorted(
            [
                account.id,
                account.currency,
                int(account.type),
                account.code,
                account.debits_must_not_exceed_credits,
                account.credits_must_not_exceed_debits,
                account.metadata,
                account.created_at_us,
            ]
            for account in content.accounts
        ),
        "transfers": sorted(
            [
                transfer.id,
                transfer.debit_account_id,
                transfer.credit_account_id,
                transfer.amount,
                transfer.currency,
                transfer.code,
                transfer.flags_bits,
                transfer.pending_id,
                transfer.timeout_seconds,
                transfer.expires_at_us,
                transfer.metadata,
                transfer.created_at_us,
            ]
            for transfer in content.transfers
        ),
        "failures": sorted([failed_id, int(result)] for failed_id, result in content.failures),
        "entries": [
            [
                sequence,
                entry.transfer_id,
                entry.account_id,
                int(entry.side),
                int(entry.kind),
                entry.amount,
                entry.balance_after,
            ]
            for sequence, entry in sorted(content.entries, key=lambda pair: pair[0])
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def batch_hash(previous_hash: str, content: BatchContent) -> str:
    """The batch's link in the chain (hex sha256)."""
    digest = hashlib.sha256()
    digest.update(previous_hash.encode())
    digest.update(canonical(content))
    return digest.hexdigest()

"""The pure engine and the chain hash, without a database."""

from __future__ import annotations

from ledger_svc.domain.chain import GENESIS_HASH, BatchContent, batch_hash
from ledger_svc.domain.engine import TransferEngine
from ledger_svc.domain.model import Account, AccountType, TransferRequest, TransferResult, TransferState

NOW_US = 1_700_000_000_000_000


def accounts() -> dict[str, Account]:
    def make(account_id: str, no_overdraft: bool = False) -> Account:
        return Account(account_id, "USD", AccountType.LIABILITY, 0, no_overdraft, False, {}, NOW_US)

    return {"a": make("a", no_overdraft=True), "b": make("b"), "c": make("c")}


def test_a_failed_chain_leaves_no_trace_but_the_breaker_is_burnt() -> None:
    state = accounts()
    engine = TransferEngine(state, {}, {}, NOW_US)
    results = engine.apply(
        [
            TransferRequest("t1", "b", "a", 10, linked=True),
            TransferRequest("t2", "a", "c", 5, pending=True, linked=True),
            TransferRequest("t3", "a", "c", 6),
        ]
    )
    assert results == [
        TransferResult.LINKED_EVENT_FAILED,
        TransferResult.LINKED_EVENT_FAILED,
        TransferResult.EXCEEDS_CREDITS,
    ]
    assert (state["a"].credits_posted, state["a"].debits_pending) == (0, 0)
    assert engine.changes.new_transfers == [] and engine.changes.entries == []
    assert engine.changes.failures == [("t3", TransferResult.EXCEEDS_CREDITS)]


def test_post_in_the_same_batch_and_expiry() -> None:
    state = accounts()
    engine = TransferEngine(state, {}, {}, NOW_US)
    results = engine.apply(
        [
            TransferRequest("fund", "b", "a", 100),
            TransferRequest("hold", "a", "c", 60, pending=True),
            TransferRequest("post", pending_id="hold", amount=20, post_pending_transfer=True),
            TransferRequest("hold2", "a", "c", 40, pending=True, timeout_seconds=1),
        ]
    )
    assert results == [TransferResult.OK] * 4
    assert (state["a"].debits_posted, state["a"].debits_pending, state["a"].balance) == (20, 40, 80)
    later = TransferEngine(state, {t.id: t for t in engine.changes.new_transfers}, {}, NOW_US + 1_000_000)
    assert later.expire(["hold", "hold2"]) == ["hold2"]
    assert state["a"].debits_pending == 0
    assert later.changes.updated_transfers["hold2"].state == TransferState.PENDING_EXPIRED


def test_the_chain_hash_changes_with_any_fact() -> None:
    engine = TransferEngine(accounts(), {}, {}, NOW_US)
    engine.apply([TransferRequest("t", "b", "c", 5)])
    entries = list(enumerate(engine.changes.entries, start=1))
    content = BatchContent("batch_1", NOW_US, [], engine.changes.new_transfers, [], entries)
    link = batch_hash(GENESIS_HASH, content)
    assert link == batch_hash(GENESIS_HASH, content)
    assert link != batch_hash("1" * 64, content)
    assert link != batch_hash(
        GENESIS_HASH, BatchContent("batch_1", NOW_US, [], engine.changes.new_transfers, [], entries[:1])
    )

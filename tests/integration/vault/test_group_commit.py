"""Group commit: concurrent calls share transactions, yet each gets its own result or error.

Grouping is made deterministic with a real lock: the test holds the access-log head (BEGIN
IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL) from its own connection, so the writer blocks on
its first operation while the next ones queue behind it; releasing the lock commits them as one
group. Both databases (the `database_url` fixture); two replicas share one database at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.vault.v1 import vault_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import ids
from tests.integration.vault.conftest import (
    CALL_TIMEOUT_SECONDS,
    Vault,
    VaultFactory,
    random_merchant,
    random_visa,
    remote,
)
from vault_svc.adapters.orm import access_log, access_log_head
from vault_svc.service_layer.handlers import VaultService

Entry = vault_pb2.AccessLogEntry
POLL_DEADLINE_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.01


def service_of(vault: Vault) -> VaultService:
    service = vault.running.definition.extras["service"]
    assert isinstance(service, VaultService)
    return service


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds (fails after a deadline)."""
    deadline = time.monotonic() + POLL_DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def head_held(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the access-log head lock from another connection until the block ends."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(
            sa.select(access_log_head.c.last_sequence).where(access_log_head.c.id == 1).with_for_update()
        )
        try:
            yield
        finally:
            await transaction.rollback()


async def one_group(
    vault: Vault, first: Callable[[], Awaitable[Any]], calls: list[Callable[[], Awaitable[Any]]]
) -> tuple[Any, list[Any], int]:
    """Run `first` (blocked on the held head), queue `calls` behind it, then release.

    Returns the result of `first`, the results (or errors) of `calls`, and how many transactions
    committed meanwhile (2 when `calls` shared one).
    """
    stats = service_of(vault).committer.stats
    taken, committed = stats.operations_taken, stats.groups_committed
    async with head_held(vault.engine):
        blocked = asyncio.ensure_future(first())
        await until(lambda: stats.operations_taken == taken + 1, "the writer to take the first call")
        queued = [asyncio.ensure_future(call()) for call in calls]
        committer = service_of(vault).committer
        await until(lambda: committer.pending == len(calls), "the queue to fill")
        assert not blocked.done()
    first_result = await blocked
    results = await asyncio.gather(*queued, return_exceptions=True)
    return first_result, results, stats.groups_committed - committed


async def log_tail(vault: Vault, count: int) -> list[vault_pb2.AccessLogEntry]:
    page = await vault.tools.ListAccessLog(
        vault_pb2.ListAccessLogRequest(limit=count), timeout=CALL_TIMEOUT_SECONDS
    )
    return list(reversed(page.data))


async def verify(vault: Vault) -> None:
    verified = await vault.tools.VerifyAccessLog(
        vault_pb2.VerifyAccessLogRequest(), timeout=CALL_TIMEOUT_SECONDS
    )
    assert verified.ok, verified.detail


def reveal_request(token: str, merchant: str, reference: str) -> vault_pb2.RevealCardRequest:
    return vault_pb2.RevealCardRequest(
        token=token,
        merchant_id=merchant,
        purpose=vault_pb2.RevealCardRequest.AUTHORIZATION,
        reference=reference,
    )


def tokenize_request(number: str, merchant: str, **card: Any) -> vault_pb2.TokenizeRequest:
    return vault_pb2.TokenizeRequest(
        card=vault_pb2.Card(number=number, exp_month=12, exp_year=2040, **card), merchant_id=merchant
    )


async def test_one_group_answers_every_caller_with_its_own_result_or_error(vault: Vault) -> None:
    merchant, other = random_merchant(), random_merchant()
    numbers = [random_visa() for _ in range(4)]
    stored = [await vault.tokenize(number, merchant, cvc="321") for number in numbers[:2]]
    foreign = await vault.tokenize(random_visa(), other)
    missing = ids.new_id("tok")
    p, t = vault.payments, vault.tools
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: p.Tokenize(tokenize_request(numbers[2], merchant, cvc="987"), timeout=CALL_TIMEOUT_SECONDS),
        lambda: p.RevealCard(reveal_request(stored[0].token, merchant, "r0"), timeout=CALL_TIMEOUT_SECONDS),
        lambda: p.RevealCard(reveal_request(foreign.token, merchant, "r1"), timeout=CALL_TIMEOUT_SECONDS),
        lambda: p.RevealCard(reveal_request(missing, merchant, "r2"), timeout=CALL_TIMEOUT_SECONDS),
        lambda: t.RevealCard(reveal_request(stored[1].token, merchant, "r3"), timeout=CALL_TIMEOUT_SECONDS),
        lambda: p.Tokenize(tokenize_request("4242424242424241", merchant), timeout=CALL_TIMEOUT_SECONDS),
        lambda: p.GetTokenMetadata(
            vault_pb2.GetTokenMetadataRequest(token=stored[1].token, merchant_id=merchant),
            timeout=CALL_TIMEOUT_SECONDS,
        ),
        lambda: p.Tokenize(tokenize_request(numbers[3], merchant), timeout=CALL_TIMEOUT_SECONDS),
        lambda: p.RevealCard(reveal_request(stored[1].token, merchant, "r4"), timeout=CALL_TIMEOUT_SECONDS),
    ]
    first, results, transactions = await one_group(
        vault,
        lambda: p.GetTokenMetadata(
            vault_pb2.GetTokenMetadataRequest(token=stored[0].token, merchant_id=merchant),
            timeout=CALL_TIMEOUT_SECONDS,
        ),
        calls,
    )
    assert first.token.cvc_held
    # The blocked call committed alone, then all the queued calls in ONE transaction.
    assert transactions == 2
    assert service_of(vault).committer.stats.largest_group >= len(calls)

    new_token, reveal_0, foreign_err, missing_err, tools_err, bad_card, metadata, new_token_2, reveal_1 = (
        results
    )
    assert isinstance(new_token, vault_pb2.TokenizeResponse) and new_token.token.cvc_held
    assert (reveal_0.card.number, reveal_0.card.cvc) == (numbers[0], "321")
    for error, code, reason in [
        (foreign_err, grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND"),
        (missing_err, grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND"),
        (tools_err, grpc.StatusCode.PERMISSION_DENIED, "REVEAL_NOT_PERMITTED"),
        (bad_card, grpc.StatusCode.INVALID_ARGUMENT, "CARD_INVALID"),
    ]:
        assert isinstance(error, grpc.aio.AioRpcError), error
        assert (remote(error).code, remote(error).reason) == (code, reason)
    assert metadata.token.last4 == numbers[1][-4:]
    assert new_token_2.token.last4 == numbers[3][-4:] and not new_token_2.token.cvc_held
    assert (reveal_1.card.number, reveal_1.card.cvc) == (numbers[1], "321")

    # One entry per call with its own outcome (calls of two channels may arrive in either
    # order), consecutive sequences, and the chain still verifies.
    tail = await log_tail(vault, len(calls) + 1)
    observed = sorted((e.action, e.outcome, e.actor_service) for e in tail)
    assert observed == sorted(
        [
            (Entry.GET_METADATA, Entry.ALLOWED, "payments"),
            (Entry.TOKENIZE, Entry.ALLOWED, "payments"),
            (Entry.REVEAL, Entry.ALLOWED, "payments"),
            (Entry.REVEAL, Entry.DENIED, "payments"),
            (Entry.REVEAL, Entry.FAILED, "payments"),
            (Entry.REVEAL, Entry.DENIED, "tools"),
            (Entry.TOKENIZE, Entry.FAILED, "payments"),
            (Entry.GET_METADATA, Entry.ALLOWED, "payments"),
            (Entry.TOKENIZE, Entry.ALLOWED, "payments"),
            (Entry.REVEAL, Entry.ALLOWED, "payments"),
        ]
    )
    sequences = [e.sequence for e in tail]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    # The tokens created in the group committed: they reveal afterwards, with their held CVC.
    later = await vault.reveal(new_token.token.token, merchant)
    assert (later.card.number, later.card.cvc) == (numbers[2], "987")
    await verify(vault)


async def test_dedupe_within_one_group_returns_the_token_staged_earlier_in_it(vault: Vault) -> None:
    merchant, number = random_merchant(), random_visa()
    request = vault_pb2.TokenizeRequest(
        card=vault_pb2.Card(number=number, exp_month=11, exp_year=2041), merchant_id=merchant, dedupe=True
    )
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: vault.payments.Tokenize(request, timeout=CALL_TIMEOUT_SECONDS) for _ in range(3)
    ]
    _, results, transactions = await one_group(
        vault,
        lambda: vault.payments.Tokenize(
            tokenize_request(random_visa(), merchant), timeout=CALL_TIMEOUT_SECONDS
        ),
        calls,
    )
    assert transactions == 2
    assert sorted(r.deduplicated for r in results) == [False, True, True]
    assert len({r.token.token for r in results}) == 1
    await verify(vault)


async def test_a_database_failure_in_a_group_fails_only_its_own_call(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    merchant = random_merchant()
    existing = await vault.tokenize(random_visa(), merchant)
    # The second token id drawn (the first queued call's) collides with a stored token: the
    # group's INSERT fails in the database, the group rolls back and each call is retried alone.
    drawn: list[str] = []

    def next_token_id() -> str:
        token = existing.token if len(drawn) == 1 else ids.new_id("tok")
        drawn.append(token)
        return token

    monkeypatch.setattr(VaultService, "_new_token_id", staticmethod(next_token_id))
    numbers = [random_visa() for _ in range(5)]
    stats = service_of(vault).committer.stats
    split_before = stats.groups_split
    first, results, transactions = await one_group(
        vault,
        lambda: vault.payments.Tokenize(
            tokenize_request(random_visa(), merchant), timeout=CALL_TIMEOUT_SECONDS
        ),
        [
            (lambda n=n: vault.payments.Tokenize(tokenize_request(n, merchant), timeout=CALL_TIMEOUT_SECONDS))
            for n in numbers
        ],
    )
    assert stats.groups_split == split_before + 1
    # The first call alone, then the four good calls each alone after the split.
    assert transactions == 1 + len(numbers) - 1
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], grpc.aio.AioRpcError)
    assert failures[0].code() == grpc.StatusCode.INTERNAL
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    assert len(succeeded) == len(numbers) - 1
    for reply in [*succeeded, first]:
        revealed = await vault.reveal(reply.token.token, merchant)
        assert revealed.card.number[-4:] == reply.token.last4
    # The colliding id still reveals its original card; only its own tokenize claims it.
    assert (await vault.reveal(existing.token, merchant)).card.number[-4:] == existing.last4
    async with vault.engine.connect() as connection:
        claims = (
            await connection.execute(
                sa.select(sa.func.count())
                .select_from(access_log)
                .where(access_log.c.token == existing.token, access_log.c.action == "TOKENIZE")
            )
        ).scalar_one()
    assert claims == 1
    await verify(vault)


PAIRS_PER_REPLICA = 40
PAIRS_IN_FLIGHT = 16


async def test_two_replicas_group_commit_concurrently_and_the_chain_verifies(
    vault_factory: VaultFactory,
) -> None:
    replicas = [await vault_factory(), await vault_factory()]
    merchant = random_merchant()
    semaphore = asyncio.Semaphore(PAIRS_IN_FLIGHT)

    async def pair(replica: Vault) -> None:
        number = random_visa()
        async with semaphore:
            meta = await replica.tokenize(number, merchant, cvc=str(random.randint(100, 999)))
            revealed = await replica.reveal(meta.token, merchant)
        assert revealed.card.number == number and revealed.card.cvc

    head_before = await log_tail(replicas[0], 1)
    start = head_before[-1].sequence if head_before else 0
    await asyncio.gather(*(pair(replica) for replica in replicas for _ in range(PAIRS_PER_REPLICA)))
    head_after = await log_tail(replicas[1], 1)
    assert head_after[-1].sequence == start + 2 * 2 * PAIRS_PER_REPLICA
    assert max(service_of(r).committer.stats.largest_group for r in replicas) > 1
    for replica in replicas:
        await verify(replica)

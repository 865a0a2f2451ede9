"""Failure injection through the real service: observed rates within tolerance, seeds reproducible."""

from __future__ import annotations

import asyncio
import collections

import grpc
import pytest
from clearhouse.provider.v1 import provider_pb2

from chassis import errors
from tests.integration.provider.conftest import Provider
from tests.integration.provider.test_authorize_and_lifecycle import authorize_request

CALLS = 2_000
CONCURRENCY = 16
# Absolute tolerance on an observed rate: over 4 standard deviations for p <= 0.15 at 2,000 calls.
RATE_TOLERANCE = 0.035


async def outcome(provider: Provider, request: provider_pb2.AuthorizeRequest) -> str:
    try:
        response = await provider.stub.Authorize(request, timeout=5)
    except grpc.aio.AioRpcError as error:
        remote = errors.from_rpc_error(error)
        assert remote.reason == "PROCESSING_ERROR"
        return "error"
    if response.transaction.status == provider_pb2.Transaction.Status.DECLINED:
        assert response.transaction.decline_code == "do_not_honor"
        return "decline"
    return "approve"


async def configure(provider: Provider, name: str = "provider_a", **config: float) -> None:
    await provider.stub.ConfigureFailures(
        provider_pb2.ConfigureFailuresRequest(provider=name, config=provider_pb2.FailureConfig(**config)),  # type: ignore[arg-type]
        timeout=5,
    )


async def test_observed_rates_match_the_configured_rates(provider: Provider) -> None:
    await configure(provider, decline_rate=0.15, error_rate=0.05, seed=20251122)
    requests = iter([authorize_request("4242424242424242") for _ in range(CALLS)])
    tally: collections.Counter[str] = collections.Counter()

    async def worker() -> None:
        for request in requests:
            tally[await outcome(provider, request)] += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    assert sum(tally.values()) == CALLS
    assert tally["decline"] / CALLS == pytest.approx(0.15, abs=RATE_TOLERANCE)
    assert tally["error"] / CALLS == pytest.approx(0.05, abs=RATE_TOLERANCE)
    state = await provider.stub.GetState(provider_pb2.GetStateRequest(provider="provider_a"), timeout=5)
    counters = state.providers[0].counters
    assert (counters.declines, counters.errors, counters.approvals) == (
        tally["decline"],
        tally["error"],
        tally["approve"],
    )
    assert state.providers[0].failures.decline_rate == pytest.approx(0.15)
    # The other provider is untouched by provider_a's configuration.
    other = await provider.stub.GetState(provider_pb2.GetStateRequest(provider="provider_b"), timeout=5)
    assert other.providers[0].counters.authorizations == 0
    assert other.providers[0].fee_basis_points == 250


async def test_the_same_seed_gives_the_same_sequence(provider: Provider) -> None:
    async def sequence(seed: int) -> list[str]:
        await configure(provider, decline_rate=0.3, error_rate=0.2, seed=seed)
        return [await outcome(provider, authorize_request("4242424242424242")) for _ in range(120)]

    first = await sequence(7)
    assert await sequence(7) == first
    assert set(first) == {"approve", "decline", "error"}
    assert await sequence(8) != first


async def test_injected_timeout_records_the_authorization(provider: Provider) -> None:
    await configure(provider, name="provider_b", timeout_rate=1.0, seed=1)
    request = authorize_request("4242424242424242", provider="provider_b")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.stub.Authorize(request, timeout=0.3)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    found = await provider.stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_b", reference=request.reference), timeout=5
    )
    assert found.transaction.status == provider_pb2.Transaction.Status.AUTHORIZED


async def test_invalid_configuration_is_refused_with_the_field(provider: Provider) -> None:
    for config in ({"error_rate": 1.5}, {"decline_rate": 0.6, "error_rate": 0.6}, {"latency_ms_min": 10}):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await configure(provider, **config)
        remote = errors.from_rpc_error(caught.value)
        assert remote.code is grpc.StatusCode.INVALID_ARGUMENT
        assert remote.field_violations and remote.field_violations[0].field.startswith("config.")

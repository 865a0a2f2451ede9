"""Property: any sequence of tokenize, rotate, rewrap, raise-minimum, delete and reveal keeps every
live token revealable to the right caller (payments, its own merchant) and to nobody else."""

from __future__ import annotations

import asyncio
import pathlib

import grpc
from clearhouse.vault.v1 import vault_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.vault.conftest import CALL_TIMEOUT_SECONDS, Vault, VaultFactory, luhn_complete

MERCHANTS = ("mch_propA", "mch_propB")
# Published test numbers of several brands (valid Luhn and lengths).
NUMBERS = (
    "4242424242424242",
    "5555555555554444",
    "2223003122003222",
    "378282246310005",
    "6011111111111117",
    "3566002020360505",
    "36227206271667",
    "6200000000000005",
    luhn_complete("400000276000318"),
)

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("tokenize"), st.integers(0, len(NUMBERS) * len(MERCHANTS) - 1)),
        st.tuples(st.just("rotate"), st.just(0)),
        st.tuples(st.just("rewrap"), st.integers(1, 4)),
        st.tuples(st.just("raise_min"), st.just(0)),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("reveal"), st.integers(0, 50)),
    ),
    min_size=3,
    max_size=14,
)


class Model:
    """What the vault should hold: token → (number, merchant), and the count below current."""

    def __init__(self, current: int, minimum: int) -> None:
        self.live: dict[str, tuple[str, str]] = {}
        self.deleted: set[str] = set()
        self.current = current
        self.minimum = minimum
        self.below = 0


async def expect_code(call: object, code: grpc.StatusCode) -> None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        assert error.code() is code, (error.code(), error.details())
        return
    raise AssertionError(f"expected {code}")


async def check_reveals(vault: Vault, model: Model) -> None:
    for token, (number, merchant) in model.live.items():
        reply = await vault.reveal(token, merchant)
        assert reply.card.number == number
        other = MERCHANTS[1 - MERCHANTS.index(merchant)]
        request = vault_pb2.RevealCardRequest(
            token=token, merchant_id=other, purpose=vault_pb2.RevealCardRequest.AUTHORIZATION
        )
        await expect_code(vault.payments.RevealCard(request), grpc.StatusCode.NOT_FOUND)
        request.merchant_id = merchant
        await expect_code(vault.tools.RevealCard(request), grpc.StatusCode.PERMISSION_DENIED)
    for token in model.deleted:
        await expect_code(
            vault.payments.RevealCard(
                vault_pb2.RevealCardRequest(token=token, purpose=vault_pb2.RevealCardRequest.AUTHORIZATION)
            ),
            grpc.StatusCode.NOT_FOUND,
        )


async def run_program(vault: Vault, program: list[Step]) -> None:
    # Start from a vault whose live tokens are all ours: shred the previous example's.
    status = await vault.tools.GetKeyStatus(vault_pb2.GetKeyStatusRequest(), timeout=CALL_TIMEOUT_SECONDS)
    live = await vault.tools.ListAccessLog(
        vault_pb2.ListAccessLogRequest(action=vault_pb2.AccessLogEntry.TOKENIZE, limit=1000)
    )
    for entry in live.data:
        await vault.tools.DeleteToken(vault_pb2.DeleteTokenRequest(token=entry.token))
    model = Model(status.current_version, status.min_decryption_version)
    for action, argument in program:
        if action == "tokenize":
            number = NUMBERS[argument % len(NUMBERS)]
            merchant = MERCHANTS[argument // len(NUMBERS)]
            meta = await vault.tokenize(number, merchant)
            assert meta.key_version == model.current
            model.live[meta.token] = (number, merchant)
        elif action == "rotate":
            reply = await vault.tools.RotateKey(vault_pb2.RotateKeyRequest())
            assert reply.current_version == model.current + 1
            model.current += 1
            model.below = len(model.live)
        elif action == "rewrap":
            reply = await vault.tools.RewrapTokens(vault_pb2.RewrapTokensRequest(batch_size=argument))
            assert reply.rewrapped == min(argument, model.below)
            model.below -= reply.rewrapped
            assert reply.remaining == model.below
        elif action == "raise_min":
            request = vault_pb2.SetMinDecryptionVersionRequest(min_decryption_version=model.current)
            if model.below:
                await expect_code(
                    vault.tools.SetMinDecryptionVersion(request), grpc.StatusCode.FAILED_PRECONDITION
                )
            else:
                await vault.tools.SetMinDecryptionVersion(request)
                model.minimum = model.current
        elif action == "delete" and model.live:
            token = sorted(model.live)[argument % len(model.live)]
            meta = await vault.payments.GetTokenMetadata(vault_pb2.GetTokenMetadataRequest(token=token))
            reply = await vault.payments.DeleteToken(vault_pb2.DeleteTokenRequest(token=token))
            assert reply.deleted
            if meta.token.key_version < model.current:
                model.below -= 1
            del model.live[token]
            model.deleted.add(token)
        elif action == "reveal" and model.live:
            token = sorted(model.live)[argument % len(model.live)]
            number, merchant = model.live[token]
            assert (await vault.reveal(token, merchant)).card.number == number
        status = await vault.tools.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
        assert status.current_version == model.current and status.min_decryption_version == model.minimum
        per_version = {v.version: v.records for v in status.versions}
        assert sum(per_version.values()) == len(model.live)
        assert sum(n for v, n in per_version.items() if v < model.current) == model.below
        assert all(n == 0 for v, n in per_version.items() if v < model.minimum)
    await check_reveals(vault, model)
    verified = await vault.tools.VerifyAccessLog(vault_pb2.VerifyAccessLogRequest())
    assert verified.ok, verified.detail


def test_rotation_keeps_every_live_token_revealable_to_the_right_caller_only(
    var_dir: pathlib.Path, database_url: str
) -> None:
    # One server for all examples, on its own event loop (hypothesis drives synchronous tests).
    with asyncio.Runner() as runner:
        factory = VaultFactory(var_dir, database_url)
        vault = runner.run(factory())
        try:

            @settings(
                max_examples=20,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            )
            @given(program=steps)
            def property_holds(program: list[Step]) -> None:
                runner.run(run_program(vault, program))

            property_holds()
        finally:
            runner.run(factory.close())

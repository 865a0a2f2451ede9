"""Hypothesis stateful test: random sequences against the real service and a pure-Python model.

Accounts, single / linked / pending / post / void transfers, expiries (the test moves the
service's clock) and exact retries. After every step the results, every balance and
CheckInvariants agree with the model; at the end the hash chain verifies.

The state machine is synchronous, so it runs in a worker thread and sends each call to the
test's event loop, where the real gRPC client and server live.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from clearhouse.ledger.v1 import ledger_pb2 as pb
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.integration.ledger.conftest import Ledger
from tests.integration.ledger.helpers import A, F, R, T
from tests.integration.ledger.model import LedgerModel, Spec

X = TypeVar("X")
MACHINE_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def to_proto(spec: Spec) -> pb.Transfer:
    return T(
        id=spec.id,
        debit_account_id=spec.debit,
        credit_account_id=spec.credit,
        amount=spec.amount,
        currency=spec.currency,
        pending_id=spec.pending_id,
        timeout_seconds=spec.timeout,
        flags=F(
            linked=spec.linked,
            pending=spec.pending,
            post_pending_transfer=spec.post,
            void_pending_transfer=spec.void,
        ),
    )


def make_machine(ledger: Ledger, loop: asyncio.AbstractEventLoop) -> type[RuleBasedStateMachine]:
    def call(invoke: Callable[[], Awaitable[X]]) -> X:
        # The gRPC call object must be created on the loop that owns the channel.
        async def run() -> X:
            return await invoke()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=60)

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.namespace = f"m{secrets.token_hex(5)}"
            self.model = LedgerModel()
            self.counter = 0
            self.history: list[list[Spec]] = []
            self.used_ids: list[str] = []

        def new_id(self) -> str:
            self.counter += 1
            return f"{self.namespace}-{self.counter}"

        @rule(
            kinds=st.lists(
                st.tuples(
                    st.sampled_from(["USD"] * 8 + ["EUR"]),
                    st.booleans(),
                    st.sampled_from(["none", "no_overdraft", "no_overcredit"]),
                ),
                min_size=1,
                max_size=3,
            )
        )
        def create_accounts(self, kinds: list[tuple[str, bool, str]]) -> None:
            messages = []
            for currency, debit_normal, flag in kinds:
                account_id = self.new_id()
                messages.append(
                    A(
                        id=account_id,
                        currency=currency,
                        type=A.ASSET if debit_normal else A.LIABILITY,
                        flags=pb.AccountFlags(
                            debits_must_not_exceed_credits=flag == "no_overdraft",
                            credits_must_not_exceed_debits=flag == "no_overcredit",
                        ),
                    )
                )
                self.model.add_account(
                    account_id, currency, debit_normal, flag == "no_overdraft", flag == "no_overcredit"
                )
            response = call(lambda: ledger.stub.CreateAccounts(pb.CreateAccountsRequest(accounts=messages)))
            assert [r.result for r in response.results] == [pb.CreateAccountResult.OK] * len(messages)
            # Fund the no-overdraft accounts so their limit (and the holds against it) matter.
            funding = [
                Spec(id=self.new_id(), debit=f"{self.namespace}-source-{m.currency}", credit=m.id, amount=60)
                for m in messages
                if m.flags.debits_must_not_exceed_credits
            ]
            if funding:
                self.send(funding)

        @initialize()
        def create_sources(self) -> None:
            sources = [A(id=f"{self.namespace}-source-{c}", currency=c, type=A.ASSET) for c in ("USD", "EUR")]
            for source in sources:
                self.model.add_account(source.id, source.currency, True, False, False)
            response = call(lambda: ledger.stub.CreateAccounts(pb.CreateAccountsRequest(accounts=sources)))
            assert [r.result for r in response.results] == [pb.CreateAccountResult.OK] * 2

        def draw_spec(self, data: st.DataObject) -> Spec:
            accounts = sorted(self.model.state.accounts)
            # Mostly real accounts; now and then one that does not exist.
            pick_account = st.sampled_from([*accounts * 8, f"{self.namespace}-ghost"])
            kind = data.draw(
                st.sampled_from(
                    ["plain"] * 3 + ["pending"] * 3 + ["post"] * 2 + ["void", "reuse", "fund", "fund"]
                )
            )
            guarded = [i for i in accounts if self.model.state.accounts[i]["no_overdraft"]]
            free = [i for i in accounts if not self.model.state.accounts[i]["no_overdraft"]]
            if kind == "fund" and guarded and free:
                # Give no-overdraft accounts money, so their limit (and pending holds) matter.
                return Spec(
                    id=self.new_id(),
                    debit=data.draw(st.sampled_from(free)),
                    credit=data.draw(st.sampled_from(guarded)),
                    amount=data.draw(st.integers(20, 100)),
                )
            if kind == "reuse" and self.used_ids:
                # Same id, new content: exists_with_different_fields or id_already_failed.
                return Spec(
                    id=data.draw(st.sampled_from(self.used_ids)),
                    debit=data.draw(pick_account),
                    credit=data.draw(pick_account),
                    amount=data.draw(st.integers(1, 50)),
                )
            if kind in ("post", "void"):
                every = self.model.pending_ids()
                still_open = [i for i in every if self.model.state.transfers[i]["state"] == "PENDING"]
                pendings = still_open if still_open and data.draw(st.integers(0, 3)) else every
                pending_id = (
                    data.draw(st.sampled_from(pendings))
                    if pendings and data.draw(st.integers(0, 19))
                    else "ghost"
                )
                pending_amount = self.model.state.transfers.get(pending_id, {}).get("amount", 10)
                return Spec(
                    id=self.new_id(),
                    amount=data.draw(st.integers(0, pending_amount + 5)) if kind == "post" else 0,
                    post=kind == "post",
                    void=kind == "void",
                    pending_id=pending_id,
                )
            # Debit guarded accounts often: that is where holds and limits interact.
            pick_debit = st.sampled_from(guarded) if guarded and data.draw(st.booleans()) else pick_account
            pending = kind == "pending"
            return Spec(
                id=self.new_id(),
                debit=data.draw(pick_debit),
                credit=data.draw(pick_account),
                amount=data.draw(st.integers(0, 60)),
                currency=data.draw(st.sampled_from([""] * 8 + ["USD", "EUR"])),
                pending=pending,
                timeout=data.draw(st.sampled_from([0, 0, 5, 30]))
                if pending
                else data.draw(st.sampled_from([0] * 9 + [5])),
            )

        @precondition(lambda self: len(self.model.state.accounts) >= 2)
        @rule(data=st.data(), size=st.integers(1, 4), link=st.sampled_from([0.0, 0.0, 0.0, 0.4, 0.8]))
        def create_transfers(self, data: st.DataObject, size: int, link: float) -> None:
            specs = [self.draw_spec(data) for _ in range(size)]
            specs = [Spec(**{**s.__dict__, "linked": data.draw(st.floats(0, 1)) < link}) for s in specs]
            # An open chain at the end is its own (rare) case; usually the chain is closed.
            if specs[-1].linked and data.draw(st.integers(0, 9)):
                specs[-1] = Spec(**{**specs[-1].__dict__, "linked": False})
            if data.draw(st.integers(0, 9)) == 0:
                specs.append(specs[0])  # duplicate id inside the batch
            self.send(specs)

        @precondition(lambda self: bool(self.history))
        @rule(data=st.data())
        def retry_a_previous_request(self, data: st.DataObject) -> None:
            self.send(data.draw(st.sampled_from(self.history)))

        @rule(seconds=st.sampled_from([1, 6, 31]))
        def time_passes_and_holds_expire(self, seconds: int) -> None:
            ledger.clock.advance(seconds)
            expected = self.model.expire(ledger.clock.now_us)
            released: set[str] = set()
            while True:
                response = call(
                    lambda: ledger.stub.ExpirePendingTransfers(pb.ExpirePendingTransfersRequest())
                )
                released |= set(response.expired_transfer_ids)
                if len(response.expired_transfer_ids) < 1000:
                    break
            assert {i for i in released if i.startswith(f"{self.namespace}-")} == expected

        def send(self, specs: list[Spec]) -> None:
            expected = self.model.create_transfers(specs, ledger.clock.now_us)
            response = call(
                lambda: ledger.stub.CreateTransfers(
                    pb.CreateTransfersRequest(transfers=[to_proto(s) for s in specs])
                )
            )
            assert [R.Name(r.result) for r in response.results] == expected, specs
            self.history.append(specs)
            self.used_ids.extend(s.id for s in specs)

        @invariant()
        def balances_and_invariants_agree(self) -> None:
            ids = sorted(self.model.state.accounts)
            if ids:
                response = call(lambda: ledger.stub.GetBalances(pb.GetBalancesRequest(account_ids=ids)))
                actual = {
                    b.account_id: (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending)
                    for b in response.balances
                }
                assert actual == {i: self.model.balance(i) for i in ids}
            report = call(lambda: ledger.stub.CheckInvariants(pb.CheckInvariantsRequest()))
            assert report.ok, list(report.violations)

    return LedgerMachine


async def test_random_histories_match_the_model(ledger: Ledger) -> None:
    machine = make_machine(ledger, asyncio.get_running_loop())
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=MACHINE_SETTINGS)
    chain = await ledger.stub.VerifyChain(pb.VerifyChainRequest())
    assert chain.ok, chain.detail

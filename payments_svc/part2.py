"""Wiring of part 2, called by `bootstrap.build` so that file stays small.

Refunds, disputes, webhooks, settlement, payouts, reconciliation.

Jobs added to `Admin.RunJob` and the worker loop: `relay_outbox` (replaced: it now fans events out
to webhook endpoints), `dispatch_webhooks`, `post_ledger`, `resolve_refunds`, `run_settlement`,
`process_payouts`, `export_breaker_states`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from payments_svc.adapters.bank import SimulatedBank
from payments_svc.adapters.ledger_client import LedgerClient
from payments_svc.adapters.ledger_reader import LedgerReader
from payments_svc.adapters.provider_money import ProviderMoneyClient
from payments_svc.adapters.webhook_sender import WebhookSender
from payments_svc.entrypoints import convert, convert_money
from payments_svc.entrypoints.grpc_servicer import App
from payments_svc.entrypoints.grpc_servicer_money import MoneyApp
from payments_svc.service_layer.disputes import DisputeService
from payments_svc.service_layer.idempotency import Idempotency
from payments_svc.service_layer.payment_metrics import export_breaker_states
from payments_svc.service_layer.payouts import PayoutService
from payments_svc.service_layer.postings import Postings
from payments_svc.service_layer.reconciliation import ReconciliationService
from payments_svc.service_layer.refunds import RefundService
from payments_svc.service_layer.settlement import SettlementService
from payments_svc.service_layer.webhooks import WebhookConfig, WebhookService
from payments_svc.settings import PaymentsSettings

RELAY_OUTBOX = "relay_outbox"
DISPATCH_WEBHOOKS = "dispatch_webhooks"
POST_LEDGER = "post_ledger"
RESOLVE_REFUNDS = "resolve_refunds"
RUN_SETTLEMENT = "run_settlement"
PROCESS_PAYOUTS = "process_payouts"
EXPORT_BREAKER_STATES = "export_breaker_states"
# A checker's claim on a refund covers one provider call and the local commit.
REFUND_LEASE_MARGIN_SECONDS = 5.0


def utc_now() -> datetime.datetime:
    """The service clock."""
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass
class Part2:
    """The part-2 handlers, their jobs and what to close at shutdown."""

    app: MoneyApp
    jobs: dict[str, Callable[[], Awaitable[int]]]
    sender: WebhookSender

    async def close(self) -> None:
        """Close the webhook HTTP pool."""
        await self.sender.close()


def build_part2(
    settings: PaymentsSettings,
    *,
    engine: AsyncEngine,
    idempotency: Idempotency,
    ledger: LedgerClient,
    app: App,
    ledger_channel: grpc.aio.Channel,
    provider_channel: grpc.aio.Channel,
) -> Part2:
    """Services, servicer app and jobs of part 2."""
    provider = ProviderMoneyClient(provider_channel, settings.provider_timeout_seconds)
    postings = Postings(engine, ledger, utc_now)
    sender = WebhookSender(settings.webhook_timeout_seconds, settings.webhook_allow_private_targets)
    refunds = RefundService(
        engine=engine,
        idempotency=idempotency,
        provider=provider,
        postings=postings,
        render_refund=convert_money.render_refund,
        render_intent=convert.render_intent,
        clock=utc_now,
        lease_seconds=settings.provider_timeout_seconds + REFUND_LEASE_MARGIN_SECONDS,
    )
    disputes = DisputeService(
        engine=engine,
        idempotency=idempotency,
        postings=postings,
        render_dispute=convert_money.render_dispute,
        render_intent=convert.render_intent,
        clock=utc_now,
        dispute_fee=settings.dispute_fee,
        provider_secrets=settings.resolved_provider_webhook_secrets(),
    )
    webhooks = WebhookService(
        engine=engine,
        idempotency=idempotency,
        sender=sender,
        render_delivery=convert_money.render_delivery,
        clock=utc_now,
        config=WebhookConfig(
            retry_scale=settings.webhook_retry_scale,
            allow_private_targets=settings.webhook_allow_private_targets,
            timeout_seconds=settings.webhook_timeout_seconds,
        ),
    )
    settlements = SettlementService(
        engine=engine,
        idempotency=idempotency,
        postings=postings,
        render_settlement=convert_money.render_settlement,
        render_intent=convert.render_intent,
        clock=utc_now,
        delay_days=settings.settlement_delay_days,
    )
    payouts = PayoutService(
        engine=engine,
        idempotency=idempotency,
        ledger=ledger,
        bank=SimulatedBank(),
        postings=postings,
        render_payout=convert_money.render_payout,
        clock=utc_now,
    )
    reconciliations = ReconciliationService(
        engine=engine,
        idempotency=idempotency,
        provider=provider,
        ledger=LedgerReader(ledger_channel, settings.dependency_timeout_seconds),
        render=convert_money.render_reconciliation,
        clock=utc_now,
    )
    money = MoneyApp(
        app=app,
        refunds=refunds,
        disputes=disputes,
        webhooks=webhooks,
        settlements=settlements,
        payouts=payouts,
        reconciliations=reconciliations,
    )
    jobs: dict[str, Callable[[], Awaitable[int]]] = {
        RELAY_OUTBOX: webhooks.relay_outbox,
        DISPATCH_WEBHOOKS: webhooks.dispatch,
        POST_LEDGER: postings.post_pending,
        RESOLVE_REFUNDS: refunds.resolve_stalled,
        RUN_SETTLEMENT: settlements.run_scheduled,
        PROCESS_PAYOUTS: payouts.process,
        EXPORT_BREAKER_STATES: lambda: export_breaker_states(app.board),
    }
    return Part2(app=money, jobs=jobs, sender=sender)

"""A small, deliberately naive pure-Python model of the ledger for the stateful test.

It is written independently of `ledger_svc.domain`: state is plain dicts, linked chains roll
back by deep-copying the whole state, and every rule is spelled out in one function, in the
order the contract documents them.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

INT64_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Spec:
    """One transfer as the test sends it."""

    id: str
    debit: str = ""
    credit: str = ""
    amount: int = 0
    currency: str = ""
    linked: bool = False
    pending: bool = False
    post: bool = False
    void: bool = False
    pending_id: str = ""
    timeout: int = 0


@dataclasses.dataclass
class ModelState:
    accounts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    transfers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    failed: set[str] = dataclasses.field(default_factory=set)


class LedgerModel:
    def __init__(self) -> None:
        self.state = ModelState()

    def add_account(
        self, account_id: str, currency: str, debit_normal: bool, no_overdraft: bool, no_overcredit: bool
    ) -> None:
        self.state.accounts[account_id] = {
            "currency": currency,
            "debit_normal": debit_normal,
            "no_overdraft": no_overdraft,
            "no_overcredit": no_overcredit,
            "dp": 0,
            "cp": 0,
            "dpend": 0,
            "cpend": 0,
        }

    def balance(self, account_id: str) -> tuple[int, int, int, int]:
        a = self.state.accounts[account_id]
        return a["dp"], a["cp"], a["dpend"], a["cpend"]

    # -- transfers ---------------------------------------------------------------------------------

    def create_transfers(self, specs: list[Spec], now_us: int) -> list[str]:
        results = [""] * len(specs)
        seen: set[str] = set()
        for i, spec in enumerate(specs):
            if spec.id in seen:
                results[i] = "DUPLICATE_ID_IN_BATCH"
            seen.add(spec.id)
        i = 0
        while i < len(specs):
            j = i
            while specs[j].linked and j < len(specs) - 1:
                j += 1
            if specs[j].linked:  # open chain at the end of the batch
                for k in range(i, j + 1):
                    results[k] = results[k] or "LINKED_EVENT_FAILED"
                results[j] = "LINKED_EVENT_CHAIN_OPEN"
                break
            saved = copy.deepcopy(self.state)
            breaker = -1
            for k in range(i, j + 1):
                results[k] = results[k] or self._one(specs[k], now_us)
                if results[k] not in ("OK", "EXISTS"):
                    breaker = k
                    break
            if breaker >= 0:
                if j > i:
                    self.state = saved
                    for k in range(i, j + 1):
                        if k != breaker:
                            results[k] = "LINKED_EVENT_FAILED"
                if results[breaker] not in _NOT_BURNT:
                    self.state.failed.add(specs[breaker].id)
            i = j + 1
        return results

    def _one(self, t: Spec, now_us: int) -> str:
        s = self.state
        if t.id in s.transfers:
            return "EXISTS" if self._same(s.transfers[t.id], t) else "EXISTS_WITH_DIFFERENT_FIELDS"
        if t.id in s.failed:
            return "ID_ALREADY_FAILED"
        if t.pending + t.post + t.void > 1:
            return "FLAGS_ARE_MUTUALLY_EXCLUSIVE"
        if t.post or t.void:
            if not t.pending_id:
                return "PENDING_ID_REQUIRED"
            if t.timeout:
                return "INVALID_TIMEOUT"
            if t.amount < 0:
                return "AMOUNT_MUST_BE_POSITIVE"
            if t.debit and t.debit == t.credit:
                return "ACCOUNTS_MUST_BE_DIFFERENT"
            return self._resolve(t, now_us)
        if t.pending_id:
            return "PENDING_ID_MUST_BE_EMPTY"
        if t.timeout < 0 or (t.timeout and not t.pending):
            return "INVALID_TIMEOUT"
        if t.debit and t.debit == t.credit:
            return "ACCOUNTS_MUST_BE_DIFFERENT"
        if t.amount <= 0:
            return "AMOUNT_MUST_BE_POSITIVE"
        if t.debit not in s.accounts:
            return "DEBIT_ACCOUNT_NOT_FOUND"
        if t.credit not in s.accounts:
            return "CREDIT_ACCOUNT_NOT_FOUND"
        d, c = s.accounts[t.debit], s.accounts[t.credit]
        if d["currency"] != c["currency"] or (t.currency and t.currency != d["currency"]):
            return "CURRENCY_MISMATCH"
        if d["dp"] + d["dpend"] + t.amount > INT64_MAX or c["cp"] + c["cpend"] + t.amount > INT64_MAX:
            return "OVERFLOW"
        if d["no_overdraft"] and d["dp"] + d["dpend"] + t.amount > d["cp"]:
            return "EXCEEDS_CREDITS"
        if c["no_overcredit"] and c["cp"] + c["cpend"] + t.amount > c["dp"]:
            return "EXCEEDS_DEBITS"
        if t.pending:
            d["dpend"] += t.amount
            c["cpend"] += t.amount
        else:
            d["dp"] += t.amount
            c["cp"] += t.amount
        s.transfers[t.id] = {
            "spec": t,
            "debit": t.debit,
            "credit": t.credit,
            "amount": t.amount,
            "currency": d["currency"],
            "state": "PENDING" if t.pending else "POSTED",
            "expires_at_us": now_us + t.timeout * 1_000_000 if t.pending and t.timeout else 0,
        }
        return "OK"

    def _resolve(self, t: Spec, now_us: int) -> str:
        s = self.state
        p = s.transfers.get(t.pending_id)
        if p is None:
            return "PENDING_TRANSFER_NOT_FOUND"
        if not p["spec"].pending:
            return "PENDING_TRANSFER_NOT_PENDING"
        if p["state"] == "PENDING_POSTED":
            return "PENDING_TRANSFER_ALREADY_POSTED"
        if p["state"] == "PENDING_VOIDED":
            return "PENDING_TRANSFER_ALREADY_VOIDED"
        if p["state"] == "PENDING_EXPIRED" or (p["expires_at_us"] and p["expires_at_us"] <= now_us):
            return "PENDING_TRANSFER_EXPIRED"
        if (t.debit and t.debit != p["debit"]) or (t.credit and t.credit != p["credit"]):
            return "PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS"
        if t.currency and t.currency != p["currency"]:
            return "CURRENCY_MISMATCH"
        if t.amount > p["amount"]:
            return "AMOUNT_EXCEEDS_PENDING_AMOUNT"
        d, c = s.accounts[p["debit"]], s.accounts[p["credit"]]
        d["dpend"] -= p["amount"]
        c["cpend"] -= p["amount"]
        amount = t.amount or p["amount"]
        if t.post:
            d["dp"] += amount
            c["cp"] += amount
            p["state"] = "PENDING_POSTED"
        else:
            p["state"] = "PENDING_VOIDED"
        s.transfers[t.id] = {
            "spec": t,
            "debit": p["debit"],
            "credit": p["credit"],
            "amount": amount if t.post else p["amount"],
            "currency": p["currency"],
            "state": "POSTED" if t.post else "VOID",
            "expires_at_us": 0,
        }
        return "OK"

    @staticmethod
    def _same(stored: dict[str, Any], t: Spec) -> bool:
        sent: Spec = stored["spec"]
        resolves = sent.post or sent.void
        return (
            t.debit in ("", stored["debit"])
            and t.credit in ("", stored["credit"])
            and (t.amount == stored["amount"] or (t.amount == 0 and resolves))
            and t.currency in ("", stored["currency"])
            and (t.linked, t.pending, t.post, t.void, t.pending_id, t.timeout)
            == (sent.linked, sent.pending, sent.post, sent.void, sent.pending_id, sent.timeout)
        )

    # -- expiry ------------------------------------------------------------------------------------

    def expire(self, now_us: int) -> set[str]:
        released = set()
        for transfer_id, p in self.state.transfers.items():
            if p["state"] == "PENDING" and p["expires_at_us"] and p["expires_at_us"] <= now_us:
                self.state.accounts[p["debit"]]["dpend"] -= p["amount"]
                self.state.accounts[p["credit"]]["cpend"] -= p["amount"]
                p["state"] = "PENDING_EXPIRED"
                released.add(transfer_id)
        return released

    def pending_ids(self) -> list[str]:
        return [i for i, t in self.state.transfers.items() if t["spec"].pending]


_NOT_BURNT = {
    "OK",
    "EXISTS",
    "EXISTS_WITH_DIFFERENT_FIELDS",
    "ID_ALREADY_FAILED",
    "INVALID_ID",
    "DUPLICATE_ID_IN_BATCH",
    "LINKED_EVENT_FAILED",
    "LINKED_EVENT_CHAIN_OPEN",
}

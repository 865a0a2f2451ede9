"""Routing rules of DESIGN.md §3. Pure: the caller supplies the circuit breakers' answers.

First match wins: the preferred provider (while its circuit allows) → country rules (DE, FR, GB,
JP → B; US, CA, AU → A) → amount threshold (≥ 10,000 minor units → B) → default (A); when the
chosen provider's circuit is open, fail over to the other.
"""

from __future__ import annotations

import dataclasses
import enum

from payments_svc.domain.payments import PROVIDER_A, PROVIDER_B

COUNTRY_RULES: dict[str, str] = {
    "DE": PROVIDER_B,
    "FR": PROVIDER_B,
    "GB": PROVIDER_B,
    "JP": PROVIDER_B,
    "US": PROVIDER_A,
    "CA": PROVIDER_A,
    "AU": PROVIDER_A,
}
# Amounts at or above this many minor units go to provider B (when no country rule matched).
AMOUNT_THRESHOLD = 10_000
DEFAULT_PROVIDER = PROVIDER_A


class Rule(enum.StrEnum):
    """Which rule chose the provider."""

    PREFERRED = "preferred"
    COUNTRY = "country"
    AMOUNT = "amount"
    DEFAULT = "default"
    FAILOVER = "failover"


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A provider to try, and the rule that named it."""

    provider: str
    rule: Rule


def other(provider: str) -> str:
    """The other provider."""
    return PROVIDER_B if provider == PROVIDER_A else PROVIDER_A


def rule_choice(country: str, amount: int) -> Candidate:
    """The provider the rules pick, ignoring preference and breakers."""
    by_country = COUNTRY_RULES.get(country.upper())
    if by_country is not None:
        return Candidate(by_country, Rule.COUNTRY)
    if amount >= AMOUNT_THRESHOLD:
        return Candidate(PROVIDER_B, Rule.AMOUNT)
    return Candidate(DEFAULT_PROVIDER, Rule.DEFAULT)


def candidates(preferred: str, country: str, amount: int) -> list[Candidate]:
    """Providers in the order to ask their breakers: preferred, the rules' choice, failover.

    The caller takes the first whose circuit allows a call; asking lazily matters because a
    half-open breaker hands out a limited number of trial calls.
    """
    chosen = rule_choice(country, amount)
    ordered: list[Candidate] = []
    if preferred:
        ordered.append(Candidate(preferred, Rule.PREFERRED))
    if chosen.provider != preferred:
        ordered.append(chosen)
    failover = other(chosen.provider)
    if all(c.provider != failover for c in ordered):
        ordered.append(Candidate(failover, Rule.FAILOVER))
    return ordered

"""The simulated bank that receives payouts (DESIGN.md §3: account 000111111116 fails)."""

from __future__ import annotations

import dataclasses

FAILING_ACCOUNT = "000111111116"


@dataclasses.dataclass(frozen=True, slots=True)
class BankResult:
    """The bank's answer to a transfer."""

    paid: bool
    failure_code: str = ""
    failure_message: str = ""


class SimulatedBank:
    """Accepts every transfer except to the documented failing account."""

    async def transfer(self, *, account: str, amount: int, currency: str, reference: str) -> BankResult:
        """Send `amount` to `account`; the reference makes a repeat harmless at a real bank."""
        if account == FAILING_ACCOUNT:
            return BankResult(False, "no_account", "The bank account does not exist.")
        return BankResult(True)

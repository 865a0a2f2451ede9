"""`python -m ledger_svc`: run the ledger service."""

from chassis.service import main
from ledger_svc.bootstrap import build
from ledger_svc.settings import LedgerSettings

if __name__ == "__main__":
    main(LedgerSettings, build)

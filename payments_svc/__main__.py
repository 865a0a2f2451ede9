"""`python -m payments_svc`: run the payments service."""

from chassis.service import main
from payments_svc.bootstrap import build
from payments_svc.settings import PaymentsSettings

if __name__ == "__main__":
    main(PaymentsSettings, build)

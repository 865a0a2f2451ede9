"""`python -m vault_svc`: run the vault service."""

from chassis.service import main
from vault_svc.bootstrap import build
from vault_svc.settings import VaultSettings

if __name__ == "__main__":
    main(VaultSettings, build)

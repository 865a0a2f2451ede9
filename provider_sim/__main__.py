"""`python -m provider_sim`: run the provider service."""

from chassis.service import main
from provider_sim.bootstrap import build
from provider_sim.settings import ProviderSettings

if __name__ == "__main__":
    main(ProviderSettings, build)

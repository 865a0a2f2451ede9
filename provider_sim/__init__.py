"""Provider service: the simulated acquirers."""

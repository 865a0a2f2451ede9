"""Use cases: handlers that orchestrate the domain and the adapters."""

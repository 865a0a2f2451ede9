"""Vault unit tests: pure domain logic and adapters without servers."""

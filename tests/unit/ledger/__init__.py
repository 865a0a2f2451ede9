"""Pure unit tests of the ledger domain (no I/O)."""

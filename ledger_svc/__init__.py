"""Ledger service: the double-entry ledger."""

"""Vault service: the card vault."""

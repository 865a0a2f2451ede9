"""Ledger service tests: real gRPC servers, real SQLite and PostgreSQL."""

"""Vault integration tests: real gRPC servers (mTLS), SQLite and PostgreSQL."""

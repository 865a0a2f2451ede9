"""Helpers shared by the test suites (real databases, real Redis, real servers)."""

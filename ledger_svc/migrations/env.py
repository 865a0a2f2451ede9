"""Alembic environment of the ledger service."""

from chassis.db import run_migrations_in_env
from ledger_svc.adapters.orm import metadata

run_migrations_in_env(metadata)

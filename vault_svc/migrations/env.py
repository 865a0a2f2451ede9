"""Alembic environment of the vault service."""

from chassis.db import run_migrations_in_env
from vault_svc.adapters.orm import metadata

run_migrations_in_env(metadata)

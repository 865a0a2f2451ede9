"""Alembic environment of the payments service."""

from chassis.db import run_migrations_in_env
from payments_svc.adapters.orm import metadata

run_migrations_in_env(metadata)

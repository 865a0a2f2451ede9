"""Alembic environment of the provider service."""

from chassis.db import run_migrations_in_env
from provider_sim.adapters.orm import metadata

run_migrations_in_env(metadata)

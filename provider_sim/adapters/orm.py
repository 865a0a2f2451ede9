"""SQLAlchemy tables of the provider service (its own metadata and migration history)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

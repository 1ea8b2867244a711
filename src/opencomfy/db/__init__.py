"""Persistence: SQLAlchemy 2 (async) models, Alembic migrations applied at start, `Database`."""

from opencomfy.db.database import Database

__all__ = ["Database"]

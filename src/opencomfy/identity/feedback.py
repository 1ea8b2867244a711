"""Feedback users send from the frontend (`POST /api/feedback`), kept with their workspace."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import insert

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import now_ms

FEEDBACK_TYPES = ("missing_nodes", "general", "missing_models")


async def submit(*, db: Database, workspace_id: str, user_id: str, kind: str, content: str | None,
                 rating: int | None, metadata: dict) -> str:
    """Store one piece of feedback; returns its id. (The route checked the fields.)"""
    row = {"id": str(uuid.uuid4()), "workspace_id": workspace_id, "user_id": user_id,
           "type": kind, "content": content, "rating": rating,
           # A plain JSON copy: what is stored is exactly what a reader gets back.
           "metadata": json.loads(json.dumps(metadata)), "created_at": now_ms()}
    async with db.write() as conn:
        await conn.execute(insert(m.feedback).values(**row))
    return row["id"]

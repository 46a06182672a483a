"""The CLI's queries of the application tables (cli/db.py keeps the operator's statistics and prune)."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.models import ImportJob


async def import_job(conn: AsyncConnection, import_id: uuid.UUID) -> Any:
    """An import's progress row (None until the worker has applied its first chunk)."""
    return (await conn.execute(select(ImportJob.__table__).where(ImportJob.id == import_id))).first()

"""The audit log: who did what to which target, when, and from where."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import writing
from .models import AuditLog


async def record(
    engine: AsyncEngine,
    action: str,
    *,
    actor: str,
    actor_id: uuid.UUID | None = None,
    target: str | None = None,
    address: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one entry. ``details`` must never hold a secret."""
    async with writing(engine) as conn:
        await conn.execute(
            insert(AuditLog).values(
                at=datetime.now(UTC),
                actor=actor,
                actor_id=actor_id,
                action=action,
                target=target,
                address=address,
                details=details or {},
            )
        )

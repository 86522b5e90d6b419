"""Alembic environment: migrations run on a connection handed over by ``medianest.core.db``."""

from __future__ import annotations

from alembic import context

from medianest.core.models import Base
from medianest.requests import models as _request_models  # noqa: F401 (their tables)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `medianest migrate`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Every secret MediaNest stores, found in one place: to re-encrypt it under a new key, and to
know which keys are still needed.

Stored secrets are the secret fields of plugins' settings (``plugin_states.settings``) and the
providers' tokens of users (``user_identities.secret``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..core.auth import identity_binding
from ..core.crypto import PREFIX, DecryptionError, SecretBox, is_encrypted
from ..core.models import PluginState, UserIdentity
from ..core.plugins import encrypted_paths, get_path, secret_binding, set_path

# The secret fields of an installed plugin, or ``None`` for a plugin that is not installed
# (then every encrypted value of its settings counts as a secret).
# Where the secrets of a plugin's stored settings are (dotted paths), or None if the plugin
# is unknown here: then every encrypted value in its settings is treated as a secret.
SecretFieldsOf = Callable[[str, dict[str, Any]], list[str] | None]


@dataclass
class Report:
    """What a pass over every stored secret found (and, when re-encrypting, did)."""

    reencrypted: int = 0
    # Secrets that were stored in clear (saved before secrets were encrypted).
    was_clear: int = 0
    # Key id -> how many stored secrets decrypt with that key.
    by_key: Counter[str] = field(default_factory=Counter)
    # Where a secret is that no key of the keyring decrypts, and why.
    unreadable: list[str] = field(default_factory=list)


def _key_of(value: str) -> str:
    return value[len(PREFIX) :].split(":", 1)[0]


class _Pass:
    def __init__(self, box: SecretBox, report: Report, rewrite: bool) -> None:
        self.box, self.report, self.rewrite = box, report, rewrite

    def visit(self, value: Any, associated: str, where: str) -> str | None:
        """The new stored form of ``value``, or ``None`` to leave it as it is."""
        if not isinstance(value, str) or value == "":
            return None
        if not is_encrypted(value):
            self.report.was_clear += 1
            return self._seal(value, associated) if self.rewrite else None
        if self.rewrite and not self.box.needs_rotation(value):
            self.report.by_key[self.box.current_id] += 1
            return None
        try:
            plaintext = self.box.decrypt(value, associated=associated)
        except DecryptionError as exc:
            self.report.unreadable.append(f"{where}: {exc}")
            return None
        if not self.rewrite:
            self.report.by_key[_key_of(value)] += 1
            return None
        return self._seal(plaintext, associated)

    def _seal(self, plaintext: str, associated: str) -> str:
        self.report.reencrypted += 1
        self.report.by_key[self.box.current_id] += 1
        return self.box.encrypt(plaintext, associated=associated)


async def _walk(conn: AsyncConnection, secret_fields_of: SecretFieldsOf, step: _Pass) -> None:
    plugin_query = select(PluginState.name, PluginState.settings)
    identity_query = select(UserIdentity.provider, UserIdentity.subject, UserIdentity.secret).where(
        UserIdentity.secret.is_not(None)
    )
    if step.rewrite:
        # Nobody changes a secret between its reading and its rewriting.
        plugin_query = plugin_query.with_for_update()
        identity_query = identity_query.with_for_update()
    rows = (await conn.execute(plugin_query)).all()
    for name, stored in rows:
        settings = dict(stored or {})
        paths = secret_fields_of(name, settings)
        if paths is None:
            paths = encrypted_paths(settings)
        changed = False
        for path in paths:
            value = get_path(settings, path)
            if value is None or value == "":
                continue
            new = step.visit(value, secret_binding(name, path), f"plugin {name}, setting {path}")
            if new is not None:
                settings, changed = set_path(settings, path, new), True
        if changed:
            await conn.execute(
                update(PluginState).where(PluginState.name == name).values(settings=settings)
            )
    identities = (await conn.execute(identity_query)).all()
    for provider, subject, secret in identities:
        new = step.visit(
            secret, identity_binding(provider, subject), f"{provider} token of user {subject}"
        )
        if new is not None:
            await conn.execute(
                update(UserIdentity)
                .where(UserIdentity.provider == provider, UserIdentity.subject == subject)
                .values(secret=new)
            )


async def reencrypt(
    engine: AsyncEngine, box: SecretBox, secret_fields_of: SecretFieldsOf
) -> Report:
    """Re-encrypt every stored secret under the box's current key, in one transaction.

    Secrets stored in clear are encrypted; a secret no key decrypts is left as it is and
    reported.
    """
    report = Report()
    sqlite = engine.dialect.name == "sqlite"
    async with engine.begin() as conn:
        if sqlite:
            # A secret that was stored in clear must not linger in the file's free space.
            await conn.exec_driver_sql("PRAGMA secure_delete = ON")
        await _walk(conn, secret_fields_of, _Pass(box, report, rewrite=True))
    if sqlite:
        # Nor in the write-ahead log, which still holds the pages as they were.
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return report


async def keys_in_use(
    engine: AsyncEngine, box: SecretBox, secret_fields_of: SecretFieldsOf
) -> Report:
    """Which key each stored secret needs (every value is decrypted to be sure)."""
    report = Report()
    async with engine.connect() as conn:
        await _walk(conn, secret_fields_of, _Pass(box, report, rewrite=False))
    return report

"""Who is asking: sessions, API tokens, local passwords, roles and permissions, sign-in.

Sessions are server-side rows (only a hash of the cookie value is stored), looked up through the
cache (Redis when configured, so that a revocation on one process applies on every process at
the next request). API tokens are shown once and stored hashed. Passwords are hashed with
Argon2id. Sign-in providers (Plex first) hand an :class:`ExternalIdentity` to :func:`sign_in`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .cache import Cache
from .crypto import DecryptionError, SecretBox
from .db import writing
from .models import ApiToken, Session, User, UserIdentity

SESSION_COOKIE = "medianest_session"
# A looked-up session is trusted from the cache for this long; revocation deletes the entry.
SESSION_CACHE_SECONDS = 60
# Last-seen times are written at most this often, so reads stay reads.
TOUCH_EVERY = timedelta(seconds=60)
TOKEN_PREFIX = "mn_"

_hasher = PasswordHasher()


class Permission(StrEnum):
    """What a user may do beyond looking, of MediaNest's own; admins may do everything.
    Plugins declare theirs (``register_permissions``)."""

    REQUEST_MOVIES = "request_movies"
    REQUEST_TV = "request_tv"
    AUTO_APPROVE = "auto_approve"
    MANAGE_REQUESTS = "manage_requests"
    MANAGE_USERS = "manage_users"
    MANAGE_SETTINGS = "manage_settings"


@dataclass(frozen=True)
class PermissionSpec:
    """A permission that may be granted to users: its ``name`` (what routes' ``access`` and
    ``user.has`` name), the ``label`` and ``description`` the users admin shows, and whether a
    new user has it (``default``)."""

    name: str
    label: str
    description: str = ""
    default: bool = False


CORE_PERMISSIONS = (
    PermissionSpec(
        Permission.REQUEST_MOVIES, "Request films", "Ask for films to be added.", default=True
    ),
    PermissionSpec(
        Permission.REQUEST_TV, "Request series", "Ask for seasons of series to be added.", True
    ),
    PermissionSpec(
        Permission.AUTO_APPROVE,
        "Requests approved automatically",
        "Their requests need nobody's approval.",
    ),
    PermissionSpec(
        Permission.MANAGE_REQUESTS,
        "Approve and decline requests",
        "Decide on everyone's requests, and be told of new ones.",
    ),
    PermissionSpec(
        Permission.MANAGE_USERS,
        "Manage users",
        "Change other people's permissions, quotas and access; read the audit log.",
    ),
    PermissionSpec(
        Permission.MANAGE_SETTINGS,
        "Manage integrations and settings",
        "Enable, disable and set up integrations; see the system page.",
    ),
)
DEFAULT_PERMISSIONS = frozenset(p.name for p in CORE_PERMISSIONS if p.default)


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user of a request, and how they authenticated."""

    id: uuid.UUID
    username: str
    role: str
    permissions: frozenset[str]
    session_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def has(self, permission: str) -> bool:
        return self.is_admin or permission in self.permissions

    @property
    def via_cookie(self) -> bool:
        return self.session_id is not None


def hash_token(raw: str) -> str:
    """The stored form of a session or API token (256 random bits): its SHA-256."""
    return hashlib.sha256(raw.encode()).hexdigest()


async def hash_password(password: str) -> str:
    # Argon2 is deliberately slow: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        # Spend the same time as a real check, so the answer does not reveal who exists.
        await asyncio.to_thread(_hasher.hash, password)
        return False
    try:
        return await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return False


# Who a session or token belongs to, read in the same query as the session or token.
_USER_COLUMNS = (
    User.id.label("user_id"),
    User.username,
    User.role,
    User.permissions,
    User.disabled,
)


def _user_entry(row: Any) -> dict[str, Any]:
    """The cacheable (JSON) form of the user columns of a session or token lookup."""
    return {
        "user_id": str(row["user_id"]),
        "username": row["username"],
        "role": row["role"],
        "permissions": list(row["permissions"] or []),
        "disabled": bool(row["disabled"]),
    }


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A cached session or token entry, read: who it is, and the times that decide."""

    user: CurrentUser
    disabled: bool
    expires: float  # POSIX seconds; infinite for a token
    last_seen: float | None  # of a session; the last use of a token (None: never used)

    @staticmethod
    def _user(entry: dict[str, Any], **signed_in_with: uuid.UUID) -> CurrentUser:
        return CurrentUser(
            id=uuid.UUID(entry["user_id"]),
            username=entry["username"],
            role=entry["role"],
            permissions=frozenset(entry["permissions"]),
            **signed_in_with,
        )

    @classmethod
    def of_session(cls, entry: dict[str, Any]) -> _Parsed:
        return cls(
            cls._user(entry, session_id=uuid.UUID(entry["session_id"])),
            bool(entry["disabled"]),
            datetime.fromisoformat(entry["expires_at"]).timestamp(),
            datetime.fromisoformat(entry["last_seen_at"]).timestamp(),
        )

    @classmethod
    def of_token(cls, entry: dict[str, Any]) -> _Parsed:
        last = entry["last_used_at"]
        return cls(
            cls._user(entry, token_id=uuid.UUID(entry["token_id"])),
            bool(entry["disabled"]),
            math.inf,
            None if last is None else datetime.fromisoformat(last).timestamp(),
        )


class _ReadOnce:
    """What this process made of cached entries, each kept with the bytes it was read from.

    The cache stays the one truth (a revocation deletes its entry, on every process): an entry
    is used again only while the cache holds exactly the bytes it was read from, so that a
    signed-in request does not parse the same dates and ids again.
    """

    def __init__(self, parse: Callable[[dict[str, Any]], _Parsed], size: int = 10_000) -> None:
        self._parse = parse
        self._size = size
        self._kept: dict[str, tuple[bytes, _Parsed]] = {}

    def read(self, key: str, stored: bytes) -> _Parsed:
        kept = self._kept.get(key)
        if kept is not None and kept[0] == stored:
            return kept[1]
        parsed = self._parse(orjson.loads(stored))
        if len(self._kept) >= self._size:
            del self._kept[next(iter(self._kept))]  # the oldest read first
        self._kept[key] = (stored, parsed)
        return parsed

    def forget(self, key: str) -> None:
        self._kept.pop(key, None)


_TOUCH_SECONDS = TOUCH_EVERY.total_seconds()


@dataclass
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


@dataclass
class Sessions:
    """Server-side sessions: create at sign-in, resolve on each request, revoke at will."""

    engine: AsyncEngine
    cache: Cache
    policy: SessionPolicy
    # Told of revoked sessions and changed users ({"session_ids": [...]} or {"user_id": ...}),
    # so that open websockets close too; the app points it at the bus.
    notify: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    _read: _ReadOnce = field(
        default_factory=lambda: _ReadOnce(_Parsed.of_session), init=False, repr=False
    )
    # Sessions whose "last seen" is being written by one of their requests right now.
    _touching: set[str] = field(default_factory=set, init=False, repr=False)

    async def _notify(self, message: dict[str, Any]) -> None:
        if self.notify is not None:
            await self.notify(message)

    async def create(
        self, user_id: uuid.UUID, *, address: str | None, user_agent: str | None, provider: str
    ) -> str:
        """Start a session and return the cookie value (a new one at every sign-in)."""
        raw = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with writing(self.engine) as conn:
            await conn.execute(
                insert(Session).values(
                    id=uuid.uuid4(),
                    user_id=user_id,
                    session_token=hash_token(raw),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.policy.absolute,
                    metadata_={
                        "address": address,
                        "user_agent": (user_agent or "")[:200],
                        "provider": provider,
                    },
                )
            )
            await conn.execute(update(User).where(User.id == user_id).values(last_seen_at=now))
        return raw

    async def resolve(self, raw: str) -> CurrentUser | None:
        """The user of a session cookie, or ``None`` if it is unknown, expired or disabled."""
        token_hash = hash_token(raw)
        key = f"session:{token_hash}"
        stored = await self.cache.get_encoded(key)
        entry: dict[str, Any] | None = None
        if stored is None:
            self._read.forget(key)
            # The many requests of one browser (or one script) that find the entry expired
            # together make one query, not one each.
            entry = await self.cache.get_or_compute(
                key, SESSION_CACHE_SECONDS, lambda: self._load(token_hash)
            )
            if entry is None:
                return None
            session = _Parsed.of_session(entry)
        else:
            session = self._read.read(key, stored)
        now = time.time()
        last_seen = session.last_seen or 0.0
        if (
            session.disabled
            or now >= session.expires
            or now - last_seen >= self.policy.idle.total_seconds()
        ):
            return None
        if now - last_seen >= _TOUCH_SECONDS and key not in self._touching:
            # One request writes "last seen"; the session's others meanwhile go on.
            self._touching.add(key)
            try:
                if entry is None:
                    assert stored is not None  # either read from the cache or loaded above
                    entry = orjson.loads(stored)
                moment = datetime.fromtimestamp(now, UTC)
                entry["last_seen_at"] = moment.isoformat()
                await self._touch(uuid.UUID(entry["session_id"]), entry["user_id"], moment)
                await self.cache.set(key, entry, SESSION_CACHE_SECONDS)
            finally:
                self._touching.discard(key)
        return session.user

    async def _load(self, token_hash: str) -> dict[str, Any] | None:
        query = (
            select(Session.id, Session.expires_at, Session.last_seen_at, *_USER_COLUMNS)
            .join(User, User.id == Session.user_id)
            .where(Session.session_token == token_hash)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        return {
            "session_id": str(row["id"]),
            **_user_entry(row),
            "expires_at": _aware(row["expires_at"]).isoformat(),
            "last_seen_at": _aware(row["last_seen_at"]).isoformat(),
        }

    async def _touch(self, session_id: uuid.UUID, user_id: str, now: datetime) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(
                update(Session).where(Session.id == session_id).values(last_seen_at=now)
            )
            await conn.execute(
                update(User).where(User.id == uuid.UUID(user_id)).values(last_seen_at=now)
            )

    async def revoke(self, session_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> bool:
        """End one session (of ``user_id`` only, when given). True if there was one."""
        query = select(Session.session_token).where(Session.id == session_id)
        if user_id is not None:
            query = query.where(Session.user_id == user_id)
        async with writing(self.engine) as conn:
            token_hash = (await conn.execute(query)).scalar()
            if token_hash is None:
                return False
            await conn.execute(delete(Session).where(Session.id == session_id))
        await self.cache.delete(f"session:{token_hash}")
        await self._notify({"session_ids": [str(session_id)]})
        return True

    async def revoke_user(self, user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> int:
        """End every session of a user ("sign out everywhere"), except ``keep``."""
        query = select(Session.id, Session.session_token).where(Session.user_id == user_id)
        async with writing(self.engine) as conn:
            rows = [r for r in (await conn.execute(query)).all() if r[0] != keep]
            if rows:
                await conn.execute(delete(Session).where(Session.id.in_([r[0] for r in rows])))
        for _, token_hash in rows:
            await self.cache.delete(f"session:{token_hash}")
        if rows:
            await self._notify({"session_ids": [str(r[0]) for r in rows]})
        return len(rows)

    async def forget_cached(self, user_id: uuid.UUID) -> None:
        """Drop a user's cached sessions so a role, permission or disabled change applies now."""
        async with self.engine.connect() as conn:
            hashes = (
                (
                    await conn.execute(
                        select(Session.session_token).where(Session.user_id == user_id)
                    )
                )
                .scalars()
                .all()
            )
        for token_hash in hashes:
            await self.cache.delete(f"session:{token_hash}")
        await self.cache.delete(f"tokens-of:{user_id}")
        # Open sockets reconnect and are let back in with what the user may do now, or not.
        await self._notify({"user_id": str(user_id)})

    async def list_for(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        query = (
            select(
                Session.id,
                Session.created_at,
                Session.last_seen_at,
                Session.expires_at,
                Session.metadata_.label("metadata_"),
            )
            .where(Session.user_id == user_id)
            .order_by(Session.last_seen_at.desc())
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {
                "id": str(r["id"]),
                "created_at": _aware(r["created_at"]),
                "last_seen_at": _aware(r["last_seen_at"]),
                "expires_at": _aware(r["expires_at"]),
                "address": (r["metadata_"] or {}).get("address"),
                "user_agent": (r["metadata_"] or {}).get("user_agent"),
                "provider": (r["metadata_"] or {}).get("provider"),
            }
            for r in rows
        ]


@dataclass
class ApiTokens:
    """Named tokens for scripts: shown once at creation, stored hashed, revocable."""

    engine: AsyncEngine
    cache: Cache
    _read: _ReadOnce = field(
        default_factory=lambda: _ReadOnce(_Parsed.of_token), init=False, repr=False
    )

    async def create(self, user_id: uuid.UUID, name: str) -> tuple[uuid.UUID, str]:
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = uuid.uuid4()
        async with writing(self.engine) as conn:
            await conn.execute(
                insert(ApiToken).values(
                    id=token_id,
                    user_id=user_id,
                    name=name,
                    token_hash=hash_token(raw),
                    created_at=datetime.now(UTC),
                )
            )
        return token_id, raw

    async def resolve(self, raw: str) -> CurrentUser | None:
        token_hash = hash_token(raw)
        key = f"token:{token_hash}"
        stored = await self.cache.get_encoded(key)
        entry: dict[str, Any] | None = None
        if stored is None:
            self._read.forget(key)
            query = (
                select(ApiToken.id, ApiToken.last_used_at, *_USER_COLUMNS)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == token_hash)
            )
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
            last_used = row["last_used_at"]
            entry = {
                "token_id": str(row["id"]),
                **_user_entry(row),
                "last_used_at": _aware(last_used).isoformat() if last_used else None,
            }
            await self.cache.set(key, entry, SESSION_CACHE_SECONDS)
            token = _Parsed.of_token(entry)
        else:
            token = self._read.read(key, stored)
        if token.disabled:
            return None
        now = time.time()
        if token.last_seen is None or now - token.last_seen >= _TOUCH_SECONDS:
            if entry is None:
                assert stored is not None  # either read from the cache or loaded just above
                entry = orjson.loads(stored)
            moment = datetime.fromtimestamp(now, UTC)
            entry["last_used_at"] = moment.isoformat()
            async with writing(self.engine) as conn:
                await conn.execute(
                    update(ApiToken)
                    .where(ApiToken.id == uuid.UUID(entry["token_id"]))
                    .values(last_used_at=moment)
                )
            await self.cache.set(key, entry, SESSION_CACHE_SECONDS)
        return token.user

    async def revoke(self, token_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        async with writing(self.engine) as conn:
            token_hash = (
                await conn.execute(
                    select(ApiToken.token_hash).where(
                        ApiToken.id == token_id, ApiToken.user_id == user_id
                    )
                )
            ).scalar()
            if token_hash is None:
                return False
            await conn.execute(delete(ApiToken).where(ApiToken.id == token_id))
        await self.cache.delete(f"token:{token_hash}")
        return True

    async def forget_cached(self, user_id: uuid.UUID) -> None:
        async with self.engine.connect() as conn:
            hashes = (
                (await conn.execute(select(ApiToken.token_hash).where(ApiToken.user_id == user_id)))
                .scalars()
                .all()
            )
        for token_hash in hashes:
            await self.cache.delete(f"token:{token_hash}")

    async def list_for(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        query = (
            select(ApiToken.id, ApiToken.name, ApiToken.created_at, ApiToken.last_used_at)
            .where(ApiToken.user_id == user_id)
            .order_by(ApiToken.created_at)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {
                "id": str(r["id"]),
                "name": r["name"],
                "created_at": _aware(r["created_at"]),
                "last_used_at": _aware(r["last_used_at"]) if r["last_used_at"] else None,
            }
            for r in rows
        ]


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything MediaNest stores is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- accounts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalIdentity:
    """A person vouched for by a sign-in provider.

    ``owner`` marks the owner of the media server MediaNest serves: on a new installation
    (no admin yet) the owner becomes the first admin. ``secret`` is the provider's token for
    this person, stored encrypted.
    """

    provider: str
    subject: str
    username: str
    email: str | None = None
    owner: bool = False
    secret: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def identity_binding(provider: str, subject: str) -> str:
    """What an identity's encrypted secret is bound to: it decrypts for that identity only."""
    return f"identity:{provider}:{subject}"


async def identity_secret(
    engine: AsyncEngine, box: SecretBox, provider: str, details: Mapping[str, Any]
) -> str | None:
    """The secret of the latest sign-in through ``provider`` whose details include
    ``details`` (``{"access": "owner"}``, say), decrypted; accounts that are disabled and
    secrets that no longer decrypt are passed over."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(UserIdentity.subject, UserIdentity.secret, UserIdentity.details)
                .join(User, User.id == UserIdentity.user_id)
                .where(
                    UserIdentity.provider == provider,
                    UserIdentity.secret.is_not(None),
                    User.disabled.is_(False),
                )
                .order_by(UserIdentity.updated_at.desc())
            )
        ).all()
    for subject, secret, stored in rows:
        if any((stored or {}).get(key) != value for key, value in details.items()):
            continue
        try:
            return box.decrypt(secret, associated=identity_binding(provider, subject))
        except DecryptionError:
            continue
    return None


class SignInRefused(Exception):
    """The identity may not sign in; the message says why, in words for the person."""


async def admin_exists(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        count = (
            await conn.execute(select(func.count()).select_from(User).where(User.role == "admin"))
        ).scalar()
    return bool(count)


async def user_for_identity(
    engine: AsyncEngine,
    box: SecretBox,
    identity: ExternalIdentity,
    default_permissions: Iterable[str] = DEFAULT_PERMISSIONS,
) -> tuple[uuid.UUID, bool]:
    """Find or create the user of ``identity`` (a new one with ``default_permissions``);
    returns (user id, created)."""
    now = datetime.now(UTC)
    async with writing(engine) as conn:
        row = (
            await conn.execute(
                select(UserIdentity.user_id, User.disabled)
                .join(User, User.id == UserIdentity.user_id)
                .where(
                    UserIdentity.provider == identity.provider,
                    UserIdentity.subject == identity.subject,
                )
            )
        ).first()
        secret = (
            box.encrypt(
                identity.secret, associated=identity_binding(identity.provider, identity.subject)
            )
            if identity.secret
            else None
        )
        if row is not None:
            user_id, disabled = row
            if disabled:
                raise SignInRefused("This account has been disabled by an administrator.")
            await conn.execute(
                update(UserIdentity)
                .where(
                    UserIdentity.provider == identity.provider,
                    UserIdentity.subject == identity.subject,
                )
                .values(secret=secret, details=identity.details, updated_at=now)
            )
            await conn.execute(
                update(User)
                .where(User.id == user_id)
                .values(username=identity.username, email=identity.email, updated_at=now)
            )
            return user_id, False
        has_admin = bool(
            (
                await conn.execute(
                    select(func.count()).select_from(User).where(User.role == "admin")
                )
            ).scalar()
        )
        first_admin = identity.owner and not has_admin
        user_id = uuid.uuid4()
        await conn.execute(
            insert(User).values(
                id=user_id,
                plex_id=identity.subject if identity.provider == "plex" else None,
                username=identity.username,
                email=identity.email,
                role="admin" if first_admin else "user",
                permissions=sorted(set(default_permissions)),
                disabled=False,
                preferences={},
                quotas={},
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            insert(UserIdentity).values(
                provider=identity.provider,
                subject=identity.subject,
                user_id=user_id,
                secret=secret,
                details=identity.details,
                created_at=now,
                updated_at=now,
            )
        )
        return user_id, True


async def create_local_user(
    engine: AsyncEngine,
    username: str,
    password: str,
    *,
    role: str = "user",
    permissions: Iterable[str] = DEFAULT_PERMISSIONS,
) -> uuid.UUID:
    """Create an account that signs in with a password (works even when plex.tv is down)."""
    async with engine.connect() as conn:
        taken = (
            await conn.execute(
                select(func.count())
                .select_from(User)
                .where(
                    func.lower(User.username) == username.lower(), User.password_hash.is_not(None)
                )
            )
        ).scalar()
    if taken:
        raise ValueError(f"a local account named {username!r} already exists")
    password_hash = await hash_password(password)
    user_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with writing(engine) as conn:
        await conn.execute(
            insert(User).values(
                id=user_id,
                username=username,
                role=role,
                permissions=sorted(permissions),
                disabled=False,
                preferences={},
                quotas={},
                password_hash=password_hash,
                created_at=now,
                updated_at=now,
            )
        )
    return user_id


async def check_local_password(
    engine: AsyncEngine, username: str, password: str
) -> uuid.UUID | None:
    """The id of the enabled local account with these credentials, or ``None``."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(User.id, User.password_hash, User.disabled).where(
                    func.lower(User.username) == username.lower(), User.password_hash.is_not(None)
                )
            )
        ).first()
    ok = await verify_password(row[1] if row else None, password)
    if not ok or row is None or row[2]:
        return None
    return uuid.UUID(str(row[0]))


async def user_quota(engine: AsyncEngine, user_id: uuid.UUID, name: str) -> dict[str, Any] | None:
    """A user's own quota ``name`` (``{"limit": 5}`` for "downloads", say), or ``None`` when
    the installation's default applies."""
    async with engine.connect() as conn:
        quotas = (await conn.execute(select(User.quotas).where(User.id == user_id))).scalar()
    value = (quotas or {}).get(name)
    return dict(value) if isinstance(value, dict) else None

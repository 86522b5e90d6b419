"""Your account, the users admin and the audit log: pages and JSON API.

Everyone manages their own sessions and API tokens on ``/account``. Holders of "manage users"
change other people's role, permissions, quotas and access on ``/admin/users`` and read the
audit log on ``/admin/audit``. A change to who may do what applies at the user's next
request, on every process: their cached sessions and tokens are forgotten as it is saved.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints, ValidationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..core import audit
from ..core.api import ApiModel, QueryModel, validation_details
from ..core.auth import SESSION_COOKIE, CurrentUser, Permission, PermissionSpec
from ..core.db import writing
from ..core.errors import ApiError
from ..core.extensions import Route
from ..core.keys import ENGINE, PERMISSIONS_CHANGED, REGISTRY, SESSIONS, TOKENS
from ..core.middleware import client_address, require_user
from ..core.models import AuditLog, User, UserIdentity

# Only an administrator may hand these out: with them a user could make themself anything.
RESERVED_PERMISSIONS = frozenset({Permission.MANAGE_USERS, Permission.MANAGE_SETTINGS})
MANAGE_USERS = Permission.MANAGE_USERS.value


# --- models of the JSON API --------------------------------------------------------------


class SessionOut(BaseModel):
    """A signed-in browser or client."""

    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    address: str | None
    user_agent: str | None
    provider: str | None
    current: bool = Field(description="Whether this request was made with this session.")


class SessionList(BaseModel):
    sessions: list[SessionOut]


class Revoked(BaseModel):
    """How many sessions or tokens were ended."""

    revoked: int


class TokenIn(ApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TokenOut(BaseModel):
    """An API token, without the token itself."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenOut]


class TokenCreated(TokenOut):
    token: str = Field(
        description="The token: send it as `Authorization: Bearer …` or `X-Api-Key`. "
        "It is shown this once and cannot be read again."
    )


class DaysQuota(ApiModel):
    """At most ``limit`` in any ``days`` days."""

    limit: int = Field(ge=0, le=100_000)
    days: int = Field(ge=1, le=365)


class HourlyQuota(ApiModel):
    """At most ``limit`` per hour."""

    limit: int = Field(ge=0, le=100_000)


class Quotas(ApiModel):
    """A user's own limits; a missing entry means the installation's default."""

    movies: DaysQuota | None = None
    seasons: DaysQuota | None = None
    downloads: HourlyQuota | None = None


class UserOut(BaseModel):
    """A user as the users admin sees them."""

    id: str
    username: str
    email: str | None
    role: str
    sign_in: list[str] = Field(
        description='How they sign in: "local" (a password), or the sign-in providers they use.'
    )
    permissions: list[str] = Field(
        description="Granted permissions (MediaNest's and the installed plugins'); admins may "
        "do everything."
    )
    quotas: Quotas
    disabled: bool
    last_seen_at: datetime | None
    created_at: datetime


class UserPage(BaseModel):
    users: list[UserOut]
    total: int
    limit: int
    offset: int


class UsersQuery(QueryModel):
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0)


class UserPatch(ApiModel):
    """What to change; fields left out stay as they are."""

    role: Literal["admin", "user"] | None = None
    permissions: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None,
        description="The complete list of the user's permissions, of those MediaNest and the "
        "installed plugins declare (GET /api/v1/permissions lists them).",
    )
    quotas: Quotas | None = Field(default=None, description="Replaces all of the user's quotas.")
    disabled: bool | None = Field(
        default=None, description="A disabled user is signed out everywhere and cannot sign in."
    )


class PermissionOut(BaseModel):
    """A permission that may be granted."""

    name: str
    label: str
    description: str
    default: bool = Field(description="Whether a new user has it.")
    declared_by: str = Field(description='"medianest", or the plugin that declares it.')


class PermissionList(BaseModel):
    permissions: list[PermissionOut]


class AuditQuery(QueryModel):
    action: str | None = Field(
        default=None, max_length=64, description="Only actions starting with this."
    )
    actor: str | None = Field(default=None, max_length=255, description="Only this actor.")
    before: int | None = Field(
        default=None, ge=1, description="Only entries older than this id (the next page)."
    )
    limit: int = Field(default=50, ge=1, le=200)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_id: str | None
    action: str
    target: str | None
    address: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


# --- helpers -------------------------------------------------------------------------------


def _engine(request: web.Request) -> AsyncEngine:
    return request.app[ENGINE]


def _catalogue(request: web.Request) -> dict[str, PermissionSpec]:
    """What may be granted, by name: MediaNest's permissions and the installed plugins'."""
    return {p.name: p for p in request.app[REGISTRY].permissions()}


def _path_id(request: web.Request, name: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, f"there is no {what} {request.match_info[name]!r}") from None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _audit(
    request: web.Request,
    action: str,
    *,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    actor = require_user(request)
    await audit.record(
        _engine(request),
        action,
        actor=actor.username,
        actor_id=actor.id,
        target=target,
        address=client_address(request),
        details=details,
    )


async def _sessions(request: web.Request, user_id: uuid.UUID) -> list[SessionOut]:
    me = require_user(request)
    return [
        SessionOut(**s, current=me.session_id is not None and s["id"] == str(me.session_id))
        for s in await request.app[SESSIONS].list_for(user_id)
    ]


async def _tokens(request: web.Request, user_id: uuid.UUID) -> list[TokenOut]:
    return [TokenOut(**t) for t in await request.app[TOKENS].list_for(user_id)]


def _signed_out(response: web.StreamResponse) -> web.StreamResponse:
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _to_sign_in() -> web.HTTPSeeOther:
    """Back to the sign-in page, the session cookie gone with the session."""
    redirect = web.HTTPSeeOther("/login")
    redirect.del_cookie(SESSION_COOKIE, path="/")
    return redirect


def _model_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )


def _read_quotas(raw: Any) -> Quotas:
    """The stored quotas; an entry that does not fit today's shape counts as the default."""
    entries: dict[str, Any] = {}
    if isinstance(raw, dict):
        kinds: dict[str, type[ApiModel]] = {
            "movies": DaysQuota,
            "seasons": DaysQuota,
            "downloads": HourlyQuota,
        }
        for name, model in kinds.items():
            try:
                entries[name] = model.model_validate(raw[name]) if raw.get(name) else None
            except ValidationError:
                entries[name] = None
    return Quotas(**entries)


# --- the account page and API: your sessions and tokens ----------------------------------


async def account_page(
    request: web.Request,
    *,
    new_token: TokenCreated | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.StreamResponse:
    """Your account: where you are signed in, and your API tokens."""
    user = require_user(request)
    labels = [p.label for p in _catalogue(request).values() if user.has(p.name)]
    response = aiohttp_jinja2.render_template(
        "account.html",
        request,
        {
            "sessions": await _sessions(request, user.id),
            "tokens": await _tokens(request, user.id),
            "permission_labels": labels,
            "new_token": new_token,
            "error": error,
        },
        status=status,
    )
    if new_token is not None:
        # The token is on this page only: no cache may keep a copy.
        response.headers["Cache-Control"] = "no-store"
    return response


async def _create_token(request: web.Request, body: TokenIn) -> TokenCreated:
    user = require_user(request)
    token_id, raw = await request.app[TOKENS].create(user.id, body.name)
    await _audit(request, "token.create", target=user.username, details={"name": body.name})
    stored = next(t for t in await _tokens(request, user.id) if t.id == str(token_id))
    return TokenCreated(**stored.model_dump(), token=raw)


async def _revoke_token(request: web.Request) -> None:
    user = require_user(request)
    token_id = _path_id(request, "id", "API token")
    if not await request.app[TOKENS].revoke(token_id, user.id):
        raise ApiError(404, f"you have no API token {request.match_info['id']!r}")
    await _audit(request, "token.revoke", target=user.username, details={"token": str(token_id)})


async def _revoke_own_session(request: web.Request) -> bool:
    """End one of your sessions; True if it was the one of this request."""
    user = require_user(request)
    session_id = _path_id(request, "id", "session")
    if not await request.app[SESSIONS].revoke(session_id, user_id=user.id):
        raise ApiError(404, f"you have no session {request.match_info['id']!r}")
    await _audit(
        request, "session.revoke", target=user.username, details={"session": str(session_id)}
    )
    return session_id == user.session_id


async def _revoke_own_sessions(request: web.Request) -> int:
    user = require_user(request)
    count = await request.app[SESSIONS].revoke_user(user.id)
    await _audit(request, "session.revoke_all", target=user.username, details={"count": count})
    return count


async def account_token_form(request: web.Request) -> web.StreamResponse:
    """Form post: create an API token and show it, once."""
    form = await request.post()
    try:
        body = TokenIn.model_validate({"name": str(form.get("name", ""))})
    except ValidationError:
        return await account_page(
            request, error="Name the token (1 to 100 characters).", status=422
        )
    return await account_page(request, new_token=await _create_token(request, body))


async def account_token_revoke_form(request: web.Request) -> web.StreamResponse:
    """Form post: revoke one of your API tokens."""
    await _revoke_token(request)
    raise web.HTTPSeeOther("/account#tokens")


async def account_session_revoke_form(request: web.Request) -> web.StreamResponse:
    """Form post: end one of your sessions (this one signs you out)."""
    if await _revoke_own_session(request):
        raise _to_sign_in()
    raise web.HTTPSeeOther("/account#sessions")


async def account_sign_out_everywhere(request: web.Request) -> web.StreamResponse:
    """Form post: end every one of your sessions, this one included."""
    await _revoke_own_sessions(request)
    raise _to_sign_in()


async def list_my_sessions(request: web.Request) -> SessionList:
    """Where you are signed in; ``current`` marks the session of this request."""
    return SessionList(sessions=await _sessions(request, require_user(request).id))


async def revoke_my_session(request: web.Request) -> web.StreamResponse:
    """End one of your sessions."""
    current = await _revoke_own_session(request)
    response = _model_response(Revoked(revoked=1))
    return _signed_out(response) if current else response


async def revoke_all_my_sessions(request: web.Request) -> web.StreamResponse:
    """Sign out everywhere, this session included (API tokens stay valid)."""
    return _signed_out(_model_response(Revoked(revoked=await _revoke_own_sessions(request))))


async def list_my_tokens(request: web.Request) -> TokenList:
    """Your API tokens, with when each was last used."""
    return TokenList(tokens=await _tokens(request, require_user(request).id))


async def create_my_token(request: web.Request, body: TokenIn) -> web.StreamResponse:
    """Create an API token; the answer holds the token, which is never shown again."""
    response = _model_response(await _create_token(request, body), status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


async def revoke_my_token(request: web.Request) -> Revoked:
    """Revoke one of your API tokens; it stops working at once."""
    await _revoke_token(request)
    return Revoked(revoked=1)


# --- users ---------------------------------------------------------------------------------


def _user_query() -> Any:
    return select(
        User.id,
        User.username,
        User.email,
        User.role,
        User.permissions,
        User.quotas,
        User.disabled,
        User.password_hash.is_not(None).label("local"),
        User.last_seen_at,
        User.created_at,
    )


async def _users_out(engine: AsyncEngine, rows: list[Any], known: set[str]) -> list[UserOut]:
    """The users of ``rows``, with those of their permissions that are ``known``: one of a
    plugin that is not installed now is kept, not shown (it applies again if the plugin comes
    back)."""
    ids = [r["id"] for r in rows]
    providers: dict[uuid.UUID, set[str]] = {i: set() for i in ids}
    if ids:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(UserIdentity.user_id, UserIdentity.provider).where(
                    UserIdentity.user_id.in_(ids)
                )
            )
            for user_id, provider in found:
                providers[user_id].add(provider)
    return [
        UserOut(
            id=str(r["id"]),
            username=r["username"],
            email=r["email"],
            role=r["role"],
            sign_in=(["local"] if r["local"] else []) + sorted(providers[r["id"]]),
            permissions=sorted(set(r["permissions"] or []) & known),
            quotas=_read_quotas(r["quotas"]),
            disabled=bool(r["disabled"]),
            last_seen_at=_aware(r["last_seen_at"]),
            created_at=_aware(r["created_at"]) or datetime.now(UTC),
        )
        for r in rows
    ]


async def _user_page(request: web.Request, query: UsersQuery) -> UserPage:
    engine = _engine(request)
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(User))).scalar() or 0
        rows = (
            (
                await conn.execute(
                    _user_query()
                    .order_by(func.lower(User.username), User.id)
                    .limit(query.limit)
                    .offset(query.offset)
                )
            )
            .mappings()
            .all()
        )
    return UserPage(
        users=await _users_out(engine, list(rows), set(_catalogue(request))),
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


async def _get_user(request: web.Request, name: str = "id") -> UserOut:
    user_id = _path_id(request, name, "user")
    engine = _engine(request)
    async with engine.connect() as conn:
        row = (await conn.execute(_user_query().where(User.id == user_id))).mappings().first()
    if row is None:
        raise ApiError(404, f"there is no user {request.match_info[name]!r}")
    return (await _users_out(engine, [row], set(_catalogue(request))))[0]


async def _stored_permissions(engine: AsyncEngine, user_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        stored = (await conn.execute(select(User.permissions).where(User.id == user_id))).scalar()
    return list(stored or [])


def _may_change(actor: CurrentUser, target: UserOut) -> None:
    if target.role == "admin" and not actor.is_admin:
        raise ApiError(403, "Only an administrator can change an administrator's account.")


async def update_user(request: web.Request, target: UserOut, patch: UserPatch) -> UserOut:
    """Apply ``patch`` to ``target`` under the rules, audit it and make it apply at once."""
    actor = require_user(request)
    _may_change(actor, target)
    changes: dict[str, Any] = {}
    if patch.role is not None and patch.role != target.role:
        if patch.role == "admin" and not actor.is_admin:
            raise ApiError(403, "Only an administrator can make someone an administrator.")
        changes["role"] = patch.role
    if patch.permissions is not None:
        catalogue = _catalogue(request)
        undeclared = [
            {
                "field": f"permissions.{i}",
                "message": f"no permission is named {name!r}: neither MediaNest nor an "
                "installed plugin declares it",
            }
            for i, name in enumerate(patch.permissions)
            if name not in catalogue
        ]
        if undeclared:
            raise ApiError(422, "the request body is not valid; see details", details=undeclared)
        wanted = set(patch.permissions)
        granted = wanted - set(target.permissions)
        reserved = sorted(granted & RESERVED_PERMISSIONS)
        if reserved and not actor.is_admin:
            labels = ", ".join(f"“{catalogue[p].label}”" for p in reserved)
            raise ApiError(403, f"Only an administrator can grant {labels}.")
        # A permission of a plugin not installed now is not shown, so not changed either.
        stored = await _stored_permissions(_engine(request), uuid.UUID(target.id))
        new = sorted(wanted | {p for p in stored if p not in catalogue})
        if new != sorted(stored):
            changes["permissions"] = new
    if patch.quotas is not None:
        quotas = patch.quotas.model_dump(exclude_none=True)
        if quotas != target.quotas.model_dump(exclude_none=True):
            changes["quotas"] = quotas
    if patch.disabled is not None and patch.disabled != target.disabled:
        changes["disabled"] = patch.disabled
    if not changes:
        return target
    user_id = uuid.UUID(target.id)
    engine = _engine(request)
    async with writing(engine) as conn:
        # Lock the user and every enabled admin, in one order, so that two admins demoting
        # each other at the same moment cannot leave the installation without one.
        locked = (
            await conn.execute(
                select(User.id, User.role, User.disabled)
                .where(
                    or_(User.id == user_id, and_(User.role == "admin", User.disabled.is_(False)))
                )
                .order_by(User.id)
                .with_for_update()
            )
        ).all()
        current = next((r for r in locked if r[0] == user_id), None)
        if current is None:
            raise ApiError(404, f"there is no user {target.id!r}")
        was_admin = current[1] == "admin" and not current[2]
        stays_admin = changes.get("role", current[1]) == "admin" and not changes.get(
            "disabled", current[2]
        )
        if was_admin and not stays_admin and not [r for r in locked if r[0] != user_id]:
            raise ApiError(
                409,
                f"{target.username} is the last enabled administrator; make someone else an "
                "administrator first.",
            )
        await conn.execute(
            update(User).where(User.id == user_id).values(**changes, updated_at=datetime.now(UTC))
        )
    await request.app[SESSIONS].forget_cached(user_id)
    await request.app[TOKENS].forget_cached(user_id)
    for listener in request.app[PERMISSIONS_CHANGED]:
        await listener()
    if changes.get("disabled"):
        await request.app[SESSIONS].revoke_user(user_id)
    await _audit(request, "user.update", target=target.username, details=changes)
    return await _get_user_by_id(request, user_id)


async def _get_user_by_id(request: web.Request, user_id: uuid.UUID) -> UserOut:
    engine = _engine(request)
    async with engine.connect() as conn:
        row = (await conn.execute(_user_query().where(User.id == user_id))).mappings().one()
    return (await _users_out(engine, [row], set(_catalogue(request))))[0]


async def _revoke_user_session(request: web.Request) -> UserOut:
    target = await _get_user(request)
    _may_change(require_user(request), target)
    session_id = _path_id(request, "sid", "session")
    if not await request.app[SESSIONS].revoke(session_id, user_id=uuid.UUID(target.id)):
        raise ApiError(404, f"{target.username} has no session {request.match_info['sid']!r}")
    await _audit(
        request, "session.revoke", target=target.username, details={"session": str(session_id)}
    )
    return target


async def _revoke_user_sessions(request: web.Request) -> tuple[UserOut, int]:
    target = await _get_user(request)
    _may_change(require_user(request), target)
    count = await request.app[SESSIONS].revoke_user(uuid.UUID(target.id))
    await _audit(request, "session.revoke_all", target=target.username, details={"count": count})
    return target, count


# The users admin pages.


async def admin_users_page(request: web.Request, query: UsersQuery) -> web.StreamResponse:
    """Every user: role, how they sign in, permissions, state and last visit."""
    page = await _user_page(request, query)
    previous = max(query.offset - query.limit, 0) if query.offset else None
    following = query.offset + query.limit if query.offset + query.limit < page.total else None
    return aiohttp_jinja2.render_template(
        "admin/users.html",
        request,
        {
            "page": page,
            "labels": {p.name: p.label for p in _catalogue(request).values()},
            "previous_url": None
            if previous is None
            else "/admin/users?" + urlencode({"offset": previous, "limit": query.limit}),
            "next_url": None
            if following is None
            else "/admin/users?" + urlencode({"offset": following, "limit": query.limit}),
        },
    )


async def admin_user_page(
    request: web.Request,
    *,
    target: UserOut | None = None,
    error: str | list[dict[str, Any]] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    """One user: role, permissions, quotas, access and sessions."""
    actor = require_user(request)
    target = target or await _get_user(request)
    permissions = [
        {
            "value": p.name,
            "label": p.label,
            "description": p.description,
            "checked": p.name in target.permissions,
            "locked": p.name in RESERVED_PERMISSIONS and not actor.is_admin,
        }
        for p in _catalogue(request).values()
    ]
    return aiohttp_jinja2.render_template(
        "admin/user.html",
        request,
        {
            "target": target,
            "permissions": permissions,
            "sessions": await _sessions(request, uuid.UUID(target.id)),
            "can_edit": actor.is_admin or target.role != "admin",
            "can_make_admin": actor.is_admin,
            "error": error,
        },
        status=status,
    )


def _form_int(form: Any, name: str) -> int | str | None:
    value = str(form.get(name, "")).strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value  # validation says what is wrong with it


def _form_patch(form: Any, actor: CurrentUser, target: UserOut) -> UserPatch:
    granted = set(form.getall("permissions", []))
    if not actor.is_admin:
        # Those boxes are locked for this actor, and locked boxes are not sent: keep them.
        granted -= RESERVED_PERMISSIONS
        granted |= set(target.permissions) & RESERVED_PERMISSIONS
    quotas: dict[str, Any] = {}
    for name in ("movies", "seasons"):
        limit, days = _form_int(form, f"{name}_limit"), _form_int(form, f"{name}_days")
        if limit is not None or days is not None:
            quotas[name] = {"limit": limit, "days": days}
    downloads = _form_int(form, "downloads_limit")
    if downloads is not None:
        quotas["downloads"] = {"limit": downloads}
    data: dict[str, Any] = {"permissions": sorted(granted), "quotas": quotas}
    if "role" in form:
        data["role"] = form.get("role")
    return UserPatch.model_validate(data)


async def _apply_form(request: web.Request, build: Any) -> web.StreamResponse:
    target = await _get_user(request)
    try:
        patch = build(await request.post(), require_user(request), target)
        await update_user(request, target, patch)
    except ValidationError as exc:
        return await admin_user_page(
            request, target=target, error=validation_details(exc), status=422
        )
    except ApiError as err:
        if err.status == 404:
            raise
        return await admin_user_page(request, target=target, error=err.message, status=err.status)
    raise web.HTTPSeeOther(f"/admin/users/{target.id}")


async def admin_user_form(request: web.Request) -> web.StreamResponse:
    """Form post: save a user's role, permissions and quotas."""
    return await _apply_form(request, _form_patch)


async def admin_user_access_form(request: web.Request) -> web.StreamResponse:
    """Form post: disable or enable a user."""
    return await _apply_form(
        request, lambda form, _actor, _target: UserPatch(disabled=form.get("disabled") == "1")
    )


async def admin_user_session_revoke_form(request: web.Request) -> web.StreamResponse:
    """Form post: end one of a user's sessions."""
    target = await _revoke_user_session(request)
    raise web.HTTPSeeOther(f"/admin/users/{target.id}#sessions")


async def admin_user_sessions_revoke_form(request: web.Request) -> web.StreamResponse:
    """Form post: end every session of a user."""
    target, _ = await _revoke_user_sessions(request)
    raise web.HTTPSeeOther(f"/admin/users/{target.id}#sessions")


# The users admin API.


async def list_users(request: web.Request, query: UsersQuery) -> UserPage:
    """Every user, by name, a page at a time."""
    return await _user_page(request, query)


async def get_user(request: web.Request) -> UserOut:
    """One user."""
    return await _get_user(request)


async def patch_user(request: web.Request, body: UserPatch) -> UserOut:
    """Change a user's role, permissions, quotas or access; it applies at their next request."""
    return await update_user(request, await _get_user(request), body)


async def list_permissions(request: web.Request) -> PermissionList:
    """Every permission that may be granted: MediaNest's, then those of each installed plugin
    (enabled or not)."""
    registry = request.app[REGISTRY]
    owners = {
        p.name: record.name
        for record in registry.records.values()
        if record.status != "import error"
        for p in record.permissions
    }
    return PermissionList(
        permissions=[
            PermissionOut(
                name=p.name,
                label=p.label,
                description=p.description,
                default=p.default,
                declared_by=owners.get(p.name, "medianest"),
            )
            for p in registry.permissions()
        ]
    )


async def list_user_sessions(request: web.Request) -> SessionList:
    """Where a user is signed in."""
    target = await _get_user(request)
    return SessionList(sessions=await _sessions(request, uuid.UUID(target.id)))


async def revoke_user_session(request: web.Request) -> Revoked:
    """End one of a user's sessions; their next request with it is refused."""
    await _revoke_user_session(request)
    return Revoked(revoked=1)


async def revoke_user_sessions(request: web.Request) -> Revoked:
    """End every session of a user."""
    _, count = await _revoke_user_sessions(request)
    return Revoked(revoked=count)


# --- the audit log -------------------------------------------------------------------------


async def _audit_page(engine: AsyncEngine, query: AuditQuery) -> AuditPage:
    statement = select(AuditLog).order_by(AuditLog.id.desc()).limit(query.limit + 1)
    if query.action:
        statement = statement.where(AuditLog.action.startswith(query.action, autoescape=True))
    if query.actor:
        statement = statement.where(func.lower(AuditLog.actor) == query.actor.lower())
    if query.before is not None:
        statement = statement.where(AuditLog.id < query.before)
    async with engine.connect() as conn:
        rows = (await conn.execute(statement)).mappings().all()
    entries = [
        AuditEntry(
            id=r["id"],
            at=_aware(r["at"]) or datetime.now(UTC),
            actor=r["actor"],
            actor_id=str(r["actor_id"]) if r["actor_id"] else None,
            action=r["action"],
            target=r["target"],
            address=r["address"],
            details=r["details"] or {},
        )
        for r in rows[: query.limit]
    ]
    more = len(rows) > query.limit
    return AuditPage(entries=entries, next_before=entries[-1].id if more and entries else None)


async def admin_audit_page(request: web.Request, query: AuditQuery) -> web.StreamResponse:
    """The audit log, newest first, with filters by action and actor."""
    page = await _audit_page(_engine(request), query)
    older_url = None
    if page.next_before is not None:
        params = {
            k: v
            for k, v in {
                "action": query.action,
                "actor": query.actor,
                "before": page.next_before,
                "limit": query.limit if query.limit != 50 else None,
            }.items()
            if v
        }
        older_url = "/admin/audit?" + urlencode(params)
    return aiohttp_jinja2.render_template(
        "admin/audit.html",
        request,
        {"page": page, "query": query, "older_url": older_url},
    )


async def list_audit(request: web.Request, query: AuditQuery) -> AuditPage:
    """The audit log, newest first; filter by action prefix and actor, page with ``before``."""
    return await _audit_page(_engine(request), query)


ACCOUNT_ROUTES = [
    # Your account.
    Route("GET", "/account", account_page, name="account", include_in_schema=False),
    Route("POST", "/account/tokens", account_token_form, include_in_schema=False),
    Route(
        "POST", "/account/tokens/{id}/revoke", account_token_revoke_form, include_in_schema=False
    ),
    Route(
        "POST", "/account/sessions/revoke-all", account_sign_out_everywhere, include_in_schema=False
    ),
    Route(
        "POST",
        "/account/sessions/{id}/revoke",
        account_session_revoke_form,
        include_in_schema=False,
    ),
    Route("GET", "/api/v1/auth/sessions", list_my_sessions, response=SessionList),
    Route("POST", "/api/v1/auth/sessions/revoke-all", revoke_all_my_sessions, response=Revoked),
    Route("DELETE", "/api/v1/auth/sessions/{id}", revoke_my_session, response=Revoked),
    Route("GET", "/api/v1/tokens", list_my_tokens, response=TokenList),
    Route("POST", "/api/v1/tokens", create_my_token, body=TokenIn, response=TokenCreated),
    Route("DELETE", "/api/v1/tokens/{id}", revoke_my_token, response=Revoked),
    # Users.
    Route(
        "GET",
        "/admin/users",
        admin_users_page,
        query=UsersQuery,
        name="admin-users",
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "GET",
        "/admin/users/{id}",
        admin_user_page,
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "POST",
        "/admin/users/{id}",
        admin_user_form,
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "POST",
        "/admin/users/{id}/access",
        admin_user_access_form,
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "POST",
        "/admin/users/{id}/sessions/revoke-all",
        admin_user_sessions_revoke_form,
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "POST",
        "/admin/users/{id}/sessions/{sid}/revoke",
        admin_user_session_revoke_form,
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "GET", "/api/v1/users", list_users, query=UsersQuery, response=UserPage, access=MANAGE_USERS
    ),
    Route("GET", "/api/v1/users/{id}", get_user, response=UserOut, access=MANAGE_USERS),
    Route(
        "GET",
        "/api/v1/permissions",
        list_permissions,
        response=PermissionList,
        access=MANAGE_USERS,
    ),
    Route(
        "PATCH",
        "/api/v1/users/{id}",
        patch_user,
        body=UserPatch,
        response=UserOut,
        access=MANAGE_USERS,
    ),
    Route(
        "GET",
        "/api/v1/users/{id}/sessions",
        list_user_sessions,
        response=SessionList,
        access=MANAGE_USERS,
    ),
    Route(
        "DELETE",
        "/api/v1/users/{id}/sessions",
        revoke_user_sessions,
        response=Revoked,
        access=MANAGE_USERS,
    ),
    Route(
        "DELETE",
        "/api/v1/users/{id}/sessions/{sid}",
        revoke_user_session,
        response=Revoked,
        access=MANAGE_USERS,
    ),
    # The audit log.
    Route(
        "GET",
        "/admin/audit",
        admin_audit_page,
        query=AuditQuery,
        name="admin-audit",
        include_in_schema=False,
        access=MANAGE_USERS,
    ),
    Route(
        "GET",
        "/api/v1/audit",
        list_audit,
        query=AuditQuery,
        response=AuditPage,
        access=MANAGE_USERS,
    ),
]

"""The outgoing webhook against a real receiver on loopback, from a real MediaNest.

Saving the settings posts a test notification and a receiver that does not take it refuses the
save; notices arrive in the shape of Overseerr's webhook agent, signed so that the receiver can
check them with the shared secret; a receiver failing with 5xx (or asking to wait, 429) gets the
notice on a later attempt, one refusing it (4xx) is not asked again, and one down for good is
given up on with one line in the log; turning the plugin off drops the retries; the secret and
the Authorization header are stored encrypted and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from conftest import Client, MakeClient, add_user, wait_for
from medianest_plugins.webhook import sender
from sqlalchemy import select

from medianest import Notice
from medianest.core.keys import ENGINE
from medianest.core.models import PluginState
from medianest.core.settings import Settings
from medianest.requests.keys import NOTIFIER
from medianest.testing import FakeTMDB
from medianest.testing.base import FakeServer

PLUGIN = "webhook"
SETTINGS_URL = f"/api/v1/plugins/{PLUGIN}/settings"
SECRET = "receivers-shared-secret-7f3a9c1e"
AUTH = "Bearer receiver-token-5d8e2b"
# Home Assistant's and Discord's webhook addresses carry their token in the path.
PATH_TOKEN = "hook-token-b41c77"
SITE = "https://media.example.com"
# Overseerr's default webhook JSON, key by key.
TOP_KEYS = {
    "notification_type",
    "event",
    "subject",
    "message",
    "image",
    "media",
    "request",
    "issue",
    "comment",
    "extra",
}
MEDIA_KEYS = {"media_type", "tmdbId", "tvdbId", "status", "status4k"}
REQUEST_KEYS = {
    "request_id",
    "requestedBy_email",
    "requestedBy_username",
    "requestedBy_avatar",
    "requestedBy_settings_discordId",
    "requestedBy_settings_telegramChatId",
}


@dataclass
class Delivery:
    """One POST the receiver was sent."""

    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver(FakeServer):
    """A webhook receiver: it answers each POST with the next of ``answers`` (a status, or a
    status and headers), then 204 for good, and keeps what it was sent."""

    answers: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    # What an error answer says (a receiver may echo what it was sent).
    error_text: str = "receiver unhappy"

    def routes(self, app: web.Application) -> None:
        app.router.add_post(f"/hook/{PATH_TOKEN}", self._take)
        app.router.add_post("/moved", self._moved)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook/{PATH_TOKEN}"

    async def _take(self, request: web.Request) -> web.StreamResponse:
        self.deliveries.append(Delivery(dict(request.headers), await request.read(), time.time()))
        status, headers = 204, {}
        if self.answers:
            answer = self.answers.pop(0)
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
        if status == 204:
            return web.Response(status=204)
        return web.Response(status=status, headers=headers, text=self.error_text)

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(self.hook_url)

    def of_kind(self, kind: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.json["notification_type"] == kind]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wait 0.05 s before the second attempt instead of 1 s (0.1, 0.2... after)."""
    monkeypatch.setattr(sender, "FIRST_WAIT", 0.05)


def verifies(secret: str, delivery: Delivery) -> bool:
    """What a receiver does: HMAC-SHA256 of the timestamp header, a dot and the raw body under
    the shared secret, compared in constant time with the signature header."""
    signed = delivery.headers.get("X-MediaNest-Timestamp", "").encode() + b"." + delivery.body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, delivery.headers.get("X-MediaNest-Signature", ""))


def settings_for(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"url": receiver.hook_url, "secret": SECRET, **extra}


async def configure(client: Client, receiver: Receiver, **extra: Any) -> None:
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver, **extra))
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/api/v1/plugins/{PLUGIN}/enable")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "active"


def pending_notice(**changes: Any) -> Notice:
    """What the core sends when someone asks for two seasons of a series."""
    fields: dict[str, Any] = {
        "kind": "MEDIA_PENDING",
        "subject": "Game of Thrones (2011)",
        "message": "friend asked for seasons 1 and 2.",
        "image": "https://image.tmdb.org/t/p/w600_and_h900_bestv2/got.jpg",
        "url": "/requests/4f1c2d3e",
        "media": {
            "media_type": "tv",
            "tmdbId": "1399",
            "tvdbId": "121361",
            "status": "PENDING",
            "status4k": "UNKNOWN",
        },
        "request": {
            "request_id": "4f1c2d3e",
            "requestedBy_username": "friend",
            "requestedBy_email": "friend@example.com",
            "requestedBy_avatar": "",
            "requested_seasons": [1, 2],
        },
    }
    return Notice(**(fields | changes))


async def send(client: Client, notice: Notice) -> None:
    await client.app[NOTIFIER].send(notice, [])


async def arrived(receiver: Receiver, kind: str, count: int = 1) -> None:
    async def enough() -> bool:
        return len(receiver.of_kind(kind)) >= count

    await wait_for(enough)


async def stored_settings(client: Client) -> dict[str, Any]:
    async with client.app[ENGINE].connect() as conn:
        stored = (
            await conn.execute(select(PluginState.settings).where(PluginState.name == PLUGIN))
        ).scalar()
    return dict(stored or {})


async def error_of(resp: Any) -> str:
    return json.dumps(await resp.json())


# --- saving the settings --------------------------------------------------------------------


async def test_saving_posts_a_test_notification_and_a_receiver_refusing_it_refuses_the_save(
    sqlite_settings: Settings,
    make_client: MakeClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await make_client(sqlite_settings)

    receiver.answers = [500]
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver))
    assert resp.status == 422
    said = await error_of(resp)
    assert "could not connect" in said
    assert "HTTP 500" in said and "receiver unhappy" in said
    assert (await stored_settings(client)) == {}

    # A redirect is not a delivery (the POST would become a GET): the admin is told where to.
    moved = {"url": f"{receiver.url}/moved", "secret": SECRET}
    resp = await client.put(SETTINGS_URL, json=moved)
    assert resp.status == 422
    assert "HTTP 301, a redirect" in await error_of(resp)

    # Nobody listening.
    port = receiver.port
    await receiver.stop()
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver))
    assert resp.status == 422
    assert "could not reach 127.0.0.1" in await error_of(resp)
    await receiver.start(port)

    # Not an address to post to.
    for wrong in ("hook.example.com/medianest", "ftp://hook.example.com/"):
        resp = await client.put(SETTINGS_URL, json={"url": wrong, "secret": SECRET})
        assert resp.status == 422
        assert "http:// or https:// address" in await error_of(resp)

    # Without a secret the receiver could not tell MediaNest's posts from anyone's.
    resp = await client.put(SETTINGS_URL, json={"url": receiver.hook_url})
    assert resp.status == 422
    assert "signing secret" in await error_of(resp)
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver, secret="short"))
    assert resp.status == 422
    assert "at least 16 characters" in await error_of(resp)
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver, kinds=["MEDIA_PENDNG"]))
    assert resp.status == 422
    assert "no notification is called MEDIA_PENDNG" in await error_of(resp)
    # Only the first of these reached the hook: the others were redirected, unanswered, or
    # refused before anything was posted.
    assert len(receiver.deliveries) == 1

    # A receiver that takes too long to answer.
    monkeypatch.setattr(sender, "TIMEOUT", 0.3)
    receiver.faults.hang = True
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver))
    assert resp.status == 422
    assert "did not answer within 0.3 s" in await error_of(resp)
    receiver.faults.clear()

    await configure(client, receiver)
    test = receiver.deliveries[-1]
    assert test.json["notification_type"] == "TEST_NOTIFICATION"
    assert test.json["event"] == "Test Notification"
    assert test.json["media"] is None and test.json["request"] is None
    assert test.headers["X-MediaNest-Event"] == "TEST_NOTIFICATION"
    assert verifies(SECRET, test)
    saved = (await (await client.get(f"/api/v1/plugins/{PLUGIN}")).json())["settings"]
    # The address often holds the receiver's token: kept like the other secrets.
    assert saved["url"] == "••••"

    resp = await client.get(f"/api/v1/plugins/{PLUGIN}/health")
    (check,) = (await resp.json())["checks"]
    assert check["status"] == "ok"


async def test_the_admin_form_sets_it_up_and_keeps_the_secret_it_masks(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(sqlite_settings)
    form = {
        "url": receiver.hook_url,
        "secret": SECRET,
        "auth_header": "",
        "kinds": "media_pending, MEDIA_AVAILABLE",
        "site_url": "",
        "attempts": "3",
    }
    resp = await client.post(f"/admin/plugins/{PLUGIN}/settings", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await (await client.get("/admin/plugins")).text()
    assert 'value="MEDIA_PENDING, MEDIA_AVAILABLE"' in page
    assert SECRET not in page
    assert 'type="password" name="secret" value="••••"' in page

    # Posted back as shown: the masked secret is kept, and signs the new test notification.
    resp = await client.post(
        f"/admin/plugins/{PLUGIN}/settings",
        data=form | {"secret": "••••", "attempts": "4"},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    first, second = receiver.of_kind("TEST_NOTIFICATION")
    assert verifies(SECRET, first) and verifies(SECRET, second)

    # A receiver refusing the test keeps the form's error on the page, with what it said.
    receiver.answers = [403]
    resp = await client.post(f"/admin/plugins/{PLUGIN}/settings", data=form)
    assert resp.status == 422
    page = await resp.text()
    assert "HTTP 403" in page and "receiver unhappy" in page
    assert SECRET not in page


# --- what is sent ------------------------------------------------------------------------------


async def test_the_signature_verifies_with_the_secret_only(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, receiver, auth_header=AUTH)

    await send(client, pending_notice())
    await arrived(receiver, "MEDIA_PENDING")
    (delivery,) = receiver.of_kind("MEDIA_PENDING")

    assert verifies(SECRET, delivery)
    assert not verifies("another-secret-of-32-characters!", delivery)
    tampered = Delivery(delivery.headers, delivery.body.replace(b"friend", b"foe"), delivery.at)
    assert not verifies(SECRET, tampered)
    # A recorded notice replayed with a fresh timestamp no longer verifies.
    later = str(int(delivery.headers["X-MediaNest-Timestamp"]) + 3600)
    replayed = Delivery(
        {**delivery.headers, "X-MediaNest-Timestamp": later}, delivery.body, delivery.at
    )
    assert not verifies(SECRET, replayed)

    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["Authorization"] == AUTH
    assert delivery.headers["X-MediaNest-Event"] == "MEDIA_PENDING"
    assert abs(int(delivery.headers["X-MediaNest-Timestamp"]) - time.time()) < 60
    assert delivery.headers["X-MediaNest-Delivery"]


async def test_the_payload_is_overseerrs(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, receiver)

    await send(client, pending_notice())
    await arrived(receiver, "MEDIA_PENDING")
    body = receiver.of_kind("MEDIA_PENDING")[0].json

    assert set(body) == TOP_KEYS | {"url"}
    assert body["notification_type"] == "MEDIA_PENDING"
    assert body["event"] == "New Series Request"
    assert body["subject"] == "Game of Thrones (2011)"
    assert body["message"] == "friend asked for seasons 1 and 2."
    assert body["image"] == "https://image.tmdb.org/t/p/w600_and_h900_bestv2/got.jpg"
    # As Overseerr's template fills them: every value a string.
    assert body["media"] == {
        "media_type": "tv",
        "tmdbId": "1399",
        "tvdbId": "121361",
        "status": "PENDING",
        "status4k": "UNKNOWN",
    }
    assert set(body["request"]) == REQUEST_KEYS
    assert all(isinstance(v, str) for v in body["request"].values())
    assert body["request"]["request_id"] == "4f1c2d3e"
    assert body["request"]["requestedBy_username"] == "friend"
    assert body["request"]["requestedBy_email"] == "friend@example.com"
    assert body["issue"] is None and body["comment"] is None
    assert body["extra"] == [{"name": "Requested Seasons", "value": "1, 2"}]
    # Without MediaNest's address the link is the page's path.
    assert body["url"] == "/requests/4f1c2d3e"

    # A film: no seasons; with MediaNest's address set, links are absolute.
    resp = await client.put(SETTINGS_URL, json=settings_for(receiver, site_url=SITE + "/"))
    assert resp.status == 200, await resp.text()
    film = pending_notice(
        kind="MEDIA_AVAILABLE",
        subject="The Matrix Reloaded (2003)",
        image=None,
        media={"media_type": "movie", "tmdbId": "604", "status": "AVAILABLE"},
        request={"request_id": "9a8b", "requestedBy_username": "friend"},
    )
    await send(client, film)
    await arrived(receiver, "MEDIA_AVAILABLE")
    body = receiver.of_kind("MEDIA_AVAILABLE")[0].json
    assert body["event"] == "Movie Request Now Available"
    assert body["url"] == f"{SITE}/requests/4f1c2d3e"
    assert body["image"] == ""
    assert body["media"]["tvdbId"] == "" and body["media"]["status4k"] == ""
    assert body["request"]["requestedBy_email"] == ""
    assert body["extra"] == []


async def test_only_the_chosen_kinds_are_sent(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(sqlite_settings)
    # Typed in the admin form as a comma-separated list, in any case.
    await configure(client, receiver, kinds="media_available, MEDIA_FAILED")
    saved = (await (await client.get(f"/api/v1/plugins/{PLUGIN}")).json())["settings"]
    assert saved["kinds"] == ["MEDIA_AVAILABLE", "MEDIA_FAILED"]

    await send(client, pending_notice())
    await send(client, pending_notice(kind="MEDIA_AVAILABLE"))
    await arrived(receiver, "MEDIA_AVAILABLE")
    await asyncio.sleep(0.2)
    assert receiver.of_kind("MEDIA_PENDING") == []


async def test_a_new_request_reaches_the_receiver(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    """Someone asks for a film through the API; the webhook says a request waits."""
    tmdb = FakeTMDB()
    await tmdb.start()
    try:
        client = await make_client(sqlite_settings)
        resp = await client.put(
            "/api/v1/plugins/tmdb/settings", json={"api_key": tmdb.api_key, "api_url": tmdb.url}
        )
        assert resp.status == 200, await resp.text()
        assert (await client.post("/api/v1/plugins/tmdb/enable")).status == 200
        await configure(client, receiver)

        await add_user(client.app, "friend", "a friend's long password")
        friend = Client(client.server)
        await friend.start_server()
        await friend.sign_in("friend", "a friend's long password")
        resp = await friend.post("/api/v1/requests", json={"media_type": "movie", "tmdb_id": 604})
        assert resp.status == 201, await resp.text()
        request_id = (await resp.json())["request"]["id"]

        await arrived(receiver, "MEDIA_PENDING")
        (delivery,) = receiver.of_kind("MEDIA_PENDING")
        body = delivery.json
        assert verifies(SECRET, delivery)
        assert body["event"] == "New Movie Request"
        assert "The Matrix Reloaded" in body["subject"]
        assert body["media"]["media_type"] == "movie" and body["media"]["tmdbId"] == "604"
        assert body["request"]["request_id"] == str(request_id)
        assert body["request"]["requestedBy_username"] == "friend"
        assert body["url"] == f"/requests/{request_id}"
        await friend.close()
    finally:
        await tmdb.stop()


# --- retries --------------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_retries")
async def test_a_failing_receiver_gets_the_notice_on_the_third_attempt(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, receiver)

    receiver.answers = [503, 503]
    started = time.time()
    await send(client, pending_notice())
    # notify returned at once; the attempts go on in the background.
    assert time.time() - started < 0.5
    await arrived(receiver, "MEDIA_PENDING", 3)
    await asyncio.sleep(0.3)
    tries = receiver.of_kind("MEDIA_PENDING")
    assert len(tries) == 3
    # The same notice each time: same bytes, same signature, same delivery id.
    assert len({t.body for t in tries}) == 1
    assert len({t.headers["X-MediaNest-Delivery"] for t in tries}) == 1
    assert all(verifies(SECRET, t) for t in tries)
    # Waiting longer each time (0.05 s, then 0.1 s, plus up to a quarter of the first wait).
    gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09

    resp = await client.get(f"/api/v1/plugins/{PLUGIN}/health")
    (check,) = (await resp.json())["checks"]
    assert check["status"] == "ok" and "delivered" in check["message"]


@pytest.mark.usefixtures("fast_retries")
async def test_a_refused_notice_is_not_retried_and_one_down_for_good_is_given_up(
    sqlite_settings: Settings,
    make_client: MakeClient,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client(sqlite_settings)
    await configure(client, receiver, attempts=3)

    receiver.answers = [400]
    await send(client, pending_notice())
    await arrived(receiver, "MEDIA_PENDING")
    await asyncio.sleep(0.5)  # several backoffs' worth
    assert len(receiver.of_kind("MEDIA_PENDING")) == 1
    lines = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert "HTTP 400" in lines[0].getMessage() and "1 attempt" in lines[0].getMessage()

    resp = await client.get(f"/api/v1/plugins/{PLUGIN}/health")
    (check,) = (await resp.json())["checks"]
    assert check["status"] == "degraded" and "HTTP 400" in check["message"]

    receiver.answers = [502, 500, 503, 503]
    await send(client, pending_notice(kind="MEDIA_FAILED"))
    await arrived(receiver, "MEDIA_FAILED", 3)
    await asyncio.sleep(0.5)
    # Three attempts (the setting), then one line.
    assert len(receiver.of_kind("MEDIA_FAILED")) == 3
    lines = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(lines) == 2
    assert "MEDIA_FAILED" in lines[1] and "3 attempts" in lines[1] and "HTTP 503" in lines[1]


async def test_a_receiver_asking_to_wait_is_waited_for(
    sqlite_settings: Settings,
    make_client: MakeClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender, "FIRST_WAIT", 0.01)
    client = await make_client(sqlite_settings)
    await configure(client, receiver)

    receiver.answers = [(429, {"Retry-After": "1"})]
    await send(client, pending_notice())
    await arrived(receiver, "MEDIA_PENDING", 2)
    first, second = receiver.of_kind("MEDIA_PENDING")
    assert second.at - first.at >= 0.95


async def test_turning_the_plugin_off_drops_the_retries(
    sqlite_settings: Settings, make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, receiver)

    receiver.answers = [503] * 10
    await send(client, pending_notice())
    await arrived(receiver, "MEDIA_PENDING")
    # The next attempt is due in a second; the plugin is turned off before.
    resp = await client.post(f"/api/v1/plugins/{PLUGIN}/disable")
    assert resp.status == 200
    await asyncio.sleep(2.0)
    assert len(receiver.of_kind("MEDIA_PENDING")) == 1

    # Disabled, it sends nothing.
    await send(client, pending_notice(kind="MEDIA_APPROVED"))
    await asyncio.sleep(0.2)
    assert receiver.of_kind("MEDIA_APPROVED") == []


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_retries")
async def test_the_secret_and_the_auth_header_are_stored_encrypted_and_never_logged(
    db_settings: Settings,
    make_client: MakeClient,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(db_settings)
    await configure(client, receiver, auth_header=AUTH)

    stored = json.dumps(await stored_settings(client))
    assert SECRET not in stored and AUTH not in stored
    assert "receiver-token" not in stored and PATH_TOKEN not in stored
    shown = await (await client.get(f"/api/v1/plugins/{PLUGIN}")).text()
    shown += await (await client.get("/admin/plugins")).text()
    assert SECRET not in shown and AUTH not in shown

    # Failures are logged; a receiver echoing what it was sent does not leak it into the log.
    receiver.error_text = f"bad credentials {AUTH} for {SECRET}"
    receiver.answers = [503, 401]
    await send(client, pending_notice())
    await arrived(receiver, "MEDIA_PENDING", 2)
    await wait_for(lambda: _logged(caplog, "not delivered"))
    resp = await client.get(f"/api/v1/plugins/{PLUGIN}/health")
    shown = await resp.text()
    assert "HTTP 401" in shown

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP 401" in logged
    for secret in (SECRET, AUTH, "receiver-token"):
        assert secret not in logged
        assert secret not in shown
    # The address often carries the receiver's token: the requests' log lines leave its path
    # out, and the pages never show it.
    assert f"POST {receiver.url}/(webhook address hidden)" in logged
    told = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert PATH_TOKEN not in told and PATH_TOKEN not in shown


async def _logged(caplog: pytest.LogCaptureFixture, words: str) -> bool:
    return any(words in r.getMessage() for r in caplog.records)

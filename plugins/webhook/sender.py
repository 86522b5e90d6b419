"""Posting notices to the receiver: Overseerr's webhook payload, signed, retried with backoff.

The body is the JSON Overseerr's webhook agent sends with its default template (every value a
string, ``media`` and ``request`` null when the notice is not about one, ``extra`` a list of
name/value pairs), plus ``url``, the page of MediaNest it is about. Receivers built for Overseerr
(Discord relays, Home Assistant automations) read it as they are.

Each request carries ``X-MediaNest-Timestamp`` (Unix seconds of the attempt) and
``X-MediaNest-Signature: sha256=<hex>``, the HMAC-SHA256 under the signing secret of the
timestamp, a ``.`` and the exact body bytes: the receiver can tell a notice from MediaNest from
anyone else's post, and a recorded one replayed later by its age. ``X-MediaNest-Event`` is the
kind, and ``X-MediaNest-Delivery`` the same id on every attempt of one notice, for receivers
that drop repeats.

Why not the core's service client: a webhook needs what that layer deliberately does not do for
upstream APIs. It retries only idempotent calls and only on 502-504 (a webhook POST is retried
on any 5xx and on 429); it treats any answer below 400 as success (a redirect is not a
delivery: the body is lost); it serialises the JSON itself (the signature must cover the exact
bytes sent); and its circuit breaker fails calls at once while it is open, which would drop
notices instead of waiting for the receiver. So this module sends with aiohttp's client, the
library under that layer, with its own retries (tenacity, as the layer does). The receiver's
address often carries its token (Discord's, Home Assistant's): it is never logged, and the
messages name only its host.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from yarl import URL

from medianest import HttpAnswer, Notice, __version__

from .settings import Settings

log = logging.getLogger(__name__)

LABEL = "Webhook"
SIGNATURE_HEADER = "X-MediaNest-Signature"
EVENT_HEADER = "X-MediaNest-Event"
TIMESTAMP_HEADER = "X-MediaNest-Timestamp"
DELIVERY_HEADER = "X-MediaNest-Delivery"
# How long one attempt may take, connecting included.
TIMEOUT = 10.0
# The wait before the second attempt; it doubles for each further one, up to MAX_WAIT.
FIRST_WAIT = 1.0
MAX_WAIT = 300.0
# A receiver that asks (Retry-After) to be left alone longer than this is tried again after
# this long: a notice days late is no use.
MAX_RETRY_AFTER = 600.0
# How much of a receiver's answer is quoted in messages.
QUOTE = 200

MEDIA_KEYS = ("media_type", "tmdbId", "tvdbId", "status", "status4k")
REQUEST_KEYS = (
    "request_id",
    "requestedBy_email",
    "requestedBy_username",
    "requestedBy_avatar",
    # Overseerr's template has these; MediaNest knows no such ids and sends them empty.
    "requestedBy_settings_discordId",
    "requestedBy_settings_telegramChatId",
)

TEST_NOTICE_SUBJECT = "Test Notification"
TEST_NOTICE_MESSAGE = "MediaNest reaches this address. Notifications about requests come here."


# --- the payload ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def absolute(link: str | None, settings: Settings) -> str:
    """``link`` as the receiver's readers can follow it: a path is made absolute with the
    MediaNest address when one is set (and left as it is otherwise)."""
    if not link:
        return ""
    if link.startswith("/") and not link.startswith("//") and settings.site_url is not None:
        return str(settings.site_url).rstrip("/") + link
    return link


def payload(notice: Notice, settings: Settings) -> dict[str, Any]:
    """The JSON of ``notice``, in the shape of Overseerr's default webhook template."""
    media: dict[str, str] | None = None
    if notice.media:
        media = {key: _text(notice.media.get(key)) for key in MEDIA_KEYS}
    request: dict[str, str] | None = None
    if notice.request:
        request = {key: _text(notice.request.get(key)) for key in REQUEST_KEYS}
        request["requestedBy_avatar"] = absolute(request["requestedBy_avatar"], settings)
    extra: list[dict[str, str]] = []
    seasons = notice.request.get("requested_seasons") if notice.request else None
    if seasons:
        extra.append({"name": "Requested Seasons", "value": ", ".join(map(str, seasons))})
    return {
        "notification_type": notice.kind,
        "event": notice.event,
        "subject": notice.subject,
        "message": notice.message,
        "image": absolute(notice.image, settings),
        "media": media,
        "request": request,
        "issue": None,
        "comment": None,
        "extra": extra,
        "url": absolute(notice.url, settings),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``: ``sha256=`` and
    the hex HMAC-SHA256 of ``timestamp.body``."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def test_notice() -> Notice:
    """What is sent when the settings are saved, to see that the receiver takes it."""
    return Notice(
        kind="TEST_NOTIFICATION", subject=TEST_NOTICE_SUBJECT, message=TEST_NOTICE_MESSAGE
    )


# --- one attempt ----------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """An attempt did not deliver; ``str()`` says why in words (the receiver's host only,
    never its full address, which may carry a token). ``retryable`` is false when trying
    again cannot help (the receiver refused the notice)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def _host(url: str | URL) -> str:
    return URL(url).host or "the receiver"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _scrubbed(text: str, settings: Settings) -> str:
    """A receiver's words, without MediaNest's secrets should it echo them back."""
    for secret in (settings.secret, settings.auth_header):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "…")
    text = " ".join(text.split())
    return text if len(text) <= QUOTE else text[: QUOTE - 1] + "…"


def _refusal(response: HttpAnswer, host: str, settings: Settings) -> DeliveryFailed:
    status = response.status
    if 300 <= status < 400:
        where = response.headers.get("Location", "")
        target = f" to {_host(response.url.join(URL(where)))}" if where else ""
        return DeliveryFailed(
            f"{host} answered HTTP {status}, a redirect{target}: enter the address it redirects "
            "to (a redirected notification is not delivered)",
            retryable=False,
            status=status,
        )
    said = _scrubbed(response.text, settings) if len(response.content) <= 65_536 else ""
    message = f"{host} answered HTTP {status}" + (f": {said}" if said else "")
    if status == 429:
        return DeliveryFailed(
            message,
            retryable=True,
            status=status,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    return DeliveryFailed(message, retryable=status >= 500, status=status)


def headers_for(notice: Notice, settings: Settings, body: bytes, delivery: str) -> dict[str, str]:
    """The headers of one attempt: content type, signature, event, timestamp, delivery id and
    (when set) the Authorization header."""
    secret = settings.secret.get_secret_value() if settings.secret is not None else ""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"MediaNest/{__version__}",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_HEADER: notice.kind,
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: delivery,
    }
    if settings.auth_header is not None and settings.auth_header.get_secret_value():
        headers["Authorization"] = settings.auth_header.get_secret_value()
    return headers


async def post(
    http: aiohttp.ClientSession, notice: Notice, settings: Settings, body: bytes, delivery: str
) -> int:
    """One attempt; the receiver's status (2xx), or :class:`DeliveryFailed`."""
    if settings.url is None:
        raise DeliveryFailed("no webhook URL is set", retryable=False)
    url = settings.url.get_secret_value()
    host = _host(url)
    try:
        async with http.post(
            url,
            data=body,
            headers=headers_for(notice, settings, body, delivery),
            # A redirect is reported, not followed: following it would turn the POST into a
            # GET (301, 302) and the notification would be lost.
            allow_redirects=False,
        ) as reply:
            response = await HttpAnswer.read(reply)
    except TimeoutError:
        raise DeliveryFailed(
            f"{host} did not answer within {TIMEOUT:g} s", retryable=True
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        # Not chained: some of aiohttp's messages hold the address.
        raise DeliveryFailed(
            f"could not reach {host} ({type(exc).__name__})", retryable=True
        ) from None
    where = URL(url)
    log.debug(
        "POST %s://%s/(webhook address hidden): HTTP %d",
        where.scheme,
        where.host_port_subcomponent,
        response.status,
    )
    if not 200 <= response.status < 300:
        raise _refusal(response, host, settings)
    return response.status


def new_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        cookie_jar=aiohttp.DummyCookieJar(),
        # aiohttp's default TLS settings: the system's certificate authorities.
        connector=aiohttp.TCPConnector(),
    )


async def try_once(notice: Notice, settings: Settings) -> tuple[int, float]:
    """Send ``notice`` once with settings not saved yet; the status and the time taken (ms)."""
    body = orjson.dumps(payload(notice, settings))
    started = time.perf_counter()
    async with new_client() as http:
        status = await post(http, notice, settings, body, str(uuid.uuid4()))
    return status, round((time.perf_counter() - started) * 1000, 1)


# --- delivery in the background ----------------------------------------------------------------


def _wait(state: RetryCallState) -> float:
    """Exponential backoff with jitter; longer when the receiver asked for it (429)."""
    backoff = wait_exponential(multiplier=FIRST_WAIT, max=MAX_WAIT) + wait_random(0, FIRST_WAIT / 4)
    seconds = float(backoff(state))
    failure = state.outcome.exception() if state.outcome is not None else None
    if isinstance(failure, DeliveryFailed) and failure.retry_after is not None:
        seconds = max(seconds, min(failure.retry_after, MAX_RETRY_AFTER))
    return seconds


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryFailed) and exc.retryable


@dataclass(frozen=True)
class Outcome:
    """How the latest notice went, for the plugin's health."""

    delivered: bool
    at: datetime
    message: str


class Sender:
    """Delivers notices in the background while the plugin is active, each on a task of the
    plugin's own (``spawn``, cancelled when the plugin is deactivated) with its own retries."""

    def __init__(self, log: logging.Logger, spawn: Callable[..., asyncio.Task[Any]]) -> None:
        self._log = log
        self._spawn = spawn
        # Made with the first notice, inside the event loop.
        self._http: aiohttp.ClientSession | None = None
        self.pending = 0
        self.last: Outcome | None = None

    def send(self, notice: Notice, settings: Settings) -> None:
        """Deliver ``notice`` in the background; returns at once."""
        task = self._spawn(self.deliver(notice, settings), name=f"delivering {notice.kind}")
        self.pending += 1
        task.add_done_callback(self._delivered)

    def _delivered(self, _: asyncio.Task[Any]) -> None:
        self.pending -= 1

    async def deliver(self, notice: Notice, settings: Settings) -> None:
        """Post ``notice`` until the receiver takes it, it refuses it, or the attempts are
        used up; the last two are logged once."""
        body = orjson.dumps(payload(notice, settings))
        delivery = str(uuid.uuid4())
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.attempts),
            wait=_wait,
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    if self._http is None:
                        self._http = new_client()
                    status = await post(self._http, notice, settings, body, delivery)
        except DeliveryFailed as exc:
            tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
            self._log.warning(
                "%s notification %r not delivered (%s): %s", notice.kind, notice.subject, tries, exc
            )
            self.last = Outcome(False, datetime.now(UTC), str(exc))
            return
        except Exception as exc:
            # Nobody awaits this task: whatever went wrong is said here or nowhere.
            self._log.exception("%s notification %r not delivered", notice.kind, notice.subject)
            self.last = Outcome(False, datetime.now(UTC), f"{type(exc).__name__}: {exc}")
            return
        self.last = Outcome(True, datetime.now(UTC), f"HTTP {status}")

    async def close(self) -> None:
        """Close the connections (the deliveries still being retried are stopped by then)."""
        if self._http is not None:
            await self._http.close()

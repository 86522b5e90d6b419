"""The settings of the outgoing webhook; the admin form is generated from this model."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from medianest import Notice

# Overseerr's notification types, as the core names its notices.
KINDS: tuple[str, ...] = typing.get_args(typing.get_type_hints(Notice)["kind"])
# Shorter than this, a secret could be guessed from signatures it has made.
SECRET_MIN_LENGTH = 16
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


class Settings(BaseModel):
    """Where notifications are posted, the secret they are signed with, and which are sent."""

    # A secret: receivers' addresses often carry their token (Discord's, Home Assistant's).
    url: SecretStr | None = Field(
        default=None,
        title="Webhook URL",
        description="Where each notification is posted as JSON, in the shape Overseerr's "
        "webhook agent uses, e.g. https://home.example.com/api/webhook/medianest; kept "
        "encrypted and not shown again, as it often holds the receiver's token",
    )
    secret: SecretStr | None = Field(
        default=None,
        validate_default=True,
        title="Signing secret",
        description="Shared with the receiver, which checks the X-MediaNest-Signature header "
        f"with it; at least {SECRET_MIN_LENGTH} characters. Make one with "
        "`openssl rand -hex 32`.",
    )
    auth_header: SecretStr | None = Field(
        default=None,
        title="Authorization header",
        description="Sent as the Authorization header if the receiver asks for one, "
        "e.g. Bearer 3f9a…",
    )
    kinds: list[str] = Field(
        default_factory=lambda: list(KINDS),
        title="Notifications to send",
        description=f"Comma-separated, of {', '.join(KINDS)}; empty sends them all",
    )
    site_url: HttpUrl | None = Field(
        default=None,
        title="MediaNest address",
        description="How the receiver's readers reach MediaNest, e.g. https://media.example.com; "
        "makes the links in notifications absolute",
    )
    attempts: int = Field(
        default=5,
        ge=1,
        le=10,
        title="Attempts",
        description="How many times a notification is tried while the receiver fails or "
        "cannot be reached, waiting longer each time (1 s, 2 s, 4 s…)",
    )

    @field_validator("url", "site_url", "secret", "auth_header", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            address = _HTTP_URL.validate_python(value.get_secret_value())
        except ValidationError:
            raise ValueError(
                "enter the receiver's http:// or https:// address, e.g. "
                "https://home.example.com/api/webhook/medianest"
            ) from None
        return SecretStr(str(address))

    @field_validator("secret")
    @classmethod
    def _secret_with_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("url") is None:
            return value
        if value is None:
            raise ValueError(
                "enter a signing secret: the receiver checks with it that notifications come "
                "from MediaNest (make one with `openssl rand -hex 32`)"
            )
        if len(value.get_secret_value()) < SECRET_MIN_LENGTH:
            raise ValueError(f"use a secret of at least {SECRET_MIN_LENGTH} characters")
        return value

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            # Typed in a form: "media_pending, MEDIA_AVAILABLE" means the same two kinds.
            value = [v.strip().upper() if isinstance(v, str) else v for v in value]
            value = [v for v in value if v != ""]
            unknown = [v for v in value if v not in KINDS]
            if unknown:
                raise ValueError(
                    f"no notification is called {', '.join(map(str, unknown))};"
                    f" use {', '.join(KINDS)}"
                )
            return list(dict.fromkeys(value)) or list(KINDS)
        return value

    @property
    def configured(self) -> bool:
        return self.url is not None and self.secret is not None

    def sends(self, kind: str) -> bool:
        return kind in self.kinds

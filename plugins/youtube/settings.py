"""The settings of the YouTube downloads integration, as the admin form shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator

YOUTUBE_HOSTS = (
    "youtube.com",
    "www.youtube.com",
    "m.youtube.com",
    "music.youtube.com",
    "youtu.be",
    "youtube-nocookie.com",
    "www.youtube-nocookie.com",
)


class Settings(BaseModel):
    """Where downloads go, the limits each user has, and the optional YouTube Data API key."""

    library_path: str = Field(
        default="",
        title="Library folder",
        description="Where downloads land, a folder per user; a Plex library should point here.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        title="YouTube Data API key",
        description="Optional: richer previews (without it, previews come from the page).",
    )
    api_url: HttpUrl = Field(
        default=HttpUrl("https://www.googleapis.com"),
        title="API address",
        description="Where the YouTube Data API answers; change it only for testing",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: list(YOUTUBE_HOSTS),
        title="Allowed hosts",
        description="Links to other hosts are refused.",
    )
    downloads_per_hour: int = Field(
        default=5,
        ge=0,
        le=10_000,
        title="Downloads per hour",
        description="Each user's default; a user's own quota (Users page) overrides it.",
    )
    concurrent_per_user: int = Field(
        default=3,
        ge=1,
        le=100,
        title="Downloads at once per user",
        description="A user's further downloads wait their turn.",
    )
    storage_per_user_gb: float = Field(
        default=10.0,
        gt=0,
        title="Storage per user (GB)",
        description="What a user's downloads may take on disk in all.",
    )
    stalled_after: int = Field(
        default=60,
        ge=2,
        le=3600,
        title="Stalled after (seconds)",
        description="A download silent this long lost its worker; it is retried or failed.",
    )
    allow_any_host_for_tests: bool = Field(
        default=False,
        title="Allow any host (tests only)",
        description="Accepts links to any host, local addresses included. Never in production.",
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _strip_key(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in value if h.strip()]

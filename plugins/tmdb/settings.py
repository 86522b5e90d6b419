"""The settings of the TMDB integration, as the admin form shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator

# A v4 read access token is a JWT: its header, base64 of '{"alg"...', always begins so.
V4_TOKEN_PREFIX = "eyJ"


class Settings(BaseModel):
    """Connection settings of the TMDB integration, and how often its lists are read."""

    api_key: SecretStr | None = Field(
        default=None,
        title="API key (v3) or read access token (v4)",
        description="From themoviedb.org → Settings → API. Either one works.",
    )
    language: str = Field(
        default="en-US",
        pattern=r"^[a-z]{2}(-[A-Z]{2})?$",
        title="Language",
        description="Titles and overviews in this language, e.g. en-US, fr-FR, de",
    )
    region: str = Field(
        default="US",
        pattern=r"^[A-Z]{2}$",
        title="Region",
        description="Release dates and upcoming films of this country, e.g. US, GB, FR",
    )
    discovery_interval: float = Field(
        default=30 * 60.0,
        ge=300,
        le=86400,
        title="Trending and popular lists: seconds between reads",
        description="How often TMDB is asked for its trending, popular and upcoming lists, "
        "which every viewer then shares (300 to 86400)",
    )
    api_url: HttpUrl = Field(
        default=HttpUrl("https://api.themoviedb.org"),
        title="API address",
        description="Where TMDB's API answers; change it only for testing",
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _strip_key(cls, value: Any) -> Any:
        # A key pasted with a stray space or line break is the same key; a blank one is none.
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @property
    def uses_read_token(self) -> bool:
        """Whether the key is a v4 read access token (sent as a bearer token)."""
        return self.api_key is not None and self.api_key.get_secret_value().startswith(
            V4_TOKEN_PREFIX
        )

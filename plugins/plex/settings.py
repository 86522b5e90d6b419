"""The settings of the Plex integration; the admin form is generated from this model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator


class Settings(BaseModel):
    """Which Plex Media Server, with which token, which of its libraries to watch, and how often
    it is read."""

    url: HttpUrl | None = Field(
        default=None, title="Server URL", description="e.g. http://192.168.1.10:32400"
    )
    token: SecretStr | None = Field(
        default=None,
        title="Plex token",
        description="The server owner's token. Leave it blank to use the token of the owner's "
        "own “Sign in with Plex”.",
    )
    libraries: list[str] = Field(
        default_factory=list,
        title="Libraries to watch",
        description="Names (or numbers) of the libraries MediaNest shows and checks, separated "
        "by commas; blank: every film, series and music library.",
    )
    # How often each widget's data is read, in seconds: every viewer shares one read.
    status_interval: float = Field(
        default=60.0,
        ge=10,
        le=3600,
        title="Server status: seconds between reads",
        description="How often the server is asked for its name and version (10 to 3600)",
    )
    sessions_interval: float = Field(
        default=10.0,
        ge=5,
        le=600,
        title="Now playing: seconds between reads",
        description="How often the server is asked what it plays (5 to 600)",
    )
    recent_interval: float = Field(
        default=120.0,
        ge=30,
        le=3600,
        title="Recently added: seconds between reads",
        description="How often the server is asked what was added; new films and series are "
        "found as available then (30 to 3600)",
    )
    libraries_interval: float = Field(
        default=600.0,
        ge=60,
        le=86400,
        title="Libraries: seconds between counts",
        description="How often the watched libraries are counted (60 to 86400)",
    )
    full_scan_interval: float = Field(
        default=6 * 3600.0,
        ge=3600,
        le=7 * 86400,
        title="Full scan: seconds between scans",
        description="How often every watched library is read whole, to find what left it "
        "(3600 to 604800)",
    )
    plex_tv_url: HttpUrl = Field(
        default=HttpUrl("https://plex.tv"),
        title="plex.tv address",
        description="Where plex.tv's API answers; change it only for testing",
    )
    plex_app_url: HttpUrl = Field(
        default=HttpUrl("https://app.plex.tv/auth"),
        title="Plex sign-in page",
        description="Where people approve the sign-in; change it only for testing",
    )

    @field_validator("libraries", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # The admin form sends one text field: "Movies, TV Shows".
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return value

    @property
    def own_token(self) -> str | None:
        """The token entered in the settings, if any."""
        if self.token is None:
            return None
        return self.token.get_secret_value().strip() or None

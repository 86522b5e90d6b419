"""The settings of the Tautulli integration; the admin form is generated from this model."""

from __future__ import annotations

from pydantic import BaseModel, Field, HttpUrl, SecretStr


class Settings(BaseModel):
    """Where Tautulli answers, the key of its API, and how often its data is read."""

    url: HttpUrl | None = Field(
        default=None,
        title="Tautulli URL",
        description="The address of Tautulli's web interface, e.g. http://localhost:8181",
    )
    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="Tautulli → Settings → Web Interface → API key (turn the API on there)",
    )
    # How often each widget's data is read, in seconds: every viewer shares one read.
    activity_interval: float = Field(
        default=10.0,
        ge=5,
        le=600,
        title="Current activity: seconds between reads",
        description="How often Tautulli is asked what is playing (5 to 600)",
    )
    history_interval: float = Field(
        default=60.0,
        ge=10,
        le=3600,
        title="Recently watched: seconds between reads",
        description="How often Tautulli is asked what was watched lately (10 to 3600)",
    )
    stats_interval: float = Field(
        default=600.0,
        ge=60,
        le=86400,
        title="Watch statistics: seconds between reads",
        description="How often Tautulli is asked for its statistics (60 to 86400)",
    )

    @property
    def configured(self) -> bool:
        return self.url is not None and self.api_key is not None and bool(self.key)

    @property
    def key(self) -> str:
        return self.api_key.get_secret_value() if self.api_key is not None else ""

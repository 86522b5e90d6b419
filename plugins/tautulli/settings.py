"""The settings of the Tautulli integration; the admin form is generated from this model."""

from __future__ import annotations

from pydantic import BaseModel, Field, HttpUrl, SecretStr


class Settings(BaseModel):
    """Where Tautulli answers, and the key of its API."""

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

    @property
    def configured(self) -> bool:
        return self.url is not None and self.api_key is not None and bool(self.key)

    @property
    def key(self) -> str:
        return self.api_key.get_secret_value() if self.api_key is not None else ""

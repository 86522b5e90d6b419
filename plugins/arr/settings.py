"""The settings of the Sonarr & Radarr integration: any number of instances of each.

One instance per server: the everyday Radarr and a second one for 4K, a Sonarr for series and
another for anime. Each has its own name (what people see: "Radarr 4K"), address, API key and
the defaults used when a request is added to it. The admin form is generated from this model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator, model_validator

Kind = Literal["sonarr", "radarr"]
KINDS: tuple[Kind, ...] = ("sonarr", "radarr")
APP_NAMES: dict[Kind, str] = {"sonarr": "Sonarr", "radarr": "Radarr"}

MinimumAvailability = Literal["announced", "inCinemas", "released"]


def _blank_is_none(value: Any) -> Any:
    # A key pasted with a stray space is the same key; an emptied field is no value.
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _choices(options: str, value: str, label: str) -> dict[str, Any]:
    """The admin form offers this field's values read live from the saved instance: the
    ``options`` list of its /arr/options answer, each item's ``value`` and ``label``."""
    return {"x-options": options, "x-option-value": value, "x-option-label": label}


class ArrInstance(BaseModel):
    """One Sonarr or Radarr server."""

    name: str = Field(
        min_length=1,
        max_length=60,
        title="Name",
        description='What people see, e.g. "Sonarr", "Radarr 4K" (unique among the instances)',
    )
    url: HttpUrl = Field(title="URL", description="e.g. http://localhost:8989 or :7878")
    api_key: SecretStr = Field(
        title="API key", description="Settings → General → Security → API Key"
    )
    quality_profile_id: int | None = Field(
        default=None,
        json_schema_extra=_choices("quality_profiles", "id", "name"),
        title="Quality profile",
        description="The quality profile requests are added with (read from the server)",
    )
    root_folder: str | None = Field(
        default=None,
        json_schema_extra=_choices("root_folders", "path", "path"),
        title="Root folder",
        description="Where requested films or series are put (read from the server)",
    )
    language_profile_id: int | None = Field(
        default=None,
        json_schema_extra=_choices("language_profiles", "id", "name"),
        title="Language profile",
        description="Sonarr 3 only; left empty, the server's first language profile",
    )
    tags: list[int] = Field(
        default_factory=list, title="Tags", description="Tags given to what is added"
    )
    search_on_add: bool = Field(
        default=True, title="Search on add", description="Start searching as soon as it is added"
    )
    is_4k: bool = Field(default=False, title="4K", description="This instance serves 4K requests")
    is_anime: bool = Field(
        default=False, title="Anime", description="Sonarr: this instance serves anime requests"
    )
    minimum_availability: MinimumAvailability = Field(
        default="released",
        title="Minimum availability",
        description="Radarr: when a requested film counts as available to download",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        title="Webhook secret",
        description=(
            "Set it to receive the server's Connect → Webhook notifications (grabs, imports,"
            " deletions) at /arr/webhook/<kind>/<number>?secret=…"
        ),
    )

    @field_validator("api_key", "webhook_secret", "root_folder", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _blank_is_none(value)

    @field_validator("name", mode="before")
    @classmethod
    def _strip_name(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @property
    def key(self) -> str:
        return self.api_key.get_secret_value()

    @property
    def base_url(self) -> str:
        return str(self.url).rstrip("/")


class Settings(BaseModel):
    """The Sonarr and Radarr servers MediaNest talks to, and how often it reads them."""

    sonarr: list[ArrInstance] = Field(
        default_factory=list,
        title="Sonarr",
        description="Sonarr servers, the default first",
        json_schema_extra={"x-options-url": "/arr/options?kind=sonarr&index={index}"},
    )
    radarr: list[ArrInstance] = Field(
        default_factory=list,
        title="Radarr",
        description="Radarr servers, the default first",
        json_schema_extra={"x-options-url": "/arr/options?kind=radarr&index={index}"},
    )
    # How often each widget's data is read from every instance, in seconds: every viewer
    # shares one read.
    queue_interval: float = Field(
        default=10.0,
        ge=5,
        le=600,
        title="Downloads: seconds between reads",
        description="How often each instance is asked for its download queue (5 to 600)",
    )
    upcoming_interval: float = Field(
        default=600.0,
        ge=60,
        le=86400,
        title="Coming up: seconds between reads",
        description="How often each instance is asked for its calendar (60 to 86400)",
    )
    wanted_interval: float = Field(
        default=300.0,
        ge=60,
        le=86400,
        title="Missing: seconds between reads",
        description="How often each instance is asked what is missing (60 to 86400)",
    )
    disk_interval: float = Field(
        default=600.0,
        ge=60,
        le=86400,
        title="Disk space: seconds between reads",
        description="How often each instance is asked for its free space (60 to 86400)",
    )
    health_interval: float = Field(
        default=120.0,
        ge=30,
        le=3600,
        title="Health: seconds between reads",
        description="How often each instance is asked for its own health checks (30 to 3600)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for kind in KINDS:
            seen: set[str] = set()
            for instance in self.instances(kind):
                folded = instance.name.casefold()
                if folded in seen:
                    raise ValueError(
                        f"two {APP_NAMES[kind]} instances are named {instance.name!r};"
                        " give each its own name"
                    )
                seen.add(folded)
        return self

    def instances(self, kind: Kind) -> list[ArrInstance]:
        return self.sonarr if kind == "sonarr" else self.radarr

    def all(self) -> list[tuple[Kind, int, ArrInstance]]:
        """Every instance as (kind, its number in its list, settings), Sonarr first."""
        return [(kind, n, inst) for kind in KINDS for n, inst in enumerate(self.instances(kind))]

    @property
    def configured(self) -> bool:
        return bool(self.sonarr or self.radarr)

"""Settings: environment variables ``MEDIANEST_*`` over an optional TOML file over defaults.

The defaults are the embedded mode: a SQLite file in ``./data/``, an in-memory cache, jobs run
in-process, listening on 127.0.0.1:8080. Every bad value is reported by name with what to fix
(:class:`SettingsError`), never as a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "MEDIANEST_"
CONFIG_ENV = "MEDIANEST_CONFIG"

_DATABASE_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}


class SettingsError(Exception):
    """Raised when the configuration cannot be used; ``problems`` holds one line per bad value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the optional TOML file; keys are the setting names without the prefix."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Everything MediaNest reads at start-up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_key: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # JSON lines for log collectors, text for people; "auto" is text in a terminal only.
    log_format: Literal["auto", "json", "text"] = "auto"
    # The level of single components: "medianest.plugins.plex=debug,aiohttp.access=warning".
    log_levels: str = ""
    # /metrics answers a bearer token, or (without one) the addresses listed here.
    metrics_token: SecretStr | None = None
    metrics_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    # How long the dashboard waits for one widget before showing it as unavailable.
    widget_timeout: float = Field(default=5.0, gt=0, le=60)
    # Websocket events buffered per client before a slow client is dropped.
    ws_queue_size: int = Field(default=256, ge=1, le=100_000)
    # A session ends after this many days without a request, and this many days after sign-in.
    session_idle_days: float = Field(default=7, gt=0)
    session_max_days: float = Field(default=30, gt=0)
    # Reverse proxies (addresses or networks) whose X-Forwarded-Proto/-For are believed.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where the first-run setup page answers from, while no admin exists.
    setup_from: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    # Long jobs (downloads) run at once, per process: `medianest worker`, or `serve` without Redis.
    jobs_concurrency: int = Field(default=3, ge=1, le=100)
    # Where a `medianest worker` serves its own /metrics (0: not at all).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    # How often a worker looks for jobs whose worker stopped sending heartbeats (seconds).
    jobs_sweep_interval: int = Field(default=30, ge=1, le=3600)
    rate_limit_sign_in: str = "10/minute"
    rate_limit_api: str = "300/minute"
    # Media requests. Default quotas (a user's own, set on the users admin, win): at most this
    # many films, and this many seasons, requested in any so many days.
    quota_movies: int = Field(default=10, ge=0)
    quota_movies_days: int = Field(default=7, ge=1, le=365)
    quota_seasons: int = Field(default=10, ge=0)
    quota_seasons_days: int = Field(default=7, ge=1, le=365)
    # Seconds between checks of open requests against the download queues and Plex (services
    # that report changes at once, by webhook or scan, make it sooner).
    request_check_interval: float = Field(default=60, gt=0, le=86_400)
    # Seconds a process may hold an approved request it is handing to Sonarr or Radarr before
    # another process takes it over (the first one having died).
    fulfilment_lease: float = Field(default=300, gt=0, le=86_400)

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError(
                "expected a URL such as sqlite:///data/medianest.db or postgresql://host/db"
            )
        driver = _DATABASE_SCHEMES.get(scheme.lower())
        if driver is None:
            raise ValueError(
                f"unsupported scheme {scheme!r} (use sqlite:///path/to/file.db or postgresql://…)"
            )
        if driver.startswith("sqlite") and (
            not rest.startswith("/") or rest.strip("/") in ("", ":memory:")
        ):
            # Each pooled connection would get its own in-memory database.
            raise ValueError("SQLite needs a file, e.g. sqlite:///data/medianest.db")
        return f"{driver}://{rest}"

    @field_validator("trusted_proxies", "setup_from", "metrics_allow", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )

    @field_validator("log_levels")
    @classmethod
    def _levels(cls, value: str) -> str:
        from .logs import parse_levels

        parse_levels(value)
        return value

    @field_validator("trusted_proxies", "setup_from", "metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("rate_limit_sign_in", "rate_limit_api")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '10/minute'") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in _REDIS_SCHEMES:
            raise ValueError(f"unsupported scheme {scheme!r} (use redis://host:6379/0)")
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            path = (self.data_dir / "medianest.db").as_posix()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _TomlFileSource(settings_cls, _TOML_DATA.get() or {})
        return (init_settings, env_settings, toml)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1]
        return Path(path) if path and path != ":memory:" else None


# The TOML file's contents reach the settings source through this variable, because
# pydantic-settings builds its sources from the class, not from the instance being made.
_TOML_DATA: ContextVar[dict[str, Any] | None] = ContextVar("medianest_toml", default=None)


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError([f"{CONFIG_ENV}: config file {str(path)!r} does not exist"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"{CONFIG_ENV}: {str(path)!r} is not valid TOML: {exc}"]) from None
    # Accept both a flat file and one with a [medianest] table.
    section = data.get("medianest", data)
    if not isinstance(section, dict):
        raise SettingsError([f"{CONFIG_ENV}: [medianest] in {str(path)!r} must be a table"])
    return section


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment, the TOML file and ``overrides``.

    Raises :class:`SettingsError` listing every bad value, named as the environment variable.
    """
    config_file = config_file or os.environ.get(CONFIG_ENV) or None
    toml = _read_toml(Path(config_file)) if config_file else {}
    token = _TOML_DATA.set(toml)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting"
            problems.append(f"{_env_name(field)}: {message}")
        raise SettingsError(problems) from None
    finally:
        _TOML_DATA.reset(token)


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "secret.key"


def load_keyring(settings: Settings, *, create: bool = True) -> list[str]:
    """Every key that may decrypt stored secrets, newest (the one that encrypts) first.

    From ``MEDIANEST_SECRET_KEY`` (several keys separated by commas, newest first) or else the
    key file in the data folder (one key per line), created with one new key on first start.
    The file is written with mode 0600 so that only MediaNest's own user can read it.
    ``create=False`` (re-reading while running) raises FileNotFoundError instead of creating it.
    """
    if settings.secret_key is not None:
        return [k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
    path = key_file(settings)
    try:
        return _read_keys(path)
    except FileNotFoundError:
        if not create:
            raise
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return _read_keys(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return [key]


def _read_keys(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def ensure_secret_key(settings: Settings) -> str:
    """The key that encrypts secrets now (the first of :func:`load_keyring`)."""
    return load_keyring(settings)[0]

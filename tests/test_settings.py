"""Settings: environment over TOML over the embedded defaults, and clear errors for bad values."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from medianest.core.settings import SettingsError, ensure_secret_key, load_settings


def problems_of(**env: str) -> list[str]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
    return caught.value.problems


def test_defaults_are_the_embedded_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.database_url == "sqlite+aiosqlite:///data/medianest.db"
    assert settings.is_sqlite
    assert settings.sqlite_path == Path("data/medianest.db")
    assert settings.redis_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.secret_key is None


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDIANEST_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MEDIANEST_REDIS_URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("MEDIANEST_HOST", "0.0.0.0")
    monkeypatch.setenv("MEDIANEST_PORT", "9000")
    monkeypatch.setenv("MEDIANEST_LOG_LEVEL", "debug")
    monkeypatch.setenv("MEDIANEST_SECRET_KEY", "s3cret")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "state"
    # The default database follows the data folder.
    assert settings.sqlite_path == tmp_path / "state" / "medianest.db"
    assert settings.redis_url == "redis://cache.example:6379/2"
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9000, "debug")
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "s3cret"
    # The key is not shown when the settings are printed or logged.
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://u:p@db.example:5432/medianest",
            "postgresql+asyncpg://u:p@db.example:5432/medianest",
        ),
        ("postgresql://u@db.example/medianest", "postgresql+asyncpg://u@db.example/medianest"),
        ("postgresql+asyncpg://u@db.example/m", "postgresql+asyncpg://u@db.example/m"),
        ("sqlite:///var/lib/medianest.db", "sqlite+aiosqlite:///var/lib/medianest.db"),
        ("sqlite:////srv/medianest.db", "sqlite+aiosqlite:////srv/medianest.db"),
        ("SQLITE:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_are_normalised_to_the_async_drivers(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("MEDIANEST_DATABASE_URL", given)
    settings = load_settings()
    assert settings.database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


def test_toml_file_flat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "medianest.toml"
    config.write_text('port = 9100\nhost = "0.0.0.0"\nredis_url = "redis://r:6379/0"\n')
    monkeypatch.setenv("MEDIANEST_CONFIG", str(config))
    settings = load_settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)
    assert settings.redis_url == "redis://r:6379/0"


def test_toml_file_with_medianest_table(tmp_path: Path) -> None:
    config = tmp_path / "medianest.toml"
    config.write_text(
        '[medianest]\nport = 9200\ndatabase_url = "postgres://u@db/m"\n\n[unrelated]\nx = 1\n'
    )
    settings = load_settings(config)
    assert settings.port == 9200
    assert settings.database_url == "postgresql+asyncpg://u@db/m"


def test_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "medianest.toml"
    config.write_text('[medianest]\nport = 9200\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("MEDIANEST_CONFIG", str(config))
    monkeypatch.setenv("MEDIANEST_PORT", "9300")
    settings = load_settings()
    assert settings.port == 9300  # from the environment
    assert settings.host == "0.0.0.0"  # from the file


def test_unsupported_database_scheme_is_named() -> None:
    problems = problems_of(MEDIANEST_DATABASE_URL="mysql://u@h/db")
    assert len(problems) == 1
    assert problems[0].startswith("MEDIANEST_DATABASE_URL: unsupported scheme 'mysql'")
    assert "postgresql://" in problems[0] and "sqlite:///" in problems[0]


@pytest.mark.parametrize("url", ["not a url", "sqlite://", "sqlite:///:memory:"])
def test_unusable_database_urls_are_refused(url: str) -> None:
    problems = problems_of(MEDIANEST_DATABASE_URL=url)
    assert len(problems) == 1
    assert problems[0].startswith("MEDIANEST_DATABASE_URL: ")
    assert "sqlite:///data/medianest.db" in problems[0]


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_bad_port_is_named(port: str) -> None:
    problems = problems_of(MEDIANEST_PORT=port)
    assert len(problems) == 1
    assert problems[0].startswith("MEDIANEST_PORT: ")


def test_every_bad_value_gets_its_own_line() -> None:
    problems = problems_of(
        MEDIANEST_DATABASE_URL="mysql://x",
        MEDIANEST_REDIS_URL="http://cache:6379",
        MEDIANEST_PORT="99999",
        MEDIANEST_LOG_LEVEL="chatty",
    )
    assert sorted(p.split(":", 1)[0] for p in problems) == [
        "MEDIANEST_DATABASE_URL",
        "MEDIANEST_LOG_LEVEL",
        "MEDIANEST_PORT",
        "MEDIANEST_REDIS_URL",
    ]
    assert any("unsupported scheme 'http'" in p for p in problems)
    # The exception's text is those lines, ready to be printed as they are.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIANEST_PORT", "99999")
        with pytest.raises(SettingsError) as caught:
            load_settings()
    assert str(caught.value) == caught.value.problems[0]
    assert "\n" not in str(caught.value)


def test_bad_value_in_toml_is_named_as_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "medianest.toml"
    config.write_text('port = "eighty"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("MEDIANEST_PORT: ")


def test_unknown_key_in_toml(tmp_path: Path) -> None:
    config = tmp_path / "medianest.toml"
    config.write_text("[medianest]\nport = 9000\nlisten_port = 9001\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert caught.value.problems == ["MEDIANEST_LISTEN_PORT: unknown setting"]


def test_missing_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("MEDIANEST_CONFIG", str(missing))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    [problem] = caught.value.problems
    assert problem.startswith("MEDIANEST_CONFIG: ")
    assert str(missing) in problem and "does not exist" in problem


def test_invalid_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("port = \n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    [problem] = caught.value.problems
    assert problem.startswith("MEDIANEST_CONFIG: ")
    assert "not valid TOML" in problem and "line 1" in problem


def test_medianest_entry_that_is_not_a_table(tmp_path: Path) -> None:
    config = tmp_path / "odd.toml"
    config.write_text('medianest = "yes"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    [problem] = caught.value.problems
    assert problem.startswith("MEDIANEST_CONFIG: ") and "must be a table" in problem


def test_secret_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    key = ensure_secret_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert path.read_text().strip() == key
    # The next start (a new process reading the same folder) keeps the key: sessions survive.
    again = ensure_secret_key(load_settings(data_dir=tmp_path / "data"))
    assert again == key
    assert path.read_text().strip() == key


def test_secret_keys_differ_between_installations(tmp_path: Path) -> None:
    one = ensure_secret_key(load_settings(data_dir=tmp_path / "one"))
    two = ensure_secret_key(load_settings(data_dir=tmp_path / "two"))
    assert one != two


def test_configured_secret_key_is_used_without_writing_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIANEST_SECRET_KEY", "configured-key")
    settings = load_settings(data_dir=tmp_path / "data")
    assert ensure_secret_key(settings) == "configured-key"
    assert not (tmp_path / "data" / "secret.key").exists()

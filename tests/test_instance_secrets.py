"""Secrets inside a list of service instances (a second Sonarr, say) are encrypted, masked and
kept like top-level ones."""

from __future__ import annotations

from types import SimpleNamespace

from pydantic import BaseModel, SecretStr
from sqlalchemy import select

from medianest import hookimpl
from medianest.core.crypto import SecretBox
from medianest.core.keys import ENGINE, REGISTRY
from medianest.core.models import PluginState
from medianest.core.plugins import secret_paths
from medianest.core.settings import load_keyring
from medianest.ops.rotation import reencrypt


class Instance(BaseModel):
    name: str
    url: str
    api_key: SecretStr


class MultiSettings(BaseModel):
    token: SecretStr | None = None
    instances: list[Instance] = []


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return MultiSettings


PLUGIN = SimpleNamespace(register_settings_model=register_settings_model)
KEYS = ("first-instance-key-0123", "second-instance-key-4567")


async def _stored(client) -> dict:
    async with client.app[ENGINE].connect() as conn:
        return (
            await conn.execute(select(PluginState.settings).where(PluginState.name == "multi"))
        ).scalar_one()


async def test_instance_secrets_are_encrypted_masked_and_kept(sqlite_settings, make_client):
    client = await make_client(sqlite_settings, extra_plugins=[("multi", PLUGIN)])
    body = {
        "token": "top-level-token-89",
        "instances": [
            {"name": "Sonarr", "url": "http://a", "api_key": KEYS[0]},
            {"name": "Sonarr 4K", "url": "http://b", "api_key": KEYS[1]},
        ],
    }
    assert (await client.put("/api/v1/plugins/multi/settings", json=body)).status == 200

    stored = await _stored(client)
    assert [i["api_key"][:7] for i in stored["instances"]] == ["enc:v1:", "enc:v1:"]
    assert not any(k in str(stored) for k in (*KEYS, "top-level-token-89"))
    db_bytes = b"".join(p.read_bytes() for p in sqlite_settings.data_dir.glob("medianest.db*"))
    assert not any(k.encode() in db_bytes for k in KEYS)

    shown = (await (await client.get("/api/v1/plugins/multi")).json())["settings"]
    assert [i["api_key"] for i in shown["instances"]] == ["••••", "••••"]
    assert shown["token"] == "••••"

    # The admin changes the second URL and sends the masks back: the keys stay as they were.
    shown["instances"][1]["url"] = "http://c"
    assert (await client.put("/api/v1/plugins/multi/settings", json=shown)).status == 200
    settings = client.app[REGISTRY].context("multi").settings
    assert [i.api_key.get_secret_value() for i in settings.instances] == list(KEYS)
    assert settings.instances[1].url == "http://c"
    assert settings.token.get_secret_value() == "top-level-token-89"


async def test_rotation_reencrypts_instance_secrets(sqlite_settings, make_client):
    client = await make_client(sqlite_settings, extra_plugins=[("multi", PLUGIN)])
    body = {"instances": [{"name": "Radarr", "url": "http://a", "api_key": KEYS[0]}]}
    assert (await client.put("/api/v1/plugins/multi/settings", json=body)).status == 200
    before = (await _stored(client))["instances"][0]["api_key"]

    box = SecretBox(["a brand new key for the rotation", *load_keyring(sqlite_settings)])
    registry = client.app[REGISTRY]
    await reencrypt(
        client.app[ENGINE],
        box,
        lambda name, data: (
            secret_paths(registry.records[name].settings_model, data)
            if name in registry.records
            else None
        ),
    )
    after = (await _stored(client))["instances"][0]["api_key"]
    assert after != before and after.startswith(f"enc:v1:{box.current_id}:")
    assert box.decrypt(after, associated="plugin:multi:instances.0.api_key") == KEYS[0]


async def test_the_admin_form_edits_a_list_of_instances(sqlite_settings, make_client):
    client = await make_client(sqlite_settings, extra_plugins=[("multi", PLUGIN)])
    form = {
        "instances.0.name": "Sonarr",
        "instances.0.url": "http://a",
        "instances.0.api_key": KEYS[0],
        "instances.1.name": "",  # the blank "add another" fieldset, left empty
        "instances.1.url": "",
        "instances.1.api_key": "",
    }
    resp = await client.post("/admin/plugins/multi/settings", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await (await client.get("/admin/plugins")).text()
    assert 'name="instances.0.url" value="http://a"' in page
    assert 'name="instances.1.url"' in page  # a blank fieldset to add a second one
    assert KEYS[0] not in page

    # Add a second instance through the blank fieldset; the first keeps its key (masked).
    form |= {
        "instances.0.api_key": "••••",
        "instances.1.name": "Sonarr 4K",
        "instances.1.url": "http://b",
        "instances.1.api_key": KEYS[1],
    }
    resp = await client.post("/admin/plugins/multi/settings", data=form, allow_redirects=False)
    assert resp.status == 303
    settings = client.app[REGISTRY].context("multi").settings
    assert [(i.name, i.api_key.get_secret_value()) for i in settings.instances] == [
        ("Sonarr", KEYS[0]),
        ("Sonarr 4K", KEYS[1]),
    ]

    # Remove the first one.
    form |= {
        "instances.0.api_key": "••••",
        "instances.1.api_key": "••••",
        "instances.0._remove": "on",
    }
    resp = await client.post("/admin/plugins/multi/settings", data=form, allow_redirects=False)
    assert resp.status == 303
    settings = client.app[REGISTRY].context("multi").settings
    assert [(i.name, i.api_key.get_secret_value()) for i in settings.instances] == [
        ("Sonarr 4K", KEYS[1])  # its own key, though it moved up to the first place
    ]

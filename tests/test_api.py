"""The JSON API: one error shape under /api/, HTML pages elsewhere, and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import MakeClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from plugins_for_tests import EchoIn, EchoOut, ProbePlugin, SearchQuery
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings
from medianest.web.views import PluginOut

DOC_URI = "urn:medianest:openapi"
JSON = "application/json"


async def enable(client: TestClient, name: str) -> None:
    resp = await client.post(f"/api/v1/plugins/{name}/enable")
    assert resp.status == 200, await resp.text()


async def disable(client: TestClient, name: str) -> None:
    resp = await client.post(f"/api/v1/plugins/{name}/disable")
    assert resp.status == 200, await resp.text()


async def openapi(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return dict(await resp.json())


def validator(doc: dict[str, Any], schema_ref: str) -> Draft202012Validator:
    """A JSON Schema validator for one schema of the document (refs resolved in the document)."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": DOC_URI + schema_ref}, registry=registry)


def body_schema(doc: dict[str, Any], path: str, method: str) -> str:
    return str(
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )


def response_schema(doc: dict[str, Any], path: str, method: str, status: str = "200") -> str:
    content = doc["paths"][path][method]["responses"][status]["content"]
    return str(content["application/json"]["schema"]["$ref"])


@pytest.fixture
async def probe_client(sqlite_settings: Settings, make_client: MakeClient) -> TestClient:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    await enable(client, "probe")
    return client


# --- errors ------------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("GET", "/api/v1/nothing-here", {}, 404, "not_found"),
    ("GET", "/api/nothing", {}, 404, "not_found"),
    ("GET", "/api/v1/plugins/nope", {}, 404, "not_found"),
    ("POST", "/api/v1/plugins/nope/enable", {}, 404, "not_found"),
    ("PUT", "/api/v1/plugins/nope/settings", {"json": {}}, 404, "not_found"),
    ("DELETE", "/api/v1/plugins", {}, 405, "method_not_allowed"),
    ("GET", "/api/v1/plugins/probe/enable", {}, 405, "method_not_allowed"),
    (
        "PUT",
        "/api/v1/plugins/probe/settings",
        {"data": b'{"url": ', "headers": {"Content-Type": "application/json"}},
        400,
        "bad_request",
    ),
    (
        "PUT",
        "/api/v1/plugins/probe/settings",
        {"data": b"url=x", "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "PUT",
        "/api/v1/plugins/probe/settings",
        {
            "data": b'{"url": "' + b"x" * (2 * 1024 * 1024) + b'"}',
            "headers": {"Content-Type": "application/json"},
        },
        413,
        "too_large",
    ),
    ("PUT", "/api/v1/plugins/probe/settings", {"json": {"retries": -1}}, 422, "invalid"),
    ("POST", "/api/v1/probe/echo", {"json": {"text": ""}}, 422, "invalid"),
    ("GET", "/api/v1/probe/search?q=x&limit=many", {}, 422, "invalid"),
    ("GET", "/api/v1/probe/boom", {}, 500, "internal_error"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    ERROR_CASES,
    ids=[f"{c[3]}-{c[0]}-{c[1].split('?')[0]}" for c in ERROR_CASES],
)
async def test_every_api_error_has_the_one_error_shape(
    probe_client: TestClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    resp = await probe_client.request(method, path, **kwargs)
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    # It is the shape the OpenAPI document promises for every 4xx and 5xx.
    doc = await openapi(probe_client)
    errors = validator(doc, "#/components/schemas/ErrorResponse")
    assert list(errors.iter_errors(body)) == []


async def test_error_details_name_the_fields_at_fault(probe_client: TestClient) -> None:
    resp = await probe_client.post("/api/v1/probe/echo", json={"text": "", "colour": "red"})
    details = (await resp.json())["error"]["details"]
    assert {d["field"] for d in details} == {"text", "colour"}
    assert all(d["message"] for d in details)

    resp = await probe_client.get("/api/v1/probe/search?q=x&limit=99&kind=book")
    details = (await resp.json())["error"]["details"]
    assert {d["field"] for d in details} == {"limit", "kind"}

    resp = await probe_client.put("/api/v1/plugins/probe/settings", json={"retries": "lots"})
    error = (await resp.json())["error"]
    assert "probe" in error["message"]
    assert [d["field"] for d in error["details"]] == ["retries"]


async def test_method_not_allowed_says_what_is(probe_client: TestClient) -> None:
    resp = await probe_client.delete("/api/v1/plugins")
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]


async def test_a_crashing_plugin_route_answers_500_without_leaking_the_exception(
    probe_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    resp = await probe_client.get("/api/v1/probe/boom")
    assert resp.status == 500
    text = await resp.text()
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    assert "Traceback" not in text
    # The operator finds the cause in the log.
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)
    # And the server carries on.
    assert (await probe_client.get("/api/v1/probe/hello")).status == 200


async def test_a_disabled_plugin_route_is_a_json_404(probe_client: TestClient) -> None:
    await disable(probe_client, "probe")
    resp = await probe_client.post("/api/v1/probe/echo", json={"text": "hi"})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_errors_outside_the_api_are_html_pages(probe_client: TestClient) -> None:
    resp = await probe_client.get("/no/such/page")
    assert resp.status == 404
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "<h1>Not found</h1>" in page
    assert 'href="/"' in page
    assert '"error"' not in page

    resp = await probe_client.post("/")
    assert resp.status == 405
    assert resp.content_type == "text/html"

    resp = await probe_client.post("/admin/plugins/nope/toggle", data={"enabled": "1"})
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "nope" in await resp.text()


# --- the OpenAPI document --------------------------------------------------------------------


async def test_the_openapi_document_is_valid_and_describes_every_api_route(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])
    probe_paths = {r.path for r in probe.register_routes()}
    # Every plugin's routes (the built-in ones' too) are described only while it is enabled.
    plugin_paths = {r.path for rec in client.app[REGISTRY].records.values() for r in rec.routes}
    assert probe_paths <= plugin_paths

    served = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/")
        and route.method != "HEAD"
    }
    assert ("/api/v1/plugins", "get") in served  # the router view works as expected

    doc = await openapi(client)
    OpenAPIV31SpecValidator(doc).validate()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "MediaNest"
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    core = {(p, m) for p, m in served if p not in plugin_paths}
    assert core <= documented, f"undocumented: {core - documented}"
    assert ("/healthz", "get") in documented
    assert not any(path in plugin_paths for path, _ in documented)
    assert "EchoIn" not in doc["components"]["schemas"]
    # Pages are not part of the API.
    assert not any(not p.startswith(("/api/", "/healthz", "/readyz")) for p in doc["paths"])

    # Enabled, the plugin's API is described too, tagged with its name.
    await enable(client, "probe")
    doc = await openapi(client)
    OpenAPIV31SpecValidator(doc).validate()
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    expected = {(p, m) for p, m in served if p not in plugin_paths or p in probe_paths}
    assert expected <= documented, f"undocumented: {expected - documented}"
    echo = doc["paths"]["/api/v1/probe/echo"]["post"]
    assert echo["tags"] == ["probe"]
    assert echo["summary"] == "Repeat a text"
    assert "/probe/page" not in doc["paths"]  # include_in_schema=False

    await disable(client, "probe")
    doc = await openapi(client)
    assert "/api/v1/probe/echo" not in doc["paths"]
    assert "EchoIn" not in doc["components"]["schemas"]


async def test_the_document_stays_valid_with_plugins_that_share_handler_names(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        sqlite_settings, [("probe", ProbePlugin("probe")), ("probe2", ProbePlugin("probe2"))]
    )
    await enable(client, "probe")
    await enable(client, "probe2")
    doc = await openapi(client)
    OpenAPIV31SpecValidator(doc).validate()
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    assert "/api/v1/probe2/echo" in doc["paths"]


async def test_published_schemas_are_the_models(probe_client: TestClient) -> None:
    doc = await openapi(probe_client)
    schemas = doc["components"]["schemas"]
    template = "#/components/schemas/{model}"
    assert body_schema(doc, "/api/v1/probe/echo", "post") == "#/components/schemas/EchoIn"
    assert response_schema(doc, "/api/v1/probe/echo", "post") == "#/components/schemas/EchoOut"
    assert schemas["EchoIn"] == EchoIn.model_json_schema(ref_template=template)
    assert schemas["EchoOut"] == EchoOut.model_json_schema(ref_template=template)
    assert schemas["EchoIn"]["additionalProperties"] is False
    assert response_schema(doc, "/api/v1/plugins/{name}", "get") == (
        "#/components/schemas/PluginOut"
    )
    assert schemas["PluginOut"] == PluginOut.model_json_schema(ref_template=template)
    for status in ("4XX", "5XX"):
        assert response_schema(doc, "/api/v1/probe/echo", "post", status) == (
            "#/components/schemas/ErrorResponse"
        )

    # Query models become query parameters with the model's own constraints.
    params = {p["name"]: p for p in doc["paths"]["/api/v1/probe/search"]["get"]["parameters"]}
    assert set(params) == set(SearchQuery.model_fields)
    assert params["q"]["required"] is True
    assert params["q"]["description"] == "What to look for"
    assert params["limit"]["schema"]["maximum"] == 50
    kind = validator(doc, "#/paths/~1api~1v1~1probe~1search/get/parameters/1/schema")
    assert kind.is_valid("tv")
    assert not kind.is_valid("book")


BODIES: list[Any] = [
    {"text": "hi"},
    {"text": "hi", "times": 5, "tags": ["a", "b"]},
    {"text": "x" * 20, "times": 1},
    {},
    {"text": ""},
    {"text": "x" * 21},
    {"text": "hi", "times": 0},
    {"text": "hi", "times": 6},
    {"text": "hi", "times": "3"},
    {"text": "hi", "times": True},
    {"text": 5},
    {"text": "hi", "tags": "a"},
    {"text": "hi", "tags": [1]},
    {"text": "hi", "colour": "red"},
    ["hi"],
    "hi",
    None,
]


async def test_the_server_accepts_exactly_the_bodies_the_schema_allows(
    probe_client: TestClient,
) -> None:
    doc = await openapi(probe_client)
    request_schema = validator(doc, body_schema(doc, "/api/v1/probe/echo", "post"))
    reply_schema = validator(doc, response_schema(doc, "/api/v1/probe/echo", "post"))
    accepted = refused = 0
    for body in BODIES:
        resp = await probe_client.post(
            "/api/v1/probe/echo", data=json.dumps(body), headers={"Content-Type": JSON}
        )
        answer = await resp.json()
        if request_schema.is_valid(body):
            assert resp.status == 200, f"{body!r} fits the schema but got {answer}"
            assert reply_schema.is_valid(answer), answer
            accepted += 1
        else:
            assert resp.status == 422, f"{body!r} breaks the schema but got {resp.status}"
            assert answer["error"]["code"] == "invalid"
            refused += 1
    assert accepted == 3
    assert refused == len(BODIES) - 3


async def test_core_answers_match_their_published_schemas(probe_client: TestClient) -> None:
    doc = await openapi(probe_client)
    checks = [
        ("get", "/api/v1/plugins", "/api/v1/plugins"),
        ("get", "/api/v1/plugins/probe", "/api/v1/plugins/{name}"),
        ("post", "/api/v1/plugins/probe/enable", "/api/v1/plugins/{name}/enable"),
        ("get", "/api/v1/plugins/probe/health", "/api/v1/plugins/{name}/health"),
        ("get", "/api/v1/dashboard", "/api/v1/dashboard"),
        ("get", "/healthz", "/healthz"),
    ]
    for method, url, path in checks:
        resp = await probe_client.request(method.upper(), url)
        assert resp.status == 200, url
        schema = validator(doc, response_schema(doc, path, method))
        assert list(schema.iter_errors(await resp.json())) == [], url


async def test_the_document_says_how_to_authenticate(sqlite_settings, make_client) -> None:
    client = await make_client(sqlite_settings)
    doc = await (await client.get("/api/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKey"] == {**schemes["apiKey"], "in": "header", "name": "X-Api-Key"}
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    plugins = doc["paths"]["/api/v1/plugins"]["get"]["security"]
    assert {"bearer": []} in plugins and {"session": []} in plugins

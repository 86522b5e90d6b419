"""The deployment files, checked with the tools that read them in production.

`docker-compose config` (Debian's docker-compose), `nginx -t` and a real nginx in front of a
real MediaNest, `promtool` on the Prometheus configuration and rules (with unit tests of the
alerts), `amtool` on Alertmanager's; the Grafana dashboard and the alert rules only use the
metrics MediaNest exports. In CI a missing tool is a failure, not a skip.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import free_port
from servers import Server, Servers, create_admin, sign_in
from topology import (
    NGINX_CONF,
    FakeDockerDns,
    RunningNginx,
    nginx_command,
    nginx_wrapper,
    session,
    start_portal_at,
    tool,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules" / "medianest.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "medianest.json"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"

# What MediaNest exports (README "Deployment"), by family; histograms add _bucket/_sum/_count.
COUNTERS = {
    "medianest_http_requests_total",
    "medianest_jobs_total",
    "medianest_upstream_requests_total",
    "medianest_request_decisions_total",
}
GAUGES = {
    "medianest_websocket_connections",
    "medianest_jobs_queue_depth",
    "medianest_upstream_breaker_state",
    "medianest_dependency_up",
    "medianest_plugin_health",
    "medianest_requests",
    "medianest_active_users",
    "medianest_build_info",
    "medianest_downloads",
}
HISTOGRAMS = {"medianest_http_request_duration_seconds", "medianest_upstream_request_seconds"}
EXPORTED = (
    COUNTERS
    | GAUGES
    | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | {"up"}
)

SERVICES = {
    "medianest-migrate",
    "medianest-app",
    "medianest-worker",
    "postgresql",
    "redis",
    "nginx",
    "prometheus",
    "grafana",
    "alertmanager",
}

# PromQL words that are not metric names (aggregations and functions are followed by "(").
_PROMQL_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers, Grafana's $variables included
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before in ".$":
            continue  # a duration or number (5m, 1e3), or a Grafana variable
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# --- the compose file ---------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    """A copy of the compose stack as an operator sets it up: the example .env and secret files
    copied to their real names."""
    target = tmp_path / "medianest"
    target.mkdir()
    for name in ("docker-compose.yml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(DEPLOY, target / "deploy")
    shutil.copy(ROOT / ".env.example", target / ".env")
    for example in (target / "deploy" / "secrets").glob("*.example"):
        shutil.copy(example, example.with_suffix(""))
    return target


def compose_config(stack: Path) -> dict[str, Any]:
    docker_compose = tool("docker-compose", "docker-compose")
    checked = run(docker_compose, "-f", "docker-compose.yml", "config", "-q", cwd=stack)
    assert checked.returncode == 0, checked.stderr
    rendered = run(docker_compose, "-f", "docker-compose.yml", "config", cwd=stack)
    assert rendered.returncode == 0, rendered.stderr
    config: dict[str, Any] = yaml.safe_load(rendered.stdout)
    return config


def test_compose_file_is_valid_with_every_service(stack: Path) -> None:
    config = compose_config(stack)
    assert set(config["services"]) == SERVICES


def test_the_portal_can_be_scaled(stack: Path) -> None:
    # `--scale medianest-app=3` fails on a fixed container name or a fixed host port.
    app = compose_config(stack)["services"]["medianest-app"]
    assert "container_name" not in app
    assert not app.get("ports")
    assert app["command"][:2] == ["medianest", "serve"]


def test_each_secret_file_a_container_reads_is_mounted_into_it(stack: Path) -> None:
    config = compose_config(stack)
    for name, service in config["services"].items():
        mounted = {s["source"] if isinstance(s, dict) else s for s in service.get("secrets", [])}
        for variable, value in (service.get("environment") or {}).items():
            if variable.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in mounted, f"{name}: {variable} reads {secret}, not mounted"
                assert secret in config["secrets"]


def test_secrets_are_passed_as_files_never_as_values(stack: Path) -> None:
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
    for name, service in compose_config(stack)["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if secret_like.search(variable.removesuffix("_FILE").removesuffix("_")):
                assert variable.endswith("_FILE"), f"{name}: {variable} holds a secret itself"
                assert str(value).startswith("/run/secrets/"), f"{name}: {variable}={value}"
        url = (service.get("environment") or {}).get("MEDIANEST_DATABASE_URL")
        if url:
            assert urlsplit(url).password is None, f"{name}: the database URL holds a password"


def test_env_example_lists_the_compose_settings_with_their_defaults() -> None:
    # .env.example says that every value in it is the default: an operator copying it changes
    # nothing, and each line there is a setting the compose file reads.
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    defaults = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", COMPOSE.read_text()))
    assert example == defaults


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secret() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*", "the build context must be an allowlist"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for path in allowed:
        assert not path.startswith((".env", "deploy/secrets")) and path != "deploy", path
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources.extend(w.rstrip("/") for w in words[1:-1] if not w.startswith("--"))
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert source in allowed, f".dockerignore leaves {source} out of the build context"


# --- the image's entry point ----------------------------------------------------------------


def entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k3y-value\n")
    password = tmp_path / "password"
    password.write_text("pa55word")
    result = entrypoint(
        {"MEDIANEST_SECRET_KEY_FILE": str(key), "PGPASSWORD_FILE": str(password)},
        "sh",
        "-c",
        'printf "%s|%s|%s" "$MEDIANEST_SECRET_KEY" "$PGPASSWORD" "${MEDIANEST_SECRET_KEY_FILE-}"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "k3y-value|pa55word|"


@pytest.mark.parametrize(
    ("content", "other", "message"),
    [
        (None, {}, "does not exist or is not readable"),
        ("", {}, "is empty"),
        ("CHANGE-ME-medianest-secret-key", {}, "still holds the example value"),
        ("k3y", {"MEDIANEST_SECRET_KEY": "other"}, "both MEDIANEST_SECRET_KEY and"),
    ],
)
def test_entrypoint_refuses_a_secret_it_cannot_use(
    tmp_path: Path, content: str | None, other: dict[str, str], message: str
) -> None:
    key = tmp_path / "key"
    if content is not None:
        key.write_text(content)
    result = entrypoint({"MEDIANEST_SECRET_KEY_FILE": str(key), **other}, "true")
    assert result.returncode == 2
    assert message in result.stderr


# --- nginx ----------------------------------------------------------------------------------


def with_tls(config: str, certs: Path) -> str:
    """The configuration with its "#tls " lines turned on, as the README says."""
    enabled = re.sub(r"^(\s*)#tls ", r"\1", config, flags=re.MULTILINE)
    return enabled.replace("/etc/nginx/certs/", f"{certs}/")


def self_signed(directory: Path) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    # The portal is named through a variable resolved at request time (Docker's DNS), so
    # nginx -t needs no medianest-app host to exist.
    conf = nginx_wrapper(tmp_path / "nginx", NGINX_CONF.read_text())
    result = subprocess.run([*nginx_command(conf), "-t"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_accepts_the_configuration_with_tls_turned_on(tmp_path: Path) -> None:
    original = NGINX_CONF.read_text()
    config = with_tls(original, self_signed(tmp_path / "certs"))
    assert "ssl_certificate" in config and config != original
    conf = nginx_wrapper(tmp_path / "nginx", config)
    result = subprocess.run([*nginx_command(conf), "-t"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Server]:
    """A MediaNest process that trusts the nginx in front of it (on loopback here)."""
    servers = Servers(tmp_path)
    try:
        server = servers.start("app", trusted_proxies="127.0.0.1")
        server.wait_ready()
        create_admin(server.env)
        yield server
    finally:
        servers.stop_all()


@pytest.fixture
def nginx_in_front(tmp_path: Path, portal: Server) -> Iterator[RunningNginx]:
    nginx = RunningNginx(tmp_path / "nginx", NGINX_CONF.read_text(), portal.port)
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture
def tls_nginx_in_front(tmp_path: Path, portal: Server) -> Iterator[RunningNginx]:
    config = with_tls(NGINX_CONF.read_text(), self_signed(tmp_path / "certs"))
    nginx = RunningNginx(tmp_path / "nginx", config, portal.port)
    try:
        yield nginx
    finally:
        nginx.stop()


async def test_through_nginx_pages_websockets_and_static_files_work(
    nginx_in_front: RunningNginx,
) -> None:
    url = f"http://127.0.0.1:{nginx_in_front.http_port}"
    async with session() as http:
        async with http.get(url + "/healthz") as response:
            assert response.status == 200
            assert (await response.json(content_type=None))["status"] == "ok"

        # Static files: compressed, and cached by browsers (their links carry the version).
        async with http.get(
            url + "/static/medianest.css?v=1", headers={"Accept-Encoding": "gzip"}
        ) as response:
            assert response.status == 200
            assert response.headers.get("Content-Encoding") == "gzip"
            assert "max-age=604800" in response.headers["Cache-Control"]

        # Metrics are for Prometheus inside the stack, not for the world.
        async with http.get(url + "/metrics") as response:
            assert response.status == 404

        # Signed in through nginx, a page's websocket (Origin = the address the browser used,
        # port included) is upgraded and stays open.
        await sign_in(http, url)
        async with http.ws_connect(url + "/ws", origin=url, heartbeat=None) as ws:
            assert not ws.closed
            await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
            reply = await ws.receive_json(timeout=5)
            assert reply == {"type": "subscribed", "topics": ["plugins"]}


async def test_with_tls_turned_on_http_goes_to_https_and_medianest_knows_it(
    tls_nginx_in_front: RunningNginx,
) -> None:
    certs = tls_nginx_in_front.conf.parent.parent / "certs"
    context = ssl.create_default_context(cafile=str(certs / "fullchain.pem"))
    context.check_hostname = False
    async with session() as http:
        async with http.get(
            f"http://127.0.0.1:{tls_nginx_in_front.http_port}/healthz", allow_redirects=False
        ) as response:
            assert response.status == 301
            assert response.headers["Location"] == "https://127.0.0.1/healthz"

        async with http.get(
            f"https://127.0.0.1:{tls_nginx_in_front.https_port}/healthz", ssl=context
        ) as response:
            assert response.status == 200
            # nginx said X-Forwarded-Proto: https, and MediaNest trusts nginx: it asks for HSTS.
            assert "max-age=" in response.headers.get("Strict-Transport-Security", "")


async def test_nginx_spreads_requests_over_every_replica_and_skips_a_stopped_one(
    tmp_path: Path,
) -> None:
    # Two portal processes on the same port at two addresses, as two replicas of
    # medianest-app are; nginx learns them from DNS, as it does from Docker's.
    servers = Servers(tmp_path)
    dns: FakeDockerDns | None = None
    nginx: RunningNginx | None = None
    try:
        port = free_port()
        a = start_portal_at(servers, "a", "127.0.0.1", port)
        b = start_portal_at(servers, "b", "127.0.0.2", port)
        dns = FakeDockerDns({"medianest-app": ["127.0.0.1", "127.0.0.2"]})
        nginx = RunningNginx(tmp_path / "nginx", NGINX_CONF.read_text(), port, dns)
        url = f"http://127.0.0.1:{nginx.http_port}"
        async with session() as http:
            for i in range(30):
                async with http.get(f"{url}/healthz?via=nginx-{i}") as response:
                    assert response.status == 200
            # The access log names the path (never the query string) of each answered request.
            answered = {s.name: s.output().count("GET /healthz 200") for s in (a, b)}
            assert answered["a"] and answered["b"], answered

            # B stops while DNS still names it: every request is still answered (by A).
            b.stop()
            for i in range(30):
                async with http.get(f"{url}/healthz?after=stop-{i}") as response:
                    assert response.status == 200
    finally:
        if nginx is not None:
            nginx.stop()
        if dns is not None:
            dns.stop()
        servers.stop_all()


# --- Prometheus and Alertmanager ------------------------------------------------------------


def test_prometheus_accepts_its_configuration_and_rules(tmp_path: Path) -> None:
    promtool = tool("promtool", "prometheus")
    # As in the container: the metrics token is a secret file next to the configuration.
    config = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, config)
    token = tmp_path / "metrics_token"
    shutil.copy(DEPLOY / "secrets" / "metrics_token.example", token)
    text = (config / "prometheus.yml").read_text()
    assert "/run/secrets/metrics_token" in text
    (config / "prometheus.yml").write_text(text.replace("/run/secrets/metrics_token", str(token)))
    result = run(promtool, "check", "config", config / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules/medianest.yml" in result.stdout  # the rules were read and checked too
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should() -> None:
    result = run(tool("promtool", "prometheus"), "test", "rules", RULES.with_suffix(".test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_accepts_its_configuration() -> None:
    amtool = tool("amtool", "prometheus-alertmanager")
    result = run(amtool, "check-config", DEPLOY / "alertmanager" / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_reads_only_exported_metrics_and_explains_itself() -> None:
    used: set[str] = set()
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= EXPORTED, f"{rule['alert']} reads {names - EXPORTED}"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used |= names
    # A process down, a dependency down, an upstream down, errors, a stuck queue.
    assert {
        "up",
        "medianest_dependency_up",
        "medianest_plugin_health",
        "medianest_upstream_breaker_state",
        "medianest_http_requests_total",
        "medianest_jobs_queue_depth",
        "medianest_jobs_total",
    } <= used


# --- Grafana --------------------------------------------------------------------------------


def test_the_dashboard_shows_every_metric_from_the_provisioned_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uid = datasources[0]["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names <= EXPORTED, f"{panel['title']!r} reads {names - EXPORTED}"
            used |= names
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    missing = (COUNTERS | GAUGES | HISTOGRAMS) - families
    assert not missing, f"the dashboard shows nothing of {missing}"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "medianest.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards" in COMPOSE.read_text()


def test_metric_names_are_read_from_promql() -> None:
    # The two checks above are only as good as this.
    expr = (
        'sum by (route) (rate(foo_total{status=~"5..", a="b"}[5m] offset 1h)) '
        "/ on (route) group_left(x) bar > 0.05 "
        "and histogram_quantile(0.9, baz_bucket[$__rate_interval]) "
        "or vector(0) unless absent(up == 1) * 1e3"
    )
    assert metric_names(expr) == {"foo_total", "bar", "baz_bucket", "up"}


async def test_the_metric_names_the_files_read_are_the_ones_medianest_exports() -> None:
    from medianest.core.metrics import REGISTRY
    from medianest.core.plugins import PluginRegistry

    # The plugins' gauges (register_metrics) are exported too: medianest_downloads is the
    # youtube plugin's.
    plugins = PluginRegistry()
    plugins.discover()
    await plugins.collect()
    exported = {m.name for record in plugins.records.values() for m in record.metrics}
    for family in REGISTRY.collect():
        if family.type == "counter":
            exported.add(f"{family.name}_total")
        elif family.type == "histogram":
            exported |= {f"{family.name}{s}" for s in ("_bucket", "_sum", "_count")}
        else:
            exported.add(family.name)
    assert EXPORTED - {"up"} <= exported, EXPORTED - {"up"} - exported

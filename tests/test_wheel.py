"""A wheel built from the repository, installed into a new virtualenv (not editable) and run from
an empty folder, serves every page and static file; the example plugin builds and installs
against that wheel, not the source tree.

This is what a person who installs MediaNest as a package, or a plugin author who depends on
it, gets. It needs the package index (or pip's cache) to install the dependencies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, require

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a wheel's admin password"
LEFT_OUT = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "data", "*_cache")


def run(*args: str | Path, cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False, **kwargs
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the built wheels of MediaNest and the example plugin; its bin/."""
    try:
        import build  # noqa: F401
    except ImportError:
        require(False, "the 'build' package is not installed (pip install -e '.[test]')")
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tree without what a developer's checkout accumulates (a
    # setuptools build/ folder left from an earlier layout would go into the wheel).
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LEFT_OUT))
    dist = base / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, source, cwd=base)
    (wheel,) = dist.glob("medianest-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=base)
    pip = venv / "bin" / "pip"
    run(pip, "install", "--quiet", wheel, cwd=base)
    # The example builds in its own isolated environment and installs against the wheel
    # above: nothing of the source tree is on its path.
    run(pip, "install", "--quiet", source / "examples" / "medianest-example", cwd=base)
    return venv / "bin"


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``medianest serve`` of the installed wheel, started in an empty folder."""
    empty = tmp_path_factory.mktemp("empty")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env |= {"MEDIANEST_DATA_DIR": str(empty / "data"), "PYTHONPATH": ""}
    medianest = installed / "medianest"
    run(medianest, "migrate", cwd=empty, env=env)
    run(
        medianest,
        "create-admin",
        "--username",
        "admin",
        "--password-stdin",
        cwd=empty,
        env=env,
        input=PASSWORD + "\n",
    )
    for plugin in ("example", "youtube"):
        run(medianest, "plugins", "enable", plugin, cwd=empty, env=env)
    port = free_port()
    process = subprocess.Popen(
        [str(medianest), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=empty,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"medianest serve stopped:\n{process.stdout.read()}"  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "medianest serve did not answer in 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_installed_package_is_not_the_source_tree(installed: Path) -> None:
    python = installed / "python"
    script = "import medianest, medianest_example; print(medianest.__file__)"
    where = run(python, "-c", script, cwd=installed).stdout.strip()
    assert "site-packages" in where
    assert not where.startswith(str(ROOT))


def test_every_static_file_is_served(served: str) -> None:
    static = ROOT / "medianest" / "web" / "static"
    files = sorted(p.name for p in static.iterdir())
    assert files, "the web shell has no static files"
    for name in files:
        answer = httpx.get(f"{served}/static/{name}")
        assert answer.status_code == 200, name
        assert answer.content == (static / name).read_bytes(), name


def test_a_plugins_own_files_come_from_its_installed_package(served: str) -> None:
    script = ROOT / "plugins" / "youtube" / "static" / "downloads.js"
    with httpx.Client(base_url=served) as client:
        me = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert me.status_code == 200
        answer = client.get("/youtube/downloads.js")
        assert answer.status_code == 200
        assert answer.content == script.read_bytes()
        page = client.get("/youtube")
        assert page.status_code == 200
        assert "/youtube/downloads.js" in page.text


def test_every_page_renders_for_a_signed_in_admin(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        login = client.get("/login")
        assert login.status_code == 200
        assert "<form" in login.text
        me = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert me.status_code == 200, me.text
        dashboard = client.get("/")
        assert dashboard.status_code == 200
        # Every link of the navigation bar (the plugins' included), and the pages it leaves out.
        links = set(re.findall(r'<li><a href="(/[^"]*)"', dashboard.text))
        assert {"/", "/search", "/requests", "/admin/plugins", "/youtube"} <= links
        pages = links | {"/admin/users", "/admin/audit", "/admin/system", "/account"}
        pages |= {"/notifications"}
        for page in sorted(pages):
            answer = client.get(page)
            assert answer.status_code == 200, f"{page}: {answer.status_code}"
            assert "</html>" in answer.text, page
            assert "/static/medianest.css" in answer.text, page


def test_the_example_plugin_installed_from_its_own_wheel_answers(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        me = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert me.status_code == 200
        hello = client.get("/example/hello")
        assert hello.status_code == 200, hello.text
        plugins = client.get("/api/v1/plugins").json()["plugins"]
        example = next(p for p in plugins if p["name"] == "example")
        assert example["status"] == "active"
        # Its widget's template comes from its installed package.
        assert "hello" in client.get("/").text

"""The tree keeps to docs/architecture.md: each package imports only what its row allows."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "architecture.md"

# Where each package's files are, by the name the map gives it.
SOURCES = {
    "medianest.core": ROOT / "medianest" / "core",
    "medianest.web": ROOT / "medianest" / "web",
    "medianest.accounts": ROOT / "medianest" / "accounts",
    "medianest.requests": ROOT / "medianest" / "requests",
    "medianest.ops": ROOT / "medianest" / "ops",
    "medianest.migrations": ROOT / "medianest" / "migrations",
    "medianest.testing": ROOT / "medianest" / "testing",
}
PLUGINS = ROOT / "plugins"
EXAMPLE = ROOT / "examples" / "medianest-example" / "medianest_example"


def rules() -> dict[str, set[str]]:
    """The map's table: package -> the packages it may import."""
    table: dict[str, set[str]] = {}
    for line in MAP.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or "`" not in cells[0]:
            continue
        # A package's name, or "third-party" for the row of plugins installed with pip.
        package = cells[0].split("`")[1] if cells[0].startswith("`") else cells[0].split()[0]
        table[package] = set(re.findall(r"`([a-z_.]+)`", cells[2]))
    return table


def module_name(path: Path, package: str, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imports(path: Path, module: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import of ``path``, relative ones resolved."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                target = ".".join([*base, target] if target else base)
            yield node.lineno, target, [a.name for a in node.names]


def allowed(target: str, names: list[str], may: set[str], own: str) -> bool:
    """Whether importing ``names`` from ``target`` keeps to ``may`` (and the package itself)."""
    if not target.startswith(("medianest", "medianest_plugins", "medianest_example")):
        return True  # the standard library and third-party packages
    if target == "medianest":
        # The top package: its public names (and __version__) for everyone listed as using it,
        # but not its subpackages through `from medianest import core`.
        subpackages = {"core", "web", "accounts", "requests", "ops", "migrations", "testing"}
        if any(n in subpackages for n in names):
            return any(f"medianest.{n}" in may or f"medianest.{n}" == own for n in names)
        return "medianest" in may or own == "medianest" or "__version__" in names
    for package in [*may, own]:
        if package == "medianest":
            continue
        if target == package or target.startswith(package + "."):
            return True
    return False


def violations() -> list[str]:
    table = rules()
    found = []
    checked = [(package, folder, folder) for package, folder in SOURCES.items()]
    for plugin in sorted(p for p in PLUGINS.iterdir() if (p / "__init__.py").exists()):
        checked.append((f"medianest_plugins.{plugin.name}", plugin, plugin))
    checked.append(("medianest_example", EXAMPLE, EXAMPLE))
    for package, folder, base in checked:
        key = package if package in table else None
        if key is None and package.startswith("medianest_plugins."):
            key = "medianest_plugins.*"
        if key is None and package == "medianest_example":
            key = "third-party"
        assert key is not None, f"docs/architecture.md has no row for {package}"
        may = table[key]
        for path in sorted(folder.rglob("*.py")):
            module = module_name(path, package, base)
            for line, target, names in imports(path, module):
                if not allowed(target, names, may, package):
                    where = path.relative_to(ROOT)
                    found.append(f"{where}:{line} imports {target} ({', '.join(names)})")
    return found


def test_the_map_lists_every_package() -> None:
    table = rules()
    for package in SOURCES:
        assert package in table, f"docs/architecture.md has no row for {package}"
    assert "medianest_plugins.*" in table
    assert table["medianest.core"] == {"medianest.core"}


def test_every_import_keeps_to_the_map() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("package", "target", "names"),
    [
        ("medianest.core", "medianest.requests.desk", ["RequestDesk"]),
        ("medianest.core", "medianest.web", ["views"]),
        ("medianest_plugins.plex", "medianest.core.http", ["ServiceClient"]),
        ("medianest_plugins.plex", "medianest", ["core"]),
        ("medianest_plugins.plex", "medianest_plugins.arr", ["client"]),
        ("medianest.web", "medianest.requests.keys", ["NOTIFIER"]),
    ],
)
def test_an_import_across_the_rule_is_caught(package: str, target: str, names: list[str]) -> None:
    table = rules()
    may = table["medianest_plugins.*" if package.startswith("medianest_plugins.") else package]
    assert not allowed(target, names, may, package)


def test_imports_within_the_rule_pass() -> None:
    table = rules()
    assert allowed("medianest", ["PluginContext"], table["medianest_plugins.*"], "x")
    assert allowed("medianest.core.auth", ["Permission"], table["medianest.requests"], "r")
    assert allowed("aiohttp", ["web"], table["medianest.core"], "medianest.core")


# --- the kernel and the domains name no service in what people read -------------------------

# The packages whose words are MediaNest's own: a service's name in them must come from the
# plugin or the server that answered ("Available in Plex" is the plex plugin's word).
WORDED = [
    "medianest.core",
    "medianest.web",
    "medianest.accounts",
    "medianest.requests",
    "medianest.ops",
]
SERVICES = re.compile(r"\b(?:Plex|Radarr|Sonarr|Tautulli|TMDB|YouTube)\b|plex\.tv")


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of ``tree`` (explanations for developers)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.add(id(first.value))
    return found


def services_in_python(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string a Python module holds, docstrings aside (messages,
    labels, descriptions: what a page or an API answer may show), that names a service."""
    tree = ast.parse(source)
    skipped = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
        and SERVICES.search(node.value)
    ]


def services_in_page(text: str, comments: str) -> list[tuple[int, str]]:
    """(line, text) of every line of a template or script, comments aside, naming a service."""
    kept = re.sub(comments, lambda m: "\n" * m.group().count("\n"), text, flags=re.DOTALL)
    return [
        (n, line.strip()) for n, line in enumerate(kept.splitlines(), 1) if SERVICES.search(line)
    ]


TEMPLATE_COMMENTS = r"\{#.*?#\}|<!--.*?-->"
SCRIPT_COMMENTS = r"/\*.*?\*/|(?<![:\\])//[^\n]*"


def service_names() -> list[str]:
    found = []
    for package in WORDED:
        folder = SOURCES[package]
        for path in sorted(folder.rglob("*.py")):
            found += [
                f"{path.relative_to(ROOT)}:{n}: {t!r}"
                for n, t in services_in_python(path.read_text())
            ]
        for pattern, comments in (("*.html", TEMPLATE_COMMENTS), ("*.js", SCRIPT_COMMENTS)):
            for path in sorted(folder.rglob(pattern)):
                lines = services_in_page(path.read_text(), comments)
                found += [f"{path.relative_to(ROOT)}:{n}: {t}" for n, t in lines]
    return found


def test_the_kernel_and_the_domains_name_no_service_in_what_people_read() -> None:
    assert service_names() == []


def test_a_service_named_in_what_people_read_is_caught() -> None:
    source = '''"""Docstrings may explain with Plex."""


def status():
    """So may a function's (Sonarr)."""
    # And comments: TMDB.
    return f"Available in {where}" if where else "Available in Plex"
'''
    assert services_in_python(source) == [(7, "Available in Plex")]
    page = (
        "{# YouTube #}\n<!-- Radarr -->\n<p>see whether it is in Plex already</p>\n<p>{{ x }}</p>"
    )
    assert services_in_page(page, TEMPLATE_COMMENTS) == [
        (3, "<p>see whether it is in Plex already</p>")
    ]
    script = '// a Sonarr\'s profiles\nconst url = "https://x/";\nshow("Not in Tautulli");'
    assert services_in_page(script, SCRIPT_COMMENTS) == [(3, 'show("Not in Tautulli");')]
    assert services_in_python('LABEL = "sign in with plex.tv"') == [(1, "sign in with plex.tv")]
    # A service's id in code (a provider's, an id scheme's) is not what people read.
    assert services_in_python('if provider == "plex" and ids.get("tmdb"): pass') == []

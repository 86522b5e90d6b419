"""The revisions of the migration scripts, the kernel's and the plugins', read without Alembic.

The kernel's scripts are in ``medianest/migrations/versions``; a plugin's are in the
``migrations`` folder of its package, on an Alembic branch of their own that depends on the
kernel revision they need (``depends_on``). Every start checks the schema, and importing
Alembic for that would cost about a tenth of the process's memory: the scripts are small modules
whose ``revision``, ``down_revision`` and ``depends_on`` are literals, read here with ``ast``
without running them.

Alembic's version table holds the newest revision of each branch, and leaves out a revision
that another one there depends on (a plugin's first revision, say, depending on the kernel's
newest): what is applied is those rows and everything they come from or depend on.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CORE_VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
# Where plugins register; ``medianest.core.plugins`` discovers them through the same group.
ENTRY_POINT_GROUP = "medianest.plugins"
# The folder of a plugin's package that holds its Alembic scripts.
PLUGIN_FOLDER = "migrations"


@dataclass(frozen=True)
class Script:
    """One migration script, as far as the order of migrations goes."""

    revision: str
    down: tuple[str, ...]
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class Branch:
    """A plugin's own migrations: the scripts in its package's ``migrations`` folder.

    ``tables`` are the tables the plugin declares (``register_tables``); ``None`` when they are
    not known (the plugin was not asked), so that it is never taken for a new one.
    """

    name: str
    folder: Path
    tables: frozenset[str] | None = None


def _names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"not a revision or a sequence of revisions: {value!r}")


def _script(path: Path) -> Script | None:
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in (
                "revision",
                "down_revision",
                "depends_on",
            ):
                values[target.id] = ast.literal_eval(value)
    revision = values.get("revision")
    if not isinstance(revision, str):
        return None  # not a migration script
    return Script(revision, _names(values.get("down_revision")), _names(values.get("depends_on")))


def read(folder: Path) -> Mapping[str, Script]:
    """The scripts of ``folder`` by revision (files starting with ``_`` are not scripts)."""
    try:
        changed = folder.stat().st_mtime_ns
    except OSError:
        return {}
    return _read(folder, changed)


@functools.lru_cache(maxsize=64)
def _read(folder: Path, _changed: int) -> Mapping[str, Script]:
    found = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        script = _script(path)
        if script is not None:
            found[script.revision] = script
    return found


class Graph:
    """The revisions of the kernel and of ``branches``, and how they follow one another."""

    def __init__(self, branches: Iterable[Branch] = ()) -> None:
        self.core = read(CORE_VERSIONS)
        self.branches = {b.name: read(b.folder) for b in branches}
        self.scripts: dict[str, Script] = dict(self.core)
        for scripts in self.branches.values():
            self.scripts.update(scripts)

    def __contains__(self, revision: str) -> bool:
        return revision in self.scripts

    def applied(self, rows: Iterable[str]) -> set[str]:
        """Every revision the version table's ``rows`` stand for (unknown rows left out)."""
        done: set[str] = set()
        todo = [r for r in rows if r in self.scripts]
        while todo:
            revision = todo.pop()
            if revision in done:
                continue
            done.add(revision)
            script = self.scripts.get(revision)
            if script is not None:
                todo.extend(script.down)
                todo.extend(script.depends_on)
        return done

    def newest(self, revisions: Iterable[str]) -> str | None:
        """The newest of ``revisions`` (of one line of migrations): the one no other follows;
        several joined with commas when the line has split."""
        chosen = set(revisions)
        following = {d for r in chosen for d in self.scripts[r].down}
        heads = sorted(chosen - following)
        return ",".join(heads) or None


def _package_folder(module: str) -> Path | None:
    """The folder of the package ``module``, found without importing it (its parent packages
    are imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def migrations_folder(module: str) -> Path | None:
    """The ``migrations`` folder of the plugin package ``module``, if it has scripts."""
    folder = _package_folder(module)
    if folder is None:
        return None
    found = folder / PLUGIN_FOLDER
    return found if found.is_dir() and read(found) else None


@functools.cache
def installed_branches() -> tuple[Branch, ...]:
    """The migrations of every installed plugin, found through its entry point without
    importing it: a plugin that fails to import still has its revisions known."""
    found: list[Branch] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        folder = migrations_folder(ep.module)
        if folder is not None and ep.name not in {b.name for b in found}:
            found.append(Branch(ep.name, folder))
    return tuple(found)

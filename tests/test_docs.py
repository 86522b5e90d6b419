"""The plugin author docs cover every hook, their examples are valid Python, their testing
section runs as written, and the example plugin's README commands work against a server."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import require

from medianest.core import hookspecs
from medianest.testing import Portal

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def _hooks() -> list[str]:
    return [
        name
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, f"{hookspecs.PROJECT}_spec")
    ]


def _sections() -> dict[str, str]:
    text = DOCS.read_text()
    parts = re.split(r"^### (\w+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_there_are_hooks_to_document() -> None:
    assert len(_hooks()) >= 14


def test_every_hook_has_a_section_with_signature_and_example() -> None:
    sections = _sections()
    missing = [hook for hook in _hooks() if hook not in sections]
    assert not missing, f"docs/plugins.md has no section for: {', '.join(missing)}"
    for hook in _hooks():
        body = sections[hook]
        spec = inspect.signature(getattr(hookspecs, hook))
        blocks = re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)
        assert len(blocks) >= 2, f"{hook}: needs a signature block and an example"
        assert blocks[0].strip().startswith(f"{hook}("), f"{hook}: first block is the signature"
        for param in spec.parameters:
            assert param in blocks[0], f"{hook}: signature in the docs lacks {param!r}"
        documented = re.findall(r"(\w+):", blocks[0].split("->")[0])
        assert documented == list(spec.parameters), f"{hook}: the docs' arguments, in order"
        for block in blocks:
            ast.parse(block if "->" not in block.splitlines()[0] else "pass")


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    stale = set(_sections()) - set(_hooks())
    assert not stale, f"docs/plugins.md documents hooks that do not exist: {stale}"


def test_first_result_hooks_are_documented_as_such_and_no_others() -> None:
    sections = _sections()
    for hook in _hooks():
        declared = getattr(getattr(hookspecs, hook), f"{hookspecs.PROJECT}_spec")["firstresult"]
        documented = "first-result hook" in sections[hook]
        assert documented == declared, f"{hook}: firstresult={declared} in its spec"


def _testing_section() -> str:
    text = DOCS.read_text()
    return text.split("## Testing a plugin", 1)[1].split("\n## ", 1)[0]


PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto"]


def test_the_testing_section_runs_as_written(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", _testing_section(), flags=re.DOTALL)
    assert "medianest.core" not in block
    (tmp_path / "test_from_the_docs.py").write_text(block)
    done = subprocess.run(
        [*PYTEST, "-W", "ignore::aiohttp.web_exceptions.NotAppKeyWarning", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


EXAMPLE_README = DOCS.parent.parent / "examples" / "medianest-example" / "README.md"


def _curl_commands() -> list[str]:
    """The README's shell commands that talk to a running server, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", EXAMPLE_README.read_text(), flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith("curl "):
                commands.append(command.strip())
    return commands


async def test_the_example_readme_commands_work_as_written(tmp_path: Path) -> None:
    require(shutil.which("curl"), "curl is not installed")
    commands = _curl_commands()
    assert len(commands) == 4, commands
    async with Portal(tmp_path) as portal:
        token = await (await portal.admin()).api_token("readme")
        answers = []
        for command in commands:
            command = command.replace("http://127.0.0.1:8080", portal.url)
            done = await asyncio.create_subprocess_shell(
                f"{command} --silent --show-error --fail-with-body",
                env={"PATH": os.environ["PATH"], "TOKEN": token},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await done.communicate()
            assert done.returncode == 0, f"{command}: {out.decode()} {err.decode()}"
            answers.append(json.loads(out))
    enabled, hello, ping, pings = answers
    assert enabled["status"] == "active"
    assert hello == {"greeting": "Hello from the example plugin!"}
    assert ping["message"] == "hi"
    assert ping["count"] == 1
    assert [p["message"] for p in pings["pings"]] == ["hi"]

"""The plugin author docs cover every hook, and their examples are valid Python."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from medianest.core import hookspecs

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

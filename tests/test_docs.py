"""Code examples in docs/ run, so they cannot rot.

A page opts in block by block: a fence whose info string is ``python test`` runs; any
other fence (``python``, ``bash`` ...) is only shown. The blocks of one page run in order
in one namespace, so later examples build on earlier ones, with ``REDIS_URL`` pointing at
the embedded test server and ``REDKIT_PREFIX`` set to a prefix of the test's own. Setup a
reader need not see (stand-ins for application functions) goes in a ``python test``
block inside an HTML comment: the page hides it, this test runs it. Tracebacks point at
the page's own line numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^```python test[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def blocks(page: Path) -> list[tuple[int, str]]:
    """``(first line number, source)`` of each runnable block of ``page``."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


PAGES = sorted(page for page in DOCS.rglob("*.md") if blocks(page))


def test_foundation_pages_opt_in() -> None:
    names = {page.name for page in PAGES}
    assert {"getting-started.md", "configuration.md", "locks.md", "embedded.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_examples_run(
    page: Path, standalone_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDKIT_EMBEDDED"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("REDIS_URL", standalone_url)
    monkeypatch.setenv("REDKIT_PREFIX", prefix)
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for line, source in blocks(page):
        code = compile("\n" * (line - 1) + source, str(page), "exec")
        exec(code, namespace)  # our own documentation
    for value in namespace.values():  # close what the examples left open
        close = getattr(value, "close", None)
        if type(value).__name__ == "Redkit" and callable(close):
            close()

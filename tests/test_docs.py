"""The code in README.md and docs/ runs, so it cannot rot.

Every ```` ```python ```` fence says what the test does with it, in its info string:

``python test``
    Executed. The blocks of one page run in order in one namespace, so later examples
    build on earlier ones, with ``REDIS_URL`` pointing at the embedded test server and
    ``REDKIT_PREFIX`` set to a prefix of the test's own. Setup a reader need not see
    (stand-ins for the application's own functions, a test client that calls the app)
    goes in a ``python test`` block inside an HTML comment: the page hides it, this test
    runs it. Tracebacks point at the page's own line numbers.
``python no-run``
    Only compiled: for the rare block that needs what a test cannot give it (a Django
    project's settings module, a second process, a real deployment). Prefer ``python
    test`` with the framework's test client wherever it works.

A plain ``python`` fence (or any other word after it) fails the test, unless the page is
listed in :data:`PENDING` with the reason it is not converted yet. Other languages
(``bash``, ``text``, ``toml`` ...) are shown only.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

from redkit import Redkit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Pages whose plain ``python`` blocks are still to be converted, and why they are not yet.
#: Remove a page as soon as its last plain block is gone (a test insists).
PENDING: dict[str, str] = {}

RUN, COMPILE = "python test", "python no-run"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


class Block(NamedTuple):
    info: str  # the fence's info string, whitespace collapsed: "python test"
    line: int  # the line of the page where the code starts
    source: str


def fences(page: Path) -> list[Block]:
    """Every fenced block of ``page`` (hidden ones in HTML comments included)."""
    text = page.read_text()
    return [
        Block(
            " ".join(m.group("info").split()).lower(),
            text.count("\n", 0, m.start("body")) + 1,
            textwrap.dedent(m.group("body")),
        )
        for m in FENCE.finditer(text)
    ]


def blocks(page: Path, info: str = RUN) -> list[Block]:
    """The blocks of ``page`` with info string ``info``."""
    return [block for block in fences(page) if block.info == info]


def unconverted(page: Path) -> list[Block]:
    """Python blocks that neither run nor say why they cannot."""
    return [
        block
        for block in fences(page)
        if block.info.split()[:1] in (["python"], ["py"], ["python3"])
        and block.info not in (RUN, COMPILE)
    ]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
RUNNABLE = [page for page in PAGES if blocks(page)]


def test_foundation_pages_opt_in() -> None:
    names = {_name(page) for page in RUNNABLE}
    assert {
        "README.md",
        "docs/getting-started.md",
        "docs/configuration.md",
        "docs/embedded.md",
        "docs/locks.md",
    } <= names


def test_readme_commands_stay_and_exist() -> None:
    """The README's two commands, word for word, and what they name exists."""
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[all]" && redkit demo' in readme
    assert 'pip install -e ".[dev]" && python -m pytest' in readme
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^all = \[", pyproject, re.MULTILINE)
    assert re.search(r"^dev = \[", pyproject, re.MULTILINE)
    assert 'redkit = "redkit.cli:main"' in pyproject
    import click

    from redkit.cli import build

    group = build()
    assert group.get_command(click.Context(group), "demo") is not None


@pytest.mark.parametrize("page", PAGES, ids=[_name(p) for p in PAGES])
def test_every_python_block_runs_or_says_why(page: Path) -> None:
    if _name(page) in PENDING:
        pytest.skip(f"pending conversion: {PENDING[_name(page)]}")
    lines = [f"line {block.line}: ```{block.info}" for block in unconverted(page)]
    assert not lines, (
        f"{_name(page)}: make these ```python test (or, if they cannot run, ```python "
        f"no-run): {'; '.join(lines)}"
    )


def test_pending_pages_are_still_pending() -> None:
    for name in sorted(PENDING):
        page = ROOT / name
        assert page.exists(), f"{name} is gone: remove it from PENDING"
        assert unconverted(page), f"{name} has no unconverted block left: remove it from PENDING"


def test_no_run_examples_compile() -> None:
    for page in PAGES:
        for block in blocks(page, COMPILE):
            compile("\n" * (block.line - 1) + block.source, str(page), "exec")


@pytest.mark.parametrize("page", RUNNABLE, ids=[_name(p) for p in RUNNABLE])
def test_examples_run(
    page: Path, standalone_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDKIT_EMBEDDED"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("REDIS_URL", standalone_url)
    monkeypatch.setenv("REDKIT_PREFIX", prefix)
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    try:
        for block in blocks(page):
            source = "\n" * (block.line - 1) + block.source
            code = compile(source, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)  # our own documentation
            if inspect.iscoroutine(result):  # a block with top-level await, as in a REPL
                asyncio.run(result)
    finally:
        for value in namespace.values():  # close what the examples left open
            if isinstance(value, Redkit):
                value.close()

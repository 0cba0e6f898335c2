"""The public API surface: exports, import layering, and sync/async parity."""

from __future__ import annotations
import __future__

import ast
import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import pytest

import redkit
import redkit.errors

PACKAGE = Path(redkit.__file__).parent

# --- exports ---------------------------------------------------------------------------


def test_exported_members() -> None:
    """``redkit.__all__`` is sorted and names exactly the public, non-module attributes
    (those imported on first use included: ``dir(redkit)`` lists them)."""
    assert redkit.__all__ == sorted(redkit.__all__)
    public = {
        name
        for name in dir(redkit)
        if not name.startswith("_")
        and not isinstance(getattr(redkit, name), (types.ModuleType, __future__._Feature))
    }
    assert set(redkit.__all__) - {"__version__"} == public
    for name in redkit.__all__:
        assert hasattr(redkit, name), name


def test_errors_module_lists_every_error() -> None:
    errors = redkit.errors
    assert errors.__all__ == sorted(errors.__all__)
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.RedkitError)
    }
    assert set(errors.__all__) == defined
    for name in defined:
        assert name in (errors.__doc__ or ""), f"draw {name} in the errors.py docstring tree"


# --- import layering -------------------------------------------------------------------

CORE = {
    "_lazy",
    "autopipe",
    "client",
    "config",
    "connection",
    "direct",
    "embedded",
    "errors",
    "failure",
    "keys",
    "loops",
    "ops",
    "pool",
    "runtime",
    "scripts",
    "serializers",
}
OUTER = {"integrations", "cli", "dashboard", "demo"}
API = {"facade"}  # Redkit / AsyncRedkit: the core plus one factory per capability


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``redkit.x.y``), from the source tree."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in API:
        return "api"  # redkit/__init__.py re-exports everything; the facade builds on all
    return "core" if parts[1] in CORE else "outer" if parts[1] in OUTER else "capability"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str, *, top_level_only: bool) -> set[str]:
    """The redkit modules ``path`` imports; with ``top_level_only``, those run at import
    time (not inside functions, not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(_modules())
            found.update(submodules or {base})
        skip = top_level_only and (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            or (isinstance(node, ast.If) and _is_type_checking(node))
        )
        if not skip:
            stack.extend(ast.iter_child_nodes(node))
    modules = _modules()
    return {name for name in found if name in modules and name != module}


def test_layers_are_known() -> None:
    present = {name.split(".")[1] for name in _modules() if "." in name}
    assert present >= CORE, f"core modules missing: {CORE - present}"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) == "core"))
def test_core_never_imports_capabilities_or_outer_layers(module: str) -> None:
    """Not even lazily, inside a function: the core knows no capability."""
    imported = _imports(_modules()[module], module, top_level_only=False)
    wrong = sorted(name for name in imported if _layer(name) in {"capability", "outer", "api"})
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) == "capability"))
def test_capabilities_use_only_the_public_core(module: str) -> None:
    """A capability imports public names from the core, never ``_private`` ones."""
    tree = ast.parse(_modules()[module].read_text())
    private = sorted(
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and _layer(node.module) == "core"
        for alias in node.names
        if alias.name.startswith("_")
    )
    assert not private, f"{module} imports private core names {private}"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) == "capability"))
def test_capabilities_never_import_outer_layers(module: str) -> None:
    imported = _imports(_modules()[module], module, top_level_only=False)
    wrong = sorted(name for name in imported if _layer(name) in {"outer", "api"})
    assert not wrong, f"{module} imports {wrong} (the facade, integrations, cli build on it)"


# --- sync / async parity ---------------------------------------------------------------

ASYNC_NAMES = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
}


# framework glue needs a configured framework to import (Django settings ...)
NOT_SCANNED = ("redkit.integrations", "redkit.demo")


def _all_classes() -> dict[str, list[type]]:
    by_name: dict[str, list[type]] = {}
    for info in pkgutil.walk_packages(redkit.__path__, "redkit."):
        if info.name.endswith("__main__") or info.name.startswith(NOT_SCANNED):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == info.name:
                by_name.setdefault(name, []).append(value)
    return by_name


def _pairs() -> list[tuple[type, type]]:
    classes = _all_classes()
    pairs = []
    for name, async_classes in classes.items():
        if not name.startswith("Async") or name[5:] not in classes:
            continue
        for async_cls in async_classes:
            candidates = classes[name[5:]]
            same_module = [c for c in candidates if c.__module__ == async_cls.__module__]
            pairs.append(((same_module or candidates)[0], async_cls))
    return sorted(pairs, key=lambda pair: pair[1].__qualname__)


PAIRS = _pairs()


def _surface(cls: type, rename: dict[str, str]) -> dict[str, inspect.Signature | None]:
    surface: dict[str, inspect.Signature | None] = {}
    for name in dir(cls):
        if name.startswith("_") and name not in rename and name not in ASYNC_NAMES.values():
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if name in ASYNC_NAMES.values() and not callable(attr):
            continue
        signature = None
        if inspect.isfunction(attr):
            signature = inspect.signature(attr).replace(return_annotation=inspect.Signature.empty)
        surface[rename.get(name, name)] = signature
    return surface


def test_pairs_are_discovered() -> None:
    names = {(sync.__name__, asynchronous.__name__) for sync, asynchronous in PAIRS}
    assert {("Redkit", "AsyncRedkit"), ("Lock", "AsyncLock")} <= names


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"), PAIRS, ids=[f"{a.__module__}.{a.__name__}" for _, a in PAIRS]
)
def test_sync_and_async_expose_the_same_api(sync_cls: type, async_cls: type) -> None:
    sync = _surface(sync_cls, {})
    asynchronous = _surface(async_cls, ASYNC_NAMES)
    assert sorted(set(sync) ^ set(asynchronous)) == [], "methods present on one side only"
    for name, signature in sync.items():
        other = asynchronous[name]
        if signature is None or other is None:
            assert (signature is None) == (other is None), f"{name}: method on one side only"
            continue
        typed = name not in AWAITABLE_ARGUMENTS
        params = [_param(p, typed) for p in signature.parameters.values()]
        other_params = [_param(p, typed) for p in other.parameters.values()]
        assert params == other_params, f"{name}: parameters differ"


# methods whose async side also accepts awaitables (loaders, callbacks): names, kinds and
# defaults must still match
AWAITABLE_ARGUMENTS = {"get_or_set", "do", "step"}


def _param(p: inspect.Parameter, typed: bool) -> tuple[object, ...]:
    """A parameter with its annotation, the ``Async`` of class names taken out."""
    annotation = re.sub(r"\bAsync(?=[A-Z])", "", str(p.annotation)) if typed else None
    return (p.name, p.kind, p.default, annotation)


# --- typed options ---------------------------------------------------------------------


def _annotation_names(module: types.ModuleType) -> dict[str, object]:
    """The module's globals and the names its ``if TYPE_CHECKING:`` blocks import: what its
    string annotations refer to."""
    namespace = dict(vars(module))
    for node in ast.parse(Path(module.__file__ or "").read_text()).body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    source = importlib.import_module(statement.module)
                    for alias in statement.names:
                        namespace[alias.asname or alias.name] = getattr(source, alias.name)
    return namespace


def _factories() -> list[tuple[str, type, type]]:
    """(factory name, the class it builds, its options TypedDict) for every facade factory."""
    import redkit.facade

    namespace = _annotation_names(redkit.facade)
    found = []
    for name, function in vars(redkit.facade.Redkit).items():
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        options = function.__annotations__.get("options")  # "Unpack[XOptions]"
        if options is None:
            continue
        typed_dict = namespace[options.removeprefix("Unpack[").removesuffix("]")]
        found.append((name, namespace[function.__annotations__["return"]], typed_dict))
    return found


def test_every_factory_has_typed_options() -> None:
    names = {name for name, _, _ in _factories()}
    assert {"lock", "cache", "sessions", "tokens", "rate_limiter", "concurrency_limiter"} <= names


@pytest.mark.parametrize(("factory", "built", "options"), _factories(), ids=lambda v: str(v))
def test_options_match_the_constructor(factory: str, built: type, options: type) -> None:
    """The TypedDict a factory takes names exactly the constructor's keyword options."""
    for cls in built.__mro__:  # the constructor that spells the options out
        parameters = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    keywords = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
    assert set(options.__optional_keys__) == keywords  # type: ignore[attr-defined]
    assert not options.__required_keys__  # type: ignore[attr-defined]

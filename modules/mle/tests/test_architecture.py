"""The architecture, checked statically (AST, nothing imported): dependencies point one way,
``de`` <- ``mle`` <- ``ds`` <- the ``clientml`` CLI (and ``mle`` <- the deploy tool), every module declares
the workspace packages it imports, and only the settings modules touch the process environment.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# Tools that runtime code never imports: the sample-data generator and the test/benchmark support.
TOOLS = frozenset({"clientml_synthetic", "clientml_testkit"})
# package -> (its source directory, its pyproject.toml, the packages it must never import)
LAYERS: dict[str, tuple[str, str, frozenset[str]]] = {
    "clientml_de": ("modules/de/src/clientml_de", "modules/de/pyproject.toml", frozenset({"clientml_mle", "clientml_ds", "clientml", *TOOLS})),
    "clientml_synthetic": ("modules/de/synthetic/src/clientml_synthetic", "modules/de/synthetic/pyproject.toml", frozenset({"clientml_mle", "clientml_ds", "clientml", "clientml_testkit"})),
    "clientml_mle": ("modules/mle/src/clientml_mle", "modules/mle/pyproject.toml", frozenset({"clientml_ds", "clientml", *TOOLS})),
    "clientml_ds": ("modules/ds/src/clientml_ds", "modules/ds/pyproject.toml", frozenset({"clientml", *TOOLS})),
    "clientml": ("src/clientml", "pyproject.toml", frozenset({"clientml_testkit"})),
    # The deploy tool (make deploy): on top of mle (bundle manifests), beside the system, never in it.
    "clientml_deploy": ("modules/deployment/src/clientml_deploy", "modules/deployment/pyproject.toml", frozenset({"clientml_ds", "clientml", *TOOLS})),
}  # fmt: skip
# The modules allowed to read or write the process environment: the system's settings (CLIENTML_*,
# telemetry off, ...) and the deploy tool's (ENVIRONMENT, TF_STATE_BUCKET, ... and its children's).
ENVIRONMENT_OWNERS = frozenset(
    {REPO / "modules/de/src/clientml_de/settings.py", REPO / "modules/deployment/src/clientml_deploy/settings.py"}
)
ENVIRONMENT_NAMES = frozenset({"environ", "environb", "getenv", "putenv", "unsetenv"})
DYNAMIC_IMPORTS = frozenset({"import_module", "find_spec", "__import__"})


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import: statements, and ``import_module``/``find_spec``/
    ``__import__`` called with a literal name. Relative imports stay inside their package: skipped."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in DYNAMIC_IMPORTS and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def environment_uses(tree: ast.AST) -> Iterator[int]:
    """Lines that use ``os.environ`` (or ``os.getenv``, ``putenv``, ...), attribute or ``from os import``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            names = [node.attr]
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = [alias.name for alias in node.names]
        else:
            continue
        if ENVIRONMENT_NAMES.intersection(names):
            yield node.lineno


def _sources(directory: str) -> Iterator[tuple[Path, ast.AST]]:
    for path in sorted((REPO / directory).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_checks_see_every_kind_of_import_and_environment_use() -> None:
    source = (
        "import os\nimport clientml_ds.train\nfrom clientml import cli\nfrom . import sibling\n"
        "import importlib, importlib.util\nimportlib.import_module('clientml_ds')\n"
        "importlib.util.find_spec('clientml')\nx = os.environ.get('A')\nfrom os import getenv\n"
        "print('os.environ in a string is not a use')\n"
    )
    tree = ast.parse(source)
    assert {_top(n) for _, n in imported_modules(tree)} == {"os", "clientml_ds", "clientml", "importlib"}
    assert [line for line, n in imported_modules(tree) if _top(n) == "clientml_ds"] == [2, 6]
    assert sorted(environment_uses(tree)) == [8, 9]


def test_modules_import_only_the_layers_below_them() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {package} imports {name}"
        for package, (directory, _, forbidden) in LAYERS.items()
        for path, tree in _sources(directory)
        for line, name in imported_modules(tree)
        if _top(name) in forbidden
    ]
    assert offenders == []


def _declared(pyproject: str) -> tuple[set[str], set[str]]:
    """The distribution names a pyproject depends on, and those it takes from the uv workspace."""
    data = tomllib.loads((REPO / pyproject).read_text(encoding="utf-8"))
    names = {re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0] for dep in data["project"].get("dependencies", [])}
    sources = data.get("tool", {}).get("uv", {}).get("sources", {})
    # A member nested in another member's folder names its sibling by path (uv cannot resolve the workspace there).
    return names, {name for name, source in sources.items() if source.get("workspace") or source.get("path")}


def test_modules_declare_the_workspace_packages_they_import() -> None:
    missing = []
    for package, (directory, pyproject, _) in LAYERS.items():
        dependencies, workspace = _declared(pyproject)
        used = {_top(name) for path, tree in _sources(directory) for _, name in imported_modules(tree)}
        for other in sorted((used & LAYERS.keys()) - {package}):
            distribution = other.replace("_", "-")
            if distribution not in dependencies or distribution not in workspace:
                missing.append(f"{pyproject}: imports {other} but does not declare {distribution} (workspace)")
    assert missing == []


def test_only_the_settings_module_touches_the_environment() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}"
        for directory in sorted({*REPO.glob("modules/*/src"), *REPO.glob("modules/*/*/src")})
        for path, tree in _sources(str(directory.relative_to(REPO)))
        if path not in ENVIRONMENT_OWNERS
        for line in sorted(environment_uses(tree))
    ]
    assert not offenders, f"read the settings (clientml_de.settings), not the environment: {offenders}"

"""The package's house rules, read from its imports (docs/how-it-works.md has the map).

Folders import only from their own layer or below; only the dbt glue imports dbt;
encoding, source, options and the commit protocol import neither boto3 nor botocore;
no module imports itself back through others. Every import counts, including those
inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dbt_s3_export"
TOP = "dbt_s3_export"

# From the bottom up: a module may import modules of its own layer or lower ones.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "progress", "local_s3", "pools"),
    ("options",),
    ("s3",),
    ("encoding",),
    ("source", "result"),
    ("commit",),
    ("readers",),
    ("tables",),
    ("export",),
    ("plugin", "report", ""),  # "" is the package's own __init__
]
DBT_GLUE = {"plugin", "report"}
NO_AWS_SDK = ("options", "encoding", "source", "commit", "readers")
AWS_SDK = ("boto3", "botocore")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (ours as full dotted names, others by top name)."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/")
                ).is_dir()
                found.add(sub if target.startswith(TOP) and is_module else target)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def part(module: str) -> str:
    """The folder (or top-level module) a module of ours belongs to."""
    return module.split(".")[1] if "." in module else ""


def layer(module: str) -> int:
    name = part(module)
    for level, names in enumerate(LAYERS):
        if name in names:
            return level
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")


def broken_rules(modules: Mapping[str, Iterable[str]]) -> list[str]:
    """Every rule the import graph ``modules`` breaks, one line each."""
    problems: list[str] = []
    for module, imported in sorted(modules.items()):
        for target in sorted(imported):
            top = target.split(".")[0]
            if top == TOP and target != TOP:
                if part(target) != part(module) and layer(target) > layer(module):
                    problems.append(f"{module} imports {target}, a layer above it")
            elif top == "dbt" and part(module) not in DBT_GLUE:
                problems.append(f"{module} imports dbt ({target}); only {DBT_GLUE} may")
            elif top in AWS_SDK and part(module) in NO_AWS_SDK:
                problems.append(f"{module} imports {target}; {part(module)}/ may not")
    problems += [f"import circle: {' -> '.join(c)}" for c in circles(modules)]
    return problems


def circles(modules: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import circles among our modules (one path around each)."""
    ours = {m: {t for t in ts if t in modules and t != m} for m, ts in modules.items()}
    found: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(ours[module]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(ours):
        if module not in state:
            visit(module)
    return found


def test_the_package_keeps_its_house_rules() -> None:
    assert broken_rules(graph()) == []


def test_every_import_of_ours_names_a_module_that_exists() -> None:
    # mypy ignores missing imports (for third-party packages without types), so a
    # relative import left behind by a move is caught here, not at run time.
    missing = {
        (module, target)
        for module, imported in graph().items()
        for target in imported
        if target.startswith(TOP) and importlib.util.find_spec(target) is None
    }
    assert missing == set()


def test_every_folder_says_what_it_owns_and_may_import() -> None:
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
        assert "import" in doc, f"{folder.name}/__init__.py does not say what it may import"


def test_no_module_is_over_500_lines() -> None:
    long = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}


@pytest.mark.parametrize(
    ("modules", "problem"),
    [
        (
            {f"{TOP}.s3.transfer": {f"{TOP}.commit.lease"}, f"{TOP}.commit.lease": set()},
            "dbt_s3_export.s3.transfer imports dbt_s3_export.commit.lease, a layer above it",
        ),
        ({f"{TOP}.encoding.writers": {"boto3"}}, "encoding/ may not"),
        ({f"{TOP}.commit.store": {"botocore.exceptions"}}, "commit/ may not"),
        ({f"{TOP}.tables.delta": {"dbt.adapters.factory"}}, "only"),
        (
            {
                f"{TOP}.tables.common": {f"{TOP}.tables.delta"},
                f"{TOP}.tables.delta": {f"{TOP}.tables.common"},
            },
            "import circle: dbt_s3_export.tables.common -> dbt_s3_export.tables.delta -> "
            "dbt_s3_export.tables.common",
        ),
    ],
)
def test_a_broken_rule_is_found(modules: dict[str, set[str]], problem: str) -> None:
    assert any(problem in p for p in broken_rules(modules)), broken_rules(modules)

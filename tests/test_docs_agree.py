"""The docs agree with the product where they name its parts: modules, install commands."""

from __future__ import annotations

import re

import tomllib

from dbt_s3_export.tables.common import EXTRA_REQUIREMENTS

from .support import REPO

PACKAGE = REPO / "dbt_s3_export"


def _diagram() -> list[str]:
    text = (REPO / "docs" / "how-it-works.md").read_text()
    block = text.split("## The folders", 1)[1].split("```", 2)[1]
    return block.splitlines()


def test_the_folder_diagram_puts_every_module_in_its_folder() -> None:
    lines = _diagram()
    # A folder's part of the diagram: from its line to the next line at its depth.
    folders: dict[str, str] = {"": "\n".join(line for line in lines if re.match(r"  \S", line))}
    for i, line in enumerate(lines):
        match = re.fullmatch(r"  (\w+)/.*", line)
        if match:
            end = next(
                (j for j in range(i + 1, len(lines)) if re.match(r"  \S", lines[j])), len(lines)
            )
            folders[match.group(1)] = "\n".join(lines[i:end])
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        folder = path.parent.name if path.parent != PACKAGE else ""
        part = folders.get(folder)
        assert part is not None, f"docs/how-it-works.md has no folder {folder}/"
        where = folder or "the package"
        assert re.search(rf"\b{re.escape(path.name)}\b", part), (
            f"docs/how-it-works.md does not name {path.relative_to(REPO)} under {where}"
        )


def test_install_commands_name_what_pip_can_install() -> None:
    """The package is not on PyPI: no page tells pip to fetch it from there."""
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    pages += list(PACKAGE.rglob("*.py"))
    for page in pages:
        text = page.read_text()
        assert not re.search(r'pip install "dbt-s3-export\[', text), page
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    for extra, requirement in EXTRA_REQUIREMENTS.items():
        assert extras[extra] == [requirement], extra

"""What is derived from the option table (table.py): the Jinja spec the warehouse
macros read (macros/_option_spec.sql) and the option table of docs/options.md.

``scripts/gen-option-spec`` writes both; a test fails when either checked-in copy is
stale.
"""

from __future__ import annotations

import json

from .formats import FILE_FORMATS
from .table import ALL, OPTIONS, Value

DOCS_BEGIN = (
    "<!-- option table: generated from dbt_s3_export/options/table.py by "
    "scripts/gen-option-spec -->"
)
DOCS_END = "<!-- end of the generated option table -->"


def render_docs_table() -> str:
    """The option table of docs/options.md, between its markers."""
    rows = [
        "| Option | Type | Default | Adapters | File formats | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        kind = option.type.replace("_", " ")
        if option.choices:
            kind = "one of " + ", ".join(f"`{c}`" for c in option.choices)
        elif option.minimum is not None:
            upper = f" to {_number(option.maximum)}" if option.maximum is not None else " or more"
            kind += f", {_number(option.minimum)}{upper}"
        if option.secret:
            kind += " (secret)"
        default = option.shown_default or (
            "required" if option.required else _shown_default(option.default)
        )
        adapters = "all" if option.adapters == ALL else ", ".join(option.adapters)
        if option.scope == "access":
            adapters += " (others ignore it)"
        formats = "all" if option.formats == FILE_FORMATS else ", ".join(option.formats)
        if option.folder_only:
            formats += " (folders only)"
        doc = option.doc.replace("|", "\\|")
        rows.append(f"| `{option.name}` | {kind} | {default} | {adapters} | {formats} | {doc} |")
    return "\n".join([DOCS_BEGIN, *rows, DOCS_END])


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _shown_default(value: Value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return _number(value)
    return f"`{value}`"


def with_docs_table(page: str) -> str:
    """``page`` (docs/options.md) with its generated section replaced by today's table."""
    head, rest = page.split(DOCS_BEGIN, 1)
    return head + render_docs_table() + rest.split(DOCS_END, 1)[1]


def render_macro() -> str:
    """The Jinja macro that hands this table to the warehouse validators."""
    spec = {
        option.name: {
            "type": option.type,
            "choices": list(option.choices),
            "default": option.default,
            "secret": option.secret,
            "adapters": list(option.adapters),
            "scope": option.scope,
            "doc": option.doc,
        }
        for option in OPTIONS
    }
    # One option per line; JSON is a Jinja literal too, except that Jinja spells null none.
    lines = [
        f"    {json.dumps(name)}: {json.dumps(entry, sort_keys=True)}".replace(": null", ": none")
        for name, entry in sorted(spec.items())
    ]
    return (
        "{#- Generated from dbt_s3_export/options/table.py by scripts/gen-option-spec: "
        "do not edit.\n"
        "    The options every engine knows, for the warehouse validators. -#}\n"
        "{% macro _option_spec() %}\n"
        "  {{- return({\n" + ",\n".join(lines) + "\n  }) -}}\n"
        "{% endmacro %}\n"
    )

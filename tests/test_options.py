"""The option spec is the one source of truth for the Python and the Jinja validators."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from dbt_s3_export.errors import ConfigError
from dbt_s3_export.options import table as spec
from dbt_s3_export.options.config import SECRET_OPTIONS, ExportConfig
from dbt_s3_export.options.render import render_macro, with_docs_table
from dbt_s3_export.s3.deadlines import CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT

from .support import REPO

BASE = {"bucket": "my-output-bucket", "key": "orders/", "file_format": "parquet"}
WRONG_TYPE: dict[str, Any] = {
    "string": 5,
    "boolean": "yes",
    "flag": "maybe",
    "integer": "ten",
    "number": "fast",
    "string_list": "year",
    "mapping": "x=y",
}


def test_checked_in_macro_is_generated_from_the_spec() -> None:
    checked_in = (REPO / "macros" / "_option_spec.sql").read_text()
    assert checked_in == render_macro(), (
        "macros/_option_spec.sql is out of date: run scripts/gen-option-spec"
    )


def test_plugin_options_are_the_spec_options_duckdb_honours() -> None:
    plugin = {f.name for f in fields(ExportConfig)} | {"to"}
    assert plugin == spec.supported_by(spec.DUCKDB)
    assert ExportConfig.option_names() == spec.NAMES
    assert {"access_key_id", "secret_access_key", "session_token", "external_id"} == SECRET_OPTIONS


@pytest.mark.parametrize("option", sorted(spec.supported_by(spec.DUCKDB) - {"to"}))
def test_python_validator_enforces_the_spec_type(option: str) -> None:
    entry = spec.BY_NAME[option]
    value = "not-a-choice" if entry.choices else WRONG_TYPE[entry.type]
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse({**BASE, option: value})
    assert info.value.option == option


def test_other_engines_access_options_are_ignored_by_the_plugin() -> None:
    cfg = ExportConfig.parse({**BASE, "storage_integration": "s3_exports", "iam_role": "default"})
    assert cfg.bucket == "my-output-bucket"


def test_output_options_the_plugin_cannot_honour_fail() -> None:
    with pytest.raises(ConfigError, match=r"max_file_size_mb.*not by the dbt-duckdb plugin"):
        ExportConfig.parse({**BASE, "max_file_size_mb": 64})


def test_every_option_names_known_adapters() -> None:
    for option in spec.OPTIONS:
        assert option.adapters and set(option.adapters) <= set(spec.ADAPTERS), option.name
        assert option.doc.endswith("."), option.name


# -- what is derived from the table ---------------------------------------------------------


def test_checked_in_docs_table_is_generated_from_the_spec() -> None:
    page = (REPO / "docs" / "options.md").read_text()
    assert page == with_docs_table(page), (
        "the option table of docs/options.md is out of date: run scripts/gen-option-spec"
    )


@pytest.mark.parametrize("option", spec.OPTIONS, ids=lambda o: o.name)
def test_every_option_is_in_the_macro_the_docs_and_the_parser(option: spec.Option) -> None:
    assert f'    "{option.name}": {{' in render_macro()
    assert f"| `{option.name}` |" in (REPO / "docs" / "options.md").read_text()
    plugin = {f.name for f in fields(ExportConfig)} | {"to"}
    assert (option.name in plugin) == (spec.DUCKDB in option.adapters)


def test_the_dataclass_defaults_are_the_table_defaults() -> None:
    for f in fields(ExportConfig):
        declared = spec.BY_NAME[f.name].default
        if declared is not None:
            assert f.default == declared, f.name
    assert tuple(
        spec.BY_NAME[n].default for n in ("connect_timeout", "read_timeout", "total_timeout")
    ) == (CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT)


BOUNDED = [o for o in spec.OPTIONS if spec.DUCKDB in o.adapters and o.minimum is not None]


@pytest.mark.parametrize("option", BOUNDED, ids=lambda o: o.name)
def test_the_parser_holds_the_table_bounds(option: spec.Option) -> None:
    extra = {"compression": "zstd"} if option.name == "compression_level" else {}
    assert option.minimum is not None
    low = option.minimum if option.type == "number" else int(option.minimum)
    if option.name != "total_timeout":  # must also cover connect_timeout + read_timeout
        ExportConfig.parse({**BASE, **extra, option.name: low})
    outside = [low - (0.05 if option.type == "number" else 1)]
    if option.maximum is not None:
        outside.append(option.maximum + 1)
    for value in outside:
        with pytest.raises(ConfigError, match="must be") as info:
            ExportConfig.parse({**BASE, **extra, option.name: value})
        assert info.value.option == option.name


@pytest.mark.parametrize(
    "option",
    [o for o in spec.OPTIONS if o.choices and spec.DUCKDB in o.adapters],
    ids=lambda o: o.name,
)
def test_every_choice_parses(option: spec.Option) -> None:
    base = {**BASE, "key": "t/", "file_format": "iceberg"} if option.name == "file_format" else BASE
    for choice in option.choices:
        extra: dict[str, Any] = {}
        if option.name == "mode" and choice == "overwrite_partitions":
            extra = {"partition_cols": ["day"]}
        if option.name == "file_format" and choice == "iceberg":
            extra = {"namespace": "lake", "table": "t", "catalog": {"type": "glue"}}
        ExportConfig.parse({**base, **extra, option.name: choice})


def test_a_table_format_refuses_every_file_option_and_a_file_format_the_table_options() -> None:
    table = {**BASE, "key": "lake/t/", "file_format": "delta"}
    for option in spec.OPTIONS:
        if spec.DUCKDB not in option.adapters or "delta" in option.formats:
            continue
        value = {"mapping": {"a": "b"}, "boolean": True, "integer": 10}.get(option.type, "x")
        if option.name in ("sse", "storage_class", "filename_template", "csv_delimiter"):
            value = {
                "sse": "AES256",
                "storage_class": "STANDARD",
                "filename_template": "{run_id}-{part}",
                "csv_delimiter": ";",
            }[option.name]
        if option.name == "glue":
            value = {"database": "lake", "table": "t"}
        with pytest.raises(ConfigError) as info:
            ExportConfig.parse({**table, option.name: value})
        assert info.value.option == option.name, str(info.value)


@pytest.mark.parametrize(
    ("typo", "hint"),
    [
        ("partition_col", "Did you mean 'partition_cols'?"),
        ("bukcet", "Did you mean 'bucket'?"),
        ("compresion", "Did you mean 'compression'?"),
        ("max_row_per_file", "Did you mean 'max_rows_per_file'?"),
        (
            "storage_integraton",
            "Did you mean 'storage_integration' (an option of snowflake)?",
        ),
        ("iam_roles", "Did you mean 'iam_role' (an option of redshift)?"),
    ],
)
def test_a_typo_gets_the_closest_names(typo: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse({**BASE, typo: "x"})
    assert info.value.option == typo
    # The closest names first, then this adapter's options (none of the warehouses').
    assert info.value.fix.startswith(hint + " The options on duckdb: access_key_id, "), typo
    listed = set(info.value.fix.split("The options on duckdb: ", 1)[1].split(", "))
    assert listed == spec.supported_by(spec.DUCKDB)


def test_a_name_close_to_nothing_gets_the_options_of_this_adapter_only() -> None:
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse({**BASE, "frobnicate": 1})
    fix = info.value.fix
    assert fix.startswith("The options on duckdb: access_key_id, batch_size, bucket,")
    listed = set(fix.split(": ", 1)[1].split(", "))
    assert listed == spec.supported_by(spec.DUCKDB)
    assert "iam_role" not in listed and "storage_integration" not in listed


def test_an_output_option_of_another_adapter_is_named_as_such() -> None:
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse({**BASE, "max_file_size_mb": 64})
    assert info.value.option == "max_file_size_mb"
    assert info.value.problem == "is honoured on snowflake, redshift, not by the dbt-duckdb plugin"


def test_the_literal_types_of_export_config_are_the_table_choices() -> None:
    """mypy needs the choices as Literal types too; they must be the table's."""
    checked = []
    for name, hint in get_type_hints(ExportConfig).items():
        literals = [a for a in get_args(hint) if get_origin(a) is Literal] or (
            [hint] if get_origin(hint) is Literal else []
        )
        if literals:
            assert get_args(literals[0]) == spec.BY_NAME[name].choices, name
            checked.append(name)
    assert {"file_format", "mode", "compression", "checksums", "rows"} <= set(checked)


@pytest.mark.parametrize("option", [o for o in spec.OPTIONS if o.folder_only], ids=lambda o: o.name)
def test_a_single_object_export_refuses_every_folder_option(option: spec.Option) -> None:
    value = {
        "max_rows_per_file": 10,
        "filename_template": "{run_id}-{part}",
        "glue": {"database": "lake", "table": "orders"},
        "symlink_manifests": True,
    }[option.name]
    single = {**BASE, "key": "orders/all.parquet"}
    ExportConfig.parse({**BASE, option.name: value})
    with pytest.raises(ConfigError, match="one object") as info:
        ExportConfig.parse({**single, option.name: value})
    assert info.value.option in (option.name, "key")

"""The option spec is the one source of truth for the Python and the Jinja validators."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from dbt_s3_export import options as spec
from dbt_s3_export.config import SECRET_OPTIONS, ExportConfig
from dbt_s3_export.errors import ConfigError

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
    assert checked_in == spec.render_macro(), (
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

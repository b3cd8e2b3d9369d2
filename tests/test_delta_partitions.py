"""Delta ``overwrite_partitions`` through the engine: the model is read once, and BLOB
partition columns are refused before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import ExportConfig, RunContext, run_export
from dbt_s3_export.errors import ColumnError
from dbt_s3_export.source import DuckDBSource

from .engine import engine_client
from .support import S3Server, list_keys
from .test_tables import delta_options


class CountingSource(DuckDBSource):
    """A DuckDB source that counts full reads (``open``) and distinct-value queries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = 0
        self.distincts: list[list[str]] = []

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        self.opened += 1
        return super().open(order_by, batch_size)

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        self.distincts.append(list(columns))
        return super().distinct(columns)


def _config(s3_server: S3Server, bucket: str, key: str, **options: Any) -> ExportConfig:
    return ExportConfig.parse(
        {
            "bucket": bucket,
            "key": key,
            "file_format": "delta",
            "endpoint_url": s3_server.endpoint,
            "region": "us-east-1",
            **options,
        }
    )


def test_overwrite_partitions_reads_the_model_once(s3_server: S3Server, bucket: str) -> None:
    from deltalake import DeltaTable

    con = duckdb.connect()
    client = engine_client(s3_server.endpoint)
    cfg = _config(
        s3_server, bucket, "once/", mode="overwrite_partitions", partition_cols=["p", "q"]
    )
    con.execute(
        "create table m as select range::bigint as id, (range % 4)::integer as p, "
        "case when range % 3 = 0 then null else 'x' || (range % 2) end as q, 1 as run "
        "from range(2000)"
    )
    run_export(cfg, CountingSource(con, "m"), client, RunContext(model="m"))
    # Run 2 writes partitions p = 0 and 1 (every q) again, and filtered by ``where``.
    con.execute(
        "create or replace table m as select range::bigint as id, (range % 2)::integer as p, "
        "case when range % 3 = 0 then null else 'x' || (range % 2) end as q, 2 as run "
        "from range(1000)"
    )
    source = CountingSource(con, "m", "id < 600")
    result = run_export(cfg, source, client, RunContext(model="m"))
    assert source.opened == 1  # the rows written; the partitions came from one aggregate
    assert source.distincts == [["p", "q"]]
    assert result.rows == 600
    table = DeltaTable(f"s3://{bucket}/once", storage_options=delta_options(s3_server.endpoint))
    got = table.to_pyarrow_table().to_pydict()
    rows = sorted(zip(got["p"], got["run"], strict=True))
    counts = {(p, run): rows.count((p, run)) for p, run in set(rows)}
    # p = 0, 1: only run 2's rows (all of its q values were among run 1's); 2, 3: run 1's.
    assert counts == {(0, 2): 300, (1, 2): 300, (2, 1): 500, (3, 1): 500}


def test_delta_refuses_a_blob_partition_column_before_writing(
    s3_server: S3Server, bucket: str
) -> None:
    con = duckdb.connect()
    con.execute("create table m as select 1 as id, 'ab'::BLOB as k")
    cfg = _config(
        s3_server, bucket, "blob-part/", mode="overwrite_partitions", partition_cols=["k"]
    )
    with pytest.raises(ColumnError) as info:
        run_export(cfg, DuckDBSource(con, "m"), engine_client(s3_server.endpoint), RunContext())
    message = str(info.value)
    assert message.startswith("column 'k' (BLOB) is a partition column of Delta table")
    assert "cannot hold binary partition values exactly" in message
    assert "hex(k) AS k_hex" in message
    assert list_keys(engine_client(s3_server.endpoint), bucket, "blob-part/") == []

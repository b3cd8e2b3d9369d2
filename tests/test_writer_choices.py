"""Writer choices made for speed and size must not change what readers get back."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from dbt_s3_export.writers import FormatOptions, ParquetFormatWriter, dictionary_columns


def _table(n: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "s": pa.array([f"str_{i % 100}" for i in range(n)]),
            "f": pa.array([i * 0.5 for i in range(n)]),
            "few": pa.array([None if i % 5 == 0 else i % 3 for i in range(n)], pa.int32()),
            "l": pa.array([[i] for i in range(n)]),
        }
    )


def test_only_repetitive_columns_get_a_dictionary() -> None:
    assert dictionary_columns(_table(10_000)) == ["s", "few"]
    assert dictionary_columns(_table(0)) == []


def test_parquet_round_trips_with_per_file_dictionary_choice() -> None:
    table = _table(50_000)
    out = io.BytesIO()
    writer = ParquetFormatWriter(FormatOptions("parquet", "snappy"), table.schema, out)
    for batch in table.to_batches(8_192):
        writer.write(batch)
    writer.close()
    meta = pq.ParquetFile(io.BytesIO(out.getvalue())).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(5)}
    assert "RLE_DICTIONARY" in encodings["s"] and "RLE_DICTIONARY" not in encodings["id"]
    assert pq.read_table(io.BytesIO(out.getvalue())).equals(table)


def test_empty_parquet_file_keeps_the_schema() -> None:
    table = _table(0)
    out = io.BytesIO()
    ParquetFormatWriter(FormatOptions("parquet", "snappy"), table.schema, out).close()
    assert pq.read_table(io.BytesIO(out.getvalue())).schema == table.schema

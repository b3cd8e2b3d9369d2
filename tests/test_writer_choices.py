"""Writer choices made for speed and size must not change what readers get back."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dbt_s3_export.encoding.writers import (
    CsvFormatWriter,
    FormatOptions,
    JsonFormatWriter,
    ParquetFormatWriter,
    dictionary_columns,
    open_writer,
    text_render,
)
from dbt_s3_export.errors import ColumnError


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


class _Kept(io.BytesIO):
    def close(self) -> None:  # the writer closes its sink; keep the bytes readable
        pass


def _csv(table: pa.Table, batch_rows: int = 1_000, **opts: object) -> str:
    sink = _Kept()
    writer = CsvFormatWriter(FormatOptions("csv", **opts), table.schema, sink)  # type: ignore[arg-type]
    for batch in table.to_batches(batch_rows):
        writer.write(batch)
    writer.close()
    return sink.getvalue().decode()


def test_csv_quotes_nothing_while_no_value_needs_it() -> None:
    text = _csv(pa.table({"id": [1, 2], "name": ["a b", None]}))
    assert text == "id,name\n1,a b\n2,\n"


def test_csv_quotes_strings_from_the_first_batch_that_needs_it() -> None:
    names = ["plain"] * 3 + ['say "hi", then go'] + ["plain"] * 3
    text = _csv(pa.table({"id": range(7), "name": names}), batch_rows=2)
    # Batches before the one with the quote stay bare; from there on strings are quoted.
    assert text.splitlines() == [
        "id,name",
        "0,plain",
        "1,plain",
        '2,"plain"',
        '3,"say ""hi"", then go"',
        '4,"plain"',
        '5,"plain"',
        '6,"plain"',
    ]
    assert pacsv.read_csv(io.BytesIO(text.encode())).column("name").to_pylist() == names


def test_csv_tells_the_empty_string_from_null_and_quotes_the_delimiter() -> None:
    text = _csv(pa.table({"a": ["", None, "x"]}))
    assert text.splitlines() == ["a", '""', "", '"x"']
    tsv = _csv(pa.table({"a b": ["x\ty", "z"]}), csv_delimiter="\t")
    assert tsv.splitlines() == ["a b", '"x\ty"', '"z"']
    header = _csv(pa.table({"a,b": [1]}))
    assert header.splitlines() == ['"a,b"', "1"]


def test_csv_timestamps_are_iso_8601_as_duckdb_renders_them() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Whole seconds (Arrow's fast path), fractions, years outside 1000..9999, zones, NULLs.
    table = con.sql(
        """SELECT * FROM (VALUES
        (TIMESTAMP '2024-01-03 10:15:00', TIMESTAMPTZ '2024-01-03 10:15:00+02'),
        (TIMESTAMP '1000-01-01 00:00:00', TIMESTAMPTZ '9999-12-31 23:59:59+00'),
        (NULL, NULL)) t(ts, tz)"""
    ).to_arrow_table()
    odd = con.sql(
        """SELECT * FROM (VALUES
        (TIMESTAMP '2024-01-03 10:15:00.5', TIMESTAMPTZ '2024-01-03 10:15:00.25+00'),
        (TIMESTAMP '0999-12-31 23:59:59', TIMESTAMPTZ '0999-12-31 23:59:59+00')) t(ts, tz)"""
    ).to_arrow_table()
    for data in (table, odd):
        expected = con.sql(
            "SELECT replace(CAST(ts AS VARCHAR), ' ', 'T') AS ts, "
            "replace(CAST(tz AS VARCHAR), ' ', 'T') AS tz FROM data"
        ).fetchall()
        lines = _csv(data).splitlines()[1:]
        got = [tuple(v or None for v in line.replace('"', "").split(",")) for line in lines]
        assert got == expected
    assert _csv(table).splitlines()[1] == "2024-01-03T10:15:00,2024-01-03T08:15:00+00"


def _jsonl(table: pa.Table, batch_rows: int = 1_000) -> list[dict[str, object]]:
    sink = _Kept()
    writer = JsonFormatWriter(FormatOptions("jsonl"), table.schema, sink)  # type: ignore[arg-type]
    for batch in table.to_batches(batch_rows):
        writer.write(batch)
    writer.close()
    return [json.loads(line) for line in sink.getvalue().decode().splitlines()]


def test_json_values_read_back_as_duckdb_renders_them() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    data = con.sql(
        r"""SELECT * FROM (VALUES
        (1, 1.5::DOUBLE, 2.0::DOUBLE, 'plain', 'say "hi"\', TIMESTAMP '2024-01-03 10:15:00',
         TIMESTAMP '2024-01-03 10:15:00.5', true, 12.50::DECIMAL(10, 2), DATE '2024-01-03',
         'é ü 日本'),
        (-9007199254740993, NULL, -0.0::DOUBLE, '', E'tab\there\nline', NULL,
         NULL, NULL, NULL, NULL, NULL),
        (NULL, -1.5e300::DOUBLE, 1e20::DOUBLE, NULL, NULL, TIMESTAMP '1999-12-31 23:59:59',
         TIMESTAMP '1999-12-31 23:59:59', false, -0.01::DECIMAL(10, 2), DATE '0999-01-01', 'x')
        ) t(i, f, g, s, esc, ts, frac, b, d, day, u)"""
    ).to_arrow_table()
    got = _jsonl(data)
    expected = [
        json.loads(line)
        for (line,) in con.sql(
            "SELECT CAST(to_json(struct_pack(i := i, "
            "f := f, g := g, s := s, esc := esc, "
            "ts := replace(CAST(ts AS VARCHAR), ' ', 'T'), "
            "frac := replace(CAST(frac AS VARCHAR), ' ', 'T'), b := b, d := d, day := day, "
            "u := u)) AS VARCHAR) FROM data"
        ).fetchall()
    ]
    assert got == expected
    assert got[0]["g"] == 2.0 and isinstance(got[0]["g"], float)  # stays a float
    assert got[0]["esc"] == 'say "hi"\\' and got[1]["esc"] == "tab\there\nline"


def test_json_refuses_nan_rather_than_writing_null_or_invalid_json() -> None:
    for values in ([1.0, float("nan")], [float("inf")], [None, float("-inf")]):
        with pytest.raises(ColumnError, match="column 'f' \\(double\\) holds NaN or an infinity"):
            _jsonl(pa.table({"f": values}))
    nested = pa.table({"l": [[1.0], [2.0, float("nan")]]})
    with pytest.raises(ColumnError, match="holds NaN or an infinity inside its values"):
        _jsonl(nested)


def test_csv_floats_keep_their_point_and_sign() -> None:
    text = _csv(pa.table({"f": [2.0, -0.0, 0.1, 1e20, float("nan"), float("-inf"), None]}))
    assert text.splitlines() == ["f", "2.0", "-0.0", "0.1", "1e+20", "nan", "-inf", ""]
    assert _csv(pa.table({"f": [0.5, 1.25]})).splitlines() == ["f", "0.5", "1.25"]


def test_json_writer_refuses_decimals_past_their_precision_instead_of_crashing_duckdb() -> None:
    """DuckDB's HUGEINT as Arrow: a decimal(38, 0) that can hold 39 digits."""
    table = duckdb.sql(
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS h UNION ALL SELECT 1"
    ).to_arrow_table()
    with pytest.raises(
        ColumnError, match=r"column 'h' .* holds 170141183460469231731687303715884105727"
    ):
        _jsonl(table)
    assert _jsonl(pa.table({"d": pa.array([Decimal("-" + "9" * 38)], pa.decimal128(38, 0))})) == [
        {"d": -int("9" * 38)}
    ]


def _files_of_one_render(table: pa.Table, fmt: str, cuts: list[int]) -> list[bytes]:
    """The batch rendered once (as a folder export does), then cut into a file per range."""
    opts = FormatOptions(fmt)
    render = text_render(opts, table.schema)
    assert render is not None
    rendered = render(table.to_batches()[0])
    out = []
    for start, end in zip([0, *cuts], [*cuts, table.num_rows], strict=True):
        sink = _Kept()
        writer = open_writer(opts, table.schema, sink, rendered=render)  # type: ignore[arg-type]
        writer.write(rendered.slice(start, end - start))
        writer.close()
        out.append(sink.getvalue())
    return out


def _files_each_rendered(table: pa.Table, fmt: str, cuts: list[int]) -> list[bytes]:
    out = []
    for start, end in zip([0, *cuts], [*cuts, table.num_rows], strict=True):
        sink = _Kept()
        writer = open_writer(FormatOptions(fmt), table.schema, sink)  # type: ignore[arg-type]
        writer.write(table.slice(start, end - start).to_batches()[0])
        writer.close()
        out.append(sink.getvalue())
    return out


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_files_cut_from_one_rendered_batch_are_those_rendered_alone(fmt: str) -> None:
    """A partition's file has the same bytes whether its rows were rendered with the
    other partitions' (one render per batch) or on their own. The first file needs
    quotes (an empty string, a comma), the second none, the third a float of Arrow's
    text and one that needs its point."""
    table = pa.table(
        {
            "s": ["", "a,b", "plain", "x", None, "y"],
            "f": [1.5, 2.0, 0.25, 3.0, -0.0, 1e20],
            "ts": pa.array([0, 1, 2, 3, None, 5], pa.timestamp("s")),
        }
    )
    cuts = [2, 4]
    files = _files_of_one_render(table, fmt, cuts)
    assert files == _files_each_rendered(table, fmt, cuts)
    if fmt == "csv":
        assert [f.decode() for f in files] == [
            's,f,ts\n"","1.5","1970-01-01T00:00:00"\n"a,b","2.0","1970-01-01T00:00:01"\n',
            "s,f,ts\nplain,0.25,1970-01-01T00:00:02\nx,3.0,1970-01-01T00:00:03\n",
            "s,f,ts\n,-0.0,\ny,1e+20,1970-01-01T00:00:05\n",
        ]

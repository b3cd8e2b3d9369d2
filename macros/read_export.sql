{#-
  read_export(uri): a relation over exactly the files a folder export's manifest lists now,
  for a dbt-duckdb project downstream of an export:

      select * from {{ dbt_s3_export.read_export('s3://my-bucket/exports/events/') }}

  When the model runs, DuckDB reads the export's _manifest.json (through the project's
  own S3 secret: httpfs and CREATE SECRET, docs/reading.md) and the macro renders
  read_parquet / read_csv / read_json over the listed files, with Hive partitioning when
  the export is partitioned. So the model reads one committed generation, never the
  files of a run in progress beside it, nor a half-deleted earlier one. A run whose
  clean-up deletes a listed file mid-read makes the query fail; it does not mix.
-#}
{% macro read_export(uri, hive_partitioning=none) %}
  {{ return(adapter.dispatch('read_export', 'dbt_s3_export')(uri, hive_partitioning)) }}
{% endmacro %}

{% macro default__read_export(uri, hive_partitioning) %}
  {{ exceptions.raise_compiler_error(
      "read_export: reads an export with DuckDB (dbt-duckdb), and this project's adapter is "
      ~ adapter.type() ~ ". docs/reading.md shows how Athena, Trino, Spark and others read "
      ~ "exactly one generation") }}
{% endmacro %}

{% macro duckdb__read_export(uri, hive_partitioning) %}
  {%- if uri is not string or not uri.endswith('/') or "'" in uri -%}
    {{ exceptions.raise_compiler_error(
        "read_export: uri must be the export's folder, ending in '/' (s3://bucket/prefix/), got "
        ~ uri) }}
  {%- endif -%}
  {%- if not execute -%}
    {{ return("(select 1 as read_export_placeholder)") }}
  {%- endif -%}
  {%- set query -%}
    select destination, file_format, n_cols, f.key as key from (
      select destination, file_format, len(partition_cols) as n_cols, unnest(files) as f
      from read_json('{{ uri }}_manifest.json', maximum_object_size = 1073741824)
    ) order by key
  {%- endset -%}
  {%- set listed = run_query(query) -%}
  {%- if listed.rows | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        "read_export: the manifest " ~ uri ~ "_manifest.json lists no files (an export of no "
        ~ "rows, partitioned): there is nothing to read") }}
  {%- endif -%}
  {%- set first = listed.rows[0] -%}
  {#- Keys are relative to the bucket; the destination says where the export's folder is. -#}
  {%- set folder = first['destination'].split('://', 1)[1].split('/', 1)[1] -%}
  {%- set paths = [] -%}
  {%- for row in listed.rows -%}
    {%- do paths.append("'" ~ uri ~ row['key'][folder | length:] ~ "'") -%}
  {%- endfor -%}
  {%- set hive = hive_partitioning if hive_partitioning is not none else first['n_cols'] > 0 -%}
  {%- set files = '[' ~ paths | join(', ') ~ ']' -%}
  {%- set fmt = first['file_format'] -%}
  {%- if fmt == 'parquet' -%}
    read_parquet({{ files }}, hive_partitioning = {{ hive | lower }})
  {%- elif fmt == 'csv' -%}
    read_csv({{ files }}, hive_partitioning = {{ hive | lower }})
  {%- elif fmt == 'jsonl' -%}
    read_json({{ files }}, format = 'newline_delimited', hive_partitioning = {{ hive | lower }})
  {%- elif fmt == 'json' -%}
    read_json({{ files }}, format = 'array', hive_partitioning = {{ hive | lower }})
  {%- else -%}
    {{ exceptions.raise_compiler_error(
        "read_export: " ~ uri ~ " holds " ~ fmt ~ " files, which this macro cannot read") }}
  {%- endif -%}
{% endmacro %}

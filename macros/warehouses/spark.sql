{#-
  Spark and Databricks: the file-source table way. A run creates an external
  table over the destination folder (USING parquet/csv/json, PARTITIONED BY the
  partition columns, the format's options), writes the model into it with
  INSERT OVERWRITE (replace; partitionOverwriteMode dynamic for
  overwrite_partitions) or INSERT INTO (append), and drops the table again,
  which leaves the files. Spark writes Hive `col=value` folders itself.

  The scratch table is named for the run (<model>__s3_export_<run id>) and
  created with a plain CREATE TABLE, which fails if the name is taken: a run
  never drops a table it did not create, and two runs never share one. A run
  that fails after the CREATE leaves its scratch table (external: dropping it
  leaves the files).

  Credentials are the cluster's: an instance profile, or on Databricks the
  storage credential of the Unity Catalog external location over the bucket.
  No key ever goes into the SQL. There are no transactions to mind.
-#}
{% macro spark__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- if not opts.is_prefix -%}
    {{- fail(context, 'key', opts.adapter, "names one object ('" ~ opts.key ~ "'), but Spark writes a folder of part files",
          "End the key with '/' to export into a folder") -}}
  {%- endif -%}
  {%- if opts.mode not in ['replace', 'append', 'overwrite_partitions'] -%}
    {{- fail(context, 'mode', opts.adapter, opts.mode ~ ' needs to look at the destination before writing, which a Spark INSERT cannot',
          'Use replace, append or overwrite_partitions') -}}
  {%- endif -%}
  {%- set fmt = {'csv': 'csv', 'parquet': 'parquet', 'jsonl': 'json'}[opts.file_format] -%}
  {%- set codec = opts.get('compression') -%}
  {%- set allowed = ['none', 'snappy', 'gzip', 'zstd', 'lz4'] if fmt == 'parquet' else ['none', 'gzip'] -%}
  {%- if codec is not none and codec not in allowed -%}
    {{- fail(context, 'compression', opts.adapter, codec ~ ' is not a codec Spark writes ' ~ opts.file_format ~ ' with',
          'Use one of ' ~ (allowed | join(', '))) -}}
  {%- endif -%}
  {%- set split = dbt_s3_export._s3_split_columns(opts, columns) -%}
  {%- set options = [] -%}
  {%- do options.append(('compression', codec or ('snappy' if fmt == 'parquet' else 'none'))) -%}
  {%- if fmt == 'csv' -%}
    {%- do options.append(('header', 'true' if opts.csv_header else 'false')) -%}
    {%- do options.append(('sep', opts.csv_delimiter)) -%}
  {%- endif -%}
  {%- if fmt == 'json' -%}
    {%- do options.append(('ignoreNullFields', 'false')) -%}
  {%- endif -%}
  {%- if opts.get('max_rows_per_file') -%}
    {%- do options.append(('maxRecordsPerFile', opts.max_rows_per_file | string)) -%}
  {%- endif -%}
  {%- if opts.mode == 'overwrite_partitions' -%}
    {%- do options.append(('partitionOverwriteMode', 'dynamic')) -%}
  {%- endif -%}
  {%- set rendered_options = [] -%}
  {%- for name, value in options -%}
    {%- do rendered_options.append(dbt_s3_export._s3_literal(name) ~ ' = ' ~ dbt_s3_export._s3_literal(value)) -%}
  {%- endfor -%}
  {%- set location = opts.get('location') or opts.destination -%}
  {%- if opts.get('location') and not location.endswith('/') -%}
    {%- set location = location ~ '/' -%}
  {%- endif -%}
  {%- set scratch = api.Relation.create(database=relation.database, schema=relation.schema,
        identifier=relation.identifier ~ '__s3_export_' ~ (run_id | lower | replace('-', '_'))) -%}
  {%- set definitions = [] -%}
  {%- for column in split.data + split.parts -%}
    {%- do definitions.append(dbt_s3_export._s3_ident(column.name) ~ ' ' ~ column.type) -%}
  {%- endfor -%}
  {%- set create -%}
CREATE TABLE {{ scratch }} ({{ definitions | join(', ') }})
USING {{ fmt }}
{%- if split.parts %}
PARTITIONED BY ({{ dbt_s3_export._s3_column_list(split.parts) }})
{%- endif %}
LOCATION {{ dbt_s3_export._s3_literal(location) }}
OPTIONS ({{ rendered_options | join(', ') }})
  {%- endset -%}
  {%- set insert -%}
INSERT {{ 'INTO' if opts.mode == 'append' else 'OVERWRITE' }} TABLE {{ scratch }}
{{ dbt_s3_export._s3_select(dbt_s3_export._s3_column_list(split.data + split.parts), relation, opts) }}
  {%- endset -%}
  {%- set steps = [
        dbt_s3_export._s3_step('create_scratch', create),
        dbt_s3_export._s3_step('unload', insert),
        dbt_s3_export._s3_step('drop_scratch', 'DROP TABLE IF EXISTS ' ~ scratch),
      ] -%}
  {{- return(dbt_s3_export._s3_plan_base(opts, model_name, run_id, steps,
        {'replace': 'folder replaced in place', 'append': 'files added',
         'overwrite_partitions': "this run's partitions replaced in place"}[opts.mode])) -}}
{% endmacro %}

{% macro databricks__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {{- return(dbt_s3_export.spark__s3_unload_plan(relation, opts, columns, run_id, model_name)) -}}
{% endmacro %}

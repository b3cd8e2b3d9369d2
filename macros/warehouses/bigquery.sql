{#-
  BigQuery: EXPORT DATA WITH CONNECTION, through a BigQuery Omni connection
  that may write to the bucket (the query must read BigLake tables in that
  connection's AWS region). BigQuery names the files from a wildcard URI and
  writes regardless of what is there, and cannot delete, so every run exports
  into a new generation folder <key><run id>/. No Hive partitions, no manifest,
  no transactions.
-#}
{% macro bigquery__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- do dbt_s3_export._s3_generation_modes(opts, 'BigQuery cannot') -%}
  {%- if not opts.get('connection') -%}
    {{- fail(context, 'connection', opts.adapter, 'is required: BigQuery writes to S3 only through a BigQuery Omni connection',
          'Set connection: <project>.<aws-region>.<connection name>') -}}
  {%- endif -%}
  {%- if opts.partition_cols -%}
    {{- fail(context, 'partition_cols', opts.adapter, 'EXPORT DATA cannot write Hive partition folders',
          'Drop partition_cols, or export each partition with its own entry and a where filter') -}}
  {%- endif -%}
  {%- set codec = opts.get('compression') -%}
  {%- set allowed = ['snappy', 'gzip', 'zstd'] if opts.file_format == 'parquet' else ['none', 'gzip'] -%}
  {%- if codec is not none and codec not in allowed -%}
    {{- fail(context, 'compression', opts.adapter, 'BigQuery exports ' ~ opts.file_format ~ ' with ' ~ (allowed | join(', ')) ~ ', got ' ~ codec) -}}
  {%- endif -%}
  {%- set ext = {'csv': 'csv', 'parquet': 'parquet', 'jsonl': 'json'}[opts.file_format] ~ ('.gz' if codec == 'gzip' and opts.file_format != 'parquet' else '') -%}
  {%- set uri = opts.destination ~ run_id ~ '/part-*.' ~ ext -%}
  {%- set lit = dbt_s3_export._s3_literal -%}
  {%- set options = ['uri = ' ~ lit(uri, true), 'format = ' ~ lit({'csv': 'CSV', 'parquet': 'PARQUET', 'jsonl': 'JSON'}[opts.file_format], true)] -%}
  {%- if opts.file_format == 'csv' -%}
    {%- do options.append('header = ' ~ ('true' if opts.csv_header else 'false')) -%}
    {%- do options.append('field_delimiter = ' ~ lit(opts.csv_delimiter, true)) -%}
  {%- endif -%}
  {%- if codec is not none and codec != 'none' -%}
    {%- do options.append('compression = ' ~ lit(codec | upper, true)) -%}
  {%- endif -%}
  {%- set connection = '`' ~ opts.connection | replace('`', '') ~ '`' -%}
  {%- set sql = 'EXPORT DATA\nWITH CONNECTION ' ~ connection ~ '\nOPTIONS (' ~ options | join(', ') ~ ')\nAS '
        ~ dbt_s3_export._s3_select('*', relation, opts) -%}
  {{- return(dbt_s3_export._s3_plan_base(opts, model_name, run_id, [dbt_s3_export._s3_step('unload', sql)],
        'exported to generation ' ~ opts.destination ~ run_id ~ '/')) -}}
{% endmacro %}

{#-
  Athena: UNLOAD. Athena writes only into an empty folder and cannot delete, so
  every run unloads into a new generation folder <key><run id>/, with Hive
  partitions from partitioned_by (at most 100 per query). Athena keeps the list
  of files it wrote in the workgroup's query result location, not beside the
  data. Credentials are the Athena workgroup's; no transactions.

  No csv: Athena's UNLOAD writes text as TEXTFILE (LazySimpleSerDe), which
  neither quotes nor escapes a field and writes NULL as \N, so a value holding
  the delimiter or a line break would corrupt its row.
-#}
{% macro athena__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- do dbt_s3_export._s3_generation_modes(opts, "Athena's UNLOAD cannot") -%}
  {%- if opts.file_format == 'csv' -%}
    {{- fail(context, 'file_format', opts.adapter, "csv would be Athena's TEXTFILE, which does not quote fields and writes NULL as \\N, "
          ~ 'so a value holding the delimiter or a line break corrupts its row',
          'Use file_format parquet or jsonl') -}}
  {%- endif -%}
  {%- set codec = opts.get('compression') -%}
  {%- set allowed = ['snappy', 'gzip', 'zstd', 'lz4'] if opts.file_format == 'parquet' else ['gzip', 'zstd'] -%}
  {%- if opts.file_format != 'parquet' and codec in [none, 'none'] -%}
    {{- fail(context, 'compression', opts.adapter, "Athena's UNLOAD compresses text files (gzip unless told otherwise)", 'Set compression: gzip or zstd') -}}
  {%- elif codec is not none and codec not in allowed -%}
    {{- fail(context, 'compression', opts.adapter, 'Athena unloads ' ~ opts.file_format ~ ' with ' ~ (allowed | join(', ')) ~ ', got ' ~ codec) -}}
  {%- endif -%}
  {%- set split = dbt_s3_export._s3_split_columns(opts, columns) -%}
  {%- set lit = dbt_s3_export._s3_literal -%}
  {%- set props = ['format = ' ~ lit({'parquet': 'PARQUET', 'jsonl': 'JSON'}[opts.file_format])] -%}
  {%- do props.append('compression = ' ~ lit((codec or 'snappy') | upper)) -%}
  {%- if split.parts -%}
    {%- set names = [] -%}
    {%- for col in split.parts -%}{%- do names.append(lit(col.name)) -%}{%- endfor -%}
    {%- do props.append('partitioned_by = ARRAY[' ~ names | join(', ') ~ ']') -%}
  {%- endif -%}
  {%- set to = opts.destination ~ run_id ~ '/' -%}
  {%- set sql = 'UNLOAD (' ~ dbt_s3_export._s3_select(dbt_s3_export._s3_column_list(split.data + split.parts), relation, opts)
        ~ ')\nTO ' ~ lit(to) ~ '\nWITH (' ~ props | join(', ') ~ ')' -%}
  {{- return(dbt_s3_export._s3_plan_base(opts, model_name, run_id, [dbt_s3_export._s3_step('unload', sql)],
        'unloaded to generation ' ~ to)) -}}
{% endmacro %}

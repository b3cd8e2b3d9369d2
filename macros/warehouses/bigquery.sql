{#-
  BigQuery: EXPORT DATA WITH CONNECTION, through a BigQuery Omni connection
  that may write to the bucket (the query must read BigLake tables in that
  connection's AWS region). BigQuery names the files from a wildcard URI and
  writes regardless of what is there, and cannot delete, so every run exports
  into a new generation folder <key><run id>/. No Hive partitions, no manifest,
  no transactions.

  BigQuery Omni exports to S3 only from a dataset in the connection's AWS
  region. The connection's region is checked at compile time (aws-...), the
  dataset's location at run time from INFORMATION_SCHEMA.SCHEMATA of that
  region, before anything is exported.
-#}
{% macro bigquery__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- do dbt_s3_export._s3_generation_modes(opts, 'BigQuery cannot') -%}
  {%- if not opts.get('connection') -%}
    {{- fail(context, 'connection', opts.adapter, 'is required: BigQuery writes to S3 only through a BigQuery Omni connection',
          'Set connection: <project>.<aws-region>.<connection name>') -}}
  {%- endif -%}
  {%- set parts = opts.connection.split('.') -%}
  {%- if parts | length != 3 or not parts[1].lower().startswith('aws-') or '`' in opts.connection -%}
    {{- fail(context, 'connection', opts.adapter, "must name a BigQuery Omni connection in an AWS region as <project>.<aws-region>.<connection>, got '" ~ opts.connection ~ "'",
          'For example my-project.aws-us-east-1.s3_exports; BigQuery writes to S3 only from BigQuery Omni in an AWS region') -}}
  {%- endif -%}
  {%- if '*' in opts.destination -%}
    {{- fail(context, 'key', opts.adapter, "holds '*', and EXPORT DATA takes every '*' of the uri for the file number (one wildcard only)",
          "Choose a key without '*'") -}}
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
  {%- set options = ['uri = ' ~ lit(uri), 'format = ' ~ lit({'csv': 'CSV', 'parquet': 'PARQUET', 'jsonl': 'JSON'}[opts.file_format])] -%}
  {%- if opts.file_format == 'csv' -%}
    {%- do options.append('header = ' ~ ('true' if opts.csv_header else 'false')) -%}
    {%- do options.append('field_delimiter = ' ~ lit(opts.csv_delimiter)) -%}
  {%- endif -%}
  {%- if codec is not none and codec != 'none' -%}
    {%- do options.append('compression = ' ~ lit(codec | upper)) -%}
  {%- endif -%}
  {%- set connection = '`' ~ opts.connection | replace('`', '') ~ '`' -%}
  {%- set sql = 'EXPORT DATA\nWITH CONNECTION ' ~ connection ~ '\nOPTIONS (' ~ options | join(', ') ~ ')\nAS '
        ~ dbt_s3_export._s3_select('*', relation, opts) -%}
  {%- set region = parts[1] | lower -%}
  {%- set check = 'SELECT location FROM `' ~ relation.database ~ '`.`region-' ~ region ~ '`.INFORMATION_SCHEMA.SCHEMATA WHERE schema_name = '
        ~ dbt_s3_export._s3_literal(relation.schema) -%}
  {%- set plan = dbt_s3_export._s3_plan_base(opts, model_name, run_id,
        [dbt_s3_export._s3_step('location', check, true), dbt_s3_export._s3_step('unload', sql)],
        'exported to generation ' ~ opts.destination ~ run_id ~ '/') -%}
  {%- do plan.update({'region': region, 'dataset': relation.database ~ '.' ~ relation.schema}) -%}
  {{- return(plan) -}}
{% endmacro %}

{#- The dataset must be in the connection's Omni region: checked before the export, with the fix. -#}
{% macro bigquery__s3_unload_run(plan) %}
  {%- for step in plan.steps -%}
    {%- set rows = dbt_s3_export._s3_execute(plan, step) -%}
    {%- if step.name == 'location' and not rows -%}
      {{- dbt_s3_export._s3_fail(plan.opts.context, 'connection', 'bigquery',
            'the model\'s dataset ' ~ plan.dataset ~ ' is not in ' ~ plan.region ~ ', the AWS region of the connection; BigQuery Omni exports to S3 only from datasets in that region',
            'Build the model in a dataset in ' ~ plan.region ~ ' (a BigLake dataset of BigQuery Omni), or use a connection in the dataset\'s region') -}}
    {%- endif -%}
  {%- endfor -%}
  {%- do log('s3_export: ' ~ plan.model ~ ' -> ' ~ plan.destination ~ ' (' ~ plan.file_format ~ ') on bigquery: ' ~ plan.summary, info=True) -%}
{% endmacro %}

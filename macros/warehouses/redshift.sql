{#-
  Redshift: UNLOAD. Redshift cannot list or delete S3 objects, so every run
  unloads into a new generation folder, <key><run id>/, named so that folders
  sort by time, with MANIFEST VERBOSE (the files, their rows and sizes) at
  <key><run id>/manifest. Earlier generations stay until an S3 lifecycle rule
  expires them. Credentials: iam_role (an ARN, or `default` for the cluster's
  default role); keys only with keys_in_sql: true.

  Transactions: the model's transaction is committed first, so the export
  reads committed data and nothing later can roll back what S3 already holds;
  dbt's own COMMIT afterwards finds no transaction and Redshift only warns.
-#}
{% macro redshift__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- do dbt_s3_export._s3_generation_modes(opts, "Redshift's UNLOAD cannot") -%}
  {%- set auth = dbt_s3_export._s3_key_auth(opts, 'iam_role', 'an IAM role the cluster may assume, or default') -%}
  {%- set codec = opts.get('compression') -%}
  {%- if opts.file_format == 'parquet' and codec not in [none, 'snappy'] -%}
    {{- fail(context, 'compression', opts.adapter, "Redshift writes Parquet with snappy only, got " ~ codec, 'Drop compression or set it to snappy') -}}
  {%- elif opts.file_format != 'parquet' and codec not in [none, 'none', 'gzip', 'zstd'] -%}
    {{- fail(context, 'compression', opts.adapter, 'Redshift compresses text files with gzip or zstd, got ' ~ codec, 'Use gzip, zstd or none') -}}
  {%- endif -%}
  {%- set size = opts.get('max_file_size_mb') -%}
  {%- if size is not none and (size < 5 or size > 6200) -%}
    {{- fail(context, 'max_file_size_mb', opts.adapter, 'Redshift accepts 5 to 6200 MB, got ' ~ size) -}}
  {%- endif -%}
  {%- set split = dbt_s3_export._s3_split_columns(opts, columns) -%}
  {%- set query = dbt_s3_export._s3_select('*', relation, opts) -%}
  {%- set to = opts.destination ~ run_id ~ '/' -%}
  {%- set clauses = [] -%}
  {%- do clauses.append('FORMAT AS ' ~ {'csv': 'CSV', 'parquet': 'PARQUET', 'jsonl': 'JSON'}[opts.file_format]) -%}
  {%- if split.parts -%}
    {%- do clauses.append('PARTITION BY (' ~ dbt_s3_export._s3_column_list(split.parts) ~ ')' ~ (' INCLUDE' if opts.include_partition_cols else '')) -%}
  {%- endif -%}
  {%- if opts.file_format == 'csv' -%}
    {%- if opts.csv_header -%}{%- do clauses.append('HEADER') -%}{%- endif -%}
    {%- if opts.csv_delimiter != ',' -%}
      {%- do clauses.append('DELIMITER AS ' ~ dbt_s3_export._s3_literal(opts.csv_delimiter)) -%}
    {%- endif -%}
  {%- endif -%}
  {%- if codec in ['gzip', 'zstd'] -%}
    {%- do clauses.append(codec | upper) -%}
  {%- elif opts.file_format != 'parquet' -%}
    {%- do clauses.append("EXTENSION '" ~ {'csv': 'csv', 'jsonl': 'json'}[opts.file_format] ~ "'") -%}
  {%- endif -%}
  {%- if size is not none -%}
    {%- do clauses.append('MAXFILESIZE AS ' ~ size ~ ' MB') -%}
  {%- endif -%}
  {%- if opts.get('region') -%}
    {%- do clauses.append('REGION AS ' ~ dbt_s3_export._s3_literal(opts.region)) -%}
  {%- endif -%}
  {%- do clauses.append('MANIFEST VERBOSE') -%}
  {%- set head = 'UNLOAD (' ~ dbt_s3_export._s3_literal(query) ~ ')\nTO ' ~ dbt_s3_export._s3_literal(to) ~ '\n' -%}
  {%- set tail = '\n' ~ (clauses | join('\n')) -%}
  {%- set unload = {'name': 'unload', 'sql': head ~ auth.sql ~ tail, 'shown': head ~ auth.shown ~ tail,
                    'fetch': false, 'secret': auth.secret} -%}
  {%- set steps = [dbt_s3_export._s3_step('commit_model', 'COMMIT'), unload] -%}
  {{- return(dbt_s3_export._s3_plan_base(opts, model_name, run_id, steps,
        'unloaded to generation ' ~ to ~ ' (manifest: ' ~ to ~ 'manifest)')) -}}
{% endmacro %}

{#-
  How Snowflake and Redshift reach S3: their own grant (role_option: iam_role,
  or storage_integration), or keys, which go into the SQL only with
  keys_in_sql: true. Returns {sql, shown, secret}: the clause, the clause with
  the keys as ***, and whether it carries keys.
-#}
{% macro _s3_key_auth(opts, role_option, role_doc) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- set has_id = opts.get('access_key_id') is not none -%}
  {%- if has_id != (opts.get('secret_access_key') is not none) -%}
    {{- fail(context, 'secret_access_key' if has_id else 'access_key_id', opts.adapter, 'is missing while its pair is set', 'Give both or neither') -}}
  {%- endif -%}
  {%- if opts.get('session_token') is not none and not has_id -%}
    {{- fail(context, 'session_token', opts.adapter, 'needs access_key_id and secret_access_key', 'Give all three') -}}
  {%- endif -%}
  {%- if has_id and not opts.keys_in_sql -%}
    {{- fail(context, 'access_key_id', opts.adapter, 'would have to go into the SQL sent to ' ~ opts.adapter
          ~ ", where the warehouse's query history keeps it",
          'Set ' ~ role_option ~ ' (' ~ role_doc ~ ') instead, or set keys_in_sql: true to accept that') -}}
  {%- endif -%}
  {%- if has_id and opts.get(role_option) -%}
    {{- fail(context, role_option, opts.adapter, 'and access keys are both set', 'Use one of them') -}}
  {%- endif -%}
  {%- if not has_id and not opts.get(role_option) and not (opts.adapter == 'snowflake' and opts.get('stage')) -%}
    {{- fail(context, role_option, opts.adapter, 'is required: it is how ' ~ opts.adapter ~ ' reaches the bucket',
          'Set ' ~ role_option ~ ' to ' ~ role_doc) -}}
  {%- endif -%}
  {%- if not has_id -%}
    {%- if opts.adapter == 'redshift' -%}
      {%- set role = opts.get(role_option) -%}
      {%- set clause = 'IAM_ROLE ' ~ ('default' if role | lower == 'default' else dbt_s3_export._s3_literal(role)) -%}
    {%- elif opts.get(role_option) -%}
      {%- set clause = 'STORAGE_INTEGRATION = ' ~ opts.get(role_option) -%}
    {%- else -%}
      {%- set clause = '' -%}
    {%- endif -%}
    {{- return({'sql': clause, 'shown': clause, 'secret': false}) -}}
  {%- endif -%}
  {%- set backslash = opts.adapter == 'snowflake' -%}
  {%- set values = [('access_key_id', opts.access_key_id), ('secret_access_key', opts.secret_access_key)] -%}
  {%- if opts.get('session_token') -%}{%- do values.append(('session_token', opts.session_token)) -%}{%- endif -%}
  {%- set names = {'redshift': {'access_key_id': 'ACCESS_KEY_ID', 'secret_access_key': 'SECRET_ACCESS_KEY', 'session_token': 'SESSION_TOKEN'},
                   'snowflake': {'access_key_id': 'AWS_KEY_ID', 'secret_access_key': 'AWS_SECRET_KEY', 'session_token': 'AWS_TOKEN'}}[opts.adapter] -%}
  {%- set sql = [] -%}
  {%- set shown = [] -%}
  {%- for name, value in values -%}
    {%- set joiner = ' = ' if opts.adapter == 'snowflake' else ' ' -%}
    {%- do sql.append(names[name] ~ joiner ~ dbt_s3_export._s3_literal(value, backslash)) -%}
    {%- do shown.append(names[name] ~ joiner ~ "'***'") -%}
  {%- endfor -%}
  {%- if opts.adapter == 'snowflake' -%}
    {{- return({'sql': 'CREDENTIALS = (' ~ sql | join(' ') ~ ')', 'shown': 'CREDENTIALS = (' ~ shown | join(' ') ~ ')', 'secret': true}) -}}
  {%- endif -%}
  {{- return({'sql': sql | join(' '), 'shown': shown | join(' '), 'secret': true}) -}}
{% endmacro %}

{#-
  Redshift: UNLOAD. Redshift cannot list S3, but UNLOAD's CLEANPATH deletes:
  before writing, it removes the files under the TO path (with PARTITION BY,
  only in the partition folders this unload writes into). So:
  - replace (no partition_cols): TO <key> CLEANPATH, with MANIFEST VERBOSE at
    <key>manifest. Not atomic: the old files are gone before the new ones are
    written, and a failed unload leaves the folder empty or partial.
  - overwrite_partitions: TO <key> PARTITION BY ... CLEANPATH: the partitions
    this run writes are replaced, the others kept (no manifest: it would list
    this run's partitions only).
  - replace with partition_cols is refused: CLEANPATH would keep the partitions
    this run does not write.
  - append: a new generation folder <key><run id>/ per run, with its manifest.
  Credentials: iam_role (an ARN, or `default` for the cluster's default role);
  keys only with keys_in_sql: true.

  Transactions: the model's transaction is committed first, so the export
  reads committed data and nothing later can roll back what S3 already holds;
  dbt's own COMMIT afterwards finds no transaction and Redshift only warns.
-#}
{% macro redshift__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- if not opts.is_prefix -%}
    {{- fail(context, 'key', opts.adapter, "names one object ('" ~ opts.key ~ "'), but Redshift names the files of an unload itself",
          "End the key with '/' to export into a folder") -}}
  {%- endif -%}
  {%- if opts.mode in ['error_if_exists', 'skip_if_exists'] -%}
    {{- fail(context, 'mode', opts.adapter, opts.mode ~ " needs to look at what is already in S3, which Redshift's UNLOAD cannot",
          'Use mode replace, overwrite_partitions or append') -}}
  {%- endif -%}
  {%- if opts.mode == 'overwrite_partitions' and not opts.partition_cols -%}
    {{- fail(context, 'mode', opts.adapter, 'overwrite_partitions needs partition_cols', 'Set partition_cols, or use mode replace') -}}
  {%- endif -%}
  {%- if opts.mode == 'replace' and opts.partition_cols -%}
    {{- fail(context, 'mode', opts.adapter, "replace with partition_cols would keep the partitions this run does not write: "
          ~ "Redshift's CLEANPATH removes files only in the partition folders an unload writes into",
          'Use mode overwrite_partitions (this run\'s partitions replaced, the others kept), or drop partition_cols') -}}
  {%- endif -%}
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
  {#- JSON: Redshift writes a boolean as "t"/"f"; a SUPER true/false is written as JSON's true/false. -#}
  {%- set outputs = [] -%}
  {%- for column in columns -%}
    {%- set quoted = dbt_s3_export._s3_ident(column.name) -%}
    {%- if opts.file_format == 'jsonl' and (column.type | lower) in ['boolean', 'bool'] -%}
      {%- do outputs.append("JSON_PARSE(CASE WHEN " ~ quoted ~ " THEN 'true' WHEN NOT " ~ quoted ~ " THEN 'false' END) AS " ~ quoted) -%}
    {%- else -%}
      {%- do outputs.append(quoted) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set query = dbt_s3_export._s3_select(outputs | join(', '), relation, opts) -%}
  {%- set cleanpath = opts.mode in ['replace', 'overwrite_partitions'] -%}
  {%- set to = opts.destination if cleanpath else opts.destination ~ run_id ~ '/' -%}
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
  {%- if cleanpath -%}
    {%- do clauses.append('CLEANPATH') -%}
  {%- endif -%}
  {%- if opts.mode != 'overwrite_partitions' -%}
    {%- do clauses.append('MANIFEST VERBOSE') -%}
  {%- endif -%}
  {%- set head = 'UNLOAD (' ~ dbt_s3_export._s3_literal(query) ~ ')\nTO ' ~ dbt_s3_export._s3_literal(to) ~ '\n' -%}
  {%- set tail = '\n' ~ (clauses | join('\n')) -%}
  {%- set unload = {'name': 'unload', 'sql': head ~ auth.sql ~ tail, 'shown': head ~ auth.shown ~ tail,
                    'fetch': false, 'secret': auth.secret} -%}
  {%- set steps = [dbt_s3_export._s3_step('commit_model', 'COMMIT'), unload] -%}
  {%- set summary = {'replace': 'folder replaced in place (manifest: ' ~ to ~ 'manifest)',
        'overwrite_partitions': "this run's partitions replaced in place",
        'append': 'unloaded to generation ' ~ to ~ ' (manifest: ' ~ to ~ 'manifest)'}[opts.mode] -%}
  {{- return(dbt_s3_export._s3_plan_base(opts, model_name, run_id, steps, summary)) -}}
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
  {%- set values = [('access_key_id', opts.access_key_id), ('secret_access_key', opts.secret_access_key)] -%}
  {%- if opts.get('session_token') -%}{%- do values.append(('session_token', opts.session_token)) -%}{%- endif -%}
  {%- set names = {'redshift': {'access_key_id': 'ACCESS_KEY_ID', 'secret_access_key': 'SECRET_ACCESS_KEY', 'session_token': 'SESSION_TOKEN'},
                   'snowflake': {'access_key_id': 'AWS_KEY_ID', 'secret_access_key': 'AWS_SECRET_KEY', 'session_token': 'AWS_TOKEN'}}[opts.adapter] -%}
  {%- set sql = [] -%}
  {%- set shown = [] -%}
  {%- for name, value in values -%}
    {%- set joiner = ' = ' if opts.adapter == 'snowflake' else ' ' -%}
    {%- do sql.append(names[name] ~ joiner ~ dbt_s3_export._s3_literal(value)) -%}
    {%- do shown.append(names[name] ~ joiner ~ "'***'") -%}
  {%- endfor -%}
  {%- if opts.adapter == 'snowflake' -%}
    {{- return({'sql': 'CREDENTIALS = (' ~ sql | join(' ') ~ ')', 'shown': 'CREDENTIALS = (' ~ shown | join(' ') ~ ')', 'secret': true}) -}}
  {%- endif -%}
  {{- return({'sql': sql | join(' '), 'shown': shown | join(' '), 'secret': true}) -}}
{% endmacro %}

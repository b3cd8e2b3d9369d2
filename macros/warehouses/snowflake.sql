{#-
  Snowflake: COPY INTO <location>. A single object is written with SINGLE =
  TRUE and OVERWRITE = TRUE (S3 swaps the object whole). A folder run writes a
  new generation: INCLUDE_QUERY_ID = TRUE puts the COPY's query id in every file
  name, so nothing earlier is overwritten; then, through a named external stage
  (option stage, whose URL must be s3://<bucket>/), the run lists the folder,
  writes <key>_manifest.json (this run's files and the earlier ones the mode
  keeps: the commit point) and REMOVEs the earlier generations' files, only
  files named the way Snowflake names them (data_<query id>_...). Without a
  stage only append works: Snowflake can list and remove files only on a stage.

  Transactions: Snowflake runs DML inside an open transaction, where it is
  never committed if nothing commits it (the known trap of COPY INTO from
  dbt). Every statement that writes is sent as `begin; ...; commit;`, as
  dbt-snowflake wraps its own DML: BEGIN is ignored when a transaction is
  already open and the COMMIT closes it either way.
-#}
{% macro snowflake__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {%- set fail = dbt_s3_export._s3_fail -%}
  {%- set context = opts.context -%}
  {%- set stage = opts.get('stage') -%}
  {%- if stage and opts.get('storage_integration') -%}
    {{- fail(context, 'storage_integration', opts.adapter, 'and stage are both set; a stage carries its own integration', 'Use one of them') -}}
  {%- endif -%}
  {%- set needs_stage = (opts.is_prefix and opts.mode in ['replace', 'overwrite_partitions']) or opts.mode in ['error_if_exists', 'skip_if_exists'] -%}
  {%- if needs_stage and not stage -%}
    {{- fail(context, 'mode', opts.adapter, opts.mode ~ (' of a folder' if opts.is_prefix else '')
          ~ ' has to list and remove files, which Snowflake does only on a named stage',
          'Set stage: <database>.<schema>.<stage>, an external stage whose URL is s3://' ~ opts.bucket ~ '/, or use mode append') -}}
  {%- endif -%}
  {%- set auth = dbt_s3_export._s3_key_auth(opts, 'storage_integration', 'a storage integration granted on the bucket') -%}
  {%- set split = dbt_s3_export._s3_split_columns(opts, columns) -%}
  {%- if split.parts and not opts.include_partition_cols -%}
    {{- fail(context, 'include_partition_cols', opts.adapter, 'Snowflake keeps the partition columns inside the files too (PARTITION BY reads them from the unloaded columns)',
          'Set include_partition_cols: true') -}}
  {%- endif -%}
  {%- set codec = opts.get('compression') -%}
  {%- set allowed = ['snappy', 'none'] if opts.file_format == 'parquet' else ['none', 'gzip', 'zstd'] -%}
  {%- if codec is not none and codec not in allowed -%}
    {{- fail(context, 'compression', opts.adapter, 'Snowflake unloads ' ~ opts.file_format ~ ' with ' ~ (allowed | join(', ')) ~ ', got ' ~ codec) -}}
  {%- endif -%}
  {%- if opts.get('sse') and (stage or opts.sse == 'aws:kms:dsse') -%}
    {{- fail(context, 'sse', opts.adapter, 'a stage sets its own encryption, and Snowflake knows AES256 and aws:kms only',
          'Set ENCRYPTION on the stage, or use sse AES256 or aws:kms with storage_integration') -}}
  {%- endif -%}
  {%- set lit = dbt_s3_export._s3_literal -%}
  {#- Where: a stage path, or the bucket URL with the integration or the keys. -#}
  {%- if stage -%}
    {%- set target = dbt_s3_export._snowflake_stage_path(stage, opts.key) -%}
    {%- set target_shown = target -%}
  {%- else -%}
    {%- set encryption = '' -%}
    {%- if opts.get('sse') == 'AES256' -%}
      {%- set encryption = "\nENCRYPTION = (TYPE = 'AWS_SSE_S3')" -%}
    {%- elif opts.get('sse') == 'aws:kms' -%}
      {%- set encryption = "\nENCRYPTION = (TYPE = 'AWS_SSE_KMS'" ~ (' KMS_KEY_ID = ' ~ lit(opts.sse_kms_key_id) if opts.get('sse_kms_key_id') else '') ~ ')' -%}
    {%- endif -%}
    {%- set target = lit(opts.destination) ~ '\n' ~ auth.sql ~ encryption -%}
    {%- set target_shown = lit(opts.destination) ~ '\n' ~ auth.shown ~ encryption -%}
  {%- endif -%}
  {#-
    What: the columns under the names the model gave them (below), for JSON
    Lines one object per row with NULLs kept. A JSON unload takes exactly one
    column, so its partition expressions read the values back out of that object.
  -#}
  {%- set names = {} -%}
  {%- for column in split.data + split.parts -%}
    {%- do names.update({column.name: dbt_s3_export._snowflake_model_name(column.name)}) -%}
  {%- endfor -%}
  {%- set outputs = [] -%}
  {%- if opts.file_format == 'jsonl' -%}
    {%- set pairs = [] -%}
    {%- for column in split.data + split.parts -%}
      {%- do pairs.append(lit(names[column.name]) ~ ', ' ~ dbt_s3_export._s3_ident(column.name)) -%}
    {%- endfor -%}
    {%- set select_list = 'OBJECT_CONSTRUCT_KEEP_NULL(' ~ pairs | join(', ') ~ ') AS ' ~ dbt_s3_export._s3_ident('S3_EXPORT_ROW') -%}
  {%- else -%}
    {%- for column in split.data + split.parts -%}
      {%- do outputs.append(dbt_s3_export._s3_ident(column.name) ~ ' AS ' ~ dbt_s3_export._s3_ident(names[column.name])) -%}
    {%- endfor -%}
    {%- set select_list = outputs | join(', ') -%}
  {%- endif -%}
  {%- set lines = ['FROM (' ~ dbt_s3_export._s3_select(select_list, relation, opts) ~ ')'] -%}
  {%- if split.parts -%}
    {%- set segments = [] -%}
    {%- for col in split.parts -%}
      {%- if opts.file_format == 'jsonl' -%}
        {%- set value = 'GET(' ~ dbt_s3_export._s3_ident('S3_EXPORT_ROW') ~ ', ' ~ lit(names[col.name]) ~ ')::' ~ col.type -%}
      {%- else -%}
        {%- set value = dbt_s3_export._s3_ident(names[col.name]) -%}
      {%- endif -%}
      {%- do segments.append(lit(('/' if not loop.first else '') ~ dbt_s3_export._s3_hive_name(col.path_name) ~ '=') ~ ' || '
            ~ dbt_s3_export._s3_hive_value(dbt_s3_export._snowflake_text(value, col.type))) -%}
    {%- endfor -%}
    {%- do lines.append('PARTITION BY (' ~ segments | join(' || ') ~ ')') -%}
  {%- endif -%}
  {%- set type_options = {'csv': 'TYPE = CSV FIELD_DELIMITER = ' ~ lit(opts.csv_delimiter)
        ~ " FIELD_OPTIONALLY_ENCLOSED_BY = '\"' NULL_IF = ('') EMPTY_FIELD_AS_NULL = FALSE",
        'parquet': 'TYPE = PARQUET', 'jsonl': 'TYPE = JSON'}[opts.file_format] -%}
  {%- set default_codec = 'snappy' if opts.file_format == 'parquet' else 'none' -%}
  {%- do lines.append('FILE_FORMAT = (' ~ type_options ~ ' COMPRESSION = ' ~ (codec or default_codec) | upper ~ ')') -%}
  {%- if opts.file_format != 'jsonl' -%}
    {#- Parquet needs HEADER to keep the column names (else _COL_0, _COL_1, ...). -#}
    {%- do lines.append('HEADER = ' ~ ('TRUE' if opts.file_format == 'parquet' or opts.csv_header else 'FALSE')) -%}
  {%- endif -%}
  {%- if opts.is_prefix -%}
    {%- if opts.get('max_file_size_mb') -%}
      {%- do lines.append('MAX_FILE_SIZE = ' ~ opts.max_file_size_mb * 1048576) -%}
    {%- endif -%}
    {%- do lines.append('INCLUDE_QUERY_ID = TRUE') -%}
    {%- do lines.append('DETAILED_OUTPUT = TRUE') -%}
  {%- else -%}
    {%- do lines.append('SINGLE = TRUE') -%}
    {%- do lines.append('MAX_FILE_SIZE = ' ~ (opts.get('max_file_size_mb') or 5120) * 1048576) -%}
    {%- do lines.append('OVERWRITE = TRUE') -%}
  {%- endif -%}
  {%- set body = '\n' ~ lines | join('\n') -%}
  {%- set steps = [] -%}
  {%- if opts.mode in ['error_if_exists', 'skip_if_exists'] -%}
    {%- do steps.append(dbt_s3_export._s3_step('check', 'LIST ' ~ dbt_s3_export._snowflake_stage_path(stage, opts.key), true)) -%}
  {%- endif -%}
  {%- do steps.append({'name': 'unload', 'fetch': false, 'secret': auth.secret,
        'sql': dbt_s3_export._snowflake_committed('COPY INTO ' ~ target ~ body),
        'shown': dbt_s3_export._snowflake_committed('COPY INTO ' ~ target_shown ~ body)}) -%}
  {%- if opts.is_prefix -%}
    {#- The COPY's DETAILED_OUTPUT, read back: it ran just before the COMMIT. -#}
    {%- do steps.append(dbt_s3_export._s3_step('files', 'SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))', true)) -%}
    {%- if stage -%}
      {%- do steps.append(dbt_s3_export._s3_step('list', 'LIST ' ~ dbt_s3_export._snowflake_stage_path(stage, opts.key), true)) -%}
    {%- endif -%}
  {%- endif -%}
  {%- set plan = dbt_s3_export._s3_plan_base(opts, model_name, run_id, steps,
        'new generation written' if opts.is_prefix else 'object replaced') -%}
  {%- do plan.update({'stage': stage}) -%}
  {{- return(plan) -}}
{% endmacro %}

{#- `begin; <statement>; commit;`: the statement is committed whatever the session's state. -#}
{% macro _snowflake_committed(statement) %}
  {{- return('begin;\n' ~ statement ~ ';\ncommit;') -}}
{% endmacro %}

{#-
  A partition value as a Hive folder name, in SQL, escaped as the DuckDB export
  escapes it (dbt_s3_export/partitioning.py): every ASCII character but letters,
  digits and -._~ percent-encoded ('%' first), non-ASCII kept, NULL as Hive's
  default partition, and a text that spells it with its underscores encoded.
-#}
{% macro _s3_hive_value(expression) %}
  {%- set sql = namespace(text='REPLACE(' ~ expression ~ ", '%', '%25')") -%}
  {%- set unreserved = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%' -%}
  {%- for code in range(128) -%}
    {%- set ch = '%c' | format(code) -%}
    {%- if ch not in unreserved -%}
      {%- set sql.text = 'REPLACE(' ~ sql.text ~ ', ' ~ dbt_s3_export._s3_literal(ch) ~ ", '%" ~ ('%02X' | format(code)) ~ "')" -%}
    {%- endif -%}
  {%- endfor -%}
  {{- return("COALESCE(IFF(" ~ expression ~ " = '__HIVE_DEFAULT_PARTITION__', '%5F%5FHIVE_DEFAULT_PARTITION%5F%5F', "
        ~ sql.text ~ "), '__HIVE_DEFAULT_PARTITION__')") -}}
{% endmacro %}

{#- A partition column's name in a folder name, escaped as its value is (Jinja, at compile time). -#}
{% macro _s3_hive_name(name) %}
  {%- set unreserved = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~' -%}
  {%- set out = [] -%}
  {%- for ch in name -%}
    {%- if ch in unreserved or ch > '\x7f' -%}
      {%- do out.append(ch) -%}
    {%- else -%}
      {%- do out.append('%' ~ ('%02X' | format(dbt_s3_export._s3_ascii_code(ch)))) -%}
    {%- endif -%}
  {%- endfor -%}
  {{- return(out | join('')) -}}
{% endmacro %}

{% macro _s3_ascii_code(ch) %}
  {%- for code in range(128) if ('%c' | format(code)) == ch -%}
    {{- return(code) -}}
  {%- endfor -%}
  {{- return(63) -}}
{% endmacro %}

{#-
  A value as text in the DuckDB export's spelling, whatever the session's
  DATE_OUTPUT_FORMAT / TIMESTAMP_OUTPUT_FORMAT: dates YYYY-MM-DD, timestamps
  'YYYY-MM-DD HH24:MI:SS' with the fraction's trailing zeros cut, zoned ones in
  UTC with a Z, as Arrow prints them.
-#}
{% macro _snowflake_text(expression, type) %}
  {%- set t = (type or '') | upper -%}
  {%- set trim = "REGEXP_REPLACE(TO_VARCHAR({}, {}), " ~ dbt_s3_export._s3_literal('\\.?0*$') ~ ", '')" -%}
  {%- if t.startswith('DATE') and not t.startswith('DATETIME') -%}
    {{- return("TO_VARCHAR(" ~ expression ~ ", 'YYYY-MM-DD')") -}}
  {%- elif t.startswith('TIMESTAMP_TZ') or t.startswith('TIMESTAMP_LTZ') -%}
    {{- return(trim.format("CONVERT_TIMEZONE('UTC', " ~ expression ~ ")::TIMESTAMP_NTZ", "'YYYY-MM-DD HH24:MI:SS.FF9'") ~ " || 'Z'") -}}
  {%- elif t.startswith('TIMESTAMP') or t.startswith('DATETIME') -%}
    {{- return(trim.format(expression, "'YYYY-MM-DD HH24:MI:SS.FF9'")) -}}
  {%- elif t.startswith('TIME') -%}
    {{- return(trim.format(expression, "'HH24:MI:SS.FF9'")) -}}
  {%- endif -%}
  {{- return('TO_VARCHAR(' ~ expression ~ ')') -}}
{% endmacro %}

{#-
  The name a column has in the model. Snowflake stores an unquoted name
  upper-case (`select 1 as id` gives ID); every other engine, and the DuckDB
  export, keeps it as written, which for an unquoted name is lower-case by
  convention. So a name Snowflake would store for an unquoted identifier (all
  upper-case letters, digits, _ and $) is written lower-case; a quoted name with
  any lower-case letter or other character is kept exactly.
-#}
{% macro _snowflake_model_name(name) %}
  {%- if modules.re.match('^[A-Z_][A-Z0-9_$]*$', name) -%}
    {{- return(name | lower) -}}
  {%- endif -%}
  {{- return(name) -}}
{% endmacro %}

{#-
  `'@<stage>/<path>'`: a stage path always in quotes, which Snowflake requires
  when the path holds a space or a special character (LIST, REMOVE, COPY INTO).
-#}
{% macro _snowflake_stage_path(stage, path) %}
  {{- return(dbt_s3_export._s3_literal('@' ~ stage ~ '/' ~ path, 'snowflake')) -}}
{% endmacro %}

{% macro snowflake__s3_unload_run(plan) %}
  {%- set opts = plan.opts -%}
  {%- set results = {} -%}
  {%- for step in plan.steps -%}
    {%- set rows = dbt_s3_export._s3_execute(plan, step) -%}
    {%- do results.update({step.name: rows}) -%}
    {%- if step.name == 'check' -%}
      {%- set exists = [] -%}
      {%- for row in rows -%}
        {%- if opts.is_prefix or row[0].endswith('/' ~ opts.key) -%}{%- do exists.append(row[0]) -%}{%- endif -%}
      {%- endfor -%}
      {%- if exists and opts.mode == 'error_if_exists' -%}
        {{- dbt_s3_export._s3_fail(opts.context, 'mode', 'snowflake', 'error_if_exists: ' ~ plan.destination ~ ' already holds ' ~ exists[0], 'Remove it, or use another mode') -}}
      {%- elif exists -%}
        {%- do log('s3_export: ' ~ plan.model ~ ' -> ' ~ plan.destination ~ ': skipped (' ~ exists[0] ~ ' already exists)', info=True) -%}
        {{- return(none) -}}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if plan.stage and opts.is_prefix -%}
    {%- for step in dbt_s3_export._snowflake_finish_steps(plan, results['files'], results['list'], modules.datetime.datetime.utcnow().isoformat() ~ 'Z') -%}
      {%- do dbt_s3_export._s3_execute(plan, step) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- do log('s3_export: ' ~ plan.model ~ ' -> ' ~ plan.destination ~ ' (' ~ plan.file_format ~ ') on snowflake: '
        ~ plan.summary ~ ((', ' ~ results['files'] | length ~ ' files') if 'files' in results else ''), info=True) -%}
{% endmacro %}

{#-
  After a folder COPY through a stage: the manifest, then REMOVE of the earlier
  generations. files: the COPY's DETAILED_OUTPUT rows (name relative to the
  folder, bytes, rows); listed: LIST rows (full s3:// URL first). Only files
  named data_<query id>_... are ever removed, and never this run's.
-#}
{% macro _snowflake_finish_steps(plan, files, listed, created_at) %}
  {%- set opts = plan.opts -%}
  {%- set uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' -%}
  {%- set new_ids = [] -%}
  {%- set touched = [] -%}
  {%- set manifest_files = [] -%}
  {%- for row in files -%}
    {%- set rel = row[0] | string | replace('\\', '/') -%}
    {%- set rel = rel[1:] if rel.startswith('/') else rel -%}
    {%- set base = rel.split('/')[-1] -%}
    {%- set found = modules.re.match('^data_(' ~ uuid ~ ')_', base) -%}
    {%- if found and found.group(1) not in new_ids -%}{%- do new_ids.append(found.group(1)) -%}{%- endif -%}
    {%- if rel[:rel | length - base | length] not in touched -%}{%- do touched.append(rel[:rel | length - base | length]) -%}{%- endif -%}
    {%- do manifest_files.append({'key': opts.key ~ rel, 'bytes': row[1], 'rows': row[2], 'generation': plan.run_id}) -%}
  {%- endfor -%}
  {%- set root = 's3://' ~ opts.bucket ~ '/' ~ opts.key -%}
  {%- set old = {} -%}
  {%- for row in listed -%}
    {%- set name = row[0] | string -%}
    {%- if not name.startswith(root) -%}
      {{- dbt_s3_export._s3_fail(opts.context, 'stage', 'snowflake', "LIST @" ~ plan.stage ~ '/' ~ opts.key ~ " returned '" ~ name ~ "', which is not under " ~ root,
            'The URL of the stage must be s3://' ~ opts.bucket ~ '/ (the bucket root), so that @stage/<key> is s3://<bucket>/<key>') -}}
    {%- endif -%}
    {%- set rel = name[root | length:] -%}
    {%- set base = rel.split('/')[-1] -%}
    {%- set folder = rel[:rel | length - base | length] -%}
    {%- set found = modules.re.match('^data_(' ~ uuid ~ ')_', base) -%}
    {%- if found and found.group(1) not in new_ids -%}
      {%- if opts.mode == 'replace' or folder in touched -%}
        {%- do old.update({folder ~ 'data_' ~ found.group(1) ~ '_': true}) -%}
      {%- else -%}
        {%- do manifest_files.append({'key': opts.key ~ rel, 'bytes': row[1], 'rows': none, 'generation': none}) -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set manifest = {'format_version': 1, 'generation': plan.run_id, 'query_ids': new_ids, 'created_at': created_at,
        'model': plan.model, 'destination': plan.destination, 'mode': opts.mode, 'file_format': opts.file_format,
        'compression': opts.get('compression'), 'partition_cols': opts.partition_cols, 'adapter': 'snowflake',
        'files': manifest_files} -%}
  {%- set text = tojson(manifest, sort_keys=True) | replace('$$', '$ $') -%}
  {%- set write = 'COPY INTO ' ~ dbt_s3_export._snowflake_stage_path(plan.stage, opts.key ~ '_manifest.json') ~ '\nFROM (SELECT PARSE_JSON($$' ~ text ~ '$$))\n'
        ~ 'FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)\nSINGLE = TRUE\nOVERWRITE = TRUE' -%}
  {%- set steps = [dbt_s3_export._s3_step('manifest', dbt_s3_export._snowflake_committed(write))] -%}
  {%- for prefix in old.keys() | sort -%}
    {%- do steps.append(dbt_s3_export._s3_step('remove', 'REMOVE ' ~ dbt_s3_export._snowflake_stage_path(plan.stage, opts.key ~ prefix))) -%}
  {%- endfor -%}
  {{- return(steps) -}}
{% endmacro %}

{#-
  export_to_s3() on a warehouse: check every s3_export entry against the shared
  option spec, plan each export as that warehouse's own statements, then run the
  plans. Planning is apart from running (macros/warehouses/<adapter>.sql), so
  every statement can be rendered and reviewed without a connection.

  Logs: the EXPORT-style rendering of each entry, as on DuckDB, and every native
  statement as it is sent, both with credentials shown as ***.
-#}
{% macro _warehouse_export(node, relation) %}
  {%- set entries = dbt_s3_export._entries_to_export(node) -%}
  {%- if entries | length == 0 -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set adapter_name = adapter.type() -%}
  {%- set state = namespace(columns=none) -%}
  {%- set plans = [] -%}
  {%- set rendered = [] -%}
  {%- for entry in entries -%}
    {%- set context = "model '" ~ node.name ~ "' s3_export" ~ ('[' ~ loop.index0 ~ ']' if entries | length > 1 else '') -%}
    {%- set opts = dbt_s3_export._check_options(entry, adapter_name, context) -%}
    {%- if not opts.enabled -%}
      {%- do log('s3_export: ' ~ node.name ~ ' -> ' ~ opts.destination ~ ': skipped (enabled: false)', info=True) -%}
    {%- else -%}
      {%- if opts.mode == 'append' and node.config.materialized == 'incremental' -%}
        {%- do log('s3_export: ' ~ node.name ~ ': the model is incremental, and ' ~ adapter_name
              ~ ' unloads all of it on every run of an append export (rows: batch is the DuckDB '
              ~ "plugin's). To export only new rows, add a where with the model's incremental "
              ~ 'predicate, or use mode replace', info=True) -%}
      {%- endif -%}
      {%- if state.columns is none -%}
        {%- set state.columns = dbt_s3_export._s3_columns(relation) -%}
      {%- endif -%}
      {%- do plans.append(dbt_s3_export._s3_plan(relation, opts, state.columns, dbt_s3_export._s3_run_id(), node.name)) -%}
      {%- do rendered.append(dbt_s3_export._render_export_statement(relation, entry)) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- for plan in plans -%}
    {%- do log('s3_export: ' ~ node.name ~ ':\n' ~ rendered[loop.index0], info=False) -%}
    {%- do adapter.dispatch('s3_unload_run', 'dbt_s3_export')(plan) -%}
  {%- endfor -%}
  {#- Nothing is left for the hook to run: some warehouses (Spark) reject a statement
      that is only a comment, and the renderings are in the log already. -#}
  {{- return('') -}}
{% endmacro %}

{#- The warehouse's plan for one checked entry: {steps: [{sql, shown, ...}], ...}. -#}
{% macro _s3_plan(relation, opts, columns, run_id, model_name) %}
  {#- What no warehouse writes, checked once for all of them. -#}
  {%- if opts.file_format == 'json' -%}
    {{- dbt_s3_export._s3_fail(opts.context, 'file_format', opts.adapter,
          'json is one array per file, but ' ~ opts.adapter ~ ' writes JSON as one object per line',
          'Use file_format jsonl') -}}
  {%- endif -%}
  {%- if opts.file_format in ['iceberg', 'delta'] -%}
    {{- dbt_s3_export._s3_fail(opts.context, 'file_format', opts.adapter,
          opts.file_format ~ ' tables are written by the dbt-duckdb plugin only',
          'Use csv, parquet or jsonl here, or create the table with the warehouse\'s own table materializations') -}}
  {%- endif -%}
  {{- return(adapter.dispatch('s3_unload_plan', 'dbt_s3_export')(relation, opts, columns, run_id, model_name)) -}}
{% endmacro %}

{% macro default__s3_unload_plan(relation, opts, columns, run_id, model_name) %}
  {{- dbt_s3_export._s3_fail(opts.context, none, adapter.type(),
        'no native unload for this adapter', 'Use dbt-duckdb with the dbt_s3_export plugin, or one of snowflake, redshift, bigquery, databricks, spark, athena') -}}
{% endmacro %}

{#- Run a plan's statements in order; warehouses with follow-up work override this. -#}
{% macro default__s3_unload_run(plan) %}
  {%- for step in plan.steps -%}
    {%- do dbt_s3_export._s3_execute(plan, step) -%}
  {%- endfor -%}
  {%- do log('s3_export: ' ~ plan.model ~ ' -> ' ~ plan.destination ~ ' (' ~ plan.file_format ~ ') on '
        ~ plan.adapter ~ ': ' ~ plan.summary, info=True) -%}
{% endmacro %}

{#-
  Send one statement and return its rows (a list of tuples) when step.fetch.
  A statement that carries keys (keys_in_sql: true) is sent with dbt's SQL log
  cut to 512 characters, and a comment that fills them leads the statement, so
  dbt's log shows the comment and never the keys; the statement is logged here
  with the keys as ***.
-#}
{% macro _s3_execute(plan, step) %}
  {%- do log('s3_export: ' ~ plan.model ~ ': ' ~ plan.adapter ~ ' statement:\n' ~ step.shown, info=False) -%}
  {%- if step.get('secret') -%}
    {%- set sent = adapter.add_query(dbt_s3_export._s3_log_shield() ~ step.sql, auto_begin=False, abridge_sql_log=True) -%}
    {{- return(sent[1].fetchall() if step.get('fetch') else []) -}}
  {%- endif -%}
  {%- set result = adapter.execute(step.sql, auto_begin=False, fetch=step.get('fetch', False)) -%}
  {%- if not step.get('fetch') -%}
    {{- return([]) -}}
  {%- endif -%}
  {%- set rows = [] -%}
  {%- for row in result[1].rows -%}
    {%- do rows.append(row | list) -%}
  {%- endfor -%}
  {{- return(rows) -}}
{% endmacro %}

{% macro _s3_log_shield() %}
  {%- set text = '/* dbt_s3_export: this statement carries credentials (keys_in_sql: true). dbt logs only '
        ~ 'the first 512 characters of it, which this comment fills; dbt_s3_export logged the statement '
        ~ 'with every credential shown as ***. ' -%}
  {{- return(text ~ ('.' * (530 - text | length)) ~ ' */\n') -}}
{% endmacro %}

{#- The relation's columns as [{name, type}], in table order. -#}
{% macro _s3_columns(relation) %}
  {%- set columns = [] -%}
  {%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do columns.append({'name': column.name, 'type': column.data_type}) -%}
  {%- endfor -%}
  {{- return(columns) -}}
{% endmacro %}

{#- A per-run id that sorts by time: the generation folder of warehouses that cannot delete. -#}
{% macro _s3_run_id() %}
  {{- return(run_started_at.strftime('%Y%m%dT%H%M%SZ') ~ '-' ~ invocation_id[:8]) -}}
{% endmacro %}

{#-
  The model's columns split for partitioning: partition_cols matched to the
  relation's columns case-insensitively (warehouses upper- or lower-case names).
  Returns {data: [...], parts: [...]} of column dicts, parts in partition order.
-#}
{% macro _s3_split_columns(opts, columns) %}
  {%- set parts = [] -%}
  {%- set data = [] -%}
  {%- set wanted = opts.partition_cols | map('lower') | list -%}
  {%- for col in opts.partition_cols -%}
    {%- set found = columns | selectattr('name', 'equalto', col) | list -%}
    {%- if not found -%}
      {%- set found = [] -%}
      {%- for column in columns if column.name | lower == col | lower -%}
        {%- do found.append(column) -%}
      {%- endfor -%}
    {%- endif -%}
    {%- if not found -%}
      {{- dbt_s3_export._s3_fail(opts.context, 'partition_cols', opts.adapter,
            "names column '" ~ col ~ "', which the model does not have",
            'Columns: ' ~ (columns | map(attribute='name') | join(', '))) -}}
    {%- endif -%}
    {%- do parts.append({'name': found[0].name, 'type': found[0].type, 'path_name': col}) -%}
  {%- endfor -%}
  {%- for column in columns if (column.name | lower) not in wanted -%}
    {%- do data.append(column) -%}
  {%- endfor -%}
  {%- if parts and not data -%}
    {{- dbt_s3_export._s3_fail(opts.context, 'partition_cols', opts.adapter,
          'leaves no column for the files', 'Partition by fewer columns') -}}
  {%- endif -%}
  {{- return({'data': data, 'parts': parts}) -}}
{% endmacro %}

{#- Column names quoted for this warehouse, joined with commas. -#}
{% macro _s3_column_list(columns) %}
  {%- set names = [] -%}
  {%- for column in columns -%}
    {%- do names.append(dbt_s3_export._s3_ident(column.name)) -%}
  {%- endfor -%}
  {{- return(names | join(', ')) -}}
{% endmacro %}

{#-
  A quoted identifier (a column name) for a warehouse's SQL: "..." with "" for
  a quote on Snowflake, Redshift and Athena; `...` on Spark and Databricks
  (`` for a backtick) and BigQuery (\` for a backtick, \\ for a backslash).
  adapter.quote() does not escape the quote character itself.
-#}
{% macro _s3_ident(name, dialect=none) %}
  {%- set dialect = dialect or adapter.type() -%}
  {%- if dialect == 'bigquery' -%}
    {{- return('`' ~ name.replace('\\', '\\\\').replace('`', '\\`') ~ '`') -}}
  {%- elif dialect in ['spark', 'databricks'] -%}
    {{- return('`' ~ name.replace('`', '``') ~ '`') -}}
  {%- endif -%}
  {{- return('"' ~ name.replace('"', '""') ~ '"') -}}
{% endmacro %}

{#-
  A string literal for a warehouse's SQL, the one way every value (S3 URL, stage
  path, option value, the query inside Redshift's UNLOAD('...')) enters a
  statement. The rules, each from the warehouse's reference on string literals:
  - snowflake, bigquery, spark, databricks: backslash escapes. `\\` and `\'`,
    `\n` `\r` `\t`, other control characters as `\u00XX`; BigQuery's quoted
    strings may not hold a raw line break at all.
  - redshift: `''` for a quote and `\\` for a backslash (Redshift reads a
    backslash in a literal as an escape); line breaks stay as they are.
  - athena (Trino): `''` for a quote; nothing else is special.
  dialect defaults to the adapter's type.
-#}
{% macro _s3_literal(value, dialect=none) %}
  {%- set dialect = dialect or adapter.type() -%}
  {%- set text = value | string -%}
  {%- if dialect in ['athena', 'trino'] -%}
    {{- return("'" ~ text.replace("'", "''") ~ "'") -}}
  {%- elif dialect in ['redshift', 'postgres'] -%}
    {{- return("'" ~ text.replace('\\', '\\\\').replace("'", "''") ~ "'") -}}
  {%- endif -%}
  {%- set out = [] -%}
  {%- set named = {} -%}
  {%- for code in (range(32) | list) + [127] -%}
    {%- do named.update({'%c' | format(code): '\\u%04X' | format(code)}) -%}
  {%- endfor -%}
  {%- do named.update({'\\': '\\\\', "'": "\\'", '\n': '\\n', '\r': '\\r', '\t': '\\t'}) -%}
  {%- for ch in text -%}
    {%- do out.append(named.get(ch, ch)) -%}
  {%- endfor -%}
  {{- return("'" ~ out | join('') ~ "'") -}}
{% endmacro %}

{#- `select <columns> from <relation> [where (<where>)]`. -#}
{% macro _s3_select(select_list, relation, opts) %}
  {{- return('SELECT ' ~ select_list ~ ' FROM ' ~ relation ~ (' WHERE (' ~ opts.where ~ ')' if opts.get('where') else '')) -}}
{% endmacro %}

{#- The parts of a plan every warehouse fills the same way. -#}
{% macro _s3_plan_base(opts, model_name, run_id, steps, summary) %}
  {{- return({'adapter': opts.adapter, 'model': model_name, 'destination': opts.destination,
              'file_format': opts.file_format, 'mode': opts.mode, 'run_id': run_id,
              'steps': steps, 'summary': summary, 'opts': opts}) -}}
{% endmacro %}

{#- A step whose text is the same with and without secrets. -#}
{% macro _s3_step(name, sql, fetch=false) %}
  {{- return({'name': name, 'sql': sql, 'shown': sql, 'fetch': fetch, 'secret': false}) -}}
{% endmacro %}

{#- Fail unless the output needs no generation folder: warehouses that cannot delete write one per run. -#}
{% macro _s3_generation_modes(opts, why) %}
  {%- if opts.mode not in ['replace', 'append'] -%}
    {{- dbt_s3_export._s3_fail(opts.context, 'mode', opts.adapter,
          opts.mode ~ ' needs to look at or remove what is already in S3, which ' ~ why,
          'Use mode replace (each run writes a new generation folder; readers take the newest) or append (readers take all)') -}}
  {%- endif -%}
  {%- if not opts.is_prefix -%}
    {{- dbt_s3_export._s3_fail(opts.context, 'key', opts.adapter,
          "names one object ('" ~ opts.key ~ "'), but " ~ opts.adapter ~ ' names the files of an unload itself',
          "End the key with '/' to export into a folder") -}}
  {%- endif -%}
{% endmacro %}

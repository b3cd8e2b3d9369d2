{#-
  Render the exports as EXPORT statements, log them (dbt's debug log, secrets
  redacted) and hand the exports to the plugin. The hook returns no SQL: a
  statement for DuckDB to run would cost each model a query and its log events,
  and the log line above already shows what was exported.
-#}
{% macro _run_exports(plugin_name, relation, name, unique_id, exports, full_refresh=false, materialized=none) %}
  {%- set statements = [] -%}
  {%- for entry in exports -%}
    {%- do statements.append(dbt_s3_export._render_export_statement(relation, entry)) -%}
  {%- endfor -%}
  {%- set rendered = statements | join('\n') -%}
  {%- do log('s3_export: ' ~ name ~ ':\n' ~ rendered, info=False) -%}
  {%- set payload = {
        'model': name,
        'unique_id': unique_id,
        'invocation_id': invocation_id,
        'full_refresh': full_refresh,
        'materialized': materialized,
        'exports': exports,
      } -%}
  {%- do adapter.store_relation(plugin_name, relation, [], '', 's3', payload) -%}
  {{- return('') -}}
{% endmacro %}

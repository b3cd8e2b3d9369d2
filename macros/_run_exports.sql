{#-
  Render the exports as EXPORT statements (logged, secrets redacted), hand them
  to the plugin, and return the rendering as a SQL comment for the hook.

  The comment is made safe whatever the options hold: DuckDB nests block
  comments, so both "/*" and "*/" inside it are broken up. A comment that could
  end early, or never end, would fail the model after its export had landed.
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
  {{- return('/* ' ~ (rendered | replace('*/', '* /') | replace('/*', '/ *')) ~ ' */') -}}
{% endmacro %}

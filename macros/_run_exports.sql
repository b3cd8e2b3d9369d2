{#-
  Render the exports as EXPORT statements (logged, secrets redacted), hand them
  to the plugin, and return the rendering as a SQL comment for the hook.
-#}
{% macro _run_exports(plugin_name, relation, name, unique_id, exports) %}
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
        'exports': exports,
      } -%}
  {%- do adapter.store_relation(plugin_name, relation, [], '', 's3', payload) -%}
  {#- DuckDB nests block comments: neither an end nor a new start may come from a value. -#}
  {{- return('/* ' ~ rendered | replace('*/', '* /') | replace('/*', '/ *') ~ ' */') -}}
{% endmacro %}

{#-
  Export the current model to S3 as its `meta.s3_export` says.

  Use as a post-hook:  post_hook="{{ dbt_s3_export.export_to_s3() }}"
  A model without `s3_export` meta is not exported, so the hook can be set once
  for a whole folder in dbt_project.yml.

  plugin_name: the name the plugin has in profiles.yml (its `alias`, or
  `dbt_s3_export` when none is given).
-#}
{% macro export_to_s3(plugin_name='dbt_s3_export') %}
  {{- return(adapter.dispatch('export_to_s3', 'dbt_s3_export')(plugin_name)) -}}
{% endmacro %}

{% macro default__export_to_s3(plugin_name) %}
  {{- exceptions.raise_compiler_error(
        "export_to_s3: needs the dbt-duckdb adapter with the dbt_s3_export plugin, got adapter type '"
        ~ adapter.type() ~ "'") -}}
{% endmacro %}

{% macro duckdb__export_to_s3(plugin_name) %}
  {#- Hooks are rendered at parse time too; only export when dbt executes. -#}
  {%- if not execute -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set exports = dbt_s3_export._export_entries(model) -%}
  {%- if exports | length == 0 -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set statements = [] -%}
  {%- for entry in exports -%}
    {%- do statements.append(dbt_s3_export._render_export_statement(this, entry)) -%}
  {%- endfor -%}
  {%- set rendered = statements | join('\n') -%}
  {%- do log('s3_export: model ' ~ model.name ~ ':\n' ~ rendered, info=False) -%}
  {%- set payload = {
        'model': model.name,
        'unique_id': model.unique_id,
        'invocation_id': invocation_id,
        'exports': exports,
      } -%}
  {%- do adapter.store_relation(plugin_name, this, [], '', 's3', payload) -%}
  {{- return('/* ' ~ rendered | replace('*/', '* /') ~ ' */') -}}
{% endmacro %}

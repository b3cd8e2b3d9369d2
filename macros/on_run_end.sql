{#-
  Add once to dbt_project.yml:

    on-run-end: ["{{ dbt_s3_export.on_run_end() }}"]

  When the run ends it logs the run's exports (how many, rows, files, bytes, the
  slowest, the failed ones) and warns about models that have `s3_export` meta
  but ran without exporting, because they lack the export_to_s3() post-hook.
  The same facts are in target/s3_export_results.json.

  plugin_name: the name the plugin has in profiles.yml (its `alias`, or
  `dbt_s3_export` when none is given).
-#}
{% macro on_run_end(plugin_name='dbt_s3_export') %}
  {{- return(adapter.dispatch('on_run_end', 'dbt_s3_export')(plugin_name)) -}}
{% endmacro %}

{#- Other adapters unload with their own statements and keep no run report. -#}
{% macro default__on_run_end(plugin_name) %}
  {{- return('') -}}
{% endmacro %}

{% macro duckdb__on_run_end(plugin_name) %}
  {%- if not execute -%}
    {{- return('') -}}
  {%- endif -%}
  {%- set ran = [] -%}
  {%- if dbt_s3_export._exports_enabled() -%}
    {%- for result in results if result.status == 'success' and result.node.unique_id in graph.nodes -%}
      {%- set node = graph.nodes[result.node.unique_id] -%}
      {%- set meta = node.config.get('meta', {}) or {} -%}
      {%- if meta.get('s3_export') or (node.get('meta', {}) or {}).get('s3_export') -%}
        {%- do ran.append([node.unique_id, node.name]) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {%- set payload = {'action': 'run_end', 'invocation_id': invocation_id, 'ran': ran,
                     'switched_off': not dbt_s3_export._exports_enabled()} -%}
  {%- set anchor = api.Relation.create(identifier='s3_export_run_end') -%}
  {%- do adapter.store_relation(plugin_name, anchor, [], '', 's3', payload) -%}
  {{- return('') -}}
{% endmacro %}
